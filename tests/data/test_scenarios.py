"""Every drift scenario injects exactly what its meta says, where it says, and the same seed gives the same bits."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import signal, stats

from edgekit.data.presets import get_preset
from edgekit.data.scenarios import SCENARIOS, generate_scenario
from edgekit.data.synth import CLASSES
from edgekit.errors import ConfigError

MOTOR = get_preset("motor")
DURATION = 8.0  # seconds: long enough for spectra on each side, short enough to keep the file fast
N = int(DURATION * MOTOR.sample_rate)


def runs(mask: np.ndarray) -> list[list[int]]:
    """[start, length] of every run of True in ``mask``."""
    edges = np.diff(np.concatenate(([0], mask.astype(np.int8), [0])))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    return [[int(s), int(e - s)] for s, e in zip(starts, ends)]


@pytest.fixture(scope="module")
def scenario():
    """One recording per scenario name, generated once for the module."""
    cache = {}

    def get(name: str):
        if name not in cache:
            cache[name] = generate_scenario(name, seed=5, duration_s=DURATION).recordings[0]
        return cache[name]

    return get


def test_unknown_scenario_lists_the_known_ones():
    with pytest.raises(ConfigError, match="unknown scenario 'meteor'; known: gain_change, resonance_shift"):
        generate_scenario("meteor")


@pytest.mark.parametrize("kwargs, message", [
    ({"change_at": 1.0}, "change_at is a fraction of the recording and must be between 0 and 1"),
    ({"change_at": 0.0}, "change_at is a fraction"),
    ({"duration_s": 0.6}, "leaves under 0.5 s on one side of the change"),
    ({"seed": -3}, "seed must be a non-negative integer"),
    ({"preset": "lathe"}, "unknown machine preset 'lathe'"),
])
def test_bad_arguments_are_config_errors(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        generate_scenario("spikes", **kwargs)


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_scenario_is_deterministic_and_documented(name, scenario):
    rec = scenario(name)
    again = generate_scenario(name, seed=5, duration_s=DURATION)
    assert again.recordings[0].signal.tobytes() == rec.signal.tobytes()
    other = generate_scenario(name, seed=6, duration_s=DURATION).recordings[0]
    assert not np.array_equal(other.signal, rec.signal, equal_nan=True)
    assert again.classes == list(CLASSES) and again.name == f"scenario-{name}"
    assert again.provenance == {"generator": "edgekit.data.scenarios", "scenario": name, "preset": "motor",
                                "seed": 5, "duration_s": DURATION, "change_at": 0.5}
    assert rec.id == f"{name}-seed5" and rec.label == "normal" and rec.n_samples == N
    assert rec.meta["change_sample"] == N // 2 and rec.meta["description"] == SCENARIOS[name]
    assert rec.conditions == {"load": 0, "rpm": 1797.0}
    json.dumps(rec.meta)  # it goes into dataset.json as it is


def test_gain_change_multiplies_the_signal_by_1_5(scenario):
    rec = scenario("gain_change")
    x, c = rec.signal.astype(np.float64), rec.meta["injected"]["change_sample"]
    assert rec.meta["injected"]["gain_after"] / rec.meta["injected"]["gain_before"] == 1.5
    assert np.std(x[c:]) / np.std(x[:c]) == pytest.approx(1.5, rel=0.03)
    # Nothing else changed: the first half is an ordinary healthy machine.
    assert stats.kurtosis(x[:c], fisher=False) == pytest.approx(3.0, abs=0.2)


def test_resonance_shift_moves_the_resonance_peak(scenario):
    rec = scenario("resonance_shift")
    x, injected = rec.signal.astype(np.float64), rec.meta["injected"]
    c = injected["change_sample"]
    # A few ring-down times after the change, so the old structure's ringing is gone.
    peaks = []
    for part in (x[:c], x[c + 1000:]):
        f, psd = signal.welch(part, MOTOR.sample_rate, nperseg=4096)
        band = (f > 2000) & (f < 5000)
        peaks.append(f[band][np.argmax(psd[band])])
    assert injected["factor"] == 0.85 and injected["resonances_hz_after"][0] == pytest.approx(2550.0)
    assert peaks[0] == pytest.approx(injected["resonances_hz_before"][0], rel=0.03)
    assert peaks[1] == pytest.approx(injected["resonances_hz_after"][0], rel=0.03)


def test_speed_change_moves_the_shaft_line(scenario):
    rec = scenario("speed_change")
    x, injected = rec.signal.astype(np.float64), rec.meta["injected"]
    c, ramp = injected["change_sample"], injected["ramp_samples"]
    assert injected["rpm_after"] == pytest.approx(0.85 * injected["rpm_before"]) and ramp == 6000
    for part, rpm in ((x[:c], injected["rpm_before"]), (x[c + ramp:], injected["rpm_after"])):
        f = np.fft.rfftfreq(part.size, 1 / MOTOR.sample_rate)
        spectrum = np.abs(np.fft.rfft((part - part.mean()) * np.hanning(part.size)))
        band = (f > 10) & (f < 40)
        assert f[band][np.argmax(spectrum[band])] == pytest.approx(rpm / 60, rel=0.01)


def test_fault_growth_crosses_its_thresholds_where_meta_says(scenario):
    rec = scenario("fault_growth")
    x, injected = rec.signal.astype(np.float64), rec.meta["injected"]
    c = injected["onset_sample"]
    assert rec.label == "normal" and injected["fault"] == "outer_race"
    # severity = ((i - c + 1) / (N - c))**2 from the onset: the first sample at or above t.
    for threshold, sample in injected["threshold_samples"].items():
        assert sample == c + math.ceil(math.sqrt(float(threshold)) * (N - c)) - 1
    assert injected["threshold_samples"]["1.0"] == N - 1
    second = int(MOTOR.sample_rate)
    assert stats.kurtosis(x[:c], fisher=False) == pytest.approx(3.0, abs=0.2)
    assert stats.kurtosis(x[-second:], fisher=False) > 6.0
    # The last second carries the outer-race signature: its envelope peaks at BPFO.
    sos = signal.butter(4, (2400, 3600), btype="bandpass", fs=MOTOR.sample_rate, output="sos")
    env = np.abs(signal.hilbert(signal.sosfiltfilt(sos, x[-2 * second:])))
    f = np.fft.rfftfreq(env.size, 1 / MOTOR.sample_rate)
    spectrum = np.abs(np.fft.rfft((env - env.mean()) * np.hanning(env.size)))
    band = (f > 20) & (f < 500)
    assert f[band][np.argmax(spectrum[band])] == pytest.approx(MOTOR.bearing.bpfo(1797.0 / 60), rel=0.02)


def test_flatline_holds_the_last_value(scenario):
    rec = scenario("flatline")
    x, injected = rec.signal, rec.meta["injected"]
    start, span = injected["start_sample"], injected["n_samples"]
    assert span == round(0.05 * N)
    assert np.all(x[start:start + span] == np.float32(injected["value"])) and x[start - 1] == x[start]
    assert x[start + span] != x[start]
    # The stuck span (with the sample it copies) is the only long flat stretch in the recording.
    flat = sorted(runs(np.diff(x) == 0), key=lambda r: r[1])
    assert flat[-1] == [start - 1, span] and flat[-2][1] < 5


def test_spikes_are_exactly_where_and_as_many_as_meta_says(scenario):
    rec = scenario("spikes")
    x, injected = rec.signal, rec.meta["injected"]
    found = np.flatnonzero(np.abs(x) > 0.4 * MOTOR.sensor.clip_g)
    assert injected["count"] == 20 and len(found) == injected["count"]
    assert found.tolist() == injected["positions"]
    assert np.all(np.diff(found) >= 100) and found[0] >= rec.meta["change_sample"]
    np.testing.assert_array_equal(x[found], np.float32(injected["amplitudes_g"]))


def test_nan_bursts_count_exactly(scenario):
    rec = scenario("nan_bursts")
    x, injected = rec.signal, rec.meta["injected"]
    assert int(np.isnan(x).sum()) == injected["n_nan"]
    assert runs(np.isnan(x)) == injected["bursts"] and len(injected["bursts"]) == injected["count"] == 5
    assert all(start >= rec.meta["change_sample"] for start, _ in injected["bursts"])


def test_dropouts_are_spans_of_exact_zeros(scenario):
    rec = scenario("dropouts")
    x, injected = rec.signal, rec.meta["injected"]
    # The ADC reads an exact zero now and then by itself; a dropout is a run of them.
    long_zero_runs = [r for r in runs(x == 0.0) if r[1] >= 10]
    assert long_zero_runs == injected["spans"] and len(long_zero_runs) == injected["count"] == 3
    assert sum(length for _, length in injected["spans"]) == injected["n_samples"]
    assert all(0.05 * MOTOR.sample_rate <= length <= 0.2 * MOTOR.sample_rate for _, length in injected["spans"])


def test_scenarios_work_on_the_pump():
    rec = generate_scenario("resonance_shift", preset="pump", seed=1, duration_s=4.0, change_at=0.25).recordings[0]
    x, c = rec.signal.astype(np.float64), rec.meta["change_sample"]
    assert c == 25600 and rec.meta["injected"]["resonances_hz_after"][0] == pytest.approx(5600.0 * 0.85)
    f, psd = signal.welch(x[c + 2000:], 25600.0, nperseg=4096)
    band = (f > 4000) & (f < 7000)
    assert f[band][np.argmax(psd[band])] == pytest.approx(5600.0 * 0.85, rel=0.03)
