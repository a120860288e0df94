"""Decoding time of `decode_pairs` on dense matrices, this checkout against an older commit's `resm/decode.py`.

A dense matrix is the slow case: uniform random probabilities with threshold 0.1 make about 90% of the pairs candidates,
and the per-base top-k bound has to pick among them. Both versions get the same float32 matrix; the script prints their
times, whether the decoded pairs are equal, and the number of pairs.
Usage: python benchmarks/bench_decode.py [--old 3be2e4c] [--lengths 4000 10000] [--threshold 0.1]
"""
import argparse, subprocess, time
from pathlib import Path
import numpy as np

ROOT = Path(__file__).resolve().parents[1]

def old_module(commit:str)->dict:
    "The namespace of `resm/decode.py` as it was at `commit`."
    src = subprocess.run(["git", "show", f"{commit}:resm/decode.py"], capture_output=True, text=True, check=True, cwd=ROOT).stdout
    ns = {"__name__": "old_decode"}; exec(compile(src, f"{commit}:resm/decode.py", "exec"), ns)
    return ns

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--old", default="3be2e4c", help="commit to compare with")
    ap.add_argument("--lengths", type=int, nargs="+", default=[4000, 10000])
    ap.add_argument("--threshold", type=float, default=0.1)
    a = ap.parse_args()
    from resm.decode import decode_pairs
    old = old_module(a.old)["decode_pairs"]
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT).stdout.strip()
    if subprocess.run(["git", "status", "--porcelain", "resm"], capture_output=True, text=True, cwd=ROOT).stdout.strip():
        commit += " + uncommitted changes in resm/"
    print(f"decode_pairs(P, {a.threshold}) defaults (matching, top_k=8); old = {a.old}, new = {commit}\n")
    print("| L | old (s) | new (s) | old / new | same pairs | pairs |\n|---|---|---|---|---|---|")
    for L in a.lengths:
        P = np.random.default_rng(0).random((L, L), dtype=np.float32)
        t = time.perf_counter(); po = old(P, a.threshold); to = time.perf_counter() - t
        t = time.perf_counter(); pn = decode_pairs(P, a.threshold); tn = time.perf_counter() - t
        print(f"| {L} | {to:.1f} | {tn:.1f} | {to / tn:.1f}x | {'yes' if po == pn else 'NO'} | {len(pn)} |", flush=True)

if __name__ == "__main__": main()
