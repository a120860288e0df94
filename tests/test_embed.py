"End-to-end tests of `resm embed` and the memory-bounded attention features (tiny models, CPU)."
import os, signal, subprocess, sys, time
from pathlib import Path
import numpy as np
import pytest
import torch
from resm.io import write_fasta
from resm.model import tiny_model
from resm.features import attention_maps, symmetrize, apc, pair_logits, embed_records
from resm.embed import embed_fasta

RNG = np.random.default_rng(0)
def rand_seq(n): return "".join(RNG.choice(list("ACGU"), n))

class Res:
    def __init__(self, rc, err): self.returncode, self.stderr = rc, err

@pytest.fixture
def cli(capsys):
    "Run the wired `resm` CLI in-process (a subprocess costs seconds of imports per call)."
    from resm.cli import main
    def run(*args):
        capsys.readouterr(); rc = main([str(a) for a in args])
        return Res(rc, capsys.readouterr().err)
    return run

@pytest.fixture(scope="module")
def tiny(): return tiny_model(num_layers=3, embed_dim=32, attention_heads=4, seed=2)

def test_cli_end_to_end(tmp_path, cli):
    fa = write_fasta(tmp_path/"in.fa", {"a": rand_seq(30), "b": rand_seq(12), "c": rand_seq(50)})
    r = cli("embed", fa, "--model", "tiny", "--out", tmp_path/"o", "--pooled", "--layers", "1", "-1", "--quiet")
    assert r.returncode == 0, r.stderr
    e = np.load(tmp_path/"o"/"c_emb_l2.npy"); assert e.shape == (50, 32) and e.dtype == np.float32
    assert np.load(tmp_path/"o"/"b_emb_l1.npy").shape == (12, 32)
    np.testing.assert_allclose(np.load(tmp_path/"o"/"a_pooled_l2.npy"), np.load(tmp_path/"o"/"a_emb_l2.npy").mean(0), rtol=1e-6)
    lines = (tmp_path/"o"/"manifest.tsv").read_text().splitlines()
    assert lines[0].split("\t") == ["id", "length", "model", "mapping", "dtype", "long", "layers", "format", "files"]
    rows = {l.split("\t")[0]: l.split("\t") for l in lines[1:]}
    assert set(rows) == {"a", "b", "c"} and rows["c"][1:7] == ["50", "tiny", "KDNY", "fp32", "full", "1,-1"]

def test_equal_to_fair_esm(tmp_path, tiny):
    model, tok = tiny
    seqs = {"a": rand_seq(40), "b": rand_seq(7), "c": rand_seq(23)}
    fa = write_fasta(tmp_path/"in.fa", seqs)
    embed_fasta(fa, tiny, tmp_path/"o", batch_tokens=64, progress=False)
    for rid, s in seqs.items():
        with torch.no_grad(): ref = model(tok.encode(s)[None], repr_layers=[3])["representations"][3][0, 1:-1]
        np.testing.assert_allclose(np.load(tmp_path/"o"/f"{rid}_emb.npy"), ref.numpy(), atol=1e-4)

def test_resume_skips_finished_and_ignores_partial_files(tmp_path, tiny):
    fa = write_fasta(tmp_path/"in.fa", {"a": rand_seq(20), "b": rand_seq(25)})
    out = tmp_path/"o"
    assert embed_fasta(fa, tiny, out, progress=False)["done"] == 2
    mtime = (out/"a_emb.npy").stat().st_mtime_ns
    # what a kill leaves behind: a temporary file mid-write, and a file whose manifest line was never appended
    (out/".c_emb.npy.abc123.tmp").write_bytes(b"\x93NUMPY partial")
    (out/"c_emb.npy").write_bytes(b"\x93NUMPY truncat")
    fa = write_fasta(tmp_path/"in.fa", {"a": rand_seq(20), "b": rand_seq(25), "c": rand_seq(33)})
    res = embed_fasta(fa, tiny, out, progress=False)
    assert (res["done"], res["skipped"]) == (1, 2)
    assert (out/"a_emb.npy").stat().st_mtime_ns == mtime            # finished ids are not recomputed
    assert np.load(out/"c_emb.npy").shape == (33, 32)               # the unrecorded file was redone
    assert not list(out.glob(".*.tmp"))
    with pytest.raises(ValueError, match="other settings"): embed_fasta(fa, tiny, out, dtype="bf16", progress=False)

