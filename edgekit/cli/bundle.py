"""``edgekit bundle`` and ``edgekit keys``: check and look inside export bundles; make the keys that sign them."""

from __future__ import annotations

import os
from pathlib import Path

import click

from edgekit.bundle import Bundle, open_bundle
from edgekit.signing import PASSWORD_ENV, generate_keypair
from edgekit.cli.output import echo_json, echo_table, format_bytes, format_option

# Shown first when an artifact's validation has them; any other numbers follow in name order.
VALIDATION_COLUMNS = ("accuracy", "agreement", "max_abs_error")


@click.group()
def keys() -> None:
    """Make the ed25519 key pair that signs bundles (only the public key goes to devices)."""


@keys.command("generate")
@click.option("--out", "prefix", required=True, metavar="PREFIX",
              help="Writes PREFIX.key (private, mode 0600) and PREFIX.pub (public).")
@click.option("--password", "encrypt", is_flag=True,
              help=f"Encrypt the private key with a password, asked for here (or read from ${PASSWORD_ENV}).")
@format_option
def generate(prefix: str, encrypt: bool, fmt: str) -> None:
    """Generate a signing key pair; refuses to overwrite existing key files."""
    private_path, public_path = Path(prefix + ".key"), Path(prefix + ".pub")
    password = None
    if encrypt:
        password = os.environ.get(PASSWORD_ENV) or click.prompt(
            "Password for the private key", hide_input=True, confirmation_prompt=True, err=True)
    fingerprint = generate_keypair(private_path, public_path, password.encode() if password else None)
    if fmt == "json":
        echo_json({"private_key": str(private_path), "public_key": str(public_path), "fingerprint": fingerprint})
        return
    click.echo(f"private key: {private_path} (mode 0600{', encrypted' if password else ''}; keep it secret and "
               "off devices)")
    click.echo(f"public key:  {public_path} (copy to devices to verify bundles)")
    click.echo(f"fingerprint: {fingerprint}")


@click.group()
def bundle() -> None:
    """Check and inspect export bundles (a folder or its .tar.gz)."""


@bundle.command("verify")
@click.argument("path", metavar="DIR_OR_TGZ")
@click.option("--pubkey", metavar="FILE", help="The signer's public key; without it only the file hashes are checked.")
@format_option
def verify_bundle(path: str, pubkey: str | None, fmt: str) -> None:
    """Check every file's sha256 and size and, with --pubkey, the signature."""
    with open_bundle(path, trust="verify" if pubkey else "hashes", public_key=pubkey) as opened:
        status, signer = _signature_status(opened), _signer(opened)
        count = len(opened.manifest["files"])
        if fmt == "json":
            echo_json({"path": path, "ok": True, "files": count, "signed": opened.signed, "signature": status,
                       "signer_public_key_sha256": signer})
            return
        click.echo(f"ok: {path}: {count} files match manifest.json (sha256 and size)")
        click.echo({
            "verified": f"signature verified (ed25519, key {signer[:16] if signer else ''})",
            "not_checked": f"signature not checked (no --pubkey); signed by key {(signer or '?')[:16]}",
            "unsigned": "bundle is unsigned",
        }[status])


@bundle.command("inspect")
@click.argument("path", metavar="DIR_OR_TGZ")
@format_option
def inspect_bundle(path: str, fmt: str) -> None:
    """Show a bundle's target, artifacts with their validation numbers, classes and signing; checks file hashes."""
    with open_bundle(path, trust="hashes") as opened:
        manifest = opened.manifest
        status, signer = _signature_status(opened), _signer(opened)
        if fmt == "json":
            echo_json({"path": path, "signed": opened.signed, "signature": status, "manifest": manifest})
            return
        target = manifest.get("target")
        if isinstance(target, dict):
            target = target.get("name")
        signing = (f"signed (ed25519, key {(signer or '?')[:16]}); check it with: edgekit bundle verify --pubkey FILE"
                   if opened.signed else "unsigned")
        echo_table([
            ("bundle", path),
            ("target", target or "(not recorded)"),
            ("edgekit", manifest.get("edgekit_version", "(not recorded)")),
            ("created", manifest.get("created", "(not recorded)")),
            ("classes", ", ".join(map(str, manifest.get("classes") or [])) or "(not recorded)"),
            ("signing", signing),
        ], ["field", "value"])
        click.echo()
        _echo_artifacts(opened.artifacts)


def _echo_artifacts(artifacts: list[dict]) -> None:
    if not artifacts:
        click.echo("artifacts: none")
        return
    numbers = {k for a in artifacts for k, v in _validation(a).items() if isinstance(v, (int, float, str))}
    columns = [c for c in VALIDATION_COLUMNS if c in numbers] + sorted(numbers - set(VALIDATION_COLUMNS))
    rows = [
        (a["file"], a["format"], a["precision"], format_bytes(a["size_bytes"]), a["sha256"][:12],
         *(_number(_validation(a).get(c)) for c in columns))
        for a in artifacts
    ]
    echo_table(rows, ["file", "format", "precision", "size", "sha256", *columns])


def _validation(artifact: dict) -> dict:
    value = artifact.get("validation")
    return value if isinstance(value, dict) else {}


def _number(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None or isinstance(value, (dict, list)) else str(value)


def _signature_status(opened: Bundle) -> str:
    if opened.verified_signature:
        return "verified"
    return "not_checked" if opened.signed else "unsigned"


def _signer(opened: Bundle) -> str | None:
    signing = opened.manifest.get("signing")
    return signing.get("public_key_sha256") if isinstance(signing, dict) else None
