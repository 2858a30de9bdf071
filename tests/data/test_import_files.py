"""CSV/WAV/NPY import: labels from folders, sample rates checked or resampled, clear errors."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from edgekit.cli.main import cli
from edgekit.data.importers.files import import_files
from edgekit.data.store import load_dataset
from edgekit.errors import DataError


def write_wav(path, rate, samples):
    wavfile = pytest.importorskip("scipy.io.wavfile")
    path.parent.mkdir(parents=True, exist_ok=True)
    wavfile.write(path, rate, samples)


def test_csv_folder_with_label_subfolders_and_header(tmp_path):
    for label, freq in (("healthy", 50), ("worn", 120)):
        folder = tmp_path / "src" / label
        folder.mkdir(parents=True)
        t = np.arange(2000) / 1000
        rows = "\n".join(f"{a:.6f};{b:.6f}" for a, b in zip(np.sin(2 * np.pi * freq * t), t))
        (folder / "run1.csv").write_text("accel;time\n" + rows + "\n")
    ds = import_files("csv", tmp_path / "src", sample_rate=1000, column="accel", conditions={"load": 2})
    assert ds.classes == ["healthy", "worn"] and ds.sample_rate == 1000
    rec = ds.recording("worn-run1")
    assert rec.n_samples == 2000 and rec.conditions == {"load": 2}
    spectrum = np.abs(np.fft.rfft(rec.signal))
    assert np.argmax(spectrum) * 1000 / 2000 == pytest.approx(120)


def test_wav_keeps_its_rate_scales_pcm_and_resamples_on_request(tmp_path):
    tone = (0.5 * 32767 * np.sin(2 * np.pi * 440 * np.arange(8000) / 8000)).astype(np.int16)
    write_wav(tmp_path / "a.wav", 8000, tone)
    ds = import_files("wav", tmp_path / "a.wav", label="motor")
    assert ds.sample_rate == 8000
    assert np.abs(ds.recordings[0].signal).max() == pytest.approx(0.5, abs=1e-3)
    ds = import_files("wav", tmp_path / "a.wav", label="motor", sample_rate=16000)
    assert ds.sample_rate == 16000 and ds.recordings[0].n_samples == 16000


def test_wav_files_with_different_rates_need_a_target_rate(tmp_path):
    write_wav(tmp_path / "x" / "a.wav", 8000, np.zeros(800, np.int16))
    write_wav(tmp_path / "x" / "b.wav", 16000, np.zeros(1600, np.int16))
    with pytest.raises(DataError, match=r"different sample rates \(8000, 16000 Hz\); pass --sample-rate"):
        import_files("wav", tmp_path / "x", label="m")
    assert import_files("wav", tmp_path / "x", label="m", sample_rate=8000).sample_rate == 8000


def test_npy_columns_and_errors(tmp_path):
    np.save(tmp_path / "two.npy", np.stack([np.arange(100.0), -np.arange(100.0)], axis=1))
    ds = import_files("npy", tmp_path / "two.npy", label="x", sample_rate=100, column=1)
    assert ds.recordings[0].signal[5] == -5
    with pytest.raises(DataError, match="carry no sample rate; pass --sample-rate"):
        import_files("npy", tmp_path / "two.npy", label="x")
    with pytest.raises(DataError, match="has 2 columns; --column 3"):
        import_files("npy", tmp_path / "two.npy", label="x", sample_rate=100, column=3)
    with pytest.raises(DataError, match="needs a label"):
        import_files("npy", tmp_path / "two.npy", sample_rate=100)
    with pytest.raises(DataError, match="no .npy files"):
        import_files("npy", tmp_path / "empty-dir-that-is-made", sample_rate=100) if (tmp_path / "empty-dir-that-is-made").mkdir() is None else None


def test_cli_import_npy_writes_a_dataset(tmp_path):
    (tmp_path / "src" / "ok").mkdir(parents=True)
    np.save(tmp_path / "src" / "ok" / "r.npy", np.ones(500))
    result = CliRunner().invoke(cli, ["data", "import", "npy", str(tmp_path / "src"), "--out", str(tmp_path / "ds"),
                                      "--sample-rate", "1000", "--condition", "load=1"])
    assert result.exit_code == 0, result.output
    ds = load_dataset(tmp_path / "ds")
    assert ds.classes == ["ok"] and ds.recordings[0].conditions == {"load": 1}
    bad = CliRunner().invoke(cli, ["data", "import", "npy", str(tmp_path / "src"), "--out", str(tmp_path / "ds2")])
    assert bad.exit_code == 1 and bad.output == "Error: npy files carry no sample rate; pass --sample-rate HZ\n"


def test_named_column_on_npy_and_binary_csv_are_clear_errors(tmp_path):
    np.save(tmp_path / "a.npy", np.ones(10))
    with pytest.raises(DataError, match="--column must be a column index for .npy files; names work for csv"):
        import_files("npy", tmp_path / "a.npy", label="x", sample_rate=10, column="left")
    (tmp_path / "b.csv").write_bytes(b"\xff\xfe\x00\x81binary")
    with pytest.raises(DataError, match="b.csv is not a text file"):
        import_files("csv", tmp_path / "b.csv", label="x", sample_rate=10)
