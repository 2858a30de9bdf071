"""The result of ``benchmark_bundle`` as JSON, a Markdown table and a PNG plot (``bench.json|md|png``)."""

from __future__ import annotations

import json
from pathlib import Path

from edgekit.errors import ConfigError
from edgekit.jsonable import json_default

FILES = ("bench.json", "bench.md", "bench.png")


def to_json(result: dict) -> str:
    return json.dumps(result, indent=2, default=json_default) + "\n"


def _size(n: float | None) -> str:
    if n is None:
        return "?"
    for unit in ("B", "KiB", "MiB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def _ms(value: float) -> str:
    return f"{value:.3f} ms" if value < 10 else f"{value:.1f} ms"


def _rate(value: float) -> str:
    return f"{value:,.0f}/s"


def _row(artifact: dict, with_accuracy: bool) -> list[str]:
    name = f"`{artifact['file']}`" + (" *" if artifact.get("default") else "")
    latency, throughput, runtime = artifact["latency_ms"], artifact["throughput"], artifact["runtime"]
    cells = [name, artifact["engine"], artifact["precision"], _size(artifact.get("size_bytes")),
             _ms(latency["p50"]), _ms(latency["p99"]),
             _rate(throughput["windows_per_s"]) + (" (1 by 1)" if throughput["mode"] == "window by window" else "")]
    if with_accuracy:
        cells.append(f"{artifact['accuracy']:.4f}")
    cells += [f"{runtime['cold_start_s']:.2f} s", _size(runtime["rss_kib"]["peak"] * 1024),
              f"{runtime['end_to_end']['real_time_factor']:,.0f}x"]
    return cells


def markdown(result: dict) -> str:
    """A human-readable report: one table row per runnable artifact, then what was left out and how it was measured."""
    bundle, host, settings = result["bundle"], result["host"], result["settings"]
    runnable = [a for a in result["artifacts"] if a["runnable"]]
    with_accuracy = result.get("dataset") is not None
    versions = ", ".join(f"{k} {v}" for k, v in host["versions"].items())
    lines = [
        f"# edgekit bench: {Path(bundle['path']).name}",
        "",
        f"Target `{bundle['target']}`, model on {bundle['input']} inputs, {bundle['sample_rate']:g} Hz, "
        f"{bundle['window']}-sample windows every {bundle['hop']} samples.",
        f"Host: {host['cpu']} ({host['machine']}, {host['cores']} cores), Python {host['python']}, {versions}; "
        f"load average {host['load_average_before'][0]:g} before, {host['load_average'][0]:g} after.",
        "",
    ]
    headers = ["artifact", "engine", "precision", "size", "p50 batch 1", "p99 batch 1",
               f"throughput, batch {settings['batch']}"]
    headers += ["accuracy"] if with_accuracy else []
    headers += ["cold start", "peak RSS", "real time, 1 core"]
    lines += ["| " + " | ".join(headers) + " |", "|" + "|".join(["---"] * 3 + ["---:"] * (len(headers) - 3)) + "|"]
    lines += ["| " + " | ".join(_row(a, with_accuracy)) + " |" for a in runnable]
    lines.append("")
    if any(a.get("default") for a in runnable):
        lines.append("\\* what `edgekit run` picks without --engine/--artifact.")
    twins = [a for a in runnable if "batched_twin" in a["throughput"]]
    for a in twins:
        twin = a["throughput"]["batched_twin"]
        lines.append(f"`{a['file']}` has a static batch of 1 and runs window by window (1 by 1); its dynamic-batch "
                     f"twin `{twin['file']}` does {_rate(twin['windows_per_s'])} at batch {settings['batch']}.")
    left_out = [a for a in result["artifacts"] if not a["runnable"]]
    if left_out:
        lines += ["", "Not measured:", ""]
        lines += [f"- `{a['file']}` ({a['engine']}, {a['precision']}): {a['reason']}" for a in left_out]
    features = result["features"]
    lines += [
        "",
        f"Feature extraction: {_rate(features['windows_per_s'])} ({features['backend']}, "
        f"{features['threads']} thread, {features['window']}-sample windows).",
    ]
    if with_accuracy:
        data = result["dataset"]
        lines.append(f"Accuracy on `{data['name']}` ({data['version'][:19]}...): {data['windows']} windows at hop "
                     f"{data['hop']}, through the same predict as the runtime.")
    end_to_end = runnable[0]["runtime"]["end_to_end"]
    core = "one core" if end_to_end["core"] is None else f"core {end_to_end['core']}"
    lines += [
        "",
        "How: latency and throughput call the engine alone, at one thread, on the model's inputs (p50/p99 over at "
        f"least {min(a['latency_ms']['runs'] for a in runnable)} calls after a warm-up). Cold start, peak RSS and "
        f"real time come from a fresh `Runtime` process per artifact pinned to {core} (one engine and one numba "
        "thread): cold start is process start to first prediction with numba's cache warm (the runtime promises "
        f"<= 2 s); real time is seconds of signal per wall second over {end_to_end['signal_s']:.0f} s of signal, "
        "features, model, smoothing and drift statistics included; peak RSS is that process's high-water mark. "
        "The first window also imports numba and loads its cached kernels:",
        "",
        "| artifact | imports | bundle + model load | first window | RSS after imports | after first prediction |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for a in runnable:
        startup, rss = a["runtime"]["startup_s"], a["runtime"]["rss_kib"]
        lines.append(f"| `{a['file']}` | {startup['imports']:.2f} s | {startup['load']:.2f} s | "
                     f"{startup['first_window']:.2f} s | {_size(rss['after_imports'] * 1024)} | "
                     f"{_size(rss['after_first_prediction'] * 1024)} |")
    lines.append("")
    return "\n".join(lines)


def write_plot(result: dict, path) -> Path:
    """Latency p50/p99, throughput and real-time factor per runnable artifact, side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    runnable = [a for a in result["artifacts"] if a["runnable"]]
    names = [a["file"] for a in runnable]
    x = np.arange(len(runnable))
    fig, (lat, thr, rtf) = plt.subplots(1, 3, figsize=(13, 4.2))
    for offset, key in ((-0.2, "p50"), (0.2, "p99")):
        bars = lat.bar(x + offset, [a["latency_ms"][key] for a in runnable], 0.4, label=key)
        lat.bar_label(bars, fmt="%.3g", fontsize=7)
    lat.set_ylabel("ms per window, batch 1")
    lat.set_title("latency")
    lat.legend(fontsize=8)
    rates = [a["throughput"]["windows_per_s"] for a in runnable]
    bars = thr.bar(x, rates, 0.6, color="tab:green")
    thr.bar_label(bars, labels=[f"{r:,.0f}" for r in rates], fontsize=7)
    thr.set_ylabel("windows per second")
    thr.set_title(f"throughput, batch {result['settings']['batch']}")
    bars = rtf.bar(x, [a["runtime"]["end_to_end"]["real_time_factor"] for a in runnable], 0.6, color="tab:purple")
    rtf.bar_label(bars, fmt="%.0fx", fontsize=7)
    rtf.axhline(1.0, color="gray", linestyle="--", linewidth=1)
    rtf.set_ylabel("signal seconds per wall second")
    rtf.set_title("end to end, 1 core")
    for ax in (lat, thr, rtf):
        ax.set_xticks(x, names, rotation=20, ha="right", fontsize=8)
    fig.suptitle(f"{Path(result['bundle']['path']).name} on {result['host']['cpu']}", fontsize=10)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_report(result: dict, out_dir) -> list[Path]:
    """Write bench.json, bench.md and bench.png into ``out_dir`` (created if needed); returns their paths."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out} is a file; give --out a folder (it is created if missing)")
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / name for name in FILES]
    paths[0].write_text(to_json(result))
    paths[1].write_text(markdown(result))
    write_plot(result, paths[2])
    return paths
