"""Run a bundle as its board would, under QEMU user-mode emulation, and compare it with a host run.

``emulate`` runs ``edgekit run`` twice on the same bundle, artifact and source: once on the host, once as the
board's architecture under ``qemu-ARCH-static -cpu CPU -L ROOTFS`` in a cached Debian userland (see
``edgekit.deploy.rootfs``). Both print one JSON line per window; the windows are matched by index and compared:
the class must be identical and the scores (confidence, anomaly) within a tolerance.

User mode runs the board's instruction set with its CPU model (the profile's ``cpu``, e.g. ``cortex-a72``, so
onnxruntime and numba pick the kernels the board would), on the host's kernel, network and files; it does not
emulate the board's memory, clock, peripherals or speed. Which profiles can be emulated is data: their
``emulation.mode`` is ``qemu-user``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from edgekit.deploy.rootfs import (EmulationError, Userland, ensure_userland, find_qemu,
                                   guest_environment, locked)
from edgekit.errors import ConfigError

#: Largest allowed |confidence difference|; the anomaly score may differ by this fraction of its size (or this
#: much below 1). int8 kernels differ between x86 and arm64 (measured for rpi4: 5e-4); these outputs are rounded
#: to 4 (confidence) and 3 (anomaly) decimals.
DEFAULT_TOLERANCE = 0.02
MAX_MISMATCHES = 10
#: ``python -m`` would put the working directory first on sys.path, and a checkout there would shadow the synced
#: copy (and get the emulated numba cache written into it); ``-P`` is 3.11+ only.
GUEST_MAIN = "import sys; del sys.path[0]; from edgekit.cli.main import main; main()"


@dataclass(frozen=True)
class Comparison:
    """Window-by-window agreement of an emulated run with a host run."""

    host_windows: int
    emulated_windows: int
    compared: int
    class_agreement: float            # fraction of compared windows with the same class (1.0 when none compared)
    max_confidence_diff: float
    max_anomaly_diff: float
    mismatches: tuple[dict, ...]      # the first MAX_MISMATCHES windows that differ, with both values
    problems: tuple[str, ...]

    @property
    def passed(self) -> bool:
        return not self.problems


def _within(host: float | None, emulated: float | None, limit: float) -> bool:
    if host is None or emulated is None:
        return host is None and emulated is None
    return abs(host - emulated) <= limit


def _diff(host: float | None, emulated: float | None) -> float:
    return 0.0 if host is None or emulated is None else abs(host - emulated)


def compare_predictions(host: list[dict], emulated: list[dict], tolerance: float = DEFAULT_TOLERANCE) \
        -> Comparison:
    """Match the per-window records of two runs by ``window`` index and compare class, confidence and anomaly.

    >>> h = [{"window": 0, "class": "normal", "confidence": 0.98, "anomaly": 2.0}]
    >>> e = [{"window": 0, "class": "normal", "confidence": 0.975, "anomaly": 2.001}]
    >>> c = compare_predictions(h, e)
    >>> c.class_agreement, round(c.max_confidence_diff, 4), c.passed
    (1.0, 0.005, True)
    """
    by_window = {r["window"]: r for r in emulated}
    compared = agree = 0
    max_conf = max_anom = 0.0
    mismatches: list[dict] = []
    problems: list[str] = []
    bad_scores = 0
    for h in host:
        e = by_window.get(h["window"])
        if e is None:
            continue
        compared += 1
        same_class = h.get("class") == e.get("class") and bool(h.get("skipped")) == bool(e.get("skipped"))
        agree += same_class
        conf, anom = _diff(h.get("confidence"), e.get("confidence")), _diff(h.get("anomaly"), e.get("anomaly"))
        max_conf, max_anom = max(max_conf, conf), max(max_anom, anom)
        scores_ok = (_within(h.get("confidence"), e.get("confidence"), tolerance) and
                     _within(h.get("anomaly"), e.get("anomaly"), tolerance * max(1.0, abs(h.get("anomaly") or 0))))
        bad_scores += not scores_ok
        if (not same_class or not scores_ok) and len(mismatches) < MAX_MISMATCHES:
            mismatches.append({"window": h["window"], **{f"host_{k}": h.get(k) for k in ("class", "confidence",
                                                                                          "anomaly")},
                               **{f"emulated_{k}": e.get(k) for k in ("class", "confidence", "anomaly")}})
    agreement = agree / compared if compared else 1.0
    if len(host) != len(emulated):
        problems.append(f"the host run gave {len(host)} windows, the emulated run {len(emulated)}")
    if compared == 0:
        problems.append("no window to compare; is the source long enough for one window?")
    if agree < compared:
        problems.append(f"{compared - agree} of {compared} windows have another class when emulated")
    if bad_scores:
        problems.append(f"{bad_scores} windows have scores beyond the tolerance {tolerance} (largest differences: "
                        f"confidence {max_conf:.4g}, anomaly {max_anom:.4g})")
    return Comparison(len(host), len(emulated), compared, agreement, max_conf, max_anom, tuple(mismatches),
                      tuple(problems))


@dataclass(frozen=True)
class RunOutput:
    records: list[dict]
    seconds: float


@dataclass(frozen=True)
class EmulationResult:
    """What ``emulate`` found; ``to_dict()`` is the ``--format json`` output."""

    target: str
    artifact: str
    engine: str
    cpu: str
    qemu: str
    tolerance: float
    comparison: Comparison
    userland: Userland
    host_seconds: float
    emulated_seconds: float
    numba_cache_warm: bool
    mqtt: str | None = None
    device_id: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.comparison.passed

    def to_dict(self) -> dict[str, Any]:
        c = self.comparison
        return {
            "target": self.target, "artifact": self.artifact, "engine": self.engine, "emulated_cpu": self.cpu,
            "qemu": self.qemu, "windows": c.compared, "host_windows": c.host_windows,
            "emulated_windows": c.emulated_windows, "class_agreement": c.class_agreement,
            "max_score_diff": {"confidence": c.max_confidence_diff, "anomaly": c.max_anomaly_diff},
            "tolerance": self.tolerance, "passed": c.passed, "problems": list(c.problems),
            "mismatches": list(c.mismatches), "mqtt": self.mqtt, "device_id": self.device_id,
            "timings": {"userland": "built" if self.userland.built else "cached",
                        "userland_build_s": self.userland.build_seconds,
                        "host_run_s": round(self.host_seconds, 2), "emulated_run_s": round(self.emulated_seconds, 2),
                        "slowdown": round(self.emulated_seconds / self.host_seconds, 1) if self.host_seconds else None,
                        "numba_cache": "warm" if self.numba_cache_warm else "cold (compiled during this run)"},
            "cache": {"path": str(self.userland.path), "reused": not self.userland.built,
                      "marker": str(self.userland.marker)},
        }


def edgekit_snapshot(userland: Userland) -> Path:
    """This edgekit (pure Python) with the shipped target profiles, synced into the userland for the emulated Python.

    The copy lives at a fixed path and only changed files are rewritten, with their times (``copy2``): numba's
    on-disk cache (``__pycache__`` beside the sources) is keyed by the source's path and time, and compiling the
    feature kernels emulated takes minutes, so an edit elsewhere in edgekit must not invalidate it.
    """
    import edgekit
    from edgekit.targets import shipped_targets_dir

    package = Path(edgekit.__file__).resolve().parent
    wanted = {p.relative_to(package): p for p in package.rglob("*") if p.is_file() and "__pycache__" not in p.parts
              and p.suffix != ".pyc" and p.relative_to(package).parts[0] != "_targets"}
    wanted.update({Path("_targets") / p.name: p for p in shipped_targets_dir().glob("*.toml")})
    folder = userland.path / "edgekit-src"
    copy = folder / "edgekit"
    with locked(userland.path / "edgekit-src.lock", lambda message: None):
        for path in sorted(copy.rglob("*"), reverse=True) if copy.exists() else []:
            if path.is_file() and "__pycache__" not in path.parts and path.relative_to(copy) not in wanted:
                path.unlink()
        for relative, source in wanted.items():
            target, stat = copy / relative, source.stat()
            try:
                current = target.stat()
                if (current.st_size, current.st_mtime_ns) == (stat.st_size, stat.st_mtime_ns):
                    continue
            except FileNotFoundError:
                target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    return folder


def numba_cache_warm(snapshot: Path) -> bool:
    """Whether numba's cache beside the feature kernels is newer than their source (compiled by an earlier run)."""
    kernels = snapshot / "edgekit" / "features" / "_kernels.py"
    if not kernels.is_file():
        return False
    stamp = kernels.stat().st_mtime
    return any(index.stat().st_mtime >= stamp for index in kernels.parent.glob("__pycache__/_kernels*.nbi"))


