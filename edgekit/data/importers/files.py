"""Import a user's own recordings from CSV, WAV or NPY files.

``SOURCE`` is one file (labelled with ``--label``) or a folder. In a folder, files directly inside it take
``--label``; files in sub-folders take the sub-folder's name as their label (``SOURCE/<label>/*.csv``), the layout
most labelled vibration archives already have.
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path
from typing import Any, Callable

import numpy as np

from edgekit.data.resample import resample
from edgekit.data.store import Dataset, Recording
from edgekit.errors import DataError, require_module

SUFFIXES = {"csv": (".csv", ".txt", ".tsv"), "wav": (".wav",), "npy": (".npy",)}


def _pick_column(table: np.ndarray, column: int, path: Path) -> np.ndarray:
    if table.ndim == 1:
        if column != 0:
            raise DataError(f"{path.name} has one channel; --column {column} does not exist")
        return table
    if table.ndim != 2:
        raise DataError(f"{path.name}: expected a 1-D or 2-D array, got shape {table.shape}")
    if not 0 <= column < table.shape[1]:
        raise DataError(f"{path.name} has {table.shape[1]} columns; --column {column} does not exist")
    return table[:, column]


def read_csv(path: Path, column: int | str = 0) -> tuple[np.ndarray, None]:
    """One numeric column of a delimited text file; a header row is allowed (and lets columns go by name)."""
    try:
        text = path.read_text()
    except UnicodeDecodeError:
        raise DataError(f"{path.name} is not a text file; import it with the command for its format") from None
    sample = text[:4096]
    try:
        dialect = csv.Sniffer().sniff(sample, delimiters=",;\t ")
        delimiter = dialect.delimiter
    except csv.Error:
        delimiter = ","
    rows = list(csv.reader(io.StringIO(text), delimiter=delimiter, skipinitialspace=True))
    rows = [[c for c in row if c != ""] for row in rows if any(c.strip() for c in row)]
    if not rows:
        raise DataError(f"{path.name} is empty")
    header = None
    if not _is_number(rows[0][0]):
        header, rows = rows[0], rows[1:]
    if isinstance(column, str) and not column.isdigit():
        if header is None or column not in header:
            raise DataError(f"{path.name}: no column named {column!r}; columns are {header or 'unnamed'}")
        index = header.index(column)
    else:
        index = int(column)
    try:
        values = np.array([float(row[index]) for row in rows], dtype=np.float64)
    except IndexError:
        raise DataError(f"{path.name} has fewer than {index + 1} columns in some rows") from None
    except ValueError as exc:
        raise DataError(f"{path.name}: a value in column {column} is not a number ({exc})") from None
    return values, None


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def read_wav(path: Path, column: int | str = 0) -> tuple[np.ndarray, float]:
    """One channel of a WAV file, integer PCM scaled to [-1, 1), with the file's own sample rate."""
    wavfile = require_module("scipy.io.wavfile", "data")
    try:
        rate, data = wavfile.read(path)
    except ValueError as exc:
        raise DataError(f"{path.name}: not a readable WAV file ({exc})") from exc
    if np.issubdtype(data.dtype, np.integer):
        info = np.iinfo(data.dtype)
        # Unsigned 8-bit WAV is offset binary; signed formats are two's complement.
        offset = (info.max + 1) / 2 if info.min == 0 else 0.0
        data = (data.astype(np.float64) - offset) / (info.max - offset + 1)
    return _pick_column(np.asarray(data), _column_index(column, path), path), float(rate)


def read_npy(path: Path, column: int | str = 0) -> tuple[np.ndarray, None]:
    try:
        data = np.load(path, allow_pickle=False)
    except ValueError as exc:
        raise DataError(f"{path.name}: not a plain numeric .npy file ({exc})") from exc
    if not np.issubdtype(data.dtype, np.number):
        raise DataError(f"{path.name}: holds {data.dtype}, not numbers")
    return _pick_column(data, _column_index(column, path), path), None


def _column_index(column: int | str, path: Path) -> int:
    if isinstance(column, str) and not column.isdigit():
        raise DataError(f"{path.name}: --column must be a column index for {path.suffix} files; names work for csv")
    return int(column)


READERS: dict[str, Callable[[Path, Any], tuple[np.ndarray, float | None]]] = {
    "csv": read_csv, "wav": read_wav, "npy": read_npy,
}


def _labelled_files(source: Path, kind: str, label: str | None) -> list[tuple[Path, str]]:
    suffixes = SUFFIXES[kind]
    if source.is_file():
        if label is None:
            raise DataError(f"{source.name} needs a label: pass --label NAME")
        return [(source, label)]
    if not source.is_dir():
        raise DataError(f"{source} does not exist")
    found = []
    for path in sorted(source.rglob("*")):
        if path.suffix.lower() not in suffixes or not path.is_file():
            continue
        parts = path.relative_to(source).parts
        if len(parts) == 1:
            if label is None:
                raise DataError(f"{path} is not in a label sub-folder; pass --label NAME or use SOURCE/<label>/")
            found.append((path, label))
        else:
            found.append((path, parts[0]))
    if not found:
        raise DataError(f"no {'/'.join(suffixes)} files under {source}")
    return found


def _recording_id(path: Path, label: str, used: set[str]) -> str:
    base = re.sub(r"[^A-Za-z0-9_.@-]+", "_", f"{label}-{path.stem}").strip("_.-") or "recording"
    rec_id, n = base, 1
    while rec_id in used:
        n += 1
        rec_id = f"{base}-{n}"
    used.add(rec_id)
    return rec_id


def import_files(
    kind: str,
    source: str | Path,
    *,
    sample_rate: float | None = None,
    label: str | None = None,
    conditions: dict[str, Any] | None = None,
    column: int | str = 0,
    name: str | None = None,
) -> Dataset:
    """Read every ``kind`` file under ``source`` into one Dataset at one sample rate.

    CSV and NPY files carry no rate, so ``sample_rate`` is required for them. WAV files carry their own; with
    ``sample_rate`` they are resampled (anti-aliased) to it, without it they must all agree.
    """
    if kind not in READERS:
        raise DataError(f"unknown file kind {kind!r}; choose one of {', '.join(READERS)}")
    if sample_rate is not None and sample_rate <= 0:
        raise DataError(f"--sample-rate must be positive, got {sample_rate}")
    source = Path(source)
    recordings, rates, used = [], set(), set()
    for path, file_label in _labelled_files(source, kind, label):
        signal, file_rate = READERS[kind](path, column)
        if signal.size == 0:
            raise DataError(f"{path.name} holds no samples")
        if file_rate is None:
            if sample_rate is None:
                raise DataError(f"{kind} files carry no sample rate; pass --sample-rate HZ")
            file_rate = sample_rate
        elif sample_rate is not None and file_rate != sample_rate:
            signal = resample(signal, file_rate, sample_rate)
            file_rate = sample_rate
        rates.add(file_rate)
        recordings.append(Recording(
            id=_recording_id(path, file_label, used),
            label=file_label,
            signal=signal,
            conditions=dict(conditions or {}),
            meta={"source_file": str(path.relative_to(source) if source.is_dir() else path.name)},
        ))
    if len(rates) > 1:
        raise DataError(
            f"the files have different sample rates ({', '.join(f'{r:g}' for r in sorted(rates))} Hz); "
            "pass --sample-rate HZ to resample them to one"
        )
    return Dataset(
        sample_rate=rates.pop(),
        recordings=recordings,
        name=name or source.stem,
        provenance={"importer": kind, "source": str(source.resolve()), "column": column,
                    "files": len(recordings)},
    )
