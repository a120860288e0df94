"""kill -9 at many moments; the same command again (with --resume where it applies) must equal an uninterrupted run.

For each command, an uninterrupted reference run first; then, for each of `--points` kill moments spread over the
reference's wall time (so some land during checkpoint writes and during the final export), start the command, SIGKILL
it at that moment, check that every file already carrying its final name is complete (equal to the reference's),
rerun it, and compare with the reference:
- `resm train` and `resm finetune mrl`: identical per-step losses, and identical weights / predictions;
- `resm embed`, `resm fold`, `resm eval zeroshot-cls`: identical files (metrics.json without its `seconds`).

    .venv/bin/python benchmarks/kill_matrix.py                    # 8 kill moments per command
    .venv/bin/python benchmarks/kill_matrix.py --points 20 --commands train,fold
"""
import argparse, csv, hashlib, json, os, platform, random, shutil, signal, subprocess, sys, tempfile, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENV = os.environ | {"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
FX = ROOT/"tests"/"fixtures"/"finetune"


def digest(d:Path)->dict:
    "What must match the reference: file contents, except volatile fields."
    out = {}
    for p in sorted(d.rglob("*")):
        if not p.is_file() or p.name.startswith("."): continue
        rel = p.relative_to(d).as_posix()
        if p.name == "metrics.json":
            out[rel] = {k: v for k, v in json.loads(p.read_text()).items() if k not in ("seconds",)}
        elif p.name == "metrics.csv":   # per-step losses; throughput and wall-clock columns vary
            with open(p, newline="") as f:
                out[rel] = [(r.get("step"), r.get("split"), r.get("loss"), r.get("lr"), r.get("val_loss")) for r in csv.DictReader(f)]
        elif p.name in ("manifest.tsv", "ranks.json") or p.suffix == ".png" or "checkpoints" in p.parts: continue
        else: out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def commands(tmp:Path)->dict:
    "name -> (argv before --out, extra argv for the rerun)."
    import numpy as np
    sys.path.insert(0, str(ROOT))
    from resm.io import write_fasta
    from resm.probe import Probe
    rng = np.random.default_rng(0)
    fa = write_fasta(tmp/"in.fa", {f"r{k}": "".join(rng.choice(list("ACGU"), 80)) for k in range(120)})
    tr = write_fasta(tmp/"train.fa", {f"t{k}": "".join(rng.choice(list("ACGU"), int(rng.integers(20, 60)))) for k in range(60)})
    probe = Probe(np.linspace(-1, 1, 8).astype(np.float32), 2.0, 6, dict(num_layers=2, attention_heads=4)).save(tmp/"p.json")
    train = ["train", "--model", "random:2x32x4", "--batch-tokens", "256", "--max-len", "40", "--device", "cpu", "--no-progress", "--no-probe",
             "--warmup-steps", "2", "--lr", "3e-3", "--val-frac", "0.1", "--data", tr, "--max-steps", "40", "--save-every", "5", "--eval-every", "10"]
    return {
        "train": (train, ["--resume"]),
        "finetune": (["finetune", "mrl", "--model", "tiny", "--data", FX/"mrl_sample2019.csv", "--n-test", "40", "--max-steps", "40"], ["--resume"]),
        "embed": (["embed", fa, "--model", "tiny", "--quiet", "--pooled", "--batch-tokens", "400"], []),
        "embed-h5": (["embed", fa, "--model", "tiny", "--quiet", "--format", "h5", "--batch-tokens", "400"], []),
        "fold": (["fold", fa, "--model", "tiny", "--head", probe, "--probs", "--quiet"], []),
        "eval": (["eval", "zeroshot-cls", "--model", "tiny", "--max-per-family", "4", "--num-threads", "1"], []),
    }


def run(argv, out:Path, timeout=900):
    t0 = time.time()
    r = subprocess.run([sys.executable, "-m", "resm.cli", *map(str, argv), "--out", str(out)], capture_output=True, text=True, env=ENV, timeout=timeout)
    if r.returncode != 0: raise RuntimeError(f"resm {' '.join(map(str, argv[:2]))} failed: {r.stderr[-1500:]}")
    return time.time() - t0


def one_kill(argv, again, out:Path, at:float, ref:dict)->str:
    "'' if the killed-and-rerun command matches the reference, else what differs."
    p = subprocess.Popen([sys.executable, "-m", "resm.cli", *map(str, argv), "--out", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
    time.sleep(at)
    finished = p.poll() is not None
    p.send_signal(signal.SIGKILL); p.wait()
    if out.exists():                                       # nothing partial carries a final name
        for rel, v in digest(out).items():
            if rel.endswith(("metrics.csv", "metrics.json", "train_config.json", "config.json")) or rel.startswith("train/"): continue
            if rel in ref and v != ref[rel] and not rel.endswith(".h5"): return f"partial or wrong file in place after the kill: {rel}"
    r = subprocess.run([sys.executable, "-m", "resm.cli", *map(str, argv), "--out", str(out), *(again if out.exists() else [])],
                       capture_output=True, text=True, env=ENV, timeout=900)
    if r.returncode != 0: return f"rerun failed: {r.stderr.strip().splitlines()[-1] if r.stderr.strip() else r.returncode}"
    got = digest(out)
    diff = sorted(k for k in set(ref) | set(got) if ref.get(k) != got.get(k))
    return f"differs from the uninterrupted run: {diff[:5]}" if diff else ("(finished before the kill)" if finished else "")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--points", type=int, default=8, help="kill moments per command")
    ap.add_argument("--commands", default="", help="comma-separated subset of train,finetune,embed,embed-h5,fold,eval")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="resm-kill-")); rng = random.Random(a.seed); rows = []
    for name, (argv, again) in commands(tmp).items():
        if a.commands and name not in a.commands.split(","): continue
        wall = run(argv, tmp/f"{name}-ref"); ref = digest(tmp/f"{name}-ref")
        ok = early = 0; bad = []
        for k in range(a.points):
            at = wall * (k + rng.random()) / a.points                      # spread over the reference's wall time
            why = one_kill(argv, again, tmp/f"{name}-k{k}", at, ref)
            if why == "(finished before the kill)": early += 1
            elif why: bad.append(f"kill at {at:.1f} s: {why}")
            else: ok += 1
            shutil.rmtree(tmp/f"{name}-k{k}", ignore_errors=True)
        rows.append((name, wall, ok, early, bad)); print(f"{name}: {ok} ok, {early} finished before the kill, {len(bad)} failed", flush=True)
        for b in bad: print("   ", b, flush=True)
    print(f"\nmachine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}\n")
    print("| command | reference run (s) | kills | identical after rerun | finished before the kill | failures |\n|---|---|---|---|---|---|")
    for name, wall, ok, early, bad in rows: print(f"| `{name}` | {wall:.0f} | {a.points} | {ok} | {early} | {len(bad)} |")
    shutil.rmtree(tmp, ignore_errors=True)
    return 1 if any(r[4] for r in rows) else 0


if __name__ == "__main__": sys.exit(main())
