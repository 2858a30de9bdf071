"""``edgekit flash``: put a bundle and everything it needs to run onto a Linux board over SSH.

On the device, each flash is a new folder and the switch is one atomic rename at the very end::

    PATH/
      current -> releases/20260509T073525Z-9f2c41be      the release edgekit.service runs
      releases/20260509T073525Z-9f2c41be/
        bundle/      the exported bundle, hashes checked on the device
        wheelhouse/  the offline wheels it was installed from
        venv/        edgekit[runtime], installed without network
        scripts/     install.sh, update.sh, start.sh, the systemd unit (firmware_examples/rpi4)

Everything that can be checked before copying is (architecture, Python, permissions, free space), and any
failure before the switch removes the half-made release, so the device keeps running its previous one. From the
copy to the switch the flash holds ``PATH/.flash-lock`` (``flash_lock``): a second flash to the same folder is
refused instead of having its half-made release removed by the first one's clean-up.
"""

from __future__ import annotations

import hashlib
import json
import re
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Sequence

from edgekit.bundle import MANIFEST_NAME, open_bundle
from edgekit.deploy.device import DeviceInfo, check_device, format_mib, probe_device
from edgekit.deploy.flash_lock import flash_lock
from edgekit.deploy.ssh import Remote, SshTarget, parse_target
from edgekit.deploy.wheelhouse import Wheelhouse, build_wheelhouse, cached_wheelhouse_exists
from edgekit.errors import EdgekitError

KEEP_RELEASES = 3
SCRIPTS = ("install.sh", "update.sh", "install-service.sh", "start.sh", "edgekit.service", "edgekit.env.example")
# Installed packages take about twice their wheels' size (llvmlite, onnxruntime and numpy unpack large .so files).
INSTALLED_FACTOR = 2
MARGIN_BYTES = 16 << 20
_STEPS = 7

Progress = Callable[[str], None]


class FlashError(EdgekitError):
    """The bundle cannot be flashed: a bundle without a Linux platform, or a step on the device that failed."""


def firmware_dir() -> Path:
    """``firmware_examples/rpi4``: beside the package in a checkout, ``edgekit/_firmware/rpi4`` in a wheel."""
    package = Path(__file__).resolve().parents[1]
    for folder in (package / "_firmware" / "rpi4", package.parent / "firmware_examples" / "rpi4"):
        if all((folder / name).is_file() for name in SCRIPTS):
            return folder
    raise FlashError(f"the device scripts ({', '.join(SCRIPTS)}) are missing from {package / '_firmware'} and "
                     f"{package.parent / 'firmware_examples'}; reinstall edgekit")


@dataclass(frozen=True)
class FlashPlan:
    """What a flash will do; ``steps()`` is what ``--dry-run`` prints."""

    bundle: str
    manifest_sha256: str
    target: SshTarget
    profile: str
    arch: str
    python: str
    wheel_tags: tuple[str, ...]
    release: str
    bundle_bytes: int
    bundle_files: int
    service: bool = True
    keep: int = KEEP_RELEASES
    wheelhouse_cached: bool = False

    @property
    def remote_path(self) -> str:
        return self.target.path if self.target.path.startswith("/") else f"~/{self.target.path}"

    def steps(self) -> list[str]:
        where = f"{self.remote_path}/releases/{self.release}"
        wheelhouse = "from the cache" if self.wheelhouse_cached else "downloaded from the package index"
        service = ("install edgekit.service (needs systemd and root or passwordless sudo; skipped otherwise), "
                   "and /etc/edgekit/edgekit.env if the device has none" if self.service
                   else "leave the systemd service alone (--no-service)")
        return [
            f"check {self.target.display}: architecture {self.arch}, Python {self.python} with venv, write access "
            f"to {self.remote_path}",
            f"build the offline wheelhouse of edgekit[runtime] for CPython {self.python} on {self.arch} "
            f"({', '.join(self.wheel_tags)}), {wheelhouse}",
            f"check free space, then copy the bundle ({self.bundle_files} files, {_size(self.bundle_bytes)}), the "
            f"wheelhouse and the device scripts to {where}/",
            f"create {where}/venv and install edgekit[runtime] from the wheelhouse, without network",
            "verify the bundle's hashes on the device with its own edgekit (edgekit bundle verify)",
            service,
            f"switch {self.remote_path}/current to releases/{self.release} atomically, restart edgekit.service if "
            f"configured, keep the newest {self.keep} releases",
        ]

    def to_dict(self) -> dict:
        return {"bundle": self.bundle, "manifest_sha256": self.manifest_sha256, "device": self.target.display,
                "path": self.remote_path, "target": self.profile, "arch": self.arch, "python": self.python,
                "wheel_tags": list(self.wheel_tags), "release": self.release, "bundle_bytes": self.bundle_bytes,
                "bundle_files": self.bundle_files, "service": self.service, "keep": self.keep,
                "wheelhouse_cached": self.wheelhouse_cached, "steps": self.steps()}


