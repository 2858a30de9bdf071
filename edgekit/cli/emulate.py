"""``edgekit emulate``: run a bundle as its board would, under QEMU user mode, and compare it with a host run."""

from __future__ import annotations

import click

from edgekit.cli.output import echo_json, echo_table, format_option


@click.command("emulate")
@click.argument("bundle_path", metavar="BUNDLE", type=click.Path(exists=True))
@click.option("--target", help="Emulate this target profile [default: the bundle's target].")
@click.option("--source", required=True, help="Samples for both runs: replay:FILE[:RECORDING] or "
                                              "synth:SCENARIO[:seed=..,duration=..] (not stdin: it is read twice).")
@click.option("--engine", type=click.Choice(["onnxruntime", "litert"]),
              help="Inference library [default: as edgekit run picks it from the bundle].")
@click.option("--mqtt", metavar="URL", help="Broker for the emulated run's telemetry (the host's network: "
                                            "mqtt://127.0.0.1:1883 is a broker on this machine).")
@click.option("--device-id", help="The emulated device's id in MQTT topics [default: emulated-TARGET].")
@click.option("--max-windows", type=click.IntRange(min=1), help="Stop both runs after this many windows.")
@click.option("--tolerance", type=click.FloatRange(min=0), default=0.02, show_default=True,
              help="Largest confidence difference allowed; the anomaly score may differ by this fraction of "
                   "its value (or by this much below 1).")
@click.option("--rebuild", is_flag=True, help="Build the emulated userland again instead of using the cache.")
@click.option("--cache-dir", type=click.Path(file_okay=False),
              help="Keep emulated userlands here [default: $EDGEKIT_CACHE_DIR/emulation or the user cache dir].")
@format_option
def emulate(bundle_path, target, source, engine, mqtt, device_id, max_windows, tolerance, rebuild, cache_dir,
            fmt) -> None:
    """Run BUNDLE under QEMU user-mode emulation of its target (a Debian userland for the target's
    architecture and Python, built once and cached) and on this machine, on the same source; compare window by window.

    Passes when every window has the same class and scores within --tolerance; otherwise prints the comparison
    and exits 1. The first run builds the userland (about 1.5 minutes, root or fakeroot, network to a Debian mirror
    and PyPI) and compiles numba's kernels emulated (about 2 minutes); later runs reuse both.

    \b
    Example:
      edgekit emulate bundles/cnn1d-rpi4 --source synth:normal:duration=2
    """
    from edgekit.deploy.emulate import emulate as run_emulation
    from edgekit.deploy.emulate import summary_rows
    from edgekit.deploy.rootfs import EmulationError

    def progress(message: str) -> None:
        click.echo(f"emulate: {message}", err=True)

    result = run_emulation(bundle_path, source, target=target, engine=engine, max_windows=max_windows, mqtt=mqtt,
                           device_id=device_id, tolerance=tolerance, rebuild=rebuild, cache_dir=cache_dir,
                           progress=progress)
    if fmt == "json":
        echo_json(result.to_dict())
    else:
        echo_table(summary_rows(result), ["", "emulated vs host"])
        for m in result.comparison.mismatches:
            click.echo(f"  window {m['window']}: host {m['host_class']} {m['host_confidence']} "
                       f"{m['host_anomaly']}, emulated {m['emulated_class']} {m['emulated_confidence']} "
                       f"{m['emulated_anomaly']}")
    if not result.passed:
        raise EmulationError("the emulated run differs from the host run: " + "; ".join(result.comparison.problems))
