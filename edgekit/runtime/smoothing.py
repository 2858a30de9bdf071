"""Smoothing of per-window decisions, so one odd window does not flip what the device reports."""

from __future__ import annotations

from collections import Counter, deque

from edgekit.errors import ConfigError


class MajorityVote:
    """The most frequent class of the last ``k`` windows; a tie goes to the class seen most recently.

    >>> vote = MajorityVote(3)
    >>> [vote.update(c) for c in ["normal", "ball", "normal", "ball", "ball"]]
    ['normal', 'ball', 'normal', 'ball', 'ball']
    """

    def __init__(self, k: int = 5) -> None:
        if not isinstance(k, int) or k < 1:
            raise ConfigError(f"smoothing needs k >= 1 windows, got {k!r}")
        self.k = k
        self._recent: deque[str] = deque(maxlen=k)

    def update(self, label: str) -> str:
        self._recent.append(label)
        return self.current

    @property
    def current(self) -> str | None:
        if not self._recent:
            return None
        counts = Counter(self._recent)
        best = max(counts.values())
        return next(c for c in reversed(self._recent) if counts[c] == best)
