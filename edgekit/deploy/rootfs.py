"""A cached foreign-architecture Debian userland with edgekit's runtime dependencies, for QEMU user-mode emulation.

Built once per (profile, Python, edgekit version, exact dependency pins) and kept under the user cache folder:

1. ``debootstrap --foreign`` downloads and unpacks Debian's essential packages for the target architecture and
   downloads (without unpacking) the Python packages asked for with ``--include``;
2. those downloaded packages are unpacked on the host with ``dpkg-deb | tar``. Nothing in the tree needs a
   maintainer script to run Python, so debootstrap's second stage (about 10 minutes emulated) is skipped;
3. the host's pip installs the runtime wheels for the target's platform tags into ``site/``, pinned to the
   versions installed on the host so that an emulated run differs from a host run by architecture only;
4. the emulated Python imports the native extensions once, so a broken tree never gets its completion marker.

A build happens in a temporary folder renamed into place at the end, under a lock file, so an interrupted build
is never reused and two ``edgekit emulate`` processes never build at once. Userlands unused for 30 days (an older
edgekit's, older pins) are removed when another one is used.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from edgekit import __version__
from edgekit.deploy.wheelhouse import device_requirements, edgekit_cache, expand_platform_tags
from edgekit.errors import EdgekitError, MissingDependencyError

MARKER = "COMPLETE.json"  # written last; a folder without it is never used
LAST_USED = "LAST_USED"  # touched at every use (the marker stays as built); prune_unused goes by its mtime
UNUSED_DAYS = 30
DEFAULT_MIRROR = "http://deb.debian.org/debian"
MIRROR_ENV = "EDGEKIT_DEBIAN_MIRROR"

#: The Debian release whose ``python3`` is each Python version: the userland runs Debian's own interpreter,
#: as Raspberry Pi OS does. (Ubuntu-based boards would need an Ubuntu mirror; not supported yet.)
DEBIAN_RELEASE_BY_PYTHON = {"3.9": "bullseye", "3.11": "bookworm", "3.13": "trixie"}
#: QEMU's architecture names to Debian's.
DEBIAN_ARCH_BY_QEMU = {"aarch64": "arm64", "arm": "armhf", "x86_64": "amd64", "riscv64": "riscv64"}
#: Beyond essential: the interpreter, and the C++ and OpenMP runtimes that onnxruntime, LiteRT and numba link.
EXTRA_PACKAGES = ("python{py}", "libpython{py}", "libstdc++6", "libgomp1")
#: Not needed to run anything; about 90 MB of the tree.
PRUNE = ("var/cache/apt/archives", "usr/share/doc", "usr/share/man", "usr/share/locale", "usr/share/info")
_APT_HINT = "apt-get install qemu-user-static debootstrap"


class EmulationError(EdgekitError):
    """The emulated userland could not be built or run; the message says which step failed and what to try."""


@dataclass(frozen=True)
class UserlandSpec:
    """What goes into one userland; its ``key`` names the cache folder."""

    profile: str
    qemu_arch: str
    debian_arch: str
    release: str
    python: str
    packages: tuple[str, ...]
    requirements: tuple[str, ...]      # pinned pip requirements of edgekit's core and ``runtime`` extra
    platforms: tuple[str, ...]         # pip --platform tags

    @property
    def key(self) -> str:
        digest = hashlib.sha256(json.dumps([self.release, self.debian_arch, self.packages, self.requirements,
                                            self.platforms]).encode()).hexdigest()[:10]
        return f"{self.profile}-py{self.python}-edgekit{__version__}-{digest}"


@dataclass(frozen=True)
class Userland:
    """A complete cached userland: ``rootfs`` (the Debian tree), ``site`` (the runtime wheels), and the marker."""

    path: Path
    spec: UserlandSpec
    built: bool                        # built by this call (False: reused from the cache)
    build_seconds: float               # of this call's build, or of the cached one's build
    info: dict = field(default_factory=dict, compare=False)

    @property
    def rootfs(self) -> Path:
        return self.path / "rootfs"

    @property
    def site(self) -> Path:
        return self.path / "site"

    @property
    def python(self) -> Path:
        return self.rootfs / "usr" / "bin" / f"python{self.spec.python}"

    @property
    def marker(self) -> Path:
        return self.path / MARKER


def cache_root(cache_dir: str | Path | None = None) -> Path:
    """Where userlands are kept: ``cache_dir``, else ``$EDGEKIT_CACHE_DIR/emulation``, else the user cache."""
    return Path(cache_dir) if cache_dir is not None else edgekit_cache("emulation")


# ---------------------------------------------------------------------------------------------- the spec


def pinned_runtime_requirements(python: str, arch: str) -> tuple[str, ...]:
    """edgekit's core and ``runtime`` requirements for the device, each pinned to the host's installed version.

    The pins make a comparison with a host run meaningful: a difference then comes from the architecture, not
    from another onnxruntime release. A requirement the host lacks keeps its range.
    """
    import importlib.metadata

    pinned = []
    for req in device_requirements(_declared_requirements(), python, arch):
        try:
            host_version = importlib.metadata.version(req.name)
        except importlib.metadata.PackageNotFoundError:
            host_version = None
        if host_version is not None and req.specifier.contains(host_version, prereleases=True):
            pinned.append(f"{req.name}=={host_version}")
        else:
            pinned.append(f"{req.name}{req.specifier}")
    return tuple(sorted(set(pinned), key=str.lower))


def _declared_requirements() -> list[str]:
    """The requirement lines of edgekit's core and ``runtime`` extra, from the checkout or the installed metadata."""
    import importlib.metadata

    import edgekit

    pyproject = Path(edgekit.__file__).resolve().parents[1] / "pyproject.toml"
    if pyproject.is_file():
        from edgekit.targets import tomllib

        project = tomllib.loads(pyproject.read_text()).get("project", {})
        if project.get("name") == "edgekit":
            runtime = project.get("optional-dependencies", {}).get("runtime", [])
            return list(project.get("dependencies", [])) + [with_extra_marker(line, "runtime") for line in runtime]
    try:
        return list(importlib.metadata.requires("edgekit") or [])
    except importlib.metadata.PackageNotFoundError:
        raise EmulationError("cannot find edgekit's requirements: neither a source checkout nor an installed "
                             "distribution; install edgekit with pip") from None


