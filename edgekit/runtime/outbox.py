"""The persistent outbox: every report is written here before it is sent and deleted only when the broker acks it.

SQLite in WAL mode with ``synchronous=FULL``, so a put that has returned survives a power cut. The outbox also
keeps the device's report sequence counter (in the same transaction as the report, so a crash can never leave a
gap in the numbers) and the random ``epoch`` that names this counter (a new outbox file numbers from 0 again), a counter of reports dropped because the outbox was full, and a ``rejected`` table of
dead letters: reports the broker refused, with its reason, kept for an operator instead of silently lost.

One connection is shared by the main thread and paho's network thread, behind a lock.

>>> import tempfile, os
>>> box = Outbox(os.path.join(tempfile.mkdtemp(), "outbox.sqlite"), max_messages=2)
>>> [box.put_sequenced("t", lambda seq: b"report %d" % seq) for _ in range(3)]
[(1, 0), (2, 1), (3, 2)]
>>> [m.payload for m in box.pending()], box.dropped
([b'report 1', b'report 2'], 1)
>>> box.ack(2); len(box)
1
>>> box.close()
"""

from __future__ import annotations

import secrets
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from edgekit.errors import ConfigError, EdgekitError

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    qos INTEGER NOT NULL,
    retain INTEGER NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS rejected (
    id INTEGER PRIMARY KEY,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    qos INTEGER NOT NULL,
    retain INTEGER NOT NULL,
    created REAL NOT NULL,
    rejected REAL NOT NULL,
    reason TEXT NOT NULL
);
INSERT OR IGNORE INTO meta (key, value) VALUES ('schema', 1), ('seq', 0), ('dropped', 0), ('epoch', :epoch);
"""


class OutboxError(EdgekitError):
    """The outbox file cannot be opened or written."""


@dataclass(frozen=True)
class OutboxMessage:
    """A stored report waiting for its ack; ``id`` orders messages by the time they were put."""

    id: int
    topic: str
    payload: bytes
    qos: int
    retain: bool
    created: float


@dataclass(frozen=True)
class RejectedMessage:
    """A report the broker refused (a dead letter), with the broker's reason."""

    id: int
    topic: str
    payload: bytes
    rejected: float
    reason: str


