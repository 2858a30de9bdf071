"""The bundle format: what ``edgekit export`` writes and the device runtime reads.

A bundle is a folder, optionally also shipped as a deterministic ``<folder>.tar.gz``::

    model_int8.onnx    artifacts, reports, feature spec: relative names of plain characters, subfolders allowed
    report.md
    manifest.json      canonical JSON: sha256 and size of every other file, the artifacts, target, classes, ...
    manifest.sig       optional: the raw 64-byte ed25519 signature over the exact bytes of manifest.json

Only the manifest is signed; it pins every other file by sha256, so one signature covers the whole bundle. The
manifest is written canonically (sorted keys, indent 2, trailing newline) so that the same inputs give the same
bytes, the same signature (ed25519 is deterministic) and the same archive. An example manifest::

    {"artifacts": [{"file": "model_int8.onnx", "format": "onnx", "precision": "int8",
                    "sha256": "9f2c...", "size_bytes": 48211, "validation": {"agreement": 0.998}}],
     "classes": ["normal", "inner_race"], "created": "2026-05-09T07:35:25Z", "edgekit_version": "0.1.0",
     "files": [{"file": "model_int8.onnx", "sha256": "9f2c...", "size_bytes": 48211}, ...],
     "schema_version": 1, "signing": {"algorithm": "ed25519", "public_key_sha256": "41be..."},
     "target": "rpi4"}

This module is imported on the device: the standard library and numpy only at module level; ``cryptography`` is
imported inside the functions that make or check a signature.

>>> import shutil, tempfile
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
import hashlib
import json
import os
import re
import shutil
import tarfile
import tempfile
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping


from edgekit import __version__
from edgekit.errors import BundleError
from edgekit.jsonable import json_default
from edgekit.signing import as_private_key, public_key_fingerprint, verify_manifest_signature

SCHEMA_VERSION = 1
MANIFEST_NAME = "manifest.json"
SIGNATURE_NAME = "manifest.sig"
TRUST_LEVELS = ("verify", "hashes", "none")

_RESERVED = (MANIFEST_NAME, SIGNATURE_NAME)
_NAME_PART = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._+-]*\Z")
_SHA256 = re.compile(r"[0-9a-f]{64}\Z")
_CHANGED = "the file changed after export; re-export or re-copy the bundle"
# An archive is checked against these before anything is written: gzip packs 1 GiB of zeros into 1 MiB, so a
# small hostile file could otherwise fill a device's disk. The largest profile's flash budget is 4 GiB.
MAX_UNPACKED_BYTES = 8 << 30
MAX_ARCHIVE_MEMBERS = 10_000


# ----------------------------------------------------------------------------------------------- writing


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
        _check_name(name)
        if name in _RESERVED:
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


def _check_name(name) -> str:
    if not isinstance(name, str) or not name:
        raise BundleError(f"{name!r} is not a valid bundle file name: it must be non-empty text")
    if name.startswith(("/", "\\")) or re.match(r"[A-Za-z]:", name):
        reason = "it is an absolute path; use a path relative to the bundle folder"
    elif ".." in re.split(r"[/\\]", name):
        reason = "it contains '..'; every file must stay inside the bundle folder"
    elif not all(_NAME_PART.match(part) for part in name.split("/")):
        reason = "use letters, digits, '.', '_', '-' and '+' in names separated by '/'"
    else:
        return name
    raise BundleError(f"{name!r} is not a valid bundle file name: {reason}")


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
    sha256, size = _hash_file(dest)
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
        _check_artifact(i, artifact, by_name, "artifact {file} is not among the bundle's files; add it to files")
        entry = by_name[artifact["file"]]
        artifact.update(sha256=entry["sha256"], size_bytes=entry["size_bytes"])
    if private_key is not None:
        doc["signing"] = {"algorithm": "ed25519", "public_key_sha256": public_key_fingerprint(private_key)}
    return doc


def _check_artifact(i: int, artifact, by_name: Mapping[str, dict], missing_message: str) -> None:
    lacking = [k for k in ("file", "format", "precision")
               if not isinstance(artifact, dict) or not isinstance(artifact.get(k), str)]
    if lacking:
        raise BundleError(f"artifact {i} needs text fields file, format and precision; missing: {', '.join(lacking)}")
    if artifact["file"] not in by_name:
        raise BundleError(missing_message.format(file=repr(artifact["file"])))


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


def _hash_file(path: Path) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


# ----------------------------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class Bundle:
    """An opened bundle whose checks passed. ``path`` is the folder holding its files (for an archive, a
    temporary extraction that lives as long as this object or until ``close()``); ``source`` is what was opened.
    """

    path: Path
    manifest: dict
    signed: bool
    verified_signature: bool
    source: Path | None = None
    _extracted: Any = field(default=None, repr=False, compare=False)

    @property
    def artifacts(self) -> list[dict]:
        return self.manifest.get("artifacts", [])

    def artifact(self, format: str | None = None, precision: str | None = None) -> dict:
        """The one artifact with this format and/or precision; an error lists what the bundle has."""
        matches = [a for a in self.artifacts
                   if format in (None, a["format"]) and precision in (None, a["precision"])]
        if len(matches) == 1:
            return matches[0]
        wanted = ", ".join(f"{k}={v!r}" for k, v in (("format", format), ("precision", precision)) if v is not None)
        have = "; ".join(f"{a['file']} (format={a['format']!r}, precision={a['precision']!r})"
                         for a in (matches or self.artifacts)) or "no artifacts"
        if not matches:
            raise BundleError(f"no artifact with {wanted} in this bundle; it has: {have}")
        raise BundleError(f"{len(matches)} artifacts match{' ' + wanted if wanted else ''}; "
                          f"pass format= and precision= to pick one of: {have}")

    def file_path(self, name: str) -> Path:
        """Where a listed file lies on disk."""
        listed = [entry["file"] for entry in self.manifest["files"]]
        if name not in listed:
            raise BundleError(f"{name!r} is not in this bundle; it has: {', '.join(listed) or 'no files'}")
        return self.path / name

    def close(self) -> None:
        """Remove the temporary extraction of an archive now rather than when the object is collected."""
        if self._extracted is not None:
            self._extracted.cleanup()

    def __enter__(self) -> "Bundle":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_bundle(path, trust: str = "verify", public_key=None) -> Bundle:
    """Open a bundle folder or ``.tar.gz`` and check it before anything in it is used.

    ``trust="verify"`` checks the signature against ``public_key`` (a key object or the path of a PEM, OpenSSH or
    raw 32-byte public key) and every file's sha256 and size; ``"hashes"`` skips the signature; ``"none"`` only
    reads the manifest.
    """
    if trust not in TRUST_LEVELS:
        raise BundleError(f"unknown trust level {trust!r}; use one of: {', '.join(TRUST_LEVELS)}")
    source = Path(path)
    extracted = None
    if source.is_dir():
        root = source
        if not (root / MANIFEST_NAME).is_file():
            raise BundleError(f"{source} is not an edgekit bundle (no manifest.json)")
    elif not source.exists():
        raise BundleError(f"{source} does not exist; pass a bundle folder or its .tar.gz")
    elif source.name.endswith((".tar.gz", ".tgz")):
        extracted = tempfile.TemporaryDirectory(prefix="edgekit-bundle-")
    else:
        raise BundleError(f"{source} is neither a bundle folder nor a .tar.gz bundle archive")
    try:
        if extracted is not None:
            root = _extract_archive(source, Path(extracted.name))
        manifest, signed, verified = _check_bundle(root, trust, public_key)
    except BaseException:
        if extracted is not None:
            extracted.cleanup()
        raise
    return Bundle(root, manifest, signed, verified, source, extracted)


def _check_bundle(root: Path, trust: str, public_key) -> tuple[dict, bool, bool]:
    manifest_bytes = (root / MANIFEST_NAME).read_bytes()
    try:
        manifest = json.loads(manifest_bytes)
    except ValueError as exc:
        raise BundleError(f"manifest.json is not valid JSON ({exc}); re-export or re-copy the bundle") from None
    if not isinstance(manifest, dict):
        raise BundleError("manifest.json must hold a JSON object; re-export or re-copy the bundle")
    version = manifest.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise BundleError("manifest.json has no valid schema_version; it was not written by edgekit")
    if version > SCHEMA_VERSION:
        raise BundleError(f"bundle schema version {version} is newer than this edgekit understands "
                          f"({SCHEMA_VERSION}); upgrade edgekit to open it")
    signature_path = root / SIGNATURE_NAME
    signed = signature_path.is_file()
    if trust == "verify":
        # Before the manifest's content is trusted for anything else: a forged manifest could list forged hashes.
        verify_manifest_signature(manifest, manifest_bytes, signature_path if signed else None, public_key)
    _check_structure(manifest)
    if trust != "none":
        _check_files(root, manifest)
    return manifest, signed, trust == "verify"


def _check_structure(manifest: dict) -> None:
    files = manifest.get("files")
    if not isinstance(files, list):
        raise BundleError("manifest.json has no 'files' list; re-export the bundle")
    seen: dict[str, dict] = {}
    for i, entry in enumerate(files):
        ok = (isinstance(entry, dict) and isinstance(entry.get("file"), str)
              and isinstance(entry.get("sha256"), str) and _SHA256.match(entry["sha256"])
              and type(entry.get("size_bytes")) is int and entry["size_bytes"] >= 0)
        if not ok:
            raise BundleError(f"manifest.json: files entry {i} needs file, a sha256 hex digest and size_bytes; "
                              "re-export the bundle")
        name = _check_name(entry["file"])
        if name in _RESERVED or name in seen:
            raise BundleError(f"manifest.json: {name!r} is listed twice or is reserved; re-export the bundle")
        seen[name] = entry
    artifacts = manifest.get("artifacts", [])
    if not isinstance(artifacts, list):
        raise BundleError("manifest.json: 'artifacts' must be a list; re-export the bundle")
    for i, artifact in enumerate(artifacts):
        _check_artifact(i, artifact, seen, "manifest.json: artifact {file} is not in files; re-export the bundle")
        if artifact.get("sha256") != seen[artifact["file"]]["sha256"]:
            raise BundleError(f"manifest.json: artifact {artifact['file']!r} disagrees with its files entry; "
                              "re-export the bundle")


def _check_files(root: Path, manifest: dict) -> None:
    present = set()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        rel_dir = Path(dirpath).relative_to(root)
        for name in sorted(dirnames + filenames):
            full, rel = Path(dirpath, name), (rel_dir / name).as_posix()
            # A link could point anywhere on the device; the hashes would then vouch for a file outside the bundle.
            if full.is_symlink():
                raise BundleError(f"{rel}: is a symbolic link; a bundle holds plain files only — "
                                  "copy it without links")
            if name in filenames:
                if not full.is_file():
                    raise BundleError(f"{rel}: is not a regular file; a bundle holds plain files only")
                present.add(rel)
    listed = {entry["file"]: entry for entry in manifest["files"]}
    for name in sorted(listed):
        if name not in present:
            raise BundleError(f"{name}: listed in manifest.json but missing from the bundle; "
                              "re-copy the whole bundle")
    extra = sorted(present - set(listed) - set(_RESERVED))
    if extra:
        more = f" (and {len(extra) - 1} more)" if len(extra) > 1 else ""
        raise BundleError(f"{extra[0]}{more}: not listed in manifest.json — added after export; "
                          "remove it or re-export the bundle")
    for name, entry in sorted(listed.items()):
        size = (root / name).stat().st_size
        if size != entry["size_bytes"]:
            raise BundleError(f"{name}: size mismatch ({size} bytes, manifest.json says {entry['size_bytes']}) — "
                              f"{_CHANGED}")
        if _hash_file(root / name)[0] != entry["sha256"]:
            raise BundleError(f"{name}: sha256 mismatch — {_CHANGED}")


def _extract_archive(source: Path, dest: Path) -> Path:
    try:
        with tarfile.open(source, mode="r:gz") as tar:
            members = _bounded_members(source, tar)
            names = [_safe_member_name(source, member) for member in members]  # all checked before any is written
            _check_room(source, dest, sum(member.size for member in members if member.isfile()))
            seen = set()
            for member, name in zip(members, names):
                if name is None or member.isdir():
                    (dest / name if name else dest).mkdir(parents=True, exist_ok=True)
                    continue
                if name in seen:
                    raise BundleError(f"{source.name}: member {name!r} appears twice; this archive is not a bundle")
                seen.add(name)
                (dest / name).parent.mkdir(parents=True, exist_ok=True)
                with tar.extractfile(member) as src, open(dest / name, "xb") as out:
                    shutil.copyfileobj(src, out)
    except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
        raise BundleError(f"{source} is not a readable .tar.gz archive ({exc}); re-copy it") from None
    if (dest / MANIFEST_NAME).is_file():
        return dest
    top = list(dest.iterdir())
    if len(top) == 1 and top[0].is_dir() and (top[0] / MANIFEST_NAME).is_file():
        return top[0]
    raise BundleError(f"{source} is not an edgekit bundle "
                      "(no manifest.json at its top or in its one top-level folder)")


def _bounded_members(source: Path, tar: tarfile.TarFile) -> list[tarfile.TarInfo]:
    members = []
    for member in tar:  # one header at a time: a list of millions of members is itself the attack
        members.append(member)
        if len(members) > MAX_ARCHIVE_MEMBERS:
            raise BundleError(f"{source.name}: more than {MAX_ARCHIVE_MEMBERS:,} members; "
                              "this archive is not a bundle")
    return members


def _check_room(source: Path, dest: Path, unpacked: int) -> None:
    if unpacked > MAX_UNPACKED_BYTES:
        raise BundleError(f"{source.name}: unpacks to {unpacked / 2**20:,.0f} MiB, more than the "
                          f"{MAX_UNPACKED_BYTES / 2**20:,.0f} MiB a bundle may hold; this archive is not a bundle")
    free = shutil.disk_usage(dest).free
    if unpacked > free:
        raise BundleError(f"{source.name}: unpacks to {unpacked / 2**20:,.1f} MiB but {dest.parent} has "
                          f"{free / 2**20:,.1f} MiB free; free some space or set TMPDIR to a larger disk")


def _safe_member_name(source: Path, member: tarfile.TarInfo) -> str | None:
    name = member.name
    parts = [part for part in name.split("/") if part not in ("", ".")]
    if name.startswith("/") or ".." in parts:
        raise BundleError(f"{source.name}: refusing member {name!r} — its path leaves the bundle folder; "
                          "the archive is unsafe")
    if member.issym() or member.islnk():
        raise BundleError(f"{source.name}: refusing member {name!r} — it is a link; "
                          "a bundle archive holds plain files and folders only")
    if not (member.isfile() or member.isdir()):
        raise BundleError(f"{source.name}: refusing member {name!r} — it is a device or other special file; "
                          "a bundle archive holds plain files and folders only")
    return "/".join(parts) or None
