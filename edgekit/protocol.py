"""MQTT topics and versioned message schemas, shared by the device runtime and the fleet collector.

Pure stdlib, so both sides can import it without pulling anything in. Every message is a JSON object with an
envelope (``v``, ``kind``, ``device``, ``fleet``, ``seq``, ``ts``, and ``epoch`` where the sender has one) and the
fields of its kind at the top level.

``seq`` numbers a device's reports (drift, pred, upload and status reports) from 0 without gaps, across restarts; QoS 1
may deliver a report twice, and :func:`dedup_key` is how a receiver drops the copy. ``epoch`` names the outbox that
numbered them: a device whose outbox file is lost (a new SD card, a wiped state folder) starts again at seq 0 under
a new epoch, and its new reports are not mistaken for copies of the old ones. Presence messages (the
retained ``status`` that the connection itself sends: ``online`` on connect, ``offline`` on a clean stop and as
the last will) carry ``"presence": true`` and repeat the next report number as a high-water mark; they are state,
not reports, and the latest retained one wins.
"""

from __future__ import annotations

import json
import math
import re
import time
from dataclasses import dataclass, field
from typing import Any

from edgekit.errors import ConfigError, EdgekitError

PROTOCOL_VERSION = 1
TOPIC_ROOT = "edgekit"
KINDS = ("status", "drift", "pred", "cmd", "upload")
STATUS_STATES = ("online", "offline", "degraded")
ENVELOPE_FIELDS = ("v", "kind", "device", "fleet", "seq", "ts", "epoch")

# Letters, digits, '-', '_' and '.': never an MQTT wildcard ('+', '#'), level separator ('/') or the '$'
# that brokers reserve for system topics.
_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


class ProtocolError(EdgekitError):
    """A message or command that does not follow the edgekit MQTT protocol."""


# Fields each kind needs beyond the envelope, with the JSON types they may have. Data, so the fleet side can
# print it and a new field is one line.
REQUIRED_FIELDS: dict[str, dict[str, tuple[type, ...]]] = {
    "status": {"state": (str,)},
    "drift": {"windows": (int,), "drift_detected": (bool,)},
    "pred": {"window": (int,), "class": (str, int)},
    "cmd": {"name": (str,)},
    # Raw samples of one window, sent in answer to upload_windows: base64 of little-endian values of ``dtype``.
    "upload": {"window": (int,), "samples": (str,), "sample_rate": (int, float), "dtype": (str,)},
}


@dataclass(frozen=True)
class CommandArg:
    """One argument of a command: its JSON type and the closed/open range it must lie in."""

    type: type
    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: bool = False

    def check(self, command: str, name: str, value: Any) -> Any:
        # bool is an int subclass in Python but a different JSON type: `true` is never a window count. An int
        # is a fine float (`"seconds": 30`).
        accepted = (int, float) if self.type is float else (self.type,)
        if isinstance(value, bool) != (self.type is bool) or not isinstance(value, accepted):
            raise ProtocolError(f"command {command!r}: argument {name!r} must be {self.type.__name__}, "
                                f"got {value!r}")
        if self.type is bool:
            return value
        value = self.type(value)
        if not math.isfinite(value):
            raise ProtocolError(f"command {command!r}: argument {name!r} must be finite, got {value!r}")
        too_low = self.minimum is not None and (value <= self.minimum if self.exclusive_minimum
                                                else value < self.minimum)
        too_high = self.maximum is not None and value > self.maximum
        if too_low or too_high:
            low = None if self.minimum is None else f"{'>' if self.exclusive_minimum else '>='} {self.minimum:g}"
            high = None if self.maximum is None else f"<= {self.maximum:g}"
            bounds = " and ".join(b for b in (low, high) if b)
            raise ProtocolError(f"command {command!r}: argument {name!r} must be {bounds}, got {value!r}")
        return value


@dataclass(frozen=True)
class CommandSpec:
    """The arguments a command accepts; ``required`` must all be given, ``one_of`` at least one of them."""

    args: dict[str, CommandArg]
    required: tuple[str, ...] = ()
    one_of: tuple[str, ...] = ()


COMMANDS: dict[str, CommandSpec] = {
    "set_report_interval": CommandSpec(
        args={"windows": CommandArg(int, minimum=1), "seconds": CommandArg(float, minimum=0, exclusive_minimum=True)},
        one_of=("windows", "seconds"),
    ),
    "upload_windows": CommandSpec(
        args={"count": CommandArg(int, minimum=1, maximum=1000), "only_drifted": CommandArg(bool)},
        required=("count",),
    ),
}


@dataclass(frozen=True)
class Command:
    """A validated command from the fleet: its name and its arguments (ints, floats, bools).

    >>> parse_command(b'{"name": "upload_windows", "args": {"count": 5}}')
    Command(name='upload_windows', args={'count': 5})
    """

    name: str
    args: dict[str, Any] = field(default_factory=dict)


