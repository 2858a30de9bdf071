"""Drift detection delay and false alarms: edgekit's DriftMonitor against River's ADWIN, KSWIN and PageHinkley.

Run from the repository root:  .venv/bin/python benchmarks/drift.py [--seeds 4] [--machines 8] [--jobs 2]
(``--report-only`` rewrites drift.md and drift.png from the stored JSON.)

Writes benchmarks/results/drift.{json,png} and benchmarks/drift.md. Every detector sees the same feature streams
(default FeatureSpec, 1024-sample windows, hop 512 at 12 kHz): the synthetic drift scenarios (60 s, change at
30 s) for the detection delay, and long healthy recordings for the false alarms per hour. DriftMonitor compares
each 128-window report with the reference statistics of a healthy training set (as the device does with the
bundle's); River's detectors have no reference and watch each stream for a change in its own level. River is
a benchmark dependency only: it is imported here, never by edgekit.
"""

from __future__ import annotations

import argparse
import datetime as dt
import inspect
import json
import multiprocessing
import os
import platform
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from edgekit.data.scenarios import generate_scenario
from edgekit.data.synth import generate_dataset, synthesize
from edgekit.features import FeatureSpec, extract, feature_names, frame
from edgekit.runtime.drift import DriftMonitor
from edgekit.train.reference import reference_statistics

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
SCENARIOS = ("gain_change", "resonance_shift", "speed_change", "fault_growth")
REPORT_WINDOWS = 128  # one DriftMonitor report: 5.5 s at hop 512, 12 kHz
SUMMARY_FEATURE = "time_rms"
SWEEP_THRESHOLDS = (2.25, 2.5, 2.75, 3.0)  # effect thresholds tried for the default, with SWEEP_RULES
SWEEP_RULES = ((1, 1), (2, 3), (3, 4))  # (k, n)
GRID_STEP = 47  # windows; prime to REPORT_WINDOWS, so successive seeds meet the report grid at different phases
SPEC = FeatureSpec(sample_rate=12000.0, window=1024, hop=512)
NAMES = feature_names(SPEC)
REFERENCE_SEED = 100  # the training set's seed: no scenario or stationary stream shares it
STATIONARY_SEED0 = 1000

# Filled in the parent before the worker pool forks, so workers read the streams without pickling them.
_STREAMS: dict = {}


def features_of(signal: np.ndarray) -> np.ndarray:
    return extract(np.ascontiguousarray(frame(signal, SPEC.window, SPEC.hop)), SPEC)


def training_reference(pooled: bool) -> dict:
    """Reference statistics of a training set: healthy machines at every load, or (``pooled``) every class of the generator."""
    classes = None if pooled else ["normal"]
    # 10 s recordings (the preset's own length): shorter ones miss the slow wander of the window mean (1/f
    # process noise), and the reference then makes healthy machines look drifted.
    ds = generate_dataset("motor", seed=REFERENCE_SEED, recordings_per_class=4 if pooled else 16, duration_s=10.0,
                          classes=classes)
    features = [features_of(r.signal) for r in ds.recordings]
    labels = np.concatenate([np.full(len(f), ds.classes.index(r.label)) for f, r in zip(features, ds.recordings)])
    return reference_statistics(np.concatenate(features), NAMES, labels, ds.classes)


