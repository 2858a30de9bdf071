"""Rolling-bearing geometry and its characteristic defect frequencies.

Shared by the synthetic generator (where impulses happen) and the envelope features (where to look for them).
The formulas are the standard kinematic ones (no slip); real bearings run 1-2% below them, which is why both the
generator and the features allow a tolerance band.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from edgekit.errors import ConfigError


@dataclass(frozen=True)
class BearingGeometry:
    """A rolling-element bearing.

    Parameters are the number of rolling elements, the ball and pitch diameters (any one unit) and the contact
    angle in degrees.

    The CWRU Bearing Data Center lists, as multiples of shaft speed, 3.5848 (BPFO), 5.4152 (BPFI),
    4.7135 (2 x BSF) and 0.39828 (FTF) for its drive-end bearing:

    >>> b = BearingGeometry.named("6205")  # the SKF 6205-2RS JEM of the CWRU drive end
    >>> round(b.bpfo(1.0), 3), round(b.bpfi(1.0), 3), round(2 * b.bsf(1.0), 3), round(b.ftf(1.0), 3)
    (3.585, 5.415, 4.713, 0.398)
    """

    n_balls: int
    ball_diameter: float
    pitch_diameter: float
    contact_angle_deg: float = 0.0

    def __post_init__(self) -> None:
        if int(self.n_balls) != self.n_balls or self.n_balls < 3:
            raise ConfigError(f"bearing n_balls must be an integer >= 3, got {self.n_balls}")
        if not 0 < self.ball_diameter < self.pitch_diameter:
            raise ConfigError(
                "bearing ball_diameter must be positive and smaller than pitch_diameter, "
                f"got {self.ball_diameter} and {self.pitch_diameter}"
            )
        if not 0 <= self.contact_angle_deg < 90:
            raise ConfigError(f"bearing contact_angle_deg must be in [0, 90), got {self.contact_angle_deg}")

    @property
    def _ratio(self) -> float:
        return self.ball_diameter / self.pitch_diameter * math.cos(math.radians(self.contact_angle_deg))

    # Each returns Hz for a shaft rotation frequency in Hz (rpm / 60).
    def bpfo(self, shaft_hz: float) -> float:
        """Ball pass frequency, outer race."""
        return self.n_balls / 2 * shaft_hz * (1 - self._ratio)

    def bpfi(self, shaft_hz: float) -> float:
        """Ball pass frequency, inner race."""
        return self.n_balls / 2 * shaft_hz * (1 + self._ratio)

    def bsf(self, shaft_hz: float) -> float:
        """Ball spin frequency (a ball defect strikes both races, so its impacts come at 2 x BSF)."""
        return self.pitch_diameter / (2 * self.ball_diameter) * shaft_hz * (1 - self._ratio**2)

    def ftf(self, shaft_hz: float) -> float:
        """Fundamental train (cage) frequency."""
        return shaft_hz / 2 * (1 - self._ratio)

    def frequencies(self, rpm: float) -> dict[str, float]:
        """All four characteristic frequencies in Hz at ``rpm``."""
        shaft = rpm / 60.0
        return {"bpfo": self.bpfo(shaft), "bpfi": self.bpfi(shaft), "bsf": self.bsf(shaft), "ftf": self.ftf(shaft)}

    def to_dict(self) -> dict[str, float]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "BearingGeometry":
        try:
            return cls(**data)
        except TypeError as exc:
            raise ConfigError(f"bad bearing geometry {data}: {exc}") from exc

    @classmethod
    def named(cls, name: str) -> "BearingGeometry":
        """A catalogue bearing by designation; the error lists the known ones."""
        try:
            return cls(**KNOWN_BEARINGS[name])
        except KeyError:
            raise ConfigError(f"unknown bearing {name!r}; known: {', '.join(sorted(KNOWN_BEARINGS))}") from None


# Dimensions in inches, from the CWRU Bearing Data Center's bearing information page.
KNOWN_BEARINGS = {
    "6205": {"n_balls": 9, "ball_diameter": 0.3126, "pitch_diameter": 1.537},  # CWRU drive end
    "6203": {"n_balls": 8, "ball_diameter": 0.2656, "pitch_diameter": 1.122},  # CWRU fan end
}
