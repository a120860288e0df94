"""Positive controls of the supervised structure head on tRNAs, each a short CPU budget.

1. A 2-D head that sees both bases of every pair and a neighbourhood as wide as a tRNA must score far above chance on
   held-out tRNAs. If it does not, batches, loss, threshold tuning, decoding or scoring is broken. The nucleotide
   one-hots alone are enough for this (with every attention channel zeroed the head still reached F1 0.73, measured
   once), so this control says nothing about the backbone's features.
2. The attention path: with the true pairs planted in one head's maps (`resm.probe.plant_pairs`), the head must read
   them and score near 1. Measured once: F1 0.995 with each RNA's own pairs planted, 0.783 with another tRNA's pairs
   planted instead, so maps that do not line up with their sequence, window or layer make it fail.

The test split shares no sequence with training, and the threshold is tuned on `val` only, so both controls can fail."""
import contextlib
from unittest import mock

import pandas as pd
import pytest
import torch

import resm.sshead as SH
from resm.data import load_mini_benchmark
from resm.finetune_ss import finetune_ss
from resm.model import load_model
from resm.probe import plant_pairs
from resm.vienna import bracket_pairs

STEPS, BATCH = 300, 4                      # ≈ 1 CPU-minute on a quiet core
MIN_F1 = 0.5                               # random head: ≈ 0.02; ViennaRNA on these tRNAs: ≈ 0.6
MIN_F1_PLANTED = 0.9                       # one-hots alone: ≈ 0.73–0.78 (above)
HEAD = dict(channels=16, blocks=6, dilations=(1, 2, 4, 8, 16, 32), crop=128)


@pytest.fixture(scope="module")
def trna_csv(tmp_path_factory):
    df = load_mini_benchmark(); t = df[(df.family == "tRNA") & df.has_structure]
    train = t[t.split.isin(["train", "lr"])].assign(split="train")
    val, test = t[t.split == "val"].head(40), t[t.split == "test"].head(60)
    assert not set(test.sequence) & (set(train.sequence) | set(val.sequence))      # no test sequence seen in training or tuning
    path = tmp_path_factory.mktemp("trna")/"trna.csv"
    pd.concat([train, val, test])[["id", "family", "sequence", "structure", "split"]].to_csv(path, index=False)
    return path


def test_head_learns_trna_structure(trna_csv, tmp_path):
    torch.set_num_threads(1)
    m = finetune_ss("tiny", str(trna_csv), tmp_path, max_steps=STEPS, batch_size=BATCH, vienna=False, eval_max_seqs=40,
                    head=HEAD, train=dict(lr=3e-3, eval_every=STEPS))
    test = m["results"]["test"]["resm"]
    assert test["n"] == 60
    assert test["f1"] >= MIN_F1, f"tRNA test F1 {test['f1']:.3f} < {MIN_F1} after {STEPS} steps (val F1 {m['val_f1']:.3f}, threshold {m['threshold']})"



@contextlib.contextmanager
def planted(maps:dict):
    "Inside the block, the structure head's backbone attention (training and prediction) is `maps[token ids][layer]`."
    cur, real = {}, SH.fast_forward
    def forward(model, tokens, *a, attn_hook=None, **k):
        cur["A"] = torch.as_tensor(maps[tuple(tokens[0].tolist())])           # (layers, H, T, T)
        def hook(i, attn, x, kpm): cur["layer"] = i; return attn_hook(i, attn, x, kpm)
        return real(model, tokens, *a, attn_hook=hook, **k)
    probs = lambda attn, x, kpm=None, rows=None: cur["A"][cur["layer"]][None, :, rows]   # (1, H, r, T)
    with mock.patch.object(SH, "fast_forward", forward), mock.patch.object(SH, "attention_probs", probs): yield


def test_head_reads_planted_attention(trna_csv, tmp_path):
    torch.set_num_threads(1)
    model, tok = load_model("tiny", device="cpu")
    df = pd.read_csv(trna_csv)
    maps = {tuple(tok.encode(r.sequence).tolist()): plant_pairs(len(r.sequence), bracket_pairs(r.structure), model.num_layers, model.attention_heads)
            for r in df.itertuples()}
    with planted(maps):
        m = finetune_ss("tiny", str(trna_csv), tmp_path, max_steps=STEPS, batch_size=BATCH, vienna=False, eval_max_seqs=40,
                        head=HEAD, train=dict(lr=3e-3, eval_every=STEPS))
    test = m["results"]["test"]["resm"]
    assert test["n"] == 60
    assert test["f1"] >= MIN_F1_PLANTED, f"planted-attention tRNA test F1 {test['f1']:.3f} < {MIN_F1_PLANTED}: the head does not read its attention maps"
