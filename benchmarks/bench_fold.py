"""`resm fold` (zero-shot probe) now against an older commit, side by side, as whole processes (CPU).

Model: the ESM2-150M architecture (30 layers, 640 wide, 20 heads = 600 maps) with random weights saved as a fair-esm
`.pt`; head: a probe file, either dense (600 non-zero random weights: the worst case) or sparse (a random tenth of the
weights non-zero; an L1-penalised probe, as the authors fit, zeroes many (layer, head) weights, and resm then never
forms those maps). Each run is `resm fold` in a fresh process with its peak RSS from getrusage; the old and new code
alternate --reps rounds; medians and the ratio of medians are printed with the load average before each run.

The old code is a git worktree: `git worktree add /tmp/old f4fc392` (it is run with PYTHONPATH pointing there).
Usage: python benchmarks/bench_fold.py [--lengths 4000 10000] [--old-lengths 4000 10000] [--probes dense sparse] [--reps 3]
       [--reps-sparse 1] [--reps-long 1] [--sdpa-dtype bf16]
With --sdpa-dtype the new code also runs with `resm fold --sdpa-dtype ...` (a third row): the attention of the heads the
probe does not read in that precision, the maps it reads in --dtype.
"""
import argparse, json, os, statistics, subprocess, sys
from pathlib import Path
import numpy as np
sys.path.insert(0, str(Path(__file__).parent))
from bench_embed import make_model, run, machine

# The code under test is the `resm` found first on PYTHONPATH; the child runs in the work folder (not this checkout, which
# `python -c` would put first on sys.path) and checks that it imported the intended copy.
FOLD = ("import sys, torch; torch.set_num_threads({t}); import resm; assert resm.__file__.startswith({root!r}), resm.__file__; "
        "from resm.fold import main; sys.exit(main(sys.argv[1:]))")

def make_probe(workdir:Path, kind:str, layers:int=30, heads:int=20)->Path:
    "A random zero-shot probe: dense (all weights non-zero) or sparse (a random tenth non-zero)."
    from resm.probe import Probe
    rng = np.random.default_rng(0)
    w = rng.normal(0, 0.05, layers * heads).astype(np.float32)
    if kind == "sparse": w[rng.permutation(len(w))[len(w) // 10:]] = 0
    return Probe(w, -3.0, 6, dict(num_layers=layers, attention_heads=heads, source=f"random {kind}")).save(workdir/f"probe_150M_{kind}.json")

def runs(v, key, fmt)->str: return ", ".join(format(x[key], fmt) for x in v)

def fasta(work:Path, L:int)->Path:
    from resm.io import write_fasta
    rng = np.random.default_rng(L)
    return write_fasta(work/f"fold_{L}.fa", {f"len{L}": "".join(rng.choice(list("ACGU"), L))})

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lengths", type=int, nargs="+", default=[4000, 10000])
    ap.add_argument("--old-lengths", type=int, nargs="*", default=[4000], help="lengths at which the old code also runs")
    ap.add_argument("--probes", nargs="+", default=["dense", "sparse"], choices=["dense", "sparse"])
    ap.add_argument("--old", default="/tmp/old", help="worktree of the old commit")
    ap.add_argument("--reps", type=int, default=3, help="alternating old/new rounds with the dense probe")
    ap.add_argument("--reps-sparse", type=int, default=1, help="rounds with the sparse probe")
    ap.add_argument("--reps-long", type=int, default=1, help="rounds (either probe) at lengths of 10,000 nt and more")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--dtype", default="fp32")
    ap.add_argument("--workdir", default="/tmp/resm_bench")
    ap.add_argument("--sdpa-dtype", default=None, choices=["bf16"], help="also: the new code with --sdpa-dtype")
    a = ap.parse_args()
    work = Path(a.workdir); work.mkdir(parents=True, exist_ok=True)
    if a.old_lengths and not (Path(a.old)/"resm"/"fold.py").exists(): sys.exit(f"no old code at {a.old}: git worktree add {a.old} f4fc392")
    old_commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=a.old).stdout.strip() if a.old_lengths else "-"
    spec = make_model(work)
    env = dict(os.environ, OMP_NUM_THREADS=str(a.threads), MKL_NUM_THREADS=str(a.threads))
    print(machine(a.threads) + f"; old code: {old_commit}")
    print(f"model: ESM2-150M architecture, random weights; `resm fold --format dbn --dtype {a.dtype}` (probabilities, matching decode, file)\n")
    print("| L (nt) | probe | code | median wall (s) | runs (s) | peak RSS (GiB) | new vs old | same dbn | load average before runs |")
    print("|---|---|---|---|---|---|---|---|---|", flush=True)
    for L in a.lengths:
        fa = fasta(work, L)
        for kind in a.probes:
            probe = make_probe(work, kind)
            codes = (["old"] if L in a.old_lengths else []) + ["new"] + ([f"new --sdpa-dtype {a.sdpa_dtype}"] if a.sdpa_dtype else [])
            res = {c: [] for c in codes}
            for rep in range(a.reps_long if L >= 10000 else a.reps if kind == "dense" else a.reps_sparse):
                for c in codes:
                    out = work/f"fold_{c.replace(' ', '_')}_{L}_{kind}"
                    for p in out.glob("*") if out.exists() else []: p.unlink()
                    root = str(Path(a.old).resolve()) if c == "old" else str(Path(__file__).resolve().parents[1])
                    e = dict(env, PYTHONPATH=root)
                    cmd = [sys.executable, "-c", FOLD.format(t=a.threads, root=root + "/"), "fold", fa, "--model", spec, "--out", out, "--head", probe,
                           "--device", "cpu", "--quiet", "--dtype", a.dtype] + (["--sdpa-dtype", a.sdpa_dtype] if "sdpa" in c else [])
                    res[c].append(run(cmd, e, cwd=work)); print(f"  L={L} {kind} {c}: {res[c][-1]['s']:.0f} s", file=sys.stderr, flush=True)
            same = {}
            if "old" in codes:
                old_db = (work/f"fold_old_{L}_{kind}"/f"len{L}.dbn").read_text()
                for c in codes[1:]:
                    new_db = (work/f"fold_{c.replace(' ', '_')}_{L}_{kind}"/f"len{L}.dbn").read_text()
                    n_pairs = sum(new_db.splitlines()[-1].count(x) for x in "([{<")
                    same[c] = ("yes" if old_db == new_db else "NO") + f" ({n_pairs} pairs)"   # 0 pairs: the equality says little
            med = {c: statistics.median(x["s"] for x in v) for c, v in res.items()}
            for c, v in res.items():
                ratio = f"{med['old'] / med[c]:.2f}x" if c != "old" and "old" in med else ""
                print(f"| {L} | {kind} | {c} | {med[c]:.0f} | {runs(v, 's', '.0f')} | {max(x['rss'] for x in v):.2f} | "
                      f"{ratio} | {same.get(c, '')} | {runs(v, 'load', '.1f')} |", flush=True)
    print(f"\nload average at the end: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")

if __name__ == "__main__": main()
