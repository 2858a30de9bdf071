"""Telemetry against a real mosquitto: delivery, outages, the last will, ACL refusals, auth, TLS, commands.

Every wait below is a deadline for something to happen, never an assertion about how fast it happened.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading

import pytest
from broker import wait_until
from netutil import free_port

from edgekit import protocol
from edgekit.errors import ConfigError
from edgekit.runtime.outbox import Outbox
from edgekit.runtime.telemetry import BrokerConfig, Telemetry, TelemetryError

LOGGER = "edgekit.runtime.telemetry"
DRIFT = {"windows": 16, "drift_detected": False}


@pytest.fixture
def device(tmp_path):
    """A factory: ``device(config, device_id=..., **options)`` starts a Telemetry with its own outbox."""
    pytest.importorskip("paho.mqtt.client", reason="paho-mqtt is not installed: pip install 'edgekit[runtime]'")
    started: list[tuple[Telemetry, Outbox]] = []

    def start(config: BrokerConfig, device_id: str = "dev1", *, outbox: Outbox | None = None, **options):
        box = outbox if outbox is not None else Outbox(tmp_path / f"outbox-{device_id}-{len(started)}.sqlite")
        telemetry = Telemetry(config, box, fleet="f1", device_id=device_id, **options)
        started.append((telemetry, box))
        return telemetry.start()

    yield start
    for telemetry, box in started:
        telemetry.stop(timeout=1)
        box.close()


def config_for(broker, **options) -> BrokerConfig:
    # Short keepalive and backoff keep the outage test short; the defaults are 30 s each.
    return BrokerConfig.from_url(broker.url, keepalive=5, max_reconnect_delay=2, **options)


def seqs(messages: list[dict]) -> list[int]:
    """Sequence numbers after dropping QoS 1 duplicates the way a receiver does."""
    unique = {protocol.dedup_key(m): m for m in messages if protocol.dedup_key(m) is not None}
    return sorted(key[3] for key in unique)


# -- configuration (no broker) ---------------------------------------------------------------------------------

@pytest.mark.parametrize("url,host,port,tls,user,password", [
    ("mqtt://broker.local", "broker.local", 1883, False, None, None),
    ("mqtts://broker.local", "broker.local", 8883, True, None, None),
    ("mqtt://dev%2F1:p%40ss@10.0.0.2:1999/", "10.0.0.2", 1999, False, "dev/1", "p@ss"),
    ("MQTTS://[::1]:8884", "::1", 8884, True, None, None),
])
def test_broker_urls_parse(url, host, port, tls, user, password):
    config = BrokerConfig.from_url(url)
    assert (config.host, config.port, config.tls, config.username, config.password) == (host, port, tls, user,
                                                                                       password)


def test_arguments_override_the_url_and_the_password_stays_out_of_repr():
    config = BrokerConfig.from_url("mqtt://a:url-secret@h", username="b", password="arg-secret")
    assert (config.username, config.password) == ("b", "arg-secret")
    assert "secret" not in repr(config)


@pytest.mark.parametrize("url,error", [
    ("http://h", "must start with mqtt:// or mqtts://"),
    ("h:1883", "must start with mqtt://"),
    ("mqtt://h:99999", "port must be a number from 1 to 65535"),
    ("mqtt://h:abc", "port must be a number"),
    ("mqtt://h:0", "port must be an integer from 1 to 65535"),
    ("mqtt://", "names no host"),
    ("mqtt://h/topic", "only mqtt"),
    ("mqtt://u:hunter2@h:abc", "u:\\*\\*\\*@h"),  # the password is masked in the message
])
def test_bad_broker_urls_are_config_errors(url, error):
    with pytest.raises(ConfigError, match=error) as excinfo:
        BrokerConfig.from_url(url)
    assert "hunter2" not in str(excinfo.value)


def test_bad_broker_options_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="not one of: auto, 5, 3.1.1"):
        BrokerConfig.from_url("mqtt://h", protocol="4")
    with pytest.raises(ConfigError, match="needs TLS; use an mqtts://"):
        BrokerConfig.from_url("mqtt://h", ca_file=__file__)
    with pytest.raises(ConfigError, match="CA file .*missing.pem not found"):
        BrokerConfig.from_url("mqtts://h", ca_file=str(tmp_path / "missing.pem"))
    with pytest.raises(ConfigError, match="password without a user name"):
        BrokerConfig.from_url("mqtt://h", password="x")
    with pytest.raises(ConfigError, match="keepalive must be an integer"):
        BrokerConfig.from_url("mqtt://h", keepalive=0)
    not_pem = tmp_path / "ca.pem"
    not_pem.write_text("not a certificate")
    with pytest.raises(ConfigError, match="cannot load the MQTT CA file .*--mqtt-ca"):
        BrokerConfig.from_url("mqtts://h", ca_file=str(not_pem)).ssl_context()


def test_device_ids_are_checked(tmp_path):
    with Outbox(tmp_path / "o.sqlite") as box, pytest.raises(ConfigError, match="device id 'a/b'"):
        Telemetry(BrokerConfig("h"), box, fleet="f1", device_id="a/b")


def test_an_unreachable_broker_keeps_reports_in_the_outbox(device):
    config = BrokerConfig("127.0.0.1", free_port(), keepalive=5, max_reconnect_delay=2)
    telemetry = device(config)
    assert telemetry.wait_connected(timeout=0.5) is False  # not an error: the device runs on, reports wait
    assert wait_until(lambda: telemetry.last_error is not None)
    assert f"cannot reach the MQTT broker at 127.0.0.1:{config.port}" in telemetry.last_error
    assert telemetry.publish("drift", DRIFT) == 0
    assert telemetry.flush(timeout=0.2) is False
    assert telemetry.counters()["pending"] == 1
    with pytest.raises(protocol.ProtocolError, match="lacks field 'drift_detected'"):
        telemetry.publish("drift", {"windows": 1})
    with pytest.raises(protocol.ProtocolError, match="not 'cmd'"):
        telemetry.publish("cmd", {"name": "upload_windows"})
    assert telemetry.publish("pred", {"window": 3, "class": "normal"}) == 1  # invalid reports used no number


# -- a real broker -------------------------------------------------------------------------------------------------

def test_reports_arrive_with_their_numbers_and_presence_is_retained(mosquitto, subscriber, device):
    broker = mosquitto()
    sub = subscriber(broker.port, "edgekit/f1/dev1/#")
    telemetry = device(config_for(broker))
    assert telemetry.wait_connected(timeout=10)
    assert telemetry.protocol_version == "5"
    assert [telemetry.publish("drift", {**DRIFT, "windows": i}) for i in range(20)] == list(range(20))
    assert telemetry.flush(timeout=15)
    assert sub.wait_for(lambda s: len(seqs(s.received("drift"))) == 20)
    assert seqs(sub.received("drift")) == list(range(20))
    assert [m["windows"] for m in sub.received("drift")][:20] == list(range(20))  # in order
    counters = telemetry.counters()
    assert (counters["published"], counters["acked"], counters["pending"], counters["refused"]) == (20, 20, 0, 0)

    telemetry.stop()
    assert sub.wait_for(lambda s: [m["state"] for m in s.received("status")][-1:] == ["offline"])
    assert [m["state"] for m in sub.received("status")] == ["online", "offline"]
    assert all(m["presence"] and m["device"] == "dev1" for m in sub.received("status"))
    latecomer = subscriber(broker.port, "edgekit/f1/dev1/status", client_id="latecomer")
    assert latecomer.wait_for(lambda s: s.messages)
    ((_, status, retained),) = latecomer.messages
    assert retained and status["state"] == "offline" and status["reason"] == "stopped"


def test_a_broker_outage_loses_no_report(mosquitto, subscriber, device):
    broker = mosquitto()
    sub = subscriber(broker.port, "edgekit/f1/dev1/drift")
    telemetry = device(config_for(broker))
    assert telemetry.wait_connected(timeout=10)
    for i in range(10):
        telemetry.publish("drift", DRIFT)
    broker.stop()  # some of the ten may still be in flight
    assert wait_until(lambda: not telemetry.connected)
    for i in range(10):
        telemetry.publish("drift", DRIFT)  # written to the outbox while nothing listens
    assert telemetry.counters()["pending"] >= 10
    broker.start()
    for i in range(10):
        telemetry.publish("drift", DRIFT)
    assert telemetry.flush(timeout=30), telemetry.counters()
    assert sub.wait_for(lambda s: len(seqs(s.received("drift"))) == 30, timeout=30), seqs(sub.received("drift"))
    assert seqs(sub.received("drift")) == list(range(30))
    assert len(sub.received("drift")) >= 30  # duplicates are allowed (QoS 1), losses are not
    counters = telemetry.counters()
    assert counters["reconnects"] >= 1 and counters["pending"] == 0 and counters["dropped"] == 0
    assert telemetry.last_error is None


def test_a_killed_device_leaves_its_will_and_its_outbox(mosquitto, subscriber, device, tmp_path):
    broker = mosquitto()
    sub = subscriber(broker.port, "edgekit/f1/dev1/#")
    outbox_path = tmp_path / "killed.sqlite"
    script = textwrap.dedent(f"""
        import time
        from edgekit.runtime.outbox import Outbox
        from edgekit.runtime.telemetry import BrokerConfig, Telemetry
        telemetry = Telemetry(BrokerConfig("127.0.0.1", {broker.port}, keepalive=5), Outbox({str(outbox_path)!r}),
                              fleet="f1", device_id="dev1").start()
        assert telemetry.wait_connected(20)
        for i in range(5):
            telemetry.publish("drift", {DRIFT!r})
        assert telemetry.flush(20)
        print("ready", flush=True)
        time.sleep(120)
    """)
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                               env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    try:
        assert process.stdout.readline().strip() == "ready"
        assert sub.wait_for(lambda s: len(s.received("drift")) >= 5)
        process.send_signal(signal.SIGKILL)  # a power cut: no DISCONNECT, so the broker sends the will
        process.wait(30)
    finally:
        process.kill()
        process.wait()
    assert sub.wait_for(lambda s: [m["state"] for m in s.received("status")][-1:] == ["offline"])
    will = sub.received("status")[-1]
    assert will["presence"] and will["reason"] == "connection lost"

    # The device comes back with the same outbox: numbering goes on where it stopped.
    telemetry = device(config_for(broker), outbox=Outbox(outbox_path))
    assert telemetry.wait_connected(timeout=10)
    assert telemetry.publish("drift", DRIFT) == 5
    assert telemetry.flush(timeout=10)
    assert sub.wait_for(lambda s: seqs(s.received("drift")) == list(range(6)))
    assert sub.wait_for(lambda s: [m["state"] for m in s.received("status")][-1:] == ["online"])


def test_a_report_the_acl_refuses_is_logged_and_kept(mosquitto, subscriber, device, caplog):
    caplog.set_level(logging.INFO, logger=LOGGER)
    # dev1 may write its status but not its drift reports: a misconfigured ACL the device must make visible.
    acl = ("topic read edgekit/#\n"
           "user dev1\ntopic write edgekit/f1/dev1/status\ntopic read edgekit/f1/dev1/cmd\n")
    broker = mosquitto(passwords={"dev1": "pw1"}, acl=acl, allow_anonymous=True)
    sub = subscriber(broker.port, "edgekit/#")
    telemetry = device(config_for(broker, username="dev1", password="pw1"))
    assert telemetry.wait_connected(timeout=10)
    seq = telemetry.publish("drift", DRIFT)
    assert telemetry.flush(timeout=10)  # refused reports leave the queue too, for the rejected table
    assert telemetry.refused == 1 and telemetry.counters()["refused"] == 1
    (dead,) = telemetry.outbox.rejected()
    assert dead.topic == "edgekit/f1/dev1/drift" and dead.reason == "Not authorized"
    assert protocol.decode(dead.payload)["seq"] == seq
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR and r.name == LOGGER]
    assert any("edgekit/f1/dev1/drift" in e and "Not authorized" in e and "ACL" in e for e in errors), errors
    assert sub.wait_for(lambda s: s.received("status"))
    assert sub.received("drift") == []


def test_user_and_password(mosquitto, device):
    broker = mosquitto(passwords={"dev1": "right"})
    good = device(config_for(broker, username="dev1", password="right"))
    assert good.wait_connected(timeout=10)
    good.publish("drift", DRIFT)
    assert good.flush(timeout=10) and good.counters()["acked"] == 1

    bad = device(config_for(broker, username="dev1", password="wrong"), device_id="dev2")
    with pytest.raises(TelemetryError, match="refused the connection: (Bad user name or password|Not authorized); "
                                             "check --mqtt-username"):
        bad.wait_connected(timeout=10)
    assert "refused the connection" in bad.last_error


def test_tls_with_the_right_ca_and_a_client_certificate(mosquitto, device, certificates):
    broker = mosquitto(tls=certificates, require_certificate=True)
    config = BrokerConfig.from_url(f"mqtts://127.0.0.1:{broker.port}", ca_file=str(certificates.ca),
                                   cert_file=str(certificates.client_cert), key_file=str(certificates.client_key),
                                   keepalive=5, max_reconnect_delay=2)
    telemetry = device(config)
    assert telemetry.wait_connected(timeout=10)
    telemetry.publish("drift", DRIFT)
    assert telemetry.flush(timeout=10) and telemetry.counters()["acked"] == 1


def test_tls_with_a_wrong_ca_fails_clearly(mosquitto, device, certificates, caplog):
    caplog.set_level(logging.INFO, logger=LOGGER)
    broker = mosquitto(tls=certificates)
    config = BrokerConfig.from_url(f"mqtts://127.0.0.1:{broker.port}", ca_file=str(certificates.other_ca),
                                   keepalive=5, max_reconnect_delay=2)
    telemetry = device(config)
    expected = f"TLS handshake with 127.0.0.1:{broker.port} failed: certificate verify failed .*--mqtt-ca"
    with pytest.raises(TelemetryError, match=expected):
        telemetry.wait_connected(timeout=10)
    assert "certificate verify failed" in telemetry.last_error
    assert any("certificate verify failed" in r.getMessage() for r in caplog.records if r.levelno == logging.ERROR)
    telemetry.publish("drift", DRIFT)
    assert telemetry.counters()["pending"] == 1  # kept for when the CA is fixed


def test_commands_reach_the_callback_and_bad_ones_are_logged(mosquitto, device, caplog):
    import paho.mqtt.client as mqtt
    import paho.mqtt.publish as publish

    caplog.set_level(logging.INFO, logger=LOGGER)
    broker = mosquitto()
    commands: list[protocol.Command] = []
    explode = threading.Event()

    def on_command(command):
        if explode.is_set():
            explode.clear()
            raise RuntimeError("the runtime's handler failed")
        commands.append(command)

    telemetry = device(config_for(broker), on_command=on_command)
    assert telemetry.wait_connected(timeout=10)
    topic = protocol.topic("f1", "dev1", "cmd")
    explode.set()
    for payload in (b"{not json", b'{"name": "reboot"}', b'{"name": "upload_windows", "args": {"count": 0}}',
                    b'{"name": "upload_windows", "args": {"count": 1}}',  # the handler raises on this one
                    protocol.encode(protocol.envelope("cmd", "dev1", "f1", 0, {
                        "name": "set_report_interval", "args": {"windows": 30}}))):
        publish.single(topic, payload, qos=1, hostname="127.0.0.1", port=broker.port, protocol=mqtt.MQTTv5)
    assert wait_until(lambda: commands)
    assert commands == [protocol.Command("set_report_interval", {"windows": 30})]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and r.name == LOGGER]
    assert sum("ignoring a malformed command" in w for w in warnings) == 3, warnings
    assert any("unknown command 'reboot'" in w for w in warnings)
    failures = [r for r in caplog.records if r.levelno == logging.ERROR and r.name == LOGGER]
    assert [r.getMessage() for r in failures] == [
        "the command handler failed on upload_windows {'count': 1}; the command is dropped"]
    assert str(failures[0].exc_info[1]) == "the runtime's handler failed"
    assert telemetry.connected  # the network thread survived it all


def test_mqtt_3_1_1_on_request(mosquitto, subscriber, device, caplog):
    caplog.set_level(logging.INFO, logger=LOGGER)
    broker = mosquitto()
    sub = subscriber(broker.port, "edgekit/f1/dev1/drift")
    telemetry = device(config_for(broker, protocol="3.1.1"))
    assert telemetry.wait_connected(timeout=10)
    assert telemetry.protocol_version == "3.1.1"
    assert [telemetry.publish("drift", DRIFT) for _ in range(3)] == [0, 1, 2]
    assert telemetry.flush(timeout=10)
    assert sub.wait_for(lambda s: seqs(s.received("drift")) == [0, 1, 2])
    assert any("MQTT 3.1.1 cannot report refused publishes" in r.getMessage() for r in caplog.records)


class MqttV311OnlyBroker:
    """Just enough of a 3.1.1-only broker: an MQTT 5 CONNECT gets return code 1 and a close, 3.1.1 is accepted."""

    def __init__(self):
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.levels: list[int] = []
        self.connections: list[socket.socket] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _read(self, conn: socket.socket, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = conn.recv(n - len(data))
            if not chunk:
                raise ConnectionError("closed")
            data += chunk
        return data

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
                self._read(conn, 1)  # CONNECT fixed header
                length, shift = 0, 0
                while True:
                    byte = self._read(conn, 1)[0]
                    length |= (byte & 0x7F) << shift
                    shift += 7
                    if not byte & 0x80:
                        break
                level = self._read(conn, length)[6]  # after the protocol name b"\x00\x04MQTT"
            except OSError:
                return
            self.levels.append(level)
            if level == 5:
                conn.sendall(b"\x20\x02\x00\x01")  # CONNACK, "unacceptable protocol version"
                conn.close()
            else:
                conn.sendall(b"\x20\x02\x00\x00")
                self.connections.append(conn)  # accepted; whatever follows is ignored

    def close(self) -> None:
        self.server.close()
        for conn in self.connections:
            conn.close()


def test_auto_falls_back_to_3_1_1_when_the_broker_refuses_mqtt_5(device):
    fake = MqttV311OnlyBroker()
    try:
        telemetry = device(BrokerConfig("127.0.0.1", fake.port, keepalive=5, max_reconnect_delay=2))
        assert wait_until(lambda: telemetry.connected)  # the fake never answers the subscription, so no wait_connected
        assert telemetry.protocol_version == "3.1.1"
        assert fake.levels == [5, 4]
        telemetry.stop(timeout=0.2)  # the fake never acks
    finally:
        fake.close()
