"""report.md and report.json of a bundle: one row per artifact, plus the per-layer int8 table."""

from __future__ import annotations

import json

from edgekit.export.base import Artifact


def _fmt(value, spec: str, empty: str = "n/a") -> str:
    return empty if value is None else format(value, spec)


def report_json(target: str, run_info: dict, artifacts: list[Artifact], layers: list[dict],
                tflite_layers: list[dict] = ()) -> dict:
    rows = []
    for a in artifacts:
        v = a.validation
        rows.append({
            "file": a.file, "target_format": a.target_format, "format": a.format, "precision": a.precision,
            "built": a.built, "size_bytes": v.get("size_bytes"), "accuracy": v.get("accuracy"),
            "agreement": v.get("agreement"), "max_abs_error": v.get("max_abs_error"),
            "latency_ms": v.get("latency_ms", {}).get("p50"), "latency_p99_ms": v.get("latency_ms", {}).get("p99"),
            "reference": a.reference, "peak_activation_bytes": v.get("peak_activation_bytes"),
            "ram_bytes": v.get("ram_bytes"), "notes": a.notes,
        })
    return {"target": target, "run": run_info, "artifacts": rows, "int8_layers": layers,
            "tflite_int8_layers": list(tflite_layers)}


def report_markdown(report: dict) -> str:
    run = report["run"]
    lines = [
        f"# Export report: {run['architecture']} for {report['target']}", "",
        f"Run `{run['path']}` ({run['n_parameters']:,} parameters, {run['macs_per_window']:,} MACs per window), "
        f"validated on {run['holdout_windows']} held-out windows. Latency: one thread, batch 1, on the export host "
        f"({run['host']}), not on the target.", "",
        "| artifact | format | precision | size | accuracy | agreement | max abs error | latency p50 | vs | built |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for a in report["artifacts"]:
        size = "n/a" if a["size_bytes"] is None else f"{a['size_bytes'] / 1024:.1f} KiB"
        lines.append(
            f"| {a['file']} | {a['target_format']} | {a['precision']} | {size} | {_fmt(a['accuracy'], '.2%')} | "
            f"{_fmt(a['agreement'], '.2%')} | {_fmt(a['max_abs_error'], '.2e')} | "
            f"{_fmt(a['latency_ms'], '.3f')} ms | {a['reference']} | {'yes' if a['built'] else '**no**'} |")
    notes = [a for a in report["artifacts"] if a["notes"]]
    if notes:
        lines += [""] + [f"- `{a['file']}` ({a['target_format']}): {a['notes']}" for a in notes]
    lines += _layer_table(
        "int8 ONNX, layer by layer", report["int8_layers"],
        "Each layer's output in the quantized graph against the fp32 graph (simulated quantization, same inputs). "
        "A jump in relative error marks the layer that loses precision.")
    lines += _layer_table(
        "Full-int8 TFLite, layer by layer", report.get("tflite_int8_layers", []),
        "Each op's dequantized int8 output (LiteRT builtin kernels) against the float torch module that produced "
        "it, same inputs. A jump in relative error marks the layer that loses precision.")
    return "\n".join(lines) + "\n"


def _layer_table(title: str, layers: list[dict], intro: str) -> list[str]:
    if not layers:
        return []
    lines = ["", f"## {title}", "", intro, "",
             "| # | op | tensor | relative error | max abs error | cosine |", "|---|---|---|---|---|---|"]
    for i, layer in enumerate(layers):
        tensor = f"`{layer['tensor']}`" + (f" ({layer['module']})" if "module" in layer else "")
        lines.append(f"| {i} | {layer['op']} | {tensor} | {layer['relative_error']:.4f} | "
                     f"{layer['max_abs_error']:.3g} | {layer['cosine']:.5f} |")
    return lines


def write_reports(folder, report: dict) -> None:
    (folder / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    (folder / "report.md").write_text(report_markdown(report))
