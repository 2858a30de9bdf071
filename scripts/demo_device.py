"""The device half of ``make demo``: run an exported bundle on a drifting machine, telemetry to a local broker.

Starts a throw-away mosquitto on 127.0.0.1 (when the mosquitto program is installed; otherwise the runtime runs
without MQTT and says so), subscribes to the device's topics, runs ``edgekit run`` on the synthetic
``gain_change`` scenario (the sensor's sensitivity steps x1.5 half-way through) and prints what the fleet side
received: how many reports, whether any was lost, and when drift was flagged compared with when it happened.

    python scripts/demo_device.py BUNDLE [--out DIR] [--scenario gain_change] [--duration 60]
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_broker(folder: Path) -> tuple[subprocess.Popen, int] | None:
    binary = shutil.which("mosquitto") or next((p for p in ("/usr/sbin/mosquitto",) if Path(p).exists()), None)
    if binary is None:
        return None
    port = free_port()
    config = folder / "mosquitto.conf"
    config.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\n")
    broker = subprocess.Popen([binary, "-c", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return broker, port
        except OSError:
            time.sleep(0.05)
    broker.kill()
    return None


def subscribe(port: int, messages: list, ready: threading.Event):
    import paho.mqtt.client as mqtt

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="demo-fleet", protocol=mqtt.MQTTv5)
    client.on_connect = lambda c, u, f, rc, p: c.subscribe("edgekit/demo/#", qos=1)
    client.on_subscribe = lambda *args: ready.set()
    client.on_message = lambda c, u, m: messages.append((m.topic.rsplit("/", 1)[-1], json.loads(m.payload)))
    client.connect("127.0.0.1", port)
    client.loop_start()
    return client


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle")
    parser.add_argument("--out", default="demo-out/device")
    parser.add_argument("--scenario", default="gain_change")
    parser.add_argument("--duration", type=float, default=60.0)
    args = parser.parse_args()
    out = Path(args.out)
    if out.exists():
        shutil.rmtree(out)  # a fresh device: no outbox or detector state from an earlier demo
    out.mkdir(parents=True)
    command = [sys.executable, "-m", "edgekit.cli.main", "run", args.bundle, "--source",
               f"synth:{args.scenario}:duration={args.duration:g},change_at=0.5", "--device-id", "pi-001",
               "--fleet", "demo", "--state-dir", str(out / "state"), "--quiet"]
    messages: list = []
    with tempfile.TemporaryDirectory() as tmp:
        started = start_broker(Path(tmp))
        client = None
        if started is None:
            print("mosquitto is not installed: running without MQTT (apt-get install mosquitto to see telemetry)")
        else:
            broker, port = started
            ready = threading.Event()
            client = subscribe(port, messages, ready)
            ready.wait(10)
            command += ["--mqtt", f"mqtt://127.0.0.1:{port}"]
        print("$", " ".join(command[2:]).replace("edgekit.cli.main", "edgekit"))
        done = subprocess.run(command, stdout=subprocess.PIPE, text=True)
        (out / "reports.jsonl").write_text(done.stdout)
        if client is not None:
            time.sleep(1.0)  # the last acknowledged messages are on their way to the subscriber
            client.loop_stop()
            client.disconnect()
            broker.terminate()
            broker.wait(10)
    if done.returncode != 0:
        return done.returncode
    reports = [json.loads(line) for line in done.stdout.splitlines()]
    hop_s = 512 / 12000.0
    change_s = args.duration / 2
    flagged = next((r for r in reports if r["drift_detected"]), None)
    print(f"{len(reports)} drift reports written to {out / 'reports.jsonl'}")
    if flagged is None:
        print(f"no drift flagged (the {args.scenario} change happened at {change_s:g} s)")
    else:
        at = (flagged["first_window"] + flagged["windows"]) * hop_s
        print(f"drift flagged in report {flagged['drift']['report']} at {at:.1f} s of signal; the "
              f"{args.scenario} change happened at {change_s:g} s; worst features: "
              + ", ".join(w[0] for w in flagged["drift"]["worst"]))
    if messages:
        kinds = {}
        for kind, _ in messages:
            kinds[kind] = kinds.get(kind, 0) + 1
        seqs = sorted({m["seq"] for _, m in messages if not m.get("presence")})
        print(f"MQTT: received {dict(sorted(kinds.items()))}; sequence numbers 0..{seqs[-1]} "
              f"{'complete' if seqs == list(range(seqs[-1] + 1)) else 'WITH GAPS'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
