"End-to-end tests of `resm fold`, the zero-shot probe and head loading (tiny models, CPU)."
import ast, sys, types
from pathlib import Path
import numpy as np
import pytest
import torch
from resm.io import write_fasta, read_bpseq, read_ct, pairs_from_dotbracket
from resm.model import tiny_model, export_fair_esm, load_model
from resm.probe import Probe, fit_probe, zeroshot_probe
from resm.fold import fold_fasta, load_fold_head

RNG = np.random.default_rng(1)
def rand_seq(n): return "".join(RNG.choice(list("ACGU"), n))

@pytest.fixture
def cli(capsys):
    "Run the wired `resm` CLI in-process."
    from resm.cli import main
    def run(*args):
        capsys.readouterr(); rc = main([str(a) for a in args])
        return rc, capsys.readouterr().err
    return run

@pytest.fixture(scope="module")
def probe_file(tmp_path_factory):
    "A probe for `--model tiny` (2 layers × 4 heads) with a high bias, so that pairs get predicted."
    rng = np.random.default_rng(0)
    p = Probe(rng.normal(0, 1, 8).astype(np.float32), 2.0, 6, dict(num_layers=2, attention_heads=4))
    return p.save(tmp_path_factory.mktemp("probe")/"probe.json")

def test_cli_formats_and_probs(tmp_path, cli, probe_file):
    seqs = {"a": rand_seq(40), "b/2": rand_seq(25), "c": rand_seq(60)}
    fa = write_fasta(tmp_path/"in.fa", seqs)
    for fmt in ("dbn", "bpseq", "ct"):
        rc, err = cli("fold", fa, "--model", "tiny", "--out", tmp_path/fmt, "--head", probe_file, "--format", fmt, "--probs", "--quiet")
        assert rc == 0, err
    dbn = (tmp_path/"dbn"/"c.dbn").read_text().splitlines()
    assert dbn[:2] == [">c", seqs["c"]] and len(dbn[2]) == 60
    pairs = pairs_from_dotbracket(dbn[2]); assert pairs
    assert all(j - i - 1 >= 3 for i, j in pairs) and len({b for p in pairs for b in p}) == 2 * len(pairs)
    assert read_bpseq(tmp_path/"bpseq"/"c.bpseq").pairs == pairs
    assert read_ct(tmp_path/"ct"/"c.ct")[0].pairs == pairs
    P = np.load(tmp_path/"dbn"/"b_2_probs.npy"); assert P.shape == (25, 25); np.testing.assert_allclose(P, P.T)
    assert (tmp_path/"dbn"/"manifest.tsv").read_text().count("\n") == 4

def test_resume_and_settings(tmp_path, probe_file):
    fa = write_fasta(tmp_path/"in.fa", {"a": rand_seq(30), "b": rand_seq(31)})
    assert fold_fasta(fa, "tiny", tmp_path/"o", head=probe_file, progress=False)["done"] == 2
    (tmp_path/"o"/".c.dbn.x1.tmp").write_text("partial")
    fa = write_fasta(tmp_path/"in.fa", {"a": rand_seq(30), "b": rand_seq(31), "c": rand_seq(20)})
    res = fold_fasta(fa, "tiny", tmp_path/"o", head=probe_file, progress=False)
    assert (res["done"], res["skipped"]) == (1, 2) and not list((tmp_path/"o").glob(".*.tmp"))
    with pytest.raises(ValueError, match="other settings"):
        fold_fasta(fa, "tiny", tmp_path/"o", head=probe_file, threshold=0.9, progress=False)

@pytest.mark.parametrize("text,needle", [
    (">a\nACGU\n>b\nAC-GUJ\n", "'J' at position 6 of record b"),
    (">a\nACGU\n>b\n", "record 'b' (record #2) is empty"),
    (">a\nACGU\n>a\nAC\n", "duplicate id 'a'"),
])
def test_bad_input(tmp_path, cli, probe_file, text, needle):
    (tmp_path/"in.fa").write_text(text)
    rc, err = cli("fold", tmp_path/"in.fa", "--model", "tiny", "--out", tmp_path/"o", "--head", probe_file, "--quiet")
    assert rc != 0 and needle in err, err
    assert not (tmp_path/"o").exists()
    rc, err = cli("fold", tmp_path/"in.fa", "--model", "tiny", "--out", tmp_path/"s", "--head", probe_file, "--on-invalid", "skip", "--quiet")
    assert rc == 0 and "skipping" in err and (tmp_path/"s"/"a.dbn").exists()

