"""The released RESM checkpoints' layouts (as far as the authors' published loader shows them: `["state_dict"]`, with config
dataclasses pickled from a separate process's `__main__`), load without trust in another process and equal fair-esm's
`ESM2` with the same weights."""
import json, subprocess, sys
from pathlib import Path
import numpy as np
import pytest
import torch
from esm.model.esm2 import ESM2
from resm.io import write_fasta
from resm.model import tiny_model, save_like_release, load_model, CheckpointError

SEQS = {"trna": "GCGGAUUUAGCUCAGUUGGGAGAGCGCCAGACUGAAGAUCUGGAGGUCCUGUGUUCGAUCCACAGAAUUCGCACCA", "hp": "GGGAAACUUCGGUUUCCC"}

def resm(*args, check=True):
    "Run the installed `resm` console script in a fresh process."
    r = subprocess.run([sys.executable, "-m", "resm.cli", *map(str, args)], capture_output=True, text=True)
    if check: assert r.returncode == 0, r.stderr
    return r

@pytest.fixture(scope="module")
def release(tmp_path_factory):
    d = tmp_path_factory.mktemp("release")
    model, tok = tiny_model(num_layers=3, embed_dim=64, attention_heads=4, seed=7)
    return d, model, tok, save_like_release(model, d/"RESM-tiny-KDNY.ckpt"), save_like_release(model, d/"RESM-tiny-KDNY.pt", layout="pt")

def fair_esm_embeddings(model, tok, seqs:dict)->dict:
    "Last-layer embeddings from a plain fair-esm ESM2 holding the same weights, token dropout off, one sequence at a time."
    fe = ESM2(num_layers=model.num_layers, embed_dim=model.embed_dim, attention_heads=model.attention_heads,
              alphabet=tok.alphabet, token_dropout=False)
    fe.load_state_dict(model.state_dict()); fe.eval()
    out = {}
    with torch.no_grad():
        for k, s in seqs.items():
            r = fe(tok.encode(s)[None], repr_layers=[fe.num_layers])["representations"][fe.num_layers]
            out[k] = r[0, 1:len(s) + 1].numpy()
    return out

def test_ckpt_pickles_main_configs(release):
    "The fixture really holds `__main__` dataclass instances and optimizer state: a plain safe load refuses it."
    d, *_ , ckpt, pt = release
    with pytest.raises(Exception, match="__main__.Config|__main__"):
        torch.load(ckpt, weights_only=True)
    full = torch.load(ckpt, weights_only=False, pickle_module=__import__("resm.model", fromlist=["x"]).stubbing_pickle)
    assert {"state_dict", "optimizer_states", "lr_schedulers", "epoch", "global_step", "pytorch-lightning_version",
            "hyper_parameters"} <= set(full)
    assert len(full["optimizer_states"][0]["state"]) > 10

@pytest.mark.parametrize("which", ["ckpt", "pt"])
def test_info_and_embed_without_trust(release, which, tmp_path):
    d, model, tok, ckpt, pt = release
    path = ckpt if which == "ckpt" else pt
    info = json.loads(resm("info", path, "--json").stdout)
    assert (info["format"], info["layers"], info["width"], info["heads"], info["contact_head"]) == ("lightning", 3, 64, 4, True)
    fa = write_fasta(tmp_path/"in.fa", SEQS)
    resm("embed", fa, "--model", path, "--out", tmp_path/"emb", "--quiet", "--device", "cpu")
    want = fair_esm_embeddings(model, tok, SEQS)
    for k in SEQS:
        np.testing.assert_allclose(np.load(tmp_path/"emb"/f"{k}_emb.npy"), want[k], atol=1e-5, rtol=0)

def test_trusted_path_stubs_unknown_main_class(release, tmp_path):
    d, model, tok, *_ = release
    extra = save_like_release(model, tmp_path/"extra.ckpt", extra_class=True)
    r = resm("info", extra, check=False)
    assert r.returncode != 0 and "__main__.ExperimentNote" in r.stderr and "--trust-checkpoint" in r.stderr
    assert "Traceback" not in r.stderr
    info = json.loads(resm("info", extra, "--json", "--trust-checkpoint").stdout)
    assert info["format"] == "lightning"

def test_foreign_class_refused_in_process(release, tmp_path):
    d, model, *_ = release
    extra = save_like_release(model, tmp_path/"extra.ckpt", extra_class=True)
    with pytest.raises(CheckpointError, match="ExperimentNote"):
        load_model(extra, device="cpu")

RSS_SCRIPT = """
import resource, sys, torch
from resm.model import load_model
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
m, tok = load_model(sys.argv[1], device="cpu")
with torch.no_grad(): m(tok.encode("ACGU" * 16)[None])
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) * 1024)
"""

