"""Fuzz every `resm` subcommand and its input files; check the error contract.

Contract (see `resm.errors`): a command exits 0, or exits 2 (input error) with exactly one `error:` line on stderr
that names the offending file (or flag); it never prints a Python traceback, never exits 1 (an internal error, i.e.
a bug), and never loses or corrupts a file that an earlier run finished.

Cases are generated with hypothesis: random bytes, invalid UTF-8, NUL, BOM, CRLF, empty files and records, headers
without sequences, very long lines (10^6 nt in the subprocess cases), duplicate and unicode ids, ids that collide
after sanitising, corrupt `.npy`/`.h5`/`manifest.tsv` in an output folder being resumed, truncated checkpoints and
YAML, and nonsense flag values. Almost all cases call `resm.cli.main(argv)` in this process (milliseconds each);
`--subprocess N` adds N cases run as `python -m resm.cli` (a hard crash would show there).

    .venv/bin/python benchmarks/fuzz_cli.py --cases 10000            # prints a table per command
    .venv/bin/python benchmarks/fuzz_cli.py --cases 300 --commands embed,fold --show 5
"""
from __future__ import annotations
import argparse, contextlib, gzip, hashlib, io, json, os, platform, random, shutil, subprocess, sys, tempfile, time, traceback
import warnings
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIX = ROOT/"tests"/"fixtures"
NASTY_VALUES = ["-1", "0", "-0", "nan", "inf", "-inf", "1e309", "abc", "", " ", "９", "1_0", "0x10", "1.5", "99999999999",
                "\x00", "é", "--", "-5e-3", "None", "[]", "{}"]


@dataclass
class Case:
    command: str                  # table row, e.g. "embed"
    argv: list                    # arguments of `resm`
    names: list = field(default_factory=list)      # file names one of which an input error must mention
    protected: dict = field(default_factory=dict)  # path -> sha256 that must be unchanged afterwards
    protect_on_error: list = field(default_factory=list)  # folders whose files must be unchanged when the run fails
    note: str = ""


def sha(p:Path)->str:
    "Content hash; for HDF5 stores the datasets of each group, so that a store rewritten with the same data (plus new groups) matches."
    if Path(p).suffix != ".h5": return hashlib.sha256(Path(p).read_bytes()).hexdigest()
    import h5py
    with h5py.File(p, "r") as f:
        return {g: hashlib.sha256(b"".join(f[g][k][()].tobytes() for k in sorted(f[g]))).hexdigest() for g in f}

def same(p:Path, h)->bool:
    "Is the file as it was (an HDF5 store: does it still hold every group it held, unchanged)?"
    if not p.exists(): return False
    now = sha(p)
    return all(now.get(g) == v for g, v in h.items()) if isinstance(h, dict) else now == h
def snapshot(folder:Path)->dict: return {p: sha(p) for p in sorted(Path(folder).rglob("*")) if p.is_file()}


# ---------------------------------------------------------------- content generators (hypothesis strategies)
def strategies():
    from hypothesis import strategies as st
    ident = st.one_of(st.sampled_from(["a", "b", "seq1", "a/1", "a:1", "a 1", "é", "😀", "x" * 300, "..", ".", "-", "a\tb", "con"]),
                      st.text(min_size=0, max_size=12))
    seq = st.one_of(st.text("ACGU", min_size=1, max_size=60), st.text("ACGUTNacgut-.", min_size=0, max_size=60),
                    st.text(min_size=0, max_size=30))
    records = st.lists(st.tuples(ident, seq), min_size=0, max_size=6)
    return st, ident, seq, records


