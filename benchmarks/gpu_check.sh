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
# 5. KD's alpha on each of vs_baselines' picks and the tp50 recipe's network (issue 9), fp32 on the GPU: one chain
#    of seeds per method, the chains in parallel, within ALPHA_SECONDS; merged into OUTDIR/distill_alpha_gpu.json.
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
if [[ $steps == *5* ]]; then
echo "== 5. KD's alpha on each cut, chains of seeds in parallel (fp32)"
work=/tmp/alpha; mkdir -p $work
methods=${ALPHA_METHODS:-kd kd-a0.3 kd-a0.5 kd-a0.7 tp50-kd tp50-kd-a0.5 prune20-kd prune20-kd-a0.5 halfdrop3-kd halfdrop3-kd-a0.5}
for m in $methods; do
  # one process per seed: each writes its figures as it ends, so a chain cut short keeps its finished seeds
  timeout "${ALPHA_SECONDS:-400}" bash -c "for s in ${SEEDS:-0 1 2}; do OMP_NUM_THREADS=1 $py benchmarks/distill_methods.py \
    --device ${ALPHA_DEVICE:-cuda} --amp off --methods $m --seeds \$s --work $work/$m --out $work/$m.json \
    || echo rc=\$? seed \$s; done" > "$work/$m.log" 2>&1 &
done
wait
$py - "$work" "$out/distill_alpha_gpu.json" "$methods" <<'PY'
import json, sys
from pathlib import Path
from kdcompress.report.environment import environment
work, out, methods = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3].split()
merged = {"benchmark": "distill_methods: KD alpha per cut on a GPU (gpu_check.sh step 5)", "runs": {}, "summary": {},
          "logs": {}}
for m in methods:
    f = work / f"{m}.json"
    if f.exists():
        d = json.loads(f.read_text())
        merged["runs"][m], merged["summary"][m] = d["runs"][m], d["summary"][m]
        merged.setdefault("placement", d["placement"])
        merged.setdefault("other_students", d["other_students"]); merged.setdefault("student", d["student"])
    merged["logs"][m] = [l for l in (work / f"{m}.log").read_text().splitlines() if "Warning" not in l][-6:]
    s = merged["summary"].get(m)
    print(f"{m:18s}", f"{s['mean']:.2f} sd {s['stdev'] or 0:.2f} ({s['seeds']} seeds)" if s else "no finished seed")
out.write_text(json.dumps({**merged, **environment()}, indent=2))
PY
fi