def test_kill_and_resume(tmp_path):
    "SIGKILL a real run part-way; the rerun finishes, skips what was recorded, and every file loads."
    recs = {f"r{k}": rand_seq(150) for k in range(600)}
    fa, out = write_fasta(tmp_path/"in.fa", recs), tmp_path/"o"
    p = subprocess.Popen([sys.executable, "-m", "resm.cli", "embed", str(fa), "--model", "tiny", "--out", str(out),
                          "--batch-tokens", "160", "--quiet"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    man = out/"manifest.tsv"; t0 = time.time()
    while time.time() - t0 < 60:
        if man.exists() and len(man.read_text().splitlines()) > 20: break
        time.sleep(0.02)
    p.send_signal(signal.SIGKILL); p.wait()
    n_done = len(man.read_text().splitlines()) - 1
    assert 0 < n_done < len(recs), "the run finished before it could be killed"
    res = embed_fasta(fa, "tiny", out, progress=False)
    assert res["skipped"] >= n_done - 1 and res["done"] + res["skipped"] == len(recs)
    for rid in recs: assert np.load(out/f"{rid}_emb.npy").shape == (150, 32)
    ids = [l.split("\t")[0] for l in man.read_text().splitlines()[1:]]
    assert sorted(set(ids)) == sorted(recs)

@pytest.mark.parametrize("text,needle", [
    (">a\nACGU\n>b\nACZU\n", "'Z' at position 3 of record b"),
    (">a\nACGU\n>b\n\n>c\nAC\n", "record 'b' (record #2) is empty"),
    (">a\nACGU\n>b\nAC\n>a\nGG\n", "duplicate id 'a': record #3 repeats record #1"),
])
def test_bad_input_stops_before_work(tmp_path, cli, text, needle):
    (tmp_path/"in.fa").write_text(text)
    r = cli("embed", tmp_path/"in.fa", "--model", "tiny", "--out", tmp_path/"o", "--quiet")
    assert r.returncode != 0 and needle in r.stderr, r.stderr
    assert not list(tmp_path.glob("o/*.npy"))

def test_on_invalid_skip(tmp_path, cli):
    (tmp_path/"in.fa").write_text(">a\nACGUAC\n>b\nAC!U\n>c\n\n>a\nGG\n>d\nGGGCCC\n")
    r = cli("embed", tmp_path/"in.fa", "--model", "tiny", "--out", tmp_path/"o", "--on-invalid", "skip", "--quiet")
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in (tmp_path/"o").glob("*.npy")) == ["a_emb.npy", "d_emb.npy"]
    assert r.stderr.count("skipping") == 3 and "record b" in r.stderr

def test_h5_format(tmp_path, tiny):
    import h5py
    seqs = {"x/1": rand_seq(21), "y": rand_seq(9)}
    fa = write_fasta(tmp_path/"in.fa", seqs)
    embed_fasta(fa, tiny, tmp_path/"h", fmt="h5", pooled=True, progress=False)
    embed_fasta(fa, tiny, tmp_path/"n", progress=False)
    with h5py.File(tmp_path/"h"/"embeddings.h5") as f:
        assert sorted(f) == ["x_1", "y"] and f["x_1"].attrs["id"] == "x/1" and f["x_1"].attrs["length"] == 21
        np.testing.assert_array_equal(f["x_1"]["emb"][:], np.load(tmp_path/"n"/"x_1_emb.npy"))
        assert f["y"]["pooled"].shape == (32,)
    fa = write_fasta(tmp_path/"in.fa", seqs | {"z": rand_seq(5)})         # resume adds to the store
    assert embed_fasta(fa, tiny, tmp_path/"h", fmt="h5", pooled=True, progress=False)["done"] == 1
    with h5py.File(tmp_path/"h"/"embeddings.h5") as f: assert sorted(f) == ["x_1", "y", "z"]

def test_attention_layout(tmp_path, cli, tiny):
    model, tok = tiny
    s = rand_seq(17)
    fa = write_fasta(tmp_path/"in.fa", {"s": s})
    r = cli("embed", fa, "--model", "tiny", "--out", tmp_path/"o", "--attention", "--attention-dtype", "fp16", "--quiet")
    assert r.returncode == 0, r.stderr
    a = np.load(tmp_path/"o"/"s_atp.npy"); assert a.shape == (2 * 4, 17, 17) and a.dtype == np.float16
    embed_fasta(fa, tiny, tmp_path/"p", attention=True, progress=False)
    a = np.load(tmp_path/"p"/"s_atp.npy"); assert a.shape == (3 * 4, 17, 17) and a.dtype == np.float32
    with torch.no_grad(): ref = model(tok.encode(s)[None], need_head_weights=True)["attentions"][0]   # (layers, H, T, T)
    for layer in range(3):
        for h in range(4): np.testing.assert_allclose(a[layer * 4 + h], ref[layer, h, 1:-1, 1:-1].numpy(), atol=1e-5)

def test_memory_bounded_equals_naive(tiny):
    model, tok = tiny
    s = rand_seq(45); w = torch.randn(12); b = -0.7
    naive = (apc(symmetrize(attention_maps(model, tok, s))) * w[:, None, None]).sum(0) + b
    for rc in (1, 7, None): torch.testing.assert_close(pair_logits(model, tok, s, w, b, row_chunk=rc), naive, atol=1e-4, rtol=1e-4)

def test_long_policies(tmp_path, tiny):
    s = rand_seq(70)
    fa = write_fasta(tmp_path/"in.fa", {"long": s})
    embed_fasta(fa, tiny, tmp_path/"w", long="window", window=32, progress=False)
    assert np.load(tmp_path/"w"/"long_emb.npy").shape == (70, 32)
    assert "window32" in (tmp_path/"w"/"manifest.tsv").read_text()
    full = dict(embed_records(*tiny, [("long", s)]))["long"][3]
    assert full.shape == (70, 32)                                          # full: no truncation, rotary positions
    with pytest.raises(ValueError, match="--attention needs --long full"):
        embed_fasta(fa, tiny, tmp_path/"x", long="window", attention=True, progress=False)

def _torchrun(*args, wait=True):
    "`torchrun --standalone --nproc_per_node 2 -m resm.cli ARGS` (2 gloo processes on CPU)."
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "resm.cli", *map(str, args)]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    if wait: return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)