def first_window_after(change_sample: int) -> int:
    """Index of the first window that holds a sample from after the change."""
    return max(0, -(-(change_sample - SPEC.window + 1) // SPEC.hop))


def episodes(alarms: list[int]) -> list[int]:
    """Alarms closer than one report to the previous counted one are the same alarm (one cause, many features)."""
    counted: list[int] = []
    for a in sorted(alarms):
        if not counted or a - counted[-1] >= REPORT_WINDOWS:
            counted.append(a)
    return counted


def run_monitor(stream: np.ndarray, reference: dict) -> tuple[list[int], dict]:
    """Windows at which DriftMonitor's decision rose, reporting every REPORT_WINDOWS windows like the pipeline; and
    the largest effect size (W1 / reference std) of any report, and whether each report would be over at each of
    SWEEP_THRESHOLDS (for the table that justifies the default)."""
    monitor, alarms, was, largest, overs = DriftMonitor(reference, NAMES), [], False, 0.0, []
    psi_threshold = monitor.statistics()["psi_threshold"]
    for start in range(0, len(stream) - REPORT_WINDOWS + 1, REPORT_WINDOWS):
        largest = max(largest, monitor.update_many(stream[start:start + REPORT_WINDOWS]).report()["effect_max"])
        stats = monitor.statistics()["features"].values()
        psi = np.array([f["psi"] for f in stats])
        effect = np.array([f["w1_std"] for f in stats])
        overs.append([bool(np.any((psi >= psi_threshold) & (effect >= t))) for t in SWEEP_THRESHOLDS])
        if monitor.drift_detected and not was:
            alarms.append(start + REPORT_WINDOWS - 1)
        was = monitor.drift_detected
    return alarms, {"largest": largest, "overs": overs}


def make_river(name: str, strict: bool):
    """River's detector with its defaults, or ``strict``: settings chosen beforehand (not tuned on these streams)
    to trade delay for fewer false alarms, so River is not judged only at its most eager."""
    from river import drift  # benchmark dependency only

    if name == "ADWIN":
        return drift.ADWIN(delta=1e-6 if strict else 0.002)
    if name == "KSWIN":
        return drift.KSWIN(alpha=1e-6 if strict else 0.005, seed=0)
    return drift.PageHinkley(threshold=500.0 if strict else 50.0)


def run_river(name: str, strict: bool, columns: np.ndarray, stop_after: int | None, limit: int | None) -> list[int]:
    """Windows at which a River detector fired, one detector per column; each stops at its first alarm at or after
    ``stop_after`` (only the first detection of a change is measured) and after ``limit`` windows."""
    alarms: list[int] = []
    for column in columns.T:
        detector = make_river(name, strict)
        for i, value in enumerate(column[:limit].tolist()):
            detector.update(value)
            if detector.drift_detected:
                alarms.append(i)
                if stop_after is not None and i >= stop_after:
                    break
    return alarms


def task(job: tuple) -> tuple:
    kind, key, method, variant, limit = job
    stream = _STREAMS[kind][key]
    features, change = stream["features"], stream.get("change")
    started, extra = time.process_time(), None
    if method == "DriftMonitor":
        alarms, extra = run_monitor(features, _STREAMS["references"][variant])
    else:
        # River sees the features in reference standard deviations: PageHinkley's threshold and ADWIN's bound are
        # absolute, and z-scores make River's defaults mean the same for every feature.
        z = (features - _STREAMS["ref_mean"]) / _STREAMS["ref_std"]
        columns = z if variant == "all features" else z[:, [NAMES.index(SUMMARY_FEATURE)]]
        alarms = run_river(method, variant.endswith("strict"), columns, change, limit)
    return job, episodes(alarms), time.process_time() - started, extra


METHODS = [("DriftMonitor", "healthy reference"), ("DriftMonitor", "pooled reference")] + [
    (m, v) for m in ("ADWIN", "KSWIN", "PageHinkley") for v in ("all features", SUMMARY_FEATURE,
                                                               f"{SUMMARY_FEATURE}, strict")]


def run(seeds: int, machines: int, stationary_minutes: float, kswin_minutes: float, jobs: int) -> dict:
    wall = time.perf_counter()
    references = {"healthy reference": training_reference(False), "pooled reference": training_reference(True)}
    healthy = references["healthy reference"]["features"]
    _STREAMS.update(references=references, scenario={}, stationary={},
                    ref_mean=np.array([healthy[n]["mean"] for n in NAMES]),
                    ref_std=np.array([max(healthy[n]["std"], 1e-12) for n in NAMES]))
    for name in SCENARIOS:
        for seed in range(seeds):
            rec = generate_scenario(name, "motor", seed=seed, duration_s=60.0, change_at=0.5).recordings[0]
            # Each seed starts watching at another point of the report grid: otherwise the change would fall at
            # the same place in a report every time, and report-based delays would not vary with the seed.
            skip = seed * GRID_STEP % REPORT_WINDOWS
            _STREAMS["scenario"][f"{name}/{seed}"] = {
                "features": features_of(rec.signal)[skip:],
                "change": first_window_after(rec.meta["change_sample"]) - skip}
    for seed in range(machines):
        load = seed % 4  # healthy machines over the training set's operating range
        signal = synthesize("normal", "motor", load=load, duration_s=stationary_minutes * 60.0,
                            rng=STATIONARY_SEED0 + seed)
        _STREAMS["stationary"][f"load{load}/{seed}"] = {"features": features_of(signal)}
    kswin_limit = int(kswin_minutes * 60 * SPEC.sample_rate / SPEC.hop)
    jobs_list = []
    for method, variant in METHODS:
        for kind in ("scenario", "stationary"):
            # KSWIN runs a scipy KS test per window and feature (~0.6 ms); on long streams it gets a prefix.
            limit = kswin_limit if (method, variant, kind) == ("KSWIN", "all features", "stationary") else None
            jobs_list += [(kind, key, method, variant, limit) for key in _STREAMS[kind]]
    with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("fork")) as pool:
        outcomes = list(pool.map(task, jobs_list))
    rows = []
    seconds_per_window = SPEC.hop / SPEC.sample_rate
    for method, variant in METHODS:
        mine = [(job, alarms, cpu) for job, alarms, cpu, _ in outcomes if job[2:4] == (method, variant)]
        row = {"method": method, "variant": variant, "cpu_s": round(sum(c for *_, c in mine), 1), "scenarios": {}}
        largest = [e for job, _, _, e in outcomes if job[2:4] == (method, variant) and job[0] == "stationary"]
        if largest[0] is not None:
            row["largest_healthy_effect"] = max(e["largest"] for e in largest)
        pre_change = 0
        for name in SCENARIOS:
            delays = []
            for job, alarms, _ in mine:
                if job[0] == "scenario" and job[1].startswith(name + "/"):
                    change = _STREAMS["scenario"][job[1]]["change"]
                    pre_change += sum(a < change for a in alarms)
                    after = [a - change for a in alarms if a >= change]
                    delays.append(after[0] if after else None)
            found = [d for d in delays if d is not None]
            row["scenarios"][name] = {
                "delays_windows": delays, "detected": len(found), "runs": len(delays),
                "median_delay_s": float(np.median(found)) * seconds_per_window if found else None}
        stationary = [(job, alarms) for job, alarms, _ in mine if job[0] == "stationary"]
        hours = sum(min(len(_STREAMS["stationary"][j[1]]["features"]), j[4] or 10**12) for j, _ in stationary) \
            * seconds_per_window / 3600.0
        row["stationary"] = {"false_alarms": sum(len(a) for _, a in stationary), "hours": round(hours, 3),
                             "per_hour": sum(len(a) for _, a in stationary) / hours}
        row["pre_change_alarms"] = pre_change
        row["pre_change_hours"] = round(sum(v["change"] for v in _STREAMS["scenario"].values())
                                        * seconds_per_window / 3600.0, 3)
        rows.append(row)
    import river

    return {
        "sweep": threshold_sweep(outcomes, seconds_per_window),
        "benchmark": "drift", "spec": SPEC.to_dict(), "report_windows": REPORT_WINDOWS,
        "seconds_per_window": seconds_per_window, "seeds": seeds, "machines": machines,
        "stationary_minutes": stationary_minutes,
        "kswin_stationary_minutes": kswin_minutes, "monitor_defaults": monitor_defaults(), "results": rows,
        "host": {"date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "cores": os.cpu_count(),
                 "python": platform.python_version(), "numpy": np.__version__, "river": river.__version__,
                 "wall_s": round(time.perf_counter() - wall, 1), "jobs": jobs},
    }


def k_of_n_alarms(overs: list[bool], k: int, n: int) -> list[int]:
    """Report indices at which a k-of-n decision over the ``overs`` votes rises (DriftMonitor's rule, offline)."""
    history, drift, alarms = [], False, []
    for i, over in enumerate(overs):
        history = (history + [over])[-n:]
        now = sum(history) >= k
        if now and not drift:
            alarms.append(i)
        drift = now
    return alarms


def threshold_sweep(outcomes: list, seconds_per_window: float) -> list[dict]:
    """False alarms and delays of DriftMonitor (healthy reference) at other effect thresholds and k-of-n rules,
    from the same reports: how the defaults were chosen."""
    mine = [(job, extra) for job, _, _, extra in outcomes if job[2:4] == ("DriftMonitor", "healthy reference")]
    # Alarms are counted on the healthy streams and before each scenario's change, so both spans make the hours.
    windows = sum(len(_STREAMS["stationary"][job[1]]["features"]) if job[0] == "stationary"
                  else _STREAMS["scenario"][job[1]]["change"] for job, _ in mine)
    hours = windows * seconds_per_window / 3600.0
    rows = []
    for t, threshold in enumerate(SWEEP_THRESHOLDS):
        for k, n in SWEEP_RULES:
            row = {"effect_threshold": threshold, "k": k, "n": n, "false_alarms": 0, "hours": round(hours, 3),
                   "median_delay_s": {}}
            for name in SCENARIOS:
                delays = []
                for job, extra in mine:
                    votes = [o[t] for o in extra["overs"]]
                    ends = [(i + 1) * REPORT_WINDOWS - 1 for i in k_of_n_alarms(votes, k, n)]
                    if job[0] == "stationary" and name == SCENARIOS[0]:
                        row["false_alarms"] += len(ends)
                    elif job[0] == "scenario" and job[1].startswith(name + "/"):
                        change = _STREAMS["scenario"][job[1]]["change"]
                        row["false_alarms"] += sum(e < change for e in ends)
                        after = [e - change for e in ends if e >= change]
                        delays.append(after[0] if after else None)
                found = [d for d in delays if d is not None]
                row["median_delay_s"][name] = (round(float(np.median(found)) * seconds_per_window, 1)
                                               if len(found) == len(delays) else None)
            rows.append(row)
    return rows


def monitor_defaults() -> dict:
    """DriftMonitor's default parameters, for the record."""
    parameters = inspect.signature(DriftMonitor).parameters.values()
    return {p.name: p.default for p in parameters if p.kind is p.KEYWORD_ONLY}


def _delay_cell(cell: dict, seconds_per_window: float) -> str:
    found = [d for d in cell["delays_windows"] if d is not None]
    if not found:
        return f"missed (0/{cell['runs']})"
    text = f"{np.median(found) * seconds_per_window:.1f} s"
    if len(found) > 1:
        text += f" ({min(found) * seconds_per_window:.1f}-{max(found) * seconds_per_window:.1f})"
    return text + ("" if len(found) == cell["runs"] else f", {len(found)}/{cell['runs']}")


def write_markdown(report: dict, path: Path) -> None:
    spw = report["seconds_per_window"]
    d = report["monitor_defaults"]
    lines = [
        "# Drift detection on the device",
        "",
        f"`.venv/bin/python benchmarks/drift.py` on {report['host']['date']} ({report['host']['wall_s']} s wall, "
        f"{report['host']['jobs']} processes; Python {report['host']['python']}, numpy {report['host']['numpy']}, "
        f"river {report['host']['river']}). Features: default FeatureSpec (24 features), 1024-sample windows every "
        f"{SPEC.hop} samples at 12 kHz, so one window = {spw * 1000:.1f} ms of stream.",
        "",
        "- Scenarios (`edgekit.data.scenarios`, motor preset, load 0): 60 s, change at 30 s, "
        f"seeds 0-{report['seeds'] - 1}. Each seed starts watching {GRID_STEP} windows later in the report grid. "
        "Delay = from the first window holding a post-change sample to the alarm; median (min-max) over seeds.",
        f"- False alarms: {report['machines']} healthy machines of {report['stationary_minutes']:g} min each "
        "(`synthesize(\"normal\")`, loads 0-3 in turn, seeds unseen in training), plus any alarm in the 30 s "
        f"before a scenario's change. Alarms closer than one report ({REPORT_WINDOWS} windows, "
        f"{REPORT_WINDOWS * spw:.1f} s) count once.",
        f"- DriftMonitor defaults: PSI >= {d['psi_threshold']}, W1 >= {d['effect_threshold']} reference std, "
        f"k={d['k']} of n={d['n']} reports of {report['report_windows']} windows, min_windows={d['min_windows']}. "
        f"Reference: 16 healthy recordings x 10 s over loads 0-3 (seed {REFERENCE_SEED}) or, *pooled*, 4 x 10 s of "
        "each of the 7 "
        "classes, like a bundle's pooled `features` reference (its per-class `by_class` references play the "
        "healthy one's part on the device).",
        f"- River {report['host']['river']} defaults (ADWIN delta=0.002, KSWIN alpha=0.005 window 100, PageHinkley "
        "threshold 50 delta 0.005) on the features in reference standard deviations: one detector per feature, "
        f"alarm when any fires, or one detector on `{SUMMARY_FEATURE}`; *strict*: ADWIN delta=1e-6, KSWIN "
        "alpha=1e-6, PageHinkley threshold 500, set beforehand, not tuned on these streams. KSWIN on all features "
        "is run on the first "
        f"{report['kswin_stationary_minutes']:g} min of each healthy stream (a scipy KS test per window and feature).",
        "",
        "| method | input | " + " | ".join(SCENARIOS) + " | false alarms / h (healthy) | alarms before change |",
        "|---|---|" + "---:|" * len(SCENARIOS) + "---:|---:|",
    ]
    for row in report["results"]:
        cells = [_delay_cell(row["scenarios"][s], spw) for s in SCENARIOS]
        st = row["stationary"]
        lines.append(f"| {row['method']} | {row['variant']} | " + " | ".join(cells) +
                     f" | {st['per_hour']:.1f} ({st['false_alarms']} in {st['hours']:.2f} h) | "
                     f"{row['pre_change_alarms']} in {row['pre_change_hours']:.2f} h |")
    lines += ["", "## How the defaults were chosen", "",
              "DriftMonitor (healthy reference) on the same reports, at other effect thresholds and k-of-n rules: "
              "false alarms on the healthy streams and before the changes, and the median delay (missed in any "
              "seed: -).", "",
              "| W1 threshold (std) | k of n | false alarms | " + " | ".join(SCENARIOS) + " |",
              "|---:|---:|---:|" + "---:|" * len(SCENARIOS)]
    for row in report["sweep"]:
        delays = [row["median_delay_s"][s] for s in SCENARIOS]
        lines.append(f"| {row['effect_threshold']} | {row['k']} of {row['n']} | {row['false_alarms']} in "
                     f"{row['hours']:.2f} h | "
                     + " | ".join("-" if v is None else f"{v:.1f} s" for v in delays) + " |")
    for row in report["results"]:
        if "largest_healthy_effect" in row:
            lines.append("")
            lines.append(f"{row['method']}, {row['variant']}: largest W1 / reference std in any report of a healthy "
                         f"stream {row['largest_healthy_effect']:.2f} (threshold {d['effect_threshold']}).")
    path.write_text("\n".join(lines) + "\n" + DISCUSSION_MARKER + "\n" + _discussion(path))


DISCUSSION_MARKER = "\n<!-- discussion: written by hand, kept by benchmarks/drift.py -->"


def _discussion(path: Path) -> str:
    """The hand-written discussion below the marker, kept when the table is regenerated."""
    if path.exists() and DISCUSSION_MARKER in path.read_text():
        return path.read_text().split(DISCUSSION_MARKER, 1)[1].lstrip("\n")
    return "## Discussion\n\n(to be written)\n"


def write_chart(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = report["results"]
    labels = [f"{r['method']}, {r['variant'].replace(' reference', ' ref.')}" for r in rows]
    fig, (left, right) = plt.subplots(1, 2, figsize=(14, 6), gridspec_kw={"width_ratios": [3, 1.4]})
    width = 0.8 / len(SCENARIOS)
    x = np.arange(len(rows))
    spw = report["seconds_per_window"]
    ceiling = 35.0  # seconds: a missed change is drawn at the top, hatched
    for i, name in enumerate(SCENARIOS):
        values, missed = [], []
        for r in rows:
            s = r["scenarios"][name]
            values.append(ceiling if s["median_delay_s"] is None else s["median_delay_s"])
            missed.append(s["median_delay_s"] is None)
        bars = left.bar(x + (i - 1.5) * width, values, width, label=name)
        for bar, m in zip(bars, missed):
            if m:
                bar.set_hatch("//")
                bar.set_alpha(0.35)
    left.set_xticks(x, labels, fontsize=8, rotation=35, ha="right")
    left.set_ylabel("median detection delay (s); hatched = missed")
    left.set_ylim(0, ceiling * 1.2)
    left.legend(fontsize=8, ncol=4, loc="upper center")
    left.set_title("Detection delay after the change")
    rates = [max(r["stationary"]["per_hour"], 0.1) for r in rows]
    right.barh(x, rates, color="gray")
    right.set_xscale("log")
    right.set_yticks(x, labels, fontsize=8)
    right.invert_yaxis()
    right.set_xlabel("per hour on healthy machines (0 drawn at 0.1)")
    right.set_title("False alarms")
    fig.suptitle(f"Drift detectors on the same feature streams ({spw * 1000:.1f} ms per window)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=4, help="Seeds per scenario.")
    parser.add_argument("--machines", type=int, default=8, help="Healthy machines for the false alarms.")
    parser.add_argument("--stationary-minutes", type=float, default=10.0, help="Length of each healthy stream.")
    parser.add_argument("--kswin-minutes", type=float, default=0.5,
                        help="Prefix of each healthy stream that KSWIN on all features sees (it is slow).")
    parser.add_argument("--jobs", type=int, default=2, help="Worker processes.")
    parser.add_argument("--report-only", action="store_true", help="Rewrite the Markdown and PNG from the JSON.")
    args = parser.parse_args(argv)
    RESULTS.mkdir(parents=True, exist_ok=True)
    if args.report_only:
        report = json.loads((RESULTS / "drift.json").read_text())
    else:
        report = run(args.seeds, args.machines, args.stationary_minutes, args.kswin_minutes, args.jobs)
        (RESULTS / "drift.json").write_text(json.dumps(report, indent=2) + "\n")
    write_markdown(report, HERE / "drift.md")
    write_chart(report, RESULTS / "drift.png")
    print((HERE / "drift.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
