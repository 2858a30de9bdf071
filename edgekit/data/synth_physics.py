"""Building blocks of the synthetic vibration model: shaft speed, order lines, defect impacts, structure, noise,
sensor.

Each block does one physical thing and takes its own random generator, so the fault models in
``edgekit.data.synth`` and the drift scenarios in ``edgekit.data.scenarios`` compose the same physics. numpy only:
the device runtime reuses this for its ``synth:`` sources, where scipy is not installed.

Time-varying operating points (a speed step, a growing fault, a gain change) are per-sample arrays; a scalar
means constant.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from edgekit.data.presets import Resonance, SensorModel
from edgekit.errors import ConfigError

# Ring-down is cut where the envelope falls below exp(-11.5) = 1e-5 of its start: below a 16-bit LSB at full scale.
_RINGDOWN_DECAYS = 11.5


def as_profile(value: float | np.ndarray, n: int, what: str) -> np.ndarray:
    """``value`` as a float64 array of ``n`` samples; a scalar is broadcast, an array must have ``n`` samples."""
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim == 0:
        return np.full(n, float(arr))
    if arr.shape != (n,):
        raise ConfigError(f"{what} must be a number or an array of {n} samples (one per sample), got shape {arr.shape}")
    return arr


def shaft_speed(rpm: np.ndarray, fs: float, fluctuation: float, bandwidth_hz: float,
                rng: np.random.Generator) -> np.ndarray:
    """Instantaneous shaft frequency in Hz per sample: the commanded ``rpm`` with a slow random wander.

    Real shafts never turn at exactly one speed (supply frequency, load torque ripple); the wander is what smears
    the higher harmonics of defect frequencies in real spectra. Independent random values at knots spaced
    1 / (2 * bandwidth) apart are interpolated linearly, so the wander stays mostly below ``bandwidth_hz``.
    """
    n = rpm.shape[0]
    spacing = max(1, int(round(fs / (2.0 * bandwidth_hz))))
    knots = rng.standard_normal(n // spacing + 2) * fluctuation
    wander = np.interp(np.arange(n), np.arange(knots.shape[0]) * spacing, knots)
    return rpm / 60.0 * (1.0 + wander)


def phase_of(freq_hz: np.ndarray, fs: float) -> np.ndarray:
    """Phase in radians of a rotation at ``freq_hz`` (per sample), starting at 0 on the first sample."""
    phase = np.cumsum(freq_hz) * (2.0 * math.pi / fs)
    return phase - phase[0]


def order_lines(phase: np.ndarray, speed_ratio: np.ndarray, orders: Sequence[tuple[float, float]],
                rng: np.random.Generator) -> np.ndarray:
    """Sum of shaft-order lines ``amplitude * (f / f_ref)**2 * cos(order * phase + random phase)``.

    Rotor forces (imbalance, misalignment) are centrifugal or stiffness forces on a rotating mass, so the
    acceleration they cause grows with the square of speed; ``speed_ratio`` is f / f_ref per sample.
    """
    out = np.zeros(phase.shape[0])
    for order, amplitude in orders:
        offset = rng.uniform(0.0, 2.0 * math.pi)
        out += amplitude * np.cos(order * phase + offset)
    return out * speed_ratio**2


def impact_positions(freq_hz: np.ndarray, events_per_rev: float, fs: float, jitter: float,
                     rng: np.random.Generator) -> np.ndarray:
    """Fractional sample positions of defect impacts happening ``events_per_rev`` times per shaft revolution.

    Impacts are placed on the shaft's own angle, so a speed change moves them correctly, and each interval is
    stretched by a random ``jitter`` (relative standard deviation): rolling elements slip, so real impacts are
    never exactly periodic, which keeps the envelope spectrum's higher harmonics from being unrealistically sharp.

    >>> pos = impact_positions(np.full(12000, 30.0), 4.0, 12000.0, jitter=0.0, rng=np.random.default_rng(0))
    >>> len(pos), np.diff(pos)[:3]  # 120 impacts a second, one every 100 samples
    (120, array([100., 100., 100.]))
    """
    n = freq_hz.shape[0]
    cycles = (np.cumsum(freq_hz) - freq_hz[0]) * (events_per_rev / fs)
    total = float(cycles[-1])
    count = int(total * 1.2) + 8
    steps = np.clip(1.0 + jitter * rng.standard_normal(count), 0.5, 1.5)
    targets = rng.uniform() + np.concatenate(([0.0], np.cumsum(steps[:-1])))
    targets = targets[targets < total]
    return np.interp(targets, cycles, np.arange(n, dtype=np.float64))


def _mode_pole(res: Resonance, fs: float, scale: float) -> tuple[complex, int]:
    """The mode's per-sample complex pole and the number of samples until it has rung down."""
    omega = 2.0 * math.pi * res.freq_hz * scale
    decay = res.damping * omega
    pole = complex(-decay, omega * math.sqrt(1.0 - res.damping**2)) / fs
    return pole, int(math.ceil(_RINGDOWN_DECAYS * fs / decay)) + 1