class Outbox:
    """A durable FIFO of MQTT messages with a persisted sequence counter and a bounded size.

    Parameters: ``path`` of the SQLite file (created with its folder if absent); ``max_messages`` kept at most:
    when full, each put deletes the oldest message and counts it in ``dropped`` (persisted).
    """

    def __init__(self, path: str | Path, max_messages: int = 50_000):
        if not isinstance(max_messages, int) or isinstance(max_messages, bool) or max_messages < 1:
            raise ConfigError(f"outbox max_messages must be an integer >= 1, got {max_messages!r}")
        self.path = Path(path)
        self.max_messages = max_messages
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # isolation_level=None: we issue BEGIN/COMMIT ourselves, so a put is committed when put returns.
            self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None, timeout=10)
        except (OSError, sqlite3.Error) as exc:
            raise OutboxError(f"cannot open the outbox {self.path} ({exc}); check the folder exists and is "
                              "writable") from exc
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            # FULL: with WAL, NORMAL may lose the last commits on a power cut; a report we said was stored must be.
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("BEGIN IMMEDIATE")
            for statement in filter(str.strip, _SCHEMA.split(";")):
                self._db.execute(statement, {"epoch": secrets.randbits(32)} if ":epoch" in statement else {})
            self._db.execute("COMMIT")
            schema = self._meta("schema")
            # Written once, with the file: outboxes opened by an edgekit before epochs get theirs now.
            self.epoch = f"{self._meta('epoch'):08x}"
            # Kept in memory: COUNT(*) walks the whole table, and a put would pay for it every time.
            self._count = self._db.execute("SELECT COUNT(*) FROM messages").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            self._db.close()
            raise OutboxError(f"{self.path} is not a usable outbox ({exc}); move the file aside (its unsent "
                              "reports cannot be read) and restart, and a new, empty outbox will be created") from exc
        if schema > SCHEMA_VERSION:
            self._db.close()
            raise OutboxError(f"{self.path} was written by a newer edgekit (outbox schema {schema}, this one "
                              f"reads {SCHEMA_VERSION}); upgrade edgekit or move the file aside")

    def _meta(self, key: str) -> int:
        return self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()[0]

    def _write(self, work: Callable[[], tuple[object, int]]) -> object:
        """Run ``work`` in one immediate transaction under the lock; a failure rolls back and names the file.

        ``work`` returns ``(result, change in the number of messages)``; the count changes only once committed.
        """
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    result, change = work()
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
                self._db.execute("COMMIT")
                self._count += change
                return result
            except sqlite3.ProgrammingError as exc:
                raise OutboxError(f"the outbox {self.path} is closed ({exc})") from exc
            except sqlite3.Error as exc:
                raise OutboxError(f"cannot write to the outbox {self.path} ({exc}); check free disk space and "
                                  "permissions") from exc

    def _read(self, sql: str, params: tuple = ()) -> list[tuple]:
        with self._lock:
            try:
                return self._db.execute(sql, params).fetchall()
            except sqlite3.ProgrammingError as exc:
                raise OutboxError(f"the outbox {self.path} is closed ({exc})") from exc
            except sqlite3.Error as exc:
                raise OutboxError(f"cannot read the outbox {self.path} ({exc})") from exc

    def _take_seq(self) -> int:
        seq = self._meta("seq")
        self._db.execute("UPDATE meta SET value = value + 1 WHERE key = 'seq'")
        return seq

    def _insert(self, topic: str, payload: bytes, qos: int, retain: bool) -> tuple[int, int]:
        excess = self._count + 1 - self.max_messages
        if excess > 0:
            self._db.execute("DELETE FROM messages WHERE id IN (SELECT id FROM messages ORDER BY id LIMIT ?)",
                             (excess,))
            self._db.execute("UPDATE meta SET value = value + ? WHERE key = 'dropped'", (excess,))
        cursor = self._db.execute(
            "INSERT INTO messages (topic, payload, qos, retain, created) VALUES (?, ?, ?, ?, ?)",
            (topic, bytes(payload), int(qos), int(bool(retain)), time.time()))
        return cursor.lastrowid, 1 - max(excess, 0)

    def next_seq(self) -> int:
        """Take the next sequence number (0, 1, 2, ... persisted across restarts).

        Prefer :meth:`put_sequenced`, which takes the number and stores the report in one transaction.
        """
        return self._write(lambda: (self._take_seq(), 0))

    @property
    def issued(self) -> int:
        """How many sequence numbers have been taken so far, i.e. the next one."""
        return self._read("SELECT value FROM meta WHERE key = 'seq'")[0][0]

    def put(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> int:
        """Store a message and commit before returning; returns its id. When full, the oldest is dropped."""
        return self._write(lambda: self._insert(topic, payload, qos, retain))

    def put_sequenced(self, topic: str, make_payload: Callable[[int], bytes], qos: int = 1,
                      retain: bool = False) -> tuple[int, int]:
        """Take a sequence number, build the payload from it and store it, all in one transaction.

        Returns ``(id, seq)``. If ``make_payload`` raises, nothing is stored and the number is not used.
        """
        def work() -> tuple[tuple[int, int], int]:
            seq = self._take_seq()
            message_id, change = self._insert(topic, make_payload(seq), qos, retain)
            return (message_id, seq), change

        return self._write(work)

    def pending(self, limit: int = 100) -> list[OutboxMessage]:
        """The oldest ``limit`` messages not yet acked, in the order they were put."""
        rows = self._read("SELECT id, topic, payload, qos, retain, created FROM messages ORDER BY id LIMIT ?",
                          (int(limit),))
        return [OutboxMessage(i, t, bytes(p), q, bool(r), c) for i, t, p, q, r, c in rows]

    def ack(self, message_id: int) -> None:
        """Delete a message the broker has acknowledged; an unknown id (already dropped or acked) is ignored."""
        self._write(lambda: (None, -self._db.execute("DELETE FROM messages WHERE id = ?", (message_id,)).rowcount))

    def reject(self, message_id: int, reason: str) -> None:
        """Move a message the broker refused to the ``rejected`` table, with the broker's reason."""
        def work() -> tuple[None, int]:
            self._db.execute(
                "INSERT OR REPLACE INTO rejected (id, topic, payload, qos, retain, created, rejected, reason) "
                "SELECT id, topic, payload, qos, retain, created, ?, ? FROM messages WHERE id = ?",
                (time.time(), str(reason), message_id))
            return None, -self._db.execute("DELETE FROM messages WHERE id = ?", (message_id,)).rowcount

        self._write(work)

    def rejected(self, limit: int = 100) -> list[RejectedMessage]:
        """The most recent dead letters, newest first."""
        rows = self._read("SELECT id, topic, payload, rejected, reason FROM rejected ORDER BY rejected DESC, id DESC "
                          "LIMIT ?", (int(limit),))
        return [RejectedMessage(i, t, bytes(p), r, reason) for i, t, p, r, reason in rows]

    def __len__(self) -> int:
        return self._count

    @property
    def dropped(self) -> int:
        """Messages deleted unsent because the outbox was full (persisted, never reset)."""
        return self._read("SELECT value FROM meta WHERE key = 'dropped'")[0][0]

    @property
    def rejected_count(self) -> int:
        """Messages the broker refused, kept in the ``rejected`` table."""
        return self._read("SELECT COUNT(*) FROM rejected")[0][0]

    def close(self) -> None:
        """Close the database; the outbox cannot be used afterwards. Closing twice is harmless."""
        with self._lock:
            self._db.close()

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Outbox({str(self.path)!r}, max_messages={self.max_messages})"
