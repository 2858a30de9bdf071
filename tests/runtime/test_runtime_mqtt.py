"""``edgekit run`` against a real mosquitto: outages, kill -9, commands, TLS -- nothing lost.

Every wait is a deadline for something to happen, never an assertion about how fast it happened.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from edgekit import protocol

pytest.importorskip("paho.mqtt.client", reason="paho-mqtt is not installed: pip install 'edgekit[runtime]'")


def edgekit_run(bundle, state, url, *args, device="dev1"):
    command = [sys.executable, "-m", "edgekit.cli.main", "run", str(bundle), "--mqtt", url, "--device-id", device,
               "--fleet", "f1", "--state-dir", str(state), "--quiet", "--connect-timeout", "2", *map(str, args)]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(process, timeout=120):
    out, err = process.communicate(timeout=timeout)
    assert process.returncode == 0, err[-3000:]
    return out, err


def pending_in_outbox(state) -> int:
    with sqlite3.connect(state / "outbox.sqlite") as db:
        return db.execute("SELECT COUNT(*) FROM messages").fetchone()[0]


def report_seqs(sub) -> list[int]:
    """Sequence numbers of every report (drift, pred, ...): one counter per device, so no gaps allowed."""
    return [m["seq"] for m in sub.received() if not m.get("presence")]


def test_outage_and_kill_9_lose_no_report(cnn_bundle, mosquitto, subscriber, tmp_path):
    broker = mosquitto()
    sub = subscriber(broker.port, "edgekit/f1/dev1/#")
    state = tmp_path / "state"
    runtime = edgekit_run(cnn_bundle, state, broker.url, "--source", "synth:normal:duration=20", "--realtime",
                          "--report-every", "6")
    # 1. The broker goes away mid-stream and comes back while the device keeps measuring.
    assert sub.wait_for(lambda s: len(s.received("drift")) >= 3, timeout=60)
    broker.stop()
    time.sleep(2.0)
    broker.start()
    assert sub.wait_for(lambda s: len(s.received("drift")) >= 12, timeout=60)
    # 2. Down again, and the device loses power (kill -9) with reports still in its outbox.
    broker.stop()
    time.sleep(1.5)
    runtime.send_signal(signal.SIGKILL)
    runtime.wait(30)
    left = pending_in_outbox(state)
    assert left > 0
    # 3. Power and broker back: the restarted runtime sends the old reports and its own, then exits 0.
    broker.start()
    finish(edgekit_run(cnn_bundle, state, broker.url, "--source", "synth:normal:duration=2", "--report-every", "6"))
    assert pending_in_outbox(state) == 0
    assert sub.wait_for(lambda s: sorted(set(report_seqs(s))) == list(range(max(report_seqs(s)) + 1)), timeout=30)
    # QoS 1 may deliver a report twice; the sequence number removes the copies.
    unique = {protocol.dedup_key(m): m for m in sub.received("drift")}
    assert len(unique) >= 12 + 1
    # Window numbering continued across the restart from the last saved state.
    firsts = sorted(m["first_window"] for m in unique.values())
    assert firsts[-1] > firsts[0]
    # One outbox, so one epoch, across the outage, the kill and the restart.
    (epoch,) = {m["epoch"] for m in sub.received()}
    # 4. The outbox is lost (a new SD card): numbering restarts at 0 under a new epoch, and a receiver that drops
    # copies by dedup_key keeps every new report.
    for leftover in state.glob("outbox.sqlite*"):
        leftover.unlink()
    before = len({protocol.dedup_key(m) for m in sub.received() if not m.get("presence")})
    finish(edgekit_run(cnn_bundle, state, broker.url, "--source", "synth:normal:duration=2", "--report-every", "6"))
    assert sub.wait_for(lambda s: any(m.get("state") == "offline" and m["epoch"] != epoch for m in s.received()),
                        timeout=30)
    fresh = [m for m in sub.received() if not m.get("presence") and m["epoch"] != epoch]
    fresh_seqs = sorted({m["seq"] for m in fresh})
    assert fresh_seqs and fresh_seqs == list(range(len(fresh_seqs)))
    assert len({protocol.dedup_key(m) for m in sub.received() if not m.get("presence")}) == before + len(fresh_seqs)


def test_commands_over_mqtt_change_the_interval_and_upload_windows(cnn_bundle, mosquitto, subscriber, tmp_path):
    import paho.mqtt.client as mqtt

    broker = mosquitto()
    sub = subscriber(broker.port, "edgekit/f1/dev1/#")
    runtime = edgekit_run(cnn_bundle, tmp_path / "state", broker.url, "--source", "synth:normal:duration=12",
                          "--realtime", "--report-every", "20")
    assert sub.wait_for(lambda s: len(s.received("drift")) >= 1, timeout=60)  # windows to upload exist
    assert any(m.get("state") == "online" for m in sub.received("status"))
    fleet = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="fleet", protocol=mqtt.MQTTv5)
    fleet.connect("127.0.0.1", broker.port)
    fleet.loop_start()
    topic = protocol.topic("f1", "dev1", "cmd")
    for command in ({"name": "set_report_interval", "args": {"windows": 4}},
                    {"name": "upload_windows", "args": {"count": 2, "only_drifted": False}}):
        fleet.publish(topic, json.dumps(command), qos=1).wait_for_publish(10)
    fleet.loop_stop()
    fleet.disconnect()
    finish(runtime)
    assert sub.wait_for(lambda s: len(s.received("upload")) == 2, timeout=30)
    sizes = [m["windows"] for m in sub.received("drift")]
    assert sizes[0] == 20 and 4 in sizes and set(sizes[sizes.index(4):-1]) == {4}
    assert all(len(m["samples"]) > 1000 and m["sample_rate"] == 12000.0 for m in sub.received("upload"))
    assert any(m.get("state") == "offline" for m in sub.received("status"))


def test_wrong_ca_is_a_clear_error_and_an_acl_refusal_is_logged(cnn_bundle, mosquitto, certificates, tmp_path):
    tls_broker = mosquitto(tls=certificates)
    run = subprocess.run([sys.executable, "-m", "edgekit.cli.main", "run", str(cnn_bundle), "--source",
                          "synth:normal:duration=1", "--mqtt", f"mqtts://localhost:{tls_broker.port}",
                          "--mqtt-ca", str(certificates.other_ca), "--state-dir", str(tmp_path / "s1")],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 1 and "Error: TLS handshake" in run.stderr and "--mqtt-ca" in run.stderr
    assert "Traceback" not in run.stderr
    acl = "user dev1\ntopic readwrite edgekit/f1/dev1/#\n"
    broker = mosquitto(passwords={"dev1": "pw"}, acl=acl)
    # dev1's credentials, but it claims to be dev2: every report is refused, logged and kept as a dead letter.
    done = subprocess.run([sys.executable, "-m", "edgekit.cli.main", "run", str(cnn_bundle), "--source",
                           "synth:normal:duration=1", "--mqtt", broker.url, "--mqtt-username", "dev1",
                           "--mqtt-password", "pw", "--fleet", "f1", "--device-id", "dev2", "--quiet",
                           "--state-dir", str(tmp_path / "s2"), "--flush-timeout", "5"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "edgekit/f1/dev2/drift" in done.stderr and "Not authorized" in done.stderr
    with sqlite3.connect(tmp_path / "s2" / "outbox.sqlite") as db:
        assert db.execute("SELECT COUNT(*) FROM rejected").fetchone()[0] >= 1
