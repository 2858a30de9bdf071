"""``edgekit export``: a trained run -> verified artifacts for a board, in a (signed) bundle."""

from __future__ import annotations

import os
import sys

import click

from edgekit.cli.output import echo_json, format_option
from edgekit.cli.targets import targets_dir_option


@click.command("export")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--target", required=True, help="Target profile name (see: edgekit targets list).")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Bundle folder to write.")
@click.option("--archive", is_flag=True, help="Also write OUT.tar.gz.")
@click.option("--sign-key", type=click.Path(exists=True, dir_okay=False),
              help="ed25519 private key (from: edgekit keys generate) to sign the manifest.")
@targets_dir_option
@format_option
def export(run_dir, target, out, archive, sign_key, targets_dir, fmt) -> None:
    """Export RUN_DIR for a target: ONNX/TFLite/TensorRT artifacts, each checked against its reference and the
    board's budgets, written with manifest.json and report.md."""
    from edgekit.export.pipeline import export_run
    from edgekit.export.report import report_markdown

    def say(message: str) -> None:
        if fmt != "json":
            click.echo(f"- {message}", err=True)

    report = export_run(run_dir, target, out, targets_dir=targets_dir, archive=archive,
                        sign_key=_signing_key(sign_key), progress=say)
    if fmt == "json":
        echo_json(report)
        return
    markdown = report_markdown(report)
    click.echo(markdown.split("\n## ")[0].rstrip())
    click.echo(f"\nbundle written to {report['bundle']} (full report in report.md)")


def _signing_key(path):
    """The key file, or for an encrypted one with no $EDGEKIT_SIGN_KEY_PASSWORD, the key unlocked at a prompt."""
    from edgekit.signing import PASSWORD_ENV, is_encrypted_private_key, load_private_key

    if path is None or not is_encrypted_private_key(path) or os.environ.get(PASSWORD_ENV) or not is_interactive():
        return path  # the library loads it, or says which password is missing
    password = click.prompt(f"Password for {path}", hide_input=True, err=True)
    return load_private_key(path, password.encode())


def is_interactive() -> bool:
    return sys.stdin.isatty()
