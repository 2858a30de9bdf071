"""The persistent outbox: order, durability across reopen and crashes, bounded size, dead letters, threads."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import threading
import textwrap
import time

import pytest

from edgekit.errors import ConfigError, EdgekitError
from edgekit.runtime.outbox import Outbox, OutboxError


@pytest.fixture
def path(tmp_path):
    return tmp_path / "state" / "outbox.sqlite"


def test_messages_come_out_in_order_and_leave_on_ack(path):
    with Outbox(path) as box:
        ids = [box.put(f"t/{i}", b"p%d" % i, qos=1, retain=i == 2) for i in range(5)]
        assert len(box) == 5
        pending = box.pending()
        assert [m.id for m in pending] == ids
        assert [m.topic for m in pending] == [f"t/{i}" for i in range(5)]
        assert [m.retain for m in pending] == [False, False, True, False, False]
        assert box.pending(limit=2) == pending[:2]
        box.ack(ids[1])
        box.ack(ids[1])  # a second ack (a QoS 1 duplicate) is harmless
        box.ack(12345)
        assert [m.id for m in box.pending()] == [ids[0], *ids[2:]]
        assert len(box) == 4


def test_wal_mode_on_disk(path):
    Outbox(path).close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_messages_and_counters_survive_reopening(path):
    with Outbox(path, max_messages=3) as box:
        assert [box.next_seq() for _ in range(3)] == [0, 1, 2]
        for i in range(5):
            box.put_sequenced("t", lambda seq: b"%d" % seq)
        box.reject(box.pending()[0].id, "Not authorized")
    with Outbox(path, max_messages=3) as box:
        assert box.next_seq() == 8  # never reused after a restart
        assert [m.payload for m in box.pending()] == [b"6", b"7"]
        assert box.dropped == 2
        assert box.rejected_count == 1
        assert len(box) == 2


def test_the_epoch_is_kept_with_the_file_and_a_new_file_gets_another(path, tmp_path):
    with Outbox(path) as box:
        epoch = box.epoch
        box.put_sequenced("t", lambda seq: b"%d" % seq)
    assert len(epoch) == 8 and int(epoch, 16) >= 0
    with Outbox(path) as box:
        assert box.epoch == epoch and box.issued == 1
    shutil.rmtree(path.parent)
    with Outbox(path) as box:  # the file was lost: numbering restarts, under a new name
        assert box.issued == 0 and box.epoch != epoch


def test_full_outbox_drops_the_oldest_and_counts(path):
    with Outbox(path, max_messages=4) as box:
        for i in range(10):
            box.put("t", b"%d" % i)
        assert [m.payload for m in box.pending()] == [b"6", b"7", b"8", b"9"]
        assert box.dropped == 6
        assert len(box) == 4


def test_a_smaller_limit_on_reopen_trims_on_the_next_put(path):
    with Outbox(path) as box:
        for i in range(6):
            box.put("t", b"%d" % i)
    with Outbox(path, max_messages=2) as box:
        box.put("t", b"6")
        assert [m.payload for m in box.pending()] == [b"5", b"6"]
        assert box.dropped == 5


def test_rejected_messages_are_kept_with_the_reason(path):
    with Outbox(path) as box:
        first = box.put("edgekit/f/d/drift", b"a")
        second = box.put("edgekit/f/d/pred", b"b")
        box.reject(second, "Not authorized")
        box.reject(999, "unknown ids are ignored")
        assert [m.id for m in box.pending()] == [first]
        assert box.rejected_count == 1
        (dead,) = box.rejected()
        assert (dead.id, dead.topic, dead.payload, dead.reason) == (second, "edgekit/f/d/pred", b"b", "Not authorized")
        assert len(box) == 1


def test_a_failing_payload_builder_stores_nothing_and_keeps_the_number(path):
    def broken(seq: int) -> bytes:
        raise ValueError("bad report")

    with Outbox(path) as box:
        with pytest.raises(ValueError, match="bad report"):
            box.put_sequenced("t", broken)
        assert len(box) == 0 and box.pending() == []
        assert box.put_sequenced("t", lambda seq: b"%d" % seq)[1] == 0


@pytest.mark.parametrize("bad", [0, -5, 1.5, True])
def test_max_messages_is_checked(path, bad):
    with pytest.raises(ConfigError, match="max_messages"):
        Outbox(path, max_messages=bad)


def test_a_file_that_is_not_an_outbox_gives_a_clear_error(path):
    path.parent.mkdir(parents=True)
    path.write_bytes(b"this is not a database, just bytes " * 200)
    with pytest.raises(OutboxError) as excinfo:
        Outbox(path)
    assert isinstance(excinfo.value, EdgekitError)
    assert str(path) in str(excinfo.value) and "move the file aside" in str(excinfo.value)


def test_a_newer_schema_is_refused(path):
    Outbox(path).close()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE meta SET value = 99 WHERE key = 'schema'")
    with pytest.raises(OutboxError, match="newer edgekit"):
        Outbox(path)


def test_a_closed_outbox_says_so(path):
    box = Outbox(path)
    box.close()
    box.close()
    with pytest.raises(OutboxError, match="is closed"):
        box.put("t", b"x")


def test_two_threads_share_one_outbox(path):
    """Like the runtime: one thread puts reports while paho's thread acks them."""
    box = Outbox(path)
    seqs: list[int] = []
    done = threading.Event()

    def producer():
        for _ in range(200):
            seqs.append(box.put_sequenced("t", lambda seq: b"%d" % seq)[1])
        done.set()

    def acker():
        while not (done.is_set() and len(box) == 0):
            for message in box.pending(limit=7):
                box.ack(message.id)
            time.sleep(0.001)  # let the producer in on a busy two-core machine

    threads = [threading.Thread(target=producer), threading.Thread(target=acker)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert seqs == list(range(200))
    assert len(box) == 0 and box.pending() == []
    box.close()


def test_a_killed_writer_loses_no_committed_message(path):
    """A process killed in the middle of writing keeps every put that had returned."""
    script = textwrap.dedent(f"""
        import os, signal, sys
        from edgekit.runtime.outbox import Outbox
        box = Outbox({str(path)!r})
        for i in range(400):
            message_id, seq = box.put_sequenced("t", lambda seq: b"report %d" % seq)
            print(message_id, seq, flush=True)  # printed only after the commit
            if i == 150:
                os.kill(os.getpid(), signal.SIGKILL)
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert result.returncode == -9, result.stderr
    committed = [tuple(map(int, line.split())) for line in result.stdout.strip().splitlines()]
    assert len(committed) == 151
    with Outbox(path) as box:
        stored = {m.id: m.payload for m in box.pending(limit=1000)}
        for message_id, seq in committed:
            assert stored[message_id] == b"report %d" % seq
        assert box.next_seq() == committed[-1][1] + 1
