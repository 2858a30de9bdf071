"""``edgekit run``: the on-device runtime -- a bundle on a stream of samples, with drift reports over MQTT."""

from __future__ import annotations

import json
import logging
import signal
import socket
import sys

import click

log = logging.getLogger("edgekit.runtime")


def _default_state_dir(device_id: str):
    from platformdirs import user_state_path

    return user_state_path("edgekit") / device_id


def _telemetry(mqtt, state_dir, fleet, device_id, tls, auth, protocol, on_command):
    from edgekit.runtime.outbox import Outbox
    from edgekit.runtime.broker import BrokerConfig
    from edgekit.runtime.telemetry import Telemetry

    ca_file, cert_file, key_file = tls
    username, password = auth
    broker = BrokerConfig.from_url(mqtt, username=username, password=password, ca_file=ca_file,
                                   cert_file=cert_file, key_file=key_file, protocol=protocol)
    state_dir.mkdir(parents=True, exist_ok=True)
    outbox = Outbox(state_dir / "outbox.sqlite")
    return Telemetry(broker, outbox, fleet=fleet, device_id=device_id, on_command=on_command), outbox


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt  # SIGTERM (systemd stop) ends the loop like Ctrl-C


@click.command("run")
@click.argument("bundle_path", metavar="BUNDLE", type=click.Path(exists=True))
@click.option("--source", required=True,
              help="replay:FILE[:RECORDING], synth:SCENARIO[:seed=..,duration=..], stdin[:csv] or "
                   "driver:module:Class.")
@click.option("--mqtt", metavar="URL", help="Broker for telemetry: mqtt://[user:pass@]host[:port] or mqtts://...")
@click.option("--device-id", default=None, help="This device's id in topics and reports [default: host name].")
@click.option("--fleet", default="default", show_default=True, help="Fleet name in topics.")
@click.option("--state-dir", type=click.Path(file_okay=False),
              help="Outbox and detector state, kept across restarts [default: the user state dir / DEVICE_ID].")
@click.option("--engine", type=click.Choice(["onnxruntime", "litert"]), help="Inference library [default: from "
              "the bundle: its smallest precision on the target's first engine].")
@click.option("--artifact", help="Run this artifact file of the bundle.")
@click.option("--realtime", is_flag=True, help="Pace a replayed or synthetic source at its sample rate.")
@click.option("--sample-rate", type=float, help="Sample rate of stdin/.npy/.csv sources [default: the model's].")
@click.option("--max-windows", type=click.IntRange(min=1), help="Stop after this many windows.")
@click.option("--report-every", type=click.IntRange(min=1), help="Drift report every N windows.")
@click.option("--report-seconds", type=float, help="Drift report every T seconds of signal (instead of windows).")
@click.option("--smoothing", type=click.IntRange(min=1), default=5, show_default=True,
              help="Majority vote over the last k windows.")
@click.option("--pred-every", type=click.IntRange(min=0), default=0, show_default=True,
              help="Publish every n-th prediction over MQTT (0: only when the decision changes).")
@click.option("--quiet", is_flag=True, help="Print only reports on stdout, not a line per window.")
@click.option("--mqtt-ca", type=click.Path(exists=True, dir_okay=False), help="CA certificate for mqtts://.")
@click.option("--mqtt-cert", type=click.Path(exists=True, dir_okay=False), help="Client certificate (mTLS).")
@click.option("--mqtt-key", type=click.Path(exists=True, dir_okay=False), help="Client private key (mTLS).")
@click.option("--mqtt-username", envvar="EDGEKIT_MQTT_USERNAME", help="Broker user [env EDGEKIT_MQTT_USERNAME].")
@click.option("--mqtt-password", envvar="EDGEKIT_MQTT_PASSWORD", help="Broker password [env EDGEKIT_MQTT_PASSWORD].")
@click.option("--mqtt-protocol", type=click.Choice(["auto", "5", "3.1.1"]), default="auto", show_default=True)
@click.option("--flush-timeout", type=float, default=10.0, show_default=True,
              help="At the end of a finite source, wait this long for the broker to acknowledge everything; "
                   "what is left stays in the outbox and is sent at the next start.")