def fasta_bytes(draw, st, records, long_line:int=20_000)->tuple[bytes, str]:
    "FASTA-ish bytes and a short description of how they were made."
    kind = draw(st.sampled_from(["valid", "valid", "valid", "records", "random", "mutated", "empty", "header_only",
                                 "no_header", "duplicate", "collide", "long", "utf16", "gzip", "blank_lines"]))
    valid = lambda: [(f"r{k}", draw(st.text("ACGU", min_size=1, max_size=50))) for k in range(draw(st.integers(1, 4)))]
    fa = lambda recs, nl="\n": "".join(f">{i}{nl}{s}{nl}" for i, s in recs)
    if kind == "valid": text = fa(valid())
    elif kind == "records": text = fa(draw(records))
    elif kind == "random": return draw(st.binary(max_size=300)), kind
    elif kind == "empty": return b"", kind
    elif kind == "header_only": text = draw(st.sampled_from([">a\n", ">a", ">\n", ">a\n>b\nACGU\n", ">a\nACGU\n>b\n", ">a\n\n\n>b\nGG\n"]))
    elif kind == "no_header": text = draw(st.sampled_from(["ACGU\n", "ACGU\n>a\nGG\n", "\n\nACGU", ";comment\nACGU\n"]))
    elif kind == "duplicate": text = fa([("a", "ACGU"), ("b", "GGCC"), ("a", "UUUU")])
    elif kind == "collide": text = fa([("a/1", "ACGU"), ("a:1", "GGCC")])
    elif kind == "long": text = fa([("long", "ACGU" * (long_line // 4)), ("s", "GGGAAACCC")])
    elif kind == "blank_lines": text = "\n\n>a\n\nAC\n\nGU\n\n>b\n  \nGG\n"
    elif kind == "utf16": return fa(valid()).encode("utf-16"), kind
    elif kind == "gzip": return gzip.compress(fa(valid()).encode()), kind
    else: text = fa(valid())
    data = text.encode("utf-8", "surrogatepass")
    if kind == "mutated" or draw(st.integers(0, 9)) == 0:
        kind += "+" + draw(st.sampled_from(["bom", "crlf", "nul", "badutf8", "cr", "insert", "truncate"]))
        m = kind.split("+")[1]
        if m == "bom": data = b"\xef\xbb\xbf" + data
        elif m == "crlf": data = data.replace(b"\n", b"\r\n")
        elif m == "cr": data = data.replace(b"\n", b"\r")
        elif m == "nul": data = data[:len(data) // 2] + b"\x00" + data[len(data) // 2:]
        elif m == "badutf8": data = data[:len(data) // 2] + b"\xff\xc3(" + data[len(data) // 2:]
        elif m == "insert": k = draw(st.integers(0, len(data))); data = data[:k] + draw(st.binary(min_size=1, max_size=8)) + data[k:]
        elif m == "truncate": data = data[:draw(st.integers(0, len(data)))]
    return data, kind


def csv_bytes(draw, st, columns:list, rows:list, kind:str|None=None)->tuple[bytes, str]:
    "A CSV with `columns` and `rows` (lists of strings), or a damaged version of it."
    kind = kind or draw(st.sampled_from(["valid", "valid", "random", "empty", "header_only", "missing_col", "bad_cell", "ragged", "mutated"]))
    if kind == "random": return draw(st.binary(max_size=300)), kind
    if kind == "empty": return b"", kind
    cols, rows = list(columns), [list(r) for r in rows]
    if kind == "missing_col": k = draw(st.integers(0, len(cols) - 1)); cols.pop(k); rows = [r[:k] + r[k+1:] for r in rows]
    if kind == "header_only": rows = []
    if kind == "bad_cell" and rows:
        r, c = draw(st.integers(0, len(rows) - 1)), draw(st.integers(0, len(cols) - 1))
        rows[r][c] = draw(st.sampled_from(["", "nan", "ZZZ", "((((", "-1", "1e309", "é😀", "A" * 5000, '"', "x,y"]))
    if kind == "ragged" and rows: rows[0] = rows[0] + ["extra", "cells"]
    text = ",".join(cols) + "\n" + "".join(",".join(r) + "\n" for r in rows)
    data = text.encode("utf-8", "surrogatepass")
    if kind == "mutated":
        m = draw(st.sampled_from(["bom", "crlf", "nul", "badutf8", "truncate"]))
        data = {"bom": lambda: b"\xef\xbb\xbf" + data, "crlf": lambda: data.replace(b"\n", b"\r\n"),
                "nul": lambda: data[:len(data) // 2] + b"\x00" + data[len(data) // 2:],
                "badutf8": lambda: data[:len(data) // 2] + b"\xff\xfe" + data[len(data) // 2:],
                "truncate": lambda: data[:draw(st.integers(0, len(data)))]}[m]()
        kind += "+" + m
    return data, kind


# ---------------------------------------------------------------- templates built once per session
class Templates:
    "Finished outputs and checkpoints that cases copy and damage."
    def __init__(self, root:Path):
        self.root = root; self._cache = {}

    def get(self, name:str):
        if name not in self._cache: self._cache[name] = getattr(self, "_" + name)()
        return self._cache[name]

    def _quiet(self, argv):
        from resm.cli import main
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()) as err:
            rc = main(argv)
        assert rc == 0, f"template {argv} failed: {err.getvalue()[-2000:]}"

    def _fasta(self)->Path:
        p = self.root/"t_in.fa"; p.write_text(">a\nGGGAAACCCAUG\n>b/1\nACGUACGUAAGG\n>c\nGCGCAAAAGCGCUU\n"); return p

    def _run(self)->Path:        # a model folder written by save_pretrained
        from resm.model import tiny_model, save_pretrained
        m, tok = tiny_model(); d = self.root/"t_run"; save_pretrained(m, tok, d); return d

    def _fair(self)->Path:
        from resm.model import tiny_model, export_fair_esm
        return export_fair_esm(tiny_model(seed=3)[0], self.root/"esm2_t2_fair.pt")

    def _probe(self)->Path:
        import numpy as np
        from resm.probe import Probe
        return Probe(np.linspace(-1, 1, 8).astype(np.float32), 2.0, 6, dict(num_layers=2, attention_heads=4)).save(self.root/"t_probe.json")

    def _embed_npy(self)->Path:
        d = self.root/"t_embed_npy"; self._quiet(["embed", str(self.get("fasta")), "--model", "tiny", "--out", str(d), "--quiet", "--pooled"]); return d

    def _embed_h5(self)->Path:
        d = self.root/"t_embed_h5"; self._quiet(["embed", str(self.get("fasta")), "--model", "tiny", "--out", str(d), "--quiet", "--format", "h5"]); return d

    def _fold(self)->Path:
        d = self.root/"t_fold"; self._quiet(["fold", str(self.get("fasta")), "--model", "tiny", "--out", str(d), "--quiet", "--head", str(self.get("probe")), "--probs"]); return d

    def _train(self)->Path:
        d = self.root/"t_train"
        self._quiet(["train", *TRAIN_BASE, "--data", str(self.get("fasta")), "--max-steps", "2", "--save-every", "1", "--keep-last", "3", "--out", str(d)])
        return d


TRAIN_BASE = ["--model", "random:2x32x4", "--batch-tokens", "128", "--max-len", "24", "--device", "cpu", "--no-progress",
              "--no-probe", "--eval-every", "0", "--val-frac", "0.34", "--warmup-steps", "1"]


# ---------------------------------------------------------------- case builders, one per command
def _write(path:Path, data:bytes)->Path: path.parent.mkdir(parents=True, exist_ok=True); path.write_bytes(data); return path


def model_spec(draw, st, T:Templates, tmp:Path)->tuple[str, list]:
    "Mostly 'tiny'; sometimes a damaged or odd model spec. Returns (spec, names to be mentioned)."
    kind = draw(st.sampled_from(["tiny"] * 6 + ["run", "fair", "truncated", "random_bytes", "empty", "missing", "dir_no_model",
                                                  "bad_config", "random_arch", "odd_string"]))
    if kind == "tiny": return "tiny", []
    if kind == "run": return str(T.get("run")), []
    if kind == "fair": return str(T.get("fair")), []
    if kind == "truncated":
        src = draw(st.sampled_from([T.get("run")/"model.pt", T.get("fair")])); b = src.read_bytes()
        p = _write(tmp/"trunc_model.pt", b[:draw(st.integers(0, len(b) - 1))]); return str(p), [p.name]
    if kind == "random_bytes": p = _write(tmp/"junk.pt", draw(st.binary(max_size=200))); return str(p), [p.name]
    if kind == "empty": p = _write(tmp/"empty.ckpt", b""); return str(p), [p.name]
    if kind == "missing": return str(tmp/"nope"/"model.pt"), ["model.pt"]
    if kind == "dir_no_model": d = tmp/"emptydir"; d.mkdir(exist_ok=True); return str(d), [d.name]
    if kind == "bad_config":
        d = tmp/"badrun"; shutil.copytree(T.get("run"), d, dirs_exist_ok=True)
        victim = draw(st.sampled_from(["config.json", "model.pt"])); b = (d/victim).read_bytes()
        (d/victim).write_bytes(draw(st.sampled_from([b[:len(b) // 2], b"", b"{not json", b"\x00" * 10, b"[]"]))); return str(d), [d.name, victim]
    if kind == "random_arch": s = draw(st.sampled_from(["random:0x32x4", "random:2x33x4", "random:2x32x0", "random:axbxc", "random:", "random:1x8x2"])); return s, [s]
    s = draw(st.sampled_from(["", " ", "tiny ", "TINY", "esm2_t0_0M", "\x00", "é", "../..", "-", "run:", "data:nope"])); return s, [s.strip() or "empty", repr(s)]


def nasty(draw, st, good:list, work:bool=False)->str:
    "Mostly a good value, else nonsense; `work`: the value sets how much work is done, so no huge valid numbers."
    bad = [v for v in NASTY_VALUES if not (work and v in ("99999999999", "0x10", "1_0", "９"))]
    return draw(st.sampled_from(good)) if draw(st.integers(0, 3)) else draw(st.sampled_from(bad))


def build_embed_fold(cmd:str, draw, st, T, tmp:Path)->Case:
    _, _, _, records = strategies()
    data, kind = fasta_bytes(draw, st, records, long_line=5000)
    fa = _write(tmp/draw(st.sampled_from(["in.fa", "in.fasta", "in.fa.gz", "é in.fa"])), data)
    spec, mnames = model_spec(draw, st, T, tmp)
    out = tmp/"out"; argv = [cmd, str(fa), "--model", spec, "--out", str(out), "--quiet"]
    case = Case(cmd, argv, names=[fa.name, out.name, *mnames], note=kind)
    if draw(st.integers(0, 2)) == 0:                  # resume into a finished, then damaged, output folder
        src = T.get("fold") if cmd == "fold" else T.get(draw(st.sampled_from(["embed_npy", "embed_h5"])))
        shutil.copytree(src, out); damage = draw(st.sampled_from(["none", "manifest_trunc", "manifest_garbage", "manifest_random",
                                                                  "npy_trunc", "npy_random", "h5_trunc", "tmp_junk", "h5part_junk", "manifest_dir"]))
        case.note += f" resume:{damage}"; man = out/"manifest.tsv"; b = man.read_bytes()
        touched = set()
        if damage == "manifest_trunc": man.write_bytes(b[:draw(st.integers(0, len(b)))]); touched.add(man)
        elif damage == "manifest_garbage": man.write_bytes(b + draw(st.binary(min_size=1, max_size=40))); touched.add(man)
        elif damage == "manifest_random": man.write_bytes(draw(st.binary(max_size=100))); touched.add(man)
        elif damage == "manifest_dir": man.unlink(); man.mkdir(); touched.add(man)
        elif damage in ("npy_trunc", "npy_random", "h5_trunc"):
            files = sorted(out.glob("*.npy" if damage.startswith("npy") else "*.h5"))
            if files:
                v = draw(st.sampled_from(files)); vb = v.read_bytes()
                v.write_bytes(vb[:draw(st.integers(0, len(vb) - 1))] if damage.endswith("trunc") else draw(st.binary(max_size=64))); touched.add(v)
        elif damage == "tmp_junk": _write(out/".a_emb.npy.x1y2.tmp", b"\x93NUMPY partial")
        elif damage == "h5part_junk": _write(out/".h5parts"/"zz.h5", b"not hdf5")
        case.names += ["manifest.tsv"]
        if damage in ("none", "tmp_junk", "h5part_junk"):   # every finished file must survive the rerun untouched
            case.protected = {p: sha(p) for p in out.iterdir() if p.is_file() and p.suffix in (".npy", ".dbn", ".h5") and p not in touched}
        if draw(st.booleans()): argv[1] = str(_write(tmp/"same.fa", T.get("fasta").read_bytes())); case.names.append("same.fa")
        if cmd == "fold": argv += ["--head", str(T.get("probe")), "--probs"]
        if cmd == "embed" and src.name.endswith("h5"): argv += ["--format", "h5"]
        if cmd == "embed" and src.name.endswith("npy"): argv += ["--pooled"]
    opts = {"--window": ["8", "16", "1022"], "--long": ["full", "window"], "--dtype": ["fp32", "bf16"], "--on-invalid": ["error", "skip"],
            "--device": ["cpu", "auto"]}
    if cmd == "embed": opts |= {"--batch-tokens": ["64", "4096"], "--layers": ["0", "1", "-1", "2"], "--format": ["npy", "h5"], "--attention-dtype": ["fp16"]}
    else: opts |= {"--format": ["dbn", "bpseq", "ct"], "--threshold": ["0.5", "0", "0.99"], "--min-loop": ["0", "3"], "--method": ["matching", "greedy"],
                   "--head": ["zeroshot", str(T.get("probe"))]}
    for flag in draw(st.lists(st.sampled_from(sorted(opts)), max_size=3, unique=True)):
        if flag in argv: continue
        argv += [flag, nasty(draw, st, opts[flag])]
    for flag in draw(st.lists(st.sampled_from(["--pooled", "--attention"] if cmd == "embed" else ["--probs", "--canonical"]), max_size=2, unique=True)):
        argv.append(flag)
    if "--head" in argv and draw(st.integers(0, 4)) == 0:
        h = argv.index("--head") + 1; p = _write(tmp/"head.json", draw(st.sampled_from([b"", b"{}", b"{\"weight\": [1]}", b"\xff", T.get("probe").read_bytes()[:30]])))
        argv[h] = str(p); case.names.append(p.name)
    return case


def build_info(draw, st, T, tmp)->Case:
    spec, names = model_spec(draw, st, T, tmp)
    return Case("info", ["info", spec] + (["--json"] if draw(st.booleans()) else []), names=names or [spec.strip() or "empty"])


def manifest_yaml(draw, st, tmp)->tuple[Path, str]:
    good = ("entries:\n  x:\n    url: http://127.0.0.1:9/x.txt\n    path: x.txt\n    sha256: " + "0" * 64 + "\n"
            "  m:\n    url: https://example.org\n    path: m.txt\n    manual: true\n")
    kind = draw(st.sampled_from(["good", "truncated", "random", "empty", "not_mapping", "bad_entry", "tabs"]))
    text = {"good": good.encode(), "truncated": good.encode()[:draw(st.integers(0, len(good)))], "random": draw(st.binary(max_size=120)),
            "empty": b"", "not_mapping": b"- a\n- b\n", "bad_entry": b"entries:\n  x: 3\n  y:\n    url: [1, 2]\n",
            "tabs": b"entries:\n\tx:\n\t\turl: a\n"}[kind]
    return _write(tmp/"manifest.yaml", text), kind


def build_data(sub:str, draw, st, T, tmp)->Case:
    argv, names, note = ["data", sub], [], ""
    if draw(st.integers(0, 3)): p, note = manifest_yaml(draw, st, tmp); argv += ["--manifest", str(p)]; names.append(p.name)
    dest = draw(st.sampled_from(["dir", "file", "nested"]))
    d = tmp/"cache" if dest != "nested" else tmp/"a"/"b"/"c"
    if dest == "file": _write(d, b"i am a file")
    argv += ["--dest", str(d)]; names.append(d.name)
    if sub == "fetch": argv += draw(st.lists(st.sampled_from(["x", "m", "nope", "", "é", "../x", "resm_150m_missing"]), min_size=1, max_size=2))
    return Case(f"data {sub}", argv, names=names, note=note)


def build_train(draw, st, T, tmp)->Case:
    _, _, _, records = strategies()
    out = tmp/"run"; argv = ["train", *TRAIN_BASE, "--max-steps", nasty(draw, st, ["1", "2"], work=True), "--out", str(out)]
    names, note = [out.name], ""
    if draw(st.integers(0, 3)):
        data, note = fasta_bytes(draw, st, records, long_line=2000); fa = _write(tmp/"rna.fa", data); argv += ["--data", str(fa)]; names.append(fa.name)
    else: argv += ["--data", str(T.get("fasta"))]
    if draw(st.integers(0, 2)) == 0:
        text = draw(st.sampled_from([b"max_steps: 1\n", b"max_steps: [\n", b"lr: abc\n", b"nope: 1\n", b"", b"\xff\xfe", b"- 1\n", b"max_steps: 1\nlr: 1e-3",
                                     b"max_steps: 1e3\n", b"data: 3\n", b"max_steps: -1\n"]))
        c = _write(tmp/"c.yaml", text); argv += ["--config", str(c)]; names.append(c.name)
    for flag, good in [("--lr", ["1e-3"]), ("--grad-accum", ["1", "2"]), ("--seed", ["0", "7"]), ("--mask-prob", ["0.15"]), ("--val-frac", ["0.5"]),
                       ("--span-min", ["1"]), ("--save-every", ["1"]), ("--keep-last", ["1"]), ("--dtype", ["fp32"]), ("--mapping", ["KDNY", "NYKD"])]:
        if draw(st.integers(0, 6)) == 0: argv += [flag, nasty(draw, st, good)]; names.append(flag)
    case = Case("train", argv, names=names, note=note)
    if draw(st.integers(0, 2)) == 0:
        shutil.copytree(T.get("train"), out); argv.append("--resume"); argv[argv.index("--data") + 1] = str(T.get("fasta"))
        ck = sorted((out/"checkpoints").glob("*.pt"))
        damage = draw(st.sampled_from(["none", "truncate_newest", "random_newest", "metrics", "config", "all_ckpt"]))
        if damage == "truncate_newest": b = ck[-1].read_bytes(); ck[-1].write_bytes(b[:draw(st.integers(0, len(b) - 1))])
        elif damage == "random_newest": ck[-1].write_bytes(draw(st.binary(max_size=64)))
        elif damage == "metrics": (out/"metrics.csv").write_bytes(draw(st.binary(max_size=64)))
        elif damage == "config": (out/"train_config.json").write_bytes(b"{trunc")
        elif damage == "all_ckpt": [c.write_bytes(b"") for c in ck]
        case.note += f" resume:{damage}"; case.names += ["checkpoints", "metrics.csv", "train_config.json", "step_"]
        case.protect_on_error = [out]
    return case


def build_export(draw, st, T, tmp)->Case:
    spec, names = model_spec(draw, st, T, tmp)
    if draw(st.integers(0, 3)) == 0: spec = str(T.get("train")); names = []
    dest = draw(st.sampled_from(["out.pt", "sub/out.pt", "", "dir"]))
    d = tmp/dest if dest else tmp/"x"
    if dest == "dir": d.mkdir(exist_ok=True)
    return Case("export", ["export", spec, str(d)], names=names + [d.name or "x"])


SS_ROWS = [["s1", "GGGAAACCC", "(((...)))", "test"], ["s2", "GGGGAAAACCCC", "((((....))))", "val"], ["s3", "ACGUACGU", "........", "lr"],
           ["s4", "GCGCAAAAGCGC", "((((....))))", "lr"], ["s5", "GGAAACC", "((...))", "test"]]


def build_eval(sub:str, draw, st, T, tmp)->Case:
    out = tmp/"ev"; argv = ["eval", sub, "--out", str(out), "--num-threads", "1"]; names = [out.name]
    spec, mn = model_spec(draw, st, T, tmp); argv += ["--model", spec]; names += mn
    if sub == "zeroshot-ss":
        data, note = csv_bytes(draw, st, ["id", "sequence", "structure", "split"], SS_ROWS)
        argv += ["--data", str(_write(tmp/"ss.csv", data)), "--split", "test", "--n-lr", "2", "--n-val", "1", "--max-seqs", nasty(draw, st, ["2"], work=True)]
    elif sub == "zeroshot-cls":
        rows = [[f"q{k}", f"F{k % 2}", "ACGUAGGCAU"[k:] + "GGAC", "test"] for k in range(6)]
        data, note = csv_bytes(draw, st, ["id", "family", "sequence", "split"], rows)
        argv += ["--data", str(_write(tmp/"cls.csv", data)), "--max-per-family", nasty(draw, st, ["3"], work=True), "--n-freq", nasty(draw, st, ["4", "8"], work=True)]
    elif sub == "zeroshot-rri":
        rows = [[f"p{k}", "GGGACUUCGG", "CCGAAGUCCC", "1" if k % 2 else "0", "GGGACUUCGG&CCGAAGUCCC" if False else "((((((((((&))))))))))"] for k in range(4)]
        data, note = csv_bytes(draw, st, ["id", "seq1", "seq2", "label", "structure"], rows)
        argv += ["--data", str(_write(tmp/"rri.csv", data)), "--n-val", "1", "--n-lr", "2", "--frag", nasty(draw, st, ["20"], work=True), "--linker", nasty(draw, st, ["AAAA", "", "LLL"])]
    else:
        data, note = csv_bytes(draw, st, ["mutant", "DMS_score"], [["A3G", "-0.8"], ["C4U", "-0.5"], ["U5A", "0.1"], ["G8C", "-1.2"], ["A3U:C4G", "0.3"]])
        wt = draw(st.sampled_from([str(FIX/"dms_tiny_wt.fa"), "GGACUUCGGUCCAUAGCAUG", "GGAC", "", str(_write(tmp/"wt.fa", b">w\n\xff\n"))]))
        argv += ["--data", str(_write(tmp/"dms.csv", data)), "--wt", wt, "--methods", nasty(draw, st, ["masked_marginal", "pll", "masked_marginal,pll"]),
                 "--offset", nasty(draw, st, ["1"])]
        names.append(Path(wt).name or "wt")
    names += [Path(argv[argv.index("--data") + 1]).name]
    return Case(f"eval {sub}", argv, names=names + ["--max-seqs", "--n-freq", "--frag", "--linker", "--methods", "--offset", "--max-per-family"], note=note)


def build_finetune(sub:str, draw, st, T, tmp)->Case:
    out = tmp/"ft"; argv = ["finetune", sub, "--out", str(out), "--max-steps", nasty(draw, st, ["1"], work=True), "--batch-size", nasty(draw, st, ["2"], work=True)]
    spec, mn = model_spec(draw, st, T, tmp); argv += ["--model", spec]; names = [out.name, *mn, "--max-steps", "--batch-size"]
    if sub == "ss":
        if draw(st.booleans()): argv += ["--data", str(FIX/"finetune"/"bprna")]
        else:
            data, note = csv_bytes(draw, st, ["id", "sequence", "structure", "split"], SS_ROWS + [["s6", "GGGGAAAACCCC", "((((....))))", "train"], ["s7", "GGGAAACCC", "(((...)))", "train"]])
            argv += ["--data", str(_write(tmp/"ss.csv", data))]; names.append("ss.csv")
        argv += ["--crop", nasty(draw, st, ["32"], work=True), "--channels", nasty(draw, st, ["4"], work=True), "--blocks", nasty(draw, st, ["1"], work=True), "--no-vienna"]
        names += ["--crop", "--channels", "--blocks"]
    else:
        src = FIX/"finetune"/("mrl_sample2019.csv" if sub == "mrl" else "expression_utrlm.csv")
        lines = src.read_text().splitlines(); cols = lines[0].split(","); rows = [l.split(",") for l in lines[1:80]]
        data, note = csv_bytes(draw, st, cols, rows, kind=draw(st.sampled_from(["valid", "random", "empty", "header_only", "missing_col", "bad_cell", "ragged", "mutated"])))
        argv += ["--data", str(_write(tmp/src.name, data)), "--mode", draw(st.sampled_from(["frozen", "lora"])), "--pool", draw(st.sampled_from(["mean", "conv"]))]
        names.append(src.name)
        if sub == "mrl": argv += ["--n-test", nasty(draw, st, ["20"], work=True)]; names.append("--n-test")
        else: argv += ["--target", draw(st.sampled_from(["rnaseq_log", "te_log", "nope", ""]))]; names.append("--target")
    return Case(f"finetune {sub}", argv, names=names, note=locals().get("note", ""))


def build_reproduce(draw, st, T, tmp)->Case:
    "Only cases that must be refused before any notebook runs (a real run takes minutes)."
    kind = draw(st.sampled_from(["only", "params", "params_type"]))
    argv = ["reproduce", "--runs-dir", str(tmp/"runs"), "--allow-dirty"]
    if kind == "only": argv += ["--only", draw(st.sampled_from(["nope", "fig99", ",", "fig1,nope", "é", " "]))]
    elif kind == "params": argv += ["--only", "fig1", "--params", draw(st.sampled_from(["{", "[1]", "3", "\"x\"", "{\"a\": }", "\xff", "null"]))]
    else: argv += ["--only", "fig1", "--params", draw(st.sampled_from(['{"no_such_parameter": 1}', '{"seed": "abc"}', '{"seed": [1]}']))]
    return Case("reproduce", argv, names=["--only", "--params", "no_such_parameter", "seed", "fig1"], note=kind)


BUILDERS = {
    "info": (build_info, 3), "data list": (lambda *a: build_data("list", *a), 1), "data verify": (lambda *a: build_data("verify", *a), 1),
    "data fetch": (lambda *a: build_data("fetch", *a), 1),
    "embed": (lambda *a: build_embed_fold("embed", *a), 6), "fold": (lambda *a: build_embed_fold("fold", *a), 6),
    "train": (build_train, 2), "export": (build_export, 1),
    "eval zeroshot-ss": (lambda *a: build_eval("zeroshot-ss", *a), 1), "eval zeroshot-cls": (lambda *a: build_eval("zeroshot-cls", *a), 1),
    "eval zeroshot-rri": (lambda *a: build_eval("zeroshot-rri", *a), 1), "eval fitness": (lambda *a: build_eval("fitness", *a), 1),
    "finetune ss": (lambda *a: build_finetune("ss", *a), 1), "finetune mrl": (lambda *a: build_finetune("mrl", *a), 1),
    "finetune expression": (lambda *a: build_finetune("expression", *a), 1), "reproduce": (build_reproduce, 1),
}


# ---------------------------------------------------------------- running and judging a case
class CaseTimeout(BaseException): "A case ran longer than its limit (not an Exception: no command may catch it)."

def _alarm(signum, frame): raise CaseTimeout()

def run_inprocess(argv:list, timeout:int=120)->tuple:
    "(exit code, stdout, stderr, escaped traceback or '')."
    import signal, torch
    from resm.cli import main
    threads = torch.get_num_threads(); out, err, tb = io.StringIO(), io.StringIO(), ""
    old = signal.signal(signal.SIGALRM, _alarm); signal.alarm(timeout)
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try: rc = main(argv)
        except SystemExit as e: rc = 0 if e.code is None else (e.code if isinstance(e.code, int) else 2)
        except CaseTimeout: rc, tb = "timeout", f"timed out after {timeout} s"
        except BaseException: rc, tb = "raised", traceback.format_exc()
        finally: signal.alarm(0); signal.signal(signal.SIGALRM, old)
    torch.set_num_threads(threads)
    return rc, out.getvalue(), err.getvalue(), tb


def run_subprocess(argv:list, timeout:int=300)->tuple:
    r = subprocess.run([sys.executable, "-m", "resm.cli", *argv], capture_output=True, text=True, errors="replace", timeout=timeout,
                       env=os.environ | {"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"})
    return r.returncode, r.stdout, r.stderr, ""


def judge(case:Case, rc, err:str, tb:str, before_on_error:dict)->str:
    "'' when the case meets the contract, else what went wrong."
    if rc == "timeout": return tb
    if tb: return "exception escaped main: " + tb.strip().splitlines()[-1]
    if "Traceback (most recent call last)" in err: return "traceback on stderr"
    if rc not in (0, 2): return f"exit code {rc}: " + next((l for l in err.splitlines() if "error" in l), err[-300:])
    lines = [l for l in err.splitlines() if "error:" in l]
    if rc == 2:
        if len(lines) != 1: return f"{len(lines)} error lines: {err[-300:]!r}"
        line = lines[0]
        tokens = [str(a) for a in case.argv[1:] if str(a).startswith("--") or (len(str(a)) > 2 and "/" not in str(a))]
        if "argument " not in line and not any(n and (n in line or repr(n)[1:-1] in line) for n in [*case.names, *tokens]):
            return f"error line names none of {case.names[:6]}: {line[:300]!r}"
    for p, h in case.protected.items():
        if not same(p, h): return f"finished file lost or changed: {p.name}"
    if rc != 0:
        for p, h in before_on_error.items():
            if not same(p, h): return f"a failed run changed {p.name}"
    return ""


def fixed_cases(T:Templates, tmp:Path)->list:
    "Hand-written cases run as fresh processes: 10^6-nt lines, and damaged files a kill can leave behind."
    big = _write(tmp/"big.fa", b">huge\n" + b"ACGU" * 250_000 + b"\n>small\nGGGAAACCC\n")
    run = tmp/"run_trunc"; shutil.copytree(T.get("train"), run)
    newest = sorted((run/"checkpoints").glob("*.pt"))[-1]; newest.write_bytes(newest.read_bytes()[:1000])
    yaml_cut = _write(tmp/"cut.yaml", b"max_steps: 3\nlr: [1e-3,")
    trunc_model = _write(tmp/"cut_model.pt", (T.get("run")/"model.pt").read_bytes()[:5000])
    return [
        Case("embed", ["embed", big, "--model", "tiny", "--out", tmp/"e1", "--quiet"], names=["huge", "big.fa"], note="10^6 nt, --long full"),
        Case("embed", ["embed", big, "--model", "tiny", "--out", tmp/"e2", "--quiet", "--long", "window"], names=["big.fa"], note="10^6 nt, --long window"),
        Case("fold", ["fold", big, "--model", "tiny", "--out", tmp/"f1", "--quiet", "--long", "window"], names=["huge", "big.fa"], note="10^6 nt"),
        Case("train", ["train", *TRAIN_BASE, "--data", T.get("fasta"), "--max-steps", "3", "--save-every", "1", "--out", run, "--resume"],
             names=["checkpoints", "step_", run.name], note="truncated newest checkpoint, --resume"),
        Case("train", ["train", *TRAIN_BASE, "--data", T.get("fasta"), "--config", yaml_cut, "--out", tmp/"r2"], names=["cut.yaml"], note="truncated YAML"),
        Case("info", ["info", trunc_model], names=["cut_model.pt"], note="truncated checkpoint"),
        Case("export", ["export", trunc_model, tmp/"x.pt"], names=["cut_model.pt"], note="truncated checkpoint"),
    ]


def fuzz(n:int, seed:int=0, commands=None, subprocess_cases:int=0, show:int=3, stop_on_failure:bool=False, log=print, weights:dict|None=None, failure_log:str="")->dict:
    "Run `n` generated cases; return {command: {cases, failures, slowest, examples}}."
    from hypothesis import given, settings, Phase, HealthCheck, strategies as st, seed as hseed
    os.environ.setdefault("RESM_DATA", tempfile.mkdtemp(prefix="resm-fuzz-data-"))
    os.environ.setdefault("RESM_OUTPUT_ROOT", tempfile.mkdtemp(prefix="resm-fuzz-out-"))
    import torch; torch.set_num_threads(1)                       # tiny models: one thread is fastest on a shared machine
    root = Path(tempfile.mkdtemp(prefix="resm-fuzz-")); T = Templates(root)
    names = [c for c in BUILDERS if not commands or c in commands or c.split()[0] in commands]
    pool = [c for c in names for _ in range((weights or {}).get(c, BUILDERS[c][1]))]     # weighted choice of the command
    stats = defaultdict(lambda: dict(cases=0, failures=0, seconds=0.0, slowest=0.0, slowest_case="", examples=[]))
    counter = {"k": 0}

    @hseed(seed)
    @settings(max_examples=n, deadline=None, database=None, phases=[Phase.generate], derandomize=False,
              suppress_health_check=list(HealthCheck))
    @given(st.data())
    def one(data):
        k = counter["k"]; counter["k"] += 1
        cmd = data.draw(st.sampled_from(pool))
        tmp = root/f"c{k}"; tmp.mkdir()
        try:
            case = BUILDERS[cmd][0](data.draw, st, T, tmp)
            before = {p: h for d in case.protect_on_error for p, h in snapshot(d).items()}
            sub = k < subprocess_cases
            t0 = time.perf_counter()
            rc, out, err, tb = (run_subprocess if sub else run_inprocess)([str(a) for a in case.argv])
            dt = time.perf_counter() - t0
            why = judge(case, rc, err, tb, before)
        finally: pass
        s = stats[case.command]; s["cases"] += 1; s["seconds"] += dt
        if dt > s["slowest"]: s["slowest"], s["slowest_case"] = dt, " ".join(a if len(a) < 60 else a[:57] + "..." for a in map(str, case.argv[:12]))
        if why:
            s["failures"] += 1
            if failure_log: 
                with open(failure_log, "a") as f: f.write(json.dumps(dict(command=case.command, note=case.note, why=why, argv=[str(a) for a in case.argv])) + "\n")
            if len(s["examples"]) < show: s["examples"].append(dict(argv=[str(a) for a in case.argv], note=case.note, why=why, subprocess=sub))
            if stop_on_failure: raise AssertionError(f"{case.command} [{case.note}] {case.argv}: {why}")
        shutil.rmtree(tmp, ignore_errors=True)
        if counter["k"] % 500 == 0: log(f"  {counter['k']} cases, {sum(v['failures'] for v in stats.values())} failures")

    one()
    if subprocess_cases:                                   # plus the hand-written cases, each in a fresh process
        tmp = root/"fixed"; tmp.mkdir()
        for case in fixed_cases(T, tmp):
            if commands and case.command not in names: continue
            t0 = time.perf_counter(); rc, out, err, tb = run_subprocess([str(a) for a in case.argv], timeout=600); dt = time.perf_counter() - t0
            why = judge(case, rc, err, tb, {}); s = stats[case.command]; s["cases"] += 1; s["seconds"] += dt
            if dt > s["slowest"]: s["slowest"], s["slowest_case"] = dt, case.note
            if why:
                s["failures"] += 1; s["examples"].append(dict(argv=[str(a) for a in case.argv], note=case.note, why=why, subprocess=True))
                if stop_on_failure: raise AssertionError(f"{case.command} [{case.note}]: {why}")
    shutil.rmtree(root, ignore_errors=True)
    return dict(stats)


def table(stats:dict)->str:
    rows = ["| command | cases | failures | mean (s) | slowest case (s) |", "|---|---|---|---|---|"]
    for c in [*BUILDERS, *sorted(set(stats) - set(BUILDERS))]:
        if c in stats: s = stats[c]; rows.append(f"| `resm {c}` | {s['cases']} | {s['failures']} | {s['seconds'] / max(1, s['cases']):.2f} | {s['slowest']:.2f} |")
    tot = sum(s["cases"] for s in stats.values()); fails = sum(s["failures"] for s in stats.values())
    mean = sum(s["seconds"] for s in stats.values()) / max(1, tot)
    rows.append(f"| **all** | **{tot}** | **{fails}** | {mean:.2f} | {max((s['slowest'] for s in stats.values()), default=0):.2f} |")
    return "\n".join(rows)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cases", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--commands", default="", help="comma-separated subset, e.g. embed,fold,'eval fitness'")
    ap.add_argument("--subprocess", type=int, default=20, help="how many of the cases run as a fresh `python -m resm.cli`")
    ap.add_argument("--show", type=int, default=3, help="failing examples kept per command")
    ap.add_argument("--json", default="", help="also write the statistics here")
    ap.add_argument("--failures", default="", help="append each failing case to this file (JSON lines) as it happens")
    a = ap.parse_args()
    t0 = time.time()
    stats = fuzz(a.cases, a.seed, [c.strip() for c in a.commands.split(",") if c.strip()] or None, a.subprocess, a.show, failure_log=a.failures)
    import torch
    print(f"\nmachine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, torch {torch.__version__}; "
          f"seed {a.seed}; {time.time() - t0:.0f} s wall\n")
    print(table(stats))
    for c, s in stats.items():
        for e in s["examples"]: print(f"\n{c} [{e['note']}]: {e['why']}\n  resm {' '.join(e['argv'])}")
    if a.json: Path(a.json).write_text(json.dumps(stats, indent=1, default=str))
    return 1 if any(s["failures"] for s in stats.values()) else 0


if __name__ == "__main__": sys.exit(main())
