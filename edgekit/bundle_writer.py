"""Writing the bundle format that ``edgekit.bundle`` describes and reads: ``edgekit export`` makes its bundles here.

The writer is not needed on the device, so it lives apart from the reader; both share the name and artifact
checks in ``edgekit.bundle``.

>>> import shutil, tempfile
>>> from edgekit.bundle import open_bundle
>>> folder = Path(tempfile.mkdtemp())
>>> artifacts = [{"file": "model.onnx", "format": "onnx", "precision": "fp32"}]
>>> out = write_bundle(folder / "bundle", {"model.onnx": b"onnx bytes"}, {"artifacts": artifacts})
>>> opened = open_bundle(out, trust="hashes")
>>> opened.artifact(precision="fp32")["size_bytes"], opened.signed
(10, False)
>>> shutil.rmtree(folder)
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import tarfile
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping

from edgekit import __version__
from edgekit.bundle import (
    MANIFEST_NAME, SCHEMA_VERSION, SIGNATURE_NAME, RESERVED_NAMES, check_artifact, check_name, hash_file,
)
from edgekit.errors import BundleError
from edgekit.jsonable import json_default
from edgekit.signing import as_private_key, public_key_fingerprint


def write_bundle(out_dir, files: Mapping[str, Any], manifest: Mapping[str, Any], key=None, *,
                 archive: bool = False) -> Path:
    """Write a bundle folder (and with ``archive=True`` also ``<out_dir>.tar.gz``); return what was written.

    ``files`` maps relative names to bytes or to source paths. ``manifest`` is the caller's content (``artifacts``,
    ``target``, ``classes``, ...); ``files``, ``schema_version``, ``signing`` and each artifact's ``sha256`` and
    ``size_bytes`` are filled in here, ``created`` and ``edgekit_version`` unless the caller gives them. ``key``
    (an ed25519 private key or the path of its PEM file) signs the manifest. An existing bundle at ``out_dir`` is
    replaced; any other non-empty folder is refused.
    """
    out_dir = Path(out_dir)
    if not isinstance(manifest, Mapping):
        raise TypeError(f"manifest must be a dict, not {type(manifest).__name__}")
    names = sorted(files)
    for name in names:
        check_name(name)
        if name in RESERVED_NAMES:
            raise BundleError(f"{name!r} is written by write_bundle itself; give your file another name")
    _check_no_folder_clash(names)
    _check_out_dir(out_dir)
    private_key = as_private_key(key) if key is not None else None  # a bad key fails before anything is written

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    # Build next to the target so the final step is a rename on one filesystem, never a copy.
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".tmp", dir=out_dir.parent))
    try:
        os.chmod(staging, 0o755)  # mkdtemp makes it owner-only; the runtime may read it as another user
        entries = [_write_file(staging, name, files[name]) for name in names]
        manifest_bytes = canonical_json(_complete_manifest(manifest, entries, private_key))
        (staging / MANIFEST_NAME).write_bytes(manifest_bytes)
        if private_key is not None:
            (staging / SIGNATURE_NAME).write_bytes(private_key.sign(manifest_bytes))
        _move_into_place(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return _write_archive(out_dir) if archive else out_dir


def canonical_json(manifest: Mapping[str, Any]) -> bytes:
    """The manifest as the exact bytes that are hashed and signed: sorted keys, indent 2, trailing newline."""
    try:
        text = json.dumps(manifest, sort_keys=True, indent=2, ensure_ascii=False, allow_nan=False,
                          default=json_default)
    except (TypeError, ValueError) as exc:
        raise BundleError(f"the manifest must hold plain JSON values with text keys (no NaN or infinity): {exc}") \
            from exc
    return (text + "\n").encode("utf-8")


def _check_no_folder_clash(names: list[str]) -> None:
    taken = set(names)
    for name in names:
        parts = name.split("/")
        for i in range(1, len(parts)):
            if "/".join(parts[:i]) in taken:
                raise BundleError(f"{'/'.join(parts[:i])!r} is both a file and the folder of {name!r}; rename one")


def _check_out_dir(out_dir: Path) -> None:
    if not out_dir.exists():
        return
    if not out_dir.is_dir():
        raise BundleError(f"{out_dir} exists and is not a folder; choose another output path")
    if any(out_dir.iterdir()) and not (out_dir / MANIFEST_NAME).is_file():
        raise BundleError(f"{out_dir} is not empty and is not an edgekit bundle (no manifest.json); "
                          "choose another folder or empty it")


def _write_file(root: Path, name: str, source) -> dict:
    dest = root / name
    dest.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(source, (bytes, bytearray, memoryview)):
        dest.write_bytes(source)
    elif isinstance(source, (str, os.PathLike)):
        if not Path(source).is_file():
            raise BundleError(f"{name}: source file {source} does not exist or is not a file")
        shutil.copyfile(source, dest)
    else:
        raise TypeError(f"{name}: give bytes or a path, not {type(source).__name__}")
    # Hash what landed in the bundle, not the source, so the manifest describes the bytes actually shipped.
    sha256, size = hash_file(dest)
    return {"file": name, "sha256": sha256, "size_bytes": size}


def _complete_manifest(manifest: Mapping[str, Any], entries: list[dict], private_key) -> dict:
    doc = json.loads(canonical_json(manifest))  # a plain deep copy; the caller's dict is left alone
    doc.pop("signing", None)
    doc["schema_version"] = SCHEMA_VERSION
    doc.setdefault("edgekit_version", __version__)
    doc["created"] = doc.get("created") or _now_utc()
    doc["files"] = entries
    by_name = {entry["file"]: entry for entry in entries}
    artifacts = doc.setdefault("artifacts", [])
    if not isinstance(artifacts, list):
        raise BundleError("manifest['artifacts'] must be a list of entries with file, format and precision")
    for i, artifact in enumerate(artifacts):
        check_artifact(i, artifact, by_name, "artifact {file} is not among the bundle's files; add it to files")
        entry = by_name[artifact["file"]]
        artifact.update(sha256=entry["sha256"], size_bytes=entry["size_bytes"])
    if private_key is not None:
        doc["signing"] = {"algorithm": "ed25519", "public_key_sha256": public_key_fingerprint(private_key)}
    return doc


def _now_utc() -> str:
    # SOURCE_DATE_EPOCH (reproducible-builds.org) lets a build pin the timestamp so identical inputs give
    # identical bytes, signatures and archives.
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    try:
        when = datetime.fromtimestamp(int(epoch), timezone.utc) if epoch else datetime.now(timezone.utc)
    except ValueError:
        raise BundleError(f"SOURCE_DATE_EPOCH must be whole seconds since 1970; got {epoch!r}") from None
    return when.replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _move_into_place(staging: Path, out_dir: Path) -> None:
    if not out_dir.exists():
        os.replace(staging, out_dir)
        return
    # POSIX cannot swap two folders in one step; moving the old bundle aside first means a reader finds either
    # the old or the new bundle whole (or, for an instant, none), never a half-written one.
    old = staging.with_suffix(".old")
    os.replace(out_dir, old)
    try:
        os.replace(staging, out_dir)
    except BaseException:
        os.replace(old, out_dir)
        raise
    shutil.rmtree(old, ignore_errors=True)


def _write_archive(folder: Path) -> Path:
    target = folder.with_name(folder.name + ".tar.gz")
    paths = sorted(folder.rglob("*"), key=lambda p: p.relative_to(folder).as_posix())
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder.parent)
    try:
        # gzip stores a name and an mtime in its header; both are blanked so equal inputs give equal bytes.
        with os.fdopen(fd, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz, \
                tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
            tar.addfile(_tar_entry(folder.name, None))
            for path in paths:
                name = f"{folder.name}/{path.relative_to(folder).as_posix()}"
                if path.is_dir():
                    tar.addfile(_tar_entry(name, None))
                else:
                    with open(path, "rb") as f:
                        tar.addfile(_tar_entry(name, path.stat().st_size), f)
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def _tar_entry(name: str, size: int | None) -> tarfile.TarInfo:
    # Fixed owner, time and modes: the archive depends on the bundle's content only, not on who built it when.
    info = tarfile.TarInfo(name)
    info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
    if size is None:
        info.type, info.mode = tarfile.DIRTYPE, 0o755
    else:
        info.size, info.mode = size, 0o644
    return info