@dataclass
class FlashResult:
    """What a flash did."""

    device: str
    path: str
    release: str
    previous: str | None
    python: str
    copy_tool: str
    wheelhouse: str
    wheelhouse_cached: bool
    verified_files: int | None
    service: str
    removed: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def current(self) -> str:
        return f"{self.path}/current"

    def to_dict(self) -> dict:
        return {**asdict(self), "current": f"{self.current} -> releases/{self.release}"}


def plan_flash(bundle, to: str, *, identity: str | None = None, known_hosts: str | None = None,
               service: bool = True, keep: int = KEEP_RELEASES, ssh_options: Sequence[str] = (),
               cache_dir: Path | None = None) -> FlashPlan:
    """Check the bundle (its hashes, that its target is a Linux board) and the ``ssh://`` address; touch nothing."""
    if keep < 1:
        raise FlashError(f"keep must be at least 1 (the current release), not {keep}")
    target = parse_target(to, identity=identity, known_hosts=known_hosts, options=ssh_options)
    with open_bundle(bundle, trust="hashes") as opened:
        manifest_bytes = (opened.path / MANIFEST_NAME).read_bytes()
        profile = _target_profile(opened.manifest)
        files = opened.manifest["files"]
    platform = profile.get("platform") or {}
    name, arch = profile.get("name", "?"), profile.get("arch", "?")
    if not platform.get("python") or not platform.get("wheel_tags"):
        raise FlashError(f"the bundle's target {name} ({arch}) has no [platform] with python and wheel_tags; flash "
                         "is for Linux boards that run Python (microcontroller bundles are built into firmware)")
    python, tags = str(platform["python"]), tuple(platform["wheel_tags"])
    sha = hashlib.sha256(manifest_bytes).hexdigest()
    release = f"{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}-{sha[:8]}"
    return FlashPlan(bundle=str(bundle), manifest_sha256=sha, target=target, profile=name, arch=arch,
                     python=python, wheel_tags=tags, release=release,
                     bundle_bytes=sum(f["size_bytes"] for f in files) + len(manifest_bytes),
                     bundle_files=len(files), service=service, keep=keep,
                     wheelhouse_cached=cached_wheelhouse_exists(python, arch, tags, cache_dir))


def _target_profile(manifest: dict) -> dict:
    target = manifest.get("target")
    if isinstance(target, dict):
        return target
    if isinstance(target, str):  # older bundles named the profile only
        from edgekit.targets import get_profile

        return get_profile(target).to_dict()
    raise FlashError("the bundle's manifest records no target; re-export it with: edgekit export RUN --target NAME")


