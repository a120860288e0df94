"""Transfer-training loop: config, exact resume, 2-process data parallel (gloo), CLI end to end, export round trip."""
import csv, json, os, random, signal, subprocess, sys, time
from pathlib import Path
import pytest
import torch
from resm.model import load_model
from resm.train import TrainConfig, main

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--model", "random:2x32x4", "--batch-tokens", "256", "--max-len", "40", "--dtype", "fp32", "--device", "cpu",
        "--no-progress", "--no-probe", "--warmup-steps", "2", "--lr", "3e-3", "--val-frac", "0.1"]


@pytest.fixture(scope="module")
def fasta(tmp_path_factory):
    path = tmp_path_factory.mktemp("data")/"rna.fa"
    rng = random.Random(0)
    path.write_text("".join(f">r{i}\n{''.join(rng.choices('ACGU', k=rng.randint(12, 60)))}\n" for i in range(40)))
    return path


def _losses(out:Path)->list:
    with open(out/"metrics.csv", newline="") as f:
        return [float(r["loss"]) for r in csv.DictReader(f) if r["split"] == "train"]


def _env():
    return os.environ | {"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


def test_config_rejects_unknown_keys(tmp_path):
    with pytest.raises(ValueError, match="unknown config keys: 'lr_max'"): TrainConfig.from_dict({"lr_max": 1.0})
    (tmp_path/"c.yaml").write_text("max_steps: 5\nbatch_size: 8\n")
    with pytest.raises(ValueError, match="batch_size"): TrainConfig.from_yaml(tmp_path/"c.yaml")
    (tmp_path/"ok.yaml").write_text("max_steps: 5\nlr: 1e-4\ndata: [a.fa, b.fa]\n")
    cfg = TrainConfig.from_yaml(tmp_path/"ok.yaml")
    assert (cfg.max_steps, cfg.lr, cfg.data) == (5, 1e-4, ["a.fa", "b.fa"])


def _rows(out:Path)->list:
    with open(out/"metrics.csv", newline="") as f: return [r for r in csv.DictReader(f) if r["split"] == "train"]


def _same_run(a:Path, b:Path, steps:int):
    "Identical per-step losses and learning rates, and identical final weights."
    ra, rb = _rows(a), _rows(b)
    assert [int(r["step"]) for r in ra] == list(range(1, steps + 1))
    assert [(r["step"], r["loss"], r["lr"]) for r in ra] == [(r["step"], r["loss"], r["lr"]) for r in rb]
    sa, sb = load_model(a, device="cpu")[0].state_dict(), load_model(b, device="cpu")[0].state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_resume_after_interruption_is_exact(tmp_path, fasta, monkeypatch):
    "Same command interrupted right after its step-4 checkpoint of 8 (where the cosine depends on max_steps), then --resume."
    import resm.train
    args = ["train", *TINY, "--data", str(fasta), "--save-every", "4", "--eval-every", "4", "--max-steps", "8"]
    assert main([*args, "--out", str(tmp_path/"straight")]) == 0
    real = resm.train.atomic_save
    def save_then_die(obj, path):
        real(obj, path)
        if Path(path).name == "step_4.pt": raise KeyboardInterrupt("killed after the step-4 checkpoint")
    monkeypatch.setattr(resm.train, "atomic_save", save_then_die)
    with pytest.raises(KeyboardInterrupt): main([*args, "--out", str(tmp_path/"split")])
    monkeypatch.setattr(resm.train, "atomic_save", real)
    torch.manual_seed(999)                                          # disturb global RNG state between the runs
    assert main([*args, "--out", str(tmp_path/"split"), "--resume"]) == 0
    from resm.train import lr_at                                    # the split is where the schedule depends on max_steps
    assert lr_at(4, TrainConfig(lr=3e-3, warmup_steps=2, max_steps=8)) != pytest.approx(lr_at(4, TrainConfig(lr=3e-3, warmup_steps=2, max_steps=5)))
    _same_run(tmp_path/"straight", tmp_path/"split", 8)


def test_sigkill_mid_run_then_resume_is_exact(tmp_path, fasta):
    "A real kill -9 after the step-20 checkpoint of a 40-step run; the same command with --resume matches a straight run."
    args = [sys.executable, "-m", "resm.cli", "train", *TINY, "--data", str(fasta), "--save-every", "20", "--eval-every", "20", "--max-steps", "40"]
    straight = subprocess.run([*args, "--out", str(tmp_path/"straight")], capture_output=True, text=True, env=_env(), timeout=120)
    assert straight.returncode == 0, straight.stderr[-3000:]
    for attempt in range(3):
        out = tmp_path/f"killed{attempt}"
        p = subprocess.Popen([*args, "--out", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_env())
        ck, t0 = out/"checkpoints"/"step_20.pt", time.time()
        while not ck.exists() and p.poll() is None and time.time() - t0 < 120: time.sleep(0.002)
        p.send_signal(signal.SIGKILL); p.wait()
        if ck.exists() and not (out/"checkpoints"/"step_40.pt").exists(): break
    else: pytest.fail("the run finished before it could be killed, three times")
    r = subprocess.run([*args, "--out", str(out), "--resume"], capture_output=True, text=True, env=_env(), timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    _same_run(tmp_path/"straight", out, 40)


def test_default_train_path_with_probe_validation(tmp_path):
    "The shipped default (`--probe` on, mini-benchmark data) on a tiny model: the probe F1 is logged at each validation."
    assert main(["train", "--model", "random:2x32x4", "--max-steps", "2", "--eval-every", "2", "--save-every", "2",
                 "--batch-tokens", "256", "--max-len", "60", "--probe-max-seqs", "3", "--eval-max-seqs", "4",
                 "--no-progress", "--device", "cpu", "--out", str(tmp_path/"run")]) == 0
    with open(tmp_path/"run"/"metrics.csv", newline="") as f: val = [r for r in csv.DictReader(f) if r["split"] == "val"]
    assert len(val) == 1 and val[0]["step"] == "2"
    f1, thr = float(val[0]["probe_f1"]), float(val[0]["probe_threshold"])
    assert f1 == f1 and thr == thr and json.loads((tmp_path/"run"/"train_config.json").read_text())["probe"] is True


def test_ddp_two_processes_match_single(tmp_path, fasta):
    "torchrun, 2 gloo processes x 1 micro-batch == 1 process x 2 micro-batches (same global batch)."
    common = ["train", *TINY, "--data", str(fasta), "--max-steps", "4", "--save-every", "2", "--eval-every", "0"]
    ddp = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                          "-m", "resm.cli", *common, "--grad-accum", "1", "--out", str(tmp_path/"ddp")],
                         capture_output=True, text=True, env=_env(), timeout=110)
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    assert main([*common, "--grad-accum", "2", "--out", str(tmp_path/"single")]) == 0
    sync = json.loads((tmp_path/"ddp"/"ranks.json").read_text())
    assert sync["world_size"] == 2 and [s for s, _ in sync["sync"]] == [2, 4]
    assert all(c[0] == c[1] for _, c in sync["sync"])               # both ranks hold identical weights
    a, b = _losses(tmp_path/"ddp"), _losses(tmp_path/"single")
    assert len(a) == 4 and a == pytest.approx(b, rel=1e-5)
    sa = load_model(tmp_path/"ddp", device="cpu")[0].state_dict()
    sb = load_model(tmp_path/"single", device="cpu")[0].state_dict()
    assert all(torch.allclose(sa[k], sb[k], atol=1e-5) for k in sa)


def test_cli_end_to_end_and_export(tmp_path, fasta):
    "`resm train` then `resm export`: the fair-esm .pt loads with load_model and gives the same logits."
    run = lambda *a: subprocess.run([sys.executable, "-m", "resm.cli", *a], capture_output=True, text=True, env=_env(), timeout=60)
    r = run("train", *TINY, "--data", str(fasta), "--max-steps", "3", "--save-every", "2", "--out", str(tmp_path/"run"))
    assert r.returncode == 0, r.stderr[-3000:]
    assert "trained 3 steps" in r.stdout
    assert sorted(p.name for p in (tmp_path/"run"/"checkpoints").iterdir()) == ["step_2.pt", "step_3.pt"]
    header = (tmp_path/"run"/"metrics.csv").read_text().splitlines()[0].split(",")
    assert {"step", "loss", "lr", "tokens_per_s", "val_loss"} <= set(header)
    e = run("export", str(tmp_path/"run"), str(tmp_path/"fair.pt"))
    assert e.returncode == 0, e.stderr[-3000:]
    ours, tok = load_model(tmp_path/"run", device="cpu")
    fair, _ = load_model(tmp_path/"fair.pt", device="cpu")
    x = tok.batch([("a", "GGGAAACUUCGGUUCCC"), ("b", "ACGU")])[1]
    with torch.no_grad(): assert torch.allclose(ours(x)["logits"], fair(x)["logits"], atol=1e-6)
    again = run("train", *TINY, "--data", str(fasta), "--max-steps", "3", "--out", str(tmp_path/"run"))
    assert again.returncode == 2 and "--resume" in again.stderr


def _same_file(a, b):
    "Equal nested checkpoint contents: tensors bit for bit, everything else by ==."
    if torch.is_tensor(a): assert torch.is_tensor(b) and torch.equal(a, b)
    elif isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a: _same_file(a[k], b[k])
    else: assert a == b


def test_early_stopped_run_stays_stopped(tmp_path, fasta, monkeypatch):
    "A run stopped early (patience 1) is not trained further by --resume, also when killed before its model.pt was written."
    import resm.train
    args = ["train", *TINY, "--data", str(fasta), "--max-steps", "40", "--save-every", "5", "--eval-every", "4",
            "--early-stop-patience", "1", "--early-stop-mode", "max"]          # val_loss falls, so 'max' stops at the 2nd validation
    assert main([*args, "--out", str(tmp_path/"straight")]) == 0
    saved = lambda run: torch.load(run/"model.pt", weights_only=True)
    before = saved(tmp_path/"straight")
    assert main([*args, "--out", str(tmp_path/"straight"), "--resume"]) == 0
    _same_file(saved(tmp_path/"straight"), before)
    real = resm.train.save_pretrained
    def die(*a, **k): raise KeyboardInterrupt("killed after the final checkpoint")
    monkeypatch.setattr(resm.train, "save_pretrained", die)
    with pytest.raises(KeyboardInterrupt): main([*args, "--out", str(tmp_path/"killed")])
    monkeypatch.setattr(resm.train, "save_pretrained", real)
    assert main([*args, "--out", str(tmp_path/"killed"), "--resume"]) == 0
    _same_run(tmp_path/"straight", tmp_path/"killed", 8)
    _same_file(saved(tmp_path/"killed"), before)


def test_fsdp_best_state_is_a_plain_state_dict(tmp_path, fasta):
    "torchrun --fsdp with validation: best_state.pt loads with weights_only and holds the full (gathered) weights."
    out = tmp_path/"fsdp"
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "resm.cli",
                        "train", *TINY, "--data", str(fasta), "--max-steps", "4", "--save-every", "4", "--eval-every", "2",
                        "--fsdp", "--out", str(out)], capture_output=True, text=True, env=_env(), timeout=110)
    assert r.returncode == 0, r.stderr[-3000:]
    with open(out/"metrics.csv", newline="") as f: val = [float(r["val_loss"]) for r in csv.DictReader(f) if r["split"] == "val"]
    assert len(val) == 2 and val[1] < val[0]                        # the best state is the final one
    best = torch.load(out/"best_state.pt", map_location="cpu", weights_only=True)
    final = load_model(out, device="cpu")[0].state_dict()
    assert best.keys() == final.keys() and all(type(v) is torch.Tensor and torch.equal(v, final[k]) for k, v in best.items())


