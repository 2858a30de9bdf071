"""Leakage-free splits and the windows inside them.

Overlapping windows cut from one recording share samples, so a random window-level split puts near-copies of
test windows into training and reports accuracy the model will never have in the field. Here a split assigns
*time segments* of recordings to train/val/test, windows are cut inside a segment only, and neighbouring
segments are separated by a guard gap. Random window-level splits are deliberately not offered.

Two kinds:

- ``blocks``: each recording is cut into contiguous blocks (train, then val, then test, in time order),
  separated by ``guard`` samples.
- ``conditions``: whole recordings go to train or test by their operating conditions (e.g. train on loads 0-1,
  test on loads 2-3); validation is the last block of each training recording.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

import numpy as np

from edgekit.data.store import Dataset
from edgekit.errors import DataError

PARTS = ("train", "val", "test")


@dataclass(frozen=True)
class Segment:
    """Samples ``[start, stop)`` of one recording."""

    recording_id: str
    start: int
    stop: int

    @property
    def length(self) -> int:
        return self.stop - self.start


@dataclass
class Split:
    """Segments per part; ``describe()`` says how it was made, for the run directory."""

    train: list[Segment] = field(default_factory=list)
    val: list[Segment] = field(default_factory=list)
    test: list[Segment] = field(default_factory=list)
    description: dict[str, Any] = field(default_factory=dict)

    def part(self, name: str) -> list[Segment]:
        if name not in PARTS:
            raise DataError(f"unknown split part {name!r}; choose one of {', '.join(PARTS)}")
        return getattr(self, name)


def count_windows(length: int, window: int, hop: int) -> int:
    return 0 if length < window else 1 + (length - window) // hop


def split_blocks(
    dataset: Dataset,
    window: int,
    *,
    val_fraction: float = 0.15,
    test_fraction: float = 0.2,
    guard: int | None = None,
) -> Split:
    """Cut every recording into train | guard | val | guard | test blocks, in time order.

    ``guard`` defaults to one window, so no two windows from different parts could have shared samples even
    with full overlap inside a part.
    """
    if not 0 <= val_fraction < 1 or not 0 < test_fraction < 1 or val_fraction + test_fraction >= 1:
        raise DataError(
            f"val and test fractions must be in [0, 1) and leave room for training; got {val_fraction}, {test_fraction}"
        )
    guard = window if guard is None else guard
    split = Split(description={"kind": "blocks", "val_fraction": val_fraction, "test_fraction": test_fraction,
                               "guard": guard, "window": window})
    for rec in dataset:
        usable = rec.n_samples - guard * (2 if val_fraction > 0 else 1)
        n_test = int(usable * test_fraction)
        n_val = int(usable * val_fraction)
        n_train = usable - n_test - n_val
        sizes = {"train": n_train, "test": n_test} | ({"val": n_val} if val_fraction > 0 else {})
        if min(sizes.values()) < window:
            raise DataError(
                f"recording {rec.id!r} has {rec.n_samples} samples, too short for a blocks split with "
                f"{window}-sample windows (blocks would be {sizes}, each needs >= {window}); "
                "use shorter windows, other fractions or longer recordings"
            )
        split.train.append(Segment(rec.id, 0, n_train))
        start = n_train + guard
        if val_fraction > 0:
            split.val.append(Segment(rec.id, start, start + n_val))
            start += n_val + guard
        split.test.append(Segment(rec.id, start, start + n_test))
    return split


def parse_conditions(text: str) -> dict[str, list[str]]:
    """``"load=0,1;rpm=1797"`` -> ``{"load": ["0", "1"], "rpm": ["1797"]}``.

    >>> parse_conditions("load=0,1")
    {'load': ['0', '1']}
    """
    result: dict[str, list[str]] = {}
    for clause in filter(None, (c.strip() for c in text.split(";"))):
        key, sep, values = clause.partition("=")
        if not sep or not key.strip() or not values.strip():
            raise DataError(f"bad condition {clause!r}; write KEY=V1,V2 (e.g. load=0,1), clauses joined by ';'")
        result[key.strip()] = [v.strip() for v in values.split(",") if v.strip()]
    if not result:
        raise DataError("empty condition; write KEY=V1,V2 (e.g. load=0,1)")
    return result


def _matches(conditions: dict[str, Any], wanted: dict[str, list[str]]) -> bool:
    for key, values in wanted.items():
        if key not in conditions:
            return False
        value = conditions[key]
        if not any(_same(value, v) for v in values):
            return False
    return True


def _same(value: Any, text: str) -> bool:
    try:
        return float(value) == float(text)
    except (TypeError, ValueError):
        return str(value) == text


def split_conditions(
    dataset: Dataset,
    window: int,
    train: dict[str, list[str]],
    test: dict[str, list[str]],
    *,
    val_fraction: float = 0.15,
    guard: int | None = None,
) -> Split:
    """Whole recordings to train or test by condition; val is the last block of each training recording."""
    guard = window if guard is None else guard
    keys = set(train) | set(test)
    available = {k for r in dataset for k in r.conditions}
    if missing := keys - available:
        raise DataError(f"no recording has condition(s) {sorted(missing)}; known conditions: {sorted(available)}")
    split = Split(description={"kind": "conditions", "train": train, "test": test,
                               "val_fraction": val_fraction, "guard": guard, "window": window})
    for rec in dataset:
        in_train, in_test = _matches(rec.conditions, train), _matches(rec.conditions, test)
        if in_train and in_test:
            raise DataError(f"recording {rec.id!r} ({rec.conditions}) matches both train and test conditions")
        if in_test:
            split.test.append(Segment(rec.id, 0, rec.n_samples))
        elif in_train:
            n_val = int((rec.n_samples - guard) * val_fraction) if val_fraction > 0 else 0
            n_train = rec.n_samples - (n_val + guard if n_val else 0)
            if n_train < window or (val_fraction > 0 and n_val < window):
                raise DataError(f"recording {rec.id!r} has {rec.n_samples} samples, too short for "
                                f"{window}-sample windows with a {val_fraction:.0%} validation block")
            split.train.append(Segment(rec.id, 0, n_train))
            if n_val:
                split.val.append(Segment(rec.id, n_train + guard, rec.n_samples))
    for part, wanted in (("train", train), ("test", test)):
        if not split.part(part):
            raise DataError(f"no recording matches the {part} conditions {wanted}")
    return split


def make_split(dataset: Dataset, kind: str, window: int, **options) -> Split:
    """Dispatch by name, for the CLI and run configs."""
    if kind == "blocks":
        return split_blocks(dataset, window, **options)
    if kind == "conditions":
        return split_conditions(dataset, window, **options)
    raise DataError(f"unknown split {kind!r}; choose blocks or conditions (random window splits leak)")


def cut_windows(
    dataset: Dataset, segments: Iterable[Segment], window: int, hop: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Windows inside ``segments``: ``(float32[n, window], class index int64[n], segment index int64[n])``."""
    xs, ys, owners = [], [], []
    class_index = {c: i for i, c in enumerate(dataset.classes)}
    for i, seg in enumerate(segments):
        rec = dataset.recording(seg.recording_id)
        n = count_windows(seg.length, window, hop)
        if n == 0:
            continue
        starts = seg.start + hop * np.arange(n)
        xs.append(np.asarray(rec.signal[seg.start:seg.stop])[(starts - seg.start)[:, None] + np.arange(window)])
        ys.append(np.full(n, class_index[rec.label], dtype=np.int64))
        owners.append(np.full(n, i, dtype=np.int64))
    if not xs:
        raise DataError(f"no {window}-sample window fits in the selected segments; use shorter windows")
    return (np.concatenate(xs).astype(np.float32, copy=False), np.concatenate(ys), np.concatenate(owners))