def test_peak_memory_near_weights(tmp_path):
    "A checkpoint with Adam state (3x the weights on disk) loads and runs with peak RSS growth well under 2x the weights."
    model, tok = tiny_model(num_layers=6, embed_dim=512, attention_heads=8, seed=0)
    weights = sum(v.numel() * v.element_size() for v in model.state_dict().values())
    path = save_like_release(model, tmp_path/"big.ckpt")
    assert path.stat().st_size > 2.5 * weights                      # optimizer state is really in the file
    del model
    r = subprocess.run([sys.executable, "-c", RSS_SCRIPT, str(path)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    grown = int(r.stdout.split()[-1])
    print(f"weights {weights/2**20:.0f} MiB, file {path.stat().st_size/2**20:.0f} MiB, peak RSS growth {grown/2**20:.0f} MiB")
    assert grown < 1.6 * weights, (grown, weights)

def _fair_esm_local(path):
    import argparse, esm
    with torch.serialization.safe_globals([argparse.Namespace]):
        return esm.pretrained.load_model_and_alphabet_local(str(path))

def test_export_runs_in_fair_esm_without_token_dropout(tmp_path):
    "`resm export` of a RESM run: fair-esm's own loader builds it with token dropout off and gives our logits."
    from resm.model import save_pretrained
    model, tok = tiny_model(num_layers=2, embed_dim=32, attention_heads=4, seed=4)
    save_pretrained(model, tok, tmp_path/"run")
    resm("export", tmp_path/"run", tmp_path/"esm2_t2_resm_tiny.pt")
    fm, alphabet = _fair_esm_local(tmp_path/"esm2_t2_resm_tiny.pt")
    ours, _ = load_model(tmp_path/"esm2_t2_resm_tiny.pt", device="cpu")
    assert (fm.token_dropout, ours.token_dropout) == (False, False)
    toks = tok.encode(SEQS["trna"])[None]; toks[0, 5] = tok.alphabet.mask_idx      # masked input: token dropout would matter
    with torch.no_grad(): assert torch.equal(fm.eval()(toks)["logits"], ours(toks)["logits"])

def test_protein_esm2_runs_as_fair_esm_runs_it(tmp_path):
    "A protein ESM-2 file keeps its config's token dropout (on), exactly as fair-esm's loader builds it."
    from resm.model import export_fair_esm
    model, tok = tiny_model(num_layers=2, embed_dim=32, attention_heads=4, seed=5)
    export_fair_esm(model, tmp_path/"esm2_t2_tiny_UR50D.pt", token_dropout=True)
    fm, _ = _fair_esm_local(tmp_path/"esm2_t2_tiny_UR50D.pt")
    ours, _ = load_model(tmp_path/"esm2_t2_tiny_UR50D.pt", device="cpu")
    assert (fm.token_dropout, ours.token_dropout, ours.resm_meta["init"]) == (True, True, "protein")
    toks = tok.encode(SEQS["hp"])[None]; toks[0, 3] = tok.alphabet.mask_idx
    with torch.no_grad(): assert torch.equal(fm.eval()(toks)["logits"], ours(toks)["logits"])

def test_export_hf_and_safetensors_round_trip(release, tmp_path):
    "`resm export --format hf|safetensors`: transformers' forward equals ours; both load back with no trust question."
    from transformers import EsmForMaskedLM, EsmTokenizer
    from resm.model import to_hf_input
    d, model, tok, ckpt, pt = release
    resm("export", ckpt, tmp_path/"hf", "--format", "hf")
    resm("export", ckpt, tmp_path/"m.safetensors", "--format", "safetensors")
    hf = EsmForMaskedLM.from_pretrained(str(tmp_path/"hf")).eval()
    ids = EsmTokenizer.from_pretrained(str(tmp_path/"hf"))([to_hf_input(s) for s in SEQS.values()], padding=True, return_tensors="pt")
    with torch.no_grad():
        h = hf(**ids, output_hidden_states=True)
        o = model.eval()(ids["input_ids"], repr_layers=[model.num_layers])
    keep = ids["attention_mask"].bool()
    torch.testing.assert_close(h.logits[keep], o["logits"][keep], atol=1e-4, rtol=0)
    torch.testing.assert_close(h.hidden_states[-1][keep], o["representations"][model.num_layers][keep], atol=1e-4, rtol=0)
    for spec in (tmp_path/"hf", tmp_path/"m.safetensors"):
        m, _ = load_model(spec, device="cpu")
        with torch.no_grad(): assert torch.equal(m(ids["input_ids"][:1])["logits"], o["logits"][:1])
    assert b"__main__" not in (tmp_path/"m.safetensors").read_bytes() and not (tmp_path/"m.safetensors").read_bytes().startswith(b"PK")
