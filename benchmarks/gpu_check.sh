#!/usr/bin/env bash
# The GPU check: one script, one table, under 8 minutes on one H100. Run from anywhere: bash benchmarks/gpu_check.sh
#  1. the `gpu`-flagged notebook cells (nbdev_test --flags gpu, only the notebooks that have such cells)
#  2. pytest's GPU tests (pytest -m gpu)
#  3. `resm embed` throughput against fair-esm: ESM2-150M and -650M architectures (random weights), fp32/bf16/fp16,
#     batch 1, batched (padded) and batched packed (records back to back), on the 32-RNA workload of
#     benchmarks/bench_embed.py (15,120 nt)
#  4. peak GPU memory (and time) of `resm fold`'s zero-shot probe at 4,000 and 10,000 nt (150M architecture), and a sparse
#     probe at 10,000 nt with the skipped heads' attention in fp32 and in bf16 (--sdpa-dtype)
#  5. `resm train` on the 150M architecture, 50 steps in bf16: tokens/s and MFU (6·N·tokens/s over the card's bf16 peak)
#  6. every `resm eval` and `resm finetune` command once on the card at test size, the zero-shot ones compared with the
#     CPU (benchmarks/gpu_commands.sh)
# Without a CUDA device it prepares what it can on the CPU and skips the GPU-only steps, saying so.
# Settings from the environment: PY (the interpreter; default .venv/bin/python, else python3), WORK (scratch folder,
# default /tmp/resm_gpu_check), ROWS (the table's rows file, default $WORK/rows.tsv). With resm not installed, run it
# from the checkout with PYTHONPATH=$PWD (and the packages' --target folder) and PY=python3; nbdev_test is then found on PATH.
set -u
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}; [ -x "$PY" ] || PY=python3
BIN=$(dirname "$PY")
NBDEV_TEST="$BIN/nbdev_test"; [ -x "$NBDEV_TEST" ] || NBDEV_TEST=$(command -v nbdev_test || echo nbdev_test)   # a --target install puts it on PATH
WORK=${WORK:-/tmp/resm_gpu_check}; mkdir -p "$WORK"
ROWS=${ROWS:-$WORK/rows.tsv}; : > "$ROWS"
export WORK ROWS
row() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >> "$ROWS"; }
T0=$(date +%s)
HAS_GPU=$("$PY" -c "import torch; print(int(torch.cuda.is_available()))" 2>/dev/null || echo 0)
DEVICE=$("$PY" -c "import torch; print(torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no CUDA device')" 2>/dev/null)
skip() { echo "gpu_check: SKIPPED (no CUDA device: torch.cuda.is_available() is False): $1" >&2; row "$1" "skipped" "no CUDA device" ""; }
echo "gpu_check: device: $DEVICE; commit $(git rev-parse --short HEAD 2>/dev/null)" >&2

# 1. gpu-flagged notebook cells
NBS=$(grep -l '#| gpu' nbs/*.ipynb nbs/**/*.ipynb 2>/dev/null | sort -u)
if [ "$HAS_GPU" != 1 ]; then skip "notebook cells flagged gpu ($(echo $NBS | wc -w) notebooks)"
elif [ -z "$NBS" ]; then row "notebook cells flagged gpu" "none" "no notebook has a '#| gpu' cell" ""
else
  ok=0; fail=""
  for nb in $NBS; do
    if timeout 120 "$NBDEV_TEST" --flags gpu --path "$nb" > "$WORK/nbtest.log" 2>&1; then ok=$((ok+1)); else fail="$fail $(basename $nb)"; fi
  done
  row "notebook cells flagged gpu" "$ok passed" "${fail:+FAILED:$fail}" ""
fi

