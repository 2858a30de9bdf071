"""The CWRU importer on the real files (EDGEKIT_CWRU_DIR): 10 classes at 0 HP, 12 kHz, normal resampled."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from edgekit.data.importers.cwru import CATALOGUE, import_cwru, load_of, read_cwru_file
from edgekit.errors import DataError

TEN_CLASSES = ["normal", "ball_007", "ball_014", "ball_021", "inner_007", "inner_014", "inner_021",
               "outer_007", "outer_014", "outer_021"]


def test_catalogue_maps_numbers_to_class_and_load():
    assert CATALOGUE[105] == ("inner_007", 12000.0) and load_of(105) == 0 and load_of(108) == 3
    assert CATALOGUE[97] == ("normal", 48000.0) and load_of(100) == 3
    assert CATALOGUE[237][0] == "outer_021" and load_of(237) == 3


def test_zero_hp_gives_the_ten_class_benchmark(cwru_dir):
    ds = import_cwru(cwru_dir, loads=[0])
    assert ds.classes == TEN_CLASSES and ds.sample_rate == 12000
    assert len(ds) == 10 and {r.conditions["load"] for r in ds} == {0}
    inner = ds.recording("inner_007-L0-105")
    assert inner.meta["source_file"] == "IR007_0.mat" and inner.conditions["rpm"] == 1797
    assert inner.n_samples == 121265  # SOURCE.md: X105_DE_time has 121265 samples


def test_normal_baseline_is_resampled_from_48k_with_anti_aliasing(cwru_dir):
    scipy_io = pytest.importorskip("scipy.io")
    rec = read_cwru_file(cwru_dir / "Normal_0.mat")
    assert rec.meta["recorded_sample_rate"] == 48000
    assert rec.n_samples == int(np.ceil(243938 / 4))
    raw = scipy_io.loadmat(cwru_dir / "Normal_0.mat")["X097_DE_time"].ravel()
    # 97.mat holds about 6% of its power above 6 kHz. Plain x[::4] folds it into the 12 kHz band; the
    # anti-aliased resampler keeps only what lies below 6 kHz, so its power equals the raw 0-6 kHz power.
    def band_power(x, fs, lo, hi):
        x = x - x.mean()
        spectrum = np.abs(np.fft.rfft(x)) ** 2 / x.size ** 2
        f = np.fft.rfftfreq(x.size, 1 / fs)
        return spectrum[(f >= lo) & (f < hi)].sum()
    in_band = band_power(raw, 48000, 0, 5500)
    assert band_power(rec.signal, 12000, 0, 5500) == pytest.approx(in_band, rel=0.01)
    assert band_power(raw[::4], 12000, 0, 6000) > 1.04 * band_power(rec.signal, 12000, 0, 6000)


def test_cross_load_fault_set_and_channel(cwru_dir):
    ds = import_cwru(cwru_dir, loads=[0, 1, 2, 3], exclude=["normal"])
    assert len(ds.classes) == 9 and "normal" not in ds.classes
    assert len(ds) == 36
    assert sorted({r.conditions["load"] for r in ds}) == [0, 1, 2, 3]
    rpms = {load: np.mean([r.conditions["rpm"] for r in ds if r.conditions["load"] == load]) for load in range(4)}
    assert rpms[0] > rpms[1] > rpms[2] > rpms[3]
    fe = import_cwru(cwru_dir, loads=[2], exclude=["normal"], channel="fe")
    de = import_cwru(cwru_dir, loads=[2], exclude=["normal"])
    assert not np.array_equal(fe.recordings[0].signal, de.recordings[0].signal)


def test_files_are_identified_by_number_whatever_their_name(cwru_dir, tmp_path):
    shutil.copy(cwru_dir / "IR007_0.mat", tmp_path / "105.mat")
    shutil.copy(cwru_dir / "B007_1.mat", tmp_path / "12k_Drive_End_B007_1_119.mat")
    shutil.copy(cwru_dir / "OR021@6_3.mat", tmp_path / "mystery.mat")
    ds = import_cwru(tmp_path)
    assert sorted(r.meta["cwru_number"] for r in ds) == [105, 119, 237]


def test_errors(tmp_path, cwru_dir):
    with pytest.raises(DataError, match="no .mat files"):
        import_cwru(tmp_path)
    (tmp_path / "junk.mat").write_bytes(b"not matlab")
    with pytest.raises(DataError, match="junk.mat: not a readable MATLAB file"):
        import_cwru(tmp_path)
    with pytest.raises(DataError, match="CWRU loads are 0, 1, 2 and 3 HP; got \\[5\\]"):
        import_cwru(cwru_dir, loads=[5])
    with pytest.raises(DataError, match="unknown class\\(es\\) to exclude: \\['inner'\\]"):
        import_cwru(cwru_dir, exclude=["inner"])
