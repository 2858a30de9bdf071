"""A physics-based vibration generator: labelled recordings of a machine with rotor and bearing faults.

Each class is the mechanism that causes it, not a label on noise:

- every machine turns at its load-dependent speed with a slow random wander and shows small 1x/2x lines;
- ``imbalance``: a strong 1x line growing with the square of speed;
- ``misalignment``: 2x dominant, with 1x and 3x;
- ``looseness``: a rocking motion at half the shaft speed, truncated by the foundation on one side, which spreads
  energy over many harmonics and half-harmonics (0.5x, 1.5x, ...);
- ``outer_race`` / ``inner_race`` / ``ball``: impact trains at BPFO / BPFI / 2 x BSF of the preset's bearing at the
  actual speed, with 1-2% slip jitter. Inner-race impacts are modulated by the shaft (the defect rotates through
  the load zone), ball impacts by the cage (FTF) and alternate between the races. Each impact rings the housing's
  resonances; load and severity raise the impacts;
- broadband white, 1/f and structure-ringing noise, then the sensor: gain spread, offset, clipping, ADC steps.

numpy only, so the device runtime can reuse it.

>>> ds = generate_dataset(seed=1, recordings_per_class=1, duration_s=0.5, classes=["normal", "outer_race"])
>>> [r.id for r in ds], ds.recordings[0].signal.dtype, ds.recordings[0].n_samples
(['normal-L0-r01', 'outer_race-L0-r01'], dtype('float32'), 6000)
"""

from __future__ import annotations

import math
import zlib
from typing import Sequence

import numpy as np

from edgekit.data import synth_physics as phys
from edgekit.data.presets import MachinePreset, get_preset
from edgekit.data.store import Dataset, Recording
from edgekit.errors import ConfigError

CLASSES: tuple[str, ...] = ("normal", "imbalance", "misalignment", "looseness", "outer_race", "inner_race", "ball")
BEARING_FAULTS: tuple[str, ...] = ("outer_race", "inner_race", "ball")

# Severity of the recordings generate_dataset makes: wide enough that a model cannot learn one amplitude.
SEVERITY_RANGE = (0.5, 1.5)
# Bearing slip: each recording draws its per-impact period jitter (relative std) from this range.
SLIP_JITTER_RANGE = (0.01, 0.02)
# Per-recording spread of the speed around the preset's set point; 0.2% of 1797 rpm is 3.6 rpm, well under the
# 22 rpm a unit of load takes away, so speed still falls with load in every dataset.
RPM_SPREAD = 0.002

# Shaft-order lines of each rotor fault, relative to its FaultLevels amplitude.
_MISALIGNMENT_ORDERS = ((2.0, 1.0), (1.0, 0.5), (3.0, 0.35), (4.0, 0.1))
# Looseness: 1x plus the 0.5x rocking; the foundation stops the motion at _LOOSENESS_STOP of its peak, and a
# landing takes about _LOOSENESS_LANDING_S.
_LOOSENESS_ORDERS = ((1.0, 1.0), (0.5, 1.5), (2.0, 0.25))
_LOOSENESS_STOP = 0.3
_LOOSENESS_LANDING_S = 0.0005
_LOOSENESS_KNOCK = 2.0  # impact at each landing, relative to the looseness line amplitude
# Impact-to-impact amplitude scatter (surface roughness); a ball's spin axis wanders, so its hits vary more.
_IMPACT_SCATTER = {"outer_race": 0.1, "inner_race": 0.15, "ball": 0.3}
# Impact strength relative to an outer-race defect's: inner-race impacts reach the sensor only through the rolling
# elements and the outer ring, and a ball's curved defect strikes softer.
_IMPACT_SHARE = {"outer_race": 1.0, "inner_race": 0.6, "ball": 0.35}
# Depth of the load-zone modulation: an inner-race defect still takes (weaker) hits outside the load zone from
# preload and the rotating imbalance force; a ball outside it is nearly unloaded. And the weaker of a ball's two hits.
_LOAD_ZONE_DEPTH = {"inner_race": 0.5, "ball": 0.7}
_BALL_ALTERNATION = 0.75


