"""On a CUDA device: `embed_records` with the records padded into batches against laid back to back (`packed`).

The 32-RNA workload of bench_embed.py (15,120 nt), the ESM2-150M and -650M architectures with random weights,
fp32/bf16/fp16, length-sorted batches of --batch-tokens (the default 4,096 and 16,384). The two layouts alternate --reps rounds after one warm-up pass each;
the table gives the median throughput of each and their ratio. It decides `embed_records`' default layout on a GPU.
Usage: python benchmarks/bench_packed_gpu.py [--reps 5] [--workdir /tmp/resm_bench_packed]
"""
import argparse, statistics, sys, time
from pathlib import Path
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_embed import make_model, workload

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=5); ap.add_argument("--batch-tokens", type=int, nargs="+", default=[4096, 16384])
    ap.add_argument("--workdir", default="/tmp/resm_bench_packed")
    a = ap.parse_args()
    if not torch.cuda.is_available(): sys.exit("error: bench_packed_gpu.py needs a CUDA device (torch.cuda.is_available() is False)")
    from resm.model import load_model
    from resm.features import embed_records
    w = Path(a.workdir); w.mkdir(parents=True, exist_ok=True)
    recs = list(workload().items()); ntot = sum(len(s) for _, s in recs)
    print(f"{torch.cuda.get_device_name(0)}; torch {torch.__version__}; {len(recs)} records, {ntot:,} nt; {a.reps} rounds\n")
    print("| model | dtype | batch tokens | padded nt/s | packed nt/s | packed / padded |\n|---|---|---|---|---|---|")
    for arch, spec in (("150M", (30, 640, 20, "esm2_t30_150M_random")), ("650M", (33, 1280, 20, "esm2_t33_650M_random"))):
        m, tok = load_model(make_model(w, *spec), device="cuda")
        for dt, bt in [(d, b) for d in ("fp32", "bf16", "fp16") for b in a.batch_tokens]:
            def run(pk):
                torch.cuda.synchronize(); t = time.perf_counter()
                list(embed_records(m, tok, recs, dtype=dt, batch_tokens=bt, packed=pk)); torch.cuda.synchronize()
                return time.perf_counter() - t
            run(False); run(True)                                               # warm-up: kernels, casts, allocator
            t = {False: [], True: []}
            for _ in range(a.reps):
                for pk in (False, True): t[pk].append(run(pk))
            pad, pak = statistics.median(t[False]), statistics.median(t[True])
            print(f"| {arch} | {dt} | {bt:,} | {ntot / pad:,.0f} | {ntot / pak:,.0f} | {pad / pak:.2f}x |", flush=True)
        del m; torch.cuda.empty_cache()

if __name__ == "__main__": main()
