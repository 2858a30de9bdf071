"""Streaming extraction: samples in as they arrive, features out for every window they complete."""

from __future__ import annotations

import numpy as np

from edgekit.errors import ConfigError, DataError
from edgekit.features.extract import extract_with_quality
from edgekit.features.framing import frame
from edgekit.features.spec import FeatureSpec, feature_names


class StreamingExtractor:
    """Gives, push by push, exactly the features batch extraction gives for ``frame(stream, window, hop)``.

    Windows start at samples 0, hop, 2*hop, ... of the stream; the samples a future window still needs are kept
    (at most ``window - 1`` plus the pushed chunk).

    >>> from edgekit.features import FeatureSpec, extract, frame
    >>> spec = FeatureSpec(window=256, hop=128)
    >>> stream = np.random.default_rng(1).standard_normal(1000).astype(np.float32)
    >>> streamer = StreamingExtractor(spec)
    >>> parts = [streamer.push(chunk) for chunk in np.split(stream, [100, 101, 700])]
    >>> [p.shape[0] for p in parts], streamer.windows_emitted
    ([0, 0, 4, 2], 6)
    >>> bool(np.array_equal(np.concatenate(parts), extract(frame(stream, 256, 128), spec)))
    True
    """

    def __init__(self, spec: FeatureSpec) -> None:
        if not isinstance(spec, FeatureSpec):
            raise ConfigError(f"StreamingExtractor needs a FeatureSpec, got {type(spec).__name__}")
        self._spec = spec
        self._n_features = len(feature_names(spec))
        # float32 until a float64 chunk arrives (then float64, which holds both exactly): the windows then have the
        # dtype batch extraction of the same stream sees, and the same compiled kernel gives the same bits.
        self._pending = np.empty(0, dtype=np.float32)
        self._samples_seen = 0
        self._windows_emitted = 0

    @property
    def spec(self) -> FeatureSpec:
        return self._spec

    @property
    def samples_seen(self) -> int:
        """Samples pushed since creation or the last ``reset``."""
        return self._samples_seen

    @property
    def windows_emitted(self) -> int:
        """Windows whose features ``push`` has returned."""
        return self._windows_emitted

    def reset(self) -> None:
        """Forget pending samples and start a new stream (the next window starts at the next sample pushed)."""
        self._pending = np.empty(0, dtype=np.float32)
        self._samples_seen = 0
        self._windows_emitted = 0

    def push_with_quality(self, samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """float32[k, f] features and uint8[k] quality flags of the k windows that ``samples`` completed."""
        samples = np.asarray(samples)
        if samples.ndim != 1 or samples.dtype.kind not in "fiu":
            raise DataError(f"push expects a 1-D array of real samples, got shape {samples.shape} "
                            f"and dtype {samples.dtype}")
        if samples.dtype != np.float32:
            samples = samples.astype(np.float64)
        self._samples_seen += samples.size
        pending = np.concatenate([self._pending, samples])
        windows = frame(pending, self._spec.window, self._spec.hop)
        if len(windows) == 0:
            self._pending = pending
            return np.empty((0, self._n_features), dtype=np.float32), np.empty(0, dtype=np.uint8)
        values, flags = extract_with_quality(np.array(windows), self._spec)  # copy: frame gives a read-only view
        self._pending = pending[len(windows) * self._spec.hop:].copy()
        self._windows_emitted += len(windows)
        return values, flags

    def push(self, samples: np.ndarray) -> np.ndarray:
        """float32[k, f] features of the k windows that ``samples`` completed (k may be 0)."""
        return self.push_with_quality(samples)[0]
