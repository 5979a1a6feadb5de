"""Known answers for the localisation family (ctbench.evaluate.localisation) on 3-D, multi-label
maps.

A 4 x 4 x 4 grid (64 cells); the mask of most tests is the top half (S < 2, 32 cells), so a
uniform guess scores 0.5 where a score is a share of the grid.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ctbench.evaluate import localisation as loc
from sklearn.metrics import average_precision_score, roc_auc_score

GRID = (4, 4, 4)


def top_half() -> torch.Tensor:
    mask = torch.zeros(GRID, dtype=torch.bool)
    mask[:2] = True
    return mask


def pair(map_: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One volume, one label: ``[1, 1, *GRID]``."""
    return map_.double()[None, None], mask[None, None]


def scores(map_, mask, threshold=0.5) -> dict[str, float]:
    maps, masks = pair(map_, mask)
    out = {name: float(v[0, 0]) for name, v in loc.threshold_free(maps, masks).items()}
    out |= {name: float(v[0, 0]) for name, v in loc.overlap(maps, masks, threshold).items()}
    return out


def test_all_inside_scores_perfectly():
    mask = top_half()
    result = scores(mask.double(), mask)
    assert result == pytest.approx(
        {
            "pointing_game": 1,
            "mass_inside": 1,
            "mass_inside_signed": 1,
            "rank_accuracy": 1,
            "top_k_intersection": 1,
            "auroc": 1,
            "average_precision": 1,
            "iou": 1,
            "dice": 1,
            "hit": 1,
        }
    )


def test_none_inside_scores_nothing():
    mask = top_half()
    result = scores((~mask).double(), mask)
    assert result == pytest.approx(
        {
            "pointing_game": 0,
            "mass_inside": 0,
            "mass_inside_signed": 0,
            "rank_accuracy": 0,
            "top_k_intersection": 0,
            "auroc": 0,
            "average_precision": 0.5,  # the mask's cells enter last, all at once: prevalence
            "iou": 0,
            "dice": 0,
            "hit": 0,
        }
    )


def test_half_inside():
    """The map is 1 on slices 1 and 2 (32 cells: 16 inside the mask, 16 outside), 0 elsewhere."""
    mask = top_half()
    map_ = torch.zeros(GRID)
    map_[1:3] = 1
    result = scores(map_, mask)
    assert result == pytest.approx(
        {
            "pointing_game": 0.5,
            "mass_inside": 0.5,
            "mass_inside_signed": 0.5,
            "rank_accuracy": 0.5,
            "top_k_intersection": 0.5,
            "auroc": 0.5,
            "average_precision": 0.5,
            "iou": 1 / 3,
            "dice": 0.5,
            "hit": 1,
        }
    )


def test_empty_mask_is_nan_and_left_out():
    empty = torch.zeros(GRID, dtype=torch.bool)
    assert all(np.isnan(v) for v in scores(torch.rand(GRID), empty).values())


@pytest.mark.parametrize("value", [3.0, 0.0])
def test_constant_and_all_zero_maps_score_as_a_uniform_guess(value):
    mask = torch.zeros(GRID, dtype=torch.bool)
    mask[0, :2] = True  # 8 of 64 cells
    result = scores(torch.full(GRID, value), mask)
    share = 8 / 64
    for name in ("pointing_game", "mass_inside", "rank_accuracy", "top_k_intersection"):
        assert result[name] == pytest.approx(share), name
    assert result["auroc"] == 0.5 and result["average_precision"] == pytest.approx(share)
    if value:  # every cell above the cut
        assert result["iou"] == pytest.approx(share)
        assert result["dice"] == pytest.approx(2 * share / (1 + share))
    else:  # an all-zero map says nothing: nothing above any cut
        assert result["iou"] == result["dice"] == result["hit"] == 0


def test_ties_share_the_hit():
    mask = top_half()
    map_ = torch.zeros(GRID)
    map_[0, 0, 0] = map_[3, 3, 3] = 1  # one maximum inside, one outside
    assert scores(map_, mask)["pointing_game"] == 0.5
    map_[1, 1, 1] = 1  # two of three inside
    assert scores(map_, mask)["pointing_game"] == pytest.approx(2 / 3)
    # rank accuracy: K = 32 cells; 3 ones (2 inside) then 61 tied zeros (30 inside) share 29 places
    assert scores(map_, mask)["rank_accuracy"] == pytest.approx((2 + 29 * 30 / 61) / 32)


def test_signed_mass_counts_negative_evidence_against():
    mask = top_half()
    map_ = torch.zeros(GRID)
    map_[0], map_[1] = 1.0, -1.0  # all mass inside: half for, half against
    result = scores(map_, mask)
    assert result["mass_inside"] == 1 and result["mass_inside_signed"] == 0


