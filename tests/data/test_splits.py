"""Splits never leak: no window of one recording lands on two sides, and guard gaps separate the parts."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, reject, settings
from hypothesis import strategies as st

from edgekit.data.splits import (
    Segment, count_windows, cut_windows, make_split, parse_conditions, split_blocks, split_conditions,
)
from edgekit.data.store import Dataset, Recording
from edgekit.errors import DataError


def dataset(lengths=(5000, 7000, 6000), loads=(0, 1, 2)) -> Dataset:
    recs = []
    for i, (n, load) in enumerate(zip(lengths, loads)):
        # Each sample encodes (recording, position), so windows reveal where they came from.
        recs.append(Recording(f"r{i}", "a" if i % 2 else "b", i * 1e6 + np.arange(n, dtype=np.float64),
                              {"load": load}))
    return Dataset(sample_rate=1000, recordings=recs)


def sample_positions(x: np.ndarray) -> set[tuple[int, int]]:
    flat = x.astype(np.float64).ravel()
    return set(zip((flat // 1e6).astype(int), (flat % 1e6).astype(int)))


@settings(max_examples=40, deadline=None)
@given(window=st.integers(16, 256), hop_div=st.integers(1, 4), val=st.floats(0, 0.3), test=st.floats(0.05, 0.4))
def test_blocks_split_parts_share_no_sample_and_keep_a_guard(window, hop_div, val, test):
    ds = dataset()
    try:
        split = split_blocks(ds, window, val_fraction=val, test_fraction=test)
    except DataError:
        reject()  # too short for this combination: refused, not silently degraded
        return
    hop = max(1, window // hop_div)
    seen = {}
    for part in ("train", "val", "test"):
        segs = split.part(part)
        if not segs:
            continue
        x, _, _ = cut_windows(ds, segs, window, hop)
        seen[part] = sample_positions(x)
    parts = list(seen)
    for i, a in enumerate(parts):
        for b in parts[i + 1:]:
            assert not seen[a] & seen[b]
    for rec in ds:
        own = sorted((s for p in ("train", "val", "test") for s in split.part(p) if s.recording_id == rec.id),
                     key=lambda s: s.start)
        for left, right in zip(own, own[1:]):
            assert right.start - left.stop >= window


def test_blocks_are_in_time_order_and_cover_every_recording():
    split = split_blocks(dataset(), 100, val_fraction=0.1, test_fraction=0.2)
    assert [s.recording_id for s in split.train] == ["r0", "r1", "r2"]
    for tr, va, te in zip(split.train, split.val, split.test):
        assert tr.start == 0 and tr.stop < va.start < va.stop < te.start < te.stop
    assert split.test[0].length == int((5000 - 200) * 0.2)


def test_conditions_split_sends_whole_recordings_by_load():
    ds = dataset()
    split = split_conditions(ds, 100, parse_conditions("load=0,1"), parse_conditions("load=2"))
    assert {s.recording_id for s in split.train} == {"r0", "r1"}
    assert [s.recording_id for s in split.test] == ["r2"] and split.test[0].length == 6000
    assert {s.recording_id for s in split.val} <= {"r0", "r1"}
    x_train, _, _ = cut_windows(ds, split.train + split.val, 100, 50)
    x_test, _, _ = cut_windows(ds, split.test, 100, 50)
    assert not {r for r, _ in sample_positions(x_train)} & {r for r, _ in sample_positions(x_test)}


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda ds: split_conditions(ds, 100, {"load": ["0"]}, {"load": ["0"]}), "matches both"),
        (lambda ds: split_conditions(ds, 100, {"load": ["0"]}, {"load": ["9"]}), "no recording matches the test"),
        (lambda ds: split_conditions(ds, 100, {"speed": ["1"]}, {"load": ["2"]}), r"condition\(s\) \['speed'\]"),
        (lambda ds: split_blocks(ds, 4000), "too short for a blocks split"),
        (lambda ds: split_blocks(ds, 100, test_fraction=0.9, val_fraction=0.2), "leave room for training"),
        (lambda ds: make_split(ds, "random", 100), "random window splits leak"),
        (lambda ds: parse_conditions("load"), "write KEY=V1,V2"),
    ],
)
def test_bad_split_requests_fail_clearly(call, message):
    with pytest.raises(DataError, match=message):
        call(dataset())


def test_cut_windows_labels_and_counts():
    ds = dataset()
    x, y, owner = cut_windows(ds, [Segment("r0", 0, 1000), Segment("r1", 10, 60)], 100, 25)
    assert x.shape == (count_windows(1000, 100, 25), 100) == (37, 100)
    assert set(y) == {ds.classes.index("b")}
    np.testing.assert_array_equal(x[1], np.arange(25, 125, dtype=np.float32))
    assert count_windows(99, 100, 10) == 0
    with pytest.raises(DataError, match="no 100-sample window fits"):
        cut_windows(ds, [Segment("r0", 0, 50)], 100, 25)
