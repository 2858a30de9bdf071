"""numba kernels behind ``edgekit.features.extract``; private, reached only through ``_backend``.

They compute exactly what ``reference`` computes (same conventions, see its docstring) in a different order:
windows go to numba's threads in blocks; per window one fused pass sanitizes and sums, a second centres and takes
the central moments; one batched real FFT per block serves both the spectral features (the periodic Hann window
is applied in the frequency domain as the 3-tap filter 0.5 X[k] - 0.25 (X[k-1] + X[k+1])) and the envelope.

Importing this module imports numba; ``np.fft`` inside the kernels comes from rocket-fft, which numba loads
through its extension entry point.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from edgekit.features._numba_config import BLOCK_ROWS, jit_options

_FLOAT32_MAX = float(np.finfo(np.float32).max)
_QUIET_ENVELOPE = 1e-20  # same value and meaning as reference.QUIET_ENVELOPE
_NONFINITE, _CONSTANT, _SATURATED = 1, 2, 4  # same bits as edgekit.features.quality
_SQRT2 = 1.4142135623730951
_LN2 = 0.6931471805599453
_EXP_MAGIC = 4503599627370496.0 + 1023.0  # 2**52 + exponent bias: see _xlogx_sum


@njit(**jit_options())
def _center_row(x, d, vals, col):
    """Sanitize ``x`` into ``d``, centre it (0 if constant), write time features at ``col`` (if >= 0).

    Returns (had a non-finite sample, is constant).
    """
    n = x.size
    total = 0.0
    squares = 0.0
    abs_total = 0.0
    sqrt_total = 0.0
    bad = 0
    for j in range(n):
        v = np.float64(np.float32(x[j]))  # the float32 rounding every path applies
        if not np.isfinite(v):
            v = 0.0
            bad += 1
        d[j] = v
        total += v
        squares += v * v
        a = abs(v)
        abs_total += a
        sqrt_total += np.sqrt(a)
    # Separate loops: min/max reductions only vectorize alone.
    hi = d[0]
    lo = d[0]
    for j in range(n):
        hi = max(hi, d[j])
        lo = min(lo, d[j])
    mean = total / n
    constant = hi == lo
    m2 = 0.0
    m3 = 0.0
    m4 = 0.0
    if constant:
        d[:] = 0.0
    else:
        for j in range(n):
            t = d[j] - mean
            d[j] = t
            t2 = t * t
            m2 += t2
            m3 += t2 * t
            m4 += t2 * t2
        m2 /= n
        m3 /= n
        m4 /= n
    if col >= 0:
        rms = np.sqrt(squares / n)
        peak = max(hi, -lo)
        abs_mean = abs_total / n
        sqrt_mean = sqrt_total / n
        vals[col] = mean
        vals[col + 1] = np.sqrt(m2)
        vals[col + 2] = rms
        vals[col + 3] = peak
        vals[col + 4] = hi - lo
        vals[col + 5] = peak / rms if rms > 0 else 0.0
        vals[col + 6] = m4 / (m2 * m2) if m2 * m2 > 0 else 0.0
        vals[col + 7] = m3 / m2**1.5 if m2**1.5 > 0 else 0.0
        vals[col + 8] = rms / abs_mean if abs_mean > 0 else 0.0
        vals[col + 9] = peak / abs_mean if abs_mean > 0 else 0.0
        vals[col + 10] = peak / (sqrt_mean * sqrt_mean) if sqrt_mean * sqrt_mean > 0 else 0.0
    return bad > 0, constant


@njit(**jit_options())
def _hann_power(spectrum, n, onesided, norm, p):
    """One-sided power of the Hann-windowed signal, from the spectrum of the unwindowed one."""
    nb = spectrum.size
    # Neighbours beyond the one-sided spectrum mirror as conjugates: X[-1] = conj X[1], X[j] = conj X[n - j].
    y = 0.5 * spectrum[0] - 0.25 * (np.conj(spectrum[1]) + spectrum[1])
    p[0] = onesided[0] * (y.real * y.real + y.imag * y.imag) * norm
    for k in range(1, nb - 1):  # branch-free, so it vectorizes
        y = 0.5 * spectrum[k] - 0.25 * (spectrum[k - 1] + spectrum[k + 1])
        p[k] = onesided[k] * (y.real * y.real + y.imag * y.imag) * norm
    k = nb - 1
    y = 0.5 * spectrum[k] - 0.25 * (spectrum[k - 1] + np.conj(spectrum[n - k - 1]))
    p[k] = onesided[k] * (y.real * y.real + y.imag * y.imag) * norm


@njit(**jit_options())
def _xlogx_sum(p, scale, share, e_bits, m_bits):
    """Sum of q log q over q = p * scale >= 0 (0 log 0 = 0), with a log that LLVM can vectorize.

    Without Intel's SVML numba calls libm's scalar log, 513 times a window: that was a third of the kernel's
    time. Here log q = e ln 2 + log m with q = m 2**e, m in [sqrt(2)/2, sqrt(2)), and log m = 2 atanh(s),
    s = (m - 1) / (m + 1), |s| < 0.172, from its series up to s**17 (next term < 3e-16): accurate to a few ulp.
    """
    share_bits = share.view(np.int64)
    e_float = e_bits.view(np.float64)
    m_float = m_bits.view(np.float64)
    for k in range(p.size):
        share[k] = p[k] * scale
    for k in range(p.size):
        b = share_bits[k]
        # Exponent field placed in the mantissa of 2**52, so e is a float subtraction away (AVX2 has no int64 ->
        # double conversion); mantissa with the exponent of 1.0, so m is in [1, 2).
        e_bits[k] = (b >> 52) | 0x4330000000000000
        m_bits[k] = (b & 0x000FFFFFFFFFFFFF) | 0x3FF0000000000000
    total = 0.0
    for k in range(p.size):
        m = m_float[k]
        e = e_float[k] - _EXP_MAGIC
        big = 1.0 if m > _SQRT2 else 0.0
        m = m * (1.0 - 0.5 * big)
        e = e + big
        s = (m - 1.0) / (m + 1.0)
        s2 = s * s
        series = s * (2.0 + s2 * (2.0 / 3 + s2 * (2.0 / 5 + s2 * (2.0 / 7 + s2 * (2.0 / 9 + s2 * (
            2.0 / 11 + s2 * (2.0 / 13 + s2 * (2.0 / 15 + s2 * (2.0 / 17)))))))))
        q = share[k]
        # Subnormal and zero shares (< 1e-300) contribute < 1e-297: skipped, their exponent field is not e.
        weight = q if q > 1e-300 else 0.0
        total += weight * (e * _LN2 + series)
    return total


@njit(**jit_options())
def _spectral_row(p, freqs, band_start, band_stop, vals, col, share, e_bits, m_bits):
    """Band powers, centroid, spread, entropy, spectral kurtosis and dominant frequency of power ``p``."""
    nb = p.size
    total = 0.0
    weighted = 0.0
    for k in range(nb):
        total += p[k]
        weighted += freqs[k] * p[k]
    for b in range(band_start.size):
        acc = 0.0
        for k in range(band_start[b], band_stop[b]):
            acc += p[k]
        vals[col + b] = acc
    strongest = 1
    for k in range(2, nb):
        if p[k] > p[strongest]:  # strict: the first maximum wins, as np.argmax
            strongest = k
    col += band_start.size
    if total > 0:
        centroid = weighted / total
        m2 = 0.0
        m4 = 0.0
        for k in range(nb):
            off = freqs[k] - centroid
            o2 = off * off
            m2 += o2 * p[k]
            m4 += o2 * o2 * p[k]
        m2 /= total
        m4 /= total
        vals[col] = centroid
        vals[col + 1] = np.sqrt(m2)
        vals[col + 2] = -_xlogx_sum(p, 1.0 / total, share, e_bits, m_bits) / np.log(nb)
        vals[col + 3] = m4 / (m2 * m2) if m2 * m2 > 0 else 0.0
        vals[col + 4] = freqs[strongest] if p[strongest] > 0 else 0.0
    else:
        for c in range(5):
            vals[col + c] = 0.0


@njit(**jit_options())
def _envelope_block(spectra, n, k_lo, k_hi, hann, onesided, norm, masks, vals, col,
                    analytic, z, env, env_spectra, mean_square):
    """Envelope features of a block of windows from the spectra of their centred samples.

    ``analytic`` must be zero outside bins k_lo..k_hi (it is allocated zeroed and only those bins are written).
    """
    m = spectra.shape[0]
    for i in range(m):
        for k in range(k_lo, k_hi + 1):  # the pass band holds neither DC nor Nyquist: all bins doubled
            analytic[i, k] = 2.0 * spectra[i, k]
    np.fft.ifft(analytic[:m], out=z[:m])
    for i in range(m):
        total = 0.0
        squares = 0.0
        for j in range(n):
            a2 = z[i, j].real * z[i, j].real + z[i, j].imag * z[i, j].imag
            a = np.sqrt(a2)
            env[i, j] = a
            total += a
            squares += a2
        mean = total / n
        mean_square[i] = squares / n
        for j in range(n):
            env[i, j] = (env[i, j] - mean) * hann[j]
    np.fft.rfft(env[:m], out=env_spectra[:m])
    n_masks = masks.shape[0]
    for i in range(m):
        total = 0.0
        for k in range(env_spectra.shape[1]):
            e = env_spectra[i, k]
            pk = onesided[k] * (e.real * e.real + e.imag * e.imag) * norm
            total += pk
        quiet = total <= _QUIET_ENVELOPE * mean_square[i] or not total > 0
        for f in range(n_masks):
            acc = 0.0
            for k in range(env_spectra.shape[1]):
                e = env_spectra[i, k]
                acc += masks[f, k] * onesided[k] * (e.real * e.real + e.imag * e.imag) * norm
            vals[i, col + f] = 0.0 if quiet else acc / total


@njit(**jit_options())
def _extract_blocks(windows, out, flags, block_rows, first_block, stop_block, time_col, spec_col, env_col, freqs,
                    onesided, norm, band_start, band_stop, env_lo, env_hi, hann, masks):
    """Blocks ``first_block`` to ``stop_block`` (exclusive) of ``block_rows`` windows each; scratch allocated once."""
    n_rows, n = windows.shape
    nb = n // 2 + 1
    n_feat = out.shape[1]
    env_rows = block_rows if env_col >= 0 else 0
    centred = np.empty((block_rows, n))
    spectra = np.empty((block_rows, nb), dtype=np.complex128)
    vals = np.empty((block_rows, n_feat))
    block_flags = np.empty(block_rows, dtype=np.uint8)
    p = np.empty(nb)
    share = np.empty(nb)
    e_bits = np.empty(nb, dtype=np.int64)
    m_bits = np.empty(nb, dtype=np.int64)
    analytic = np.zeros((env_rows, n), dtype=np.complex128)
    z = np.empty((env_rows, n), dtype=np.complex128)
    env = np.empty((env_rows, n))
    env_spectra = np.empty((env_rows, nb), dtype=np.complex128)
    mean_square = np.empty(env_rows)
    for blk in range(first_block, stop_block):
        r0 = blk * block_rows
        m = min(n_rows, r0 + block_rows) - r0
        for i in range(m):
            bad, constant = _center_row(windows[r0 + i], centred[i], vals[i], time_col)
            block_flags[i] = (_NONFINITE if bad else 0) | (_CONSTANT if constant else 0)
        if spec_col >= 0 or env_col >= 0:
            np.fft.rfft(centred[:m], out=spectra[:m])
            if spec_col >= 0:
                for i in range(m):
                    _hann_power(spectra[i], n, onesided, norm, p)
                    _spectral_row(p, freqs, band_start, band_stop, vals[i], spec_col, share, e_bits, m_bits)
            if env_col >= 0:
                _envelope_block(spectra[:m], n, env_lo, env_hi, hann, onesided, norm, masks, vals, env_col,
                                analytic, z, env, env_spectra, mean_square)
        for i in range(m):
            for c in range(n_feat):
                v = vals[i, c]
                if abs(v) > _FLOAT32_MAX:
                    v = _FLOAT32_MAX if v > 0 else -_FLOAT32_MAX
                    block_flags[i] |= _SATURATED
                out[r0 + i, c] = v
            flags[r0 + i] = block_flags[i]


@njit(**jit_options(parallel=True))
def _extract_parallel(windows, out, flags, block_rows, n_chunks, n_blocks, time_col, spec_col, env_col, freqs,
                      onesided, norm, band_start, band_stop, env_lo, env_hi, hann, masks):
    # One contiguous run of blocks per thread, so each thread allocates its scratch once.
    for chunk in prange(n_chunks):
        _extract_blocks(windows, out, flags, block_rows, chunk * n_blocks // n_chunks,
                        (chunk + 1) * n_blocks // n_chunks, time_col, spec_col, env_col, freqs, onesided, norm,
                        band_start, band_stop, env_lo, env_hi, hann, masks)


def extract_kernel(windows, out, flags, n_threads, *plan):
    """Fill ``out`` (float32[n, f]) and ``flags`` (uint8[n]) for C-contiguous 2-D float32/float64 ``windows``.

    ``n_threads`` is numba.get_num_threads(); ``plan`` comes from ``_backend.plan``. A batch of one block (the
    streaming case) runs on the calling thread: waking the thread pool would cost more than the work, and far more
    on a busy device where the workers wait for a time slice.
    """
    # The block size travels as an argument, not a compiled-in global: numba's cache is keyed on this file only,
    # so a constant from _numba_config would stay stale in cached kernels after an edit there.
    n_blocks = (windows.shape[0] + BLOCK_ROWS - 1) // BLOCK_ROWS
    n_chunks = min(n_threads, n_blocks)
    if n_chunks <= 1:
        _extract_blocks(windows, out, flags, BLOCK_ROWS, 0, n_blocks, *plan)
    else:
        _extract_parallel(windows, out, flags, BLOCK_ROWS, n_chunks, n_blocks, *plan)
