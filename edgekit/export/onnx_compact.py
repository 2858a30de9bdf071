"""Drop what a quantized ONNX file carries for nobody: the device artifact gets smaller, its numbers stay the same.

ONNX Runtime's quantizer writes, around ~35 k int8 weights, about 17 KiB that does not shrink with precision:
shape annotations (``value_info``, which every runtime re-infers at load), a name on every Q/DQ node, long
generated names (``features.3.weight_DequantizeLinear_Output``) each stored twice, and all-zero zero points of
the symmetric Conv weights and biases (ONNX defines an absent DequantizeLinear zero point as 0). Removing them
took the CWRU cnn1d's int8 file from 36% to under 30% of the fp32 one.

What stays: every fp32 activation name (the per-layer report and a user in Netron find a layer by them), the
names of the fp32 op nodes, the quantized weights under their fp32 parameter names (``features.3.weight``), and
every zero point that ONNX Runtime's integer-kernel fusion needs: it fuses a Gemm only with explicit weight zero
points, and a Q/DQ pair only when both nodes name the same zero point, so those are kept
(``tests/export/test_onnx_compact.py`` checks that the optimized graph keeps every QLinearConv/QGemm).
"""

from __future__ import annotations

QDQ_OPS = ("QuantizeLinear", "DequantizeLinear")
QUANTIZED_SUFFIX = "_quantized"  # what ORT's quantizer appends to a weight or bias it stores as integers


def compact_qdq(model):
    """Return ``model`` (modified in place) without annotations, redundant zero points and generated names."""
    from onnx import numpy_helper

    graph = model.graph
    del graph.value_info[:]
    initializers = {i.name: i for i in graph.initializer}
    conv_inputs = {name for node in graph.node if node.op_type == "Conv" for name in node.input}
    for node in graph.node:
        if node.op_type in QDQ_OPS:
            node.name = ""
        if (node.op_type == "DequantizeLinear" and len(node.input) == 3 and node.input[0] in initializers
                and node.output[0] in conv_inputs and node.input[2] in initializers
                and not numpy_helper.to_array(initializers[node.input[2]]).any()):
            del node.input[2]
    _drop_unused_initializers(graph)
    _rename_generated(graph)
    return model


def _drop_unused_initializers(graph) -> None:
    used = {name for node in graph.node for name in node.input}
    kept = [i for i in graph.initializer if i.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept)


def _rename_generated(graph) -> None:
    """Short ids for the quantizer's plumbing; fp32 names for what a user looks for."""
    initializers = {i.name for i in graph.initializer}
    produced_by_qdq = {out for node in graph.node if node.op_type in QDQ_OPS for out in node.output}
    kept = ({i.name for i in graph.input} | {o.name for o in graph.output}
            | {out for node in graph.node if node.op_type not in QDQ_OPS for out in node.output}
            | {name for node in graph.node if node.op_type not in QDQ_OPS for name in node.input
               if name in initializers})
    generated = ({name for node in graph.node if node.op_type in QDQ_OPS for name in node.input}
                 | produced_by_qdq) - kept
    renames, taken = {}, set(kept)
    # Integer weights first, under their fp32 parameter names where that name is free.
    for name in sorted(generated & initializers):
        plain = name[:-len(QUANTIZED_SUFFIX)] if name.endswith(QUANTIZED_SUFFIX) else ""
        if plain and plain not in taken:  # a generated name it may equal (a bias's DQ output) is renamed too
            renames[name] = plain
            taken.add(plain)
    counter = 0
    for name in sorted(generated - set(renames)):
        while f"q{counter}" in taken:
            counter += 1
        renames[name] = f"q{counter}"
        taken.add(renames[name])
    for init in graph.initializer:
        init.name = renames.get(init.name, init.name)
    for node in graph.node:
        node.input[:] = [renames.get(name, name) for name in node.input]
        node.output[:] = [renames.get(name, name) for name in node.output]
