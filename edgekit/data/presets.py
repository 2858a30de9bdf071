"""Machine presets for the synthetic vibration generator: the physical numbers behind each simulated machine.

A preset is data, not code: the generator reads the sample rate, speeds, bearing, structure, noise and sensor from
it, so a new machine is a new entry in ``PRESETS``. Amplitudes are in g (acceleration) as an accelerometer on the
bearing housing would read them.

>>> p = get_preset("motor")
>>> p.sample_rate, p.loads, round(p.rpm_at(0)), round(p.rpm_at(3))
(12000.0, (0, 1, 2, 3), 1797, 1730)
"""

from __future__ import annotations

from dataclasses import dataclass, field

from edgekit.bearing import BearingGeometry
from edgekit.errors import ConfigError


@dataclass(frozen=True)
class Resonance:
    """One structural mode of the housing: natural frequency, damping ratio and gain (peak g per unit impulse)."""

    freq_hz: float
    damping: float
    gain: float

    def __post_init__(self) -> None:
        if self.freq_hz <= 0 or not 0 < self.damping < 1 or self.gain < 0:
            raise ConfigError(
                f"resonance needs freq_hz > 0, 0 < damping < 1 and gain >= 0, got {self.freq_hz}, "
                f"{self.damping}, {self.gain}"
            )


@dataclass(frozen=True)
class NoiseLevels:
    """Background noise, all RMS in g: white (electronics), 1/f (process), and broadband forces that ring the
    structure (flow, electromagnetic forces), which is what makes the resonances visible in a healthy machine."""

    white_g: float = 0.03
    pink_g: float = 0.02
    structural_g: float = 0.035


@dataclass(frozen=True)
class SensorModel:
    """The accelerometer and its ADC.

    ``gain_spread`` is the relative standard deviation of the sensitivity between mountings, ``offset_g`` the
    largest DC offset, ``clip_g`` the full-scale range (the output never leaves +-clip_g) and ``adc_bits`` the
    converter resolution over that range.
    """

    gain_spread: float = 0.02
    offset_g: float = 0.005
    clip_g: float = 10.0
    adc_bits: int = 16

    def __post_init__(self) -> None:
        if self.clip_g <= 0 or not 4 <= self.adc_bits <= 32 or self.gain_spread < 0:
            raise ConfigError(
                f"sensor needs clip_g > 0, 4 <= adc_bits <= 32 and gain_spread >= 0, got {self.clip_g}, "
                f"{self.adc_bits}, {self.gain_spread}"
            )


@dataclass(frozen=True)
class FaultLevels:
    """How strongly each fault shows at severity 1, nominal speed and load 0, in g.

    Rotor faults are amplitudes of their dominant shaft-order line; ``impact_g`` is the peak of one bearing-defect
    impact before the structure rings it; ``load_impact_gain`` is the relative rise of impacts per unit load.
    """

    imbalance_g: float = 0.25
    misalignment_g: float = 0.15
    looseness_g: float = 0.12
    impact_g: float = 1.2
    load_impact_gain: float = 0.25


