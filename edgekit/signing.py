"""ed25519 keys and signatures for bundles: generate, load, fingerprint, verify.

``cryptography`` is imported inside the functions, so ``import edgekit.bundle`` stays light on the device; a
missing ``cryptography`` is an error that names the ``runtime`` extra.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from edgekit.errors import BundleError, require_module

# Where a CI job or a build script keeps the password of an encrypted signing key (the CLI asks at a terminal).
PASSWORD_ENV = "EDGEKIT_SIGN_KEY_PASSWORD"


def _crypto():
    require_module("cryptography", "runtime")  # a clear error naming the extra, not a bare ImportError
    from cryptography import exceptions
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    return ed25519, serialization, exceptions


def verify_manifest_signature(manifest: dict, manifest_bytes: bytes, signature_path: Path | None, public_key) -> None:
    if signature_path is None:
        raise BundleError("bundle is unsigned (no manifest.sig), so its signature cannot be verified; re-export it "
                          "with a signing key, or check file hashes only (trust='hashes'; CLI: omit --pubkey)")
    if public_key is None:
        raise BundleError("trust='verify' needs the signer's public key: pass public_key= (CLI: --pubkey FILE), "
                          "or use trust='hashes' to check file hashes only")
    _, _, exceptions = _crypto()
    key = as_public_key(public_key)
    signing = manifest.get("signing")
    if not isinstance(signing, dict) or signing.get("algorithm") != "ed25519":
        raise BundleError("manifest.json: manifest.sig is present but the manifest names no ed25519 signing key; "
                          "re-export the bundle")
    given, claimed = public_key_fingerprint(key), str(signing.get("public_key_sha256"))
    if claimed != given:
        raise BundleError(f"manifest.sig: the bundle was signed by key {claimed[:16]}, not by the given public key "
                          f"{given[:16]}; pass the signer's public key")
    try:
        key.verify(signature_path.read_bytes(), manifest_bytes)
    except exceptions.InvalidSignature:
        raise BundleError("manifest.json: signature check failed — the manifest or manifest.sig changed after "
                          "signing; re-export or re-copy the bundle") from None


def generate_keypair(private_path, public_path, password: bytes | None = None) -> str:
    """Write a new ed25519 key pair as PEM (private key mode 0600, encrypted when ``password`` is given) and
    return its fingerprint."""
    private_path, public_path = Path(private_path), Path(public_path)
    for path in (private_path, public_path):
        if path.exists() or path.is_symlink():
            raise BundleError(f"{path} already exists; refusing to overwrite a key — choose another name")
    ed25519, serialization, _ = _crypto()
    key = ed25519.Ed25519PrivateKey.generate()
    encryption = serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
    private_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
    public_pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
    try:
        for path in (private_path, public_path):
            path.parent.mkdir(parents=True, exist_ok=True)
        # Created 0600 with O_EXCL: the secret is never readable by others, not even between a write and a chmod.
        fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(private_pem)
    except OSError as exc:
        raise BundleError(f"cannot write the key to {private_path}: {exc.strerror}; choose a writable folder") from None
    try:
        with open(public_path, "xb") as f:
            f.write(public_pem)
    except BaseException as exc:
        private_path.unlink()
        if isinstance(exc, OSError):
            raise BundleError(f"cannot write {public_path}: {exc.strerror}; choose a writable folder") from None
        raise
    return public_key_fingerprint(key)


_ENCRYPTED_PEM = b"-----BEGIN ENCRYPTED PRIVATE KEY-----"  # PKCS#8, what keys generate --password writes


def is_encrypted_private_key(path) -> bool:
    return _ENCRYPTED_PEM in _read_key_file(path)


def load_private_key(path, password: bytes | None = None):
    """Read an ed25519 private key from a PEM file; an encrypted one with ``password`` or $EDGEKIT_SIGN_KEY_PASSWORD."""
    ed25519, serialization, exceptions = _crypto()
    data = _read_key_file(path)
    encrypted = _ENCRYPTED_PEM in data
    if encrypted and password is None and os.environ.get(PASSWORD_ENV):
        password = os.environ[PASSWORD_ENV].encode()
    if encrypted and not password:
        raise BundleError(f"{path} is an encrypted private key and no password was given; set {PASSWORD_ENV} "
                          "(or run edgekit export at a terminal, which asks for it)")
    try:
        key = serialization.load_pem_private_key(data, password=password if encrypted else None)
    except TypeError:  # encrypted the old OpenSSL way ("Proc-Type: 4,ENCRYPTED"), which ed25519 keys never are
        raise BundleError(f"{path} is an encrypted key in the old OpenSSL format, not an ed25519 key; make one "
                          "with: edgekit keys generate --out PREFIX --password") from None
    except (ValueError, exceptions.UnsupportedAlgorithm):
        if encrypted:  # cryptography says "Bad decrypt. Incorrect password?"
            raise BundleError(f"{path}: wrong password for this encrypted private key") from None
        key = None
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise BundleError(f"{path} is not an ed25519 private key in PEM form; "
                          "make one with: edgekit keys generate --out PREFIX")
    return key


def load_public_key(path):
    """Read an ed25519 public key from a PEM, OpenSSH (``ssh-ed25519 ...``) or raw 32-byte file."""
    ed25519, serialization, exceptions = _crypto()
    data = _read_key_file(path)
    if b"PRIVATE KEY" in data:
        raise BundleError(f"{path} is a private key; pass the public key (.pub) and keep the private key off devices")
    key = None
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            key = serialization.load_pem_public_key(data)
        elif data.startswith(b"ssh-ed25519 "):
            key = serialization.load_ssh_public_key(data)
        elif len(data) == 32:
            key = ed25519.Ed25519PublicKey.from_public_bytes(data)
    except (ValueError, exceptions.UnsupportedAlgorithm):
        pass
    if not isinstance(key, ed25519.Ed25519PublicKey):
        raise BundleError(f"{path} is not an ed25519 public key (PEM, OpenSSH or 32 raw bytes); "
                          "pass the .pub file written by edgekit keys generate")
    return key


def public_key_fingerprint(key) -> str:
    """sha256 (hex) of the raw 32 public-key bytes; a private key gives its public key's fingerprint."""
    ed25519, serialization, _ = _crypto()
    if isinstance(key, ed25519.Ed25519PrivateKey):
        key = key.public_key()
    if not isinstance(key, ed25519.Ed25519PublicKey):
        raise TypeError(f"expected an ed25519 key, not {type(key).__name__}")
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def _read_key_file(path) -> bytes:
    if not Path(path).is_file():
        raise BundleError(f"{path}: no such key file")
    return Path(path).read_bytes()


def as_private_key(key):
    if isinstance(key, (str, os.PathLike)):
        return load_private_key(key)
    ed25519, _, _ = _crypto()
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise TypeError(f"key must be an ed25519 private key or the path of its PEM file, not {type(key).__name__}")
    return key


def as_public_key(key):
    if isinstance(key, (str, os.PathLike)):
        return load_public_key(key)
    ed25519, _, _ = _crypto()
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key.public_key()
    if not isinstance(key, ed25519.Ed25519PublicKey):
        raise TypeError(f"public_key must be an ed25519 public key or the path of its file, not {type(key).__name__}")
    return key