# 2. pytest GPU tests (on a CPU they are collected and skip themselves). Only the files that hold them are collected,
#    so a GPU image without the notebook-only packages (papermill, nbformat) still runs them.
GPU_TESTS=$(grep -l 'mark.gpu' tests/test_*.py)
timeout 150 "$PY" -m pytest $GPU_TESTS -m gpu -q -p no:cacheprovider > "$WORK/pytest.log" 2>&1
row "pytest -m gpu" "$(tail -1 "$WORK/pytest.log" | sed 's/=//g;s/^ *//;s/ *$//')" "$( [ "$HAS_GPU" = 1 ] || echo 'skipped on CPU by the tests themselves')" ""

# 3-5 need the models; they are made on the CPU (random weights, fair-esm .pt) whatever the device.
"$PY" - <<'EOF' || row "making the random 150M/650M checkpoints" "FAILED" "" ""
import os, sys; from pathlib import Path
sys.path.insert(0, "benchmarks"); from bench_embed import make_model
w = Path(os.environ["WORK"])
make_model(w, 30, 640, 20, "esm2_t30_150M_random"); make_model(w, 33, 1280, 20, "esm2_t33_650M_random")
EOF

if [ "$HAS_GPU" != 1 ]; then
  skip "resm embed vs fair-esm, 150M/650M x fp32/bf16/fp16 x batch 1/batched"
  skip "resm fold peak GPU memory at 4,000 and 10,000 nt"
  skip "resm train 150M, 50 steps bf16: tokens/s and MFU"
  skip "resm eval and resm finetune commands on the card (benchmarks/gpu_commands.sh)"
else
# 3. embed throughput
timeout 240 "$PY" - <<'EOF' || row "resm embed vs fair-esm" "FAILED or timed out" "see output above" ""
import copy, os, sys, time
from pathlib import Path
import torch, esm
sys.path.insert(0, "benchmarks"); from bench_embed import workload
from resm.model import load_model
from resm.features import embed_records, length_batches
from resm.fast import torch_dtype
w, rows = Path(os.environ["WORK"]), open(os.environ["ROWS"], "a")
recs = list(workload().items()); ntot = sum(len(s) for _, s in recs)
def timed(f):
    f(); torch.cuda.synchronize(); t = time.perf_counter(); f(); torch.cuda.synchronize(); return time.perf_counter() - t
for arch, name in (("150M", "esm2_t30_150M_random"), ("650M", "esm2_t33_650M_random")):
    spec = w/f"{name}.pt"
    m, tok = load_model(spec, device="cuda")
    ref, alph = esm.pretrained.load_model_and_alphabet_core(name, torch.load(spec, map_location="cpu", weights_only=False))
    conv, KDNY = alph.get_batch_converter(), str.maketrans("AUCGT", "KDNYD")
    for dt in ("fp32", "bf16", "fp16"):
        fe = copy.deepcopy(ref).to("cuda", torch_dtype(dt)).eval()
        for mode, bt, pk in (("batch 1", 0, False), ("batched", 16384, False), ("batched, packed", 16384, True)):
            def ours(): list(embed_records(m, tok, recs, dtype=dt, batch_tokens=bt, packed=pk))
            def theirs():
                with torch.no_grad():
                    for b in length_batches([len(s) for _, s in recs], bt):
                        _, _, toks = conv([(recs[k][0], recs[k][1].translate(KDNY)) for k in b])
                        r = fe(toks.cuda(), repr_layers=[fe.num_layers])["representations"][fe.num_layers].float().cpu()
            a, b = timed(ours), timed(theirs)
            rows.write(f"embed {arch} {dt} {mode}\tresm {ntot / a:,.0f} nt/s\tfair-esm {ntot / b:,.0f} nt/s\t{b / a:.2f}x\n"); rows.flush()
        del fe; torch.cuda.empty_cache()
    del m, ref; torch.cuda.empty_cache()
EOF

