"""--track mlflow: a finished run logged to a local MLflow store and read back with its client."""

from __future__ import annotations

import json

import pytest


def test_a_tiny_run_is_logged_and_read_back(finished_run, tmp_path, monkeypatch):
    mlflow = pytest.importorskip("mlflow", reason="the mlflow extra is not installed")
    from ctbench.experiments.tracking import default_tracking_uri, track_run

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    run_id = track_run(finished_run)
    uri, artifacts = default_tracking_uri()
    assert artifacts == tmp_path / "mlruns" and (artifacts / "mlflow.db").is_file()
    client = mlflow.MlflowClient(uri)
    run = client.get_run(run_id)
    metrics = json.loads((finished_run / "metrics.json").read_text())
    assert run.info.status == "FINISHED" and run.info.run_name == finished_run.name
    assert run.data.params["run.arch"] == "axialnet"
    assert json.loads(run.data.params["run.explainers"]) == ["hirescam", "gradcam"]
    assert run.data.metrics["auroc_median"] == pytest.approx(metrics["auroc_median"])
    assert run.data.metrics["organiou/hirescam"] == pytest.approx(metrics["organiou"]["hirescam"])
    history = metrics["training"]["history"]
    logged = client.get_metric_history(run_id, "epoch/train_loss")
    assert [m.step for m in logged] == list(range(len(history)))
    assert [m.value for m in logged] == pytest.approx([r["train_loss"] for r in history])
    files = {f.path for f in client.list_artifacts(run_id, "figures")}
    assert "figures/loss_curves.png" in files
    assert "metrics.json" in {f.path for f in client.list_artifacts(run_id)}
