"""The on-disk dataset: round trip, version as content hash, refusal to clobber or to read damaged data."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgekit.data.store import Dataset, Recording, load_dataset, read_card, save_dataset
from edgekit.errors import DataError


def small_dataset(seed: int = 0) -> Dataset:
    rng = np.random.default_rng(seed)
    recs = [Recording(f"{label}-{i}", label, rng.normal(size=3000), {"load": i % 2, "rpm": 1797.0 - i})
            for label in ("normal", "fault") for i in range(2)]
    return Dataset(sample_rate=12000, recordings=recs, name="tiny", provenance={"made_by": "test"})


def test_round_trip_keeps_signals_labels_conditions_and_version(tmp_path):
    ds = small_dataset()
    save_dataset(ds, tmp_path / "ds")
    back = load_dataset(tmp_path / "ds", verify=True)
    assert back.classes == ["fault", "normal"]
    assert [r.id for r in back] == [r.id for r in ds]
    for a, b in zip(ds, back):
        np.testing.assert_array_equal(a.signal, b.signal)
        assert b.signal.dtype == np.float32 and (a.label, a.conditions) == (b.label, b.conditions)
    card = read_card(tmp_path / "ds")
    assert card["version"] == ds.version == back.version
    assert card["provenance"] == {"made_by": "test"}


def test_version_is_a_content_hash():
    a, b = small_dataset(0), small_dataset(0)
    assert a.version == b.version
    b.recordings[0].signal[5] += 1e-3
    assert a.version != b.version
    c = small_dataset(0)
    c.recordings[1].conditions["load"] = 7
    assert c.version != a.version
    d = small_dataset(0)
    d.provenance["note"] = "provenance is not data"
    assert d.version == a.version


def test_changed_file_is_caught_by_verify(tmp_path):
    save_dataset(small_dataset(), tmp_path / "ds")
    path = tmp_path / "ds" / "recordings" / "fault-0.npy"
    arr = np.load(path)
    arr[10] = 99
    np.save(path, arr)
    load_dataset(tmp_path / "ds")  # a plain load is lazy
    with pytest.raises(DataError, match="does not match its sha256"):
        load_dataset(tmp_path / "ds", verify=True)


def test_missing_recording_file_is_an_error(tmp_path):
    save_dataset(small_dataset(), tmp_path / "ds")
    (tmp_path / "ds" / "recordings" / "normal-1.npy").unlink()
    with pytest.raises(DataError, match="normal-1.npy is listed .* but missing"):
        load_dataset(tmp_path / "ds")


def test_refuses_to_overwrite_without_permission_and_never_touches_foreign_folders(tmp_path):
    save_dataset(small_dataset(), tmp_path / "ds")
    with pytest.raises(DataError, match="pass --overwrite"):
        save_dataset(small_dataset(1), tmp_path / "ds")
    save_dataset(small_dataset(1), tmp_path / "ds", overwrite=True)
    assert load_dataset(tmp_path / "ds").version == small_dataset(1).version
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "thesis.tex").write_text("precious")
    with pytest.raises(DataError, match="not an edgekit dataset"):
        save_dataset(small_dataset(), tmp_path / "other", overwrite=True)
    assert (tmp_path / "other" / "thesis.tex").read_text() == "precious"


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: Recording("a b", "x", np.zeros(10)), "not usable as a file name"),
        (lambda: Recording("a", "x", np.zeros((10, 2))), "must be 1-D"),
        (lambda: Dataset(0, []), "sample rate must be positive"),
        (lambda: Dataset(100, [Recording("a", "x", np.zeros(4)), Recording("a", "y", np.zeros(4))]), "repeated: a"),
        (lambda: Dataset(100, [Recording("a", "x", np.zeros(4))], classes=["y"]), "not in the class list"),
    ],
)
def test_bad_input_is_refused_with_a_reason(build, message):
    with pytest.raises(DataError, match=message):
        build()


def test_empty_dataset_is_not_written(tmp_path):
    with pytest.raises(DataError, match="empty dataset"):
        save_dataset(Dataset(100, []), tmp_path / "ds")


def test_not_a_dataset_and_newer_schema(tmp_path):
    with pytest.raises(DataError, match="not an edgekit dataset"):
        load_dataset(tmp_path)
    save_dataset(small_dataset(), tmp_path / "ds")
    card = json.loads((tmp_path / "ds" / "dataset.json").read_text())
    card["schema_version"] = 99
    (tmp_path / "ds" / "dataset.json").write_text(json.dumps(card))
    with pytest.raises(DataError, match="upgrade edgekit"):
        load_dataset(tmp_path / "ds")