def with_extra_marker(line: str, extra: str) -> str:
    """A pyproject extra's requirement as wheel metadata writes it: its own marker, in parentheses, and the extra.

    Without the parentheses ``a or b and extra == 'runtime'`` reads as ``a or (b and ...)``.
    """
    requirement, _, marker = (part.strip() for part in line.partition(";"))
    condition = f"extra == '{extra}'"
    return f"{requirement}; ({marker}) and {condition}" if marker else f"{requirement}; {condition}"


def userland_spec(profile) -> UserlandSpec:
    """The userland a QEMU user-mode profile runs in; errors say what the profile lacks."""
    if profile.platform is None:
        raise EmulationError(f"target {profile.name!r} has no [platform] section (python, wheel_tags); emulation "
                             "installs the runtime wheels for that platform")
    python = profile.platform.python
    release = DEBIAN_RELEASE_BY_PYTHON.get(python)
    if release is None:
        known = ", ".join(f"{v} ({r})" for v, r in DEBIAN_RELEASE_BY_PYTHON.items())
        raise EmulationError(f"target {profile.name!r} runs Python {python}, which no Debian release ships as its "
                             f"python3; emulation builds a Debian userland and supports Python {known}")
    debian_arch = DEBIAN_ARCH_BY_QEMU.get(profile.emulation.qemu_arch)
    if debian_arch is None:
        raise EmulationError(f"target {profile.name!r}: no Debian architecture for qemu_arch "
                             f"{profile.emulation.qemu_arch!r}; known: {', '.join(DEBIAN_ARCH_BY_QEMU)}")
    return UserlandSpec(
        profile=profile.name, qemu_arch=profile.emulation.qemu_arch, debian_arch=debian_arch, release=release,
        python=python, packages=tuple(p.format(py=python) for p in EXTRA_PACKAGES),
        requirements=pinned_runtime_requirements(python, profile.emulation.qemu_arch),
        platforms=expand_platform_tags(tuple(profile.platform.wheel_tags)))


