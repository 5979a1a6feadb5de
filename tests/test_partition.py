"""PARTITION: organ segmentation (phantom and real CT), downsamplers, allowed regions."""

from __future__ import annotations

from pathlib import Path

import ctbench
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from ctbench.cli import main
from ctbench.core.cases import InvalidCaseError
from ctbench.data.augment import ALL_AUGMENTATIONS, Augmentation
from ctbench.data.io import load_volume
from ctbench.data.loader import VolumeDataset
from ctbench.data.preprocess import Preprocessing
from ctbench.plugins.datasets.phantom import PhantomConfig, generate_case
from ctbench.plugins.segmenters.organs import lung_mask, per_slice_reference
from ctbench.regions.labeler import label_report
from ctbench.regions.partition import AllowedRegions, allowed_regions
from ctbench.regions.segmentation import dice, heuristic_masks
from ctbench.vocabulary import ORGANS

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "totalseg_example"
needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason=f"{SHARED} is absent (CI has it)")


@pytest.fixture(scope="module")
def real_ct():
    volume, spacing = load_volume(SHARED / "example_ct.nii.gz")
    reference, _ = load_volume(SHARED / "example_seg_fast_force_split.nii.gz")
    return volume, spacing, np.isin(reference, (12, 13, 14)), np.isin(reference, (10, 11))


@needs_shared
def test_real_ct_lungs_match_the_reference_lobes(real_ct):
    volume, spacing, right, left = real_ct
    masks = ctbench.create_segmenter("morphological")(volume, spacing)
    assert masks.qc.passed and masks.method == "morphological"
    assert dice(masks.right_lung, right) >= 0.85
    assert dice(masks.left_lung, left) >= 0.85


@needs_shared
def test_vectorised_pipeline_equals_the_per_slice_loop_on_real_ct(real_ct):
    volume, spacing, _, _ = real_ct
    assert np.array_equal(lung_mask(volume, spacing), per_slice_reference(volume, spacing))


def lungs_by_torch(volume, spacing, device="cpu"):
    """The segmenter's device path (torch label propagation), here on the CPU."""
    from ctbench.plugins.segmenters import lungs_on_device
    from ctbench.plugins.segmenters.organs import GAS_HU, MIN_VOLUME_ML, THRESHOLD_HU

    return lungs_on_device.lung_mask(
        volume, spacing, THRESHOLD_HU, MIN_VOLUME_ML, GAS_HU, device=device
    )


@needs_shared
def test_device_path_gives_scipys_lungs_on_real_ct(real_ct):
    volume, spacing, _, _ = real_ct
    assert np.array_equal(lungs_by_torch(volume, spacing), lung_mask(volume, spacing))
    if torch.cuda.is_available():
        assert np.array_equal(lungs_by_torch(volume, spacing, "cuda"), lung_mask(volume, spacing))


def test_components_by_label_propagation_match_scipy():
    """Random masks (many small components, holes, diagonal contacts): the same partition as
    ``ndimage.label`` in-plane (8-connected) and in 3-D (faces)."""
    from ctbench.plugins.segmenters.lungs_on_device import FACES_3D, IN_PLANE_8, components
    from ctbench.plugins.segmenters.organs import IN_PLANE
    from scipy import ndimage

    mask = np.random.default_rng(0).random((6, 40, 50)) < 0.45
    for offsets, structure in ((IN_PLANE_8, IN_PLANE), (FACES_3D, None)):
        ours = components(torch.from_numpy(mask), offsets).numpy()
        theirs, _ = ndimage.label(mask, structure=structure)
        assert ((ours > 0) == mask).all()
        pairs = np.unique(np.stack([ours[mask], theirs[mask]]), axis=1)
        assert len(np.unique(pairs[0])) == len(np.unique(pairs[1])) == pairs.shape[1]


def test_segmenters_take_a_device_only_when_they_compute_there():
    assert ctbench.create_segmenter("morphological", device="cuda").device == "cuda"
    assert ctbench.create_segmenter("morphological", device="cpu").device == "cpu"
    heuristic = ctbench.create_segmenter("heuristic", device="cuda")  # computes on the CPU
    assert heuristic(np.zeros((3, 4, 4)), (1.0, 1.0, 1.0)).method == "heuristic"
    assert str(ctbench.create_downsampler("area", device="cuda:1").device) == "cuda:1"


