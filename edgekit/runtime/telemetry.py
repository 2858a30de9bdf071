"""Telemetry over MQTT: reports go to the outbox first, then to the broker; commands come back on ``cmd``.

Delivery is at least once. :meth:`Telemetry.publish` commits the report to the :class:`~edgekit.runtime.outbox.Outbox`
before anything is sent, and a report leaves the outbox only when the broker's PUBACK says it was accepted (or
moves to the outbox's ``rejected`` table when the PUBACK says it was refused). After a reconnect, paho resends
what was in flight and the outbox supplies the rest, in order; receivers drop copies with ``protocol.dedup_key``.

Threads: paho runs its network thread (``loop_start``); every callback runs there and never raises (errors are
logged). ``publish``, ``flush`` and ``stop`` are called from the runtime's thread. ``on_command`` runs on paho's
thread, so it should hand the command over (a ``queue.Queue``) rather than do the work.
"""

from __future__ import annotations

import functools
import logging
import ssl
import threading
import time
from collections.abc import Callable
from typing import Any

from edgekit import protocol
from edgekit.errors import ConfigError, EdgekitError, require_module
from edgekit.runtime.broker import BrokerConfig
from edgekit.runtime.outbox import Outbox

REPORT_KINDS = tuple(k for k in protocol.KINDS if k != "cmd")  # cmd is the only kind the fleet sends
# Enough to keep the link busy, few enough that a backlog of thousands drains steadily instead of flooding
# paho's memory and the broker's per-client queue.
MAX_INFLIGHT = 20
# How long the broker keeps this device's session (its cmd subscription and the commands queued for it) while the
# device is away: a command sent during an outage of up to a day is delivered when the device is back.
SESSION_EXPIRY_S = 86_400
_UNSUPPORTED_PROTOCOL = 0x84
_REFUSAL_HINTS = {
    _UNSUPPORTED_PROTOCOL: "the broker does not speak this MQTT version; use --mqtt-protocol auto or 3.1.1",
    0x85: "the broker rejects the client id; pass another one",
    0x86: "check --mqtt-username and --mqtt-password",
    0x87: "check --mqtt-username/--mqtt-password and the broker's ACL for this device",
    0x8A: "the broker has banned this client; ask its operator",
}


class TelemetryError(EdgekitError):
    """The broker cannot be used: TLS failure, refused credentials, or a telemetry misuse."""


def _guarded(callback: Callable) -> Callable:
    """Log instead of raise: an exception escaping a paho callback would kill the network thread."""
    @functools.wraps(callback)
    def wrapper(self: Telemetry, *args: Any) -> None:
        try:
            callback(self, *args)
        except Exception:  # noqa: BLE001 - anything, so the connection carries on
            self._log.exception("telemetry: %s failed; the MQTT connection carries on", callback.__name__)
    return wrapper


