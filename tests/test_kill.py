"""kill -9, then the same command again (with --resume where it applies): the result equals an uninterrupted run.

`resm train` is covered in test_train.py (SIGKILL after the step-20 checkpoint of 40) and `resm embed` in test_embed.py;
here: `resm fold`, `resm eval` and `resm finetune`. benchmarks/kill_matrix.py kills at many more moments.
"""
import hashlib, json, os, signal, subprocess, sys, time
from pathlib import Path
import numpy as np
import pandas as pd
import pytest
from resm.io import write_fasta
from resm.probe import Probe

ROOT = Path(__file__).resolve().parents[1]
FX = Path(__file__).parent/"fixtures"/"finetune"
ENV = os.environ | {"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


def resm(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "resm.cli", *map(str, args)], capture_output=True, text=True, env=ENV, timeout=timeout)


def kill_when(args, ready, timeout=120):
    "Start `resm ARGS`, SIGKILL it as soon as `ready()` is true; return whether it was still running then."
    p = subprocess.Popen([sys.executable, "-m", "resm.cli", *map(str, args)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
    t0 = time.time()
    while not ready() and p.poll() is None and time.time() - t0 < timeout: time.sleep(0.002)
    alive = p.poll() is None
    p.send_signal(signal.SIGKILL); p.wait()
    return alive


def files(d:Path, skip=()) -> dict:
    return {p.relative_to(d).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(d.rglob("*"))
            if p.is_file() and not any(s in p.as_posix() for s in skip)}


def test_fold_killed_mid_run(tmp_path):
    "Killed after some records: rerun gives byte-identical structures and probabilities, and no partial file was ever in place."
    rng = np.random.default_rng(0)
    recs = {f"r{k}": "".join(rng.choice(list("ACGU"), 40)) for k in range(60)}
    fa = write_fasta(tmp_path/"in.fa", recs)
    probe = Probe(np.linspace(-1, 1, 8).astype(np.float32), 2.0, 6, dict(num_layers=2, attention_heads=4)).save(tmp_path/"p.json")
    args = ["fold", fa, "--model", "tiny", "--head", probe, "--probs", "--quiet", "--out"]
    r = resm(*args, tmp_path/"straight"); assert r.returncode == 0, r.stderr
    out, man = tmp_path/"killed", tmp_path/"killed"/"manifest.tsv"
    assert kill_when([*args, out], lambda: man.exists() and man.read_text().count("\n") > 8), "finished before the kill"
    want = files(tmp_path/"straight", skip=("manifest.tsv",))
    for name, h in files(out, skip=("manifest.tsv",)).items():     # whatever carries a final name is complete
        if not name.startswith("."): assert want[name] == h, name
    r = resm(*args, out); assert r.returncode == 0, r.stderr
    assert files(out, skip=("manifest.tsv",)) == want
    ids = [l.split("\t")[0] for l in man.read_text().splitlines()[1:]]
    assert sorted(ids) == sorted(recs) and len(ids) == len(recs)


def _metrics(d:Path)->dict: return {k: v for k, v in json.loads((d/"metrics.json").read_text()).items() if k != "seconds"}


def test_eval_killed_then_rerun(tmp_path):
    "An evaluation killed part-way leaves no half-written result, and the rerun equals an uninterrupted run."
    args = ["eval", "zeroshot-cls", "--model", "tiny", "--max-per-family", "4", "--num-threads", "1", "--out"]
    r = resm(*args, tmp_path/"straight"); assert r.returncode == 0, r.stderr
    want = files(tmp_path/"straight", skip=("metrics.json",))
    out = tmp_path/"killed"
    assert kill_when([*args, out], lambda: out.exists()), "finished before the kill"
    for name, h in files(out, skip=("metrics.json",)).items():
        if not name.startswith("."): assert want[name] == h, name
    if (out/"metrics.json").exists(): assert _metrics(out) == _metrics(tmp_path/"straight")   # complete, or absent
    r = resm(*args, out); assert r.returncode == 0, r.stderr
    assert files(out, skip=("metrics.json",)) == want and _metrics(out) == _metrics(tmp_path/"straight")


def test_finetune_killed_after_checkpoint(tmp_path):
    "`resm finetune mrl` killed after a checkpoint, rerun with --resume: the same per-step losses and predictions."
    args = ["finetune", "mrl", "--model", "tiny", "--data", FX/"mrl_sample2019.csv", "--n-test", "40", "--max-steps", "40", "--out"]
    r = resm(*args, tmp_path/"straight"); assert r.returncode == 0, r.stderr
    out = tmp_path/"killed"
    assert kill_when([*args, out], lambda: any(out.rglob("step_20.pt"))), "finished before the kill"
    r = resm(*args, out, "--resume"); assert r.returncode == 0, r.stderr
    def steps(d):
        m = pd.read_csv(next(d.rglob("metrics.csv")))
        return m[m.split == "train"][["step", "loss"]].reset_index(drop=True)
    pd.testing.assert_frame_equal(steps(tmp_path/"straight"), steps(out))
    assert (tmp_path/"straight"/"predictions.csv").read_bytes() == (out/"predictions.csv").read_bytes()
