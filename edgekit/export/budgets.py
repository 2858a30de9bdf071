"""Does the model fit the board? File size against flash, peak activation memory against RAM."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgekit.errors import require_module
from edgekit.export.base import Artifact, BudgetError
from edgekit.targets import TargetProfile

BYTES_PER_ELEMENT = {"fp32": 4, "fp16": 2, "int8": 1}


def activation_memory(onnx_path: Path) -> dict:
    """Peak bytes of live float32 activations when the graph runs node by node, from its inferred tensor shapes.

    A tensor is live from the node that makes it to the last node that reads it; weights are not activations
    (they sit in flash on an MCU, and are counted by the file size). The result is in elements so it can be
    scaled to the precision an artifact computes in.
    """
    onnx = require_module("onnx", "export")
    model = onnx.shape_inference.infer_shapes(onnx.load(str(onnx_path)))
    graph = model.graph
    sizes = {}
    for info in list(graph.value_info) + list(graph.input) + list(graph.output):
        dims = [d.dim_value if d.dim_value > 0 else 1 for d in info.type.tensor_type.shape.dim]
        sizes[info.name] = int(np.prod(dims)) if dims else 1
    weights = {init.name for init in graph.initializer}
    last_use = {}
    for i, node in enumerate(graph.node):
        for name in node.input:
            last_use[name] = i
    graph_outputs = {o.name for o in graph.output}
    live = {i.name: sizes.get(i.name, 0) for i in graph.input if i.name not in weights}
    peak = sum(live.values())
    for i, node in enumerate(graph.node):
        for name in node.output:
            live[name] = sizes.get(name, 0)
        peak = max(peak, sum(live.values()))
        for name in list(live):
            if last_use.get(name, -1) <= i and name not in graph_outputs:
                del live[name]
    weight_elements = sum(int(np.prod(init.dims)) for init in graph.initializer)
    return {"peak_activation_elements": int(peak), "weight_elements": int(weight_elements)}


def check_budget(artifact: Artifact, size_bytes: int, memory: dict, profile: TargetProfile) -> dict:
    """Record the numbers on the artifact and raise BudgetError when it does not fit."""
    activation_bytes = memory["peak_activation_elements"] * BYTES_PER_ELEMENT.get(artifact.precision, 4)
    result = {"size_bytes": size_bytes, "flash_budget_bytes": profile.flash_bytes,
              "peak_activation_bytes": activation_bytes, "ram_budget_bytes": profile.ram_bytes}
    if size_bytes > profile.flash_bytes:
        raise BudgetError(f"{artifact.file} is {size_bytes / 1024:.1f} KiB, {(size_bytes - profile.flash_bytes) / 1024:.1f} "
                          f"KiB over {profile.name}'s flash budget of {profile.flash_bytes / 1024:.0f} KiB; "
                          "use a smaller model (e.g. --model mlp) or a bigger board")
    in_ram = activation_bytes + (size_bytes if profile.budget.weights_in_ram else 0)
    result["ram_bytes"] = in_ram
    if in_ram > profile.ram_bytes:
        raise BudgetError(f"{artifact.file} needs {in_ram / 1024:.1f} KiB of RAM at peak, "
                          f"{(in_ram - profile.ram_bytes) / 1024:.1f} KiB over {profile.name}'s RAM budget of "
                          f"{profile.ram_bytes / 1024:.0f} KiB; use a smaller model or shorter windows")
    return result
