"""Test helpers: a real mosquitto on 127.0.0.1, test certificates made with the openssl CLI, and a subscriber."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from netutil import free_port, wait_for_port


def mosquitto_binary() -> str:
    """The mosquitto executable (often in sbin, outside a normal user's PATH), or skip."""
    for candidate in (shutil.which("mosquitto"), "/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    pytest.skip("mosquitto is not installed (apt-get install mosquitto); the telemetry tests need a real broker")


def openssl_binary() -> str:
    path = shutil.which("openssl")
    if path is None:
        pytest.skip("the openssl command is not installed; the TLS tests make their certificates with it")
    return path


class Mosquitto:
    """One mosquitto process with its config, log and persistence in ``directory``; restartable on the same port.

    ``passwords`` (user -> password) makes a password file and turns anonymous access off unless
    ``allow_anonymous`` says otherwise; ``acl`` is the text of an ACL file; ``tls`` serves TLS with those files.
    """

    def __init__(self, directory: Path, *, passwords: dict[str, str] | None = None, acl: str | None = None,
                 tls: Certificates | None = None, require_certificate: bool = False,
                 allow_anonymous: bool | None = None):
        self.binary = mosquitto_binary()
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.log = self.directory / "mosquitto.log"
        self.process: subprocess.Popen | None = None
        anonymous = not passwords if allow_anonymous is None else allow_anonymous
        lines = [f"listener {self.port} 127.0.0.1", f"allow_anonymous {'true' if anonymous else 'false'}",
                 # Persistence keeps a persistent subscriber's queued QoS 1 messages across a restart.
                 "persistence true", f"persistence_location {self.directory}/", "autosave_interval 1",
                 f"log_dest file {self.log}", "log_type error", "log_type warning", "log_type notice",
                 "log_type information", "connection_messages true"]
        if os.geteuid() == 0:
            lines.append("user root")  # otherwise mosquitto drops to a user who cannot read tmp_path
        if passwords:
            if shutil.which("mosquitto_passwd") is None:
                pytest.skip("mosquitto_passwd is not installed (it comes with mosquitto); the auth tests need it")
            password_file = self.directory / "passwords"
            for i, (user, password) in enumerate(passwords.items()):
                subprocess.run(["mosquitto_passwd", "-b", *(["-c"] if i == 0 else []), str(password_file), user,
                                password], check=True, capture_output=True)
            lines.append(f"password_file {password_file}")
        if acl is not None:
            acl_file = self.directory / "acl"
            acl_file.write_text(acl)
            lines.append(f"acl_file {acl_file}")
        if tls is not None:
            lines += [f"cafile {tls.ca}", f"certfile {tls.server_cert}", f"keyfile {tls.server_key}",
                      f"require_certificate {'true' if require_certificate else 'false'}"]
        self.config = self.directory / "mosquitto.conf"
        self.config.write_text("\n".join(lines) + "\n")

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self, timeout: float = 10.0) -> Mosquitto:
        with open(self.directory / "stdout.log", "ab") as out:
            self.process = subprocess.Popen([self.binary, "-c", str(self.config)], stdout=out,
                                            stderr=subprocess.STDOUT)
        wait_for_port(self.port, self.process, "mosquitto", self.logs, timeout)
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def logs(self) -> str:
        parts = [p.read_text(errors="replace") for p in (self.log, self.directory / "stdout.log") if p.exists()]
        return "\n".join(parts)[-4000:]


@dataclass(frozen=True)
class Certificates:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path  # a CA that signed nothing here: the "wrong CA"


def make_certificates(directory: Path) -> Certificates:
    """A CA, a server certificate for 127.0.0.1/localhost and a client certificate, plus an unrelated CA."""
    openssl = openssl_binary()
    directory.mkdir(parents=True, exist_ok=True)

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], cwd=directory, check=True, capture_output=True)

    key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    for name in ("ca", "other-ca"):
        run("req", "-x509", *key, "-keyout", f"{name}.key", "-out", f"{name}.crt", "-days", "2",
            "-subj", f"/CN=edgekit test {name}", "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    for name, usage, san in (("server", "serverAuth", "subjectAltName=IP:127.0.0.1,DNS:localhost\n"),
                             ("client", "clientAuth", "")):
        run("req", *key, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN=edgekit test {name}")
        (directory / f"{name}.ext").write_text(
            f"basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage={usage}\n"
            f"subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid,issuer\n{san}")
        run("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", f"{name}.crt", "-days", "2", "-extfile", f"{name}.ext")
    for name in ("server.key", "client.key"):
        os.chmod(directory / name, 0o600)
    d = directory
    return Certificates(d / "ca.crt", d / "server.crt", d / "server.key", d / "client.crt", d / "client.key",
                        d / "other-ca.crt")


class Subscriber:
    """Collects JSON messages under a topic filter with QoS 1 in a persistent session.

    The session (clean_start off, a session expiry) and the broker's persistence together mean that messages
    the broker accepted while this subscriber was away, or during a broker restart, still reach it.
    """

    def __init__(self, port: int, topic_filter: str, *, client_id: str = "edgekit-test-subscriber"):
        import paho.mqtt.client as mqtt
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        self.topic_filter = topic_filter
        self.messages: list[tuple[str, dict, bool]] = []  # (topic, decoded payload, retained)
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        self.client.reconnect_delay_set(1, 1)
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(topic_filter, qos=1)
        self.client.on_subscribe = lambda c, u, mid, rcs, p: self._subscribed.set()
        self.client.on_message = self._on_message
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = 300
        self.client.connect_async("127.0.0.1", port, keepalive=5, clean_start=False, properties=properties)

    def _on_message(self, client, userdata, message) -> None:
        with self._lock:
            self.messages.append((message.topic, json.loads(message.payload), bool(message.retain)))

    def start(self, timeout: float = 10.0) -> Subscriber:
        self.client.loop_start()
        if not self._subscribed.wait(timeout):
            raise RuntimeError(f"test subscriber did not subscribe to {self.topic_filter} within {timeout} s")
        return self

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def received(self, kind: str | None = None) -> list[dict]:
        with self._lock:
            return [m for t, m, _ in self.messages if kind is None or t.endswith("/" + kind)]

    def wait_for(self, predicate, timeout: float = 15.0) -> bool:
        """Poll until ``predicate(self)`` is true (see :func:`wait_until`)."""
        return wait_until(lambda: predicate(self), timeout)


def wait_until(condition, timeout: float = 15.0) -> bool:
    """Poll until ``condition()`` is true or ``timeout`` passes: a deadline, not a timing assertion."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return bool(condition())
