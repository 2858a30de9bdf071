"""An offline wheelhouse for a device: ``edgekit[runtime]`` and everything it needs, as wheels for the device's
Python and platform, so the device installs without network and without compiling anything.

pip only picks wheels whose tags it is told about and, given too few, silently settles for old releases; so every
tag of the target profile's ``platform.wheel_tags`` is passed. The dependencies are cached under the user cache
folder, keyed by Python, architecture, edgekit version and the exact tags and requirements, so a second flash
needs no network; the edgekit wheel itself is rebuilt from the checkout every time (the version number of a
checkout does not change with every edit).
"""

from __future__ import annotations

import email.parser
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from edgekit import __version__
from edgekit.errors import EdgekitError, require_module

EXTRA = "runtime"
_COMPLETE = "wheelhouse.json"  # written last: a folder without it is an interrupted download, never reused
_OFFLINE = ("Failed to establish a new connection", "NewConnectionError", "Temporary failure in name resolution",
            "Name or service not known", "Network is unreachable", "ConnectTimeoutError", "Max retries exceeded")


class WheelhouseError(EdgekitError):
    """The wheelhouse for a device could not be built: no network, or a dependency without a wheel for it."""


@dataclass(frozen=True)
class Wheelhouse:
    """The wheels for one device platform: ``edgekit_wheel`` plus the cached ``dependencies``."""

    folder: Path
    edgekit_wheel: Path
    dependencies: tuple[Path, ...]
    requirements: tuple[str, ...]
    cached: bool

    @property
    def wheels(self) -> tuple[Path, ...]:
        return (self.edgekit_wheel, *self.dependencies)

    @property
    def size_bytes(self) -> int:
        return sum(path.stat().st_size for path in self.wheels)


def edgekit_cache(part: str) -> Path:
    """``part`` of edgekit's cache: under ``EDGEKIT_CACHE_DIR``, else the user cache folder."""
    from platformdirs import user_cache_dir

    return Path(os.environ.get("EDGEKIT_CACHE_DIR") or user_cache_dir("edgekit")) / part


def cache_root() -> Path:
    """Where wheelhouses are kept."""
    return edgekit_cache("wheelhouse")


def platform_key(python: str, arch: str, wheel_tags: Sequence[str], requirements: Sequence[str] = ()) -> str:
    """The cache folder name: readable parts for people, a digest of the exact tags and requirements for safety."""
    digest = hashlib.sha256(json.dumps([list(wheel_tags), sorted(requirements)]).encode()).hexdigest()[:12]
    return f"cp{python.replace('.', '')}-{arch}-edgekit{__version__}-{digest}"


def build_wheelhouse(python: str, arch: str, wheel_tags: Sequence[str], *, cache_dir: Path | None = None,
                     refresh: bool = False, progress: Callable[[str], None] | None = None) -> Wheelhouse:
    """Build (or reuse from the cache) the offline wheelhouse for CPython ``python`` on ``arch``.

    ``wheel_tags`` are the platform tags the device accepts (from the target profile); ``refresh`` downloads the
    dependencies again even when a complete cached copy exists.
    """
    if not wheel_tags:
        raise WheelhouseError(f"the target profile lists no platform.wheel_tags for {arch}; add the tags the "
                              "device's pip accepts (e.g. manylinux_2_17_aarch64 ... linux_aarch64)")
    wheel_tags = expand_platform_tags(tuple(wheel_tags))
    root = Path(cache_dir) if cache_dir is not None else cache_root()
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="edgekit-wheel-", dir=root) as tmp:
        built = build_edgekit_wheel(Path(tmp))
        requirements = runtime_requirements(built, python, arch)
        folder = root / platform_key(python, arch, wheel_tags, requirements)
        folder.mkdir(exist_ok=True)
        edgekit_wheel = folder / built.name
        os.replace(built, edgekit_wheel)
    dependencies = None if refresh else _cached_dependencies(folder, requirements)
    cached = dependencies is not None
    if dependencies is None:
        if progress:
            progress(f"downloading wheels for Python {python} on {arch} into {folder}")
        dependencies = _download(folder, requirements, python, wheel_tags, arch)
    return Wheelhouse(folder, edgekit_wheel, tuple(dependencies), tuple(requirements), cached)