AIRLESS = {
    "lung_pleural_effusion",
    "lung_atelectasis",
    "lung_consolidation",
    "lung_mass",
    "lung_nodule",
}


@pytest.mark.parametrize(
    "shape", [(27, 64, 64), (48, 128, 128), (60, 96, 160)], ids=["tiny", "default", "anisotropic"]
)
def test_phantom_lungs_at_several_shapes_and_spacings(shape):
    """Mean Dice over 24 cases against the organ masks (which include airless findings such as
    effusions, invisible to a threshold) and against the aerated lung."""
    config = PhantomConfig.from_preset("tiny", volume_shape=shape, n_train=24)
    segment = ctbench.create_segmenter("morphological")
    organ, aerated = [], []
    for index in range(24):
        case = generate_case(config, "train", index)
        masks = segment(case.volume, case.spacing)
        assert masks.qc.passed, masks.qc.reason
        airless = np.logical_or.reduce(
            [f.mask for f in case.findings if f.label in AIRLESS] + [np.zeros(shape, bool)]
        )
        for side in ("right_lung", "left_lung"):
            organ.append(dice(getattr(masks, side), case.organs[side]))
            aerated.append(dice(getattr(masks, side), case.organs[side] & ~airless))
        if index < 3:
            scipy_mask = lung_mask(case.volume, case.spacing)
            assert np.array_equal(scipy_mask, per_slice_reference(case.volume, case.spacing))
            assert np.array_equal(scipy_mask, lungs_by_torch(case.volume, case.spacing))
    right, left = np.mean(organ[0::2]), np.mean(organ[1::2])
    assert right >= 0.95 and left >= 0.95, (right, left)
    assert min(aerated) >= 0.95, min(aerated)


def test_no_lung_is_an_error_not_invented_halves():
    from ctbench.regions.segmentation import NoLungError

    volume = np.full((12, 64, 64), 40, np.int16)  # soft tissue only: no lung
    volume[:, :, :4] = -1000
    segmenter = ctbench.create_segmenter("morphological")
    for no_lung in (volume, np.full((12, 64, 64), -1000, np.int16), np.full((1, 1, 1), -1000)):
        with pytest.raises(NoLungError, match="no lung found"):
            segmenter(no_lung, (3.0, 3.0, 3.0))


def test_qc_failure_falls_back_to_the_heuristic_and_says_why():
    one_lung = generate_case(PhantomConfig.from_preset("tiny"), "train", 0).volume.copy()
    one_lung[:, :, 32:] = 40  # the patient's left half is solid: the left lung is missing
    masks = ctbench.create_segmenter("morphological")(one_lung, (12.0, 5.25, 5.25))
    assert not masks.qc.passed and "left lung missing" in masks.qc.reason
    assert masks.method == "heuristic (fallback)"


def test_heuristic_masks_are_halves():
    masks = heuristic_masks((2, 4, 8))
    assert masks.right_lung[0, 0].tolist() == [True] * 4 + [False] * 4  # low X = patient right
    assert masks.left_lung[0, 0].tolist() == [False] * 4 + [True] * 4
    assert masks.mediastinum[0, 0].tolist() == [False, False, True, True, True, True, False, False]
    assert (
        ctbench.create_segmenter("heuristic")(np.zeros((2, 4, 8)), (1, 1, 1)).method == "heuristic"
    )


# --- downsamplers -------------------------------------------------------------------------


def test_downsamplers_allow_any_nonzero_cell():
    mask = np.zeros((12, 12, 12), bool)
    mask[1, 1, 1] = True  # nearest samples 0, 3, 6, 9 and misses it; trilinear samples 1, 4, ...
    nearest = ctbench.create_downsampler("nearest")(mask, (4, 4, 4))
    trilinear = ctbench.create_downsampler("trilinear")(mask, (4, 4, 4))
    area = ctbench.create_downsampler("area")(mask, (4, 4, 4))
    assert not nearest.any()
    assert area.sum() == 1 and area[0, 0, 0]
    assert trilinear[0, 0, 0]
    dilated = ctbench.create_downsampler("area", dilate=True)(mask, (4, 4, 4))
    assert dilated.sum() == 8  # the 3x3x3 neighbourhood of the corner cell, clipped
    assert ctbench.create_downsampler("area")(mask, (4, 4, 4), dilate=True).sum() == 8


