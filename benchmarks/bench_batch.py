"""Forward-pass time of `embed_records` on the issue-15 workload for several batch budgets, in one process.

Workload as in bench_embed.py: 32 random RNAs of 200-740 nt (15,120 nt), the ESM2-150M architecture with random
weights. Each budget runs once per round, the budgets alternate, and the medians are printed. This chose
`default_batch_tokens` (1,024 for fp32 on a CPU). Usage: python benchmarks/bench_batch.py [--dtype fp32] [--budgets 1 1024 4096]
"""
import argparse, statistics, sys, time
from pathlib import Path
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_embed import workload, machine

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dtype", default="fp32", choices=["fp32", "bf16"])
    ap.add_argument("--budgets", type=int, nargs="+", default=[1, 1024, 4096], help="batch_tokens values (1: one record per batch)")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    from resm.model import tiny_model
    from resm.features import embed_records
    from resm.fast import cast_model
    m, tok = tiny_model(num_layers=30, embed_dim=640, attention_heads=20, seed=0); m.eval()
    m, recs = cast_model(m, a.dtype), list(workload().items())
    print(machine(a.threads)); print(f"dtype {a.dtype}; {len(recs)} RNAs, {sum(len(s) for _, s in recs)} nt; forward passes only\n")
    res = {b: [] for b in a.budgets}
    for _ in range(a.reps):
        for b in a.budgets:
            t = time.perf_counter(); n = sum(1 for _ in embed_records(m, tok, recs, batch_tokens=b, dtype=a.dtype))
            res[b].append(time.perf_counter() - t); assert n == len(recs)
    print("| batch_tokens | median (s) | runs (s) |\n|---|---|---|")
    for b, v in res.items(): print(f"| {b} | {statistics.median(v):.1f} | {', '.join(f'{x:.1f}' for x in v)} |")

if __name__ == "__main__": main()