def emulatable_targets(targets_dir: str | Path | None = None) -> list[str]:
    """The profiles whose ``emulation.mode`` is ``qemu-user``."""
    from edgekit.targets import load_profiles

    return [name for name, p in load_profiles(targets_dir).items() if p.emulation.mode == "qemu-user"]


def emulation_profile(name: str, targets_dir: str | Path | None = None):
    """The profile ``name``, if it can be run under QEMU user mode; else an error naming those that can."""
    from edgekit.targets import get_profile

    profile = get_profile(name, targets_dir)
    if profile.emulation.mode != "qemu-user":
        why = {"none": "it has no emulation (emulation.mode = \"none\")",
               "qemu-system": "it is emulated as a whole machine (emulation.mode = \"qemu-system\"), which runs "
                              "firmware, not edgekit run"}.get(profile.emulation.mode, profile.emulation.mode)
        raise ConfigError(f"target {name!r} cannot be emulated with edgekit run: {why}; targets that can: "
                          f"{', '.join(emulatable_targets(targets_dir)) or 'none'}")
    return profile


def qemu_cpu(qemu: str, profile) -> str:
    """QEMU's model of the profile's CPU (``Cortex-A72`` -> ``cortex-a72``), or ``max`` when QEMU has none."""
    wanted = profile.cpu.strip().lower().replace(" ", "-")
    listing = subprocess.run([qemu, "-cpu", "help"], capture_output=True, text=True).stdout.split()
    return wanted if wanted in listing else "max"


