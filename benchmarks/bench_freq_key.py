"""A/B of one fix, in one process: the rotary table keyed by frequencies read from the device at every call (as before,
`tuple(inv_freq.tolist())`, which waits for the GPU twice per layer) against `resm.fast.freq_key` (read once per buffer).
Jobs: 12 training steps (150M architecture, bf16 autocast, 16,384-token mini batches) and `embed_records` on the
32-RNA workload of bench_embed.py with batch_tokens=0 (bf16, fp32) and 16,384-token batches (bf16); 3 alternating rounds
after a warm-up. batch_tokens=0 means one record per batch since the fix after e283028; the run recorded in 01a_fast, at e283028, got the
default 4,096-token batches there.
Without a GPU it runs a tiny model as a dry run. Usage: python benchmarks/bench_freq_key.py
"""
import statistics, sys, time, torch
sys.path.insert(0, "benchmarks")
from bench_embed import workload
import resm.fast as fast
from resm.model import tiny_model
from resm.features import embed_records
from resm.train import TrainConfig, mlm_data, mlm_train_batches, mlm_loss, make_optimizer, autocast, _to
DEV = "cuda" if torch.cuda.is_available() else "cpu"; SMALL = DEV == "cpu"
L, D, H = (2, 64, 4) if SMALL else (30, 640, 20)
sync = torch.cuda.synchronize if DEV == "cuda" else (lambda: None)
new_key = fast.freq_key; old_key = lambda f: tuple(f.tolist())
m, tok = tiny_model(L, D, H, seed=0); m.to(DEV)
recs = list(workload().items())[: (4 if SMALL else 32)]; nt = sum(len(s) for _, s in recs)
cfg = TrainConfig(data=["mini"], batch_tokens=16384, dtype="bf16", max_len=1024); dev = torch.device(DEV)
mb = mlm_train_batches(mlm_data(cfg), tok, cfg); batches = [_to(b, dev) for e in range(3) for b in mb(e)][:16]
opt = make_optimizer(m, cfg)
def train(n=12):
    m.train()
    for b in batches[:n]:
        with autocast(cfg, dev): out = mlm_loss(m, b); (out["loss"] * out["n_tokens"]).backward()
        torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0); opt.step(); opt.zero_grad(set_to_none=True)
    m.eval()
def emb(dt, bt): list(embed_records(m, tok, recs, dtype=dt, batch_tokens=bt))
def timed(f):
    sync(); t = time.perf_counter(); f(); sync(); return time.perf_counter() - t
jobs = {"train step (ms)": (lambda: train(), lambda t: t / 12 * 1e3),
        "embed bf16 batch_tokens=0 (nt/s)": (lambda: emb("bf16", 0), lambda t: nt / t),
        "embed fp32 batch_tokens=0 (nt/s)": (lambda: emb("fp32", 0), lambda t: nt / t),
        "embed bf16 batched (nt/s)": (lambda: emb("bf16", 16384), lambda t: nt / t)}
res = {(j, k): [] for j in jobs for k in ("tolist per call", "read once")}
for j, (f, _) in jobs.items():
    for k, key in (("tolist per call", old_key), ("read once", new_key)): fast.freq_key = key; f()   # warm-up
for rep in range(3):
    for j, (f, conv) in jobs.items():
        for k, key in (("tolist per call", old_key), ("read once", new_key)):
            fast.freq_key = key; res[(j, k)].append(conv(timed(f)))
print("device:", torch.cuda.get_device_name(0) if DEV == "cuda" else "cpu", torch.__version__)
print("| job | frequencies read at every call | read once per buffer | runs (every call; once) |\n|---|---|---|---|")
for j in jobs:
    a, b = res[(j, "tolist per call")], res[(j, "read once")]
    print(f"| {j} | {statistics.median(a):,.1f} | {statistics.median(b):,.1f} | {', '.join(f'{x:,.0f}' for x in a)}; {', '.join(f'{x:,.0f}' for x in b)} |")
