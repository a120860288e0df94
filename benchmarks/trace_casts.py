"""Which calls cast tensors in one training step of `resm train`'s bf16 autocast path (CPU; counts, not times).

A 30-layer model (width 64, 4 heads: the 150M architecture's depth, narrow so it runs in seconds) takes one warm-up
step and one traced step on mini batches of 2,048 tokens. A dispatch mode counts every aten op; each cast (`_to_copy`)
is named by the innermost resm, torch.nn or esm source line that made it, or by the autograd engine in backward.
Usage: python benchmarks/trace_casts.py
"""
import collections, traceback
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from resm.train import TrainConfig, mlm_data, mlm_train_batches, mlm_loss, make_optimizer, autocast
from resm.model import tiny_model

cfg = TrainConfig(data=["mini"], batch_tokens=2048, dtype="bf16", max_len=256)
m, tok = tiny_model(30, 64, 4, seed=0); m.train(); dev = torch.device("cpu")
opt = make_optimizer(m, cfg)
batches = list(mlm_train_batches(mlm_data(cfg), tok, cfg)(0))[:2]

def step(b):
    with autocast(cfg, dev):
        out = mlm_loss(m, b); (out["loss"] * out["n_tokens"]).backward()
    torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0); opt.step(); opt.zero_grad(set_to_none=True)

ops, casts = collections.Counter(), collections.Counter()
class Count(TorchDispatchMode):
    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.overloadpacket.__name__; ops[name] += 1
        if name == "_to_copy":
            st = [f for f in traceback.extract_stack() if any(s in f.filename for s in ("/resm/", "/torch/nn/", "/esm/"))]
            where = f"{st[-1].filename.split('/')[-1]}:{st[-1].lineno} {st[-1].line.strip()[:60]}" if st else "autograd engine (backward)"
            casts[(where, str(args[0].dtype), str((kwargs or {}).get("dtype")))] += 1
        return func(*args, **(kwargs or {}))

step(batches[0])
with Count(): step(batches[1])
print(f"aten ops in one step: {sum(ops.values()):,}; casts: {ops['_to_copy']:,}")
print("| casts | made by | from | to |\n|---|---|---|---|")
for (where, a, b), n in casts.most_common(): print(f"| {n} | {where} | {a} | {b} |")
