"""fp16 ONNX from the float ONNX, with onnxruntime's converter (``onnxruntime.transformers.float16``, the
maintained successor of onnxconverter-common's).

The model keeps float32 inputs and outputs (``keep_io_types``), so a caller feeds it what it fed the fp32 model;
ops that lose too much in half precision stay in float32 (the converter's default block list plus ours).
This is the ONNX a strongly typed TensorRT engine is built from for fp16 (DESIGN §6).
"""

from __future__ import annotations

from pathlib import Path

from kdcompress.run import atomic_path

# Reductions whose sums overflow or lose digits in fp16; Softmax/LogSoftmax at the head should see float32 logits.
FP32_OPS = ["ReduceMean", "ReduceSum", "ReduceL2", "Softmax", "LogSoftmax"]


def _sort_nodes(graph) -> None:
    """Topologically sort ``graph``'s nodes in place: the converter appends the input Casts at the end of the
    node list, which onnxruntime tolerates but the ONNX checker (rightly) does not."""
    known = {i.name for i in graph.input} | {i.name for i in graph.initializer} | {""}
    pending, ordered = list(graph.node), []
    while pending:
        ready = [n for n in pending if all(i in known for i in n.input)]
        if not ready:
            raise ValueError("fp16 conversion left a cycle or a dangling input in the graph")
        for n in ready:
            ordered.append(n)
            known.update(n.output)
        done = {id(n) for n in ready}
        pending = [n for n in pending if id(n) not in done]
    del graph.node[:]
    graph.node.extend(ordered)


def to_fp16(src: Path, dst: Path) -> dict:
    """Convert ``src`` to fp16 into ``dst`` atomically; return the record stored beside the artifact."""
    import onnx
    from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST, convert_float_to_float16

    model = onnx.load(str(src))
    blocked = sorted(set(DEFAULT_OP_BLOCK_LIST) | set(FP32_OPS))
    half = convert_float_to_float16(model, keep_io_types=True, op_block_list=blocked, disable_shape_infer=False)
    _sort_nodes(half.graph)
    with atomic_path(dst) as tmp:
        onnx.save(half, str(tmp))
        onnx.checker.check_model(str(tmp))
    kept = sorted({n.op_type for n in model.graph.node} & set(blocked))
    return {"converter": "onnxruntime.transformers.float16", "keep_io_types": True, "fp32_ops": kept}