# ---------------------------------------------------------------------------------------------- host tools


def find_tool(name: str, package: str) -> str:
    """The path of a host tool, or a MissingDependencyError naming its Debian package."""
    for candidate in (shutil.which(name), f"/usr/sbin/{name}", f"/usr/bin/{name}"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise MissingDependencyError(f"{name} is not installed; emulation needs it: {_APT_HINT} (package {package})")


def find_qemu(qemu_arch: str) -> str:
    """``qemu-ARCH-static`` (Debian's qemu-user-static) or ``qemu-ARCH`` (qemu-user)."""
    for name in (f"qemu-{qemu_arch}-static", f"qemu-{qemu_arch}"):
        path = shutil.which(name)
        if path:
            return path
    raise MissingDependencyError(f"qemu-{qemu_arch}-static is not installed; emulation needs it: {_APT_HINT}")


# ---------------------------------------------------------------------------------------------- the cache


@contextlib.contextmanager
def locked(path: Path, progress: Callable[[str], None]) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if needed); says so when another process holds it first."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            progress(f"waiting for another edgekit emulate to finish with {path.with_suffix('')}")
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _read_marker(folder: Path, spec: UserlandSpec) -> dict | None:
    try:
        info = json.loads((folder / MARKER).read_text())
    except (OSError, ValueError):
        return None
    return info if info.get("key") == spec.key else None


def ensure_userland(profile, *, cache_dir: str | Path | None = None, rebuild: bool = False,
                    progress: Callable[[str], None] | None = None) -> Userland:
    """The complete userland for ``profile``: from the cache, or built now (about 1.5 minutes; see the module doc).

    ``rebuild`` discards a cached one first.
    """
    progress = progress or (lambda message: None)
    spec = userland_spec(profile)
    root = cache_root(cache_dir)
    folder = root / spec.key
    with locked(root / f"{spec.key}.lock", progress):
        if rebuild and folder.exists():
            progress(f"--rebuild: removing the cached userland {folder}")
            remove_tree(folder)
        info = _read_marker(folder, spec)
        if info is not None:
            (folder / LAST_USED).touch()
            prune_unused(root, keep=spec.key, progress=progress)
            return Userland(folder, spec, built=False, build_seconds=float(info.get("build_seconds", 0.0)),
                            info=info)
        if folder.exists():  # not ours or interrupted: never half-reuse it
            remove_tree(folder)
        start = time.monotonic()
        for stale in root.glob(f".building-{spec.key}-*"):  # left by a killed build; the lock says none is running
            remove_tree(stale)
        staging = root / f".building-{spec.key}-{os.getpid()}"
        staging.mkdir(parents=True)
        try:
            info = _build(staging, spec, progress, log=root / f"{spec.key}.debootstrap.log")
            info["build_seconds"] = round(time.monotonic() - start, 1)
            (staging / MARKER).write_text(json.dumps(info, indent=2) + "\n")
            (staging / LAST_USED).touch()
            os.rename(staging, folder)
        except BaseException:
            remove_tree(staging)
            raise
        progress(f"userland ready in {info['build_seconds']:.0f} s: {folder}")
        prune_unused(root, keep=spec.key, progress=progress)
        return Userland(folder, spec, built=True, build_seconds=info["build_seconds"], info=info)