def test_nearest_samples_like_pytorch_default():
    mask = np.zeros((6, 6, 6), bool)
    mask[::3, ::3, ::3] = True  # exactly the voxels nearest picks for a 2x2x2 grid
    assert ctbench.create_downsampler("nearest")(mask, (2, 2, 2)).all()


# --- allowed regions ----------------------------------------------------------------------


def test_allowed_regions_are_organ_unions_for_present_labels_only():
    grids = {name: np.zeros((2, 3, 3), bool) for name in ("right_lung", "left_lung", "mediastinum")}
    grids["right_lung"][:, :, 0] = True
    grids["left_lung"][:, :, 2] = True
    grids["mediastinum"][:, 1, 1] = True
    labels = ("heart_cardiomegaly", "lung_nodule", "lung_mass")
    regions = allowed_regions(
        labels, {"heart_cardiomegaly": ["heart"], "lung_nodule": ["right_lung", "left_lung"]}, grids
    )
    assert regions.shape == (3, 2, 3, 3)
    assert np.array_equal(regions[0], grids["mediastinum"])
    assert np.array_equal(regions[1], grids["right_lung"] | grids["left_lung"])
    assert not regions[2].any()  # absent label: nothing allowed


def test_allowed_regions_for_phantom_cases_are_cached(tiny_phantom, tmp_path):
    preprocessing = Preprocessing(volume_shape=(27, 64, 64))
    regions = AllowedRegions(
        tiny_phantom.label_names, (9, 4, 4), preprocessing, downsampler="area", cache_dir=tmp_path
    )
    case = tiny_phantom.load("trn00000")
    first = regions(case)
    cached = next(regions.folder.glob("trn00000.npz"))
    stamp = cached.stat().st_mtime_ns
    assert np.array_equal(regions(case), first) and cached.stat().st_mtime_ns == stamp
    present = set(case.locations())
    for m, label in enumerate(tiny_phantom.label_names):
        assert first[m].any() == (label in present), label
    no_report = type(case)(case.case_id, case.volume, case.spacing, case.labels)
    with pytest.raises(InvalidCaseError, match="trn00000: no report"):
        regions.compute(no_report)


@pytest.mark.parametrize("downsampler", ["nearest", "trilinear", "area"])
@pytest.mark.parametrize("dilate", [False, True])
def test_allowed_regions_follow_the_augmentation_exactly(
    tiny_phantom, tmp_path, downsampler, dilate
):
    """For every downsampler and all 16 augmentations, a training sample's G_true equals the
    one recomputed from the augmented organ masks (segment, augment at full size, downsample,
    union per label), on a grid whose factors are not whole numbers (27x64x64 -> 9x5x3)."""
    preprocessing = Preprocessing(volume_shape=(27, 64, 64))
    grid = (9, 5, 3)
    regions = AllowedRegions(
        tiny_phantom.label_names,
        grid,
        preprocessing,
        downsampler=downsampler,
        dilate=dilate,
        cache_dir=tmp_path,
    )
    dataset = VolumeDataset(
        tiny_phantom, "train", augment=True, seed=2, with_organs=True, allowed_regions=regions
    )
    downsample = ctbench.create_downsampler(downsampler)
    segment = ctbench.create_segmenter("morphological")
    case = tiny_phantom.load("trn00001")
    located = label_report(case.report)["locations"]
    organs = segment(case.volume, case.spacing)
    differs_from_small_flip = 0
    for augmentation in ALL_AUGMENTATIONS:
        small = {
            name: downsample(augmentation.apply(getattr(organs, name)), grid, dilate)
            for name in ("right_lung", "left_lung", "mediastinum")
        }
        want = allowed_regions(tiny_phantom.label_names, located, small)
        assert np.array_equal(regions(case, augmentation), want), augmentation
        plain = regions(case)
        differs_from_small_flip += not np.array_equal(augmentation.apply(plain), want)
    if downsampler == "nearest" and not dilate:
        assert differs_from_small_flip > 0  # the bug this replaces: flipping the small grid
    # and through the data pipeline: the sample carries the G_true of its own augmentation
    index = dataset.case_ids.index("trn00001")
    for epoch in range(4):
        dataset.set_epoch(epoch)
        sample = dataset[index]
        augmentation = Augmentation.from_array(sample["augmentation"])
        assert torch.equal(sample["allowed"], torch.from_numpy(regions(case, augmentation)))
        organs_sample = sample["organs"].numpy()
        assert np.array_equal(
            organs_sample[ORGANS.index("right_lung")], augmentation.apply(case.organs["right_lung"])
        )


