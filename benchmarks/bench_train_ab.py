"""`resm train` throughput of two copies of the code, side by side as whole processes (made for a GPU; runs anywhere).

A is the code in OLD (a folder holding a `resm/` package, e.g. `git worktree add /tmp/old COMMIT`), B is this checkout.
Each run trains the ESM2-150M architecture (random init) on the mini data for STEPS steps in bf16 with BT-token batches;
A and B alternate REPS rounds. Printed: tokens/s per run (median of steps 11+), medians, MFU (6 * 148M * tokens/s over
989 TFLOP/s, the H100/H200 dense bf16 peak) and the last logged loss of each side.
Usage: OLD=/tmp/old [REPS=3 STEPS=40 BT=16384 ARCH=random:30x640x20] python benchmarks/bench_train_ab.py
"""
import csv, os, statistics, subprocess, sys
from pathlib import Path
import torch
NEW = str(Path(__file__).resolve().parents[1]); OLD = os.environ.get("OLD", "/tmp/old"); WORK = os.environ.get("WORK", "/tmp/bench_train_ab")
ARCH, STEPS, BT, REPS = os.environ.get("ARCH", "random:30x640x20"), os.environ.get("STEPS", "40"), os.environ.get("BT", "16384"), int(os.environ.get("REPS", 3))

def run(tag:str, root:str, rep:int):
    "One `resm train` process on the code in `root`; returns (median tokens/s after step 10, last loss) or None."
    out = f"{WORK}/{tag}_{rep}"
    code = (f"import sys; sys.path.insert(0, {root!r}); import resm; assert resm.__file__.startswith({root!r}), resm.__file__; "
            "from resm.cli import main; sys.exit(main(sys.argv[1:]))")
    cmd = [sys.executable, "-c", code, "train", "--out", out, "--model", ARCH, "--data", "mini", "--max-steps", STEPS, "--dtype", "bf16",
           "--batch-tokens", BT, "--max-len", "1024", "--no-probe", "--eval-every", "0", "--save-every", "1000", "--warmup-steps", "5", "--no-progress"]
    keep = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and Path(p).resolve() != Path(NEW)]   # packages only, not a checkout
    r = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=os.pathsep.join(keep)), cwd="/tmp")
    if r.returncode: print(f"{tag} rep {rep}: FAILED\n{r.stderr[-800:]}", flush=True); return None
    rows = [x for x in csv.DictReader(open(f"{out}/metrics.csv")) if x["split"] == "train"]
    tps = statistics.median(float(x["tokens_per_s"]) for x in rows[10:] or rows)
    print(f"{tag} rep {rep}: {tps:,.0f} tokens/s, last loss {float(rows[-1]['loss']):.4f}", flush=True)
    return tps, float(rows[-1]["loss"])

def main():
    if not (Path(OLD)/"resm"/"__init__.py").exists(): sys.exit(f"error: no resm package under OLD={OLD}: git worktree add {OLD} COMMIT")
    print("device:", torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu", "| torch", torch.__version__, f"| {ARCH}, {STEPS} steps, {BT}-token batches", flush=True)
    res = {"A (OLD)": [], "B (checkout)": []}
    for rep in range(REPS):
        for tag, root in zip(res, (OLD, NEW)):
            x = run(tag.split()[0], root, rep)
            if x: res[tag].append(x)
    print("\n| code | median tokens/s | runs | MFU | last losses |\n|---|---|---|---|---|")
    for tag, v in res.items():
        if not v: continue
        med = statistics.median(t for t, _ in v)
        print(f"| {tag} | {med:,.0f} | {', '.join(f'{t:,.0f}' for t, _ in v)} | {6 * 148e6 * med / 989e12:.1%} | {', '.join(f'{l:.4f}' for _, l in v)} |")

if __name__ == "__main__": main()
