"`--profile full` on the paper's data: every figure names manifest datasets, the mini benchmark is off limits, and the whole profile runs end to end on stand-ins of every manifest entry (`resm reproduce --profile full --dry-run`)."
import csv, hashlib, json, os, subprocess, sys, time
from pathlib import Path

import pytest

from resm.datasets import DATASETS
from resm.manifest import load_manifest
from resm.reproduce import FIGURES, PROFILE_PARAMS, repo_root, reproduce, run_notebook

ROOT = repo_root()
DATA_PARAMS = ("data", "structures", "mrl_data", "expression_data")


def _named(params: dict) -> set:
    "Manifest entries a figure's parameters name (data:NAME, or a bare entry name for the measurement tables)."
    out = set()
    for k, v in params.items():
        if not isinstance(v, str): continue
        for part in v.split(","):
            if part.startswith("data:"): out.add(part[5:])
            elif k in DATA_PARAMS: out.add(part)
    return out


def test_every_full_figure_names_manifest_datasets():
    entries = set(load_manifest()["entries"])
    named = {}
    for key, params in PROFILE_PARAMS["full"].items():
        assert not any(params.get(k) == "mini" for k in DATA_PARAMS), f"{key} reads mini in the full profile"
        named[key] = _named(params)
        assert named[key] <= entries, (key, named[key] - entries)
        assert named[key] & set(DATASETS), f"{key} names no manifest dataset"
    used = set().union(*named.values())
    # every dataset a figure can read is read by one; resm_datasets is the authors' embedding input (resm embed)
    assert set(DATASETS) - {"resm_datasets"} <= used, set(DATASETS) - used
    assert {"resm_150m", "resm_650m"} <= used                             # both released checkpoints are evaluated


def test_reading_mini_in_the_full_profile_fails(tmp_path, monkeypatch):
    monkeypatch.setenv("RESM_OUTPUT_ROOT", str(tmp_path)); monkeypatch.delenv("IN_TEST", raising=False)
    monkeypatch.setenv("RESM_NO_MINI", "1")
    nb = ROOT / "nbs" / "figures" / "fig1_method.ipynb"
    with pytest.raises(RuntimeError, match="RESM_NO_MINI is set"):
        run_notebook(nb, tmp_path / "fig1.ipynb", {"profile": "full", "data": "mini", "n_seqs": 2}, cwd=nb.parent)


def test_stand_in_cli_and_embed_of_the_authors_layout(tmp_path):
    d = tmp_path / "data"
    r = subprocess.run([sys.executable, "-m", "resm.cli", "data", "stand-in", str(d)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    m = load_manifest()["entries"]
    from resm.manifest import entry_path
    assert all(entry_path(n, e, d).exists() for n, e in m.items())
    # `resm embed` reads the authors' inference layout: data_path with extract_ss_data_alphaid.txt and dsdata/msa/*.a2m
    r = subprocess.run([sys.executable, "-m", "resm.cli", "embed", str(d / "resm_datasets"), "--model", "tiny", "--out", str(tmp_path / "emb"),
                        "--device", "cpu", "--quiet"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    ids = (d / "resm_datasets" / "extract_ss_data_alphaid.txt").read_text().split()
    done = [l.split("\t")[0] for l in (tmp_path / "emb" / "manifest.tsv").read_text().splitlines() if l and not l.startswith("#")]
    assert sorted(done[1:]) == sorted(ids), done                          # header row, then one row per embedded id


def _tree_hash(d: Path) -> str:
    files = sorted(p for p in d.rglob("*") if p.is_file()) if d.exists() else []
    return hashlib.md5(b"".join(p.read_bytes() for p in files)).hexdigest()


@pytest.mark.slow
def test_full_profile_dry_run_on_stand_ins(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("IN_TEST", raising=False); monkeypatch.delenv("RESM_OUTPUT_ROOT", raising=False)
    before = _tree_hash(ROOT / "figures")
    t0 = time.time()
    times = reproduce("full", dry_run=True, dry_run_dir=str(tmp_path))
    print(f"full-profile dry run: {time.time() - t0:.0f} s ({', '.join(f'{k} {v:.0f}' for k, v in times.items())})")
    assert list(times) == list(FIGURES)
    assert _tree_hash(ROOT / "figures") == before                       # a dry run never touches the repository's figures
    rows = list(csv.DictReader(open(tmp_path / "out" / "figures" / "results.csv")))
    assert {r["figure"] for r in rows} == set(FIGURES)
    assert all(r["profile"] == "full" for r in rows)
    assert not [r for r in rows if "mini" in r["data"].lower()], "a full-profile result was computed on the mini benchmark"
    cfg = json.loads((tmp_path / "out" / "cache" / "full" / "models" / "kdny" / "config.json").read_text())
    assert cfg["extra"]["train_config"]["data"] == ["data:rnacentral_active"] and not cfg["extra"]["init"].startswith("random")
    for key, (name, _) in FIGURES.items(): assert (tmp_path / "runs" / "full" / name).exists()


def test_measurement_tables_are_chosen_by_their_documented_names(tmp_path, monkeypatch):
    from resm.datasets import write_stand_ins
    from resm.finetune_reg import load_reg_data
    write_stand_ins(tmp_path); monkeypatch.setenv("RESM_DATA", str(tmp_path))
    # UTR-LM's Data/ folder holds other CSVs that sort first (MRL tables); the expression set is HEK_sequence.csv by name
    expr = load_reg_data("expression", "utrlm_te_el")
    assert len(expr) == 40 and expr.id.str.startswith("ENST00").all()          # the HEK table of the stand-in (seed 0)
    mrl = load_reg_data("mrl", "sample2019_mrl", n_test=10)
    assert len(mrl) == 80                                                      # GSM3130435_egfp_unmod_1, not egfp_unmod_2 (20 rows)