def test_zeroshot_probe_fitted_on_lr_split_and_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("RESM_CACHE", str(tmp_path/"cache"))
    model, tok = tiny_model()
    p = zeroshot_probe(model, tok)
    assert p.weight.shape == (8,) and p.arch["source"] == "fit" and p.arch["n_records"] == 30
    cached = list((tmp_path/"cache"/"probes").glob("*.json")); assert len(cached) == 1
    import resm.probe
    monkeypatch.setattr(resm.probe, "fit_probe", lambda *a, **k: pytest.fail("refitted instead of using the cache"))
    np.testing.assert_array_equal(zeroshot_probe(model, tok).weight, p.weight)

def test_contact_head_of_checkpoint(tmp_path):
    "A released-layout checkpoint with its contact regression: `--head zeroshot` uses it, equal to fair-esm's predict_contacts."
    from resm.model import save_like_release
    m, _ = tiny_model(num_layers=2, embed_dim=32, attention_heads=4, seed=5)
    spec = save_like_release(m, tmp_path/"RESM-tiny-KDNY.ckpt")
    model, tok = load_model(spec, device="cpu")
    assert model.resm_meta["has_contact_head"] and model.resm_meta["init"] == "resm-release"
    s = rand_seq(33)
    fold_fasta(write_fasta(tmp_path/"in.fa", {"s": s}), (model, tok), tmp_path/"o", probs=True, threshold=0.9, progress=False)
    P = np.load(tmp_path/"o"/"s_probs.npy")
    with torch.no_grad(): ref = model.predict_contacts(tok.encode(s)[None])[0].numpy()
    band = np.abs(np.subtract.outer(np.arange(33), np.arange(33))) < 6
    np.testing.assert_allclose(P[~band], ref[~band], atol=1e-5); assert (P[band] == 0).all()

def test_fold_never_imports_the_training_code():
    "`resm fold --head DIR` needs only `resm.sshead`, which sits below both folding and fine-tuning."
    import subprocess
    code = "import sys, resm.fold; print(' '.join(sorted(m for m in sys.modules if m.startswith('resm.'))))"
    mods = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert "resm.sshead" in mods and not {"resm.finetune_ss", "resm.finetune_reg", "resm.train"} & set(mods), mods

def test_head_folder(tmp_path, monkeypatch):
    import resm.fold
    head = tmp_path/"head"; head.mkdir()
    with pytest.raises(ValueError, match="head.pt and head_config.json"): load_fold_head(head, None, None)
    (head/"head.pt").write_bytes(b""); (head/"head_config.json").write_text("{}")
    def predict_structure(model, tok, head, seq):
        P = np.zeros((len(seq), len(seq)), np.float32); P[0, -1] = P[-1, 0] = 0.9; return P
    monkeypatch.setattr(resm.fold, "load_head", lambda path: types.SimpleNamespace(cfg=types.SimpleNamespace(threshold=0.0), to=lambda device: None))
    monkeypatch.setattr(resm.fold, "predict_structure", predict_structure)
    fold_fasta(write_fasta(tmp_path/"in.fa", {"s": "GGGAAAACCC"}), "tiny", tmp_path/"o", head=head, progress=False)
    assert (tmp_path/"o"/"s.dbn").read_text().splitlines()[2] == "(........)"
    assert ",t=0.0," in (tmp_path/"o"/"manifest.tsv").read_text()     # the tuned 0.0 is used, not replaced by 0.5

def _knot_head(monkeypatch, knotted):
    "Make `fold_fasta` see a head whose prediction is 40 mutually crossing pairs for the ids in `knotted`."
    import resm.fold
    def predict(model, tok, seq):
        P = np.zeros((len(seq), len(seq)), np.float32)
        if seq.startswith("A" * 10): i = np.arange(40); P[i, i + 40] = P[i + 40, i] = 0.9
        else: P[0, -1] = P[-1, 0] = 0.9
        return P
    monkeypatch.setattr(resm.fold, "load_fold_head", lambda head, m, tok: types.SimpleNamespace(predict=predict, threshold=None))

