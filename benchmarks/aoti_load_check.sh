#!/usr/bin/env bash
# Does loading an AOTInductor CUDA package work on this GPU machine? Six ways, each in its own process (rc 139 =
# SIGSEGV): kdcompress's to_aoti and torch's own export + aoti_compile_and_package, loaded in the compiling
# process, in a fresh one, after a CUDA context, with one compile thread.
#   bash benchmarks/aoti_load_check.sh OUTDIR      (on a GPU machine; log in OUTDIR/aoti_diag.log)
set -u
out=$1
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD:${PYTHONPATH:-}"
mk='
import sys, torch
from pathlib import Path
from kdcompress.export.aoti import to_aoti
torch.manual_seed(0)
m = torch.nn.Sequential(torch.nn.Conv2d(1, 8, 3), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(800, 4)).eval()
'
run() { echo "== $1"; shift; timeout 120 python3 -X faulthandler -c "$@" 2>&1 | grep -v -i warn | tail -4; echo "rc=${PIPESTATUS[0]}"; }
{
run "1 ours: compile then load in the same process" "$mk
to_aoti(m, torch.zeros(1,1,12,12), Path('/tmp/a.pt2'), 'cuda', 'fp32', 64); print('compiled', flush=True)
f = torch._inductor.aoti_load_package('/tmp/a.pt2'); print('loaded', f(torch.rand(4,1,12,12).cuda()).shape)"
run "2 fresh process, load only" "import torch
f = torch._inductor.aoti_load_package('/tmp/a.pt2'); print('loaded', f(torch.rand(4,1,12,12).cuda()).shape)"
run "3 fresh process, CUDA first, then load" "import torch
torch.zeros(1, device='cuda'); f = torch._inductor.aoti_load_package('/tmp/a.pt2'); print('loaded', f(torch.rand(4,1,12,12).cuda()).shape)"
run "4 raw torch: export + aoti_compile_and_package + load, same process" "$mk
m = m.cuda(); x = torch.rand(2,1,12,12).cuda()
ep = torch.export.export(m, (x,), dynamic_shapes=({0: torch.export.Dim('b', min=1, max=64)},))
p = torch._inductor.aoti_compile_and_package(ep, package_path='/tmp/raw.pt2'); print('compiled', p, flush=True)
f = torch._inductor.aoti_load_package(p); print('loaded', f(x).shape)"
run "5 raw, fresh process load" "import torch
f = torch._inductor.aoti_load_package('/tmp/raw.pt2'); print('loaded', f(torch.rand(4,1,12,12).cuda()).shape)"
run "6 ours, compile threads 1" "import os; os.environ['TORCHINDUCTOR_COMPILE_THREADS']='1'
$mk
to_aoti(m, torch.zeros(1,1,12,12), Path('/tmp/c.pt2'), 'cuda', 'fp32', 64); print('compiled', flush=True)
f = torch._inductor.aoti_load_package('/tmp/c.pt2'); print('loaded', f(torch.rand(4,1,12,12).cuda()).shape)"
python3 -c "import zipfile; [print(i.filename, i.file_size) for i in zipfile.ZipFile('/tmp/a.pt2').infolist()]" 2>&1 | head -30
} > "$out/aoti_diag.log" 2>&1
cat "$out/aoti_diag.log"
