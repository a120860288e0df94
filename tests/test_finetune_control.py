"""Positive control of the supervised structure head: on tRNAs, a short CPU budget must learn the cloverleaf.

A 2-D head that sees both bases of every pair and a neighbourhood as wide as a tRNA must score far above chance on
held-out tRNAs. If it does not, features, batches, loss, threshold tuning, decoding or scoring is broken. The test
split shares no sequence with training, and the threshold is tuned on `val` only, so the control can fail."""
import pandas as pd
import pytest
import torch

from resm.data import load_mini_benchmark
from resm.finetune_ss import finetune_ss

STEPS, BATCH = 300, 4                      # ≈ 1 CPU-minute on a quiet core
MIN_F1 = 0.5                               # random head: ≈ 0.02; ViennaRNA on these tRNAs: ≈ 0.6


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
                    head=dict(channels=16, blocks=6, dilations=(1, 2, 4, 8, 16, 32), crop=128), train=dict(lr=3e-3, eval_every=STEPS))
    test = m["results"]["test"]["resm"]
    assert test["n"] == 60
    assert test["f1"] >= MIN_F1, f"tRNA test F1 {test['f1']:.3f} < {MIN_F1} after {STEPS} steps (val F1 {m['val_f1']:.3f}, threshold {m['threshold']})"

