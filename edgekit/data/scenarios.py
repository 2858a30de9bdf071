"""Drift and data-quality scenarios: one long recording of a machine in which something changes at a known sample.

Monitoring code (drift detectors, data-quality checks, alerting) is tested against these: each recording's meta
says exactly what was injected and where (sample indices, counts), so a test can compare what a detector found
with what happened. Before the change point every scenario is an ordinary healthy machine from
``edgekit.data.synth``; the recording's label is the machine's true class at the start.

>>> ds = generate_scenario("spikes", seed=3, duration_s=4.0)
>>> rec = ds.recordings[0]
>>> rec.label, rec.meta["injected"]["count"] == len(rec.meta["injected"]["positions"])
('normal', True)
"""

from __future__ import annotations

import zlib
from typing import Any, Callable

import numpy as np

from edgekit.data.presets import MachinePreset, get_preset
from edgekit.data.store import Dataset, Recording
from edgekit.data.synth import CLASSES, synthesize
from edgekit.errors import ConfigError

SCENARIOS: dict[str, str] = {
    "gain_change": "the sensor's sensitivity steps by x1.5 at the change point (re-mounted or re-calibrated sensor)",
    "resonance_shift": "every structural resonance drops by 15% at the change point (mounting change, crack)",
    "speed_change": "the shaft speed falls by 15% over 0.5 s at the change point (new speed set point)",
    "fault_growth": "an outer-race defect appears at the change point and grows quadratically to severity 1",
    "flatline": "the sensor output sticks at its last value for 5% of the recording from the change point",
    "spikes": "isolated single-sample spikes of 50-90% full scale after the change point (electrical transients)",
    "nan_bursts": "bursts of NaN samples after the change point (lost packets)",
    "dropouts": "spans of exact zeros after the change point (sensor cable disconnected)",
}

GAIN_STEP = 1.5
RESONANCE_FACTOR = 0.85
SPEED_FACTOR = 0.85
SPEED_RAMP_S = 0.5
FAULT = "outer_race"
FAULT_THRESHOLDS = (0.1, 0.25, 0.5, 1.0)
FLATLINE_FRACTION = 0.05
SPIKE_COUNT = 20
SPIKE_MIN_GAP = 100  # samples between spikes, so each stands alone in any window a detector uses
NAN_BURSTS = (5, 10, 200)  # count, shortest, longest (samples)
DROPOUTS = (3, 0.05, 0.2)  # count, shortest, longest (seconds)
_MIN_SIDE_S = 0.5  # each side of the change point, so before and after can be compared

# A builder gets the machine, the sample count, the change sample and two generators (one for the machine's
# signal, one for what is injected) and returns the signal, the label and what it injected.
_Builder = Callable[[MachinePreset, int, int, np.random.Generator, np.random.Generator],
                    tuple[np.ndarray, str, dict[str, Any]]]


def _load(machine: MachinePreset) -> int:
    return machine.loads[0]


def _step(n: int, change: int, before: float, after: float) -> np.ndarray:
    profile = np.full(n, before)
    profile[change:] = after
    return profile


def _gain_change(machine, n, change, rng, _inject):
    gain = _step(n, change, 1.0, GAIN_STEP)
    x = synthesize("normal", machine, None, _load(machine), n / machine.sample_rate, rng, sensor_gain=gain)
    return x, "normal", {"change_sample": change, "gain_before": 1.0, "gain_after": GAIN_STEP}


def _resonance_shift(machine, n, change, rng, _inject):
    scale = _step(n, change, 1.0, RESONANCE_FACTOR)
    x = synthesize("normal", machine, None, _load(machine), n / machine.sample_rate, rng, resonance_scale=scale)
    before = [r.freq_hz for r in machine.resonances]
    return x, "normal", {"change_sample": change, "factor": RESONANCE_FACTOR, "resonances_hz_before": before,
                         "resonances_hz_after": [f * RESONANCE_FACTOR for f in before]}


def _speed_change(machine, n, change, rng, _inject):
    rpm_before = machine.rpm_at(_load(machine))
    rpm_after = rpm_before * SPEED_FACTOR
    ramp = min(int(round(SPEED_RAMP_S * machine.sample_rate)), n - change)
    # The rotor's inertia turns a new set point into a ramp, not a jump.
    rpm = _step(n, change, rpm_before, rpm_after)
    rpm[change:change + ramp] = np.linspace(rpm_before, rpm_after, ramp, endpoint=False)
    x = synthesize("normal", machine, rpm, _load(machine), n / machine.sample_rate, rng)
    return x, "normal", {"change_sample": change, "ramp_samples": ramp, "rpm_before": rpm_before,
                         "rpm_after": rpm_after}


def _fault_growth(machine, n, change, rng, _inject):
    severity = np.zeros(n)
    # Spalls grow faster as they grow (each impact enlarges the defect), hence quadratic rather than linear.
    severity[change:] = ((np.arange(n - change) + 1.0) / (n - change)) ** 2
    x = synthesize(FAULT, machine, None, _load(machine), n / machine.sample_rate, rng, severity=severity)
    crossings = {str(t): int(np.argmax(severity >= t)) for t in FAULT_THRESHOLDS}
    return x, "normal", {"fault": FAULT, "onset_sample": change, "growth": "quadratic", "final_severity": 1.0,
                         "threshold_samples": crossings}


def _healthy(machine, n, rng) -> np.ndarray:
    return synthesize("normal", machine, None, _load(machine), n / machine.sample_rate, rng)


