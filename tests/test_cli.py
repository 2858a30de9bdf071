"""The command line: help everywhere, a version, and user mistakes as one-line errors without tracebacks."""

from __future__ import annotations

import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from edgekit import __version__
from edgekit.cli.main import cli


def all_commands(group: click.Group, prefix=()):
    for name, command in group.commands.items():
        path = prefix + (name,)
        yield path, command
        if isinstance(command, click.Group):
            yield from all_commands(command, path)


COMMANDS = list(all_commands(cli))


@pytest.mark.parametrize("path", [p for p, _ in COMMANDS], ids=" ".join)
def test_every_command_has_help(path):
    command = dict(COMMANDS)[path]
    assert command.help and command.help.strip(), f"edgekit {' '.join(path)} has no help text"
    result = CliRunner().invoke(cli, [*path, "-h"], prog_name="edgekit")
    assert result.exit_code == 0 and "Usage: edgekit" in result.output


def test_version_and_top_level_help():
    runner = CliRunner()
    assert runner.invoke(cli, ["--version"]).output == f"edgekit, version {__version__}\n"
    top = runner.invoke(cli, ["-h"])
    assert top.exit_code == 0
    for group in ("data", "features", "targets"):
        assert group in top.output


HEAVY = ("torch", "scipy", "onnx", "onnxruntime", "matplotlib", "numba", "cryptography", "tqdm", "mlflow",
         "litert_torch", "ai_edge_litert", "tensorflow")


def test_edgekit_help_starts_without_heavy_backends():
    """`edgekit -h` runs the real entry point and imports none of the backends (rule 7: heavy imports are local)."""
    code = ("import runpy, sys\n"
            "sys.argv = ['edgekit', '-h']\n"
            "try:\n    runpy.run_module('edgekit.cli.main', run_name='__main__')\n"
            "except SystemExit as exit:\n    assert exit.code in (0, None), exit.code\n"
            f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "Usage: edgekit" in out and out.strip().endswith("[]")


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["targets", "show", "rpi5"], "Error: unknown target 'rpi5'; known targets: cortex-m4, cortex-m7, gpu-server"),
        (["data", "info", "."], "Error: . is not an edgekit dataset (no dataset.json)"),
        (["features", "list", "--bearing", "6205"], "Error: --bearing and --rpm go together"),
        (["features", "list", "--bearing", "6999", "--rpm", "1000"], "Error: unknown bearing '6999'; known: 6203, 6205"),
    ],
)
def test_user_mistakes_are_one_line_errors(args, expected):
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1
    assert result.output.startswith(expected), result.output
    assert isinstance(result.exception, SystemExit) and len(result.output.strip().splitlines()) == 1
