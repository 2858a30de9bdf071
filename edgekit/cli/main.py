"""The ``edgekit`` command. Each command group lives in its own module; this one only assembles them."""

from __future__ import annotations

import sys

import click

from edgekit import __version__
from edgekit.cli import data, export, features, targets, train
from edgekit.cli import run as run_cli
from edgekit.cli.bench import bench
from edgekit.cli.emulate import emulate
from edgekit.cli.flash import flash
from edgekit.cli.bundle import bundle, keys
from edgekit.errors import EdgekitError

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class EdgekitGroup(click.Group):
    """Turns every EdgekitError raised by a command into ``Error: ...`` and exit status 1, never a traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except EdgekitError as exc:
            raise click.ClickException(str(exc)) from exc


@click.group(cls=EdgekitGroup, context_settings=CONTEXT_SETTINGS)
@click.version_option(__version__, "-V", "--version", prog_name="edgekit")
def cli() -> None:
    """Condition-monitoring models from training to embedded hardware.

    \b
    Typical flow:
      edgekit data synth --out data/synth          make a dataset (or: edgekit data import cwru ...)
      edgekit features extract data/synth          the features the device will compute
      edgekit targets list                         the boards edgekit can export for
      edgekit train data/synth --model cnn1d --out run
      edgekit export run --target rpi4 --out dist/rpi4
      edgekit run dist/rpi4 --source synth:gain_change --mqtt mqtt://localhost    the device loop
      edgekit emulate dist/rpi4 --source synth:normal:duration=2                  under qemu-aarch64
      edgekit flash dist/rpi4 --to ssh://pi@raspberrypi.local                     onto a real board
    """


cli.add_command(targets.targets)
cli.add_command(data.data)
cli.add_command(features.features)
cli.add_command(train.train)
cli.add_command(train.evaluate)
cli.add_command(export.export)
cli.add_command(bundle)
cli.add_command(keys)
cli.add_command(run_cli.run)
cli.add_command(bench)
cli.add_command(flash)
cli.add_command(emulate)


def main() -> None:
    cli(prog_name="edgekit")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
