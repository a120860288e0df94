"""Peak RSS and time of `resm fold` against sequence length (CPU, ESM2-150M architecture, random weights).

Usage: python benchmarks/bench_fold_memory.py [--lengths 500 1000 2000 4000 10000] [--threads 2] [--workdir /tmp/resm_bench]
Each length runs `resm fold` in a fresh subprocess; its peak RSS is read with getrusage(RUSAGE_CHILDREN) by a wrapper
process that runs only that one child. Prints a markdown table.
"""
import argparse, json, os, platform, subprocess, sys, time
from pathlib import Path
import numpy as np
sys.path.insert(0, str(Path(__file__).parent))
from bench_embed import make_model

WRAP = ("import resource, subprocess, sys, json; r = subprocess.run(sys.argv[1:]); "
        "print(json.dumps(dict(rc=r.returncode, maxrss_kb=resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)))")
FOLD = "import sys, torch; torch.set_num_threads({t}); from resm.fold import main; sys.exit(main(sys.argv[1:]))"

def make_probe(workdir:Path, layers=30, heads=20)->Path:
    "A random zero-shot probe of the right shape (the weights do not change memory or time)."
    from resm.probe import Probe
    rng = np.random.default_rng(0)
    return Probe(rng.normal(0, 0.05, layers * heads).astype(np.float32), -3.0, 6,
                 dict(num_layers=layers, attention_heads=heads, source="random")).save(workdir/"probe_150M_random.json")

def run_one(L:int, spec:Path, probe:Path, work:Path, threads:int, extra=()):
    from resm.io import write_fasta
    rng = np.random.default_rng(L)
    fa = write_fasta(work/f"fold_{L}.fa", {f"len{L}": "".join(rng.choice(list("ACGU"), L))})
    out = work/f"fold_out_{L}"
    for p in out.glob("*") if out.exists() else []: p.unlink()
    cmd = [sys.executable, "-c", WRAP, sys.executable, "-c", FOLD.format(t=threads), "fold", str(fa), "--model", str(spec),
           "--out", str(out), "--head", str(probe), "--device", "cpu", "--quiet", *extra]
    t = time.perf_counter(); r = subprocess.run(cmd, capture_output=True, text=True); dt = time.perf_counter() - t
    res = json.loads(r.stdout.strip().splitlines()[-1])
    if res["rc"] != 0: print(r.stderr[-2000:], file=sys.stderr)
    return res["rc"], res["maxrss_kb"] / 2**20, dt

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lengths", type=int, nargs="+", default=[500, 1000, 2000, 4000, 10000])
    ap.add_argument("--threads", type=int, default=2); ap.add_argument("--workdir", default="/tmp/resm_bench")
    a = ap.parse_args()
    work = Path(a.workdir); work.mkdir(parents=True, exist_ok=True)
    spec, probe = make_model(work), make_probe(work)
    goals = {4000: 4, 10000: 16}
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, {os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB RAM, threads {a.threads}")
    print("model: ESM2-150M architecture (30 layers, 640 wide, 20 heads = 600 maps), random weights, fair-esm .pt; "
          "head: zero-shot probe file; fp32; `resm fold --format dbn` (probabilities → matching decode → file)\n")
    print("| L (nt) | peak RSS (GiB) | goal | wall time (s) | naive (layers·heads, L, L) fp32 stack (GiB) |")
    print("|---|---|---|---|---|", flush=True)
    for L in a.lengths:
        rc, gib, dt = run_one(L, spec, probe, work, a.threads)
        goal = "" if L not in goals else "not finished" if rc != 0 else f"≤ {goals[L]} GiB {'✓' if gib <= goals[L] else '✗'}"
        print(f"| {L} | {gib:.2f}{'' if rc == 0 else f' (exit {rc})'} | {goal} | {dt:.0f} | {600 * L * L * 4 / 2**30:.1f} |", flush=True)

if __name__ == "__main__": main()
