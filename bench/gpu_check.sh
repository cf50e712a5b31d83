#!/usr/bin/env bash
# The training engine's GPU check, made to run in ONE call of at most ~8 minutes on a
# fresh machine holding only the repository:
#   1. synth_gpu trains with bf16 on one GPU for 300 steps (loss must fall, nothing non-finite);
#   2. `torchrun --nproc_per_node=1` gives the same 20-step loss curve as the plain run (to ~1e-3);
#   3. bench/train_throughput.py at 512 px on cached images (end to end vs batches on the GPU);
#   4. bench/local_similarity.py at B=128, 160 words, 256 regions, 512-d, its B=512 budget check, and
#      local retrieval scoring over 3,000 x 3,000 at those sizes;
#   5. the synth_gpu run of step 1 evaluated: grounding (target: >= 0.5 raw phrase pointing);
#   6. notebook 08 in full mode, executed copy kept in $OUT, when time is left.
# Everything lands under $OUT (default ./gpu_check_out); summary.txt holds the verdicts.
#   OUT=/some/dir bash bench/gpu_check.sh
set -uo pipefail
OUT=${OUT:-$PWD/gpu_check_out}
WORK=${WORK:-/tmp/joimternet_gpu_check}
mkdir -p "$OUT" "$WORK"
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
PY=${PY:-python}
say() { echo "[gpu_check $(date +%H:%M:%S)] $*" | tee -a "$OUT/summary.txt"; }

say "installing the package"
$PY -m pip install -q -e ".[notebooks,dev]" >"$OUT/pip.log" 2>&1 || { say "pip install failed"; tail -30 "$OUT/pip.log"; exit 1; }
nvidia-smi >"$OUT/nvidia-smi.txt" 2>&1
$PY -c "import torch; print('torch', torch.__version__, 'gpu', torch.cuda.get_device_name(0), 'bf16', torch.cuda.is_bf16_supported())" | tee -a "$OUT/summary.txt"

say "generating SynthCXR (3000 studies, 256 px)"
$PY -c "import os; from joimternet_lite.data.synthcxr import generate_synthcxr as g; g('$WORK/synth', num_studies=3000, image_size=256, seed=0, workers=os.cpu_count(), progress=False)" \
    >"$OUT/generate.log" 2>&1 || { say "generation failed"; tail -30 "$OUT/generate.log"; }

COMMON="data.root=$WORK/synth train.log_every=1"
say "1. synth_gpu, bf16, 300 steps"
timeout 200 $PY -m joimternet_lite train --config synth_gpu $COMMON train.precision=bf16 train.steps=300 \
    train.checkpoint_every=100 train.out_dir="$OUT/synth_gpu" >"$OUT/synth_gpu.log" 2>&1
say "   exit $? (log: synth_gpu.log, metrics: synth_gpu/metrics.jsonl)"

say "2. plain vs torchrun --nproc_per_node=1, 20 steps (fp32 so both runs are comparable op for op)"
SHORT="$COMMON train.steps=20 train.warmup_steps=5 train.precision=fp32 train.checkpoint_every=1000"
timeout 90 $PY -m joimternet_lite train --config synth_gpu $SHORT train.out_dir="$WORK/plain" >"$OUT/plain.log" 2>&1
timeout 90 $PY -m torch.distributed.run --standalone --nproc_per_node=1 -m joimternet_lite train --config synth_gpu \
    $SHORT train.out_dir="$WORK/torchrun" >"$OUT/torchrun.log" 2>&1
$PY - "$WORK/plain/metrics.jsonl" "$WORK/torchrun/metrics.jsonl" "$OUT/synth_gpu/metrics.jsonl" <<'PYEOF' | tee -a "$OUT/summary.txt"
import json, math, sys
def losses(path):
    try:
        return [json.loads(l)["loss"] for l in open(path)]
    except OSError as err:
        return f"missing ({err})"
plain, ddp, long = (losses(p) for p in sys.argv[1:4])
if isinstance(plain, list) and isinstance(ddp, list) and len(plain) == len(ddp) == 20:
    diff = max(abs(a - b) for a, b in zip(plain, ddp))
    print(f"   torchrun vs plain: max |loss diff| over 20 steps = {diff:.2e} -> {'PASS' if diff <= 1e-3 else 'FAIL'} (<= 1e-3)")
else:
    print(f"   torchrun vs plain: FAIL, plain={plain if isinstance(plain, str) else len(plain)} ddp={ddp if isinstance(ddp, str) else len(ddp)}")
if isinstance(long, list) and long:
    first, last = sum(long[:10]) / len(long[:10]), sum(long[-10:]) / len(long[-10:])
    ok = all(math.isfinite(x) for x in long) and last < first
    print(f"   synth_gpu: {len(long)} steps, mean loss first 10 = {first:.3f}, last 10 = {last:.3f} -> {'PASS' if ok else 'FAIL'}")
else:
    print(f"   synth_gpu: FAIL, no metrics ({long})")
PYEOF
grep -h "pairs_per_s" "$OUT/synth_gpu/metrics.jsonl" 2>/dev/null | tail -1 | $PY -c "import json,sys; l=sys.stdin.read(); print('   synth_gpu last pairs/s:', json.loads(l)['pairs_per_s'] if l else 'n/a')" | tee -a "$OUT/summary.txt"

say "3. train_throughput at 512 px on cached images (synth_gpu model, bf16)"
timeout 170 $PY bench/train_throughput.py --preset synth_gpu --image-size 512 --studies 1536 --steps 30 --warmup 5 \
    --workdir "$WORK/throughput" --out "$OUT/train_throughput_512.json" >"$OUT/train_throughput.log" 2>&1
say "   exit $?: $(tail -1 "$OUT/train_throughput.log")"

if [ -f bench/local_similarity.py ]; then
    say "4. local similarity at B=128, 160 words, 256 regions, 512-d"
    timeout 60 $PY bench/local_similarity.py --batch 128 --words 160 --regions 256 --dim 512 >"$OUT/local_similarity.log" 2>&1
    say "   exit $?: $(tail -3 "$OUT/local_similarity.log" | tr '\n' ' ')"
    timeout 60 $PY bench/local_similarity.py --budget-check >"$OUT/local_similarity_budget.log" 2>&1
    say "   B=512 budget check exit $?: $(tail -2 "$OUT/local_similarity_budget.log" | tr '\n' ' ')"
    timeout 90 $PY bench/local_similarity.py --retrieval 3000 --repeats 2 >"$OUT/local_retrieval.log" 2>&1
    say "   retrieval 3000 x 3000 (target: under 10 s) exit $?: $(tail -1 "$OUT/local_retrieval.log")"
else
    say "4. bench/local_similarity.py not in this checkout: skipped"
fi

say "5. synth_gpu evaluated (report with grounding)"
timeout 120 $PY -m joimternet_lite evaluate --config synth_gpu $COMMON train.out_dir="$OUT/synth_gpu" >"$OUT/evaluate.log" 2>&1
say "   exit $?: $(grep -E '^\| grounding|^\| classification' "$OUT/synth_gpu/report.md" 2>/dev/null | tr '\n' ' ')"

say "6. notebook 08 in full mode"
# executed in place on the device machine's copy of the tree; bring it back with the results
timeout 240 $PY notebooks/run_notebooks.py notebooks/08_training_on_gpu.ipynb >"$OUT/notebook08.log" 2>&1
say "   exit $?: $(tail -1 "$OUT/notebook08.log") (executed copy: notebook08_full.ipynb)"
cp notebooks/08_training_on_gpu.ipynb "$OUT/notebook08_full.ipynb"
say "done"