def _check_id(what: str, value: Any) -> str:
    if not isinstance(value, str) or not _ID.fullmatch(value):
        raise ConfigError(f"{what} {value!r} is not valid: use 1 to 64 letters, digits, '-', '_' or '.' "
                          "(no '/', '+', '#' or spaces)")
    return value


def topic(fleet: str, device_id: str, kind: str) -> str:
    """The MQTT topic of one kind of message for one device.

    >>> topic("plant-a", "pump.7", "drift")
    'edgekit/plant-a/pump.7/drift'
    >>> topic("plant-a", "pump/7", "drift")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    edgekit.errors.ConfigError: device id 'pump/7' is not valid: use 1 to 64 letters, digits, ... (no '/', '+', ...)
    """
    _check_id("fleet", fleet)
    _check_id("device id", device_id)
    if kind not in KINDS:
        raise ConfigError(f"unknown message kind {kind!r}; known kinds: {', '.join(KINDS)}")
    return f"{TOPIC_ROOT}/{fleet}/{device_id}/{kind}"


def parse_topic(mqtt_topic: str) -> tuple[str, str, str]:
    """``edgekit/{fleet}/{device}/{kind}`` -> ``(fleet, device, kind)``; ProtocolError for anything else.

    >>> parse_topic("edgekit/plant-a/pump.7/status")
    ('plant-a', 'pump.7', 'status')
    """
    parts = mqtt_topic.split("/")
    if len(parts) != 4 or parts[0] != TOPIC_ROOT or parts[3] not in KINDS:
        raise ProtocolError(f"topic {mqtt_topic!r} is not an edgekit topic "
                            f"({TOPIC_ROOT}/<fleet>/<device>/<{'|'.join(KINDS)}>)")
    try:
        topic(parts[1], parts[2], parts[3])
    except ConfigError as exc:
        raise ProtocolError(f"topic {mqtt_topic!r}: {exc}") from None
    return parts[1], parts[2], parts[3]


def envelope(kind: str, device_id: str, fleet: str, seq: int, body: dict[str, Any],
             ts: float | None = None, epoch: str | None = None) -> dict[str, Any]:
    """Stamp ``body`` with the envelope; ``ts`` defaults to now (unix seconds).

    >>> envelope("pred", "pump.7", "plant-a", 3, {"window": 12, "class": "normal"},
    ...          ts=1.5, epoch="5eed0001")  # doctest: +NORMALIZE_WHITESPACE
    {'v': 1, 'kind': 'pred', 'device': 'pump.7', 'fleet': 'plant-a', 'seq': 3, 'ts': 1.5, 'epoch': '5eed0001',
     'window': 12, 'class': 'normal'}
    """
    clash = sorted(set(body) & set(ENVELOPE_FIELDS))
    if clash:
        raise ProtocolError(f"message body uses envelope field(s) {', '.join(clash)}; rename them")
    stamped = {"v": PROTOCOL_VERSION, "kind": kind, "device": device_id, "fleet": fleet, "seq": seq,
               "ts": float(time.time() if ts is None else ts)}
    if epoch is not None:
        stamped["epoch"] = epoch
    return {**stamped, **body}


def _type_names(types: tuple[type, ...]) -> str:
    return " or ".join(t.__name__ for t in types)


def _check_type(message: dict[str, Any], name: str, types: tuple[type, ...]) -> None:
    if name not in message:
        raise ProtocolError(f"{message.get('kind', 'message')} message lacks field {name!r}")
    value = message[name]
    # JSON true/false must not pass as a number, nor a number as a flag.
    if isinstance(value, bool) != (bool in types) or not isinstance(value, types):
        raise ProtocolError(f"{message.get('kind', 'message')} message: field {name!r} must be "
                            f"{_type_names(types)}, got {value!r}")


def validate(message: dict[str, Any]) -> dict[str, Any]:
    """Check the envelope and the fields the message's kind requires; return the message unchanged.

    >>> status = {"v": 1, "kind": "status", "device": "d1", "fleet": "f", "seq": 0, "ts": 0.0, "state": "online"}
    >>> validate(status) is status
    True
    >>> validate({"v": 1, "kind": "drift", "device": "d1", "fleet": "f", "seq": 0, "ts": 0.0, "windows": 8})
    Traceback (most recent call last):
    ...
    edgekit.protocol.ProtocolError: drift message lacks field 'drift_detected'
    """
    if not isinstance(message, dict):
        raise ProtocolError(f"a message must be a JSON object, got {type(message).__name__}")
    _check_version(message.get("v"), "message", "this side")
    kind = message.get("kind")
    if kind not in KINDS:
        raise ProtocolError(f"unknown message kind {kind!r}; known kinds: {', '.join(KINDS)}")
    for name, what in (("fleet", "fleet"), ("device", "device id")):
        try:
            _check_id(what, message.get(name))
        except ConfigError as exc:
            raise ProtocolError(f"{kind} message: {exc}") from None
    _check_type(message, "seq", (int,))
    if message["seq"] < 0:
        raise ProtocolError(f"{kind} message: 'seq' must be >= 0, got {message['seq']}")
    _check_type(message, "ts", (int, float))
    if "epoch" in message:  # optional: senders before it was added, and a fleet's own test messages
        _check_type(message, "epoch", (str,))
    for name, types in REQUIRED_FIELDS[kind].items():
        _check_type(message, name, types)
    if kind == "status" and message["state"] not in STATUS_STATES:
        raise ProtocolError(f"status message: state {message['state']!r} is not one of {', '.join(STATUS_STATES)}")
    return message


