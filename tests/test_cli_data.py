"""`ctbench data generate` and `ctbench data show` from the command line."""

from __future__ import annotations

from click.testing import CliRunner
from ctbench.cli import main


def test_data_generate_materialises_the_default_datasets_preset(tmp_path):
    result = CliRunner().invoke(
        main, ["data", "generate", "--preset", "tiny", "--out", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    folder = next(tmp_path.glob("phantom-tiny-*"))
    assert len(list(folder.glob("cases/*.npz"))) == 48
    assert len((folder / "index.csv").read_text().splitlines()) == 49
    assert "48 cases (48 generated now)" in result.output
    again = CliRunner().invoke(
        main, ["data", "generate", "phantom", "--preset", "tiny", "--out", str(tmp_path)]
    )
    assert "(0 generated now)" in again.output
    # the old spelling works for one release, with a deprecation notice
    old = CliRunner().invoke(main, ["data", "phantom", "--preset", "tiny", "--out", str(tmp_path)])
    assert old.exit_code == 0 and "(0 generated now)" in old.output
    assert "deprecated" in old.output.lower()


def test_data_generate_refuses_a_dataset_read_from_disk(tmp_path):
    result = CliRunner().invoke(main, ["data", "generate", "folder", "--out", str(tmp_path)])
    assert result.exit_code == 1
    assert "folder is read from a folder, not generated: nothing to do" in result.output


def test_data_show_writes_a_png(tmp_path, monkeypatch):
    monkeypatch.setenv("CTBENCH_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "case.png"
    result = CliRunner().invoke(
        main, ["data", "show", "--preset", "tiny", "--index", "2", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    # axial, coronal, sagittal and the report: four panels with content
    from tests.figure_checks import assert_figure

    assert_figure(out, (17, 6), (1, 4))


def test_data_show_rejects_bad_arguments(tmp_path, monkeypatch):
    monkeypatch.setenv("CTBENCH_CACHE_DIR", str(tmp_path / "cache"))
    result = CliRunner().invoke(main, ["data", "show", "--preset", "huge"])
    assert result.exit_code == 1 and "unknown phantom preset 'huge'" in result.output
    result = CliRunner().invoke(main, ["data", "show", "--preset", "tiny", "--index", "99"])
    assert result.exit_code == 2 and "has 24 cases" in result.output
    result = CliRunner().invoke(main, ["data", "show", "--dataset", "phantm"])
    assert result.exit_code == 2 and "Did you mean 'phantom'?" in result.output


def test_data_check_lists_every_bad_case_and_fails(tmp_path, monkeypatch, tiny_phantom):
    import shutil

    cache = tmp_path / "cache"
    folder = cache / tiny_phantom.folder.name
    shutil.copytree(tiny_phantom.folder, folder, ignore=shutil.ignore_patterns("volumes-*"))
    monkeypatch.setenv("CTBENCH_CACHE_DIR", str(cache))
    good = CliRunner().invoke(main, ["data", "check", "phantom", "--preset", "tiny", "--quiet"])
    assert good.exit_code == 0 and "48 cases, 0 with problems" in good.output, good.output
    (folder / "cases" / "val00003.npz").write_bytes(b"truncated")
    (folder / "cases" / "tst00001.npz").write_bytes(b"")
    bad = CliRunner().invoke(main, ["data", "check", "phantom", "--preset", "tiny", "--quiet"])
    assert bad.exit_code == 1, bad.output
    lines = bad.output.splitlines()
    assert any(line.startswith("valid val00003:") and "val00003.npz" in line for line in lines)
    assert any(line.startswith("test tst00001:") for line in lines)
    assert "48 cases, 2 with problems" in bad.output and "Traceback" not in bad.output
    rooted = CliRunner().invoke(
        main, ["data", "check", "phantom", "--preset", "tiny", "--data-root", str(tmp_path)]
    )
    assert rooted.exit_code == 2 and "takes no --data-root" in rooted.output
