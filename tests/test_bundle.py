"""The bundle format: round trips, reproducible bytes, and every kind of tampering refused with a precise message."""

from __future__ import annotations

import copy
import hashlib
import io
import json
import subprocess
import sys
import tarfile
import tempfile
from collections import namedtuple
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import edgekit.bundle as bundle_module
from edgekit.bundle import MANIFEST_NAME, SCHEMA_VERSION, SIGNATURE_NAME, open_bundle
from edgekit.bundle_writer import write_bundle
from edgekit.cli.main import cli
from edgekit.errors import BundleError, MissingDependencyError
from edgekit.signing import (
    PASSWORD_ENV, generate_keypair, load_private_key, load_public_key, public_key_fingerprint,
)

shutil_usage = namedtuple("usage", "total used free")  # what shutil.disk_usage returns
ARTIFACTS = [
    {"file": "model.onnx", "format": "onnx", "precision": "fp32", "validation": {"accuracy": np.float32(0.975)}},
    {"file": "model_int8.onnx", "format": "onnx", "precision": "int8",
     "validation": {"agreement": 0.9984, "max_abs_error": 0.0123}},
]
CHANGED = "the file changed after export; re-export or re-copy the bundle"


def bundle_files(seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return {"model.onnx": rng.bytes(2048), "model_int8.onnx": rng.bytes(512), "report.md": b"# report\n",
            "spec/features.json": b'{"window": 1024}\n'}


def bundle_manifest() -> dict:
    return {"target": "rpi4", "classes": ["normal", "inner_race", "outer_race"], "created": "2026-01-01T00:00:00Z",
            "artifacts": copy.deepcopy(ARTIFACTS)}


@pytest.fixture(scope="module")
def signer(tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("keys")
    generate_keypair(folder / "signer.key", folder / "signer.pub")
    return folder / "signer.key", folder / "signer.pub"


@pytest.fixture(scope="module")
def stranger(tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("other-keys")
    generate_keypair(folder / "other.key", folder / "other.pub")
    return folder / "other.key", folder / "other.pub"


@pytest.fixture
def signed_bundle(tmp_path, signer) -> Path:
    return write_bundle(tmp_path / "bundle", bundle_files(), bundle_manifest(), key=signer[0])


def refused(path, **kwargs) -> str:
    with pytest.raises(BundleError) as info:
        open_bundle(path, **kwargs)
    return str(info.value)


# ------------------------------------------------------------------------------------------------ round trips


def test_folder_round_trip(tmp_path, signer):
    files = bundle_files()
    source = tmp_path / "report_source.md"
    source.write_bytes(files["report.md"])
    files["report.md"] = source  # a path is copied, bytes are written
    out = write_bundle(tmp_path / "bundle", files, bundle_manifest(), key=signer[0])

    opened = open_bundle(out, trust="verify", public_key=signer[1])
    assert (opened.path, opened.signed, opened.verified_signature) == (out, True, True)
    manifest = opened.manifest
    assert manifest["schema_version"] == SCHEMA_VERSION and manifest["target"] == "rpi4"
    assert manifest["signing"] == {"algorithm": "ed25519", "public_key_sha256": public_key_fingerprint(
        load_public_key(signer[1]))}
    expected = bundle_files()
    assert [e["file"] for e in manifest["files"]] == sorted(expected)
    for entry in manifest["files"]:
        data = expected[entry["file"]]
        assert entry["sha256"] == hashlib.sha256(data).hexdigest() and entry["size_bytes"] == len(data)
        assert opened.file_path(entry["file"]).read_bytes() == data
    int8 = opened.artifact(precision="int8")
    assert int8["file"] == "model_int8.onnx" and int8["size_bytes"] == 512
    assert int8["sha256"] == hashlib.sha256(expected["model_int8.onnx"]).hexdigest()
    assert opened.artifact(format="onnx", precision="fp32")["validation"] == {"accuracy": pytest.approx(0.975)}
    # Canonical bytes: what was signed can be rebuilt from the parsed manifest.
    raw = (out / MANIFEST_NAME).read_bytes()
    assert raw == (json.dumps(manifest, sort_keys=True, indent=2, ensure_ascii=False) + "\n").encode()
    assert len((out / SIGNATURE_NAME).read_bytes()) == 64


def test_archive_round_trip(tmp_path, signer):
    out = write_bundle(tmp_path / "bundle", bundle_files(), bundle_manifest(), key=signer[0], archive=True)
    assert out == tmp_path / "bundle.tar.gz" and (tmp_path / "bundle" / MANIFEST_NAME).is_file()
    with open_bundle(out, public_key=signer[1]) as opened:
        assert opened.source == out and opened.verified_signature
        assert opened.file_path("spec/features.json").read_bytes() == b'{"window": 1024}\n'
        extracted = opened.path
    assert not extracted.exists()  # close() removed the temporary extraction


def test_archive_bytes_are_reproducible(tmp_path, signer, monkeypatch):
    # No "created" given: SOURCE_DATE_EPOCH pins it, so two builds of the same inputs are byte-identical.
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    manifest = {k: v for k, v in bundle_manifest().items() if k != "created"}
    first = write_bundle(tmp_path / "a" / "bundle", bundle_files(), manifest, key=signer[0], archive=True)
    second = write_bundle(tmp_path / "b" / "bundle", bundle_files(), manifest, key=signer[0], archive=True)
    assert first.read_bytes() == second.read_bytes()
    with tarfile.open(first) as tar:
        members = tar.getmembers()
    assert [m.name for m in members] == sorted(m.name for m in members)
    assert {(m.mtime, m.uid, m.gid) for m in members} == {(0, 0, 0)}
    assert open_bundle(first, trust="hashes").manifest["created"] == "2023-11-14T22:13:20Z"  # date -u -d @1700000000


def test_rewriting_replaces_the_old_bundle_whole(tmp_path):
    write_bundle(tmp_path / "bundle", bundle_files(), bundle_manifest())
    files = {k: v for k, v in bundle_files(seed=1).items() if k != "report.md"}
    write_bundle(tmp_path / "bundle", files, bundle_manifest())
    opened = open_bundle(tmp_path / "bundle", trust="hashes")
    assert not opened.signed and [e["file"] for e in opened.manifest["files"]] == sorted(files)
    assert [p.name for p in tmp_path.iterdir()] == ["bundle"]  # no staging or backup folder left behind


# ------------------------------------------------------------------------------------------------ signatures


def test_signature_by_another_key_is_refused(signed_bundle, signer, stranger):
    ours = public_key_fingerprint(load_private_key(signer[0]))
    theirs = public_key_fingerprint(load_public_key(stranger[1]))
    assert refused(signed_bundle, public_key=stranger[1]) == (
        f"manifest.sig: the bundle was signed by key {ours[:16]}, not by the given public key {theirs[:16]}; "
        "pass the signer's public key")


def test_verify_needs_a_signature_and_a_key(tmp_path, signed_bundle):
    unsigned = write_bundle(tmp_path / "unsigned", bundle_files(), bundle_manifest())
    assert refused(unsigned, trust="verify") == (
        "bundle is unsigned (no manifest.sig), so its signature cannot be verified; re-export it with a signing "
        "key, or check file hashes only (trust='hashes'; CLI: omit --pubkey)")
    assert refused(signed_bundle, trust="verify") == (
        "trust='verify' needs the signer's public key: pass public_key= (CLI: --pubkey FILE), "
        "or use trust='hashes' to check file hashes only")
    opened = open_bundle(signed_bundle, trust="hashes")
    assert (opened.signed, opened.verified_signature) == (True, False)


def flip_byte(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    ("tamper", "expected"),
    [
        (lambda b: flip_byte(b / "model_int8.onnx", 100), f"model_int8.onnx: sha256 mismatch — {CHANGED}"),
        (lambda b: flip_byte(b / "spec" / "features.json", 0), f"spec/features.json: sha256 mismatch — {CHANGED}"),
        (lambda b: (b / "report.md").write_bytes(b"# report"),
         f"report.md: size mismatch (8 bytes, manifest.json says 9) — {CHANGED}"),
        (lambda b: (b / "manifest.json").write_bytes((b / "manifest.json").read_bytes().replace(b"rpi4", b"rpi5")),
         "manifest.json: signature check failed — the manifest or manifest.sig changed after signing; "
         "re-export or re-copy the bundle"),
        (lambda b: flip_byte(b / "manifest.sig", 5),
         "manifest.json: signature check failed — the manifest or manifest.sig changed after signing; "
         "re-export or re-copy the bundle"),
        (lambda b: (b / "report.md").unlink(),
         "report.md: listed in manifest.json but missing from the bundle; re-copy the whole bundle"),
        (lambda b: (b / "notes.txt").write_text("hi"),
         "notes.txt: not listed in manifest.json — added after export; remove it or re-export the bundle"),
        (lambda b: (b / "model.link").symlink_to(b / "model.onnx"),
         "model.link: is a symbolic link; a bundle holds plain files only — copy it without links"),
    ],
    ids=["file-byte", "subfolder-byte", "truncated", "manifest-byte", "signature-byte", "missing", "extra", "link"],
)
def test_tampering_is_refused(signed_bundle, signer, tamper, expected):
    tamper(signed_bundle)
    assert refused(signed_bundle, trust="verify", public_key=signer[1]) == expected


def test_newer_schema_asks_for_an_upgrade(tmp_path):
    out = write_bundle(tmp_path / "bundle", bundle_files(), bundle_manifest())
    manifest = json.loads((out / MANIFEST_NAME).read_text())
    (out / MANIFEST_NAME).write_text(json.dumps(manifest | {"schema_version": SCHEMA_VERSION + 1}))
    assert refused(out, trust="hashes") == (
        "bundle schema version 2 is newer than this edgekit understands (1); upgrade edgekit to open it")


def test_not_a_bundle(tmp_path):
    assert refused(tmp_path, trust="hashes") == f"{tmp_path} is not an edgekit bundle (no manifest.json)"
    assert refused(tmp_path / "nope", trust="hashes") == (
        f"{tmp_path / 'nope'} does not exist; pass a bundle folder or its .tar.gz")
    (tmp_path / "manifest.json").write_text("{not json")
    assert refused(tmp_path, trust="hashes").startswith("manifest.json is not valid JSON (")


# ------------------------------------------------------------------------------------------------ unsafe archives


def evil_archive(path: Path, member: tarfile.TarInfo, data: bytes = b"") -> Path:
    with tarfile.open(path, "w:gz") as tar:
        manifest = json.dumps({"schema_version": 1, "files": [], "artifacts": []}).encode()
        info = tarfile.TarInfo("bundle/manifest.json")
        info.size = len(manifest)
        tar.addfile(info, io.BytesIO(manifest))
        member.size = len(data) if member.isfile() else 0
        tar.addfile(member, io.BytesIO(data))
    return path


def link_member(name: str, kind: bytes, target: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info


@pytest.mark.parametrize(
    ("member", "reason"),
    [
        (tarfile.TarInfo("bundle/../../evil.txt"), "its path leaves the bundle folder; the archive is unsafe"),
        (tarfile.TarInfo("/tmp/evil.txt"), "its path leaves the bundle folder; the archive is unsafe"),
        (link_member("bundle/model.onnx", tarfile.SYMTYPE, "/etc/passwd"),
         "it is a link; a bundle archive holds plain files and folders only"),
        (link_member("bundle/model.onnx", tarfile.LNKTYPE, "bundle/manifest.json"),
         "it is a link; a bundle archive holds plain files and folders only"),
        (link_member("bundle/fifo", tarfile.FIFOTYPE, ""),
         "it is a device or other special file; a bundle archive holds plain files and folders only"),
    ],
    ids=["dotdot", "absolute", "symlink", "hardlink", "fifo"],
)
def test_unsafe_archive_members_are_refused(tmp_path, member, reason):
    name = member.name
    archive = evil_archive(tmp_path / "evil.tar.gz", member, b"pwned")
    assert refused(archive, trust="hashes") == f"evil.tar.gz: refusing member {name!r} — {reason}"
    assert not (tmp_path / "evil.txt").exists()


def zeros_archive(path: Path, members: int = 1, size: int = 4 << 20) -> Path:
    """A bundle-shaped archive of ``members`` files of zeros: tiny packed, ``members * size`` bytes unpacked."""
    with tarfile.open(path, "w:gz") as tar:
        for i in range(members):
            info = tarfile.TarInfo(f"bundle/zeros{i}.bin")
            info.size = size
            tar.addfile(info, io.BytesIO(bytes(size)))
    return path


@pytest.fixture
def scratch(tmp_path, monkeypatch) -> Path:
    """Where open_bundle unpacks archives, to check that a refused one left nothing behind."""
    folder = tmp_path / "scratch"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def test_an_archive_that_unpacks_too_large_is_refused_before_writing(tmp_path, scratch, monkeypatch):
    monkeypatch.setattr(bundle_module, "MAX_UNPACKED_BYTES", 2 << 20)
    archive = zeros_archive(tmp_path / "bomb.tar.gz")
    assert archive.stat().st_size < 64 << 10
    assert refused(archive, trust="hashes") == (
        "bomb.tar.gz: unpacks to 4 MiB, more than the 2 MiB a bundle may hold; this archive is not a bundle")
    assert not list(scratch.iterdir())


def test_an_archive_larger_than_the_free_disk_is_refused_before_writing(tmp_path, scratch, monkeypatch):
    monkeypatch.setattr(bundle_module.shutil, "disk_usage", lambda path: shutil_usage(total=8 << 20, used=7 << 20,
                                                                                       free=1 << 20))
    assert refused(zeros_archive(tmp_path / "big.tar.gz"), trust="hashes") == (
        f"big.tar.gz: unpacks to 4.0 MiB but {scratch} has 1.0 MiB free; "
        "free some space or set TMPDIR to a larger disk")
    assert not list(scratch.iterdir())


def test_an_archive_with_too_many_members_is_refused(tmp_path, scratch, monkeypatch):
    monkeypatch.setattr(bundle_module, "MAX_ARCHIVE_MEMBERS", 5)
    assert refused(zeros_archive(tmp_path / "many.tar.gz", members=6, size=1), trust="hashes") == (
        "many.tar.gz: more than 5 members; this archive is not a bundle")
    assert not list(scratch.iterdir())


# ------------------------------------------------------------------------------------------------ writing mistakes


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("../model.onnx", "it contains '..'; every file must stay inside the bundle folder"),
        ("sub/../../x", "it contains '..'; every file must stay inside the bundle folder"),
        ("/etc/model.onnx", "it is an absolute path; use a path relative to the bundle folder"),
        ("sub//x.bin", "use letters, digits, '.', '_', '-' and '+' in names separated by '/'"),
        ("model onnx", "use letters, digits, '.', '_', '-' and '+' in names separated by '/'"),
    ],
)
def test_bad_file_names_are_refused(tmp_path, name, reason):
    with pytest.raises(BundleError) as info:
        write_bundle(tmp_path / "bundle", {name: b"x"}, {})
    assert str(info.value) == f"{name!r} is not a valid bundle file name: {reason}"
    assert not (tmp_path / "bundle").exists()


def test_write_refusals(tmp_path):
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "thesis.tex").write_text("keep me")
    with pytest.raises(BundleError) as info:
        write_bundle(tmp_path / "busy", bundle_files(), bundle_manifest())
    assert str(info.value) == (f"{tmp_path / 'busy'} is not empty and is not an edgekit bundle (no manifest.json); "
                               "choose another folder or empty it")
    manifest = bundle_manifest() | {"artifacts": [{"file": "model.tflite", "format": "tflite", "precision": "int8"}]}
    with pytest.raises(BundleError) as info:
        write_bundle(tmp_path / "b", bundle_files(), manifest)
    assert str(info.value) == "artifact 'model.tflite' is not among the bundle's files; add it to files"
    with pytest.raises(BundleError) as info:
        write_bundle(tmp_path / "b", {"manifest.json": b"{}"}, {})
    assert str(info.value) == "'manifest.json' is written by write_bundle itself; give your file another name"
    with pytest.raises(BundleError) as info:
        write_bundle(tmp_path / "b", bundle_files(), bundle_manifest() | {"score": float("nan")})
    assert str(info.value).startswith("the manifest must hold plain JSON values with text keys (no NaN or infinity)")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["busy"]


def test_artifact_selection_errors_list_what_exists(tmp_path):
    opened = open_bundle(write_bundle(tmp_path / "bundle", bundle_files(), bundle_manifest()), trust="hashes")
    both = ("model.onnx (format='onnx', precision='fp32'); model_int8.onnx (format='onnx', precision='int8')")
    with pytest.raises(BundleError) as info:
        opened.artifact(format="tflite")
    assert str(info.value) == f"no artifact with format='tflite' in this bundle; it has: {both}"
    with pytest.raises(BundleError) as info:
        opened.artifact(format="onnx")
    assert str(info.value) == f"2 artifacts match format='onnx'; pass format= and precision= to pick one of: {both}"
    with pytest.raises(BundleError) as info:
        opened.file_path("model.tflite")
    assert str(info.value).startswith("'model.tflite' is not in this bundle; it has: model.onnx, model_int8.onnx")


# ------------------------------------------------------------------------------------------------ keys


def test_generated_keys(tmp_path, signer):
    fingerprint = generate_keypair(tmp_path / "k.key", tmp_path / "k.pub")
    assert (tmp_path / "k.key").stat().st_mode & 0o777 == 0o600
    assert public_key_fingerprint(load_private_key(tmp_path / "k.key")) == fingerprint
    assert public_key_fingerprint(load_public_key(tmp_path / "k.pub")) == fingerprint
    with pytest.raises(BundleError) as info:
        generate_keypair(tmp_path / "k.key", tmp_path / "other.pub")
    assert str(info.value) == f"{tmp_path / 'k.key'} already exists; refusing to overwrite a key — choose another name"
    with pytest.raises(BundleError) as info:
        load_public_key(tmp_path / "k.key")
    assert str(info.value) == (f"{tmp_path / 'k.key'} is a private key; pass the public key (.pub) "
                               "and keep the private key off devices")


def test_encrypted_keys_need_their_password(tmp_path, monkeypatch):
    monkeypatch.delenv(PASSWORD_ENV, raising=False)
    key = tmp_path / "locked.key"
    fingerprint = generate_keypair(key, tmp_path / "locked.pub", password=b"correct horse")
    assert b"ENCRYPTED PRIVATE KEY" in key.read_bytes()
    with pytest.raises(BundleError) as info:
        load_private_key(key)
    assert str(info.value) == (f"{key} is an encrypted private key and no password was given; set "
                               "EDGEKIT_SIGN_KEY_PASSWORD (or run edgekit export at a terminal, which asks for it)")
    with pytest.raises(BundleError) as info:
        load_private_key(key, b"battery staple")
    assert str(info.value) == f"{key}: wrong password for this encrypted private key"
    assert public_key_fingerprint(load_private_key(key, b"correct horse")) == fingerprint
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    legacy = rsa.generate_private_key(public_exponent=65537, key_size=1024).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.BestAvailableEncryption(b"x"))
    (tmp_path / "legacy.key").write_bytes(legacy)
    with pytest.raises(BundleError) as info:
        load_private_key(tmp_path / "legacy.key")
    assert str(info.value) == (f"{tmp_path / 'legacy.key'} is an encrypted key in the old OpenSSL format, not an "
                               "ed25519 key; make one with: edgekit keys generate --out PREFIX --password")
    monkeypatch.setenv(PASSWORD_ENV, "correct horse")
    bundle = write_bundle(tmp_path / "bundle", bundle_files(), bundle_manifest(), key=key)
    assert open_bundle(bundle, public_key=tmp_path / "locked.pub").verified_signature


