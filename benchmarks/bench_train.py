"""Train-step throughput: resm's fused-attention path (`fast_forward`) vs fair-esm's own forward, same weights and batch.

One train step = forward, masked-LM cross-entropy over all positions, backward. Random weights (speed does not depend
on them). Prints a markdown table of tokens/s (median over `--reps` timed steps after one warm-up step).

    .venv/bin/python benchmarks/bench_train.py                       # CPU, 2 threads, small + ESM2-150M, fp32 + bf16
    .venv/bin/python benchmarks/bench_train.py --device cuda --batch 8 --seq-len 1024 --peak-tflops 989
"""
import argparse, os, platform, statistics, time
import torch
import torch.nn.functional as F
from resm.model import tiny_model
from resm.fast import fast_forward

SIZES = {"small (6L, 320, 20 heads = esm2_t6_8M arch)": (6, 320, 20), "ESM2-150M (30L, 640, 20 heads)": (30, 640, 20)}


def step(model, tokens, path, dtype, device):
    "One forward + loss + backward; returns seconds."
    if device.type == "cuda": torch.cuda.synchronize()
    t0 = time.perf_counter()
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=dtype == "bf16"):
        logits = fast_forward(model, tokens)["logits"] if path == "resm fast_forward" else model(tokens)["logits"]
        loss = F.cross_entropy(logits.float().flatten(0, 1), tokens.flatten())
    loss.backward()
    model.zero_grad(set_to_none=True)
    if device.type == "cuda": torch.cuda.synchronize()
    return time.perf_counter() - t0


def flops_per_token(L, D, T, n_params):
    "nanoGPT/PaLM estimate for a train step: 6N + 12·L·D·T."
    return 6 * n_params + 12 * L * D * T


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--seq-len", type=int, default=256, help="tokens per sequence, BOS/EOS included")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    ap.add_argument("--dtypes", nargs="+", default=["fp32", "bf16"])
    ap.add_argument("--peak-tflops", type=float, default=0.0, help="device peak for MFU (e.g. 989 for H100/H200 bf16); 0 = skip")
    a = ap.parse_args()
    torch.set_num_threads(a.threads); device = torch.device(a.device)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch threads {a.threads}, device {device}"
          f"{' ' + torch.cuda.get_device_name(device) if device.type == 'cuda' else ''}; load average {os.getloadavg()[0]:.1f}; "
          f"torch {torch.__version__}; batch {a.batch} x {a.seq_len} tokens\n")
    print("| model | params | dtype | path | tokens/s | s/step | speed-up |" + (" MFU |" if a.peak_tflops else ""))
    print("|---|---|---|---|---|---|---|" + ("---|" if a.peak_tflops else ""))
    for name in a.sizes:
        L, D, H = SIZES[name]
        model, tok = tiny_model(L, D, H, seed=0); model.to(device).train()
        n = sum(p.numel() for p in model.parameters())
        g = torch.Generator().manual_seed(0)
        tokens = tok.nt_ids[torch.randint(4, (a.batch, a.seq_len), generator=g)]
        tokens[:, 0], tokens[:, -1] = tok.bos_idx, tok.eos_idx
        tokens = tokens.to(device)
        for dtype in a.dtypes:
            base = None
            for path in ("fair-esm forward", "resm fast_forward"):
                step(model, tokens, path, dtype, device)                       # warm-up
                sec = statistics.median(step(model, tokens, path, dtype, device) for _ in range(a.reps))
                tps = a.batch * a.seq_len / sec; base = base or tps
                mfu = f" {100 * tps * flops_per_token(L, D, a.seq_len, n) / (a.peak_tflops * 1e12):.1f}% |" if a.peak_tflops else ""
                print(f"| {name} | {n / 1e6:.1f}M | {dtype} | {path} | {tps:,.0f} | {sec:.2f} | {tps / base:.2f}x |{mfu}", flush=True)


if __name__ == "__main__":
    main()
