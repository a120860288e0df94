#!/usr/bin/env bash
# Every `resm eval` and `resm finetune` command once on a CUDA device, and `resm fold` with the fine-tuned head, at test
# size (the `tiny` model, bundled data and the test fixtures), each with a time limit; the zero-shot ones also on the
# CPU, and their metrics compared. One line per command: "ok" or "FAILED" with the last line of its error.
# Called by gpu_check.sh (step 6); runs alone too:
#   bash benchmarks/gpu_commands.sh   (PY, WORK and ROWS as in gpu_check.sh)
set -u
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}; [ -x "$PY" ] || PY=python3
WORK=${WORK:-/tmp/resm_gpu_check}; mkdir -p "$WORK/cmd"; C="$WORK/cmd"
ROWS=${ROWS:-$WORK/rows.tsv}
FX=tests/fixtures; FT=$FX/finetune
row() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >> "$ROWS"; }
run() {  # name, then the resm arguments
  local name=$1; shift; rm -rf "$C/$name"
  if timeout 120 "$PY" -m resm.cli "$@" --out "$C/$name" > "$C/$name.log" 2>&1; then row "$name" "ok" "" ""
  else row "$name" "FAILED (rc $?)" "$(grep -v -i warn "$C/$name.log" | tail -1 | tr '\t|' '  ')" ""; fi
}
for dev in cuda cpu; do
  run "eval zeroshot-ss, $dev" eval zeroshot-ss --model tiny --data mini --max-seqs 4 --n-lr 2 --n-val 4 --num-threads 2 --device $dev
  run "eval zeroshot-cls, $dev" eval zeroshot-cls --model tiny --max-per-family 3 --num-threads 2 --device $dev
  run "eval zeroshot-rri, $dev" eval zeroshot-rri --model tiny --max-seqs 2 --n-val 2 --n-lr 2 --frag 20 --linker AAAA --num-threads 2 --device $dev
  run "eval fitness, $dev" eval fitness --model tiny --data $FX/dms_tiny.csv --wt $FX/dms_tiny_wt.fa --num-threads 2 --device $dev
done
"$PY" - "$C" >> "$ROWS" <<'PYEOF'
import json, sys
from pathlib import Path
C = Path(sys.argv[1])
def flat(d, p=""):
    for k, v in d.items():
        if isinstance(v, dict): yield from flat(v, f"{p}{k}.")
        elif isinstance(v, (int, float)) and not isinstance(v, bool) and k != "seconds": yield f"{p}{k}", float(v)   # not timings
for name in ("zeroshot-ss", "zeroshot-cls", "zeroshot-rri", "fitness"):
    try: g, c = (dict(flat(json.loads((C/f"eval {name}, {d}"/"metrics.json").read_text()))) for d in ("cuda", "cpu"))
    except Exception as e: print(f"eval {name}: cuda against cpu\tnot compared\t{type(e).__name__}\t"); continue
    keys = sorted(set(g) & set(c)); diff = max((abs(g[k] - c[k]) for k in keys), default=float("nan"))
    worst = max(keys, key=lambda k: abs(g[k] - c[k])) if keys else ""
    print(f"eval {name}: cuda against cpu\t{len(keys)} numbers, max abs diff {diff:.2g}\tlargest: {worst}\t")
PYEOF
run "finetune ss, cuda" finetune ss --model tiny --max-steps 2 --data $FT/bprna --crop 48 --channels 4 --blocks 1 --batch-size 2 --device cuda
printf '>r1\nGGGGAAAACCCCAUAUGGCGCAAAAGCGCCAUAUAUAGGA\n>r2\nACGUACGUAGCUAGCUAGGCUAAGCUUAGCGAUCGAUCGAUUAGC\n' > "$C/two.fa"
run "fold --head (that head), cuda" fold "$C/two.fa" --model tiny --head "$C/finetune ss, cuda" --device cuda
run "finetune mrl, cuda" finetune mrl --model tiny --data $FT/mrl_sample2019.csv --n-test 40 --max-steps 2 --batch-size 16 --device cuda
run "finetune expression lora, cuda" finetune expression --model tiny --data $FT/expression_utrlm.csv --target te_log --mode lora --pool conv --max-steps 2 --batch-size 16 --device cuda
run "finetune expression full, cuda" finetune expression --model tiny --data $FT/expression_utrlm.csv --mode full --max-steps 2 --batch-size 16 --device cuda
