"""``edgekit export RUN --target NAME``: every artifact the profile asks for, verified, in one bundle."""

from __future__ import annotations

import dataclasses
import platform
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np

from edgekit import __version__
from edgekit.bundle_writer import write_bundle
from edgekit.export.base import Artifact, ExportContext, ExportError, get_exporter, registered
from edgekit.export.budgets import activation_memory, check_budget
from edgekit.export.layers import layer_report
from edgekit.export.tflite_layers import tflite_layer_report
from edgekit.export.report import report_json, write_reports
from edgekit.bench.measure import latency_ms
from edgekit.export.validate import check_thresholds, compare
from edgekit.runtime.engines import open_engine
from edgekit.signing import as_private_key
from edgekit.targets import FORMATS, get_profile


def graph_inputs(run, arrays: dict[str, np.ndarray]) -> np.ndarray:
    """What the exported graph takes: raw windows, or features after the device-side normalization."""
    from edgekit.export.torch_prep import input_normalization
    from edgekit.runtime.model import normalize_inputs

    if run.input_kind == "window":
        return arrays["windows"][:, None, :].astype(np.float32)
    return normalize_inputs(arrays["features"].astype(np.float32), input_normalization(run.model))


def _torch_logits(model, inputs: np.ndarray) -> np.ndarray:
    import torch

    with torch.no_grad():
        return model(torch.from_numpy(inputs)).numpy()


def export_run(run_dir: str | Path, target: str, out: str | Path, *, targets_dir: str | Path | None = None,
               archive: bool = False, sign_key=None, progress: Callable[[str], None] | None = None) -> dict:
    """Export, validate and bundle; returns the report (also written as report.json/.md into the bundle)."""
    from edgekit.export.torch_prep import deployable_model
    from edgekit.train.run import load_run

    say = progress or (lambda message: None)
    run = load_run(run_dir)
    profile = get_profile(target, targets_dir)
    unknown = [f for f in profile.formats if f not in registered()]
    if unknown:
        raise ExportError(f"{profile.name} asks for {', '.join(unknown)}, which this edgekit cannot produce yet; "
                          f"it produces {', '.join(sorted(registered()))}")
    signing_key = as_private_key(sign_key) if sign_key is not None else None  # a bad key fails before the work
    holdout = run.holdout()
    with tempfile.TemporaryDirectory(prefix="edgekit-export-") as tmp:
        ctx = ExportContext(run=run, profile=profile, out_dir=Path(tmp),
                            calibration_inputs=graph_inputs(run, run.calibration()),
                            holdout_inputs=graph_inputs(run, holdout), holdout_labels=holdout["labels"])
        # Held-out logits by reference name; each checked artifact adds its own, so the fp32 ONNX (always first)
        # is run once and then serves as the reference of the others.
        deployed = deployable_model(run.model)
        logits = {"torch": _torch_logits(deployed, ctx.holdout_inputs)}
        # FORMATS is in dependency order (int8 ONNX before the TensorRT int8 recipe built from it).
        formats = ["onnx_fp32"] + [f for f in FORMATS if f in profile.formats and f != "onnx_fp32"]
        for fmt in formats:
            say(f"exporting {fmt}")
            artifact = get_exporter(fmt).export(ctx)
            ctx.artifacts[fmt] = artifact
            if fmt == "onnx_fp32":
                memory = activation_memory(ctx.path(artifact.file))
            _verify(ctx, artifact, logits, memory)
        say("per-layer int8 report")
        layers = (layer_report(ctx.path("model_fp32.onnx"), ctx.path("model_int8.onnx"), ctx.holdout_inputs)
                  if "onnx_int8" in ctx.artifacts else [])
        tflite = ctx.artifacts.get("tflite_int8")
        tflite_layers = (tflite_layer_report(deployed, ctx.path(tflite.file), ctx.holdout_inputs)
                         if tflite is not None else [])
        artifacts = list(ctx.artifacts.values())
        report = report_json(profile.name, {
            "path": str(Path(run_dir)), "architecture": run.model_info["architecture"],
            "n_parameters": run.model_info["n_parameters"], "macs_per_window": run.model_info["macs_per_window"],
            "holdout_windows": int(len(ctx.holdout_labels)), "host": f"{platform.machine()}, {platform.processor() or 'cpu'}",
        }, artifacts, layers, tflite_layers)
        write_reports(ctx.out_dir, report)
        files = {a.file: ctx.path(a.file) for a in artifacts}
        for a in artifacts:
            for extra_file in ("dynamic_batch_file", "build_script"):
                if extra_file in a.extra:
                    files[a.extra[extra_file]] = ctx.path(a.extra[extra_file])
        files.update({"report.md": ctx.path("report.md"), "report.json": ctx.path("report.json")})
        manifest = _manifest(run, profile, artifacts)
        say("writing bundle")
        written = write_bundle(out, files, manifest, key=signing_key, archive=archive)
    report["bundle"] = str(written)
    return report


def _verify(ctx: ExportContext, artifact: Artifact, logits: dict[str, np.ndarray], memory: dict) -> None:
    """Numbers against the reference, thresholds from the profile, budgets, host latency."""
    size = ctx.path(artifact.file).stat().st_size
    checked, engine_name = artifact.file, artifact.engine
    if artifact.engine == "tensorrt":
        # A TensorRT engine runs only on a GPU with TensorRT: the numbers are its ONNX source's, run on this CPU
        # (its notes say so).
        checked, engine_name = artifact.extra["onnx"], "onnxruntime"
    engine = open_engine(ctx.path(checked), engine_name)
    outputs = engine.run(ctx.holdout_inputs)
    result = compare(outputs, logits[artifact.reference], ctx.holdout_labels)
    logits[artifact.target_format] = outputs
    check_thresholds(artifact, result, ctx.profile)
    # A fixed count of single-window calls, not a time budget: an export takes as long on a busy host.
    result["latency_ms"] = latency_ms(engine.run, ctx.holdout_inputs[:1], budget_s=0.0, min_runs=200)
    deployed = artifact.target_format in ctx.profile.formats
    budget = (check_budget(artifact, size, memory, ctx.profile) if deployed
              else {"size_bytes": size, "note": "reference artifact, not deployed: budgets not applied"})
    artifact.validation = {**result, **budget}


def _manifest(run, profile, artifacts: list[Artifact]) -> dict:
    from edgekit.export.torch_prep import input_normalization

    entries = []
    for a in artifacts:
        entry = {k: v for k, v in dataclasses.asdict(a).items() if v not in (None, "", {})}
        entry["deployed"] = a.target_format in profile.formats
        entries.append(entry)
    return {
        "edgekit_version": __version__,
        "target": profile.to_dict(),
        "artifacts": entries,
        "classes": run.classes,
        "model": {**{k: run.model_info[k] for k in ("architecture", "input", "n_parameters", "macs_per_window")},
                  "input_normalization": input_normalization(run.model)},
        "feature_spec": run.spec.to_dict(),
        "anomaly": run.anomaly.to_dict(),
        "reference_stats": run.reference_stats,
        "run": {"dataset": run.config["dataset"], "split": run.config["split"]},
    }

