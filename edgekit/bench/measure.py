"""The measurements behind ``edgekit bench``: one function per figure, and ``benchmark_bundle`` to run them all.

In this process, at one engine thread and one numba thread: batch-1 latency, throughput at a larger batch,
accuracy on a dataset, feature-extraction rate. In a fresh process per artifact, pinned to one core, the device
loop itself (``Runtime``, as ``edgekit run`` drives it): cold start, peak RSS and the real-time factor. Those need
a process of their own because a process's peak RSS never goes down and its first prediction happens only once.

Figures are measured, never asserted: this machine may be shared, so the host's load average goes into the result.
"""

from __future__ import annotations

import math
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from edgekit.bench import DEFAULT_BATCH, DEFAULT_MAX_WINDOWS, DEFAULT_SECONDS, BenchError
from edgekit.bench.process import one_core, runtime_in_subprocess
from edgekit.errors import ConfigError, DataError, MissingDependencyError

FEATURE_WINDOWS = 2000


# --------------------------------------------------------------------------------------------- which artifacts


def select_artifacts(manifest: dict, engine: str | None = None,
                     files: list[str] | tuple[str, ...] | None = None) -> tuple[list[dict], dict[str, str]]:
    """The artifacts to measure (manifest order), and the others' file names with why they are left out."""
    from edgekit.runtime.engines import ENGINES

    artifacts = manifest.get("artifacts", [])
    known = [a["file"] for a in artifacts]
    unknown = [f for f in files or () if f not in known]
    if unknown:
        raise ConfigError(f"no artifact {', '.join(map(repr, unknown))} in this bundle; it has: "
                          f"{', '.join(known) or 'none'}")
    if engine is not None and engine not in ENGINES:
        raise ConfigError(f"unknown engine {engine!r}; known: {', '.join(ENGINES)}")
    selected = [a for a in artifacts if (not files or a["file"] in files) and engine in (None, a.get("engine"))]
    if not selected:
        listing = ", ".join(f"{a['file']} ({a.get('engine')})" for a in artifacts) or "none"
        raise ConfigError(f"no artifact of this bundle is for engine {engine!r}"
                          f"{' among ' + ', '.join(files) if files else ''}; its artifacts: {listing}")
    chosen, skipped = [], {}
    for artifact in selected:
        if not artifact.get("built", True):
            skipped[artifact["file"]] = "not built at export (see the bundle's report.md)"
        elif artifact.get("engine") not in ENGINES:
            skipped[artifact["file"]] = (f"not runnable on this machine: its engine {artifact.get('engine')!r} "
                                         f"is not one of {', '.join(ENGINES)}")
        else:
            chosen.append(artifact)
    return chosen, skipped


# ------------------------------------------------------------------------------------------ timing one engine


def latency_ms(run: Callable[[np.ndarray], Any], x: np.ndarray, *, warmup: int = 10, budget_s: float = 0.5,
               min_runs: int = 50, max_runs: int = 2000) -> dict:
    """p50/p99/mean milliseconds of ``run(x)``: at least ``min_runs`` calls, more while ``budget_s`` lasts."""
    for _ in range(warmup):  # first calls allocate buffers and fault pages in; a device pays that once
        run(x)
    times: list[int] = []
    deadline = time.perf_counter() + budget_s
    while len(times) < max_runs and (len(times) < min_runs or time.perf_counter() < deadline):
        started = time.perf_counter_ns()
        run(x)
        times.append(time.perf_counter_ns() - started)
    ms = np.asarray(times, dtype=np.float64) / 1e6
    return {"p50": float(np.percentile(ms, 50)), "p99": float(np.percentile(ms, 99)), "mean": float(ms.mean()),
            "runs": len(ms)}


def windows_per_s(run: Callable[[np.ndarray], Any], batch: np.ndarray, repeats: int = 3,
                  min_seconds: float = 0.5) -> float:
    """Rows of ``batch`` per second in the median call (after one untimed call), over at least ``repeats`` calls
    and ``min_seconds``: a small batch runs in milliseconds, too short for three calls to say much."""
    run(batch)
    durations: list[float] = []
    while len(durations) < repeats or sum(durations) < min_seconds:
        started = time.perf_counter()
        run(batch)
        durations.append(time.perf_counter() - started)
    return len(batch) / max(float(np.median(durations)), 1e-9)


