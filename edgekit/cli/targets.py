"""``edgekit targets``: the boards edgekit can export for."""

from __future__ import annotations

import click

from edgekit.cli.output import echo_json, echo_table, format_bytes, format_option
from edgekit.targets import ENV_VAR, get_profile, load_profiles

targets_dir_option = click.option(
    "--targets-dir", type=click.Path(file_okay=False), envvar=None,
    help=f"A folder of your own board profiles (*.toml), added to the shipped ones and ${ENV_VAR}.",
)


@click.group()
def targets() -> None:
    """List and inspect target profiles (one TOML file per board)."""


@targets.command("list")
@targets_dir_option
@format_option
def list_targets(targets_dir: str | None, fmt: str) -> None:
    """List every known target profile."""
    profiles = load_profiles(targets_dir)
    if fmt == "json":
        echo_json([p.to_dict() | {"source": p.source} for p in profiles.values()])
        return
    rows = [
        (p.name, p.cpu, p.arch, p.cores, format_bytes(p.ram_bytes), format_bytes(p.flash_bytes),
         ", ".join(p.formats), p.emulation.mode)
        for p in profiles.values()
    ]
    echo_table(rows, ["name", "cpu", "arch", "cores", "ram", "flash", "formats", "emulation"])


@targets.command("show")
@click.argument("name")
@targets_dir_option
@format_option
def show_target(name: str, targets_dir: str | None, fmt: str) -> None:
    """Show one target profile in full."""
    profile = get_profile(name, targets_dir)
    data = profile.to_dict() | {"source": profile.source}
    if fmt == "json":
        echo_json(data)
        return
    rows = []
    for key, value in data.items():
        if isinstance(value, dict):
            rows += [(f"{key}.{k}", _show(v)) for k, v in value.items()]
        else:
            rows.append((key, _show(value)))
    echo_table(rows, ["field", "value"])


def _show(value) -> str:
    if isinstance(value, (list, tuple)):
        return ", ".join(map(str, value))
    return "" if value is None else str(value)