def synthesize(
    label: str,
    preset: str | MachinePreset = "motor",
    rpm: float | np.ndarray | None = None,
    load: int = 0,
    duration_s: float | None = None,
    rng: np.random.Generator | int = 0,
    severity: float | np.ndarray = 1.0,
    *,
    resonance_scale: float | np.ndarray = 1.0,
    sensor_gain: float | np.ndarray = 1.0,
) -> np.ndarray:
    """One recording of a machine in state ``label``, as float32 g.

    ``rpm`` defaults to the preset's speed at ``load``; ``rpm``, ``severity`` and ``sensor_gain`` may be per-sample
    arrays (speed steps, a growing fault, a gain drift), ``resonance_scale`` a piecewise-constant array (the
    structure's resonances move). ``rng`` is a Generator or a seed; the same one gives the same signal.

    >>> x = synthesize("inner_race", "motor", load=2, duration_s=1.0, rng=np.random.default_rng(7))
    >>> x.dtype, x.shape, bool(np.abs(x).max() <= 10.0)
    (dtype('float32'), (12000,), True)
    """
    machine = get_preset(preset)
    if label not in CLASSES:
        raise ConfigError(f"unknown machine state {label!r}; known: {', '.join(CLASSES)}")
    if not np.isscalar(load) or load < 0:
        raise ConfigError(f"load must be a non-negative number, got {load!r}")
    fs = machine.sample_rate
    if duration_s is None:
        duration_s = machine.duration_s if np.ndim(rpm) == 0 else np.shape(rpm)[0] / fs
    n = int(round(duration_s * fs))
    if n < 16:
        raise ConfigError(f"duration_s={duration_s} gives {n} samples at {fs} Hz; ask for at least 16 samples")
    rpm = as_rpm(machine, rpm, load, n)
    severity = phys.as_profile(severity, n, "severity")
    if np.any(severity < 0):
        raise ConfigError("severity must be >= 0 (0 is a healthy machine, 1 the preset's typical fault)")
    if isinstance(rng, (int, np.integer)):
        rng = np.random.default_rng(int(rng))
    # One child generator per block: each block's draws do not depend on how many another block made, so e.g.
    # the same seed at another speed keeps the same phases and noise.
    speed_rng, rotor_rng, fault_rng, noise_rng, sensor_rng = (
        np.random.default_rng(s) for s in np.random.SeedSequence(rng.integers(0, 2**63, size=4)).spawn(5))

    freq = phys.shaft_speed(rpm, fs, machine.speed_fluctuation, machine.speed_fluctuation_hz, speed_rng)
    phase = phys.phase_of(freq, fs)
    speed_ratio = freq / (machine.rpm_nominal / 60.0)
    accel = phys.order_lines(phase, speed_ratio, machine.baseline_orders, rotor_rng)
    if label in BEARING_FAULTS:
        positions, amplitudes = _bearing_impacts(label, machine, freq, phase, load, severity, fault_rng)
    else:
        lines, positions, amplitudes = _rotor_fault(label, machine, phase, speed_ratio, severity, fault_rng)
        accel += lines
    noise = machine.noise
    accel += phys.structure_response(n, fs, machine.resonances, positions, amplitudes,
                                     noise_rng.standard_normal(n), noise.structural_g, resonance_scale)
    accel += noise.white_g * noise_rng.standard_normal(n) + noise.pink_g * phys.pink_noise(n, noise_rng)
    gain = phys.as_profile(sensor_gain, n, "sensor_gain") if np.ndim(sensor_gain) else float(sensor_gain)
    return phys.apply_sensor(accel, machine.sensor, sensor_rng, gain).astype(np.float32)


def as_rpm(machine: MachinePreset, rpm: float | np.ndarray | None, load: float, n: int) -> np.ndarray:
    """The per-sample speed: the preset's speed at ``load`` when ``rpm`` is None, else ``rpm`` checked."""
    profile = phys.as_profile(machine.rpm_at(load) if rpm is None else rpm, n, "rpm")
    if not np.all(profile > 0):
        raise ConfigError("rpm must be positive; this generator does not model a stopped or reversing shaft")
    return profile