def _same_files(a:Path, b:Path, pattern:str):
    names = sorted(p.name for p in a.glob(pattern))
    assert names and names == sorted(p.name for p in b.glob(pattern))
    for n in names: assert (a/n).read_bytes() == (b/n).read_bytes(), n

def _rows(out:Path)->set:
    return set(out.joinpath("manifest.tsv").read_text().splitlines())

def test_torchrun_two_ranks_equal_one_process(tmp_path):
    "2 gloo ranks: each record once, files byte-identical to a plain run, one merged manifest (HDF5 merged too)."
    recs = {f"r{k}": rand_seq(int(n)) for k, n in enumerate(RNG.integers(5, 90, 9))}
    fa = write_fasta(tmp_path/"in.fa", recs)
    for fmt in ("npy", "h5"):
        one, two = tmp_path/f"one_{fmt}", tmp_path/f"two_{fmt}"
        embed_fasta(fa, "tiny", one, fmt=fmt, pooled=True, batch_tokens=200, progress=False)
        r = _torchrun("embed", fa, "--model", "tiny", "--out", two, "--format", fmt, "--pooled", "--batch-tokens", "200", "--quiet")
        assert r.returncode == 0, r.stderr[-3000:]
        assert _rows(one) == _rows(two) and len(_rows(two)) == len(recs) + 1
        assert sorted(p.name for p in two.glob("manifest*")) == ["manifest.tsv"]
        if fmt == "npy": _same_files(one, two, "*.npy")
        else:
            import h5py
            with h5py.File(one/"embeddings.h5") as f, h5py.File(two/"embeddings.h5") as g:
                assert sorted(f) == sorted(g) == sorted(recs)
                for k in f:
                    assert dict(f[k].attrs) == dict(g[k].attrs)
                    for d in f[k]: assert f[k][d][:].tobytes() == g[k][d][:].tobytes()