def _records(stdout: str) -> list[dict]:
    records = []
    for line in stdout.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and "window" in record and "report" not in record:
            records.append(record)
    return records


def _run(command: list[str], env: dict[str, str], what: str) -> RunOutput:
    start = time.monotonic()
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    seconds = time.monotonic() - start
    if result.returncode != 0:
        lines = [line.strip() for line in result.stderr.splitlines() if line.strip()]
        errors = [line for line in lines if line.startswith("Error:")]
        detail = (errors or lines or ["no output"])[-1]
        hint = ("; a segmentation fault at import usually means the userland is stale: rerun with --rebuild"
                if result.returncode in (-11, 139) else "")
        raise EmulationError(f"{what} failed (exit {result.returncode}): {detail}{hint}")
    return RunOutput(_records(result.stdout), seconds)


def emulate(bundle_path: str | Path, source: str, *, target: str | None = None, engine: str | None = None,
            max_windows: int | None = None, mqtt: str | None = None, device_id: str | None = None,
            tolerance: float = DEFAULT_TOLERANCE, rebuild: bool = False, cache_dir: str | Path | None = None,
            targets_dir: str | Path | None = None, progress: Callable[[str], None] | None = None) \
        -> EmulationResult:
    """Run ``bundle_path`` on ``source`` on the host and emulated as ``target`` (default: the bundle's), compare.

    ``mqtt`` goes to the emulated run only (user mode shares the host's network: ``mqtt://127.0.0.1`` is the
    host's broker). The result says whether the runs agree; it does not raise when they do not.
    """
    from edgekit.bundle import open_bundle
    from edgekit.runtime.model import choose_artifact

    progress = progress or (lambda message: None)
    if not tolerance >= 0:
        raise ConfigError(f"--tolerance must be a non-negative number, got {tolerance}")
    if source.partition(":")[0] == "stdin":
        raise ConfigError("emulate runs the source twice (host and emulated), so it cannot read stdin; save the "
                          "samples to a file and use replay:FILE")
    profile = emulation_profile(target, targets_dir) if target else None  # a wrong --target fails first
    with open_bundle(bundle_path, trust="hashes") as bundle:  # checked here; both runs open it again
        manifest = bundle.manifest
    if profile is None:
        name = manifest.get("target", {}).get("name")
        if not name:
            raise ConfigError("the bundle names no target; pass --target")
        profile = emulation_profile(name, targets_dir)
    artifact = choose_artifact(manifest, engine)
    qemu = find_qemu(profile.emulation.qemu_arch)

    device_id = device_id or f"emulated-{profile.name}"
    arguments = [str(Path(bundle_path).resolve()), "--source", source, "--artifact", artifact["file"]]
    if max_windows is not None:
        arguments += ["--max-windows", str(max_windows)]
    with tempfile.TemporaryDirectory(prefix="edgekit-emulate-") as tmp:
        # Fresh state dirs: a resumed window count or drift state would make the two runs differ.
        progress(f"running {artifact['file']} ({artifact['engine']}) on the host")
        host = _run([sys.executable, "-m", "edgekit.cli.main", "run", *arguments, "--state-dir",
                     os.path.join(tmp, "host"), "--device-id", f"host-{profile.name}"], dict(os.environ),
                    "the host run")

        userland = ensure_userland(profile, cache_dir=cache_dir, rebuild=rebuild, progress=progress)
        if not userland.built:
            progress(f"using the cached {profile.emulation.qemu_arch} userland {userland.path}")
        snapshot = edgekit_snapshot(userland)
        numba_warm = numba_cache_warm(snapshot)
        cpu = qemu_cpu(qemu, profile)
        progress(f"running under {Path(qemu).name} -cpu {cpu}" +
                 ("" if numba_warm else " (numba compiles its kernels for this CPU once: a few minutes)"))
        command = [qemu, "-cpu", cpu, "-L", str(userland.rootfs), str(userland.python), "-s", "-c", GUEST_MAIN,
                   "run", *arguments, "--state-dir", os.path.join(tmp, "emulated"), "--device-id", device_id]
        if mqtt:
            command += ["--mqtt", mqtt]
        emulated = _run(command, guest_environment([snapshot, userland.site]), "the emulated run")

    version = subprocess.run([qemu, "--version"], capture_output=True, text=True).stdout.split("\n")[0]
    return EmulationResult(
        target=profile.name, artifact=artifact["file"], engine=artifact["engine"], cpu=cpu, qemu=version.strip(),
        tolerance=tolerance, comparison=compare_predictions(host.records, emulated.records, tolerance),
        userland=userland, host_seconds=host.seconds, emulated_seconds=emulated.seconds,
        numba_cache_warm=numba_warm, mqtt=mqtt, device_id=device_id)


