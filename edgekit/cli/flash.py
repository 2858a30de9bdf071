"""``edgekit flash``: install a bundle on a Linux board over SSH (thin over ``edgekit.deploy.flash``)."""

from __future__ import annotations

import click

from edgekit.cli.output import echo_json, echo_table, format_option


@click.command()
@click.argument("bundle_path", metavar="BUNDLE")
@click.option("--to", "to", required=True, metavar="ssh://USER@HOST[:PORT][/PATH]",
              help="The device and its edgekit folder [default PATH: ~/edgekit].")
@click.option("--identity", "-i", metavar="KEY", help="Private key for the login (ssh -i).")
@click.option("--known-hosts", metavar="FILE", help="Known-hosts file to use instead of ~/.ssh/known_hosts.")
@click.option("--service/--no-service", default=True, show_default=True,
              help="Install the systemd unit (needs root or passwordless sudo on the device).")
@click.option("--keep", type=click.IntRange(min=1), default=3, show_default=True,
              help="Releases to keep on the device, the new one included.")
@click.option("--dry-run", is_flag=True, help="Print the plan; build, copy and change nothing.")
@format_option
def flash(bundle_path: str, to: str, identity: str | None, known_hosts: str | None, service: bool, keep: int,
          dry_run: bool, fmt: str) -> None:
    """Install BUNDLE on a Linux board: offline wheelhouse, venv, hash check, systemd unit, atomic switch.

    The device needs SSH and the Python version of the bundle's target profile, but no network. A failed
    flash leaves the previous release running.

    \b
    Example:
      edgekit flash bundle-rpi4 --to ssh://pi@raspberrypi.local --identity ~/.ssh/id_ed25519
    """
    from edgekit.deploy.flash import plan_flash, run_flash

    plan = plan_flash(bundle_path, to, identity=identity, known_hosts=known_hosts, service=service, keep=keep)
    if dry_run:
        if fmt == "json":
            echo_json({**plan.to_dict(), "dry_run": True})
            return
        click.echo(f"flash plan for {plan.bundle} ({plan.profile}) to {plan.target.display} "
                   "(dry run: nothing is built, copied or changed)")
        for number, step in enumerate(plan.steps(), 1):
            click.echo(f"  {number}. {step}")
        click.echo(f"A failure before step {len(plan.steps())} removes the new release; "
                   f"{plan.remote_path}/current stays as it is.")
        return
    result = run_flash(plan, progress=lambda message: click.echo(message, err=True))
    if fmt == "json":
        echo_json(result.to_dict())
        return
    echo_table([
        ("device", result.device),
        ("release", f"{result.path}/releases/{result.release}"),
        ("current", f"{result.current} -> releases/{result.release}"),
        ("previous", result.previous or "(none)"),
        ("python", result.python),
        ("verified", f"{result.verified_files} files match the manifest" if result.verified_files is not None
         else "yes"),
        ("service", result.service),
        ("removed", ", ".join(result.removed) or "(none)"),
        ("wheelhouse", f"{result.wheelhouse} ({'cached' if result.wheelhouse_cached else 'downloaded'})"),
    ], ["field", "value"])
    for note in result.notes:
        click.echo(f"note: {note}")
