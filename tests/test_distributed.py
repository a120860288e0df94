"""Training on PyTorch's own engines under torchrun, with 2 gloo processes on CPU: DDP equals gradient accumulation,
a SIGKILL of both ranks resumes exactly, and FSDP2 trains, saves sharded checkpoints, resumes and exports one model."""
import csv, os, shutil, signal, subprocess, sys, time
from pathlib import Path
import pytest
import torch
from resm.model import load_model

ARGS = ["--model", "random:2x32x4", "--data", "mini", "--warmup-steps", "2", "--batch-tokens", "256", "--max-len", "64",
        "--save-every", "2", "--eval-every", "0", "--no-probe", "--device", "cpu", "--lr", "3e-3", "--eval-max-seqs", "4",
        "--log-every", "1", "--seed", "3"]
ENV = os.environ | {"OMP_NUM_THREADS": "1"}

def torchrun(out, *extra, nproc=2, wait=True):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc), "-m", "resm.cli", "train",
           "--out", str(out), *ARGS, *map(str, extra)]
    p = subprocess.Popen(cmd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    if not wait: return p
    o, e = p.communicate(timeout=600)
    assert p.returncode == 0, e[-3000:]
    return p

def single(out, *extra):
    r = subprocess.run([sys.executable, "-m", "resm.cli", "train", "--out", str(out), *ARGS, *map(str, extra)],
                       env=ENV, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]

def losses(run)->list:
    with open(Path(run)/"metrics.csv") as f: return [float(r["loss"]) for r in csv.DictReader(f) if r["split"] == "train"]

def weights(run)->dict: return load_model(run, device="cpu")[0].state_dict()

def close(a:dict, b:dict, tol:float):
    return max((a[k] - b[k]).abs().max().item() for k in a) <= tol

@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp")/"run"
    torchrun(out, "--max-steps", "6")
    return out

def test_train_uses_ddp():
    import inspect, resm.train as t
    assert "DistributedDataParallel" in inspect.getsource(t.wrap_parallel) and not hasattr(t, "_all_reduce_grads")

def test_ddp_equals_gradient_accumulation(ddp_run, tmp_path):
    "2 processes x 1 micro-batch == 1 process x 2 micro-batches: same losses and weights."
    single(tmp_path/"acc", "--max-steps", "6", "--grad-accum", "2")
    a, b = losses(ddp_run), losses(tmp_path/"acc")
    assert len(a) == 6 and all(abs(x - y) <= 1e-5 * abs(y) for x, y in zip(a, b)), (a, b)
    assert close(weights(ddp_run), weights(tmp_path/"acc"), 1e-5)

def test_sigkill_both_ranks_then_resume(ddp_run, tmp_path):
    "Kill the whole torchrun job after its step-2 checkpoint, rerun with --resume: identical losses and weights."
    out = tmp_path/"killed"
    p = torchrun(out, "--max-steps", "6", wait=False)
    t0 = time.time()
    while not (out/"checkpoints"/"step_2.pt").exists():
        assert p.poll() is None and time.time() - t0 < 300, "run ended or stalled before its step-2 checkpoint"
        time.sleep(0.002)
    os.killpg(p.pid, signal.SIGSTOP); os.killpg(p.pid, signal.SIGKILL); p.wait()   # stopped at once: 4 steps were left
    assert not (out/"model.pt").exists()
    torchrun(out, "--max-steps", "6", "--resume")
    assert losses(out) == losses(ddp_run)
    assert close(weights(out), weights(ddp_run), 0.0)

def test_fsdp_trains_saves_resumes_exports(ddp_run, tmp_path):
    out = tmp_path/"fsdp"
    torchrun(out, "--max-steps", "6", "--fsdp")
    assert sorted(p.name for p in (out/"checkpoints").iterdir()) == ["step_4.dcp", "step_6.dcp"]
    a = losses(out)
    assert all(abs(x - y) <= 1e-5 * abs(y) for x, y in zip(a, losses(ddp_run))), (a, losses(ddp_run))
    assert close(weights(out), weights(ddp_run), 1e-5)                    # the exported model.pt is one plain model
    res = tmp_path/"fsdp_resumed"; (res/"checkpoints").mkdir(parents=True)
    shutil.copytree(out/"checkpoints"/"step_4.dcp", res/"checkpoints"/"step_4.dcp"); shutil.copy(out/"metrics.csv", res/"metrics.csv")
    torchrun(res, "--max-steps", "6", "--fsdp", "--resume")
    assert losses(res) == a and close(weights(res), weights(out), 0.0)
    r = subprocess.run([sys.executable, "-m", "resm.cli", "export", str(out), str(tmp_path/"esm2_t2_fsdp.pt")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert close(weights(tmp_path/"esm2_t2_fsdp.pt"), weights(out), 0.0)