def test_dbn_tiers_fail_only_that_record(tmp_path, monkeypatch, cli):
    _knot_head(monkeypatch, None)
    fa = write_fasta(tmp_path/"in.fa", {"a": "GGGAAAACCC", "knotty": "A" * 80, "z": "GGGGAAAACCCC"})
    rc, err = cli("fold", fa, "--model", "tiny", "--out", tmp_path/"o", "--quiet")
    lines = [l for l in err.splitlines() if "error:" in l]
    assert rc == 2 and len(lines) == 1 and "'knotty'" in lines[0] and "--format bpseq" in lines[0] and "in.fa" in lines[0], err
    assert "Traceback" not in err
    assert sorted(p.name for p in (tmp_path/"o").iterdir()) == ["a.dbn", "manifest.tsv", "z.dbn"]
    assert "knotty" not in (tmp_path/"o"/"manifest.tsv").read_text()
    for fmt in ("bpseq", "ct"):
        rc, err = cli("fold", fa, "--model", "tiny", "--out", tmp_path/fmt, "--format", fmt, "--quiet")
        assert rc == 0, err
    assert sum(1 for l in (tmp_path/"bpseq"/"knotty.bpseq").read_text().splitlines() if l.split()[2] != "0") == 80

def test_random_4000nt_bpseq(tmp_path, cli):
    "A random 4,000-nt RNA with a random tiny model and an eager probe: bpseq is written whatever the pairing."
    p = Probe(np.full(8, 0.5, np.float32), 3.0, 6, dict(num_layers=2, attention_heads=4)).save(tmp_path/"p.json")
    fa = write_fasta(tmp_path/"in.fa", {"r": rand_seq(4000)})
    rc, err = cli("fold", fa, "--model", "tiny", "--out", tmp_path/"o", "--head", p, "--format", "bpseq", "--quiet")
    assert rc == 0, err
    partner = {int(a) - 1: int(c) - 1 for a, _, c in map(str.split, (tmp_path/"o"/"r.bpseq").read_text().splitlines()) if c != "0"}
    assert len(partner) > 100 and all(partner[j] == i and abs(i - j) > 3 for i, j in partner.items())

def test_long_sequence(tmp_path):
    "2,000 nt: full length (no truncation) and windows."
    p = Probe(np.full(8, 0.1, np.float32), -4.0, 6, dict(num_layers=2, attention_heads=4)).save(tmp_path/"p.json")
    s = rand_seq(2000)
    fa = write_fasta(tmp_path/"in.fa", {"long": s})
    for long in ("full", "window"):
        fold_fasta(fa, "tiny", tmp_path/long, head=p, long=long, window=1000, progress=False)
        lines = (tmp_path/long/"long.dbn").read_text().splitlines()
        assert lines[1] == s and len(lines[2]) == 2000

def test_finetuned_head_folder(tmp_path):
    "A real head folder written by the fine-tuning module folds through `--head PATH`."
    from resm.sshead import SSHead, SSHeadConfig, save_head
    torch.manual_seed(0)
    save_head(SSHead(SSHeadConfig(num_layers=2, attention_heads=4, embed_dim=32, channels=8, blocks=1)), tmp_path/"head")
    fa = write_fasta(tmp_path/"in.fa", {"s": rand_seq(30)})
    res = fold_fasta(fa, "tiny", tmp_path/"o", head=tmp_path/"head", probs=True, progress=False)
    assert res["done"] == 1 and np.load(tmp_path/"o"/"s_probs.npy").shape == (30, 30)


def test_finetuned_head_decodes_as_tuned_and_refuses_other_backbones(tmp_path):
    "A head decodes with the canonical/min_loop it was tuned with unless told otherwise, and only on the backbone it was trained for."
    from resm.sshead import SSHead, SSHeadConfig, save_head
    torch.manual_seed(0)
    save_head(SSHead(SSHeadConfig(num_layers=2, attention_heads=4, embed_dim=32, channels=8, blocks=1, canonical=True, min_loop=5)), tmp_path/"head")
    fa = write_fasta(tmp_path/"in.fa", {"s": rand_seq(30)})
    fold_fasta(fa, "tiny", tmp_path/"o", head=tmp_path/"head", progress=False)
    assert ",canonical=True,min_loop=5" in (tmp_path/"o"/"manifest.tsv").read_text()
    fold_fasta(fa, "tiny", tmp_path/"o2", head=tmp_path/"head", canonical=False, min_loop=3, progress=False)
    assert ",canonical=False,min_loop=3" in (tmp_path/"o2"/"manifest.tsv").read_text()    # explicit settings win
    save_head(SSHead(SSHeadConfig(num_layers=3, attention_heads=4, embed_dim=32, channels=8, blocks=1)), tmp_path/"h3")
    with pytest.raises(ValueError, match=r"trained on another backbone: num_layers 3 \(this model: 2\)"):
        fold_fasta(fa, "tiny", tmp_path/"o3", head=tmp_path/"h3", progress=False)

