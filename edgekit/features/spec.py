"""FeatureSpec: everything that decides which features a window gives, stored in the bundle next to the model.

Training and the device build features from the same spec, so a spec must survive ``to_dict`` -> JSON ->
``from_dict`` exactly; every default that depends on another field (hop, band edges, envelope band) is resolved
in ``__post_init__`` and stored, so the stored dict says what was computed even if a default changes later.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import numpy as np

from edgekit.bearing import BearingGeometry
from edgekit.errors import ConfigError

GROUPS = ("time", "spectral", "envelope")
TIME_FEATURES = (
    "mean", "std", "rms", "peak", "peak_to_peak", "crest", "kurtosis", "skewness", "shape", "impulse", "clearance",
)
SPECTRAL_SHAPE_FEATURES = ("centroid", "spread", "entropy", "kurtosis", "dominant")
# Order of the envelope features; "bsf" is looked for at 2 x BSF, where a ball defect strikes (both races).
ENVELOPE_FEATURES = ("bpfo", "bpfi", "bsf", "ftf")
DEFAULT_BANDS = 8


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _is_real(value) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


@dataclass(frozen=True)
class FeatureSpec:
    """How windows become features: sample rate, framing, feature groups and their parameters.

    The "envelope" group contributes features only when both ``bearing`` and ``rpm`` are set (it looks for energy
    at the bearing's defect frequencies at that speed); without them it contributes none.

    >>> spec = FeatureSpec(sample_rate=12000, window=1024)
    >>> spec.hop, spec.band_edges[:3], spec.envelope_band
    (512, (0.0, 750.0, 1500.0), (1000.0, 5000.0))
    >>> FeatureSpec.from_dict(spec.to_dict()) == spec
    True
    """

    sample_rate: float = 12000.0
    window: int = 1024
    hop: int | None = None
    groups: tuple[str, ...] = GROUPS
    band_edges: tuple[float, ...] | None = None
    envelope_band: tuple[float, float] | None = None
    envelope_harmonics: int = 3
    bearing: BearingGeometry | None = None
    rpm: float | None = None

    def __post_init__(self) -> None:
        set_ = object.__setattr__  # frozen: resolved defaults are stored through the back door, once
        if not _is_real(self.sample_rate) or not math.isfinite(self.sample_rate) or self.sample_rate <= 0:
            raise ConfigError(f"sample_rate must be a positive finite number of Hz, got {self.sample_rate!r}")
        set_(self, "sample_rate", float(self.sample_rate))
        if not _is_int(self.window) or self.window < 16:
            raise ConfigError(f"window must be an integer number of samples >= 16, got {self.window!r}")
        set_(self, "window", int(self.window))
        hop = self.window // 2 if self.hop is None else self.hop
        if not _is_int(hop) or not 1 <= hop <= self.window:
            raise ConfigError(f"hop must be an integer in 1..{self.window} (the window), got {self.hop!r}")
        set_(self, "hop", int(hop))
        set_(self, "groups", self._checked_groups(self.groups))
        nyquist = self.nyquist
        edges = self.band_edges
        if edges is None:
            edges = tuple(float(e) for e in np.linspace(0.0, nyquist, DEFAULT_BANDS + 1))
        set_(self, "band_edges", self._checked_edges(edges, nyquist))
        band = self.envelope_band
        if band is None:
            band = (self.sample_rate / 12.0, 5.0 * self.sample_rate / 12.0)
        set_(self, "envelope_band", self._checked_envelope_band(band, nyquist))
        if not _is_int(self.envelope_harmonics) or self.envelope_harmonics < 1:
            raise ConfigError(f"envelope_harmonics must be an integer >= 1, got {self.envelope_harmonics!r}")
        set_(self, "envelope_harmonics", int(self.envelope_harmonics))
        if self.bearing is not None and not isinstance(self.bearing, BearingGeometry):
            raise ConfigError(
                f"bearing must be a BearingGeometry (e.g. BearingGeometry.named('6205')) or None, got {self.bearing!r}"
            )
        if self.rpm is not None:
            if not _is_real(self.rpm) or not math.isfinite(self.rpm) or self.rpm <= 0:
                raise ConfigError(f"rpm must be a positive finite number or None, got {self.rpm!r}")
            set_(self, "rpm", float(self.rpm))
        if self.groups == ("envelope",) and not self.envelope_enabled:
            raise ConfigError("groups=('envelope',) gives no features without both bearing and rpm; set them or add "
                              f"another group from {list(GROUPS)}")

    @staticmethod
    def _checked_groups(groups) -> tuple[str, ...]:
        if isinstance(groups, str) or not isinstance(groups, (tuple, list)):
            raise ConfigError(f"groups must be a tuple of group names from {list(GROUPS)}, got {groups!r}")
        unknown = [g for g in groups if g not in GROUPS]
        if unknown:
            raise ConfigError(f"unknown feature groups {unknown}; valid groups: {list(GROUPS)}")
        if not groups or len(set(groups)) != len(groups):
            raise ConfigError(f"groups must name each of {list(GROUPS)} at most once and at least one, got {groups!r}")
        # Features always come out in the canonical group order, so the stored order is that one too.
        return tuple(g for g in GROUPS if g in groups)

    @staticmethod
    def _checked_edges(edges, nyquist: float) -> tuple[float, ...]:
        if isinstance(edges, str) or not isinstance(edges, (tuple, list)) or not all(_is_real(e) for e in edges):
            raise ConfigError(f"band_edges must be a sequence of numbers in Hz, got {edges!r}")
        values = tuple(float(e) for e in edges)
        if len(values) < 2 or any(not b > a for a, b in zip(values, values[1:])) or values[0] < 0 \
                or values[-1] > nyquist:
            raise ConfigError(
                f"band_edges must be at least 2 strictly increasing frequencies within [0, {nyquist:g}] Hz "
                f"(0 to Nyquist), got {list(values)}"
            )
        return values

    def _checked_envelope_band(self, band, nyquist: float) -> tuple[float, float]:
        if isinstance(band, str) or not isinstance(band, (tuple, list)) or len(band) != 2 \
                or not all(_is_real(e) for e in band):
            raise ConfigError(f"envelope_band must be a pair (low, high) in Hz, got {band!r}")
        lo, hi = float(band[0]), float(band[1])
        if not 0 < lo < hi < nyquist:
            raise ConfigError(
                f"envelope_band must satisfy 0 < low < high < {nyquist:g} Hz (Nyquist), got ({lo:g}, {hi:g})"
            )
        # A band between two FFT bins would demodulate nothing and give silent zeros.
        bin_hz = self.sample_rate / self.window
        if math.floor(hi / bin_hz) < math.ceil(lo / bin_hz):
            raise ConfigError(
                f"envelope_band ({lo:g}, {hi:g}) Hz holds no FFT bin; bins are {bin_hz:g} Hz apart at this window"
            )
        return (lo, hi)

    @property
    def nyquist(self) -> float:
        return self.sample_rate / 2.0

    @property
    def envelope_enabled(self) -> bool:
        """True when the envelope group is asked for and has a bearing and a speed to look at."""
        return "envelope" in self.groups and self.bearing is not None and self.rpm is not None

    def defect_frequencies(self) -> dict[str, float]:
        """Hz of each envelope feature's fundamental (bsf is 2 x BSF); empty without bearing and rpm."""
        if self.bearing is None or self.rpm is None:
            return {}
        freqs = self.bearing.frequencies(self.rpm)
        return {"bpfo": freqs["bpfo"], "bpfi": freqs["bpfi"], "bsf": 2.0 * freqs["bsf"], "ftf": freqs["ftf"]}

    def to_dict(self) -> dict:
        """A JSON-serializable dict that ``from_dict`` turns back into an equal spec."""
        return {
            "sample_rate": self.sample_rate,
            "window": self.window,
            "hop": self.hop,
            "groups": list(self.groups),
            "band_edges": list(self.band_edges),
            "envelope_band": list(self.envelope_band),
            "envelope_harmonics": self.envelope_harmonics,
            "bearing": None if self.bearing is None else self.bearing.to_dict(),
            "rpm": self.rpm,
        }

    @classmethod
    def from_dict(cls, data: dict) -> "FeatureSpec":
        """The spec that ``to_dict`` wrote; unknown keys are an error (a typo must not become a default)."""
        if not isinstance(data, dict):
            raise ConfigError(f"a feature spec must be a dict, got {type(data).__name__}")
        known = [f.name for f in fields(cls)]
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ConfigError(f"unknown feature spec keys {unknown}; valid keys: {known}")
        kwargs = dict(data)
        for key in ("groups", "band_edges", "envelope_band"):
            if isinstance(kwargs.get(key), list):
                kwargs[key] = tuple(kwargs[key])
        if isinstance(kwargs.get("bearing"), dict):
            kwargs["bearing"] = BearingGeometry.from_dict(kwargs["bearing"])
        return cls(**kwargs)


def _hz_label(value: float) -> str:
    # Shortest exact positional form, so distinct edges always give distinct names ("12.5" -> "12p5").
    return np.format_float_positional(value, trim="-").replace(".", "p")


def feature_names(spec: FeatureSpec) -> list[str]:
    """The name of every column ``extract`` returns for ``spec``, in order.

    >>> names = feature_names(FeatureSpec())
    >>> len(names), names[:3], names[11:13], names[-1]
    (24, ['time_mean', 'time_std', 'time_rms'], ['band_0_750hz', 'band_750_1500hz'], 'spec_dominant')
    """
    names: list[str] = []
    if "time" in spec.groups:
        names += [f"time_{n}" for n in TIME_FEATURES]
    if "spectral" in spec.groups:
        edges = spec.band_edges
        names += [f"band_{_hz_label(lo)}_{_hz_label(hi)}hz" for lo, hi in zip(edges, edges[1:])]
        names += [f"spec_{n}" for n in SPECTRAL_SHAPE_FEATURES]
    if spec.envelope_enabled:
        names += [f"env_{n}" for n in ENVELOPE_FEATURES]
    return names


def feature_spec(sample_rate: float, window: int = 1024, hop: int | None = None, bearing: str | None = None,
                 rpm: float | None = None) -> FeatureSpec:
    """A spec from command-line style options: a catalogue bearing name plus its shaft speed, or neither.

    >>> feature_spec(12000, bearing="6205", rpm=1797).envelope_enabled
    True
    """
    if (bearing is None) != (rpm is None):
        raise ConfigError("--bearing and --rpm go together: envelope features need both the geometry and the speed")
    return FeatureSpec(sample_rate=sample_rate, window=window, hop=hop,
                       bearing=BearingGeometry.named(bearing) if bearing else None, rpm=rpm)