def run_flash(plan: FlashPlan, *, wheelhouse: Wheelhouse | None = None, cache_dir: Path | None = None,
              progress: Progress | None = None, prefer_rsync: bool = True) -> FlashResult:
    """Carry out ``plan``. ``wheelhouse`` skips building one (tests pass a prepared one); ``prefer_rsync=False``
    copies with scp even where rsync exists on both ends."""
    say = progress or (lambda message: None)
    remote = Remote(plan.target)
    host = plan.target.host

    say(f"[1/{_STEPS}] checking {plan.target.display}")
    info = probe_device(remote, plan.python)
    # Architecture, Python and permissions are checked now, before minutes of downloading; space once the
    # wheelhouse's size is known.
    check_device(info, host, plan.profile, plan.arch, plan.python, need_bytes=0, breakdown="")

    say(f"[2/{_STEPS}] building the wheelhouse for CPython {plan.python} on {plan.arch}")
    if wheelhouse is None:
        wheelhouse = build_wheelhouse(plan.python, plan.arch, plan.wheel_tags, cache_dir=cache_dir, progress=say)
    wheel_bytes = wheelhouse.size_bytes
    need = plan.bundle_bytes + wheel_bytes * (1 + INSTALLED_FACTOR) + MARGIN_BYTES
    breakdown = (f"bundle {format_mib(plan.bundle_bytes)}, wheelhouse {format_mib(wheel_bytes)}, installed packages about "
                 f"{INSTALLED_FACTOR}x the wheelhouse, {format_mib(MARGIN_BYTES)} margin")
    python = check_device(info, host, plan.profile, plan.arch, plan.python, need, breakdown)

    release_dir = f"{info.dest}/releases/{plan.release}"
    previous = info.current_release
    created = False
    with flash_lock(remote, info.dest) as stale_owner:
        try:
            say(f"[3/{_STEPS}] copying the bundle and {len(wheelhouse.wheels)} wheels to {host}:{release_dir}")
            _make_release_dir(remote, info.dest, release_dir)
            created = True
            copy_tool = _copy_release(remote, plan, wheelhouse, release_dir, prefer_rsync and info.rsync)
            say(f"[4/{_STEPS}] installing edgekit[runtime] into {release_dir}/venv (offline)")
            verified = _install(remote, host, release_dir, python)
            say(f"[5/{_STEPS}] bundle verified on the device ({verified if verified is not None else '?'} files)")
            service, notes = _service(remote, plan, info, release_dir)
            say(f"[6/{_STEPS}] service: {service}")
        except BaseException as exc:
            if created:
                _remove_quietly(remote, release_dir)
            if isinstance(exc, EdgekitError):
                raise type(exc)(f"{exc}; {_kept(host, previous, created)}") from exc
            raise

        say(f"[7/{_STEPS}] switching {info.dest}/current to releases/{plan.release}")
        updated = _update(remote, host, info.dest, plan, release_dir, previous)
    if stale_owner is not None:
        notes.append(f"took over a lock left by a flash that did not finish ({stale_owner or 'unknown'})")
    state = updated.get("service", [""])[0]
    if state == "restarted":
        service += "; restarted"
    elif state == "not_configured":
        notes.append("edgekit.service is not started until EDGEKIT_SOURCE is set in /etc/edgekit/edgekit.env; "
                     "then: sudo systemctl restart edgekit")
    elif state == "restart_failed":
        notes.append("edgekit.service did not restart; see: journalctl -u edgekit")
    notes += updated.get("warning", [])
    return FlashResult(device=plan.target.display, path=info.dest, release=plan.release, previous=previous,
                       python=python, copy_tool=copy_tool, wheelhouse=str(wheelhouse.folder),
                       wheelhouse_cached=wheelhouse.cached, verified_files=verified, service=service,
                       removed=updated.get("removed", []), notes=notes)


def _size(n: int) -> str:
    return f"{n} bytes" if n < 1024 else f"{n / 1024:.1f} KiB" if n < 1 << 20 else format_mib(n)


def _kept(host: str, previous: str | None, created: bool) -> str:
    removed = "the half-made release was removed and " if created else ""
    if previous:
        return f"{removed}{host} keeps its previous release {previous}"
    return f"{removed}{host} had no release before, so nothing runs there yet"


def _tail(text: str, lines: int = 3) -> str:
    kept = [line.strip() for line in text.strip().splitlines() if line.strip() and not line.startswith("step=")]
    errors = [line.removeprefix("ERROR:").strip() for line in kept if line.startswith("ERROR:")]
    return " ".join((errors or kept)[-lines:]) or "no message"


def _make_release_dir(remote: Remote, dest: str, release_dir: str) -> None:
    # Plain mkdir, not -p: an existing folder of that name belongs to another flash and must not be touched.
    result = remote.run(["sh", "-c", 'mkdir -p "$1/releases" && mkdir "$2"', "sh", dest, release_dir])
    if result.returncode != 0:
        raise FlashError(f"cannot create {release_dir} on {remote.target.host}: {_tail(result.stderr)}; if another "
                         "flash started in the same second, run this one again")