# 4. fold peak GPU memory
timeout 120 "$PY" - <<'EOF' || row "resm fold peak GPU memory" "FAILED or timed out" "see output above" ""
import os, sys, time
from pathlib import Path
import numpy as np, torch
from resm.model import load_model
from resm.probe import Probe
w, rows = Path(os.environ["WORK"]), open(os.environ["ROWS"], "a")
m, tok = load_model(w/"esm2_t30_150M_random.pt", device="cuda")
pr = Probe(np.random.default_rng(0).normal(0, 0.05, 600).astype(np.float32), -3.0, 6, dict(num_layers=30, attention_heads=20))
rng = np.random.default_rng(0)
for L in (4000, 10000):
    seq = "".join(rng.choice(list("ACGU"), L))
    torch.cuda.synchronize(); torch.cuda.reset_peak_memory_stats(); t = time.perf_counter()
    pr.predict(m, tok, seq); torch.cuda.synchronize()
    rows.write(f"fold {L} nt, 150M, dense probe, fp32\tpeak GPU memory {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB\t{time.perf_counter() - t:.1f} s\t\n"); rows.flush()
w = np.zeros(600, np.float32); w[rng.choice(600, 24, replace=False)] = rng.normal(0, 0.2, 24)   # a sparse probe: 24 heads
sp, seq = Probe(w, -3.0, 6, dict(num_layers=30, attention_heads=20)), "".join(rng.choice(list("ACGU"), 10000))
for sd in (None, "bf16"):
    torch.cuda.synchronize(); torch.cuda.reset_peak_memory_stats(); t = time.perf_counter()
    P = sp.predict(m, tok, seq, sdpa_dtype=sd); torch.cuda.synchronize(); dt = time.perf_counter() - t
    if sd is None: P32 = P
    rows.write(f"fold 10,000 nt, 150M, sparse probe (24 heads), fp32{', sdpa bf16' if sd else ''}\tpeak GPU memory "
               f"{torch.cuda.max_memory_allocated() / 2**30:.2f} GiB\t{dt:.1f} s\tmax prob diff {abs(P - P32).max():.1e}\n"); rows.flush()
EOF

# 5. training throughput and MFU
rm -rf "$WORK/train"
if timeout 180 "$PY" -m resm.cli train --out "$WORK/train" --model "$WORK/esm2_t30_150M_random.pt" --data mini --max-steps 50 \
     --dtype bf16 --batch-tokens 16384 --max-len 1024 --no-probe --eval-every 0 --save-every 1000 --warmup-steps 5 --no-progress > "$WORK/train.log" 2>&1; then
  "$PY" - <<'EOF'
import os, csv, statistics, torch
from pathlib import Path
w = Path(os.environ["WORK"])
rows = [r for r in csv.DictReader(open(w/"train"/"metrics.csv")) if r.get("split") == "train" and r.get("tokens_per_s")]
tps = statistics.median(float(r["tokens_per_s"]) for r in rows[10:])        # after warm-up
n = 148_000_000                                                              # ESM2-150M parameters (approx.)
name = torch.cuda.get_device_name(0); peak = 989e12 if ("H100" in name or "H200" in name) else None   # dense bf16
mfu = f"MFU {6 * n * tps / peak:.1%} (6·N·tokens/s over {peak / 1e12:.0f} TFLOP/s)" if peak else "MFU n/a (unknown card peak)"
open(os.environ["ROWS"], "a").write(f"train 150M bf16, 50 steps\t{tps:,.0f} tokens/s\t{mfu}\t\n")
EOF
else row "resm train 150M bf16 50 steps" "FAILED or timed out" "$(tail -2 "$WORK/train.log" | tr '\t\n' '  ')" ""; fi

# 6. the evaluation and fine-tuning commands on the card
PY="$PY" WORK="$WORK" ROWS="$ROWS" bash benchmarks/gpu_commands.sh
fi

echo
echo "GPU check on: $DEVICE; $(date -u +%FT%TZ); $(($(date +%s) - T0)) s"
echo
echo "| step | result | detail | ratio |"
echo "|---|---|---|---|"
while IFS=$'\t' read -r a b c d; do echo "| $a | $b | $c | $d |"; done < "$ROWS"