def test_augmentation_records_are_sixteen_and_indexed():
    assert len(set(ALL_AUGMENTATIONS)) == 16 and ALL_AUGMENTATIONS[0] == Augmentation()
    rng = np.random.default_rng(0)
    drawn = {Augmentation.draw(rng) for _ in range(400)}
    assert drawn == set(ALL_AUGMENTATIONS)
    assert [a.index for a in ALL_AUGMENTATIONS] == list(range(16))


def test_augmentation_refuses_a_non_square_axial_plane(tiny_phantom):
    with pytest.raises(ValueError, match="square axial plane"):
        VolumeDataset(
            tiny_phantom, "train", augment=True, preprocessing=Preprocessing((27, 64, 48))
        )


# --- CLI ----------------------------------------------------------------------------------


@needs_shared
def test_segment_command_on_nifti_writes_masks_and_png(tmp_path):
    out, png = tmp_path / "masks.npz", tmp_path / "organs.png"
    result = CliRunner().invoke(
        main, ["segment", str(SHARED / "example_ct.nii.gz"), "--out", str(out), "--png", str(png)]
    )
    assert result.exit_code == 0, result.output
    assert "QC passed" in result.output
    with np.load(out, allow_pickle=False) as data:
        assert {"right_lung", "left_lung", "mediastinum"} <= set(data.files)
    from tests.figure_checks import assert_figure, has_colour

    image = assert_figure(png, (16, 4.6), (1, 4))  # three axial slices and one coronal
    assert has_colour(image, "#2ca02c") and has_colour(image, "#1f77b4")  # both lung contours
    nifti = tmp_path / "masks.nii.gz"
    assert (
        CliRunner()
        .invoke(main, ["segment", str(SHARED / "example_ct.nii.gz"), "--out", str(nifti)])
        .exit_code
        == 0
    )
    labels, _ = load_volume(nifti)  # back through the same reorientation
    masks = ctbench.create_segmenter("morphological")(*load_volume(SHARED / "example_ct.nii.gz"))
    assert np.array_equal(labels == 1, masks.right_lung)


@needs_shared
def test_segment_command_reads_a_dicom_folder():
    result = CliRunner().invoke(main, ["segment", str(SHARED / "example_ct_dicom")])
    # these 20 slices of the upper abdomen hold no lung: no invented halves, an error
    assert result.exit_code == 1, result.output
    assert "no lung found" in result.output and "20x512x512" in result.output


def test_segment_command_on_a_phantom_case(tmp_path, monkeypatch, tiny_phantom):
    monkeypatch.setenv("CTBENCH_CACHE_DIR", str(tiny_phantom.folder.parent))
    result = CliRunner().invoke(main, ["segment", "phantom:tiny:trn00001"])
    assert result.exit_code == 0 and "QC passed" in result.output
    bad = CliRunner().invoke(main, ["segment", str(tmp_path / "nothing.nii.gz")])
    assert bad.exit_code == 1 and "no such file" in bad.output
    if torch.cuda.is_available():
        on_gpu = CliRunner().invoke(main, ["segment", "phantom:tiny:trn00001", "--device", "cuda"])
        assert on_gpu.exit_code == 0 and on_gpu.output == result.output  # the same volumes
    else:
        missing = CliRunner().invoke(main, ["segment", "phantom:tiny:trn00001", "--device", "cuda"])
        assert missing.exit_code == 2 and "CUDA is not available here" in missing.output