@click.option("--connect-timeout", type=float, default=5.0, show_default=True,
              help="Wait this long for the broker at start; a TLS or login failure is an error, an unreachable "
                   "broker is not (reports wait in the outbox).")
@click.option("--pubkey", type=click.Path(exists=True, dir_okay=False),
              help="Refuse the bundle unless it is signed by this ed25519 public key.")
@click.option("-v", "--verbose", count=True, help="More log lines on stderr (-vv for debug).")
def run(bundle_path, source, mqtt, device_id, fleet, state_dir, engine, artifact, realtime, sample_rate,
        max_windows, report_every, report_seconds, smoothing, pred_every, quiet, mqtt_ca, mqtt_cert, mqtt_key,
        mqtt_username, mqtt_password, mqtt_protocol, flush_timeout, connect_timeout, pubkey, verbose) -> None:
    """Run BUNDLE on a stream: windows -> features -> model -> smoothed decision, one JSON line per window on
    stdout, drift and data-quality reports every N windows, all of it over MQTT when --mqtt is given.

    Nothing is lost: every MQTT message is written to an on-disk outbox first and deleted only when the broker
    acknowledges it. A finite source ends with exit 0 once its last report is delivered or in the outbox.
    """
    from pathlib import Path

    from edgekit.bundle import open_bundle
    from edgekit.runtime.pipeline import Runtime, RuntimeOptions, describe
    from edgekit.runtime.sources import open_source

    logging.basicConfig(level=[logging.WARNING, logging.INFO, logging.DEBUG][min(verbose, 2)], stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    device_id = device_id or socket.gethostname()
    state = Path(state_dir) if state_dir else _default_state_dir(device_id)
    bundle = open_bundle(bundle_path, trust="verify" if pubkey else "hashes", public_key=pubkey)
    spec_rate = float(bundle.manifest["feature_spec"]["sample_rate"])
    stream = open_source(source, sample_rate=sample_rate or spec_rate, realtime=realtime)

    def emit(record: dict) -> None:
        if not quiet or "report" in record:
            click.echo(json.dumps(record, separators=(",", ":")))

    options = RuntimeOptions(engine=engine, artifact=artifact, smoothing=smoothing, report_every=report_every,
                             report_seconds=report_seconds, pred_every=pred_every)
    runtime = Runtime(bundle, options, state_dir=state, emit=emit)
    telemetry = outbox = None
    if mqtt:
        # Commands arrive on the MQTT thread; the runtime's queue hands them to the loop's thread.
        telemetry, outbox = _telemetry(mqtt, state, fleet, device_id, (mqtt_ca, mqtt_cert, mqtt_key),
                               (mqtt_username, mqtt_password), mqtt_protocol, runtime.commands.put)
        runtime.telemetry = telemetry
    info = describe(runtime)
    log.info("running %s on %s", info, stream.description)
    # On SIGTERM, as on Ctrl-C, the detector state is saved and the outbox given a last chance to drain.
    previous_handler = signal.signal(signal.SIGTERM, _interrupt)
    if telemetry is not None:
        telemetry.start()
        # A wrong CA or refused credentials are errors now; an unreachable broker is not (the outbox keeps all).
        if not telemetry.wait_connected(connect_timeout):
            log.warning("broker %s not reachable yet; reports wait in the outbox", mqtt)
    interrupted = False
    try:
        summary = runtime.run(stream, max_windows)
    except KeyboardInterrupt:
        interrupted = True
        summary = {"windows": runtime.windows, "reports": runtime.reports}
        runtime.save_state()
    finally:
        signal.signal(signal.SIGTERM, previous_handler)
        if telemetry is not None:
            delivered = telemetry.flush(0 if interrupted else flush_timeout)
            counters = telemetry.counters()
            telemetry.stop()
            outbox.close()
            if not delivered:
                log.warning("%d message(s) not yet acknowledged; they stay in %s and are sent at the next start",
                            counters.get("pending", 0), state / "outbox.sqlite")
    log.info("done: %s", summary)
    if interrupted:
        raise SystemExit(130)