def static_batch(engine) -> int | None:
    """The batch size fixed in the graph, or None when the first dimension is dynamic."""
    first = (engine.input_spec.get("shape") or [None])[0]
    return first if isinstance(first, int) and first > 0 else None


def feature_rate(windows: np.ndarray, spec) -> dict:
    """Feature extraction windows/s at one numba thread (what the one-core device loop gets)."""
    from edgekit.features import _backend, extract

    backend = _backend.backend_name()
    if backend != "numba":
        return {"backend": backend, "threads": 1, "windows_per_s": windows_per_s(lambda w: extract(w, spec), windows)}
    import numba

    before = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        rate = windows_per_s(lambda w: extract(w, spec), windows)
    finally:
        numba.set_num_threads(before)
    return {"backend": backend, "threads": 1, "windows_per_s": rate}


# ------------------------------------------------------------------------------------------------ the dataset


def dataset_windows(path, spec, classes: list[str], max_windows: int = DEFAULT_MAX_WINDOWS):
    """Windows of a dataset folder at the model's window and hop, with labels as indices into ``classes``.

    At most ``max_windows``, spread evenly over the whole dataset so every recording keeps its share.
    Returns ``(windows float32[n, window], labels int64[n], summary dict)``.
    """
    from edgekit.data.splits import Segment, cut_windows
    from edgekit.data.store import load_dataset

    data = load_dataset(path)
    if not math.isclose(data.sample_rate, spec.sample_rate, rel_tol=1e-6):
        raise DataError(f"{path} is sampled at {data.sample_rate:g} Hz but the bundle's model expects "
                        f"{spec.sample_rate:g} Hz; give a dataset recorded (or imported with --sample-rate) at "
                        f"{spec.sample_rate:g} Hz")
    labels_used = sorted({r.label for r in data.recordings}, key=data.classes.index)
    foreign = [c for c in labels_used if c not in classes]
    if foreign:
        raise DataError(f"{path} has classes the bundle's model does not know: {', '.join(foreign)}; "
                        f"the model's classes are: {', '.join(classes)}")
    windows, dataset_labels, _ = cut_windows(data, [Segment(r.id, 0, r.n_samples) for r in data.recordings],
                                             spec.window, spec.hop)
    to_model = np.asarray([classes.index(c) if c in classes else -1 for c in data.classes], dtype=np.int64)
    labels = to_model[dataset_labels]
    if len(windows) > max_windows:
        keep = np.unique(np.linspace(0, len(windows) - 1, max_windows).round().astype(np.int64))
        windows, labels = windows[keep], labels[keep]
    summary = {"path": str(path), "name": data.name, "version": data.version, "windows": int(len(windows)),
               "hop": spec.hop}
    return np.ascontiguousarray(windows), labels, summary


def accuracy(model, windows: np.ndarray, features: np.ndarray, labels: np.ndarray, chunk: int = 256) -> float:
    """Fraction of windows whose most probable class is the label, through ``model.predict``."""
    hits = 0
    for begin in range(0, len(windows), chunk):
        probabilities, _ = model.predict(windows[begin:begin + chunk], features[begin:begin + chunk])
        hits += int((probabilities.argmax(axis=1) == labels[begin:begin + chunk]).sum())
    return hits / len(windows)