def _rotor_fault(label: str, machine: MachinePreset, phase: np.ndarray, speed_ratio: np.ndarray,
                 severity: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The shaft-order vibration of a rotor fault, and the positions and amplitudes of any impacts it causes."""
    levels = machine.faults
    none = np.zeros(0)
    if label == "imbalance":
        return severity * phys.order_lines(phase, speed_ratio, ((1.0, levels.imbalance_g),), rng), none, none
    if label == "misalignment":
        orders = [(order, levels.misalignment_g * rel) for order, rel in _MISALIGNMENT_ORDERS]
        return severity * phys.order_lines(phase, speed_ratio, orders, rng), none, none
    if label == "looseness":
        return _looseness(machine, phase, severity, rng)
    return np.zeros_like(phase), none, none


def _looseness(machine: MachinePreset, phase: np.ndarray, severity: np.ndarray,
               rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A loose foot: the rocking motion is stopped by the foundation on one side, and the sensor feels the
    acceleration of that truncated motion plus a knock at every landing."""
    fs = machine.sample_rate
    omega = 2.0 * math.pi * machine.rpm_nominal / 60.0
    motion = phys.order_lines(phase, np.ones_like(phase), _LOOSENESS_ORDERS, rng)
    peak = float(np.max(np.abs(motion)))
    stop = _LOOSENESS_STOP * peak
    # A smooth minimum: the landing takes _LOOSENESS_LANDING_S rather than no time at all. Differentiating the
    # corner twice gives a short pulse per landing, and a pulse train has flat harmonics, which is why looseness
    # spectra show so many of them. The landings repeat every other revolution (the 0.5x rocking), so the
    # harmonics fall on every multiple of 0.5x.
    soft = _LOOSENESS_LANDING_S * omega * peak
    truncated = stop - soft * np.logaddexp(0.0, (stop - motion) / soft)
    # Acceleration is the second derivative of the motion, so it grows with the square of speed by itself; scaled
    # so an untruncated unit 1x motion would give looseness_g at nominal speed.
    accel = -np.gradient(np.gradient(truncated)) * (fs / omega) ** 2
    scale = machine.faults.looseness_g * severity
    landing = np.flatnonzero((motion[:-1] < stop) & (motion[1:] >= stop))
    positions = landing + (stop - motion[landing]) / (motion[landing + 1] - motion[landing])
    return accel * scale, positions, _LOOSENESS_KNOCK * scale[landing]


def _bearing_impacts(label: str, machine: MachinePreset, freq: np.ndarray, phase: np.ndarray, load: float,
                     severity: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Positions (fractional samples) and peak amplitudes (g) of a bearing defect's impacts."""
    bearing = machine.bearing
    # Defect frequencies are proportional to shaft speed, so a ratio to 1 Hz follows any speed profile.
    events_per_rev = {"outer_race": bearing.bpfo(1.0), "inner_race": bearing.bpfi(1.0),
                      "ball": 2.0 * bearing.bsf(1.0)}[label]
    jitter = rng.uniform(*SLIP_JITTER_RANGE)
    fs = machine.sample_rate
    positions = phys.impact_positions(freq, events_per_rev, fs, jitter, rng)
    grid = np.arange(freq.shape[0], dtype=np.float64)

    def at(values: np.ndarray) -> np.ndarray:  # the per-sample ``values`` at the impact instants
        return np.interp(positions, grid, values)

    # Impact energy grows with the rolling speed and with the load pressing the element into the defect.
    amplitude = (machine.faults.impact_g * _IMPACT_SHARE[label] * (1.0 + machine.faults.load_impact_gain * load)
                 * at(severity) * at(freq) / (machine.rpm_nominal / 60.0))
    amplitude *= np.maximum(0.0, 1.0 + _IMPACT_SCATTER[label] * rng.standard_normal(positions.shape[0]))
    if label == "inner_race":
        # The defect turns with the shaft and is hit hardest while it passes through the load zone.
        amplitude *= _load_zone(at(phase) + rng.uniform(0, 2 * math.pi), _LOAD_ZONE_DEPTH[label])
    elif label == "ball":
        # The ball is carried through the load zone by the cage, and its defect strikes the inner and outer race
        # in turn, with different force.
        amplitude *= _load_zone(at(phase) * bearing.ftf(1.0) + rng.uniform(0, 2 * math.pi), _LOAD_ZONE_DEPTH[label])
        amplitude[1::2] *= _BALL_ALTERNATION
    return positions, amplitude


def _load_zone(angle: np.ndarray, depth: float) -> np.ndarray:
    """Relative impact force at ``angle`` from the centre of the load zone: 1 there, 1 - depth opposite."""
    return 1.0 - depth + depth * ((1.0 + np.cos(angle)) / 2.0) ** 2


def recording_rng(seed: int, label: str, load: int, index: int) -> np.random.Generator:
    """The generator of one recording, keyed by what the recording is rather than by its place in a loop, so a
    recording stays bit-identical when other classes, loads or counts are added to the dataset."""
    key = (zlib.crc32(label.encode("ascii")), int(load), int(index))
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key))