def test_raw_public_key_verifies(tmp_path, signed_bundle, signer):
    from cryptography.hazmat.primitives import serialization

    raw = load_public_key(signer[1]).public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    (tmp_path / "signer.raw").write_bytes(raw)
    assert open_bundle(signed_bundle, public_key=tmp_path / "signer.raw").verified_signature


def test_missing_cryptography_names_the_extra(signed_bundle, signer, monkeypatch):
    monkeypatch.setitem(sys.modules, "cryptography", None)  # import of cryptography now fails
    with pytest.raises(MissingDependencyError) as info:
        open_bundle(signed_bundle, public_key=signer[1])
    assert str(info.value) == "cryptography is not installed; install it with: pip install 'edgekit[runtime]'"
    assert open_bundle(signed_bundle, trust="hashes").signed  # hashes alone need no cryptography


def test_import_stays_light():
    """The device imports edgekit.bundle; it must not drag in training, export or (until needed) crypto libraries."""
    code = ("import sys, edgekit.bundle; "
            "print(sorted(m for m in ('torch', 'onnx', 'scipy', 'cryptography') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# ------------------------------------------------------------------------------------------------ command line


def test_cli_keys_generate(tmp_path):
    runner, prefix = CliRunner(), str(tmp_path / "fleet")
    result = runner.invoke(cli, ["keys", "generate", "--out", prefix])
    assert result.exit_code == 0, result.output
    fingerprint = public_key_fingerprint(load_public_key(prefix + ".pub"))
    assert result.output.splitlines()[-1] == f"fingerprint: {fingerprint}"
    again = runner.invoke(cli, ["keys", "generate", "--out", prefix])
    assert again.exit_code == 1
    assert again.output == f"Error: {prefix}.key already exists; refusing to overwrite a key — choose another name\n"


def test_cli_keys_generate_with_a_password_and_export_asks_for_it(tmp_path, monkeypatch):
    from edgekit.cli import export as export_cli

    monkeypatch.delenv(PASSWORD_ENV, raising=False)
    runner, prefix = CliRunner(), str(tmp_path / "locked")
    result = runner.invoke(cli, ["keys", "generate", "--out", prefix, "--password"], input="pw\npw\n")
    assert result.exit_code == 0, result.output
    assert "mode 0600, encrypted;" in result.output
    fingerprint = public_key_fingerprint(load_private_key(prefix + ".key", b"pw"))
    # At a terminal, export asks; a wrong answer stops it before any work, with no traceback.
    monkeypatch.setattr(export_cli, "is_interactive", lambda: True)
    wrong = runner.invoke(cli, ["export", str(tmp_path), "--target", "rpi4", "--out", str(tmp_path / "b"),
                                "--sign-key", prefix + ".key"], input="nope\n")
    assert wrong.exit_code == 1 and wrong.output.endswith(f"Error: {prefix}.key: wrong password for this "
                                                          "encrypted private key\n")
    monkeypatch.setattr(sys, "stdin", io.StringIO("pw\n"))
    assert public_key_fingerprint(export_cli._signing_key(prefix + ".key")) == fingerprint


def test_cli_verify(tmp_path, signed_bundle, signer, stranger):
    runner = CliRunner()
    fingerprint = public_key_fingerprint(load_public_key(signer[1]))
    result = runner.invoke(cli, ["bundle", "verify", str(signed_bundle), "--pubkey", str(signer[1])])
    assert result.exit_code == 0, result.output
    assert result.output == (f"ok: {signed_bundle}: 4 files match manifest.json (sha256 and size)\n"
                             f"signature verified (ed25519, key {fingerprint[:16]})\n")
    result = runner.invoke(cli, ["bundle", "verify", str(signed_bundle)])
    assert result.output.splitlines()[1] == f"signature not checked (no --pubkey); signed by key {fingerprint[:16]}"
    unsigned = write_bundle(tmp_path / "unsigned", bundle_files(), bundle_manifest(), archive=True)
    result = runner.invoke(cli, ["bundle", "verify", str(unsigned), "--format", "json"])
    assert result.exit_code == 0
    assert json.loads(result.output) == {"path": str(unsigned), "ok": True, "files": 4, "signed": False,
                                         "signature": "unsigned", "signer_public_key_sha256": None}
    assert runner.invoke(cli, ["bundle", "verify", str(unsigned)]).output.splitlines()[1] == "bundle is unsigned"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--pubkey", "{other}"], "Error: manifest.sig: the bundle was signed by key "),
        (["--pubkey", "{missing}"], "Error: {missing}: no such key file"),
        ([], f"Error: model_int8.onnx: sha256 mismatch — {CHANGED}"),
    ],
    ids=["other-key", "no-key-file", "changed-file"],
)
def test_cli_verify_failures_are_one_line(tmp_path, signed_bundle, stranger, args, expected):
    names = {"other": str(stranger[1]), "missing": str(tmp_path / "missing.pub")}
    if not args:
        flip_byte(signed_bundle / "model_int8.onnx", 7)
    result = CliRunner().invoke(cli, ["bundle", "verify", str(signed_bundle), *[a.format(**names) for a in args]])
    assert result.exit_code == 1
    assert result.output.startswith(expected.format(**names)), result.output
    assert isinstance(result.exception, SystemExit) and len(result.output.strip().splitlines()) == 1


