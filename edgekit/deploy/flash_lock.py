"""One flash at a time per device folder: a lock directory on the device, held from copying to the switch.

Without it, two flashes to the same folder interleave: the one that finishes first runs update.sh, which removes
every release without an ``.installed`` mark, the other's half-installed release included. ``mkdir`` is atomic
on every filesystem a board uses, so the first flash to create ``PATH/.flash-lock`` holds the lock; it writes
who it is into it and removes it when done, whatever happened. A lock older than ``STALE_MINUTES`` is left over
from a flash that died with its connection, and is taken over.
"""

from __future__ import annotations

import contextlib
import os
import socket
from datetime import datetime, timezone
from typing import Iterator

from edgekit.deploy.ssh import Remote
from edgekit.errors import EdgekitError

LOCK_NAME = ".flash-lock"
# Longer than any flash: a wheelhouse of ~100 MiB over a slow link takes tens of minutes.
STALE_MINUTES = 120

_LOCK_SCRIPT = r"""
dest=$1 owner=$2 stale=$3
lock="$dest/.flash-lock"
mkdir -p "$dest" || exit 3
if [ -d "$lock" ] && [ -n "$(find "$lock" -maxdepth 0 -mmin +"$stale" 2>/dev/null)" ]; then
  echo "stale=$(cat "$lock/owner" 2>/dev/null)"
  rm -rf "$lock"
fi
if mkdir "$lock" 2>/dev/null; then
  printf '%s\n' "$owner" > "$lock/owner"
  echo "locked=yes"
else
  echo "held_by=$(cat "$lock/owner" 2>/dev/null)"
fi
"""


class FlashLockedError(EdgekitError):
    """Another flash to the same device folder is running."""


@contextlib.contextmanager
def flash_lock(remote: Remote, dest: str) -> Iterator[str | None]:
    """Hold ``dest/.flash-lock`` on the device for the ``with`` block; yields the owner of a stale lock taken
    over, or None."""
    owner = f"{socket.gethostname()} pid {os.getpid()} since {datetime.now(timezone.utc):%Y-%m-%dT%H:%M:%SZ}"
    result = remote.run_script(_LOCK_SCRIPT, [dest, owner, str(STALE_MINUTES)], timeout=60)
    if result.returncode != 0:
        raise FlashLockedError(f"cannot create {dest}/{LOCK_NAME} on {remote.target.host} "
                               f"({result.stderr.strip() or 'no message'}); check that the user may write there")
    values = dict(line.partition("=")[::2] for line in result.stdout.splitlines() if "=" in line)
    if values.get("locked") != "yes":
        holder = values.get("held_by") or "an unknown flash"
        raise FlashLockedError(
            f"another flash to {remote.target.host}:{dest} is running ({holder}); wait for it to finish, or, if "
            f"none is running, remove {dest}/{LOCK_NAME} on the device (it is taken over by itself after "
            f"{STALE_MINUTES} minutes)")
    try:
        yield values.get("stale")  # present (maybe empty) only when a stale lock was taken over
    finally:
        with contextlib.suppress(EdgekitError):  # the device may be gone; the lock then expires
            remote.run(["rm", "-rf", f"{dest}/{LOCK_NAME}"], timeout=60)