from hypothesis import given, settings, strategies as st
from resm.decode import decode_pairs

@settings(max_examples=300, deadline=None)
@given(L=st.integers(0, 70), seed=st.integers(0, 2**32 - 1), min_loop=st.integers(0, 6), method=st.sampled_from(["matching", "greedy"]),
       canonical=st.booleans(), threshold=st.floats(0, 0.99), top_k=st.sampled_from([None, 1, 3, 8]), max_exact=st.sampled_from([None, 2, 300]),
       symmetric=st.booleans())
def test_decode_never_breaks_pairing_rules(L, seed, min_loop, method, canonical, threshold, top_k, max_exact, symmetric):
    "Whatever the scores: one partner per base, i < j, loops of at least `min_loop`, symmetrised score above the threshold, canonical pairs when asked."
    rng = np.random.default_rng(seed)
    P = rng.random((L, L)).astype(np.float32); P = (P + P.T) / 2 if symmetric else P
    seq = "".join(rng.choice(list("ACGUN"), L))
    pairs = decode_pairs(P, threshold, seq=seq, canonical=canonical, min_loop=min_loop, method=method, top_k=top_k, max_exact=max_exact)
    bases = [b for p in pairs for b in p]
    assert len(bases) == len(set(bases)) and pairs == sorted(pairs)
    assert all(0 <= i < j < L and j - i - 1 >= min_loop and (P[i, j] + P[j, i]) / 2 > threshold for i, j in pairs)
    if canonical: assert all(seq[i] + seq[j] in {"AU", "UA", "GC", "CG", "GU", "UG"} for i, j in pairs)

def test_torchrun_two_ranks_equal_one_process(tmp_path, probe_file):
    "`resm fold` under 2 gloo ranks: length-balanced shards, byte-identical files, one merged manifest."
    import os, subprocess
    fa = write_fasta(tmp_path/"in.fa", {f"f{k}": rand_seq(n) for k, n in enumerate([60, 25, 90, 40, 33])})
    fold_fasta(fa, "tiny", tmp_path/"one", head=probe_file, probs=True, progress=False)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "resm.cli",
           "fold", str(fa), "--model", "tiny", "--out", str(tmp_path/"two"), "--head", str(probe_file), "--probs", "--quiet"]
    r = subprocess.run(cmd, env=dict(os.environ, OMP_NUM_THREADS="1"), capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    names = sorted(p.name for p in (tmp_path/"one").iterdir())
    assert names == sorted(p.name for p in (tmp_path/"two").iterdir()) and "manifest.tsv" in names
    for n in names:
        a, b = (tmp_path/"one"/n).read_bytes(), (tmp_path/"two"/n).read_bytes()
        if n == "manifest.tsv": assert set(a.splitlines()) == set(b.splitlines())
        else: assert a == b, n

def test_sparse_probe_runs_only_weighted_heads(monkeypatch):
    "A zero weight needs no map: only weighted heads are formed, layers after the last weighted one never run; logits unchanged."
    import resm.fast as fast
    m, tok = tiny_model(num_layers=3, embed_dim=32, attention_heads=4, seed=4)
    w = np.zeros(12, np.float32); w[1], w[6] = 0.8, -1.1                  # layer 0 head 1, layer 1 head 2
    s = rand_seq(40)
    from resm.features import attention_maps, apc, symmetrize, pair_logits
    naive = (apc(symmetrize(attention_maps(m, tok, s))) * torch.from_numpy(w)[:, None, None]).sum(0) + 0.2
    seen, orig = [], fast.explicit_attention
    def spy(attn, x, kpm=None, fn=None, row_chunk=None, heads=None, sdpa_dtype=None, maps_only=False, by_head=False):
        seen.append((list(heads), maps_only, by_head)); return orig(attn, x, kpm, fn, row_chunk, heads, sdpa_dtype, maps_only, by_head)
    monkeypatch.setattr(fast, "explicit_attention", spy)
    torch.testing.assert_close(pair_logits(m, tok, s, w, 0.2), naive, atol=1e-4, rtol=0)
    assert seen == [([1], False, True), ([2], True, True)]                   # layer 2 (all zero) was not run; layer 1 gave maps only
