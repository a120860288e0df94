"The bundled mini-benchmark, token-budget batching, random crops and the streaming FASTA dataset."
import gzip
import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st
from resm.data import (load_mini_benchmark, token_budget_batches, random_crop, FastaStream, collate_tokens,
                       HELDOUT_FAMILIES)
from resm.io import pairs_from_dotbracket
from resm.tokenizer import RNATokenizer

@pytest.fixture(scope="module")
def bench(): return load_mini_benchmark()

def test_columns_and_dedup(bench):
    assert list(bench.columns[:6]) == ["id", "family", "sequence", "structure", "length", "split"]
    assert bench.sequence.is_unique and bench.id.is_unique
    assert (bench.length == bench.sequence.str.len()).all() and (bench.structure.str.len() == bench.length).all()
    assert set("".join(bench.sequence)) <= set("ACGUX")
    for db in bench.structure: pairs_from_dotbracket(db)  # every structure parses

def test_splits_are_family_aware(bench):
    assert set(bench.split) == {"lr", "train", "val", "test", "heldout_family"}
    assert 20 <= (bench.split == "lr").sum() <= 40
    seen = set(bench[bench.split.isin(["train", "val", "lr"])].family)
    held = set(bench[bench.split == "heldout_family"].family)
    assert held == set(HELDOUT_FAMILIES) and not (seen & held)
    assert set(bench[bench.split == "test"].family) <= seen
    assert len(bench) == 1747                      # every bundled sequence, once (no cap by default)

def test_real_long_and_pseudoknotted(bench):
    ssu = bench[bench.family == "SSU_rRNA"]
    assert len(ssu) == 4 and ssu.length.min() > 1400
    pk = bench[bench.structure.str.contains(r"[\[\]]")]
    assert {"RNaseP_bact", "PK-HAV"} <= set(pk.family)
    assert (bench[bench.family == "tRNA"].length.between(55, 130)).all()

def test_deterministic_and_cap(bench):
    again = load_mini_benchmark()
    assert again.equals(bench)
    small = load_mini_benchmark(max_per_family=20)
    assert small.groupby("family").size().max() <= 20
    other = load_mini_benchmark(seed=1)
    assert set(other[other.split == "test"].id) != set(bench[bench.split == "test"].id)  # the seed changes the split
    assert set(load_mini_benchmark(max_per_family=20, seed=1).id) != set(small.id)      # ... and a capped subsample

@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(1, 500), max_size=60), st.integers(10, 2000), st.booleans(), st.integers(0, 5))
def test_token_budget_batches(lengths, budget, shuffle, seed):
    batches = token_budget_batches(lengths, budget, shuffle=shuffle, seed=seed)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for b in batches:
        assert len(b) == 1 or len(b) * (max(lengths[i] for i in b) + 2) <= budget
    assert batches == token_budget_batches(lengths, budget, shuffle=shuffle, seed=seed)

@settings(max_examples=100, deadline=None)
@given(st.text(alphabet="ACGU", max_size=80), st.integers(1, 50), st.integers(0, 10**6))
def test_random_crop(seq, max_len, seed):
    out = random_crop(seq, max_len, np.random.default_rng(seed))
    assert len(out) == min(len(seq), max_len) and out in seq

def test_fasta_stream(tmp_path):
    p = tmp_path / "c.fa.gz"
    with gzip.open(p, "wt") as f:
        for k in range(30): f.write(f">r{k}\r\n{'ACGT' * (k + 1)}\r\n")
    tok = RNATokenizer()
    ds = FastaStream(p, tok, max_len=16, seed=3)
    items = list(ds)
    assert [it["id"] for it in items] == [f"r{k}" for k in range(30)]
    assert all(it["tokens"][0] == tok.bos_idx and it["tokens"][-1] == tok.eos_idx for it in items)
    assert all(len(it["tokens"]) == min(4 * (k + 1), 16) + 2 for k, it in enumerate(items))
    assert [it["sequence"] for it in items] == [it["sequence"] for it in FastaStream(p, tok, max_len=16, seed=3)]
    b = collate_tokens(items[:3], tok.padding_idx)
    assert b["tokens"].shape == (3, 14) and (b["tokens"][0, 6:] == tok.padding_idx).all()
    dl = torch.utils.data.DataLoader(ds, batch_size=4, num_workers=2, collate_fn=collate_tokens)
    assert sorted(i for batch in dl for i in batch["ids"]) == sorted(f"r{k}" for k in range(30))