def _check_version(version: Any, what: str, upgrade_where: str) -> None:
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ProtocolError(f"{what} has no valid protocol version 'v' (got {version!r})")
    if version > PROTOCOL_VERSION:
        raise ProtocolError(f"{what} uses protocol version {version}, this edgekit understands up to "
                            f"{PROTOCOL_VERSION}; upgrade edgekit on {upgrade_where}")


def dedup_key(message: dict[str, Any]) -> tuple[str, str, str, int] | None:
    """What identifies a report across QoS 1 redeliveries; None for presence messages, which are never dropped.

    >>> dedup_key(envelope("pred", "d1", "f", 4, {"window": 1, "class": 0}, epoch="5eed0001"))
    ('f', 'd1', '5eed0001', 4)
    """
    if message.get("presence"):
        return None
    return message["fleet"], message["device"], message.get("epoch", ""), message["seq"]


def encode(message: dict[str, Any]) -> bytes:
    """Compact JSON with sorted keys (stable bytes for the same message); NaN and infinity are refused.

    >>> encode({"b": 1, "a": [1.5, True]})
    b'{"a":[1.5,true],"b":1}'
    """
    try:
        return json.dumps(message, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()
    except (TypeError, ValueError) as exc:
        raise ProtocolError(f"message cannot be encoded as JSON ({exc}); send plain numbers, strings, "
                            "lists and dicts, and no NaN or infinity") from exc


def _refuse_constant(name: str) -> None:
    # json accepts NaN and Infinity, which encode() never writes: a payload holding them came from elsewhere.
    raise ValueError(f"{name} is not a JSON number")


def decode(payload: bytes) -> dict[str, Any]:
    """Parse a payload into a JSON object; ProtocolError for anything else.

    >>> decode(b'{"a":1}')
    {'a': 1}
    """
    try:
        message = json.loads(payload, parse_constant=_refuse_constant)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ProtocolError(f"payload is not JSON ({exc}): {bytes(payload[:80])!r}") from None
    if not isinstance(message, dict):
        raise ProtocolError(f"payload must be a JSON object, got {type(message).__name__}")
    return message


def parse_command(payload: bytes | dict[str, Any]) -> Command:
    """Parse and check a command: ``{"name": ..., "args": {...}}``, with or without the envelope around it.

    >>> parse_command({"name": "set_report_interval", "args": {"seconds": 30}})
    Command(name='set_report_interval', args={'seconds': 30.0})
    >>> parse_command({"name": "reboot"})
    Traceback (most recent call last):
    ...
    edgekit.protocol.ProtocolError: unknown command 'reboot'; known commands: set_report_interval, upload_windows
    """
    message = decode(payload) if isinstance(payload, (bytes, bytearray, memoryview)) else payload
    if not isinstance(message, dict):
        raise ProtocolError(f"a command must be a JSON object, got {type(message).__name__}")
    _check_version(message.get("v", PROTOCOL_VERSION), "command", "the device")  # a bare command is the current one
    name = message.get("name")
    if name not in COMMANDS:
        raise ProtocolError(f"unknown command {name!r}; known commands: {', '.join(COMMANDS)}")
    spec = COMMANDS[name]
    args = message.get("args", {})
    if not isinstance(args, dict):
        raise ProtocolError(f"command {name!r}: 'args' must be a JSON object, got {args!r}")
    unknown = sorted(set(args) - set(spec.args))
    if unknown:
        raise ProtocolError(f"command {name!r}: unknown argument(s) {', '.join(unknown)}; "
                            f"known: {', '.join(spec.args)}")
    missing = [a for a in spec.required if a not in args]
    if missing:
        raise ProtocolError(f"command {name!r} needs argument(s) {', '.join(missing)}")
    if spec.one_of and not any(a in args for a in spec.one_of):
        raise ProtocolError(f"command {name!r} needs at least one of: {', '.join(spec.one_of)}")
    return Command(name, {key: spec.args[key].check(name, key, value) for key, value in args.items()})