def cached_wheelhouse_exists(python: str, arch: str, wheel_tags: Sequence[str], cache_dir: Path | None = None) \
        -> bool:
    """Whether a complete wheelhouse for this platform lies in the cache (any edgekit requirements); for plans."""
    root = Path(cache_dir) if cache_dir is not None else cache_root()
    prefix = f"cp{python.replace('.', '')}-{arch}-edgekit{__version__}-"
    return any((folder / _COMPLETE).is_file() for folder in root.glob(prefix + "*"))


# ------------------------------------------------------------------------------------------ the edgekit wheel


def source_root() -> Path | None:
    """The checkout edgekit runs from (a folder with edgekit's pyproject.toml), or None for an installed wheel."""
    import edgekit

    root = Path(edgekit.__file__).resolve().parents[1]
    pyproject = root / "pyproject.toml"
    if pyproject.is_file() and re.search(r'^name\s*=\s*"edgekit"', pyproject.read_text(), re.MULTILINE):
        return root
    return None


def build_edgekit_wheel(out_dir: Path) -> Path:
    """Build this edgekit as a wheel into ``out_dir``: from the checkout, or, for an installed edgekit, download
    the same version (a wheel cannot be rebuilt from an installed package)."""
    import importlib.util

    root = source_root()
    if root is not None:
        command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out_dir), str(root)]
        if importlib.util.find_spec("hatchling") is not None:
            command.insert(5, "--no-build-isolation")  # offline and quick; isolation would download hatchling
        what = f"building the edgekit wheel from {root}"
    else:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-q", "-d",
                   str(out_dir), f"edgekit=={__version__}"]
        what = (f"edgekit is installed from a wheel, not run from a source checkout, so its wheel cannot be built "
                f"here; downloading edgekit=={__version__}")
    result = subprocess.run(command, capture_output=True, text=True)
    wheels = sorted(out_dir.glob("edgekit-*.whl"))
    if result.returncode != 0 or len(wheels) != 1:
        hint = ("install hatchling (pip install hatchling) or fix the checkout" if root is not None
                else "run flash from a source checkout of edgekit (git clone ...; pip install -e .)")
        raise WheelhouseError(f"{what} failed: {_pip_message(result.stderr)}; {hint}")
    return wheels[0]


def runtime_requirements(wheel: Path, python: str, arch: str) -> list[str]:
    """edgekit's core and ``runtime`` requirements from the wheel's metadata, markers evaluated for the device.

    pip evaluates markers against the machine it runs on, not the ``--python-version`` it is given, so the
    top-level ones are evaluated here (a Python 3.10 device needs ``tomli`` even when the host runs 3.11).
    """
    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        metadata = email.parser.Parser().parsestr(archive.read(name).decode("utf-8"))
    requirements = []
    for req in device_requirements(metadata.get_all("Requires-Dist") or [], python, arch):
        extras = f"[{','.join(sorted(req.extras))}]" if req.extras else ""
        requirements.append(f"{req.name}{extras}{req.specifier}")
    return sorted(requirements)


def device_requirements(lines: Sequence[str], python: str, arch: str, extra: str = EXTRA) -> list:
    """The ``packaging`` Requirements among ``lines`` whose markers hold on a Linux device with this Python."""
    packaging_requirements = require_module("packaging.requirements", EXTRA)
    environment = {"python_version": python, "python_full_version": f"{python}.0", "platform_machine": arch,
                   "sys_platform": "linux", "platform_system": "Linux", "os_name": "posix",
                   "implementation_name": "cpython", "platform_python_implementation": "CPython", "extra": extra}
    requirements = [packaging_requirements.Requirement(line) for line in lines]
    return [req for req in requirements if req.marker is None or req.marker.evaluate(environment)]