@dataclass(frozen=True)
class MachinePreset:
    """A simulated machine: speeds, bearing, structure, noise, sensor and default recording length.

    ``rpm_per_load`` is the induction-motor slip: the shaft runs that many rpm slower per unit of load.
    ``baseline_orders`` are the (shaft order, amplitude g) lines every healthy machine of this kind shows
    (residual imbalance and misalignment, vane pass on a pump). ``speed_fluctuation`` is the relative standard
    deviation of the slow random speed wander, ``speed_fluctuation_hz`` its bandwidth.
    """

    name: str
    sample_rate: float
    rpm_nominal: float
    rpm_per_load: float
    loads: tuple[int, ...]
    bearing: BearingGeometry
    resonances: tuple[Resonance, ...]
    duration_s: float = 10.0
    baseline_orders: tuple[tuple[float, float], ...] = ((1.0, 0.012), (2.0, 0.006))
    speed_fluctuation: float = 0.002
    speed_fluctuation_hz: float = 0.5
    noise: NoiseLevels = field(default_factory=NoiseLevels)
    sensor: SensorModel = field(default_factory=SensorModel)
    faults: FaultLevels = field(default_factory=FaultLevels)

    def __post_init__(self) -> None:
        if self.sample_rate <= 0 or self.rpm_nominal <= 0 or not self.loads:
            raise ConfigError(f"preset {self.name!r} needs a positive sample rate and rpm and at least one load")
        nyquist = self.sample_rate / 2
        for res in self.resonances:
            if res.freq_hz >= nyquist:
                raise ConfigError(
                    f"preset {self.name!r}: resonance {res.freq_hz} Hz is above Nyquist ({nyquist} Hz); "
                    "lower it or raise the sample rate"
                )
        if self.rpm_at(max(self.loads)) <= 0:
            raise ConfigError(f"preset {self.name!r}: rpm_per_load stops the shaft at the highest load")

    def rpm_at(self, load: float) -> float:
        """The shaft speed at ``load``, slip included."""
        return self.rpm_nominal - self.rpm_per_load * load

    def check_load(self, load: int) -> None:
        if load not in self.loads:
            raise ConfigError(f"preset {self.name!r} has no load {load!r}; its loads are {list(self.loads)}")


# The CWRU 12 kHz drive-end rig: 2 hp motor, 6205 bearing, 1797 rpm unloaded down to 1730 rpm at 3 hp. The
# resonances near 3 kHz and 3.8 kHz are where CWRU's fault impacts ring the housing; its healthy recordings
# peak near 1.05 kHz.
MOTOR = MachinePreset(
    name="motor",
    sample_rate=12000.0,
    rpm_nominal=1797.0,
    rpm_per_load=(1797.0 - 1730.0) / 3,
    loads=(0, 1, 2, 3),
    bearing=BearingGeometry.named("6205"),
    resonances=(Resonance(3000.0, 0.02, 1.0), Resonance(3800.0, 0.03, 0.6), Resonance(1050.0, 0.06, 0.2)),
)

# A two-pole process pump on 6309-class bearings (8 balls of 17.46 mm on a 72.5 mm pitch circle), 6 impeller
# vanes, a stiffer and lighter-damped casing ringing higher, sampled at 25.6 kHz like common IEPE DAQ cards.
PUMP = MachinePreset(
    name="pump",
    sample_rate=25600.0,
    rpm_nominal=2950.0,
    rpm_per_load=12.0,
    loads=(0, 1, 2),
    bearing=BearingGeometry(n_balls=8, ball_diameter=17.46, pitch_diameter=72.5),
    resonances=(Resonance(5600.0, 0.015, 1.0), Resonance(8900.0, 0.025, 0.5), Resonance(2200.0, 0.05, 0.2)),
    baseline_orders=((1.0, 0.015), (2.0, 0.006), (6.0, 0.03)),
    speed_fluctuation=0.001,
    noise=NoiseLevels(white_g=0.03, pink_g=0.02, structural_g=0.04),
    sensor=SensorModel(gain_spread=0.02, offset_g=0.005, clip_g=50.0, adc_bits=24),
    faults=FaultLevels(imbalance_g=0.4, misalignment_g=0.2, looseness_g=0.15, impact_g=1.5),
)

PRESETS: dict[str, MachinePreset] = {p.name: p for p in (MOTOR, PUMP)}


def get_preset(preset: str | MachinePreset) -> MachinePreset:
    """The preset named ``preset`` (or ``preset`` itself); an unknown name lists the known ones."""
    if isinstance(preset, MachinePreset):
        return preset
    try:
        return PRESETS[preset]
    except (KeyError, TypeError):
        raise ConfigError(f"unknown machine preset {preset!r}; known: {', '.join(sorted(PRESETS))}") from None
