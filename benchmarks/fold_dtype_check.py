"""Is `resm fold --dtype bf16` the same fold as fp32? Decoded pairs of every mini-benchmark test RNA, both precisions.

The model is a trained one (default: the `kdny` run that `make reproduce` trains, under cache/mini/models/kdny); the
head is its zero-shot probe (fitted on the `lr` split and cached, as `resm fold` does). For each test RNA the script
folds in fp32 and in bf16 with the same decoding (`resm fold`'s defaults: threshold 0.5, max-weight matching, minimum
hairpin loop 3) and also at a lower threshold (--threshold2), where many more pairs are decoded and differences would
show. It prints how many RNAs decode to identical pair lists, the pairs in all, and the largest probability difference.
With --sdpa the weights stay fp32 and only the attention of the heads the probe does not read runs in bf16
(`resm fold --sdpa-dtype bf16`): the maps the probe reads are fp32, and the other heads' output is bf16-rounded.

Usage: python benchmarks/fold_dtype_check.py [--model cache/mini/models/kdny] [--max-seqs 0] [--threshold2 0.1] [--sdpa]
"""
import argparse, sys, time
from pathlib import Path
import numpy as np

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=str(Path(__file__).resolve().parents[1]/"cache"/"mini"/"models"/"kdny"))
    ap.add_argument("--max-seqs", type=int, default=0, help="test RNAs to fold (0: all)")
    ap.add_argument("--threshold2", type=float, default=0.1, help="a second, lower decoding threshold")
    ap.add_argument("--dtype", default="bf16", choices=["bf16", "fp16"])
    ap.add_argument("--sdpa", action="store_true", help="fp32 weights; only the attention of heads the probe does not read in --dtype")
    a = ap.parse_args()
    if not Path(a.model).exists(): sys.exit(f"error: no trained model at {a.model}: run `make reproduce` first, or pass --model")
    import torch
    from resm.model import load_model
    from resm.probe import zeroshot_probe
    from resm.fast import cast_model
    from resm.decode import decode_pairs
    from resm.data import load_mini_benchmark
    m, tok = load_model(a.model, device="cpu")
    probe = zeroshot_probe(m, tok)
    low = m if a.sdpa else cast_model(m, a.dtype)
    kw = dict(dtype="fp32", sdpa_dtype=a.dtype) if a.sdpa else dict(dtype=a.dtype)
    df = load_mini_benchmark(); test = df[df.split == "test"].sort_values("id")
    if a.max_seqs: test = test.head(a.max_seqs)
    same = {0.5: 0, a.threshold2: 0}; pairs = {0.5: 0, a.threshold2: 0}; dmax = 0.0; t0 = time.perf_counter()
    for r in test.itertuples():
        P32 = probe.predict(m, tok, r.sequence, dtype="fp32")
        Plo = probe.predict(low, tok, r.sequence, **kw)
        dmax = max(dmax, float(np.abs(P32 - Plo).max()))
        for t in same:
            p32 = decode_pairs(P32, t, seq=r.sequence); plo = decode_pairs(Plo, t, seq=r.sequence)
            same[t] += p32 == plo; pairs[t] += len(p32)
    print(f"model {a.model} ({m.num_layers} layers x {m.attention_heads} heads); probe: {probe.n_nonzero} non-zero weights; "
          f"{len(test)} mini-benchmark test RNAs, {sum(map(len, test.sequence))} nt; {time.perf_counter() - t0:.0f} s")
    name = f"{a.dtype} attention of unread heads" if a.sdpa else a.dtype
    print(f"compared: fp32 against {name}; largest |P_fp32 - P_{a.dtype}|: {dmax:.2e}")
    print(f"| threshold | RNAs with identical decoded pairs (fp32 vs {a.dtype}) | pairs decoded in fp32 |\n|---|---|---|")
    for t in same: print(f"| {t} | {same[t]} of {len(test)} | {pairs[t]} |")

if __name__ == "__main__": main()