# ------------------------------------------------------------------------------------------ the dependencies


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _cached_dependencies(folder: Path, requirements: Sequence[str]) -> list[Path] | None:
    """The cached wheels if the cache is complete, for these requirements, and unchanged since download."""
    try:
        record = json.loads((folder / _COMPLETE).read_text())
        wheels = [folder / "deps" / entry["file"] for entry in record["wheels"]]
        if record["requirements"] != list(requirements):
            return None
        # A truncated or damaged wheel would only fail on the device, after the copy; re-download instead.
        if any(_sha256(path) != entry["sha256"] for path, entry in zip(wheels, record["wheels"])):
            return None
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return wheels


def expand_platform_tags(tags: tuple[str, ...]) -> tuple[str, ...]:
    """pip's ``--platform`` tags for a device that accepts ``tags``.

    pip takes ``--platform`` literally: ``manylinux_2_36_aarch64`` does not admit a ``manylinux_2_27`` wheel, though
    PEP 600 says a glibc 2.36 system runs it. Without the expansion pip quietly picks an old release instead.

    >>> expand_platform_tags(("manylinux_2_19_aarch64", "linux_aarch64"))
    ('manylinux_2_19_aarch64', 'manylinux_2_18_aarch64', 'manylinux_2_17_aarch64', 'manylinux2014_aarch64', \
'linux_aarch64')
    """
    out: list[str] = []
    for tag in tags:
        match = re.fullmatch(r"manylinux_2_(\d+)_(\w+)", tag)
        expanded = [tag]
        if match:
            minor, arch = int(match.group(1)), match.group(2)
            expanded = [f"manylinux_2_{m}_{arch}" for m in range(minor, 16, -1)] + [f"manylinux2014_{arch}"]
        out += [t for t in expanded if t not in out]
    return tuple(out)


def _download(folder: Path, requirements: Sequence[str], python: str, wheel_tags: Sequence[str],
              arch: str) -> list[Path]:
    (folder / _COMPLETE).unlink(missing_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="deps-", suffix=".tmp", dir=folder))
    command = [sys.executable, "-m", "pip", "download", "--only-binary=:all:", "--python-version", python,
               "--implementation", "cp", "--progress-bar", "off", "-d", str(staging)]
    for tag in wheel_tags:
        command += ["--platform", tag]
    try:
        result = subprocess.run(command + list(requirements), capture_output=True, text=True)
        if result.returncode != 0:
            raise _download_error(result.stderr, python, arch, wheel_tags, folder)
        deps = folder / "deps"
        shutil.rmtree(deps, ignore_errors=True)
        os.replace(staging, deps)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    wheels = sorted(deps.glob("*.whl"))
    record = {"python": python, "arch": arch, "wheel_tags": list(wheel_tags), "requirements": list(requirements),
              "wheels": [{"file": w.name, "sha256": _sha256(w), "size_bytes": w.stat().st_size} for w in wheels]}
    (folder / _COMPLETE).write_text(json.dumps(record, indent=2) + "\n")
    return wheels


def _download_error(stderr: str, python: str, arch: str, wheel_tags: Sequence[str], folder: Path) -> WheelhouseError:
    missing = re.search(r"No matching distribution found for (\S+)", stderr)
    if any(marker in stderr for marker in _OFFLINE):
        return WheelhouseError(f"cannot download the wheelhouse for Python {python} on {arch}: the package index "
                               f"is unreachable ({_pip_message(stderr)}); connect this machine to the network once, "
                               f"later flashes reuse the cache in {folder.parent}")
    if missing:
        return WheelhouseError(f"{missing.group(1)} has no wheel for Python {python} on {arch} (platform tags "
                               f"{', '.join(wheel_tags)}); the device installs offline and cannot compile, so pin a "
                               "release that ships such a wheel or add the tag the wheel needs to the profile's "
                               "platform.wheel_tags")
    return WheelhouseError(f"downloading the wheelhouse for Python {python} on {arch} failed: {_pip_message(stderr)}")


def _pip_message(stderr: str) -> str:
    """pip's own error lines, without its hints and tracebacks."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip().startswith("ERROR:")]
    text = " ".join(line.removeprefix("ERROR:").strip() for line in lines[-2:])
    if not text:
        rest = [line.strip() for line in stderr.splitlines() if line.strip()]
        text = rest[-1] if rest else "no message"
    return text