def _flatline(machine, n, change, rng, _inject):
    x = _healthy(machine, n, rng)
    span = min(max(1, int(round(FLATLINE_FRACTION * n))), n - change)
    value = x[change - 1]
    x[change:change + span] = value
    return x, "normal", {"start_sample": change, "n_samples": span, "value": float(value)}


def _spikes(machine, n, change, rng, inject):
    x = _healthy(machine, n, rng)
    slots = (n - change) // (2 * SPIKE_MIN_GAP)
    count = min(SPIKE_COUNT, slots)
    # One spike in each of ``count`` distinct slots of 2 * gap samples, in the slot's first half: any two are
    # at least ``gap`` apart.
    chosen = np.sort(inject.choice(slots, size=count, replace=False))
    positions = change + chosen * 2 * SPIKE_MIN_GAP + inject.integers(0, SPIKE_MIN_GAP, size=count)
    clip = machine.sensor.clip_g
    amplitudes = inject.choice([-1.0, 1.0], size=count) * inject.uniform(0.5, 0.9, size=count) * clip
    x[positions] = amplitudes
    return x, "normal", {"count": int(count), "positions": [int(p) for p in positions],
                         "amplitudes_g": [float(a) for a in x[positions]]}


def _spans(inject: np.random.Generator, start: int, end: int, count: int, shortest: int,
           longest: int) -> list[tuple[int, int]]:
    """``count`` (start, length) spans inside [start, end), one per equal slot, never touching each other."""
    slot = (end - start) // count
    longest = min(longest, slot - 2)
    if longest < shortest:
        raise ConfigError("the recording is too short after the change point for the injected spans; "
                          "raise duration_s or lower change_at")
    spans = []
    for k in range(count):
        length = int(inject.integers(shortest, longest + 1))
        first = start + k * slot + 1 + int(inject.integers(0, slot - length - 1))
        spans.append((first, length))
    return spans


def _nan_bursts(machine, n, change, rng, inject):
    x = _healthy(machine, n, rng)
    count, shortest, longest = NAN_BURSTS
    spans = _spans(inject, change, n, count, shortest, longest)
    for first, length in spans:
        x[first:first + length] = np.nan
    return x, "normal", {"count": count, "n_nan": sum(length for _, length in spans),
                         "bursts": [[first, length] for first, length in spans]}


def _dropouts(machine, n, change, rng, inject):
    x = _healthy(machine, n, rng)
    count, shortest_s, longest_s = DROPOUTS
    fs = machine.sample_rate
    spans = _spans(inject, change, n, count, int(shortest_s * fs), int(longest_s * fs))
    for first, length in spans:
        x[first:first + length] = 0.0
    return x, "normal", {"count": count, "n_samples": sum(length for _, length in spans), "fill": 0.0,
                         "spans": [[first, length] for first, length in spans]}


_BUILDERS: dict[str, _Builder] = {
    "gain_change": _gain_change,
    "resonance_shift": _resonance_shift,
    "speed_change": _speed_change,
    "fault_growth": _fault_growth,
    "flatline": _flatline,
    "spikes": _spikes,
    "nan_bursts": _nan_bursts,
    "dropouts": _dropouts,
}


def generate_scenario(name: str, preset: str | MachinePreset = "motor", seed: int = 0, duration_s: float = 60.0,
                      change_at: float = 0.5) -> Dataset:
    """A dataset of one ``duration_s`` recording in which scenario ``name`` starts at ``change_at`` (a fraction
    of the recording). ``meta["injected"]`` says what was injected and at which samples; the same arguments
    always give the same bits.
    """
    if name not in _BUILDERS:
        raise ConfigError(f"unknown scenario {name!r}; known: {', '.join(SCENARIOS)}")
    machine = get_preset(preset)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {seed!r}")
    if not 0 < change_at < 1:
        raise ConfigError(f"change_at is a fraction of the recording and must be between 0 and 1, got {change_at}")
    if not duration_s * min(change_at, 1 - change_at) >= _MIN_SIDE_S:
        raise ConfigError(
            f"duration_s={duration_s} with change_at={change_at} leaves under {_MIN_SIDE_S} s on one side of the "
            "change; make the recording longer or move the change point"
        )
    fs = machine.sample_rate
    n = int(round(duration_s * fs))
    change = int(round(change_at * n))
    # Keyed by the scenario's name: a scenario's recording does not depend on which others were generated.
    signal_seq, inject_seq = np.random.SeedSequence(int(seed), spawn_key=(zlib.crc32(name.encode("ascii")),)).spawn(2)
    signal, label, injected = _BUILDERS[name](machine, n, change, np.random.default_rng(signal_seq),
                                              np.random.default_rng(inject_seq))
    load = _load(machine)
    recording = Recording(
        id=f"{name}-seed{seed}",
        label=label,
        signal=signal,
        conditions={"load": int(load), "rpm": round(machine.rpm_at(load), 1)},
        meta={"scenario": name, "description": SCENARIOS[name], "seed": int(seed), "change_sample": change,
              "injected": injected},
    )
    return Dataset(
        sample_rate=fs,
        recordings=[recording],
        classes=list(CLASSES),
        name=f"scenario-{name}",
        provenance={"generator": "edgekit.data.scenarios", "scenario": name, "preset": machine.name,
                    "seed": int(seed), "duration_s": float(duration_s), "change_at": float(change_at)},
    )
