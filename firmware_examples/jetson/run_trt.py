"""Run a Jetson bundle's TensorRT artifact through ONNX Runtime's TensorRT / CUDA execution providers, on windows
from an edgekit source, and compare it with the fp32 model on the CPU (what `edgekit run` itself uses).

    python run_trt.py BUNDLE [--precision int8|fp16] [--source synth:inner_race:duration=5] [--require-gpu]

`edgekit run` runs onnxruntime with the CPU provider only; this example is the GPU path, kept outside the runtime
until it has been verified on a Jetson. It needs an onnxruntime build with the TensorRT provider (NVIDIA's
onnxruntime-gpu wheels for JetPack; PyPI's aarch64 onnxruntime is CPU only). Without one it says so and runs on
the CPU, which checks everything but the GPU itself. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from edgekit.bundle import open_bundle
from edgekit.features import FeatureSpec, extract
from edgekit.runtime.model import DeployedModel
from edgekit.runtime.sources import open_source
from edgekit.runtime.windowing import WindowBuffer

# The manifest's options also hold edgekit's own keys (engine_file), which are no ONNX Runtime provider options.
_TRT_OPTION_PREFIX = "trt_"


def windows_from(source: str, spec: FeatureSpec, limit: int) -> np.ndarray:
    buffer, parts, total = WindowBuffer(spec.window, spec.hop), [], 0
    stream = open_source(source)
    try:
        for chunk in stream.chunks():
            parts.append(buffer.push(chunk.samples))
            total += len(parts[-1])
            if total >= limit:
                break
    finally:
        stream.close()
    if not total:
        sys.exit(f"{source} gave no complete window of {spec.window} samples")
    return np.concatenate(parts)[:limit]


def providers_for(artifact: dict, cache: Path) -> list:
    import onnxruntime as ort

    options = {k: v for k, v in artifact.get("extra", {}).get("ort_tensorrt_provider_options", {}).items()
               if k.startswith(_TRT_OPTION_PREFIX)}
    # Building an engine takes minutes on a Jetson; the cache makes it a one-time cost per device.
    options.update(trt_engine_cache_enable=True, trt_engine_cache_path=str(cache),
                   trt_timing_cache_enable=True, trt_timing_cache_path=str(cache))
    wanted = [("TensorrtExecutionProvider", options), ("CUDAExecutionProvider", {}), ("CPUExecutionProvider", {})]
    available = set(ort.get_available_providers())
    return [p for p in wanted if p[0] in available]


def run_session(session, inputs: np.ndarray) -> tuple[np.ndarray, float]:
    """Logits for ``inputs``, window by window as the device streams them; and the median latency in ms."""
    name = session.get_inputs()[0].name
    dtype = np.float16 if "float16" in session.get_inputs()[0].type else np.float32
    outputs, latencies = [], []
    for row in inputs:
        start = time.perf_counter()
        outputs.append(session.run(None, {name: row[None].astype(dtype)})[0])
        latencies.append((time.perf_counter() - start) * 1e3)
    return np.concatenate(outputs).astype(np.float32), float(np.median(latencies[1:] or latencies))


def main() -> None:
    import onnxruntime as ort

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle")
    parser.add_argument("--precision", choices=["int8", "fp16"], default="int8")
    parser.add_argument("--source", default="synth:inner_race:duration=5")
    parser.add_argument("--windows", type=int, default=64)
    parser.add_argument("--cache", default="trt-cache", help="TensorRT engine and timing cache folder")
    parser.add_argument("--require-gpu", action="store_true", help="fail unless TensorRT or CUDA runs the model")
    args = parser.parse_args()

    with open_bundle(args.bundle, trust="hashes") as bundle:
        manifest = bundle.manifest
        wanted = f"tensorrt_{args.precision}"
        artifact = next((a for a in manifest["artifacts"] if a.get("target_format") == wanted), None)
        if artifact is None:
            sys.exit(f"the bundle has no {wanted} artifact; export it for a TensorRT target (jetson-orin-nano)")
        spec = FeatureSpec.from_dict(manifest["feature_spec"])
        windows = windows_from(args.source, spec, args.windows)
        features = extract(windows, spec)
        fp32 = next(a for a in manifest["artifacts"] if a.get("target_format") == "onnx_fp32")
        reference = DeployedModel(bundle, engine="onnxruntime", artifact_file=fp32["file"])
        inputs = reference.inputs(windows, features)  # the same normalization the runtime applies
        expected = reference.engine.run(inputs)

        cache = Path(args.cache)
        cache.mkdir(parents=True, exist_ok=True)
        session = ort.InferenceSession(str(bundle.file_path(artifact["extra"]["onnx"])),
                                       providers=providers_for(artifact, cache))
        used = session.get_providers()
        if args.require_gpu and used[0] == "CPUExecutionProvider":
            sys.exit(f"neither TensorRT nor CUDA is available to onnxruntime {ort.__version__} "
                     f"(available: {', '.join(ort.get_available_providers())}); install NVIDIA's onnxruntime-gpu "
                     "for this JetPack")
        logits, latency_ms = run_session(session, inputs)

    print(json.dumps({
        "artifact": artifact["extra"]["onnx"], "precision": args.precision, "providers": used,
        "onnxruntime": ort.__version__, "windows": len(windows),
        "agreement_with_fp32_cpu": float(np.mean(logits.argmax(1) == expected.argmax(1))),
        "max_abs_logit_diff": float(np.max(np.abs(logits - expected))),
        "median_latency_ms": round(latency_ms, 3),
        "classes": [manifest["classes"][i] for i in np.bincount(logits.argmax(1)).nonzero()[0]],
    }, indent=2))


if __name__ == "__main__":
    main()
