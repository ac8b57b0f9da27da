#!/usr/bin/env bash
# The checks only a CUDA GPU can run, in one go on a GPU machine (CI has none):
#   bash benchmarks/gpu_check.sh OUTDIR [RUN]
# 1. the GPU tests (`pytest -m gpu`: AOTInductor CUDA fp32/fp16 parity and timing, a GPU profile end to end);
# 2. benchmarks/backends.py on RUN (default runs/demo): every artifact of the teacher and RUN's student on every
#    backend present, CUDA included (eager, AOTInductor fp32/fp16), each with its parity and test accuracy;
# 3. `kdcompress shrink` with the `edge` profile on Fashion-MNIST, shortened (search 30 evaluations, 1 epoch):
#    the real user path on a GPU without TensorRT.
# 4. distillation on the GPU (benchmarks/distill_methods.py, the ci student from the shipped teacher): one epoch of
#    each way of feeding the teacher, and KD seed 0 over the ci schedule, in fp16 (autocast + scaler) and in fp32.
# STEPS=13 runs steps 1 and 3 only. Each step has its own time limit and writes its log to OUTDIR as it goes, so a cut-short run still reports.
# Extra packages the machine lacks can come as wheels in .whl/ (see ../.library/device/README.md), the data in
# $KDCOMPRESS_FASHION_MNIST.
set -u
out=${1:?usage: benchmarks/gpu_check.sh OUTDIR [RUN]}
run=${2:-runs/demo}
mkdir -p "$out"
export PYTHONUNBUFFERED=1 PYTHONFAULTHANDLER=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
py=${PYTHON:-python3}
steps=${STEPS:-123}
{
  date -u; nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv; nproc
  $py -c "import torch, onnx, onnxruntime; print('torch', torch.__version__, 'cuda', torch.version.cuda,
'onnx', onnx.__version__, 'onnxruntime', onnxruntime.__version__, onnxruntime.get_available_providers())"
  $py -m kdcompress.cli doctor
} > "$out/env.txt" 2>&1
if [[ $steps == *1* ]]; then
echo "== 1. pytest -m gpu"
timeout 190 $py -m pytest -q -p no:cacheprovider -m gpu -rs tests/ 2>&1 | tee "$out/pytest_gpu.log" | tail -5
fi
if [[ $steps == *2* ]]; then
echo "== 2. benchmarks/backends.py --run $run"
timeout 200 $py benchmarks/backends.py --run "$run" --iters 100 --repeats 3 --out "$out/backends_gpu.json" 2>&1 | tee "$out/backends.log" \
  | tail -30
fi
if [[ $steps == *3* ]]; then
echo "== 3. shrink --profile edge (shortened)"
timeout 150 $py -m kdcompress.cli shrink teachers/fmnist_resnet.pt2 --profile edge --out /tmp/edge \
  --set search.iterations=30 --set distill.epochs=1 --set search.top_k=1 --json \
  > "$out/shrink_edge.json" 2> "$out/shrink_edge.log"
echo "rc=$?" >> "$out/shrink_edge.log"
tail -25 "$out/shrink_edge.log"
cp /tmp/edge/report.md "$out/shrink_edge_report.md" 2>/dev/null || true
fi
if [[ $steps == *4* ]]; then
echo "== 4. distillation on the GPU"
for amp in fp16 off; do
  for what in "--epoch-seconds" "--methods kd --seeds 0"; do
    # shellcheck disable=SC2086  # $what is two words on purpose
    timeout 170 $py benchmarks/distill_methods.py --device cuda --amp $amp $what --work "/tmp/distill-$amp" \
      --out "$out/distill_gpu_$amp.json" 2>&1 | grep -v Warning | tee -a "$out/distill_gpu.log" | tail -7
    echo "rc=${PIPESTATUS[0]} ($amp $what)" | tee -a "$out/distill_gpu.log"  # 124: cut short by the time limit
  done
done
fi
