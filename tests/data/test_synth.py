"""The synthetic generator produces the physics it claims: defect frequencies in the envelope, order lines with the
right shape and speed law, impulsiveness, a real sensor, and bit-identical datasets from a seed."""

from __future__ import annotations

import dataclasses
import math
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import signal, stats

from edgekit.data import synth_physics as phys
from edgekit.data.presets import PRESETS, Resonance, SensorModel, get_preset
from edgekit.data.synth import CLASSES, generate_dataset, synthesize
from edgekit.errors import ConfigError

MOTOR = get_preset("motor")


def envelope_spectrum(x: np.ndarray, fs: float, band: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """Amplitude spectrum of the Hilbert envelope of ``x`` band-passed to ``band``: the classic bearing check."""
    sos = signal.butter(4, band, btype="bandpass", fs=fs, output="sos")
    env = np.abs(signal.hilbert(signal.sosfiltfilt(sos, x.astype(np.float64))))
    env -= env.mean()
    return np.fft.rfftfreq(env.size, 1 / fs), np.abs(np.fft.rfft(env * np.hanning(env.size)))


def line_amplitude(x: np.ndarray, fs: float, freq: float, rel_width: float = 0.01) -> float:
    """Amplitude (g) of the spectral line at ``freq``: power summed over +-rel_width (at least +-4 bins, the Hann
    main lobe and more), so window scalloping and the slow speed wander do not bias it."""
    x = x.astype(np.float64) - x.mean()
    window = np.hanning(x.size)
    spectrum = np.fft.rfft(x * window)
    f = np.fft.rfftfreq(x.size, 1 / fs)
    band = np.abs(f - freq) <= max(rel_width * freq, 4 * fs / x.size)
    # Parseval with the Hann window's noise bandwidth (sum w^2): a sine of amplitude A gives A^2 / 2.
    power = 2 * np.sum(np.abs(spectrum[band]) ** 2) / (np.sum(window**2) * x.size)
    return math.sqrt(2 * power)


def peak_in(f: np.ndarray, spectrum: np.ndarray, lo: float, hi: float) -> float:
    sel = (f >= lo) & (f <= hi)
    return float(f[sel][np.argmax(spectrum[sel])])


def band_level(f: np.ndarray, spectrum: np.ndarray, freq: float, rel_width: float = 0.01) -> float:
    return float(spectrum[np.abs(f - freq) <= rel_width * freq].max())


def main_band(preset) -> tuple[float, float]:
    main = max(preset.resonances, key=lambda r: r.gain).freq_hz
    return 0.8 * main, 1.2 * main


# ---------------------------------------------------------------- presets


def test_presets_hold_the_documented_machines():
    assert MOTOR.sample_rate == 12000.0 and MOTOR.loads == (0, 1, 2, 3)
    assert MOTOR.rpm_at(0) == pytest.approx(1797.0) and MOTOR.rpm_at(3) == pytest.approx(1730.0)
    # 3.5848 x shaft speed is CWRU's published BPFO ratio for the 6205.
    assert MOTOR.bearing.bpfo(1.0) == pytest.approx(3.5848, rel=1e-3)
    assert any(abs(r.freq_hz - 3000) < 300 for r in MOTOR.resonances)
    assert any(abs(r.freq_hz - 3800) < 300 for r in MOTOR.resonances)
    pump = get_preset("pump")
    assert pump.sample_rate == 25600.0 and pump.rpm_nominal == 2950.0 and pump.bearing != MOTOR.bearing


def test_unknown_preset_lists_the_known_ones():
    with pytest.raises(ConfigError, match="unknown machine preset 'lathe'; known: motor, pump"):
        get_preset("lathe")


def test_preset_rejects_resonance_above_nyquist():
    with pytest.raises(ConfigError, match="above Nyquist"):
        dataclasses.replace(MOTOR, resonances=(Resonance(7000.0, 0.02, 1.0),))


def test_unknown_label_and_bad_arguments_are_config_errors():
    with pytest.raises(ConfigError, match="unknown machine state 'rust'; known: normal, imbalance"):
        synthesize("rust")
    with pytest.raises(ConfigError, match="severity must be >= 0"):
        synthesize("ball", duration_s=0.1, severity=-1.0)
    with pytest.raises(ConfigError, match="rpm must be a number or an array of 1200 samples"):
        synthesize("normal", rpm=np.full(10, 1797.0), duration_s=0.1)
    with pytest.raises(ConfigError, match="at least 16 samples"):
        synthesize("normal", duration_s=0.0001)


# ---------------------------------------------------------------- bearing faults: the envelope spectrum


@pytest.mark.parametrize("preset", sorted(PRESETS))
@pytest.mark.parametrize("label, key", [("outer_race", "bpfo"), ("inner_race", "bpfi"), ("ball", "2bsf")])
def test_bearing_fault_shows_its_defect_frequency_in_the_envelope(preset, label, key):
    machine = get_preset(preset)
    for load in (machine.loads[0], machine.loads[-1]):
        rpm = machine.rpm_at(load)
        x = synthesize(label, machine, rpm, load, 4.0, np.random.default_rng(load + 11), severity=0.5)
        f, spectrum = envelope_spectrum(x, machine.sample_rate, main_band(machine))
        expected = {"bpfo": machine.bearing.bpfo(rpm / 60), "bpfi": machine.bearing.bpfi(rpm / 60),
                    "2bsf": 2 * machine.bearing.bsf(rpm / 60)}[key]
        assert peak_in(f, spectrum, 20, 500) == pytest.approx(expected, rel=0.02), (preset, label, load)


def test_inner_race_envelope_has_shaft_sidebands():
    rpm = MOTOR.rpm_at(1)
    x = synthesize("inner_race", MOTOR, rpm, 1, 4.0, np.random.default_rng(5), severity=1.0)
    f, spectrum = envelope_spectrum(x, MOTOR.sample_rate, main_band(MOTOR))
    floor = np.median(spectrum[(f > 20) & (f < 500)])
    bpfi, shaft = MOTOR.bearing.bpfi(rpm / 60), rpm / 60
    # The defect passes through the load zone once per revolution: BPFI +- 1x stand out of the floor.
    assert band_level(f, spectrum, bpfi - shaft, 0.005) > 5 * floor
    assert band_level(f, spectrum, bpfi + shaft, 0.005) > 5 * floor
    assert band_level(f, spectrum, bpfi) > band_level(f, spectrum, bpfi - shaft, 0.005)


def test_ball_envelope_has_cage_sidebands():
    rpm = MOTOR.rpm_at(0)
    x = synthesize("ball", MOTOR, rpm, 0, 4.0, np.random.default_rng(6), severity=1.0)
    f, spectrum = envelope_spectrum(x, MOTOR.sample_rate, main_band(MOTOR))
    floor = np.median(spectrum[(f > 20) & (f < 500)])
    two_bsf, ftf = 2 * MOTOR.bearing.bsf(rpm / 60), MOTOR.bearing.ftf(rpm / 60)
    # The cage carries the ball through the load zone: 2 x BSF +- FTF.
    assert band_level(f, spectrum, two_bsf - ftf, 0.005) > 5 * floor
    assert band_level(f, spectrum, two_bsf + ftf, 0.005) > 5 * floor


def test_outer_race_envelope_of_a_healthy_machine_has_no_bpfo_line():
    rpm = MOTOR.rpm_at(0)
    x = synthesize("normal", MOTOR, rpm, 0, 4.0, np.random.default_rng(5))
    f, spectrum = envelope_spectrum(x, MOTOR.sample_rate, main_band(MOTOR))
    floor = np.median(spectrum[(f > 20) & (f < 500)])
    assert band_level(f, spectrum, MOTOR.bearing.bpfo(rpm / 60)) < 5 * floor


def test_load_and_severity_raise_the_impacts():
    def impact_rms(load, severity):
        x = synthesize("outer_race", MOTOR, 1797.0, load, 2.0, np.random.default_rng(9), severity=severity)
        sos = signal.butter(4, main_band(MOTOR), btype="bandpass", fs=MOTOR.sample_rate, output="sos")
        return float(np.std(signal.sosfiltfilt(sos, x.astype(np.float64))))

    base = impact_rms(0, 1.0)
    # load_impact_gain 0.25 per unit load: load 3 hits 1.75 times harder (less the noise, which does not grow).
    assert 1.5 < impact_rms(3, 1.0) / base < 1.8
    assert 1.8 < impact_rms(0, 2.0) / base < 2.05


# ---------------------------------------------------------------- rotor faults: order lines


def order_amplitudes(label, seed=3, rpm=1797.0, orders=(0.5, 1, 1.5, 2, 2.5, 3)):
    x = synthesize(label, MOTOR, rpm, 0, 4.0, np.random.default_rng(seed))
    return {k: line_amplitude(x, MOTOR.sample_rate, k * rpm / 60) for k in orders}


def test_imbalance_1x_dominates_the_low_band():
    rpm = 1797.0
    x = synthesize("imbalance", MOTOR, rpm, 0, 4.0, np.random.default_rng(1))
    f = np.fft.rfftfreq(x.size, 1 / MOTOR.sample_rate)
    spectrum = np.abs(np.fft.rfft((x - x.mean()) * np.hanning(x.size)))
    assert peak_in(f, spectrum, 5, 500) == pytest.approx(rpm / 60, rel=0.01)
    lines = order_amplitudes("imbalance", seed=1)
    # FaultLevels.imbalance_g = 0.25 g at severity 1, plus the 0.012 g residual 1x at a random phase.
    assert lines[1] == pytest.approx(0.25, abs=0.02)
    assert lines[1] > 10 * max(v for k, v in lines.items() if k != 1)


def test_imbalance_grows_with_the_square_of_speed():
    # Same seed: same phases, wander and noise, only the speed differs.
    fast = order_amplitudes("imbalance", seed=2, rpm=1797.0, orders=(1,))[1]
    slow = order_amplitudes("imbalance", seed=2, rpm=1200.0, orders=(1,))[1]
    assert fast / slow == pytest.approx((1797.0 / 1200.0) ** 2, rel=0.03)


def test_misalignment_2x_exceeds_1x_and_brings_3x():
    lines, healthy = order_amplitudes("misalignment"), order_amplitudes("normal")
    assert lines[2] > 1.5 * lines[1]
    assert lines[3] > 10 * healthy[3]
    assert lines[1] > 3 * healthy[1]


def test_looseness_brings_half_harmonics():
    lines, healthy = order_amplitudes("looseness"), order_amplitudes("normal")
    assert lines[0.5] > 4 * healthy[0.5]
    assert lines[1.5] > 4 * healthy[1.5] and lines[2.5] > 3 * healthy[2.5]
    # The truncation spreads energy into many harmonics of 0.5x.
    many = order_amplitudes("looseness", orders=np.arange(1, 13) / 2)
    quiet = order_amplitudes("normal", orders=np.arange(1, 13) / 2)
    assert sum(many[k] > 2 * quiet[k] for k in many) >= 8


# ---------------------------------------------------------------- statistics and the sensor


@pytest.mark.parametrize("seed", [0, 1])
def test_healthy_machine_is_gaussian_and_bearing_faults_are_impulsive(seed):
    kurt = {label: stats.kurtosis(synthesize(label, MOTOR, None, 1, 3.0, seed).astype(np.float64), fisher=False)
            for label in ("normal", "outer_race", "inner_race", "ball")}
    assert kurt["normal"] == pytest.approx(3.0, abs=0.15)
    for label in ("outer_race", "inner_race", "ball"):
        assert kurt[label] > 5.0, (label, kurt[label])


def test_clipping_and_adc_steps():
    tight = dataclasses.replace(MOTOR, sensor=SensorModel(clip_g=0.5, adc_bits=12))
    x = synthesize("outer_race", tight, None, 3, 2.0, 4, severity=2.0)
    assert x.dtype == np.float32 and x.shape == (24000,)
    assert np.abs(x).max() <= 0.5
    assert np.sum(np.abs(x) == np.float32(0.5)) > 10  # the impacts really hit the rails
    lsb = 1.0 / 2**12
    steps = x.astype(np.float64) / lsb
    np.testing.assert_allclose(steps, np.round(steps), atol=1e-3)


def test_same_generator_state_gives_the_same_signal():
    a = synthesize("ball", MOTOR, None, 2, 1.0, np.random.default_rng(42))
    b = synthesize("ball", MOTOR, None, 2, 1.0, np.random.default_rng(42))
    c = synthesize("ball", MOTOR, None, 2, 1.0, np.random.default_rng(43))
    assert a.tobytes() == b.tobytes() and not np.array_equal(a, c)


@settings(max_examples=15, deadline=None)
@given(label=st.sampled_from(CLASSES), seed=st.integers(0, 2**32), load=st.sampled_from(MOTOR.loads),
       severity=st.floats(0, 3), duration=st.floats(0.01, 0.3))
def test_any_state_gives_finite_float32_within_range(label, seed, load, severity, duration):
    x = synthesize(label, MOTOR, None, load, duration, seed, severity)
    assert x.dtype == np.float32 and x.shape == (int(round(duration * MOTOR.sample_rate)),)
    assert np.all(np.isfinite(x)) and np.abs(x).max() <= MOTOR.sensor.clip_g


# ---------------------------------------------------------------- building blocks against obvious references


def test_structure_response_matches_the_analytic_ringing_at_fractional_positions():
    fs, n = 12000.0, 3000
    modes = (Resonance(3000.0, 0.02, 1.0), Resonance(1000.0, 0.05, 0.3))
    positions = np.array([10.0, 100.25, 1500.7, 2999.5])
    amplitudes = np.array([1.0, -0.5, 2.0, 1.0])
    scale = np.ones(n)
    scale[1200:] = 0.85  # the structure changes under the third impact's feet
    y = phys.structure_response(n, fs, modes, positions, amplitudes, np.zeros(n), 0.0, scale)
    t = np.arange(n)
    expected = np.zeros(n)
    for pos, amp in zip(positions, amplitudes):
        factor = scale[min(math.ceil(pos), n - 1)]
        for mode in modes:
            w = 2 * math.pi * mode.freq_hz * factor
            tau = (t - pos) / fs
            ring = np.exp(-mode.damping * w * tau) * np.sin(w * math.sqrt(1 - mode.damping**2) * tau)
            expected += amp * mode.gain * np.where(tau >= 0, ring, 0.0)
    # The ring-down is cut at 1e-5 of its start.
    np.testing.assert_allclose(y, expected, atol=5e-5)


def test_impacts_follow_the_shaft_angle():
    fs = 12000.0
    freq = np.full(24000, 30.0)
    pos = phys.impact_positions(freq, 3.5, fs, jitter=0.0, rng=np.random.default_rng(0))
    np.testing.assert_allclose(np.diff(pos), fs / (3.5 * 30.0), rtol=1e-9)
    # Half speed in the second half: the impacts space out twice as far.
    freq[12000:] = 15.0
    pos = phys.impact_positions(freq, 3.5, fs, jitter=0.0, rng=np.random.default_rng(0))
    np.testing.assert_allclose(np.diff(pos[pos > 12100]), fs / (3.5 * 15.0), rtol=1e-9)


def test_pink_noise_power_falls_as_one_over_f():
    x = phys.pink_noise(2**16, np.random.default_rng(0))
    f, p = signal.welch(x, 1.0, nperseg=4096)
    slope = np.polyfit(np.log(f[2:1000]), np.log(p[2:1000]), 1)[0]
    assert slope == pytest.approx(-1.0, abs=0.1) and np.std(x) == pytest.approx(1.0)


def test_generator_needs_no_scipy():
    code = ("import sys; import edgekit.data.synth, edgekit.data.scenarios; "
            "edgekit.data.scenarios.generate_scenario('spikes', duration_s=2.0); "
            "assert not [m for m in sys.modules if m.split('.')[0] == 'scipy'], 'scipy was imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


# ---------------------------------------------------------------- datasets


@pytest.fixture(scope="module")
def small() -> "object":
    return generate_dataset(seed=7, recordings_per_class=5, duration_s=0.5)


def test_dataset_layout(small):
    assert small.classes == list(CLASSES) and len(small) == 5 * len(CLASSES)
    ids = [r.id for r in small]
    assert len(set(ids)) == len(ids)
    balls = [r for r in small if r.label == "ball"]
    assert [r.id for r in balls] == ["ball-L0-r01", "ball-L1-r01", "ball-L2-r01", "ball-L3-r01", "ball-L0-r02"]
    assert [r.conditions["load"] for r in balls] == [0, 1, 2, 3, 0]
    assert all(r.n_samples == 6000 and r.signal.dtype == np.float32 for r in small)
    assert small.provenance == {"generator": "edgekit.data.synth", "preset": "motor", "seed": 7,
                                "recordings_per_class": 5, "duration_s": 0.5, "loads": [0, 1, 2, 3]}


def test_rpm_falls_with_load_and_severity_varies(small):
    for label in CLASSES:
        recs = [r for r in small if r.label == label and r.id.endswith("r01")]
        rpms = [r.conditions["rpm"] for r in sorted(recs, key=lambda r: r.conditions["load"])]
        assert all(a > b for a, b in zip(rpms, rpms[1:])), rpms
        for r in recs:
            assert r.conditions["rpm"] == pytest.approx(MOTOR.rpm_at(r.conditions["load"]), rel=0.003)
    faults = [r.meta["severity"] for r in small if r.label != "normal"]
    assert all(0.5 <= s <= 1.5 for s in faults) and len(set(faults)) == len(faults)
    assert {r.meta["severity"] for r in small if r.label == "normal"} == {0.0}
    assert {r.meta["seed"] for r in small} == {7}


def test_dataset_is_bit_identical_by_seed_and_independent_of_selection(small):
    again = generate_dataset(seed=7, recordings_per_class=5, duration_s=0.5)
    assert again.version == small.version
    assert all(a.signal.tobytes() == b.signal.tobytes() for a, b in zip(small, again))
    other = generate_dataset(seed=8, recordings_per_class=5, duration_s=0.5)
    assert other.version != small.version
    # A recording is keyed by what it is: asking for one class and fewer recordings gives the same bits.
    subset = generate_dataset(seed=7, recordings_per_class=2, duration_s=0.5, classes=["ball"], loads=[1])
    assert [r.id for r in subset] == ["ball-L1-r01", "ball-L1-r02"]
    assert subset.recordings[0].signal.tobytes() == small.recording("ball-L1-r01").signal.tobytes()


def test_pump_dataset_uses_the_pump_loads():
    ds = generate_dataset("pump", seed=0, recordings_per_class=3, duration_s=0.2, classes=["normal", "ball"])
    assert ds.sample_rate == 25600.0 and ds.classes == ["normal", "ball"]
    assert [r.conditions["load"] for r in ds] == [0, 1, 2, 0, 1, 2]


@pytest.mark.parametrize("kwargs, message", [
    ({"loads": [7]}, "preset 'motor' has no load 7; its loads are \\[0, 1, 2, 3\\]"),
    ({"classes": ["rust"]}, "unknown or no classes \\['rust'\\]; choose from normal"),
    ({"recordings_per_class": 0}, "recordings_per_class must be a positive integer"),
    ({"seed": -1}, "seed must be a non-negative integer"),
    ({"duration_s": 0}, "duration_s must be positive"),
    ({"preset": "lathe"}, "unknown machine preset 'lathe'"),
])
def test_generate_dataset_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        generate_dataset(**kwargs)
