"""GPU training throughput of `resm train` (ESM2-150M architecture, random init, bf16 autocast, mini data).

Part 1 runs `resm train` as whole processes for 40 steps: the default AdamW and a fused AdamW (torch.optim.AdamW with
fused=True, patched in before the run), at 16,384 and 65,536 batch tokens, and prints the median tokens/s of steps 11+
and the MFU (6 * 148M * tokens/s over 989 TFLOP/s, the H100/H200 dense bf16 peak).
Part 2 times 12 in-process steps on batches already on the device, with and without clipping and the optimizer step,
and prints a torch.profiler table of 6 more steps. Without a GPU it runs a tiny model as a dry run.
Usage: TP=/tmp/tp python benchmarks/bench_train_gpu.py   (benchmarks/gpu_check.sh gives the one-line summary)
"""
import csv, os, statistics, subprocess, sys, time
import torch
DEV = "cuda" if torch.cuda.is_available() else "cpu"
SMALL = DEV == "cpu"                                     # a dry run here: tiny sizes
ARCH = "random:4x64x4" if SMALL else "random:30x640x20"
STEPS = 12 if SMALL else 40
OUT = os.environ.get("TP", "/tmp/tp")
FUSED = "import torch\n_A = torch.optim.AdamW\nclass _F(_A):\n    def __init__(s, *a, **k): super().__init__(*a, fused=True, **k)\ntorch.optim.AdamW = _F\n"
def cli(tag, bt, pre=""):
    out = f"{OUT}/{tag.replace(' ', '_')}_{bt}"
    code = pre + "import sys\nfrom resm.cli import main\nsys.exit(main(sys.argv[1:]))"
    cmd = [sys.executable, "-c", code, "train", "--out", out, "--model", ARCH, "--data", "mini", "--max-steps", str(STEPS), "--dtype", "bf16",
           "--batch-tokens", str(bt), "--max-len", "1024", "--no-probe", "--eval-every", "0", "--save-every", "1000", "--warmup-steps", "5", "--no-progress"]
    t = time.perf_counter(); r = subprocess.run(cmd, capture_output=True, text=True); wall = time.perf_counter() - t
    if r.returncode: print(tag, "FAILED", r.stderr[-1500:]); return
    rows = [x for x in csv.DictReader(open(f"{out}/metrics.csv")) if x["split"] == "train"]
    tps = statistics.median(float(x["tokens_per_s"]) for x in rows[10:])
    print(f"| {tag} | {bt} | {tps:,.0f} | {6 * 148e6 * tps / 989e12:.1%} | {wall:.0f} s |", flush=True)
print("device:", torch.cuda.get_device_name(0) if DEV == "cuda" else "cpu", "torch", torch.__version__)
print("| variant | batch tokens | tokens/s (median, steps 11+) | MFU | process wall |\n|---|---|---|---|---|")
for tag, bt, pre in (("baseline", 16384, ""), ("fused AdamW", 16384, FUSED), ("baseline", 65536, ""), ("fused AdamW", 65536, FUSED))[:(2 if SMALL else 4)]:
    cli(tag, bt, pre)

# profiler breakdown, in-process, batch 16384
from resm.train import TrainConfig, mlm_data, mlm_train_batches, mlm_loss, make_optimizer, autocast, _to
from resm.model import tiny_model
from torch.profiler import profile, ProfilerActivity
cfg = TrainConfig(data=["mini"], batch_tokens=16384, dtype="bf16", max_len=1024)
L, D, H = (4, 64, 4) if SMALL else (30, 640, 20)
m, tok = tiny_model(L, D, H, seed=0); m.to(DEV).train(); dev = torch.device(DEV)
opt = make_optimizer(m, cfg)
mb = mlm_train_batches(mlm_data(cfg), tok, cfg)
batches = [_to(b, dev) for e in range(4) for b in mb(e)][:24]
sync = torch.cuda.synchronize if DEV == "cuda" else (lambda: None)
def step(b, full=True):
    with autocast(cfg, dev):
        out = mlm_loss(m, b); (out["loss"] * out["n_tokens"]).backward()
    if full: torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0); opt.step()
    opt.zero_grad(set_to_none=True)
for b in batches[:4]: step(b)
ntok = sum(int(b["tokens"].ne(tok.padding_idx).sum()) for b in batches[4:16]); padded = sum(b["tokens"].numel() for b in batches[4:16])
for full in (True, False):
    sync(); t = time.perf_counter()
    for b in batches[4:16]: step(b, full)
    sync(); dt = time.perf_counter() - t
    print(f"in-process, pre-moved batches, {'fwd+bwd+clip+AdamW' if full else 'fwd+bwd only'}: {dt / 12 * 1e3:.1f} ms/step, {ntok / dt:,.0f} tokens/s "
          f"({padded / 12:,.0f} padded tokens/step, {ntok / padded:.0%} real)")
acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if DEV == "cuda" else [])
with profile(activities=acts) as prof:
    for b in batches[16:22]: step(b)
    sync()
key = "self_cuda_time_total" if DEV == "cuda" else "self_cpu_time_total"
print(prof.key_averages().table(sort_by=key, row_limit=28, max_name_column_width=60))
