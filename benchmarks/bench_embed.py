"""`resm embed` against fair-esm, as whole processes (CPU by default; the ESM2-150M architecture with random weights).

Workload: 32 random RNAs of 200-800 nt (15,120 nt in all), the ESM2-150M architecture (30 layers, 640 wide, 20 heads)
with random weights saved as a fair-esm `.pt`, OMP_NUM_THREADS=2.
Reference: fair-esm's `ESM2`, one sequence per forward pass, no heads, a script that loads the state dict and writes
`<id>_emb.npy` (REF below). With --attention the reference is the authors' path (`need_head_weights=True`, one
sequence at a time, writing the (layers·heads, L, L) maps) and `resm embed --attention`; the maps of the whole workload
are 19.5 GB in fp32, so by default this part runs on the first --attention-n records.

Every path runs as its own process (imports, model load, compute, writing), the paths alternate, --reps rounds;
the table gives median wall times, ratios of medians, peak RSS (getrusage of the child), agreement, and the load
average before each run. Usage: python benchmarks/bench_embed.py [--reps 3] [--attention] [--startup]
"""
import argparse, json, os, platform, shutil, statistics, subprocess, sys, time
from pathlib import Path
import numpy as np

HERE = Path(__file__).resolve().parent

def make_model(workdir:Path, layers:int=30, width:int=640, heads:int=20, name:str="esm2_t30_150M_random")->Path:
    "An ESM-2 architecture with random weights, as a fair-esm .pt (made once)."
    from resm.model import tiny_model, export_fair_esm
    path = workdir/f"{name}.pt"
    if not path.exists():
        m, _ = tiny_model(num_layers=layers, embed_dim=width, attention_heads=heads, seed=0)
        export_fair_esm(m, path, token_dropout=False)
    return path

def workload(n:int=32, lo:int=200, hi:int=800, total:int=15120, seed:int=0)->dict:
    "n random RNAs with lengths in [lo, hi] summing to `total` (deterministic)."
    rng = np.random.default_rng(seed)
    L = rng.integers(lo, hi + 1, n)
    while L.sum() != total:                                   # nudge random records until the total is exact
        k = rng.integers(n); d = int(np.sign(total - L.sum()))
        if lo <= L[k] + d <= hi: L[k] += d
    return {f"rna{k:02d}": "".join(rng.choice(list("ACGU"), int(l))) for k, l in enumerate(L)}

def make_fasta(workdir:Path, recs:dict, name:str)->Path:
    from resm.io import write_fasta
    return write_fasta(workdir/name, recs)

# The reference: fair-esm only (no resm import), one sequence per forward pass.
REF = r'''
import sys, time, numpy as np, torch
from pathlib import Path
from Bio.SeqIO.FastaIO import SimpleFastaParser
import esm
torch.set_num_threads(int(sys.argv[4]))
model_path, fasta, out, attention = sys.argv[1], sys.argv[2], Path(sys.argv[3]), sys.argv[5] == "1"
data = torch.load(model_path, map_location="cpu", weights_only=False)       # our own file: trusted
model, alphabet = esm.pretrained.load_model_and_alphabet_core(Path(model_path).stem, data)
model.eval(); conv = alphabet.get_batch_converter(); out.mkdir(parents=True, exist_ok=True)
KDNY = str.maketrans("AUCGT", "KDNYD")
with open(fasta) as f: recs = [(t.split()[0], s.upper().translate(KDNY)) for t, s in SimpleFastaParser(f)]
with torch.no_grad():
    for rid, s in recs:
        _, _, toks = conv([(rid, s)]); L = len(s)
        r = model(toks, repr_layers=[model.num_layers], need_head_weights=attention)
        np.save(out/f"{rid}_emb.npy", r["representations"][model.num_layers][0, 1:L+1].numpy())
        if attention: np.save(out/f"{rid}_atp.npy", r["attentions"][0, :, :, 1:L+1, 1:L+1].flatten(0, 1).numpy())
'''
WRAP = ("import resource, subprocess, sys, json, time; t = time.perf_counter(); r = subprocess.run(sys.argv[1:]); "
        "print(json.dumps(dict(rc=r.returncode, s=time.perf_counter() - t, maxrss_kb=resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)))")

