"""Feature extraction throughput: numba kernels (1 and 2 threads) against the numpy reference, same run.

Run from the repository root:  .venv/bin/python benchmarks/features.py [--windows 20000] [--repeats 5]

Writes benchmarks/results/features.{json,md,png}. Each figure is the best of ``--repeats`` timed calls on one
batch of seeded float32 windows (compile and first call excluded), so it measures the code rather than whatever
else the machine was doing; the load average before and after is recorded because this host may be shared.
Targets (default spec, 1024-sample windows): numba >= 5x the reference and >= 100,000 windows/s on 2 threads.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

from edgekit.bearing import BearingGeometry
from edgekit.features import FeatureSpec, _backend, extract, feature_names, reference

RESULTS = Path(__file__).resolve().parent / "results"
TARGET_SPEEDUP = 5.0
TARGET_RATE_2T = 100_000.0


def best_rate(fn, windows: np.ndarray, repeats: int) -> tuple[float, float]:
    """Windows per second of the fastest of ``repeats`` calls (after an untimed warm-up), and the cores it used.

    Cores used = process CPU time / wall time of that call: on a shared host it shows whether the threads got
    their cores, which the rate alone cannot tell.
    """
    fn(windows[:64])
    best, cores = float("inf"), 0.0
    for _ in range(repeats):
        started, cpu_started = time.perf_counter(), time.process_time()
        fn(windows)
        wall = time.perf_counter() - started
        if wall < best:
            best, cores = wall, (time.process_time() - cpu_started) / wall
    return len(windows) / best, cores


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def host_info() -> dict:
    import numba
    import rocket_fft

    return {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "numba": numba.__version__,
        "rocket_fft": rocket_fft.__version__,
        "threading_layer": numba.threading_layer(),
        "load_average_before": None,
        "load_average_after": None,
    }


def run(n_windows: int, repeats: int) -> dict:
    import numba

    assert _backend.backend_name() == "numba", "numba and rocket-fft are needed to benchmark the kernels"
    windows = np.random.default_rng(0).standard_normal((n_windows, 1024)).astype(np.float32)
    specs = {
        "default": FeatureSpec(sample_rate=12000.0, window=1024),
        "envelope": FeatureSpec(sample_rate=12000.0, window=1024, bearing=BearingGeometry.named("6205"), rpm=1797.0),
    }
    load_before = os.getloadavg()
    rows = []
    for name, spec in specs.items():
        rates, cores = {}, {}
        for threads in (1, 2):
            numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
            key = f"numba_{threads}t"
            rates[key], cores[key] = best_rate(lambda w: extract(w, spec), windows, repeats)
        # Same batch; fewer repeats, as each takes seconds.
        rates["numpy_reference"], cores["numpy_reference"] = best_rate(
            lambda w: reference.extract(w, spec), windows, max(2, repeats // 2))
        rows.append({
            "spec": name,
            "n_features": len(feature_names(spec)),
            "windows_per_s": rates,
            "cores_used": {k: round(v, 2) for k, v in cores.items()},
            "cpu_us_per_window": {k: round(cores[k] / rates[k] * 1e6, 2) for k in rates},
            "speedup_1t": rates["numba_1t"] / rates["numpy_reference"],
            "speedup_2t": rates["numba_2t"] / rates["numpy_reference"],
        })
    info = host_info()
    info["load_average_before"] = [round(v, 2) for v in load_before]
    info["load_average_after"] = [round(v, 2) for v in os.getloadavg()]
    default = rows[0]
    targets = {
        "speedup_2t_min": TARGET_SPEEDUP,
        "windows_per_s_2t_min": TARGET_RATE_2T,
        "met_speedup": default["speedup_2t"] >= TARGET_SPEEDUP,
        "met_rate": default["windows_per_s"]["numba_2t"] >= TARGET_RATE_2T,
    }
    return {"benchmark": "features", "window": 1024, "n_windows": n_windows, "repeats": repeats,
            "host": info, "results": rows, "targets": targets}


def write_markdown(report: dict, path: Path) -> None:
    host = report["host"]
    lines = [
        "# Feature extraction throughput",
        "",
        f"`{' '.join(['.venv/bin/python', 'benchmarks/features.py'])}` on {host['date']}: "
        f"{report['n_windows']:,} float32 windows of {report['window']} samples at 12 kHz, best of "
        f"{report['repeats']} (reference: best of {max(2, report['repeats'] // 2)}), warm-up and compilation excluded.",
        "",
        "| spec | features | numba 1 thread | numba 2 threads | numpy reference | speedup 1t | speedup 2t |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in report["results"]:
        r = row["windows_per_s"]
        lines.append(
            f"| {row['spec']} | {row['n_features']} | {r['numba_1t']:,.0f}/s | {r['numba_2t']:,.0f}/s | "
            f"{r['numpy_reference']:,.0f}/s | {row['speedup_1t']:.1f}x | {row['speedup_2t']:.1f}x |"
        )
    lines += [
        "",
        "CPU time per window (process CPU time / windows) and cores actually used (CPU time / wall time) in the "
        "timed call:",
        "",
        "| spec | numba 1 thread | numba 2 threads | numpy reference |",
        "|---|---:|---:|---:|",
    ]
    for row in report["results"]:
        us, cores = row["cpu_us_per_window"], row["cores_used"]
        lines.append("| " + " | ".join([row["spec"]] + [
            f"{us[k]:.2f} us, {cores[k]:.2f} cores" for k in ("numba_1t", "numba_2t", "numpy_reference")]) + " |")
    starved = [row["spec"] for row in report["results"] if row["cores_used"]["numba_2t"] < 1.6]
    if starved:
        lines += ["", f"Note: the 2-thread runs ({', '.join(starved)}) got fewer than 1.6 cores: other processes were "
                  "using this host, so their rate understates what two free cores give; the CPU time per window above "
                  "is the load-independent measure of the kernels' work."]
    t = report["targets"]
    lines += [
        "",
        f"Targets for the default spec: numba on 2 threads >= {t['speedup_2t_min']:.0f}x the reference "
        f"({'met' if t['met_speedup'] else 'MISSED'}) and >= {t['windows_per_s_2t_min']:,.0f} windows/s "
        f"({'met' if t['met_rate'] else 'MISSED'}).",
        "",
        "The envelope spec adds a complex inverse FFT and a second real FFT per window (band-pass, analytic signal, "
        "envelope spectrum); it has no target.",
        "",
        "## Host",
        "",
        f"- CPU: {host['cpu']}, {host['cores']} cores (numba threading layer: {host['threading_layer']})",
        f"- Python {host['python']}, numpy {host['numpy']}, numba {host['numba']}, rocket-fft {host['rocket_fft']}",
        f"- load average (1, 5, 15 min) before: {host['load_average_before']}, after: {host['load_average_after']}"
        " (the host may be shared; best-of-N keeps most of that noise out)",
        "",
    ]
    path.write_text("\n".join(lines))


def write_chart(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [("numba_1t", "numba, 1 thread"), ("numba_2t", "numba, 2 threads"), ("numpy_reference", "numpy reference")]
    fig, ax = plt.subplots(figsize=(7, 4))
    width = 0.25
    x = np.arange(len(report["results"]))
    for i, (key, label) in enumerate(labels):
        values = [row["windows_per_s"][key] for row in report["results"]]
        bars = ax.bar(x + (i - 1) * width, values, width, label=label)
        ax.bar_label(bars, labels=[f"{v / 1000:.0f}k" for v in values], fontsize=8)
    ax.axhline(TARGET_RATE_2T, color="gray", linestyle="--", linewidth=1, label="target, 2 threads")
    ax.set_xticks(x, [f"{row['spec']} ({row['n_features']} features)" for row in report["results"]])
    ax.set_ylabel("windows per second (1024 samples)")
    ax.set_title(f"edgekit.features on {report['host']['cpu']}, {report['host']['cores']} cores")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    report = run(args.windows, args.repeats)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "features.json").write_text(json.dumps(report, indent=2) + "\n")
    write_markdown(report, RESULTS / "features.md")
    write_chart(report, RESULTS / "features.png")
    print((RESULTS / "features.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
