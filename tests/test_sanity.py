"""Sanity checks (ctbench.explain.sanity, ctbench sanity): the measures, the randomisations, the
permuted-label model, and the verdicts: HiResCAM and Grad-CAM pass on a trained tiny model,
an explainer that ignores the model fails."""

from __future__ import annotations

import json

import ctbench
import pytest
import torch
import torch.nn.functional as F
from ctbench.explain import sanity
from ctbench.testing import TINY_INPUT_SHAPE


def test_spearman_and_ssim_known_values():
    a = torch.arange(36, dtype=torch.float64).reshape(1, 1, 9, 2, 2)
    assert float(sanity.spearman(a, a)) == pytest.approx(1)
    assert float(sanity.spearman(a, -a)) == pytest.approx(-1)
    assert float(sanity.spearman(a, a**3)) == pytest.approx(1)  # ranks only
    assert torch.isnan(sanity.spearman(a, torch.ones_like(a)))  # a constant map: undefined
    assert float(sanity.ssim3d(a, a)) == pytest.approx(1)
    assert float(sanity.ssim3d(a, 2 * a)) == pytest.approx(1)  # scaled by the largest value
    big = torch.rand(1, 1, 9, 8, 8, generator=torch.Generator().manual_seed(0))
    assert float(sanity.ssim3d(big, big)) == pytest.approx(1)  # a 7-wide window fits
    assert float(sanity.ssim3d(big, torch.rand(big.shape))) < 0.5


def test_random_pairs_never_pair_a_map_with_itself():
    maps = torch.arange(5, dtype=torch.float64)[:, None, None, None, None].expand(5, 1, 3, 2, 2)
    maps = maps + torch.rand(5, 1, 3, 2, 2, generator=torch.Generator().manual_seed(1))
    baseline = sanity.random_pair_baseline(maps)
    assert all(float(v) < 1 for v in baseline["spearman"].flatten())


def test_blocks_and_randomisation_touch_only_the_chosen_blocks():
    torch.manual_seed(0)
    model = ctbench.create_model("axialnet", 2, TINY_INPUT_SHAPE).eval()
    with torch.no_grad():  # as if trained: no parameter is at its initial value
        for parameter in model.parameters():
            parameter.add_(0.1 * torch.randn_like(parameter))
    blocks = sanity.parameter_blocks(model)
    assert blocks[0] == "trunk.resnet.0" and blocks[-1] == "fc" and "trunk.resnet.7" in blocks
    changed = sanity.randomised(model, ["trunk.resnet.7"], seed=3)
    for (name, before), (_, after) in zip(
        model.named_parameters(), changed.named_parameters(), strict=True
    ):
        assert torch.equal(before, after) != name.startswith("trunk.resnet.7."), name
    again = sanity.randomised(model, ["trunk.resnet.7"], seed=3)
    assert all(
        torch.equal(a, b) for a, b in zip(changed.parameters(), again.parameters(), strict=True)
    )


class EdgeDetector:
    """An "explainer" that ignores the model: the input's gradient magnitude per CAM cell."""

    def __call__(self, model, x, classes=None):
        volume = x.mean(dim=2)  # [B, H, Y, X]
        dy = volume.diff(dim=2).abs()[..., :, :-1]
        dx = volume.diff(dim=3).abs()[..., :-1, :]
        edges = F.adaptive_avg_pool2d(dy + dx, (2, 2))  # the tiny model's 2 x 2 grid
        return edges[:, None].expand(-1, 2, -1, -1, -1)


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, tiny_phantom):
    """A tiny-preset AxialNet run (pretext start, head warm-up), with HiResCAM and Grad-CAM."""
    from ctbench.experiments.run_config import RunConfig
    from ctbench.experiments.runs import execute_run

    patch = pytest.MonkeyPatch()
    patch.setenv("CTBENCH_CACHE_DIR", str(tiny_phantom.folder.parent))
    folder = tmp_path_factory.mktemp("runs") / "run"
    config = RunConfig(
        arch="axialnet", preset="tiny", explainers=("hirescam", "gradcam"), overlays=0
    )
    execute_run(config, folder, progress=False, log=lambda _: None)
    yield folder
    patch.undo()


def test_an_explainer_that_ignores_the_model_fails(trained_run):
    from ctbench.runtime.checkpoints import model_from_checkpoint

    model = model_from_checkpoint(trained_run / "checkpoints" / "best.pt")[0]
    x = torch.randn(4, *TINY_INPUT_SHAPE, generator=torch.Generator().manual_seed(2))
    result = sanity.randomisation_tests(model, lambda m: EdgeDetector()(m, x))
    assert not result["passed"]
    assert all(step["spearman"]["mean"] == pytest.approx(1) for step in result["cascading"])


def test_sanity_command_passes_hirescam_and_gradcam(trained_run):
    from click.testing import CliRunner
    from ctbench.cli import main

    result = CliRunner().invoke(main, ["sanity", str(trained_run), "--cases", "4", "--quiet"])
    assert result.exit_code == 0, result.output
    report = json.loads((trained_run / "sanity.json").read_text())
    for name in ("hirescam", "gradcam"):
        explainer = report["explainers"][name]
        assert explainer["passed"], (name, result.output)
        assert explainer["permuted_labels"]["passed"]
        assert (
            len(explainer["cascading"]) == len(explainer["blocks"]) == len(explainer["independent"])
        )
    assert (trained_run / "sanity.png").stat().st_size > 10_000
    assert (trained_run / "sanity" / "permuted-labels-seed0" / "metrics.json").is_file()
    assert "| hirescam" in result.output and '"gradcam": true' in result.output