def test_top_k_is_a_fixed_number_of_cells():
    mask = top_half()
    map_ = torch.arange(64, dtype=torch.float64).reshape(GRID).flip(0)  # highest in slice 0... 3
    maps, masks = pair(map_, mask)
    assert float(loc.top_k_intersection(maps, masks, fraction=0.25)[0, 0]) == 1  # 16 cells
    inverse = torch.arange(64, dtype=torch.float64).reshape(GRID)
    maps, _ = pair(inverse, mask)
    assert float(loc.top_k_intersection(maps, masks, fraction=0.75)[0, 0]) == pytest.approx(16 / 48)


def test_several_labels_and_batch_size_do_not_change_a_score():
    generator = torch.Generator().manual_seed(0)
    maps = torch.randn(5, 3, *GRID, generator=generator).round(decimals=1)  # ties included
    masks = torch.rand(5, 3, *GRID, generator=generator) > 0.7
    masks[2, 1] = False  # an empty mask among the others
    together = loc.threshold_free(maps, masks)
    together |= loc.overlap(maps, masks, torch.tensor([0.2, 0.5, 0.8]))
    for n in range(5):
        alone = loc.threshold_free(maps[n : n + 1], masks[n : n + 1])
        alone |= loc.overlap(maps[n : n + 1], masks[n : n + 1], torch.tensor([0.2, 0.5, 0.8]))
        for name, value in alone.items():
            torch.testing.assert_close(value[0], together[name][n], equal_nan=True)
        for m in range(3):  # each label on its own too
            single = loc.threshold_free(maps[n : n + 1, m : m + 1], masks[n : n + 1, m : m + 1])
            for name, value in single.items():
                torch.testing.assert_close(value[0, 0], together[name][n, m], equal_nan=True)
    assert all(torch.isnan(v[2, 1]) for v in together.values())


def test_threshold_free_metrics_match_scikit_learn():
    generator = torch.Generator().manual_seed(1)
    maps = torch.rand(4, 2, *GRID, generator=generator).round(decimals=1)
    masks = torch.rand(4, 2, *GRID, generator=generator) > 0.6
    auroc, ap = loc.map_auroc(maps, masks), loc.map_average_precision(maps, masks)
    for n in range(4):
        for m in range(2):
            truth, score = masks[n, m].flatten().numpy(), maps[n, m].flatten().numpy()
            assert float(auroc[n, m]) == pytest.approx(roc_auc_score(truth, score))
            assert float(ap[n, m]) == pytest.approx(average_precision_score(truth, score))


def test_otsu_matches_scikit_image_on_a_bimodal_map():
    from skimage.filters import threshold_otsu

    generator = torch.Generator().manual_seed(2)
    map_ = torch.rand(GRID, generator=generator) * 0.3
    map_[:2] += 0.6
    ours = float(loc.otsu_thresholds(map_[None, None])[0, 0])
    theirs = threshold_otsu(loc.normalised(map_[None, None]).numpy().ravel(), nbins=256)
    assert abs(ours - theirs) <= 2 / 256
    assert 0.3 < ours < 0.7


def test_instance_f1_matches_instances_one_to_one():
    truth = torch.zeros(1, 1, 8, 8, 8, dtype=torch.int64)
    truth[0, 0, 0:2, 0:2, 0:2] = 1  # found below
    truth[0, 0, 5:7, 5:7, 5:7] = 2  # missed
    map_ = torch.zeros(1, 1, 8, 8, 8)
    map_[0, 0, 0:2, 0:2, 0:3] = 1  # Dice 16 / 20 = 0.8 with instance 1
    map_[0, 0, 0:2, 6:8, 0:2] = 1  # a blob on no instance: a false positive
    counts = loc.instance_counts(map_, truth, 0.5)
    assert counts[0, 0].tolist() == [1, 1, 1]
    assert float(loc.instance_f1(counts)[0]) == pytest.approx(0.5)
    assert torch.isnan(loc.instance_f1(torch.zeros(3, 1, 3))[0])


def test_masks_and_maps_change_grids_by_the_stated_rules():
    voxels = torch.zeros(1, 8, 8, 8, dtype=torch.bool)
    voxels[0, 5, 1, 6] = True  # one voxel makes its cell part of the mask
    cells = loc.mask_to_grid(voxels, (4, 4, 4))
    assert cells.sum() == 1 and cells[0, 2, 0, 3]
    up = loc.map_to_grid(torch.ones(1, 2, 2, 2), (4, 4, 4))
    assert up.shape == (1, 4, 4, 4) and torch.allclose(up, torch.ones(1, 4, 4, 4))