def test_cli_inspect(signed_bundle, signer):
    runner = CliRunner()
    result = runner.invoke(cli, ["bundle", "inspect", str(signed_bundle)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "target   rpi4" in lines and "classes  normal, inner_race, outer_race" in lines
    header = next(line for line in lines if line.startswith("file "))
    assert header.split() == ["file", "format", "precision", "size", "sha256", "accuracy", "agreement",
                              "max_abs_error"]
    int8 = next(line for line in lines if line.startswith("model_int8.onnx")).split()
    assert int8[:4] == ["model_int8.onnx", "onnx", "int8", "512"] and int8[-2:] == ["0.9984", "0.0123"]
    fp32 = next(line for line in lines if line.startswith("model.onnx ")).split()
    assert fp32[-1] == "0.975"  # float32(0.975) stored as 0.9750000238418579, shown to 4 significant digits
    as_json = json.loads(runner.invoke(cli, ["bundle", "inspect", str(signed_bundle), "--format", "json"]).output)
    assert as_json["signature"] == "not_checked" and as_json["manifest"]["target"] == "rpi4"
    missing = runner.invoke(cli, ["bundle", "inspect", str(signed_bundle / "nope.tar.gz")])
    assert missing.exit_code == 1
    assert missing.output == f"Error: {signed_bundle / 'nope.tar.gz'} does not exist; pass a bundle folder or its .tar.gz\n"


def test_keys_generate_into_an_unwritable_place_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    result = CliRunner().invoke(cli, ["keys", "generate", "--out", str(blocker / "k")])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    assert result.output.startswith(f"Error: cannot write the key to {blocker / 'k.key'}")