def bench_signal(spec, seconds: float, dataset_path=None) -> np.ndarray:
    """A float32 signal of ``seconds`` at the model's rate: the dataset's recordings in turn when there is one,
    else a synthetic healthy machine (a preset at that rate, or seeded noise and a shaft line)."""
    n = max(int(round(seconds * spec.sample_rate)), spec.window)
    if dataset_path is not None:
        from edgekit.data.store import load_dataset

        signal = np.concatenate([r.signal for r in load_dataset(dataset_path).recordings]).astype(np.float32)
        if signal.size == 0:
            raise DataError(f"{dataset_path} holds no samples to run the runtime on")
        return np.resize(signal, n)  # the recordings in turn, repeated until n samples
    from edgekit.data.presets import PRESETS
    from edgekit.data.synth import synthesize

    preset = next((p for p in PRESETS.values() if math.isclose(p.sample_rate, spec.sample_rate)), None)
    if preset is not None:
        return synthesize("normal", preset, duration_s=n / preset.sample_rate, rng=0)[:n]
    t = np.arange(n) / spec.sample_rate
    noise = np.random.default_rng(0).standard_normal(n)
    return (0.05 * noise + 0.02 * np.sin(2 * np.pi * 29.9 * t)).astype(np.float32)


# ------------------------------------------------------------------------------------------------- all of it


def host_info() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    versions = {}
    for package in ("numpy", "numba", "onnxruntime", "ai-edge-litert", "tflite-runtime"):
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            pass
    return {"cpu": cpu, "machine": platform.machine(), "cores": os.cpu_count(), "python": platform.python_version(),
            "versions": versions, "load_average": [round(v, 2) for v in os.getloadavg()]}


def measure_model(model, bundle, inputs: np.ndarray, latency_budget_s: float = 0.5) -> dict:
    """Batch-1 latency and throughput over ``inputs`` (the batch) of a ``DeployedModel``'s engine, in this process."""
    from edgekit.runtime.engines import open_engine

    fixed = static_batch(model.engine)
    throughput = {"batch": len(inputs), "windows_per_s": windows_per_s(model.engine.run, inputs),
                  "static_batch": fixed, "mode": "window by window" if fixed == 1 else "batched"}
    twin = model.artifact.get("extra", {}).get("dynamic_batch_file")
    if fixed == 1 and twin:
        # The export's dynamic-batch twin shows what batching would give; the device runs the artifact itself.
        engine = open_engine(bundle.file_path(twin), model.artifact["engine"], model.artifact, threads=1)
        throughput["batched_twin"] = {"file": twin, "windows_per_s": windows_per_s(engine.run, inputs)}
    return {"latency_ms": latency_ms(model.engine.run, inputs[:1], budget_s=latency_budget_s),
            "throughput": throughput}


def _nothing_runs(skipped: dict[str, str]) -> None:
    reasons = "; ".join(f"{file}: {why}" for file, why in skipped.items()) or "none is selected"
    raise BenchError(f"no artifact of this bundle can run on this machine ({reasons}); benchmark it on its "
                     "target, or re-export it for a target whose engines are installed here")


