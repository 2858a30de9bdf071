"""The on-disk dataset: a folder of float32 recordings plus a ``dataset.json`` card.

Layout::

    DIR/dataset.json          classes, sample rate, recordings (label, conditions, sha256), provenance, version
    DIR/recordings/<id>.npy   one 1-D float32 array per recording

The version is a content hash over the sample rate, the classes and every recording's id, label, conditions and
sha256, so two datasets with the same version hold the same data and labels, wherever they were built.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

from edgekit.errors import DataError
from edgekit.jsonable import json_default

CARD_NAME = "dataset.json"
SCHEMA_VERSION = 1
_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]*$")


@dataclass
class Recording:
    """One continuous signal with its label and operating conditions.

    ``conditions`` holds scalars such as ``{"load": 0, "rpm": 1797.0}``; ``meta`` holds anything else worth keeping
    (source file, CWRU number, injected drift events) and is not part of the dataset's version.
    """

    id: str
    label: str
    signal: np.ndarray
    conditions: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not _ID_PATTERN.match(self.id):
            raise DataError(
                f"recording id {self.id!r} is not usable as a file name; use letters, digits and _ . @ -"
            )
        signal = np.asarray(self.signal)
        if signal.ndim != 1:
            raise DataError(f"recording {self.id!r} must be 1-D, got shape {signal.shape}")
        self.signal = signal.astype(np.float32, copy=False)

    @property
    def n_samples(self) -> int:
        return int(self.signal.shape[0])


@dataclass
class Dataset:
    """A set of recordings at one sample rate, with its class list and provenance."""

    sample_rate: float
    recordings: list[Recording]
    classes: list[str] | None = None
    name: str = "dataset"
    provenance: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    def __post_init__(self) -> None:
        if not self.sample_rate or self.sample_rate <= 0:
            raise DataError(f"sample rate must be positive, got {self.sample_rate}")
        ids = [r.id for r in self.recordings]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise DataError(f"recording ids must be unique; repeated: {', '.join(duplicates)}")
        labels = {r.label for r in self.recordings}
        if self.classes is None:
            self.classes = sorted(labels)
        unknown = labels - set(self.classes)
        if unknown:
            raise DataError(f"labels {sorted(unknown)} are not in the class list {self.classes}")

    def __iter__(self) -> Iterator[Recording]:
        return iter(self.recordings)

    def __len__(self) -> int:
        return len(self.recordings)

    def recording(self, recording_id: str) -> Recording:
        for rec in self.recordings:
            if rec.id == recording_id:
                return rec
        raise DataError(f"no recording {recording_id!r} in dataset {self.name!r}")

    def select(self, predicate) -> "Dataset":
        """A new dataset (same classes and sample rate) holding the recordings for which ``predicate`` is true."""
        return Dataset(
            sample_rate=self.sample_rate,
            recordings=[r for r in self.recordings if predicate(r)],
            classes=list(self.classes),
            name=self.name,
            provenance=dict(self.provenance),
        )

    @property
    def version(self) -> str:
        return content_hash(self.sample_rate, self.classes, ((r, _sha256(r.signal)) for r in self.recordings))

    def summary(self) -> dict[str, Any]:
        """Counts and durations per class, for ``data info`` and the demo."""
        per_class: dict[str, dict[str, float]] = {c: {"recordings": 0, "seconds": 0.0} for c in self.classes}
        for rec in self.recordings:
            per_class[rec.label]["recordings"] += 1
            per_class[rec.label]["seconds"] += rec.n_samples / self.sample_rate
        condition_keys = sorted({k for r in self.recordings for k in r.conditions})
        return {
            "name": self.name,
            "version": self.version,
            "sample_rate": self.sample_rate,
            "classes": list(self.classes),
            "recordings": len(self.recordings),
            "seconds": round(sum(r.n_samples for r in self.recordings) / self.sample_rate, 3),
            "conditions": {k: sorted({r.conditions[k] for r in self.recordings if k in r.conditions}, key=str)
                           for k in condition_keys},
            "per_class": {c: {"recordings": v["recordings"], "seconds": round(v["seconds"], 3)}
                          for c, v in per_class.items()},
            "provenance": self.provenance,
        }


def _sha256(signal: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(signal, dtype=np.float32).tobytes()).hexdigest()


def content_hash(sample_rate: float, classes: Iterable[str], recordings: Iterable[tuple[Recording | dict, str]]) -> str:
    """The dataset version: sha256 over what defines the data and its labels (not provenance or meta)."""
    items = []
    for rec, digest in recordings:
        entry = rec if isinstance(rec, dict) else {"id": rec.id, "label": rec.label, "conditions": rec.conditions}
        items.append([entry["id"], entry["label"], entry.get("conditions", {}), digest])
    items.sort(key=lambda item: item[0])
    payload = json.dumps({"sample_rate": float(sample_rate), "classes": list(classes), "recordings": items},
                         sort_keys=True, default=json_default)
    return "sha256:" + hashlib.sha256(payload.encode()).hexdigest()


def save_dataset(dataset: Dataset, out_dir: str | Path, *, overwrite: bool = False) -> Path:
    """Write ``dataset`` to ``out_dir`` and return the card's path.

    An existing dataset is replaced only with ``overwrite``; a folder with other contents is never touched.
    """
    out = Path(out_dir)
    card_path = out / CARD_NAME
    if not dataset.recordings:
        raise DataError("refusing to write an empty dataset: no recordings were selected")
    if out.exists() and any(out.iterdir()):
        if not card_path.exists():
            raise DataError(f"{out} exists and is not an edgekit dataset; choose an empty or new folder")
        if not overwrite:
            raise DataError(f"{out} already holds a dataset; pass --overwrite to replace it")
        # The card goes first: a folder interrupted from here on has no card, so nothing reads it as complete.
        card_path.unlink()
        for old in (out / "recordings").glob("*.npy"):
            old.unlink()
    (out / "recordings").mkdir(parents=True, exist_ok=True)
    entries = []
    for rec in dataset.recordings:
        rel = f"recordings/{rec.id}.npy"
        np.save(out / rel, rec.signal, allow_pickle=False)
        entries.append({
            "id": rec.id,
            "file": rel,
            "label": rec.label,
            "conditions": rec.conditions,
            "n_samples": rec.n_samples,
            "sha256": _sha256(rec.signal),
            "meta": rec.meta,
        })
    card = {
        "schema_version": SCHEMA_VERSION,
        "name": dataset.name,
        "version": content_hash(dataset.sample_rate, dataset.classes, ((e, e["sha256"]) for e in entries)),
        "sample_rate": float(dataset.sample_rate),
        "classes": list(dataset.classes),
        "provenance": dataset.provenance,
        "recordings": entries,
    }
    # Write the card last and atomically: a folder with a card is a complete dataset.
    tmp = card_path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(card, indent=2, default=json_default) + "\n")
    tmp.replace(card_path)
    dataset.path = out
    return card_path


def read_card(path: str | Path) -> dict[str, Any]:
    """The parsed ``dataset.json`` of the dataset folder ``path``, checked for the fields edgekit relies on."""
    folder = Path(path)
    card_path = folder / CARD_NAME if folder.is_dir() or not folder.suffix else folder
    if not card_path.exists():
        raise DataError(
            f"{folder} is not an edgekit dataset (no {CARD_NAME}); create one with 'edgekit data synth' "
            "or 'edgekit data import'"
        )
    try:
        card = json.loads(card_path.read_text())
    except json.JSONDecodeError as exc:
        raise DataError(f"{card_path} is not valid JSON: {exc}") from exc
    for key in ("schema_version", "sample_rate", "classes", "recordings"):
        if key not in card:
            raise DataError(f"{card_path} lacks the field {key!r}; rebuild the dataset")
    if card["schema_version"] > SCHEMA_VERSION:
        raise DataError(
            f"{card_path} uses dataset schema {card['schema_version']}, newer than this edgekit "
            f"understands ({SCHEMA_VERSION}); upgrade edgekit"
        )
    return card


def load_dataset(path: str | Path, *, verify: bool = False) -> Dataset:
    """Read a dataset folder. Signals are memory-mapped; ``verify`` re-hashes every file against the card."""
    folder = Path(path)
    card = read_card(folder)
    recordings = []
    for entry in card["recordings"]:
        file = folder / entry["file"]
        if not file.exists():
            raise DataError(f"{file} is listed in {folder / CARD_NAME} but missing; the dataset is incomplete")
        signal = np.load(file, mmap_mode="r", allow_pickle=False)
        if verify and _sha256(signal) != entry["sha256"]:
            raise DataError(f"{file} does not match its sha256 in {CARD_NAME}: the file changed after import")
        recordings.append(Recording(entry["id"], entry["label"], signal, entry.get("conditions", {}),
                                    entry.get("meta", {})))
    return Dataset(
        sample_rate=card["sample_rate"],
        recordings=recordings,
        classes=card["classes"],
        name=card.get("name", folder.name),
        provenance=card.get("provenance", {}),
        path=folder,
    )