def test_bad_input_is_one_clear_error():
    with pytest.raises(ValueError, match="must share one shape"):
        loc.pointing_game(torch.zeros(1, 1, *GRID), torch.zeros(1, 2, *GRID, dtype=torch.bool))
    bad = torch.zeros(1, 1, *GRID)
    bad[0, 0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        loc.map_auroc(bad, top_half()[None, None])


def test_instance_f1_of_a_run_counts_only_pairs_with_instances():
    """explanation_scores.instance_parts on a 1 x 2 x 4 grid: volume 0 has two instances (c0,
    c3) and a map hot on c0 only (TP 1, FN 1); volume 1 one instance (c0) and a map hot on c0
    and c3, two components (TP 1, FP 1); volume 2 has no instance and is not scored."""
    from ctbench.evaluate.bootstrap import bootstrap_ratio
    from ctbench.evaluate.explanation_scores import instance_parts

    instances = np.zeros((3, 1, 1, 2, 4), np.int16)
    instances[0, 0, 0, 0, 0], instances[0, 0, 0, 1, 3] = 1, 2
    instances[1, 0, 0, 0, 0] = 1
    maps = np.zeros((3, 1, 1, 2, 4), np.float32)
    maps[0, 0, 0, 0, 0] = 1
    maps[1, 0, 0, 0, 0] = maps[1, 0, 0, 1, 3] = 1
    maps[2, 0, 0, 0, 0] = 1  # would be a false positive, but the pair is not scored
    top, bottom = instance_parts(maps, instances, np.array([0.5]))
    assert top[:2, 0].tolist() == [2, 2] and bottom[:2, 0].tolist() == [3, 3]
    assert np.isnan(top[2, 0]) and np.isnan(bottom[2, 0])
    assert bootstrap_ratio(top, bottom).mean == pytest.approx(4 / 6)


def test_instance_cells_give_each_cell_its_largest_instance():
    from ctbench.evaluate.metrics import instance_cells, lesion_cells

    ids = torch.zeros(2, 4, 4, dtype=torch.uint8)  # a 1 x 2 x 2 grid of 2 x 2 x 2 voxels
    ids[:, :2, :2] = 1  # instance 1 fills cell c0
    ids[0, 0, 2] = 2  # instance 2: one voxel in c1 ...
    ids[:, 2:, 2:] = 2  # ... and all of c3
    ids[0, 1, 3] = 3  # instance 3: one voxel in c1 too: the tie goes to the lower id
    ids[1, 2, 0] = 3  # and alone in c2
    cells = instance_cells(ids, (1, 2, 2))
    assert cells.tolist() == [[[1, 2], [3, 2]]]
    assert np.array_equal(cells > 0, lesion_cells(ids > 0, (1, 2, 2)))
    assert not instance_cells(torch.zeros(2, 4, 4, dtype=torch.uint8), (1, 2, 2)).any()


def test_the_family_at_once_equals_each_metric_alone():
    generator = torch.Generator().manual_seed(7)
    maps = torch.randint(0, 4, (3, 2, 2, 3, 3), generator=generator).float()  # many ties
    masks = torch.rand(maps.shape, generator=generator) > 0.6
    alone = {
        "pointing_game": loc.pointing_game(maps, masks),
        "mass_inside": loc.mass_inside(maps, masks),
        "mass_inside_signed": loc.mass_inside(maps, masks, signed=True),
        "rank_accuracy": loc.rank_accuracy(maps, masks),
        "top_k_intersection": loc.top_k_intersection(maps, masks),
        "auroc": loc.map_auroc(maps, masks),
        "average_precision": loc.map_average_precision(maps, masks),
    }
    together = loc.threshold_free(maps, masks)
    assert tuple(together) == loc.THRESHOLD_FREE
    for name, value in alone.items():
        torch.testing.assert_close(together[name], value, equal_nan=True)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_the_family_on_the_gpu_equals_the_cpu():
    from ctbench.evaluate.explanation_scores import pair_scores

    rng = np.random.default_rng(8)
    maps = rng.random((2, 5, 4, 6, 6)).astype(np.float32)
    masks = rng.random(maps.shape) < 0.2
    cuts = np.full(5, 0.5)
    cpu, gpu = pair_scores(maps, masks, cuts), pair_scores(maps, masks, cuts, device="cuda")
    for name, value in cpu.items():
        np.testing.assert_allclose(gpu[name], value, rtol=1e-6, atol=1e-9, err_msg=name)
