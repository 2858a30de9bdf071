"""The Case Western Reserve University Bearing Data Center files (.mat, MATLAB 5).

Files are recognised by their CWRU number, taken from the file name when it is a known number (``105.mat``,
``12k_Drive_End_IR007_0_105.mat``, ``normal_0_97.mat``) or else from the ``X<no>_DE_time`` variables inside
(``IR007_0.mat``). Variables are picked by that number, never "the first *_DE_time key": some CWRU files
(99.mat) also carry a copy of another file's variables.

The normal baselines (97-100.mat) were recorded at 48 kHz; they are resampled with an anti-aliasing filter
to the 12 kHz of the fault files.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterable

import numpy as np

from edgekit.data.resample import resample
from edgekit.data.store import Dataset, Recording
from edgekit.errors import DataError, require_module

SAMPLE_RATE = 12000.0
NOMINAL_RPM = {0: 1797.0, 1: 1772.0, 2: 1750.0, 3: 1730.0}


def _numbers(first: int, label: str, rate: float = SAMPLE_RATE) -> dict[int, tuple[str, float]]:
    return {first + load: (label, rate) for load in range(4)}


# CWRU file number -> (class, recorded sample rate); the load in HP is the position in each run of four.
CATALOGUE: dict[int, tuple[str, float]] = {
    **{97 + load: ("normal", 48000.0) for load in range(4)},
    **_numbers(105, "inner_007"), **_numbers(118, "ball_007"), **_numbers(130, "outer_007"),
    **_numbers(169, "inner_014"), **_numbers(185, "ball_014"), **_numbers(197, "outer_014"),
    **_numbers(209, "inner_021"), **_numbers(222, "ball_021"), **_numbers(234, "outer_021"),
    **_numbers(3001, "inner_028"), **_numbers(3005, "ball_028"),
    **_numbers(144, "outer_007_at3"), **_numbers(156, "outer_007_at12"),
    **_numbers(246, "outer_021_at3"), **_numbers(258, "outer_021_at12"),
}
FIRST_OF_RUN = {97, 105, 118, 130, 169, 185, 197, 209, 222, 234, 3001, 3005, 144, 156, 246, 258}
CLASS_ORDER = ["normal", "ball_007", "ball_014", "ball_021", "ball_028", "inner_007", "inner_014", "inner_021",
               "inner_028", "outer_007", "outer_014", "outer_021", "outer_007_at3", "outer_007_at12",
               "outer_021_at3", "outer_021_at12"]
CHANNELS = {"de": "DE", "fe": "FE"}
_VARIABLE = re.compile(r"^X(\d+)_(DE|FE|BA)_time$")


def load_of(number: int) -> int:
    first = max(f for f in FIRST_OF_RUN if f <= number)
    return number - first


def _number_from_name(path: Path) -> int | None:
    candidates = [int(n) for n in re.findall(r"(?<![0-9])(\d{2,4})(?![0-9])", path.stem) if int(n) in CATALOGUE]
    return candidates[-1] if candidates else None


def _number_from_variables(keys: Iterable[str], path: Path) -> int:
    numbers = sorted({int(m.group(1)) for k in keys if (m := _VARIABLE.match(k))})
    known = [n for n in numbers if n in CATALOGUE]
    if len(known) != 1:
        raise DataError(
            f"{path.name}: cannot tell which CWRU recording this is (variables for {numbers or 'none'}); "
            "rename it to its CWRU number, e.g. 105.mat"
        )
    return known[0]


def read_cwru_file(path: Path, channel: str = "de") -> Recording:
    """One CWRU .mat file as a 12 kHz Recording with its class, load and rpm."""
    loadmat = require_module("scipy.io", "data").loadmat
    try:
        mat = loadmat(path)
    except Exception as exc:  # scipy raises several types for corrupt files
        raise DataError(f"{path}: not a readable MATLAB file ({exc})") from exc
    keys = [k for k in mat if not k.startswith("__")]
    number = _number_from_name(path) or _number_from_variables(keys, path)
    label, rate = CATALOGUE[number]
    variable = f"X{number:03d}_{CHANNELS[channel]}_time"
    if variable not in mat:
        raise DataError(f"{path.name}: no {variable} (channel {channel!r}) in the file; it has {', '.join(keys)}")
    signal = np.asarray(mat[variable], dtype=np.float64).ravel()
    load = load_of(number)
    rpm_key = f"X{number:03d}RPM"
    rpm = float(np.ravel(mat[rpm_key])[0]) if rpm_key in mat else NOMINAL_RPM[load]
    if rate != SAMPLE_RATE:
        signal = resample(signal, rate, SAMPLE_RATE)
    return Recording(
        id=f"{label}-L{load}-{number}",
        label=label,
        signal=signal,
        conditions={"load": load, "rpm": rpm},
        meta={"cwru_number": number, "source_file": path.name, "channel": CHANNELS[channel],
              "recorded_sample_rate": rate},
    )


def import_cwru(
    source: str | Path,
    *,
    loads: Iterable[int] | None = None,
    exclude: Iterable[str] = (),
    channel: str = "de",
    progress=None,
) -> Dataset:
    """Every recognised CWRU file under ``source``, filtered by load and class.

    ``progress`` is an optional callable wrapping an iterable (e.g. ``tqdm``); files that are not CWRU
    recordings make the import fail with their names, so nothing is silently left out.
    """
    folder = Path(source)
    if channel not in CHANNELS:
        raise DataError(f"unknown channel {channel!r}; choose one of {', '.join(CHANNELS)}")
    if not folder.is_dir():
        raise DataError(f"{folder} is not a folder; point at the folder that holds the CWRU .mat files")
    files = sorted(folder.rglob("*.mat"))
    if not files:
        raise DataError(f"no .mat files in {folder}; download the CWRU 12k drive-end files there first")
    wanted_loads = set(loads) if loads is not None else {0, 1, 2, 3}
    if bad := wanted_loads - {0, 1, 2, 3}:
        raise DataError(f"CWRU loads are 0, 1, 2 and 3 HP; got {sorted(bad)}")
    excluded = set(exclude)
    if bad := excluded - set(CLASS_ORDER):
        raise DataError(f"unknown class(es) to exclude: {sorted(bad)}; CWRU classes are {', '.join(CLASS_ORDER)}")

    recordings = []
    for path in progress(files) if progress else files:
        number = _number_from_name(path)
        # Decide from the name when possible, so filtered-out files are not even read.
        if number is not None and (load_of(number) not in wanted_loads or CATALOGUE[number][0] in excluded):
            continue
        rec = read_cwru_file(path, channel)
        if rec.conditions["load"] in wanted_loads and rec.label not in excluded:
            recordings.append(rec)
    if not recordings:
        raise DataError(f"no CWRU recordings in {folder} match loads {sorted(wanted_loads)} "
                        f"without {sorted(excluded) or 'exclusions'}")
    seen = {r.meta["cwru_number"]: r.meta["source_file"] for r in recordings}
    if len(seen) != len(recordings):
        raise DataError(f"{folder} holds the same CWRU recording twice; keep one copy of each file")
    present = {r.label for r in recordings}
    classes = [c for c in CLASS_ORDER if c in present]
    return Dataset(
        sample_rate=SAMPLE_RATE,
        recordings=sorted(recordings, key=lambda r: (classes.index(r.label), r.conditions["load"])),
        classes=classes,
        name="cwru",
        provenance={
            "importer": "cwru",
            "source": str(folder.resolve()),
            "channel": CHANNELS[channel],
            "loads": sorted(wanted_loads),
            "excluded": sorted(excluded),
            "files": {str(n): f for n, f in sorted(seen.items())},
            "citation": "Case Western Reserve University Bearing Data Center, https://engineering.case.edu/bearingdatacenter",
            "notes": "normal baselines recorded at 48 kHz were resampled to 12 kHz (polyphase, anti-aliased)",
        },
    )
