"""float32 and bf16 linear layers on a CPU: `F.linear` against the fused oneDNN call that `resm.fast.linear` makes.

Shapes: the 150M model's projections (640 -> 640), FFN (640 -> 2,560, 2,560 -> 640), for 52 to 4,096 tokens.
Each call runs 3 times to warm up, then --reps times; the table gives medians (ms) and the ratio.
Usage: python benchmarks/bench_linear.py [--reps 30] [--threads 2] [--dtype fp32|bf16]
"""
import argparse, platform, statistics, time
import torch
import torch.nn.functional as F

def median_ms(f, reps:int)->float:
    for _ in range(3): f()
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter(); f(); ts.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(ts)

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=30); ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--dtype", default="fp32", choices=["fp32", "bf16"])
    a = ap.parse_args()
    torch.set_num_threads(a.threads); torch.manual_seed(0)
    dt = torch.float32 if a.dtype == "fp32" else torch.bfloat16
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor())
    print(f"# {cpu}; torch {torch.__version__}; {a.threads} threads; {a.dtype}; medians of {a.reps} calls")
    print("| tokens | in -> out | F.linear (ms) | oneDNN (ms) | ratio |\n|---|---|---|---|---|")
    with torch.no_grad():
        for M in (52, 202, 802, 4096):
            for N, K in ((640, 640), (2560, 640), (640, 2560)):
                x, w, b = torch.randn(M, K, dtype=dt), torch.randn(N, K, dtype=dt), torch.randn(N, dtype=dt)
                plain = median_ms(lambda: F.linear(x, w, b), a.reps)
                fused = median_ms(lambda: torch.ops.mkldnn._linear_pointwise(x, w, b, "none", [], ""), a.reps)
                print(f"| {M} | {K} -> {N} | {plain:.3f} | {fused:.3f} | {plain / fused:.2f}x |")

if __name__ == "__main__": main()
