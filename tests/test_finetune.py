"""Fine-tuning: every `resm finetune` path end to end on the synthetic fixtures, resume, head save/load, long-RNA inference."""
import copy, json, resource, subprocess, sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from resm.cli import main
from resm.finetune_ss import (SSHead, SSHeadConfig, backbone_pair_inputs, load_head, load_ss_data, predict_structure,
                              pair_logits_full, dotbracket_check, save_head)
from resm.finetune_reg import read_mrl_csv, read_expression_csv, load_reg_data
from resm.model import tiny_model

FX = Path(__file__).parent/"fixtures"/"finetune"
SS_ARGS = ["--data", str(FX/"bprna"), "--crop", "48", "--channels", "4", "--blocks", "1", "--batch-size", "2"]


def _train_rows(run: Path) -> pd.DataFrame:
    m = pd.read_csv(run/"metrics.csv")
    return m[m.split == "train"]


def test_ss_cli_end_to_end_and_resume(tmp_path):
    out = tmp_path/"ss"
    r = subprocess.run([sys.executable, "-m", "resm.cli", "finetune", "ss", "--model", "tiny", "--out", str(out),
                        "--max-steps", "2", *SS_ARGS], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    m = json.loads((out/"metrics.json").read_text())
    assert set(m["results"]["test"]) == {"resm", "vienna"}
    assert {"f1", "mcc", "precision", "recall", "by_length"} <= set(m["results"]["test"]["resm"])
    assert 0 < m["threshold"] < 1
    per = pd.read_csv(out/"per_item.csv")
    assert set(per.method) == {"resm", "vienna"} and (per.groupby("method").size() == 3).all()
    assert (out/"finetune_ss.png").stat().st_size > 0 and (out/"head.pt").exists()
    assert _train_rows(out/"train").step.max() == 2
    # resume: one more step from the step-2 checkpoint, earlier rows kept
    assert main(["finetune", "ss", "--model", "tiny", "--out", str(out), "--max-steps", "3", "--resume", "--no-vienna", *SS_ARGS]) == 0
    assert _train_rows(out/"train").step.tolist() == [1, 2, 3]


def test_ss_resume_is_exact(tmp_path, monkeypatch):
    "A run killed after step 2 and resumed logs the same per-step losses as an uninterrupted run."
    import resm.finetune_ss as fss
    straight, killed = tmp_path/"a", tmp_path/"b"
    args = ["finetune", "ss", "--max-steps", "4", "--no-vienna", *SS_ARGS]
    assert main([*args, "--out", str(straight)]) == 0
    real = fss.ss_loss_fn
    def dying(*a, **k):
        f, calls = real(*a, **k), []
        def loss_fn(head, batch):
            calls.append(1)
            if len(calls) == 3: raise KeyboardInterrupt("killed")
            return f(head, batch)
        return loss_fn
    monkeypatch.setattr(fss, "ss_loss_fn", dying)
    assert main([*args, "--out", str(killed)]) == 130                  # interrupted: exit code 130, no traceback
    monkeypatch.setattr(fss, "ss_loss_fn", real)
    assert main([*args, "--out", str(killed), "--resume"]) == 0
    np.testing.assert_allclose(_train_rows(straight/"train").loss, _train_rows(killed/"train").loss, rtol=1e-6)
    assert main([*args, "--out", str(killed), "--resume"]) == 0                # a finished run resumed: nothing to train ...
    for k in ("steps", "best_step", "threshold", "val_f1"):                    # ... and the same record of it
        assert json.loads((killed/"metrics.json").read_text())[k] == json.loads((straight/"metrics.json").read_text())[k], k


@pytest.mark.parametrize("task,data,extra", [
    ("mrl", "mrl_sample2019.csv", ["--n-test", "40"]),
    ("expression", "expression_utrlm.csv", ["--target", "te_log", "--mode", "lora", "--pool", "conv"]),
    ("expression", "expression_utrlm.csv", ["--mode", "full"]),
])
def test_reg_cli_end_to_end_and_resume(tmp_path, task, data, extra):
    out = tmp_path/task
    args = ["finetune", task, "--model", "tiny", "--data", str(FX/data), "--out", str(out), "--batch-size", "16", *extra]
    assert main([*args, "--max-steps", "2"]) == 0
    m = json.loads((out/"metrics.json").read_text())
    assert set(m["results"]) == {"resm", "cnn_baseline"}
    assert {"r2", "spearman", "n"} <= set(m["results"]["resm"]["test"])
    pred = pd.read_csv(out/"predictions.csv")
    assert {"id", "split", "y", "pred_resm", "pred_cnn"} <= set(pred.columns) and (out/"finetune_reg.png").exists()
    assert main([*args, "--max-steps", "3", "--resume"]) == 0
    assert _train_rows(out/"resm").step.tolist() == [1, 2, 3] and _train_rows(out/"cnn").step.tolist() == [1, 2, 3]
    assert json.loads((out/"metrics.json").read_text())["steps"] == {"resm": 3, "cnn_baseline": 3}   # the steps trained


def test_mrl_split_rule_and_errors():
    df = load_reg_data("mrl", str(FX/"mrl_sample2019.csv"), n_test=30)
    top = df.sort_values("total_reads", ascending=False, kind="stable").head(30)
    assert (top.split == "test").all() and (df.split == "test").sum() == 30
    with pytest.raises(ValueError, match="no bundled mrl data"): load_reg_data("mrl", "mini")
    with pytest.raises(FileNotFoundError): load_reg_data("expression", "/nonexistent.csv")


def test_bad_inputs_are_named(tmp_path):
    (tmp_path/"bad.csv").write_text("utr,total_reads,rl\nACGU,10,1.0\nACGUZ,10,1.0\n")
    with pytest.raises(ValueError, match=r"record row2\b"): read_mrl_csv(tmp_path/"bad.csv")   # the 2nd data row, counted as check_table counts
    with pytest.raises(ValueError, match="record x: structure length"): dotbracket_check("((.", "ACGU", "x")
    with pytest.raises(FileNotFoundError, match="TR0/VL0/TS0"): load_ss_data(str(tmp_path))
    with pytest.raises(FileNotFoundError, match="head_config.json"): load_head(tmp_path)


def test_head_save_load_and_tiling_exact(tmp_path):
    model, tok = tiny_model()
    torch.manual_seed(1)
    head = SSHead(SSHeadConfig(num_layers=2, attention_heads=4, embed_dim=32, channels=4, blocks=2, emb_proj=2)).eval()
    seq = "".join(np.random.default_rng(0).choice(list("ACGU"), 90))
    save_head(head, tmp_path, extra={"model": "tiny"})
    h2 = load_head(tmp_path)
    sd = torch.load(tmp_path/"head.pt", weights_only=True)                      # weights_only-safe
    assert sd.keys() == head.state_dict().keys() and all(torch.equal(sd[k], v) for k, v in head.state_dict().items())
    f = backbone_pair_inputs(model, tok, seq, need_emb=True)
    ref = head(f["attn"][None], seq, f["emb"][None])["logits"][0]
    torch.testing.assert_close(pair_logits_full(model, tok, h2, seq, row_chunk=13, tile=17), ref, atol=1e-4, rtol=1e-4)


def test_predict_long_rna_bounded_memory(tmp_path):
    "A 2,000-nt RNA through the full-length path in a fresh process; peak RSS stays far below the 4 GB buffer a dense path needs."
    code = f"""
import resource, torch, numpy as np
from resm.model import tiny_model
from resm.finetune_ss import SSHead, SSHeadConfig, predict_structure
torch.set_num_threads(2)
m, t = tiny_model(num_layers=4, embed_dim=64, attention_heads=8)     # 32 attention channels
h = SSHead(SSHeadConfig(num_layers=4, attention_heads=8, embed_dim=64, channels=4, blocks=1)).eval()
seq = "".join(np.random.default_rng(0).choice(list("ACGU"), 2000))
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
P = predict_structure(m, t, h, seq, tile=1024)
assert P.shape == (2000, 2000) and np.allclose(P, P.T) and np.isfinite(P).all()
print(base, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    base_kb, peak_kb = map(int, r.stdout.split())
    # dense features would be (32 + 8) x 2000^2 x 4 B = 640 MB; the bounded path holds 4 channels (64 MB) + tiles
    assert (peak_kb - base_kb) / 2**20 < 0.5, f"peak grew by {(peak_kb - base_kb) / 2**20:.2f} GB"


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_ss_head_predicts_in_place_and_equals_cpu():
    "On CUDA a structure head predicts on its own device, stays there (its optimizer's state lives there), and equals the CPU."
    m, tok = tiny_model(num_layers=2, embed_dim=32, attention_heads=4, seed=1)
    torch.manual_seed(0); head = SSHead(SSHeadConfig(num_layers=2, attention_heads=4, embed_dim=32, channels=4, blocks=2, emb_proj=3)).eval()
    seq = "GGGGAAAACCCCAUAUGGCGCAAAAGCGCCAUAUAUAGGA" * 3
    cpu = predict_structure(m, tok, head, seq, tile=50)
    mc, hc = copy.deepcopy(m).cuda(), copy.deepcopy(head).cuda()
    gpu = predict_structure(mc, tok, hc, seq, tile=50)
    assert hc.stem.weight.is_cuda and all(p.is_cuda for p in hc.parameters())
    np.testing.assert_allclose(gpu, cpu, atol=1e-4)