def structural_noise_scale(res: Resonance, fs: float) -> float:
    """Excitation standard deviation that rings ``res`` to an RMS response of 1 (per unit of ``gain``).

    A lightly damped mode rings longer and so turns the same force noise into more response; normalising by the
    preset's own modes lets presets state the response level they want instead of an abstract force.
    """
    pole, length = _mode_pole(res, fs, 1.0)
    kernel = np.exp(pole * np.arange(length)).imag
    return 1.0 / math.sqrt(float(np.sum(kernel**2)))


def structure_response(n: int, fs: float, resonances: Sequence[Resonance], positions: np.ndarray,
                       amplitudes: np.ndarray, force_noise: np.ndarray, noise_rms: float,
                       scale: float | np.ndarray = 1.0) -> np.ndarray:
    """The housing's acceleration: every impact and the force noise ringing each resonance.

    A mode's impulse response is ``exp(-zeta*w*t) * sin(w_d*t)``. An impact at the fractional position
    ``n0 - delta`` is placed exactly: it enters at sample ``n0`` with the complex weight ``exp(p * delta)`` of the
    mode's pole ``p``, so impacts between samples ring with the right phase instead of snapping to the grid.

    ``scale`` multiplies every resonance frequency; as an array it must be piecewise constant (a mounting change,
    a crack): each run's excitation goes through that run's structure and the earlier ringing dies out naturally.
    """
    scale = as_profile(scale, n, "resonance scale")
    starts = np.concatenate(([0], np.flatnonzero(np.diff(scale)) + 1))
    ends = np.concatenate((starts[1:], [n]))
    entry = np.ceil(positions).astype(np.int64)
    delta = entry - positions
    keep = entry < n
    entry, delta, amplitudes = entry[keep], delta[keep], amplitudes[keep]
    out = np.zeros(n)
    for start, end in zip(starts, ends):
        poles = [_mode_pole(res, fs, float(scale[start])) for res in resonances]
        size = int(end - start) + max(length for _, length in poles) - 1
        n_fft = 1 << (size - 1).bit_length()
        # Convolution through the FFT: np.convolve would be quadratic in the ring-down length.
        noise_spectrum = np.fft.fft(force_noise[start:end], n_fft)
        inside = (entry >= start) & (entry < end)
        total = np.zeros(n_fft, dtype=np.complex128)
        for res, (pole, length) in zip(resonances, poles):
            excitation = noise_spectrum * (noise_rms * res.gain * structural_noise_scale(res, fs))
            if np.any(inside):
                impacts = np.zeros(n_fft, dtype=np.complex128)
                np.add.at(impacts, entry[inside] - start, res.gain * amplitudes[inside] * np.exp(pole * delta[inside]))
                excitation = excitation + np.fft.fft(impacts)
            total += excitation * np.fft.fft(np.exp(pole * np.arange(length)), n_fft)
        ringing = np.fft.ifft(total).imag
        stop = min(n, start + size)
        out[start:stop] += ringing[: stop - start]
    return out


def pink_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """Unit-RMS 1/f noise: white noise whose spectrum is shaped by 1/sqrt(f) (power falling as 1/f)."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    shaping = np.zeros(spectrum.shape[0])
    shaping[1:] = 1.0 / np.sqrt(np.arange(1, spectrum.shape[0]))
    noise = np.fft.irfft(spectrum * shaping, n)
    return noise / max(float(np.std(noise)), 1e-30)


def apply_sensor(accel: np.ndarray, sensor: SensorModel, rng: np.random.Generator,
                 gain: float | np.ndarray = 1.0) -> np.ndarray:
    """What the accelerometer and ADC make of ``accel``: sensitivity error, offset, clipping, quantization.

    ``gain`` (scalar or per sample) multiplies the sensitivity on top of the random mounting spread; drift
    scenarios use it for a sensor whose gain steps. The output stays within +-``sensor.clip_g``.

    >>> out = apply_sensor(np.array([0.1, 3.0, -20.0]), SensorModel(clip_g=10.0, adc_bits=8), np.random.default_rng(0))
    >>> float(out[2]), bool(abs(out[1] - 3.0) < 0.2)  # clipped at the rail; otherwise near the input
    (-10.0, True)
    """
    sensitivity = max(0.1, 1.0 + sensor.gain_spread * rng.standard_normal())
    offset = rng.uniform(-sensor.offset_g, sensor.offset_g)
    reading = np.clip(accel * (sensitivity * np.asarray(gain)) + offset, -sensor.clip_g, sensor.clip_g)
    lsb = 2.0 * sensor.clip_g / 2**sensor.adc_bits
    return np.clip(np.round(reading / lsb) * lsb, -sensor.clip_g, sensor.clip_g)
