"""The command line: version, help without heavy imports, plugin listing, name validation."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import metadata

import click
import ctbench
import pytest
from click.testing import CliRunner
from ctbench.cli import main
from ctbench.cli.commands import PluginName
from ctbench.core.hookspecs import KINDS


def test_version_is_the_distribution_version():
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"ctbench, version {metadata.version('ctbench')}"
    assert ctbench.__version__ == metadata.version("ctbench")


def test_help_imports_neither_torch_nor_any_plugin(example_plugin):
    probe = (
        "import sys\n"
        "from ctbench.cli import main\n"
        "try:\n"
        "    main(['--help'])\n"
        "except SystemExit as exit:\n"
        "    assert exit.code == 0, exit.code\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'torchvision', "
        "'ctbench_example_plugin') or m.startswith('ctbench.plugins'))\n"
        "print('HEAVY', heavy)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        env=example_plugin.env(),
        check=True,
    )
    assert "Commands:" in result.stdout and "plugins" in result.stdout
    assert "HEAVY []" in result.stdout


def test_plugins_json_lists_every_kind(example_plugin):
    result = CliRunner().invoke(main, ["plugins", "--json"])
    assert result.exit_code == 0, result.output
    listing = json.loads(result.output)
    assert list(listing) == list(KINDS)
    for items in listing.values():
        for item in items:
            assert set(item) == {"name", "provider", "description"}
    assert [i["name"] for i in listing["architectures"]].count("example-tinynet") == 1


def test_plugins_table_shows_kind_name_provider_description(example_plugin):
    result = CliRunner().invoke(main, ["plugins"])
    assert result.exit_code == 0, result.output
    header = result.output.splitlines()[0].split()
    assert header == ["kind", "name", "provider", "description"]
    row = next(line for line in result.output.splitlines() if "example-tinynet" in line)
    assert row.split()[:3] == ["architectures", "example-tinynet", "ctbench-example-plugin"]


def test_plugin_names_are_validated_when_a_command_runs(example_plugin):
    @click.command()
    @click.option("--arch", type=PluginName("architectures"), required=True)
    def probe(arch):
        click.echo(f"ARCH={arch}")

    ok = CliRunner().invoke(probe, ["--arch", "Example_TinyNet"])
    assert ok.exit_code == 0 and ok.output.strip() == "ARCH=example-tinynet"
    bad = CliRunner().invoke(probe, ["--arch", "example-tinynt"])
    assert bad.exit_code == 2
    assert "unknown architecture 'example-tinynt'" in bad.output
    assert "Did you mean 'example-tinynet'?" in bad.output


@pytest.mark.parametrize("args", [["--help"], ["plugins", "--help"]])
def test_help_pages_exit_cleanly(args):
    assert CliRunner().invoke(main, args).exit_code == 0