def _copy_release(remote: Remote, plan: FlashPlan, wheelhouse: Wheelhouse, release_dir: str,
                  use_rsync: bool) -> str:
    """One copy for bundle, wheels and scripts: a local folder of symbolic links, followed by rsync -L / scp."""
    # Hashes were checked by plan_flash, and the device checks them again after the copy.
    with open_bundle(plan.bundle, trust="none") as opened, \
            tempfile.TemporaryDirectory(prefix="edgekit-flash-") as tmp:
        staging = Path(tmp)
        (staging / "bundle").symlink_to(opened.path.resolve(), target_is_directory=True)
        (staging / "scripts").symlink_to(firmware_dir(), target_is_directory=True)
        (staging / "wheelhouse").mkdir()
        for wheel in wheelhouse.wheels:
            (staging / "wheelhouse" / wheel.name).symlink_to(wheel.resolve())
        return remote.copy([staging / "bundle", staging / "wheelhouse", staging / "scripts"], release_dir,
                           use_rsync)


_INSTALL_FAILURES = {
    10: "creating the venv with {python} on {host} failed",
    11: "installing edgekit[runtime] from the wheelhouse on {host} failed",
    12: "the bundle's hashes do not match on {host} after copying; flash again",
}


def _install(remote: Remote, host: str, release_dir: str, python: str) -> int | None:
    result = remote.run(["sh", f"{release_dir}/scripts/install.sh", release_dir, python])
    if result.returncode != 0:
        if "No space left on device" in result.stderr:
            raise FlashError(f"disk full: {host} ran out of space while installing into {release_dir}; free some "
                             "space on the device")
        what = _INSTALL_FAILURES.get(result.returncode, f"installing on {{host}} failed (exit {result.returncode})")
        missing = re.search(r"No matching distribution found for ([^;\s]+)", result.stderr)
        if result.returncode == 11 and missing:
            raise FlashError(f"{what.format(host=host)}: no wheel for {missing.group(1)} fits the device (a wheel "
                             "whose manylinux tag needs a newer glibc than the device has does not; drop such tags "
                             "from the profile's platform.wheel_tags)")
        raise FlashError(f"{what.format(host=host, python=python)}: {_tail(result.stderr + result.stdout)}")
    try:
        return int(json.loads(result.stdout[result.stdout.index("{"):])["files"])
    except (ValueError, KeyError, TypeError):
        return None  # verify passed (exit 0); only its report could not be read


def _service(remote: Remote, plan: FlashPlan, info: DeviceInfo, release_dir: str) -> tuple[str, list[str]]:
    if not plan.service:
        return "skipped (--no-service)", []
    if not info.systemd:
        return "skipped: the device does not run systemd", []
    if not info.can_admin:
        return (f"skipped: {info.user} is neither root nor allowed passwordless sudo",
                [f"to install it by hand: sudo sh {info.dest}/current/scripts/install-service.sh {info.dest} "
                 f"{info.user}"])
    result = remote.run(["sh", f"{release_dir}/scripts/install-service.sh", info.dest, info.user])
    if result.returncode != 0:
        raise FlashError(f"installing edgekit.service on {plan.target.host} failed: {_tail(result.stderr)}")
    notes = []
    if "env=created" in result.stdout:
        notes.append("created /etc/edgekit/edgekit.env from the example: set the source and broker there")
    return "installed", notes


def _update(remote: Remote, host: str, dest: str, plan: FlashPlan, release_dir: str,
            previous: str | None) -> dict[str, list[str]]:
    result = remote.run(["sh", f"{release_dir}/scripts/update.sh", dest, plan.release, str(plan.keep)])
    values: dict[str, list[str]] = {}
    for line in result.stdout.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            values.setdefault(key, []).append(value)
    if "current" not in values:  # the link was not switched: the release is not in use and can go
        _remove_quietly(remote, release_dir)
        raise FlashError(f"switching {dest}/current on {host} failed: {_tail(result.stderr)}; "
                         f"{_kept(host, previous, True)}")
    if result.returncode != 0:
        values.setdefault("warning", []).append(f"after the switch: {_tail(result.stderr)}")
    return values


def _remove_quietly(remote: Remote, release_dir: str) -> None:
    try:
        remote.run(["rm", "-rf", release_dir])
    except EdgekitError:
        pass  # the device is gone; update.sh removes half-made releases at the next successful flash