def benchmark_bundle(bundle_path, *, dataset=None, engine: str | None = None, artifacts=None,
                     batch: int = DEFAULT_BATCH, seconds: float = DEFAULT_SECONDS,
                     max_windows: int = DEFAULT_MAX_WINDOWS, latency_budget_s: float = 0.5,
                     progress: Callable[[str], None] | None = None) -> dict:
    """Benchmark every runnable artifact of a bundle on this machine; returns the JSON-ready result.

    ``dataset`` (an edgekit dataset folder at the model's sample rate) adds accuracy; ``engine`` and
    ``artifacts`` (file names) narrow what is measured; ``batch`` is the throughput batch; ``seconds`` is the
    length of the signal the device loop runs on. ``progress`` receives one line per step.
    """
    from edgekit.bundle import open_bundle
    from edgekit.features import FeatureSpec, extract, extract_with_quality, frame
    from edgekit.runtime.engines import EngineError
    from edgekit.runtime.model import DeployedModel, choose_artifact

    say = progress or (lambda message: None)
    for name, value, low in (("batch", batch, 1), ("seconds", seconds, 1e-9), ("max_windows", max_windows, 1)):
        if not value >= low:
            raise ConfigError(f"{name} must be positive, got {value}")
    started = time.perf_counter()
    load_before = host_info()["load_average"]
    with open_bundle(bundle_path, trust="hashes") as bundle:
        manifest = bundle.manifest
        spec = FeatureSpec.from_dict(manifest["feature_spec"])
        classes = list(manifest["classes"])
        chosen, skipped = select_artifacts(manifest, engine, artifacts)
        if not chosen:
            _nothing_runs(skipped)
        data = dataset_windows(dataset, spec, classes, max_windows) if dataset is not None else None
        signal = bench_signal(spec, seconds, dataset)
        windows = np.ascontiguousarray(frame(signal, spec.window, spec.hop), dtype=np.float32)
        say(f"feature extraction ({spec.window}-sample windows, 1 thread)")
        features = feature_rate(np.resize(windows, (FEATURE_WINDOWS, spec.window)), spec)
        extract_with_quality(windows[:2], spec)  # compiles or loads the runtime's kernels, filling numba's cache
        batch_windows = np.resize(windows, (batch, spec.window))
        batch_features = extract(batch_windows, spec)
        if data is not None:
            data_features = extract(data[0], spec)
        entries: dict[str, dict] = {}
        for artifact in chosen:
            try:
                model = DeployedModel(bundle, artifact["engine"], artifact["file"], threads=1)
            except (MissingDependencyError, EngineError) as exc:
                skipped[artifact["file"]] = f"not runnable on this machine: {exc}"
                continue
            say(f"{model.describe()}: latency, throughput{', accuracy' if data is not None else ''}")
            entry = measure_model(model, bundle, model.inputs(batch_windows, batch_features), latency_budget_s)
            if data is not None:
                entry["accuracy"] = accuracy(model, data[0], data_features, data[1])
            entries[artifact["file"]] = entry
        if not entries:
            _nothing_runs(skipped)
        core = one_core()
        with tempfile.TemporaryDirectory(prefix="edgekit-bench-") as tmp:
            signal_file = Path(tmp) / "signal.npy"
            np.save(signal_file, signal)
            runnable = [a for a in chosen if a["file"] in entries]
            # An untimed first run: fills numba's cache should this process's kernels differ, and the page cache.
            say("warming up the runtime process")
            runtime_in_subprocess(bundle.path, runnable[0], signal_file, core)
            for artifact in runnable:
                say(f"{artifact['file']}: runtime process on core {core} (cold start, peak RSS, "
                    f"{len(signal) / spec.sample_rate:g} s of signal)")
                entries[artifact["file"]]["runtime"] = runtime_in_subprocess(bundle.path, artifact, signal_file, core)
        try:  # what `edgekit run` would pick with the same --engine, if it was measured
            default = choose_artifact(manifest, engine)["file"]
        except ConfigError:
            default = None
        rows = []
        for artifact in manifest.get("artifacts", []):
            if artifact["file"] not in entries and artifact["file"] not in skipped:
                continue  # filtered out by --engine/--artifact
            row = {key: artifact.get(key) for key in ("file", "engine", "format", "precision")}
            row.update(deployed=artifact.get("deployed", True), size_bytes=artifact.get("size_bytes"),
                       runnable=artifact["file"] in entries, default=artifact["file"] == default)
            if artifact["file"] in entries:
                row.update(entries[artifact["file"]])
            else:
                row["reason"] = skipped[artifact["file"]]
            rows.append(row)
        from edgekit import __version__

        return {
            "benchmark": "bundle", "edgekit_version": __version__,
            "bundle": {"path": str(bundle.source or bundle.path), "target": manifest.get("target", {}).get("name"),
                       "classes": classes, "input": manifest.get("model", {}).get("input", {}).get("kind"),
                       "sample_rate": spec.sample_rate, "window": spec.window, "hop": spec.hop},
            "settings": {"batch": batch, "seconds": seconds, "engine_threads": 1, "numba_threads": 1,
                         "max_windows": max_windows, "engine": engine, "artifacts": list(artifacts or [])},
            "features": features | {"window": spec.window},
            "dataset": data[2] if data is not None else None,
            "artifacts": rows,
            "host": host_info() | {"load_average_before": load_before},
            "elapsed_s": time.perf_counter() - started,
        }
