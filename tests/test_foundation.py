"""Foundation: tokenizer edge cases, every checkpoint format through the CLI, safe loading, and the fair-esm downloader."""
import argparse, functools, http.server, json, subprocess, sys, threading
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings, strategies as st

import resm.model as rm
from resm.model import CheckpointError, export_fair_esm, load_model, save_pretrained, tiny_model
from resm.tokenizer import MAPPINGS, RNATokenizer

RESM = [sys.executable, "-m", "resm.cli"]


@given(st.text(alphabet="ACGUacgutT", max_size=200), st.sampled_from(sorted(MAPPINGS)))
@settings(max_examples=200, deadline=None)
def test_roundtrip_any_rna(seq, mapping):
    tok = RNATokenizer(mapping)
    assert tok.decode(tok.encode(seq)) == seq.upper().replace("T", "U")


@given(st.text(max_size=30))
@settings(max_examples=300, deadline=None)
def test_invalid_characters_are_named(seq):
    tok = RNATokenizer()
    try:
        ids = tok.encode(seq, id="rec")
    except ValueError as e:
        msg = str(e)
        assert "of record rec" in msg and "position" in msg
        pos = int(msg.split("position ")[1].split()[0])
        bad = [c for c in seq if not c.isspace()][pos - 1]
        assert repr(bad) in msg
    else:
        assert ids[0] == 0 and ids[-1] == 2


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    d = tmp_path_factory.mktemp("ckpts")
    model, tok = tiny_model(seed=7)
    sd = model.state_dict()
    save_pretrained(model, tok, d / "run")
    export_fair_esm(model, d / "esm2_tiny.pt")
    torch.save({"state_dict": {"model." + k: v for k, v in sd.items()}, "epoch": 1}, d / "RESM-tiny-KDNY.ckpt")
    torch.save({"module." + k: v for k, v in sd.items()}, d / "RESM-tiny-KDNY.pt")
    return d, model


@pytest.mark.parametrize("name,fmt", [("run", "resm"), ("esm2_tiny.pt", "fair-esm"),
                                      ("RESM-tiny-KDNY.ckpt", "lightning"), ("RESM-tiny-KDNY.pt", "state_dict")])
def test_cli_info_every_format(ckpts, name, fmt):
    d, model = ckpts
    out = subprocess.run(RESM + ["info", str(d / name), "--json"], capture_output=True, text=True, check=True)
    info = json.loads(out.stdout)
    assert (info["format"], info["layers"], info["width"], info["heads"], info["mapping"]) == (fmt, 2, 32, 4, "KDNY")
    assert info["params"] == sum(p.numel() for p in model.parameters())


def test_cli_version():
    out = subprocess.run(RESM + ["--version"], capture_output=True, text=True, check=True)
    assert out.stdout.strip().startswith("resm 0.")


def test_untrusted_pickle_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "ran"
    class Evil:
        def __reduce__(self): return (Path.touch, (marker,))
    torch.save({"state_dict": {}, "hyper_parameters": Evil()}, tmp_path / "evil.ckpt")
    r = subprocess.run(RESM + ["info", str(tmp_path / "evil.ckpt")], capture_output=True, text=True)
    assert r.returncode == 2 and "--trust-checkpoint" in r.stderr and "Traceback" not in r.stderr
    assert not marker.exists()


def test_mismatched_checkpoint_lists_keys(tmp_path, ckpts):
    d, model = ckpts
    sd = dict(model.state_dict()); sd.pop("layers.0.fc2.bias"); sd["layers.0.adapter.weight"] = torch.zeros(2)
    torch.save(sd, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match=r"missing keys \['layers.0.fc2.bias'\]; unexpected keys \['layers.0.adapter.weight'\]"):
        load_model(tmp_path / "bad.pt")


def test_truncated_checkpoint(tmp_path, ckpts):
    d, _ = ckpts
    data = (d / "RESM-tiny-KDNY.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="corrupt"):
        load_model(tmp_path / "cut.pt")


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *a): pass


@pytest.fixture
def loopback(tmp_path):
    root = tmp_path / "www"; root.mkdir()
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(root)))
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield root, f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()


def test_fair_esm_name_downloads_into_hub_cache(loopback, tmp_path, monkeypatch):
    root, url = loopback
    model, _ = tiny_model(seed=3)
    export_fair_esm(model, root / "esm2_t6_8M_UR50D.pt", token_dropout=True)  # a tiny stand-in under the real name and config
    monkeypatch.setattr(rm, "ESM_URL", url + "/{name}.pt")
    monkeypatch.setattr(rm, "ESM_REGRESSION_URL", url + "/{name}-contact-regression.pt")
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    m, tok = load_model("esm2_t6_8M_UR50D", device="cpu")
    assert (tmp_path / "hub" / "checkpoints" / "esm2_t6_8M_UR50D.pt").exists()
    assert m.resm_meta["init"] == "protein" and m.resm_meta["has_contact_head"] and m.token_dropout
    x = tok.batch([("a", "GGGAAACCC")])[1]
    model.token_dropout = True                            # as fair-esm runs a protein ESM-2
    with torch.no_grad():
        assert torch.equal(m(x)["logits"], model(x)["logits"])


def test_offline_error_says_what_and_where(loopback, tmp_path, monkeypatch):
    root, url = loopback  # serves nothing: every request is a 404
    monkeypatch.setattr(rm, "ESM_URL", url + "/{name}.pt")
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    with pytest.raises(CheckpointError) as e:
        load_model("esm2_t12_35M_UR50D")
    msg = str(e.value)
    assert url + "/esm2_t12_35M_UR50D.pt" in msg
    assert str(tmp_path / "hub" / "checkpoints" / "esm2_t12_35M_UR50D.pt") in msg
    assert not (tmp_path / "hub" / "checkpoints" / "esm2_t12_35M_UR50D.pt").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
@pytest.mark.parametrize("cmd", [
    ["embed", "{fa}", "--model", "tiny"], ["fold", "{fa}", "--model", "tiny"],
    ["train", "--model", "random:2x32x4", "--data", "mini", "--max-steps", "1"],
    ["eval", "zeroshot-cls", "--model", "tiny"],
    ["finetune", "mrl", "--model", "tiny", "--data", str(Path(__file__).parent/"fixtures"/"finetune"/"mrl_sample2019.csv")]])
def test_missing_device_is_an_error_line(tmp_path, capsys, cmd):
    "`--device cuda` without CUDA: exit 2 and one `error:` line naming the flag, not a file, and no traceback."
    from resm.cli import main
    fa = tmp_path/"a.fa"; fa.write_text(">a\nACGUACGU\n")
    assert main([a.format(fa=fa) for a in cmd] + ["--device", "cuda", "--out", str(tmp_path/"out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and ": error: --device cuda: " in err[0] and "Traceback" not in err[0], err