def run(cmd:list, env:dict, cwd=None)->dict:
    "Run `cmd` (in folder `cwd`) as a child of a wrapper that reports its wall time and peak RSS."
    load = os.getloadavg()[0]
    r = subprocess.run([sys.executable, "-c", WRAP, *map(str, cmd)], capture_output=True, text=True, env=env, cwd=cwd)
    res = json.loads(r.stdout.strip().splitlines()[-1])
    if res["rc"] != 0: sys.exit(f"failed: {' '.join(map(str, cmd))}\n{r.stderr[-3000:]}")
    return dict(s=res["s"], rss=res["maxrss_kb"] / 2**20, load=load)

def machine(threads:int)->str:
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.machine())
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=HERE).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "resm"], capture_output=True, text=True, cwd=HERE.parent).stdout.strip()
    import torch
    return (f"machine: {cpu}, {os.cpu_count()} cores, torch {torch.__version__}; threads {threads}; "
            f"commit {commit}{' + uncommitted changes in resm/' if dirty else ''}")

def cosines(a:dict, b:dict):
    import torch
    return {r: float(torch.nn.functional.cosine_similarity(torch.from_numpy(a[r]), torch.from_numpy(b[r]), dim=-1).min()) for r in a}

def loads(v)->str: return ", ".join(f"{x['load']:.1f}" for x in v)

def load_dir(d:Path, ids, kind="emb")->dict: return {r: np.load(d/f"{r}_{kind}.npy", mmap_mode="r" if kind == "atp" else None) for r in ids}