class Telemetry:
    """Publishes a device's reports through an outbox and delivers its commands.

    Parameters: ``broker`` (a :class:`BrokerConfig`), ``outbox`` (owned by the caller, who closes it after
    :meth:`stop`), ``fleet`` and ``device_id`` (they make the topics), ``on_command(command)`` called on paho's
    thread with each valid :class:`~edgekit.protocol.Command`, ``logger``, ``client_id`` (default
    ``edgekit-{fleet}-{device_id}``; keep it stable, the broker keeps the session under it), ``max_inflight``.
    """

    def __init__(self, broker: BrokerConfig, outbox: Outbox, *, fleet: str, device_id: str,
                 on_command: Callable[[protocol.Command], None] | None = None,
                 logger: logging.Logger | None = None, client_id: str | None = None,
                 max_inflight: int = MAX_INFLIGHT):
        self.broker = broker
        self.outbox = outbox
        self.fleet = fleet
        self.device_id = device_id
        self.client_id = client_id or f"edgekit-{fleet}-{device_id}"
        self._topics = {kind: protocol.topic(fleet, device_id, kind) for kind in protocol.KINDS}
        self._on_command = on_command
        self._log = logger or logging.getLogger(__name__)
        if max_inflight < 1:
            raise ConfigError(f"max_inflight must be >= 1, got {max_inflight!r}")
        self._max_inflight = max_inflight
        self._lock = threading.Lock()
        self._connected = threading.Event()  # CONNACK received: reports may be sent
        self._ready = threading.Event()  # and the broker has answered the cmd subscription
        self._subscribe_mid: int | None = None
        self._client: Any = None
        self._version: str | None = None
        self._tls: ssl.SSLContext | None = None
        self._mqtt: Any = None
        self._stopping = False
        self._ever_connected = False
        self._last_error: str | None = None
        self._fatal: str | None = None
        self._attempt_error: str | None = None
        self._mids: dict[int, tuple[int | None, str]] = {}  # paho mid -> (outbox id, None for presence; topic)
        self._early_acks: dict[int, Any] = {}  # acks that beat publish() returning its mid
        self._inflight: set[int] = set()  # outbox ids handed to paho and not yet acked
        self._pumping = False
        self._pump_again = False
        self._counts = {"published": 0, "acked": 0, "refused": 0, "reconnects": 0}

    # -- the caller's side ------------------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """True while the broker connection is up (CONNACK received); reports are being sent."""
        return self._connected.is_set()

    @property
    def last_error(self) -> str | None:
        """The latest connection problem, worded for the user; None once connected."""
        return self._last_error

    @property
    def protocol_version(self) -> str | None:
        """The MQTT version in use ("5" or "3.1.1"), once started."""
        return self._version

    @property
    def refused(self) -> int:
        """Reports the broker refused since start (they are in the outbox's ``rejected`` table)."""
        return self._counts["refused"]

    def start(self) -> Telemetry:
        """Connect in the background (retrying with backoff) and return at once; see :meth:`wait_connected`."""
        if self._client is not None:
            raise TelemetryError("telemetry is already started; call stop() first")
        self._mqtt = require_module("paho.mqtt.client", "runtime")
        self._tls = self._reporting_tls_context() if self.broker.tls else None
        self._stopping = False
        self._start_client("3.1.1" if self.broker.protocol == "3.1.1" else "5")
        return self

    def wait_connected(self, timeout: float = 10.0) -> bool:
        """True once connected and subscribed to commands; False after ``timeout`` when the broker is just
        unreachable (reports wait in the outbox). Raises TelemetryError at once for what retrying will not fix:
        TLS failures, refused credentials, a refused connection."""
        deadline = time.monotonic() + timeout
        while not self._ready.is_set():
            if self._fatal:
                raise TelemetryError(self._fatal)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self._ready.wait(min(0.05, remaining))
        return True

    def publish(self, kind: str, body: dict[str, Any]) -> int:
        """Store a report durably, send it when connected, and return its sequence number.

        ``kind`` is status, drift, pred or upload; ``body`` holds the fields of that kind (``protocol.REQUIRED_FIELDS``).
        A body that does not validate raises ProtocolError and uses no sequence number.
        """
        if kind not in REPORT_KINDS:
            raise protocol.ProtocolError(f"a device publishes {', '.join(REPORT_KINDS)} reports, not {kind!r}")

        def make_payload(seq: int) -> bytes:
            message = protocol.envelope(kind, self.device_id, self.fleet, seq, body, epoch=self.outbox.epoch)
            return protocol.encode(protocol.validate(message))

        full = len(self.outbox) >= self.outbox.max_messages
        # Status reports are state: retained, like presence, so a new subscriber sees the latest one.
        _, seq = self.outbox.put_sequenced(self._topics[kind], make_payload, qos=1, retain=kind == "status")
        with self._lock:
            self._counts["published"] += 1
        if full:
            dropped = self.outbox.dropped
            if dropped == 1 or dropped % 1000 == 0:
                self._log.warning("the outbox %s is full (%d reports): dropping the oldest unsent ones, %d so far; "
                                  "the broker has been unreachable for long, or the outbox is too small",
                                  self.outbox.path, self.outbox.max_messages, dropped)
        self._pump()
        return seq

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every report in the outbox is acked (or refused); False if some are left at ``timeout``."""
        deadline = time.monotonic() + timeout
        self._pump()
        while len(self.outbox):
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)
        return True

    def stop(self, timeout: float = 5.0) -> None:
        """Publish the retained ``offline`` status, wait up to ``timeout`` for acks in flight, and disconnect.

        Unsent reports stay in the outbox for the next start. The outbox is left open.
        """
        with self._lock:
            if self._stopping or self._client is None:
                return
            self._stopping = True
            client = self._client
        if self._connected.is_set():
            info = self._send(self._topics["status"], self._presence("offline", reason="stopped"), retain=True)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and (self._inflight or (info is not None and not info.is_published())):
                time.sleep(0.02)
        client.disconnect()
        client.loop_stop()
        self._connected.clear()
        self._ready.clear()
        with self._lock:
            self._client = None

    def counters(self) -> dict[str, int]:
        """published, acked, refused and reconnects since start; dropped (ever) and pending from the outbox."""
        with self._lock:
            counts = dict(self._counts)
        counts.update(dropped=self.outbox.dropped, pending=len(self.outbox))
        return counts

    # -- connection ---------------------------------------------------------------------------------------------

    def _start_client(self, version: str) -> None:
        mqtt = self._mqtt
        v5 = version == "5"
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=self.client_id,
                             protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311, clean_session=None if v5 else False)
        # Unlimited in paho: we limit in-flight reports ourselves, and a message paho holds back as "queued"
        # stops its resend-after-reconnect loop at that message.
        client.max_inflight_messages_set(0)
        client.reconnect_delay_set(1, self.broker.max_reconnect_delay)
        if self.broker.username is not None:
            client.username_pw_set(self.broker.username, self.broker.password)
        if self._tls is not None:
            client.tls_set_context(self._tls)
        client.on_pre_connect = self._on_pre_connect
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        if v5:
            from paho.mqtt.packettypes import PacketTypes
            from paho.mqtt.properties import Properties

            properties = Properties(PacketTypes.CONNECT)
            properties.SessionExpiryInterval = SESSION_EXPIRY_S
            client.connect_async(self.broker.host, self.broker.port, self.broker.keepalive, clean_start=False,
                                 properties=properties)
        else:
            client.connect_async(self.broker.host, self.broker.port, self.broker.keepalive)
        with self._lock:
            if self._stopping:
                return
            self._client, self._version = client, version
            self._mids.clear()
            self._early_acks.clear()
            self._inflight.clear()
            client.loop_start()

    def _reporting_tls_context(self) -> ssl.SSLContext:
        """The broker's TLS context, with a socket class that records why a handshake failed.

        paho swallows the exception of a failed connection attempt (it only calls on_connect_fail), so without
        this a wrong CA would look like an unreachable broker.
        """
        context = self.broker.ssl_context()
        telemetry = self

        class ReportingSSLSocket(ssl.SSLSocket):
            def do_handshake(self, *args: Any, **kwargs: Any) -> None:
                try:
                    super().do_handshake(*args, **kwargs)
                except OSError as exc:
                    telemetry._attempt_error = telemetry._tls_failure(exc)
                    raise

        context.sslsocket_class = ReportingSSLSocket
        return context

    def _tls_failure(self, exc: OSError) -> str:
        if isinstance(exc, ssl.SSLCertVerificationError):
            return (f"TLS handshake with {self.broker.address} failed: certificate verify failed "
                    f"({exc.verify_message}); check --mqtt-ca names the CA that signed the broker's certificate "
                    "and that the certificate is made out to this host name")
        reason = getattr(exc, "reason", None) or exc.strerror or str(exc) or type(exc).__name__
        return (f"TLS handshake with {self.broker.address} failed: {reason}; check the broker listens for TLS "
                "on this port and accepts the client certificate (--mqtt-cert, --mqtt-key)")

    def _fail(self, message: str, *, fatal: bool) -> None:
        # Logged before it is recorded, so whoever sees last_error or a raise from wait_connected finds it in the
        # log too. Once per distinct problem, not once per retry. Only paho's thread calls this.
        if message != self._last_error:
            self._log.log(logging.ERROR if fatal else logging.WARNING, "%s", message)
        with self._lock:
            self._last_error = message
            if fatal:
                self._fatal = message

    def _presence(self, state: str, **extra: Any) -> bytes:
        body = {"state": state, "presence": True, "client_id": self.client_id, **extra}
        return protocol.encode(protocol.envelope("status", self.device_id, self.fleet, self.outbox.issued, body,
                                                 epoch=self.outbox.epoch))

    def _fall_back(self, old: Any) -> None:
        old.loop_stop()
        self._start_client("3.1.1")

    @_guarded
    def _on_pre_connect(self, client: Any, userdata: Any) -> None:
        self._attempt_error = None
        # Refreshed before every attempt, so the will's timestamp and report count are current.
        client.will_set(self._topics["status"], self._presence("offline", reason="connection lost"),
                        qos=1, retain=True)

    @_guarded
    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        if client is not self._client:
            return
        if reason_code.is_failure:
            # A 3.1.1-only broker answers an MQTT 5 CONNECT with return code 1, which paho reports to an MQTT 5
            # client as "Unsupported protocol version" (0x84), as does an MQTT 5 broker that refuses version 5.
            if reason_code.value == _UNSUPPORTED_PROTOCOL and self.broker.protocol == "auto" and self._version == "5":
                self._log.warning("broker %s does not accept MQTT 5; falling back to MQTT 3.1.1", self.broker.address)
                self._attempt_error = "falling back to MQTT 3.1.1"
                client.disconnect()
                threading.Thread(target=self._fall_back, args=(client,), name="edgekit-mqtt-fallback",
                                 daemon=True).start()
                return
            hint = _REFUSAL_HINTS.get(reason_code.value, "see the broker's log")
            self._attempt_error = f"broker {self.broker.address} refused the connection: {reason_code}; {hint}"
            self._fail(self._attempt_error, fatal=True)
            return
        with self._lock:
            if self._ever_connected:
                self._counts["reconnects"] += 1
            self._ever_connected = True
            self._last_error = self._fatal = None
        self._connected.set()
        self._log.info("connected to MQTT broker %s (MQTT %s) as %s", self.broker.address, self._version,
                       self.client_id)
        if self._version == "3.1.1":
            self._log.warning("MQTT 3.1.1 cannot report refused publishes: a report the broker's ACL denies is "
                              "acked and lost at the broker; use a broker that speaks MQTT 5")
        self._send(self._topics["status"], self._presence("online"), retain=True)
        # on_subscribe runs on this same thread, after this callback: the mid is stored before its SUBACK is read.
        self._subscribe_mid = client.subscribe(self._topics["cmd"], qos=1)[1]
        with self._lock:
            resending = any(outbox_id is not None for outbox_id, _ in self._mids.values())
        # Reports in flight when the connection dropped are still in paho's queue, and paho resends them right
        # after this callback returns; their acks start the pump, so the backlog goes out in outbox order.
        if not resending:
            self._pump()

    @_guarded
    def _on_connect_fail(self, client: Any, userdata: Any) -> None:
        if client is not self._client:
            return
        if self._attempt_error:
            self._fail(self._attempt_error, fatal=True)
        else:
            self._fail(f"cannot reach the MQTT broker at {self.broker.address}; retrying every "
                       f"{self.broker.max_reconnect_delay} s at most, reports wait in the outbox", fatal=False)

    @_guarded
    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        if client is not self._client:
            return
        was_connected = self._connected.is_set()
        self._connected.clear()
        self._ready.clear()
        if self._stopping:
            return
        if was_connected:
            self._fail(f"lost the connection to the MQTT broker at {self.broker.address} ({reason_code}); "
                       "reconnecting, reports wait in the outbox", fatal=False)
        elif self._attempt_error is None:  # closed before any CONNACK, e.g. a TLS 1.3 client certificate refused
            hint = " and the client certificate (--mqtt-cert, --mqtt-key)" if self.broker.tls else ""
            self._fail(f"broker {self.broker.address} closed the connection before accepting it ({reason_code}); "
                       f"check the broker's log{hint}", fatal=False)

    @_guarded
    def _on_subscribe(self, client: Any, userdata: Any, mid: int, reason_codes: list, properties: Any) -> None:
        if client is not self._client or mid != self._subscribe_mid:
            return
        for code in reason_codes:
            if code.is_failure:
                self._log.error("broker %s refused the subscription to %s (%s): commands will not arrive; check the "
                                "broker's ACL for this device", self.broker.address, self._topics["cmd"], code)
        self._ready.set()  # refused or not, waiting longer would not change it

    @_guarded
    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        if message.retain:
            # A retained command would run again on every reconnect.
            self._log.warning("ignoring a retained command on %s; publish commands with retain=false",
                              message.topic)
            return
        try:
            command = protocol.parse_command(message.payload)
        except protocol.ProtocolError as exc:
            self._log.warning("ignoring a malformed command on %s: %s", message.topic, exc)
            return
        self._log.info("command %s %s", command.name, command.args)
        if self._on_command is not None:
            try:
                self._on_command(command)
            except Exception:  # noqa: BLE001 - the runtime's handler must not take the connection down
                self._log.exception("the command handler failed on %s %s; the command is dropped", command.name,
                                    command.args)

    # -- sending ------------------------------------------------------------------------------------------------

    def _send(self, topic: str, payload: bytes, *, retain: bool = False, outbox_id: int | None = None) -> Any:
        """Hand one message to paho and remember its mid; returns paho's MQTTMessageInfo (None if not sent)."""
        try:
            info = self._client.publish(topic, payload, qos=1, retain=retain)
        except ValueError as exc:  # paho refuses it outright (too large); retrying would fail the same way
            self._settle(outbox_id, topic, reason=f"not sendable: {exc}")
            return None
        if info.rc == self._mqtt.MQTT_ERR_QUEUE_SIZE:  # paho did not keep it: give it back to the outbox
            with self._lock:
                self._inflight.discard(outbox_id)
            return None
        with self._lock:
            early = self._early_acks.pop(info.mid, None)
            if early is None:
                self._mids[info.mid] = (outbox_id, topic)
                return info
        self._settle(outbox_id, topic, reason=str(early) if early.is_failure else None, code=early.value)
        return info

    def _settle(self, outbox_id: int | None, topic: str, *, reason: str | None, code: int | None = None) -> None:
        """Ack (``reason`` None) or reject one message in the outbox."""
        # Count and log before the outbox changes: flush() returns on the outbox change, and a caller reading
        # counters() or the log right after must find them up to date.
        try:
            if reason is None:
                if outbox_id is not None:
                    with self._lock:
                        self._counts["acked"] += 1
                    self.outbox.ack(outbox_id)
            elif outbox_id is None:
                self._log.error("broker %s refused the status message on %s: %s; check the broker's ACL for this "
                                "device", self.broker.address, topic, reason)
            else:
                with self._lock:
                    self._counts["refused"] += 1
                shown = reason if code is None else f"{reason} (reason code 0x{code:02x})"
                self._log.error("broker %s refused the report on %s: %s; it is kept in the rejected table of %s. "
                                "Check the broker's ACL for this device", self.broker.address, topic, shown,
                                self.outbox.path)
                self.outbox.reject(outbox_id, reason)
        finally:
            with self._lock:
                self._inflight.discard(outbox_id)

    @_guarded
    def _on_publish(self, client: Any, userdata: Any, mid: int, reason_code: Any, properties: Any) -> None:
        if client is not self._client:
            return
        with self._lock:
            entry = self._mids.pop(mid, None)
            if entry is None:
                self._early_acks[mid] = reason_code
                return
        outbox_id, topic = entry
        self._settle(outbox_id, topic, reason=str(reason_code) if reason_code.is_failure else None,
                     code=reason_code.value)
        self._pump()

    def _pump(self) -> None:
        """Send pending outbox messages, oldest first, while fewer than ``max_inflight`` await their ack.

        Only one thread pumps at a time; a thread that finds another pumping asks it to go round once more, so
        no thread waits here while holding paho's locks, and no message is handed to paho twice.
        """
        with self._lock:
            if self._pumping:
                self._pump_again = True
                return
            self._pumping = True
        try:
            while True:
                with self._lock:
                    self._pump_again = False
                    # In-flight ids are read before the outbox: an id acked in between is gone from both.
                    busy = set(self._inflight)
                room = self._max_inflight - len(busy)
                batch = []
                if self._connected.is_set() and not self._stopping and room > 0:
                    batch = [m for m in self.outbox.pending(room + len(busy)) if m.id not in busy][:room]
                    with self._lock:
                        self._inflight.update(m.id for m in batch)
                    for message in batch:
                        self._send(message.topic, message.payload, retain=message.retain, outbox_id=message.id)
                with self._lock:
                    if not batch and not self._pump_again:
                        self._pumping = False
                        return
        except BaseException:
            with self._lock:
                self._pumping = False
            raise

    def __repr__(self) -> str:
        return (f"Telemetry({self.broker.address}, fleet={self.fleet!r}, device_id={self.device_id!r}, "
                f"connected={self.connected})")