def test_torchrun_attention_and_bf16(tmp_path):
    "Attention maps and bf16 under 2 ranks: byte-identical to a plain run."
    fa = write_fasta(tmp_path/"in.fa", {f"s{k}": rand_seq(20 + 7 * k) for k in range(5)})
    embed_fasta(fa, "tiny", tmp_path/"one", attention=True, dtype="bf16", progress=False)
    r = _torchrun("embed", fa, "--model", "tiny", "--out", tmp_path/"two", "--attention", "--dtype", "bf16", "--quiet")
    assert r.returncode == 0, r.stderr[-3000:]
    _same_files(tmp_path/"one", tmp_path/"two", "*.npy"); assert _rows(tmp_path/"one") == _rows(tmp_path/"two")

def test_torchrun_kill_and_resume(tmp_path):
    "SIGKILL both ranks part-way; a second torchrun run resumes from the part manifests and ends byte-identical to a plain run."
    recs = {f"r{k}": rand_seq(150) for k in range(600)}
    fa, out = write_fasta(tmp_path/"in.fa", recs), tmp_path/"o"
    p = _torchrun("embed", fa, "--model", "tiny", "--out", out, "--batch-tokens", "160", "--quiet", wait=False)
    t0 = time.time(); done = lambda: sum(max(len(m.read_text().splitlines()) - 1, 0) for m in out.glob("manifest*.tsv"))
    while time.time() - t0 < 120 and done() < 40: time.sleep(0.02)
    os.killpg(p.pid, signal.SIGKILL); p.wait()
    n_done = done()
    assert 0 < n_done < len(recs), "the run finished before it could be killed"
    assert len(list(out.glob("manifest.rank*.tsv"))) == 2                   # each rank kept its own part manifest
    r = _torchrun("embed", fa, "--model", "tiny", "--out", out, "--batch-tokens", "160", "--quiet")
    assert r.returncode == 0, r.stderr[-3000:]
    ids = [l.split("\t")[0] for l in (out/"manifest.tsv").read_text().splitlines()[1:]]
    assert sorted(ids) == sorted(recs) and not list(out.glob("manifest.rank*.tsv")) and not list(out.glob(".*.tmp"))
    embed_fasta(fa, "tiny", tmp_path/"one", batch_tokens=160, progress=False)
    _same_files(tmp_path/"one", out, "*.npy")

def test_bf16_cast_once_close_to_fp32_and_fp32_equal_to_fair_esm(tmp_path):
    "bf16 runs on a cast copy (the caller's model stays fp32): cosine ≥ 0.999 per record; fp32 within 1e-4 of fair-esm."
    m, tok = tiny_model(num_layers=4, embed_dim=128, attention_heads=8, seed=3)
    recs = [(f"s{k}", rand_seq(n)) for k, n in enumerate([40, 200, 333, 17])]
    f32 = dict(embed_records(m, tok, recs, batch_tokens=700))
    bf = dict(embed_records(m, tok, recs, dtype="bf16", batch_tokens=700))
    assert all(p.dtype == torch.float32 for p in m.parameters())
    for rid, s in recs:
        with torch.no_grad(): ref = m(tok.encode(s)[None], repr_layers=[4])["representations"][4][0, 1:-1].numpy()
        np.testing.assert_allclose(f32[rid][4], ref, atol=1e-4)
        cos = torch.nn.functional.cosine_similarity(torch.from_numpy(bf[rid][4]), torch.from_numpy(f32[rid][4]), dim=-1)
        assert cos.min() >= 0.999, (rid, float(cos.min()))

