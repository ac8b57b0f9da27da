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


def to_fp16(src: Path, dst: Path) -> dict:
    """Convert ``src`` to fp16 into ``dst`` atomically; return the record stored beside the artifact."""
    import onnx
    from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST, convert_float_to_float16

    model = onnx.load(str(src))
    blocked = sorted(set(DEFAULT_OP_BLOCK_LIST) | set(FP32_OPS))
    half = convert_float_to_float16(model, keep_io_types=True, op_block_list=blocked, disable_shape_infer=False)
    with atomic_path(dst) as tmp:
        onnx.save(half, str(tmp))
        onnx.checker.check_model(str(tmp))
    kept = sorted({n.op_type for n in model.graph.node} & set(blocked))
    return {"converter": "onnxruntime.transformers.float16", "keep_io_types": True, "fp32_ops": kept}
