"""The ring buffer between a source's chunks and the analysis windows."""

from __future__ import annotations

import numpy as np

from edgekit.errors import ConfigError


class WindowBuffer:
    """Collects samples and hands out every complete ``window``-sample window, ``hop`` samples apart.

    Windows start at samples 0, hop, 2*hop, ... of the stream, the positions ``edgekit.features.frame`` gives
    for the whole signal, so the device sees the windows training saw. At most ``window - 1`` samples (plus a
    chunk) are kept between pushes; a chunk of any size is fine.

    >>> buffer = WindowBuffer(window=4, hop=2)
    >>> [w.tolist() for w in buffer.push(np.arange(5, dtype=np.float32))]
    [[0.0, 1.0, 2.0, 3.0]]
    >>> [w.tolist() for w in buffer.push(np.arange(5, 9, dtype=np.float32))], buffer.next_start
    ([[2.0, 3.0, 4.0, 5.0], [4.0, 5.0, 6.0, 7.0]], 6)
    """

    def __init__(self, window: int, hop: int) -> None:
        if not (isinstance(window, int) and isinstance(hop, int) and window > 0 and 0 < hop):
            raise ConfigError(f"window and hop must be positive integers, got {window} and {hop}")
        self.window, self.hop = window, hop
        self._buffer = np.empty(window + hop, dtype=np.float32)
        self._filled = 0
        self._skip = 0           # samples still to drop before the next window starts (hop > window)
        self.next_start = 0      # stream index of the first sample of the next window

    def push(self, samples: np.ndarray) -> np.ndarray:
        """float32[k, window]: the windows that ``samples`` completed (a fresh array; k may be 0)."""
        samples = np.asarray(samples, dtype=np.float32).ravel()
        if self._skip:
            dropped = min(self._skip, samples.size)
            samples, self._skip = samples[dropped:], self._skip - dropped
        need = self._filled + samples.size
        if need > self._buffer.size:
            grown = np.empty(max(need, 2 * self._buffer.size), dtype=np.float32)
            grown[:self._filled] = self._buffer[:self._filled]
            self._buffer = grown
        self._buffer[self._filled:need] = samples
        self._filled = need
        count = 0 if need < self.window else (need - self.window) // self.hop + 1
        if count == 0:
            return np.empty((0, self.window), dtype=np.float32)
        starts = np.arange(count) * self.hop
        windows = self._buffer[starts[:, None] + np.arange(self.window)]
        consumed = count * self.hop
        keep = max(need - consumed, 0)
        self._buffer[:keep] = self._buffer[consumed:need].copy()
        self._skip = max(consumed - need, 0)
        self._filled = keep
        self.next_start += consumed
        return windows