def summary_rows(result: EmulationResult) -> list[tuple[str, str]]:
    """The result as (what, value) rows for the table output."""
    d = result.to_dict()
    t = d["timings"]
    userland = (f"built in {t['userland_build_s']:.0f} s" if result.userland.built
                else f"cached (built in {t['userland_build_s']:.0f} s)")
    return [
        ("target", f"{d['target']} ({d['emulated_cpu']} under {d['qemu']})"),
        ("artifact", f"{d['artifact']} ({d['engine']})"),
        ("windows", f"{d['windows']} (host {d['host_windows']}, emulated {d['emulated_windows']})"),
        ("class agreement", f"{d['class_agreement']:.2%}"),
        ("max confidence diff", f"{d['max_score_diff']['confidence']:.4g}"),
        ("max anomaly diff", f"{d['max_score_diff']['anomaly']:.4g}"),
        ("tolerance", f"{d['tolerance']:g}"),
        ("userland", f"{userland}: {d['cache']['path']}"),
        ("host run", f"{t['host_run_s']:.1f} s"),
        ("emulated run", f"{t['emulated_run_s']:.1f} s ({t['slowdown']}x; numba cache {t['numba_cache']})"),
        ("result", "PASS" if d["passed"] else "FAIL: " + "; ".join(d["problems"])),
    ]

