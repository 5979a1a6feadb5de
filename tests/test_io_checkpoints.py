"""Volume files into ctbench's axes, and checkpoints that rebuild their model safely."""

from __future__ import annotations

from pathlib import Path

import ctbench
import numpy as np
import pytest
import torch
from ctbench.core.cases import InvalidCaseError
from ctbench.data.io import load_volume, ras_to_ctbench
from ctbench.runtime.checkpoints import load_checkpoint, model_from_checkpoint, save_checkpoint

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "totalseg_example"
needs_shared = pytest.mark.skipif(
    not SHARED.is_dir(), reason=f"real CT test data folder {SHARED} is absent (CI has it)"
)


def test_ras_to_ctbench_axes():
    ras = np.zeros((4, 5, 6))  # i -> patient right, j -> anterior, k -> superior
    ras[3, 0, 5] = 1  # most right, most posterior, most superior
    out = ras_to_ctbench(ras)
    assert out.shape == (6, 5, 4)  # [S, Y, X]
    assert out[0, 4, 0] == 1  # superior first, posterior last, patient right at X = 0


@needs_shared
def test_nifti_is_reoriented_right_lung_at_low_x_superior_first():
    volume, spacing = load_volume(SHARED / "example_ct.nii.gz")
    segmentation, _ = load_volume(SHARED / "example_seg_fast_force_split.nii.gz")
    assert volume.shape == segmentation.shape == (112, 101, 122)
    assert spacing == (3.0, 3.0, 3.0)
    right = np.argwhere(segmentation == 14).mean(axis=0)  # lung_lower_lobe_right
    left = np.argwhere(segmentation == 11).mean(axis=0)  # lung_lower_lobe_left
    assert right[2] < volume.shape[2] / 2 < left[2]
    assert right[0] < 12 and left[0] < 12  # lung bases are the top (most superior) slices
    lungs = np.isin(segmentation, (10, 11, 14))
    assert np.median(volume[lungs]) < -700  # the labels sit on air-filled lung in HU


def test_npz_in_the_rad_chestct_layout(tmp_path):
    path = tmp_path / "trn00001.npz"
    np.savez_compressed(path, ct=np.full((6, 4, 4), -1000, np.int16))
    volume, spacing = load_volume(path)
    assert volume.shape == (6, 4, 4) and spacing == (0.8, 0.8, 0.8)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("scan.nii.gz", b"not gzip", "unreadable"),
        ("scan.npz", b"junk", "unreadable"),
        ("scan.mha", b"", "unsupported file type"),
    ],
)
def test_bad_files_are_one_error_naming_the_file(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(InvalidCaseError, match=f"{name}: {message}"):
        load_volume(path)


def test_checkpoint_round_trip_rebuilds_the_same_model(tmp_path):
    torch.manual_seed(0)
    model = ctbench.create_model("axialnet", 2, (9, 3, 64, 64)).eval()
    path = save_checkpoint(
        tmp_path / "best.pt",
        model,
        arch="axialnet",
        input_shape=(9, 3, 64, 64),
        label_names=["lung_nodule", "lung_mass"],
        model_options={"pretrained": False},
        epoch=3,
    )
    rebuilt, payload = model_from_checkpoint(path)
    assert payload["epoch"] == 3 and payload["label_names"] == ["lung_nodule", "lung_mass"]
    x = torch.rand(1, 9, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(x), model(x))


def test_bad_checkpoints_name_the_file(tmp_path):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"junk")
    with pytest.raises(ValueError, match=r"junk\.pt: not a readable checkpoint"):
        load_checkpoint(junk)
    other = tmp_path / "other.pt"
    torch.save({"state_dict": {}}, other)
    with pytest.raises(ValueError, match=r"other\.pt: not a ctbench checkpoint"):
        load_checkpoint(other)
    with pytest.raises(FileNotFoundError, match=r"absent\.pt: checkpoint does not exist"):
        load_checkpoint(tmp_path / "absent.pt")


@needs_shared
def test_dicom_folder_lands_on_the_grid_of_its_nifti_segmentation():
    """The DICOM series and TotalSegmentator's LAS segmentation of it must overlay exactly."""
    volume, spacing = load_volume(SHARED / "example_ct_dicom")
    segmentation, seg_spacing = load_volume(SHARED / "example_seg_dicom.nii.gz")
    assert volume.shape == segmentation.shape == (20, 512, 512)
    assert spacing == pytest.approx(seg_spacing)
    liver, spleen = segmentation == 5, segmentation == 1
    assert np.argwhere(liver).mean(axis=0)[2] < 256 < np.argwhere(spleen).mean(axis=0)[2]
    assert 40 < np.median(volume[liver]) < 150  # soft tissue under the liver label
    assert np.median(volume[segmentation == 0]) < -500  # mostly air outside the labels
    # bone (CT above 200 HU) overlaps the labelled bones only when no axis is flipped
    bones = np.isin(segmentation, [*range(25, 51), *range(69, 79), *range(91, 118)])

    def dice(ct):
        dense = ct > 200
        return 2 * (dense & bones).sum() / (dense.sum() + bones.sum())

    flipped = [dice(volume[::-1]), dice(volume[:, ::-1]), dice(volume[:, :, ::-1])]
    assert dice(volume) > 0.4 and dice(volume) > 1.5 * max(flipped)
