#!/bin/sh
# Build a TensorRT engine on the Jetson from a bundle's ONNX: the explicit-QDQ graph for int8 (TensorRT takes its
# scales from the Q/DQ nodes, no calibration), the dynamic-batch fp32 graph for fp16.
#
#   sh build_engine.sh BUNDLE [int8|fp16] [OUT_DIR]      OUT_DIR defaults to BUNDLE/../engines
#
# The engine is written OUTSIDE the bundle: the bundle's manifest pins every file in its folder, so a file added
# there makes `edgekit bundle verify` (and `edgekit run`) refuse the bundle. An engine only runs on the GPU and
# TensorRT version it was built with: build it on the device, again after every JetPack upgrade.
set -eu
bundle=${1:?usage: sh build_engine.sh BUNDLE [int8|fp16] [OUT_DIR]}
precision=${2:-int8}
out=${3:-$(dirname "$bundle")/engines}
case $precision in
  int8) flags="--int8 --fp16" ;;  # fp16 too: layers TensorRT keeps out of int8 run in fp16 rather than fp32
  fp16) flags="--fp16" ;;
  *) echo "precision must be int8 or fp16, not $precision" >&2; exit 2 ;;
esac
# JetPack installs trtexec outside PATH.
trtexec=${TRTEXEC:-$(command -v trtexec || echo /usr/src/tensorrt/bin/trtexec)}
[ -x "$trtexec" ] || { echo "trtexec not found (set TRTEXEC=...); it comes with JetPack's TensorRT" >&2; exit 3; }

# Which ONNX file and which input shapes, from the manifest (python3 is part of every JetPack).
plan=$(python3 - "$bundle/manifest.json" "$precision" <<'PY'
import json, sys
manifest = json.load(open(sys.argv[1]))
wanted = f"tensorrt_{sys.argv[2]}"
artifact = next((a for a in manifest["artifacts"] if a.get("target_format") == wanted), None)
if artifact is None:
    sys.exit(f"the bundle has no {wanted} artifact; export it for a TensorRT target (e.g. --target jetson-orin-nano)")
onnx = artifact["extra"]["onnx"]
dynamic = any(a.get("extra", {}).get("dynamic_batch_file") == onnx for a in manifest["artifacts"])
dims = "x".join(str(d) for d in manifest["model"]["input"]["shape"][1:])
# Batch 1 for streaming, up to 64 for backfills; a static-shape graph must not be given a range.
shapes = f"--minShapes=input:1x{dims} --optShapes=input:8x{dims} --maxShapes=input:64x{dims}" if dynamic else ""
print(onnx, shapes)
PY
)
# shellcheck disable=SC2086
set -- $plan
onnx=$1
shift

mkdir -p "$out"
# shellcheck disable=SC2086
"$trtexec" --onnx="$bundle/$onnx" $flags "$@" --memPoolSize=workspace:1024 \
    --timingCacheFile="$out/timing.cache" --saveEngine="$out/model_$precision.plan"
echo "engine: $out/model_$precision.plan"
