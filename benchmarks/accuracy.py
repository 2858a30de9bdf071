"""Accuracy on the real CWRU bearing data, with leakage-free splits: the numbers in benchmarks/accuracy.md.

Runs the exact CLI commands it reports (import, train, evaluate, evaluate under 0 dB noise) for both models on
both protocols, and writes benchmarks/results/accuracy.json and benchmarks/accuracy.md.

    EDGEKIT_CWRU_DIR=../shared/data/cwru_12k_drive_end python benchmarks/accuracy.py [--work DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

HERE = Path(__file__).resolve().parent
EDGEKIT = [sys.executable, "-m", "edgekit.cli.main"]

PROTOCOLS = {
    "0hp-blocks": {
        "title": "10 classes at 0 HP, contiguous time blocks",
        "import": ["--loads", "0"],
        "train": ["--split", "blocks"],
        "rpm": "1797",
        "target": 0.99,
    },
    "cross-load": {
        "title": "9 fault classes, train on loads 0-1, test on loads 2-3",
        "import": ["--loads", "0,1,2,3", "--exclude", "normal"],
        "train": ["--split", "conditions", "--train-conditions", "load=0,1", "--test-conditions", "load=2,3"],
        "rpm": "1772",
        "target": 0.95,
    },
}
MODELS = {
    "cnn1d": ["--model", "cnn1d"],
    # The MLP sees the envelope features at the drive-end bearing's defect frequencies (6205, nominal speed).
    "mlp": ["--model", "mlp", "--bearing", "6205"],
}


def run(args: list[str], log: list[str]) -> tuple[str, float]:
    shown = "edgekit " + " ".join(shlex.quote(a) for a in args)
    log.append(shown)
    print(f"$ {shown}", flush=True)
    started = time.perf_counter()
    result = subprocess.run(EDGEKIT + args, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"{shown} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default="bench-work/accuracy", help="Scratch folder for datasets and runs.")
    parser.add_argument("--cwru", default=os.environ.get("EDGEKIT_CWRU_DIR", "../shared/data/cwru_12k_drive_end"))
    parser.add_argument("--report-only", action="store_true",
                        help="Rewrite accuracy.md from results/accuracy.json without training.")
    args = parser.parse_args()
    if args.report_only:
        saved = json.loads((HERE / "results" / "accuracy.json").read_text())
        write_markdown(saved["results"], saved["commands"], saved["host"])
        return
    work = Path(args.work)
    commands: list[str] = []
    results = []
    for name, protocol in PROTOCOLS.items():
        data = work / f"cwru-{name}"
        run(["data", "import", "cwru", args.cwru, "--out", str(data), "--overwrite", *protocol["import"]], commands)
        for model, model_args in MODELS.items():
            out = work / f"{name}-{model}"
            if out.exists():
                subprocess.run(["rm", "-rf", str(out)], check=True)
            extra = ["--rpm", protocol["rpm"]] if "--bearing" in model_args else []
            trained, seconds = run(["train", str(data), *model_args, *extra, *protocol["train"], "--seed", "0",
                                    "--out", str(out), "--format", "json"], commands)
            clean = json.loads(trained)
            noisy_out, _ = run(["evaluate", str(out), "--dataset", str(data), "--noise-snr", "0", "--format", "json"],
                               commands)
            noisy = json.loads(noisy_out)
            info = json.loads((out / "model.json").read_text())
            results.append({
                "protocol": name, "model": model, "accuracy": clean["accuracy"], "macro_f1": clean["macro_f1"],
                "macro_auroc": clean["macro_auroc"], "accuracy_snr0db": noisy["accuracy"],
                "macro_f1_snr0db": noisy["macro_f1"], "target": protocol["target"],
                "train_seconds": round(seconds, 1), "epochs": clean["epochs_run"], "test_windows": clean["n"],
                "parameters": info["n_parameters"], "macs_per_window": info["macs_per_window"],
                "per_class_recall": {c: v["recall"] for c, v in clean["per_class"].items()},
            })
    # Show the data folder the way a reader sets it, not as this machine's path.
    commands = [c.replace(shlex.quote(args.cwru), '"$EDGEKIT_CWRU_DIR"') for c in commands]
    host = {"machine": platform.machine(), "cpus": os.cpu_count(), "python": platform.python_version(),
            "date": date.today().isoformat()}
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "accuracy.json").write_text(json.dumps({"host": host, "results": results,
                                                                "commands": commands}, indent=2) + "\n")
    write_markdown(results, commands, host)


def write_markdown(results: list[dict], commands: list[str], host: dict) -> None:
    lines = [
        "# Accuracy on CWRU bearing data (leakage-free splits)", "",
        f"Measured {host['date']} on {host['cpus']} CPU cores ({host['machine']}), Python {host['python']}, by "
        "`python benchmarks/accuracy.py` (raw numbers in `results/accuracy.json`). Test windows never share "
        "samples with training windows: `blocks` holds out the last 20% of every recording behind a one-window "
        "guard gap; `cross-load` tests on loads the model never saw. SNR 0 dB: white noise of the window's own "
        "power added to every test window.", "",
        "| protocol | model | params | MACs/window | accuracy | macro-F1 | accuracy @ SNR 0 dB | target | met | train s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        met = "yes" if r["accuracy"] >= r["target"] else "**no**"
        lines.append(f"| {PROTOCOLS[r['protocol']]['title']} | {r['model']} | {r['parameters']:,} | "
                     f"{r['macs_per_window']:,} | {r['accuracy']:.2%} | {r['macro_f1']:.4f} | "
                     f"{r['accuracy_snr0db']:.2%} | {r['target']:.0%} | {met} | {r['train_seconds']:.0f} |")
    lines += ["", "Per-class recall (clean):", ""]
    for r in results:
        recalls = ", ".join(f"{c} {v:.2f}" for c, v in r["per_class_recall"].items())
        lines.append(f"- {r['protocol']} / {r['model']}: {recalls}")
    lines += ["", "## Commands", "", "```sh", *commands, "```", ""]
    notes = HERE / "accuracy_notes.md"
    if notes.exists():
        lines += [notes.read_text()]
    (HERE / "accuracy.md").write_text("\n".join(lines))


if __name__ == "__main__":
    main()