@pytest.mark.parametrize("text,msg", [("1: 2\n", "unknown config keys: 1"), ("lr: 1" + "0" * 400 + "\n", "'lr' (--lr) must be float"),
                                      ("early_stop_metric: val_los\nmax_steps: 0\n", "did you mean 'val_loss'")])
def test_bad_yaml_config_is_one_error_line(tmp_path, text, msg):
    "A non-string key, an int too large for a float and an unknown metric name end as one `error:` line, exit 2."
    (tmp_path/"c.yaml").write_text(text)
    r = subprocess.run([sys.executable, "-m", "resm.cli", "train", "--out", str(tmp_path/"run"), "--config", str(tmp_path/"c.yaml"),
                        "--device", "cpu"], capture_output=True, text=True, env=_env(), timeout=60)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "resm train: error:" in r.stderr and msg in r.stderr, r.stderr


@pytest.mark.parametrize("dest,fmt,msg", [("model", "safetensors", "must end in .safetensors"), ("", "fair-esm", "an empty path"),
                                          ("", "hf", "an empty path")])
def test_export_refuses_bad_destination(tmp_path, dest, fmt, msg):
    "A .safetensors export needs the suffix load_model reads it by; an empty DEST is refused like an empty --out."
    r = subprocess.run([sys.executable, "-m", "resm.cli", "export", "tiny", dest, "--format", fmt], capture_output=True, text=True,
                       env=_env(), timeout=60, cwd=tmp_path)
    last = r.stderr.strip().splitlines()[-1]                         # argparse prints its usage first
    assert r.returncode == 2 and "resm export: error:" in last and msg in last and "Errno" not in r.stderr, r.stderr
    assert list(tmp_path.iterdir()) == []
