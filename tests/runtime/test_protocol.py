"""The MQTT protocol: topics, envelopes, per-kind validation, JSON encoding and commands."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgekit import protocol
from edgekit.errors import ConfigError
from edgekit.protocol import Command, ProtocolError

BODIES = {
    "status": {"state": "online"},
    "drift": {"windows": 120, "drift_detected": False, "statistic": 0.3},
    "pred": {"window": 7, "class": "inner_race", "confidence": 0.9},
    "cmd": {"name": "upload_windows", "args": {"count": 3}},
    "upload": {"window": 7, "samples": "AACAPw==", "sample_rate": 12000.0, "dtype": "float32-le"},
}


def test_every_kind_has_a_body_and_required_fields():
    assert set(BODIES) == set(protocol.KINDS) == set(protocol.REQUIRED_FIELDS)


@pytest.mark.parametrize("kind", protocol.KINDS)
def test_topic_round_trips(kind):
    name = protocol.topic("plant_a", "pump-7.b", kind)
    assert name == f"edgekit/plant_a/pump-7.b/{kind}"
    assert protocol.parse_topic(name) == ("plant_a", "pump-7.b", kind)


@pytest.mark.parametrize("bad", ["", "a/b", "a+", "#", "has space", "$SYS", "x" * 65, None, 7])
def test_bad_ids_are_config_errors(bad):
    with pytest.raises(ConfigError, match="not valid"):
        protocol.topic(bad, "dev", "drift")
    with pytest.raises(ConfigError, match="not valid"):
        protocol.topic("fleet", bad, "drift")


def test_unknown_kind_lists_the_known_ones():
    with pytest.raises(ConfigError, match="known kinds: status, drift, pred, cmd, upload"):
        protocol.topic("f", "d", "metrics")


@pytest.mark.parametrize("name", ["edgekit/f/d", "other/f/d/drift", "edgekit/f/d/metrics", "edgekit/f/d+/drift",
                                  "edgekit/f/d/drift/extra"])
def test_parse_topic_refuses_foreign_topics(name):
    with pytest.raises(ProtocolError):
        protocol.parse_topic(name)


@pytest.mark.parametrize("kind", protocol.KINDS)
def test_envelope_validates_and_round_trips(kind):
    message = protocol.envelope(kind, "d1", "f1", 5, BODIES[kind], ts=1700000000.25)
    assert message["v"] == protocol.PROTOCOL_VERSION
    assert (message["kind"], message["device"], message["fleet"], message["seq"]) == (kind, "d1", "f1", 5)
    assert protocol.decode(protocol.encode(protocol.validate(message))) == message


def test_envelope_stamps_the_current_time_by_default():
    import time

    assert abs(protocol.envelope("drift", "d", "f", 0, BODIES["drift"])["ts"] - time.time()) < 60


def test_body_may_not_overwrite_the_envelope():
    with pytest.raises(ProtocolError, match="envelope field.*seq"):
        protocol.envelope("drift", "d", "f", 0, {**BODIES["drift"], "seq": 99})


@pytest.mark.parametrize("kind,field", [(k, f) for k, fields in protocol.REQUIRED_FIELDS.items() for f in fields])
def test_each_required_field_is_checked(kind, field):
    message = protocol.envelope(kind, "d", "f", 0, BODIES[kind])
    del message[field]
    with pytest.raises(ProtocolError, match=f"{kind} message lacks field '{field}'"):
        protocol.validate(message)


@pytest.mark.parametrize("field", ["v", "kind", "device", "fleet", "seq", "ts"])
def test_each_envelope_field_is_checked(field):
    message = protocol.envelope("drift", "d", "f", 0, BODIES["drift"])
    del message[field]
    with pytest.raises(ProtocolError):
        protocol.validate(message)


@pytest.mark.parametrize("changes,error", [
    ({"windows": True}, "'windows' must be int"),       # JSON true is not a count
    ({"drift_detected": 1}, "'drift_detected' must be bool"),
    ({"seq": -1}, "'seq' must be >= 0"),
    ({"seq": 1.0}, "'seq' must be int"),
    ({"v": 2}, "protocol version 2.*upgrade edgekit"),
    ({"v": "1"}, "no valid protocol version"),
    ({"device": "a/b"}, "device id 'a/b' is not valid"),
])
def test_wrong_types_and_values_are_named(changes, error):
    message = {**protocol.envelope("drift", "d", "f", 0, BODIES["drift"]), **changes}
    with pytest.raises(ProtocolError, match=error):
        protocol.validate(message)


def test_status_state_must_be_known():
    message = protocol.envelope("status", "d", "f", 0, {"state": "sleepy"})
    with pytest.raises(ProtocolError, match="not one of online, offline"):
        protocol.validate(message)


def test_encode_is_compact_sorted_and_refuses_nan():
    assert protocol.encode({"z": 1, "a": {"y": 2, "b": None}}) == b'{"a":{"b":null,"y":2},"z":1}'
    with pytest.raises(ProtocolError, match="no NaN"):
        protocol.encode({"x": float("nan")})
    with pytest.raises(ProtocolError, match="NaN is not a JSON number"):
        protocol.decode(b'{"x": NaN}')


@pytest.mark.parametrize("payload,error", [(b"{not json", "not JSON"), (b"[1, 2]", "JSON object"),
                                           (b"\xff\xfe", "not JSON")])
def test_decode_refuses_what_is_not_a_json_object(payload, error):
    with pytest.raises(ProtocolError, match=error):
        protocol.decode(payload)


def test_dedup_key_skips_presence():
    report = protocol.envelope("pred", "d", "f", 3, BODIES["pred"], epoch="0000beef")
    presence = protocol.envelope("status", "d", "f", 3, {"state": "online", "presence": True})
    assert protocol.dedup_key(report) == ("f", "d", "0000beef", 3)
    assert protocol.dedup_key(presence) is None


def test_a_new_epoch_is_not_a_copy_and_an_old_sender_still_validates():
    before = protocol.envelope("pred", "d", "f", 0, BODIES["pred"], epoch="0000beef")
    after_reset = protocol.envelope("pred", "d", "f", 0, BODIES["pred"], epoch="00c0ffee")
    assert protocol.dedup_key(before) != protocol.dedup_key(after_reset)
    without = protocol.validate(protocol.envelope("pred", "d", "f", 0, BODIES["pred"]))
    assert "epoch" not in without and protocol.dedup_key(without) == ("f", "d", "", 0)
    with pytest.raises(ProtocolError, match="field 'epoch' must be str, got 7"):
        protocol.validate({**before, "epoch": 7})
    with pytest.raises(ProtocolError, match="envelope field"):
        protocol.envelope("pred", "d", "f", 0, {**BODIES["pred"], "epoch": "x"})


@settings(derandomize=True, max_examples=60)
@given(fleet=st.from_regex(r"[A-Za-z0-9._-]{1,64}", fullmatch=True),
       device=st.from_regex(r"[A-Za-z0-9._-]{1,64}", fullmatch=True),
       seq=st.integers(0, 2**53), window=st.integers(0, 2**31), label=st.text(max_size=20))
def test_any_valid_report_survives_the_wire(fleet, device, seq, window, label):
    message = protocol.envelope("pred", device, fleet, seq, {"window": window, "class": label}, ts=1.0)
    assert protocol.validate(protocol.decode(protocol.encode(message))) == message
    assert protocol.parse_topic(protocol.topic(fleet, device, "pred")) == (fleet, device, "pred")


# -- commands ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("payload,expected", [
    ({"name": "set_report_interval", "args": {"windows": 10}}, Command("set_report_interval", {"windows": 10})),
    ({"name": "set_report_interval", "args": {"seconds": 2}}, Command("set_report_interval", {"seconds": 2.0})),
    ({"name": "set_report_interval", "args": {"windows": 1, "seconds": 0.5}},
     Command("set_report_interval", {"windows": 1, "seconds": 0.5})),
    ({"name": "upload_windows", "args": {"count": 1000, "only_drifted": True}},
     Command("upload_windows", {"count": 1000, "only_drifted": True})),
    (b'{"name":"upload_windows","args":{"count":1}}', Command("upload_windows", {"count": 1})),
])
def test_valid_commands_parse(payload, expected):
    assert protocol.parse_command(payload) == expected


def test_a_command_in_an_envelope_parses():
    message = protocol.envelope("cmd", "d", "f", 0, {"name": "upload_windows", "args": {"count": 4}})
    assert protocol.parse_command(protocol.encode(message)) == Command("upload_windows", {"count": 4})


@pytest.mark.parametrize("payload,error", [
    ({"name": "reboot"}, "unknown command 'reboot'; known commands: set_report_interval, upload_windows"),
    ({"args": {}}, "unknown command None"),
    ({"name": "set_report_interval", "args": {}}, "needs at least one of: windows, seconds"),
    ({"name": "set_report_interval", "args": {"windows": 0}}, "'windows' must be >= 1, got 0"),
    ({"name": "set_report_interval", "args": {"windows": 2.5}}, "'windows' must be int"),
    ({"name": "set_report_interval", "args": {"windows": True}}, "'windows' must be int"),
    ({"name": "set_report_interval", "args": {"seconds": 0}}, "'seconds' must be > 0"),
    ({"name": "set_report_interval", "args": {"seconds": "5"}}, "'seconds' must be float"),
    ({"name": "upload_windows"}, "needs argument\\(s\\) count"),
    ({"name": "upload_windows", "args": {"count": 1001}}, "'count' must be >= 1 and <= 1000, got 1001"),
    ({"name": "upload_windows", "args": {"count": 5, "only_drifted": 1}}, "'only_drifted' must be bool"),
    ({"name": "upload_windows", "args": {"count": 5, "force": True}}, "unknown argument\\(s\\) force; known: count"),
    ({"name": "upload_windows", "args": [5]}, "'args' must be a JSON object"),
    ({"v": 9, "name": "upload_windows", "args": {"count": 5}}, "protocol version 9.*upgrade edgekit on the device"),
    ({"v": "2", "name": "upload_windows", "args": {"count": 5}}, "command has no valid protocol version 'v'"),
    ({"v": True, "name": "upload_windows", "args": {"count": 5}}, "command has no valid protocol version 'v'"),
    (b"nonsense", "not JSON"),
])
def test_bad_commands_say_what_is_wrong(payload, error):
    with pytest.raises(ProtocolError, match=error):
        protocol.parse_command(payload)
