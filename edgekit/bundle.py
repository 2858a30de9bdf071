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

``edgekit.bundle_writer.write_bundle`` writes bundles; this module reads and checks them.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tarfile
import tempfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping


from edgekit.errors import BundleError
from edgekit.signing import verify_manifest_signature

SCHEMA_VERSION = 1
MANIFEST_NAME = "manifest.json"
SIGNATURE_NAME = "manifest.sig"
TRUST_LEVELS = ("verify", "hashes", "none")

RESERVED_NAMES = (MANIFEST_NAME, SIGNATURE_NAME)
_NAME_PART = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._+-]*\Z")
_SHA256 = re.compile(r"[0-9a-f]{64}\Z")
_CHANGED = "the file changed after export; re-export or re-copy the bundle"
# An archive is checked against these before anything is written: gzip packs 1 GiB of zeros into 1 MiB, so a
# small hostile file could otherwise fill a device's disk. The largest profile's flash budget is 4 GiB.
MAX_UNPACKED_BYTES = 8 << 30
MAX_ARCHIVE_MEMBERS = 10_000


# ----------------------------------------------------------------------------------------------- shared with the writer


def check_name(name) -> str:
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


def check_artifact(i: int, artifact, by_name: Mapping[str, dict], missing_message: str) -> None:
    lacking = [k for k in ("file", "format", "precision")
               if not isinstance(artifact, dict) or not isinstance(artifact.get(k), str)]
    if lacking:
        raise BundleError(f"artifact {i} needs text fields file, format and precision; missing: {', '.join(lacking)}")
    if artifact["file"] not in by_name:
        raise BundleError(missing_message.format(file=repr(artifact["file"])))


def hash_file(path: Path) -> tuple[str, int]:
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
        name = check_name(entry["file"])
        if name in RESERVED_NAMES or name in seen:
            raise BundleError(f"manifest.json: {name!r} is listed twice or is reserved; re-export the bundle")
        seen[name] = entry
    artifacts = manifest.get("artifacts", [])
    if not isinstance(artifacts, list):
        raise BundleError("manifest.json: 'artifacts' must be a list; re-export the bundle")
    for i, artifact in enumerate(artifacts):
        check_artifact(i, artifact, seen, "manifest.json: artifact {file} is not in files; re-export the bundle")
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
    extra = sorted(present - set(listed) - set(RESERVED_NAMES))
    if extra:
        more = f" (and {len(extra) - 1} more)" if len(extra) > 1 else ""
        raise BundleError(f"{extra[0]}{more}: not listed in manifest.json — added after export; "
                          "remove it or re-export the bundle")
    for name, entry in sorted(listed.items()):
        size = (root / name).stat().st_size
        if size != entry["size_bytes"]:
            raise BundleError(f"{name}: size mismatch ({size} bytes, manifest.json says {entry['size_bytes']}) — "
                              f"{_CHANGED}")
        if hash_file(root / name)[0] != entry["sha256"]:
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