cuda_only = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

def cpu_and_cuda_models():
    "The same tiny model twice: (CPU model, tokenizer, CUDA copy)."
    m, tok = tiny_model(num_layers=4, embed_dim=128, attention_heads=8, seed=3)
    return m, tok, tiny_model(num_layers=4, embed_dim=128, attention_heads=8, seed=3)[0].cuda()

def assert_close_to_cpu(gpu, cpu, dtype, what):
    "fp32 within 1e-4 of the CPU fp32 embeddings; every precision at per-residue cosine ≥ 0.999."
    if dtype == "fp32": np.testing.assert_allclose(gpu, cpu, atol=1e-4, err_msg=what)
    cos = torch.nn.functional.cosine_similarity(torch.from_numpy(gpu), torch.from_numpy(cpu), dim=-1)
    assert cos.min() >= 0.999, (what, float(cos.min()))

@pytest.mark.gpu
@cuda_only
@pytest.mark.parametrize("dtype", ["fp32", "bf16", "fp16"])
def test_cuda_embed_and_maps_equal_cpu(dtype):
    "On CUDA: embeddings close to the CPU fp32 run (fp32 within 1e-4; bf16/fp16 cosine ≥ 0.999), same-pass maps equal fair-esm's."
    m, tok, mc = cpu_and_cuda_models()
    recs = [(f"s{k}", rand_seq(n)) for k, n in enumerate([40, 200, 333])]
    cpu, maps = dict(embed_records(m, tok, recs)), {}
    gpu = dict(embed_records(mc, tok, recs, dtype=dtype, attention=lambda r, L: maps.setdefault(r, np.zeros((32, L, L), np.float32))))
    for rid, s in recs:
        assert_close_to_cpu(gpu[rid][4], cpu[rid][4], dtype, rid)
        if dtype == "fp32": np.testing.assert_allclose(maps[rid], attention_maps(m, tok, s).numpy(), atol=1e-5)

@pytest.mark.gpu
@cuda_only
@pytest.mark.parametrize("dtype", ["fp32", "bf16", "fp16"])
def test_cuda_packed_and_padded_equal_cpu(dtype):
    "On CUDA both batch layouts (records back to back, and padded) and the default give the CPU fp32 embeddings: fp32 within 1e-4, bf16/fp16 cosine ≥ 0.999."
    m, tok, mc = cpu_and_cuda_models()
    recs = [(f"s{k}", rand_seq(n)) for k, n in enumerate([40, 200, 333, 7])]
    cpu = dict(embed_records(m, tok, recs))
    for packed in (True, False, None):
        gpu = dict(embed_records(mc, tok, recs, dtype=dtype, packed=packed))
        for rid, _ in recs: assert_close_to_cpu(gpu[rid][4], cpu[rid][4], dtype, f"{rid}, packed={packed}")

@pytest.mark.gpu
@cuda_only
def test_cuda_sparse_pair_logits_equal_cpu():
    "On CUDA the sparse probe's logits equal the CPU's (1e-4), and the heads it skips may run their attention in bf16 (within 0.05)."
    m, tok, mc = cpu_and_cuda_models()
    w = torch.zeros(32); w[[3, 17, 30]] = torch.tensor([0.8, -0.5, 1.2]); seq = rand_seq(300)
    cpu = pair_logits(m, tok, seq, w, -1.0)
    np.testing.assert_allclose(pair_logits(mc, tok, seq, w, -1.0).numpy(), cpu.numpy(), atol=1e-4)
    assert (pair_logits(mc, tok, seq, w, -1.0, sdpa_dtype="bf16") - cpu).abs().max() < 0.05