def startup(spec:Path, threads:int, reps:int):
    "Import and load times, each a fresh process: `import resm`, `resm --help`, resm's load_model, fair-esm's load path."
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    probes = {
        "import resm": "import resm",
        "resm --help": "import sys; sys.argv = ['resm', '--help']; from resm.cli import main\ntry: main()\nexcept SystemExit: pass",
        "import resm + load_model": f"import resm; resm.load_model({str(spec)!r}, device='cpu')",
        "import esm + fair-esm load_state_dict path": f"import esm, torch; esm.pretrained.load_model_and_alphabet_core('esm2_t30', torch.load({str(spec)!r}, map_location='cpu', weights_only=False))",
        "python + import torch (floor)": "import torch",
    }
    print("\n| start-up, fresh process | median (s) | runs |\n|---|---|---|")
    for name, code in probes.items():
        ts = []
        for _ in range(reps):
            t = time.perf_counter(); subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, check=True); ts.append(time.perf_counter() - t)
        print(f"| {name} | {statistics.median(ts):.2f} | {', '.join(f'{t:.2f}' for t in ts)} |", flush=True)

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=3, help="alternating rounds (A/B/C each round)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--workdir", default="/tmp/resm_bench")
    ap.add_argument("--attention", action="store_true", help="also: --attention against the authors' need_head_weights path")
    ap.add_argument("--attention-n", type=int, default=8, help="records for the attention comparison")
    ap.add_argument("--startup", action="store_true", help="also: import and model-load times")
    ap.add_argument("--skip-embed", action="store_true")
    ap.add_argument("--fp32-batch-tokens", type=int, default=None, help="also: resm embed --dtype fp32 with this --batch-tokens, in the same rounds")
    ap.add_argument("--device", default="cpu")
    a = ap.parse_args()
    work = Path(a.workdir); work.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, OMP_NUM_THREADS=str(a.threads), MKL_NUM_THREADS=str(a.threads))
    spec = make_model(work); recs = workload(); fasta = make_fasta(work, recs, "workload_32.fa")
    (work/"ref_fair_esm.py").write_text(REF)
    print(machine(a.threads))
    print(f"model: ESM2-150M architecture (30 layers, 640 wide, 20 heads), random weights, fair-esm .pt; "
          f"input: {len(recs)} RNAs, {min(map(len, recs.values()))}-{max(map(len, recs.values()))} nt, {sum(map(len, recs.values()))} nt in all")
    resm = lambda out, *x: [sys.executable, "-m", "resm.cli", "embed", fasta_for[0], "--model", spec, "--out", out, "--device", a.device, "--quiet", *x]
    if not a.skip_embed:
        fasta_for = [fasta]
        paths = {"fair-esm, 1 seq/forward (reference)": lambda o: [sys.executable, work/"ref_fair_esm.py", spec, fasta, o, a.threads, "0"],
                 "resm embed --dtype fp32": lambda o: resm(o, "--dtype", "fp32"),
                 "resm embed --dtype bf16": lambda o: resm(o, "--dtype", "bf16")}
        if a.fp32_batch_tokens:                                   # A/B of the batch budget in the same rounds
            paths[f"resm embed --dtype fp32 --batch-tokens {a.fp32_batch_tokens}"] = lambda o: resm(o, "--dtype", "fp32", "--batch-tokens", a.fp32_batch_tokens)
        res = {k: [] for k in paths}
        for rep in range(a.reps):
            for k, cmd in paths.items():
                out = work/f"emb_{list(paths).index(k)}"; shutil.rmtree(out, ignore_errors=True)
                res[k].append(run(cmd(out), env)); print(f"  round {rep + 1}: {k}: {res[k][-1]['s']:.1f} s (load {res[k][-1]['load']:.1f})", file=sys.stderr, flush=True)
        ref, f32, bf = (load_dir(work/f"emb_{i}", recs) for i in range(3))
        d32 = max(float(np.abs(f32[r] - ref[r]).max()) for r in recs)
        c32, cbf = cosines(f32, ref), cosines(bf, f32)
        med = {k: statistics.median(x["s"] for x in v) for k, v in res.items()}; base = med[list(paths)[0]]
        ntot = sum(map(len, recs.values()))
        print(f"\n{a.reps} alternating rounds; median wall time of whole processes (imports, load, compute, files)\n")
        print("| path | median (s) | nt/s | ratio vs reference | peak RSS (GiB) | agreement | load average before runs |")
        print("|---|---|---|---|---|---|---|")
        agree = ["reference", f"max abs diff to reference {d32:.1e}, min cosine {min(c32.values()):.6f}",
                 f"min per-record cosine to fp32 {min(cbf.values()):.5f}"]
        if a.fp32_batch_tokens:
            f32b = load_dir(work/"emb_3", recs)
            agree.append(f"max abs diff to reference {max(float(np.abs(f32b[r] - ref[r]).max()) for r in recs):.1e}")
        for (k, v), ag in zip(res.items(), agree):
            print(f"| {k} | {med[k]:.1f} | {ntot / med[k]:.0f} | {base / med[k]:.2f}x | {max(x['rss'] for x in v):.2f} | {ag} | "
                  f"{loads(v)} |", flush=True)
    if a.attention:
        sub = dict(list(recs.items())[:a.attention_n]); fasta_for = [make_fasta(work, sub, f"workload_att{a.attention_n}.fa")]
        paths = {"authors' path: fair-esm need_head_weights=True, 1 seq/forward": lambda o: [sys.executable, work/"ref_fair_esm.py", spec, fasta_for[0], o, a.threads, "1"],
                 "resm embed --attention (same pass)": lambda o: resm(o, "--attention")}
        res = {k: [] for k in paths}
        for rep in range(a.reps):
            for k, cmd in paths.items():
                out = work/f"att_{list(paths).index(k)}"; shutil.rmtree(out, ignore_errors=True)
                res[k].append(run(cmd(out), env)); print(f"  round {rep + 1}: {k}: {res[k][-1]['s']:.1f} s", file=sys.stderr, flush=True)
        A, B = load_dir(work/"att_0", sub, "atp"), load_dir(work/"att_1", sub, "atp")
        dmap = max(float(np.abs(np.asarray(A[r]) - np.asarray(B[r])).max()) for r in sub)
        demb = max(float(np.abs(np.load(work/"att_0"/f"{r}_emb.npy") - np.load(work/"att_1"/f"{r}_emb.npy")).max()) for r in sub)
        med = {k: statistics.median(x["s"] for x in v) for k, v in res.items()}; base = med[list(paths)[0]]
        gb = sum(len(s) ** 2 for s in sub.values()) * 600 * 4 / 1e9
        print(f"\nattention: first {len(sub)} records ({sum(map(len, sub.values()))} nt; {gb:.1f} GB of fp32 maps per run), {a.reps} alternating rounds\n")
        print("| path | median (s) | ratio vs authors' path | peak RSS (GiB) | agreement | load average before runs |\n|---|---|---|---|---|---|")
        for k, v in res.items():
            ag = "reference" if k == list(paths)[0] else f"maps max abs diff {dmap:.1e}; embeddings {demb:.1e}"
            print(f"| {k} | {med[k]:.1f} | {base / med[k]:.2f}x | {max(x['rss'] for x in v):.2f} | {ag} | {loads(v)} |", flush=True)
        for i in range(2): shutil.rmtree(work/f"att_{i}", ignore_errors=True)
    if a.startup: startup(spec, a.threads, max(a.reps, 3))
    print(f"\nload average at the end: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")

if __name__ == "__main__": main()
