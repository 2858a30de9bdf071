"""Plots of datasets: what each class looks like in the frequency and time domains."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from edgekit.data.store import Dataset
from edgekit.errors import require_module


def class_spectra(dataset: Dataset, nfft: int = 2048) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Welch power spectral density (g^2/Hz) per recording, grouped by class: ``(freqs, {class: [n_rec, n_freq]})``."""
    welch = require_module("scipy.signal", "data").welch
    spectra: dict[str, list[np.ndarray]] = {c: [] for c in dataset.classes}
    freqs = np.fft.rfftfreq(nfft, 1 / dataset.sample_rate)
    for rec in dataset:
        signal = np.nan_to_num(np.asarray(rec.signal, dtype=np.float64))
        if signal.size < nfft:
            continue
        freqs, psd = welch(signal, fs=dataset.sample_rate, nperseg=nfft)
        spectra[rec.label].append(psd)
    return freqs, {c: np.array(v) for c, v in spectra.items() if v}


def plot_class_spectra(dataset: Dataset, out: Path, nfft: int = 2048) -> Path:
    """One panel per class: the mean PSD in dB (band = spread over recordings) and 50 ms of one recording."""
    matplotlib = require_module("matplotlib", "data")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    freqs, spectra = class_spectra(dataset, nfft)
    classes = list(spectra)
    cols = 2 if len(classes) > 3 else 1
    rows = math.ceil(len(classes) / cols)
    fig, axes = plt.subplots(rows, 2 * cols, figsize=(7 * cols, 1.9 * rows + 0.8), squeeze=False,
                             gridspec_kw={"width_ratios": [3, 1] * cols})
    for ax in axes.flat:
        ax.set_visible(False)
    first = {c: next(r for r in dataset if r.label == c) for c in classes}
    for i, name in enumerate(classes):
        row, col = divmod(i, cols)
        ax_psd, ax_wave = axes[row, 2 * col], axes[row, 2 * col + 1]
        ax_psd.set_visible(True)
        ax_wave.set_visible(True)
        db = 10 * np.log10(np.maximum(spectra[name], 1e-20))
        ax_psd.fill_between(freqs, db.min(axis=0), db.max(axis=0), alpha=0.3, lw=0)
        ax_psd.plot(freqs, db.mean(axis=0), lw=0.8)
        ax_psd.set_title(f"{name} ({len(db)} rec.)", fontsize=9, loc="left")
        ax_psd.set_xlim(0, dataset.sample_rate / 2)
        ax_psd.set_ylabel("PSD dB(g²/Hz)", fontsize=7)
        ax_psd.tick_params(labelsize=7)
        n = int(0.05 * dataset.sample_rate)
        wave = np.asarray(first[name].signal[:n])
        ax_wave.plot(np.arange(wave.size) / dataset.sample_rate * 1000, wave, lw=0.5)
        ax_wave.set_title("50 ms", fontsize=7, loc="left")
        ax_wave.tick_params(labelsize=6)
    for ax in axes[-1]:
        ax.set_xlabel("Hz" if ax in axes[-1, ::2] else "ms", fontsize=7)
    fig.suptitle(f"{dataset.name}: spectra per class ({dataset.sample_rate:g} Hz)", fontsize=11)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