def prune_unused(root: Path, keep: str, progress: Callable[[str], None],
                 max_idle_days: float = UNUSED_DAYS) -> list[str]:
    """Remove userlands (about 600 MB each) no emulation has used for ``max_idle_days``: those of an older edgekit
    or older pins are never used again. One another process holds the lock of is skipped; returns the removed keys."""
    removed = []
    cutoff = time.time() - max_idle_days * 86400
    for marker in root.glob(f"*/{MARKER}"):
        folder = marker.parent
        used = folder / LAST_USED if (folder / LAST_USED).exists() else marker
        if folder.name == keep or used.stat().st_mtime > cutoff:
            continue
        with open(root / f"{folder.name}.lock", "a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # in use right now
            remove_tree(folder)
        (root / f"{folder.name}.debootstrap.log").unlink(missing_ok=True)
        removed.append(folder.name)
        progress(f"removed the userland {folder.name}, unused for over {max_idle_days:g} days")
    return removed


def remove_tree(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.exists():
        shutil.rmtree(path)


def _build(staging: Path, spec: UserlandSpec, progress: Callable[[str], None], log: Path) -> dict:
    qemu = find_qemu(spec.qemu_arch)
    debootstrap = find_tool("debootstrap", "debootstrap")
    find_tool("dpkg-deb", "dpkg")
    rootfs, site = staging / "rootfs", staging / "site"
    mirror = os.environ.get(MIRROR_ENV, DEFAULT_MIRROR)
    progress(f"[1/4] debootstrap --foreign: Debian {spec.release} {spec.debian_arch} from {mirror} (about a "
             f"minute; log: {log})")
    command = [debootstrap, "--foreign", f"--arch={spec.debian_arch}", "--variant=minbase",
               f"--include={','.join(spec.packages)}", spec.release, str(rootfs), mirror]
    if os.geteuid() != 0:
        # debootstrap insists on root (it makes device nodes); fakeroot fakes that well enough for stage 1.
        command.insert(0, find_tool("fakeroot", "fakeroot"))
    with open(log, "w") as handle:
        result = subprocess.run(command, stdout=handle, stderr=subprocess.STDOUT)
    if result.returncode != 0:
        raise EmulationError(f"debootstrap failed (exit {result.returncode}): {_tail(log)}; check the network "
                             f"and the mirror (set {MIRROR_ENV} to another Debian mirror)")

    packages = _downloaded_packages(rootfs)
    progress(f"[2/4] unpacking {len(packages)} downloaded packages on the host (skips the emulated second stage)")
    for deb in packages:
        _unpack(deb, rootfs)
    for relative in PRUNE:
        remove_tree(rootfs / relative)
    _prepare_rootfs(rootfs)

    progress(f"[3/4] pip: the {spec.qemu_arch} runtime wheels for Python {spec.python} "
             f"({', '.join(spec.requirements)})")
    _pip_install(site, spec)

    progress(f"[4/4] checking the userland: python{spec.python} under {Path(qemu).name} imports the native wheels")
    python = rootfs / "usr" / "bin" / f"python{spec.python}"
    probe = ("import json, platform, sqlite3, ssl, numpy, onnxruntime; "
             "print(json.dumps({'machine': platform.machine(), 'python': platform.python_version(), "
             "'numpy': numpy.__version__, 'onnxruntime': onnxruntime.__version__}))")
    check = subprocess.run([qemu, "-L", str(rootfs), str(python), "-s", "-c", probe], capture_output=True,
                           text=True, env=guest_environment([site]))
    if check.returncode != 0:
        raise EmulationError(f"the emulated Python cannot import the runtime wheels (exit {check.returncode}): "
                             f"{_last_line(check.stderr)}; rerun with --rebuild, and report it if it persists")
    return {"key": spec.key, "profile": spec.profile, "release": spec.release, "arch": spec.debian_arch,
            "python": spec.python, "requirements": list(spec.requirements), "platforms": list(spec.platforms),
            "mirror": mirror, "probe": json.loads(check.stdout.strip().splitlines()[-1]),
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "edgekit_version": __version__}


def _downloaded_packages(rootfs: Path) -> list[Path]:
    """The .deb files debootstrap downloaded but, with --foreign, did not unpack (its ``base`` list)."""
    meta = rootfs / "debootstrap"
    try:
        base = (meta / "base").read_text().split()
        paths = dict(line.split(" ", 1) for line in (meta / "debpaths").read_text().splitlines() if " " in line)
    except OSError as exc:
        raise EmulationError(f"debootstrap left no package list in {meta} ({exc.strerror}); rerun with "
                             "--rebuild") from None
    return [rootfs / paths[name].lstrip("/") for name in base if name in paths]


def _unpack(deb: Path, rootfs: Path) -> None:
    # --keep-directory-symlink: Debian 12's /bin, /lib are symlinks into /usr, which a plain extraction replaces.
    data = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    tar = subprocess.run(["tar", "-x", "--keep-directory-symlink", "-C", str(rootfs)], stdin=data.stdout,
                         capture_output=True, text=True)
    data.stdout.close()
    if data.wait() != 0 or tar.returncode != 0:
        raise EmulationError(f"cannot unpack {deb.name}: {_last_line(tar.stderr or data.stderr.read().decode())}; "
                             "rerun with --rebuild (the download may be damaged)")


def _prepare_rootfs(rootfs: Path) -> None:
    """Adjust the tree for ``qemu -L``, which looks every absolute path up in the tree first, then on the host."""
    # Device nodes made by debootstrap (or empty files under fakeroot) would shadow the host's /dev.
    remove_tree(rootfs / "dev")
    (rootfs / "dev").mkdir()
    # onnxruntime's and LiteRT's cpuinfo read /sys/devices/system/cpu/{possible,present}; the host's list names
    # CPUs whose per-CPU files the emulated view lacks, and they segfault at import. Empty lists make cpuinfo give
    # up cleanly (one warning line); "0" still segfaults.
    cpu = rootfs / "sys" / "devices" / "system" / "cpu"
    cpu.mkdir(parents=True, exist_ok=True)
    for name in ("possible", "present"):
        (cpu / name).write_text("")


def _pip_install(site: Path, spec: UserlandSpec) -> None:
    command = [sys.executable, "-m", "pip", "install", "--target", str(site), "--only-binary=:all:",
               "--python-version", spec.python, "--implementation", "cp",
               "--abi", f"cp{spec.python.replace('.', '')}", "--abi", "abi3", "--abi", "none",
               # Byte-compiled here (natively) so the emulated Python does not compile numba's sources on each run.
               "--no-warn-conflicts", "--progress-bar", "off", "--quiet"]
    for tag in spec.platforms:
        command += ["--platform", tag]
    result = subprocess.run(command + list(spec.requirements), capture_output=True, text=True)
    if result.returncode != 0:
        errors = [line for line in result.stderr.splitlines() if line.startswith("ERROR:")]
        message = " ".join(errors[-2:]) or _last_line(result.stderr)
        raise EmulationError(f"pip could not install the {spec.qemu_arch} runtime wheels: {message}; check the "
                             "network, or pin a release that ships a wheel for these platform tags")


def _tail(log: Path) -> str:
    try:
        lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return "no log"
    return " | ".join(lines[-3:]) or "no output"


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


# ---------------------------------------------------------------------------------------------- running


def guest_environment(python_path: list[Path], extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of an emulated Python: the host's, minus anything that points at host Python packages."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PYTHON", "QEMU_", "LD_", "VIRTUAL_ENV", "NUMBA_", "CONDA"))}
    env["PYTHONPATH"] = os.pathsep.join(str(p) for p in python_path)
    env["PYTHONNOUSERSITE"] = "1"
    env.update(extra or {})
    return env