def generate_dataset(
    preset: str | MachinePreset = "motor",
    seed: int = 0,
    recordings_per_class: int = 4,
    duration_s: float | None = None,
    loads: Sequence[int] | None = None,
    classes: Sequence[str] | None = None,
) -> Dataset:
    """A labelled synthetic dataset: ``recordings_per_class`` recordings of every class, spread over the loads.

    Recording ``r`` of a class runs at load ``loads[r % len(loads)]``; its id is ``<class>-L<load>-r<NN>``, its
    conditions the load and the actual rpm, its meta the fault severity, the seed and the ``rng_key`` with which
    ``recording_rng(seed, *rng_key)`` regenerates it alone. The same arguments always give the same bits.
    """
    machine = get_preset(preset)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {seed!r}")
    if isinstance(recordings_per_class, bool) or not isinstance(recordings_per_class, (int, np.integer)) \
            or recordings_per_class < 1:
        raise ConfigError(f"recordings_per_class must be a positive integer, got {recordings_per_class!r}")
    duration_s = machine.duration_s if duration_s is None else float(duration_s)
    if not duration_s > 0:
        raise ConfigError(f"duration_s must be positive, got {duration_s}")
    loads = list(dict.fromkeys(machine.loads if loads is None else loads))  # each load once, in the given order
    if not loads:
        raise ConfigError(f"loads is empty; choose from {list(machine.loads)}")
    for load in loads:
        machine.check_load(load)
    selected = list(CLASSES if classes is None else classes)
    unknown = [c for c in selected if c not in CLASSES]
    if unknown or not selected:
        raise ConfigError(f"unknown or no classes {unknown}; choose from {', '.join(CLASSES)}")
    selected = [c for c in CLASSES if c in selected]  # canonical order, no repeats

    recordings = []
    for label in selected:
        for r in range(int(recordings_per_class)):
            load = loads[r % len(loads)]
            index = r // len(loads) + 1
            rng = recording_rng(int(seed), label, load, index)
            severity = 0.0 if label == "normal" else float(rng.uniform(*SEVERITY_RANGE))
            rpm = round(machine.rpm_at(load) * (1.0 + rng.uniform(-RPM_SPREAD, RPM_SPREAD)), 1)
            signal = synthesize(label, machine, rpm, load, duration_s, rng, severity)
            recordings.append(Recording(
                id=f"{label}-L{load}-r{index:02d}",
                label=label,
                signal=signal,
                conditions={"load": int(load), "rpm": rpm},
                meta={"severity": severity, "seed": int(seed), "rng_key": [label, int(load), index]},
            ))
    return Dataset(
        sample_rate=machine.sample_rate,
        recordings=recordings,
        classes=selected,
        name=f"synth-{machine.name}-seed{seed}",
        provenance={"generator": "edgekit.data.synth", "preset": machine.name, "seed": int(seed),
                    "recordings_per_class": int(recordings_per_class), "duration_s": duration_s,
                    "loads": [int(x) for x in loads]},
    )
