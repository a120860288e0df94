"""Figure notebooks through papermill: injected parameters are used, unknown ones are errors, PNGs are byte-stable."""
import hashlib, json
from pathlib import Path

import papermill as pm
import pytest

from resm.reproduce import FIGURES, repo_root, run_notebook, select

ROOT = repo_root()
FIG1 = ROOT / "nbs" / "figures" / "fig1_method.ipynb"


def _tree_hash(d: Path) -> str:
    files = sorted(p for p in d.rglob("*") if p.is_file()) if d.exists() else []
    return hashlib.md5(b"".join(p.read_bytes() for p in files)).hexdigest()


def test_every_figure_notebook_exists_and_declares_profile():
    for key, (name, _) in FIGURES.items():
        path = ROOT / "nbs" / "figures" / name
        params = pm.inspect_notebook(str(path))
        assert "profile" in params, name
        assert all(p["inferred_type_name"] != "None" for p in params.values()), f"{name}: untyped parameter"
        cells = json.loads(path.read_text())["cells"]
        src = [c for c in cells if "parameters" in c["metadata"].get("tags", [])]
        assert len(src) == 1, f"{name}: exactly one parameters cell"
        lines = [l for l in "".join(src[0]["source"]).splitlines() if l.strip() and not l.startswith("#")]
        assert len(lines) == len(params), f"{name}: papermill could not parse every parameter line"
        assert not any(json.loads(path.read_text())["cells"][i].get("outputs") for i in range(len(cells))), f"{name}: outputs committed"
        saves = [l for c in cells for l in "".join(c["source"]).splitlines() if "save_figure(fig" in l]
        assert saves and all("inits=" in l for l in saves), f"{name}: every saved figure names its models' initialisation"


def test_papermill_injects_parameters_and_png_is_deterministic(tmp_path, monkeypatch):
    monkeypatch.setenv("RESM_OUTPUT_ROOT", str(tmp_path))
    monkeypatch.delenv("IN_TEST", raising=False)
    figures_before = _tree_hash(ROOT / "figures")
    run_notebook(FIG1, tmp_path / "run1.ipynb", {"n_seqs": 3, "seed": 5}, cwd=FIG1.parent)
    png1 = (tmp_path / "figures" / "fig1_method.png").read_bytes()
    rows = json.loads((tmp_path / "cache" / "mini" / "results" / "fig1.json").read_text())
    assert rows and all("first 3 ids" in r["data"] and "seed 5" in r["data"] for r in rows)
    nb = json.loads((tmp_path / "run1.ipynb").read_text())
    printed = "".join("".join(o.get("text", "")) for c in nb["cells"] for o in c.get("outputs", []))
    assert '"n_seqs": 3' in printed and '"seed": 5' in printed
    assert "papermill" not in nb["metadata"]  # run times stripped
    run_notebook(FIG1, tmp_path / "run2.ipynb", {"n_seqs": 3, "seed": 5}, cwd=FIG1.parent)
    assert (tmp_path / "figures" / "fig1_method.png").read_bytes() == png1
    assert _tree_hash(ROOT / "figures") == figures_before


def test_unknown_parameter_is_an_error(tmp_path, monkeypatch):
    monkeypatch.setenv("RESM_OUTPUT_ROOT", str(tmp_path))
    with pytest.raises(ValueError, match=r"unknown parameter\(s\) \['n_seq'\]"):
        run_notebook(FIG1, tmp_path / "x.ipynb", {"n_seq": 3}, cwd=FIG1.parent)
    # papermill alone only warns; the notebook's own check stops it
    with pytest.raises(pm.PapermillExecutionError, match="unknown parameter"):
        pm.execute_notebook(str(FIG1), str(tmp_path / "y.ipynb"), parameters={"n_seq": 3}, progress_bar=False, cwd=str(FIG1.parent))


def test_failure_names_notebook_and_cell(tmp_path, monkeypatch):
    monkeypatch.setenv("RESM_OUTPUT_ROOT", str(tmp_path))
    with pytest.raises(RuntimeError, match=r"fig1_method.ipynb failed in cell \d+ .*no/such/model"):
        run_notebook(FIG1, tmp_path / "z.ipynb", {"model_after": "no/such/model"}, cwd=FIG1.parent)


def test_select_orders_dependencies():
    assert select("fig7,fig1") == ["train", "fig1", "fig7"]


def test_fig2_plots_strict_protocol_and_viennarna_once(tmp_path, monkeypatch):
    "Panel a has one value per bar (strict protocol only); panel b counts each test sequence once for ViennaRNA, whatever the number of models."
    import ast, re
    from resm.model import save_pretrained, tiny_model
    monkeypatch.setenv("RESM_OUTPUT_ROOT", str(tmp_path)); monkeypatch.delenv("IN_TEST", raising=False)
    save_pretrained(*tiny_model(seed=1), tmp_path / "m2")
    nb = ROOT / "nbs" / "figures" / "fig2_zeroshot_ss.ipynb"
    run_notebook(nb, tmp_path / "fig2.ipynb", {"models": f"tiny,{tmp_path / 'm2'}", "max_seqs": 4}, cwd=nb.parent)
    out = "".join("".join(o.get("text", "")) for c in json.loads((tmp_path / "fig2.ipynb").read_text())["cells"] for o in c.get("outputs", []))
    bars = ast.literal_eval(re.search(r"values per bar series in a \(strict protocol\): (\{.*\})", out).group(1))
    boxes = ast.literal_eval(re.search(r"sequences per box series in b: (\{.*\})", out).group(1))
    assert set(bars) == set(boxes) == {"tiny · probe (a)", "tiny · best head (b)", "m2 · probe (a)", "m2 · best head (b)", "ViennaRNA MFE"}
    assert set(bars.values()) == {4}                                      # f1, precision, recall, mcc: one value each
    assert set(boxes.values()) == {4}                                     # the 4 test sequences, ViennaRNA included once


def test_fig7_labels_each_start_by_its_recorded_init(tmp_path, monkeypatch):
    "Panel b names each run's start by the init the run recorded, not by a fixed label."
    import shutil
    from resm.reproduce import stand_in_env, train_run
    env = stand_in_env(tmp_path / "stand-ins")
    monkeypatch.setenv("TORCH_HOME", env["TORCH_HOME"])                 # esm2_t6_8M_UR50D present (a stand-in)
    monkeypatch.setenv("RESM_OUTPUT_ROOT", str(tmp_path)); monkeypatch.delenv("IN_TEST", raising=False)
    cache = tmp_path / "cache" / "mini"
    small = dict(steps=1, eval_every=1, probe=False, eval_max_seqs=2, batch_tokens=256)
    for name, start in (("kdny", "esm2_t6_8M_UR50D"), ("kdny-random", "random:2x32x4"), ("abl-KDNY", "random:2x32x4")):
        train_run(cache, name, start, **small)
    nb = ROOT / "nbs" / "figures" / "fig7_ablations.ipynb"
    run_notebook(nb, tmp_path / "fig7.ipynb", {"mappings": "KDNY", "max_seqs": 2, "n_lr": 3, "n_val": 2}, cwd=nb.parent)
    rows = json.loads((cache / "results" / "fig7.json").read_text())
    starts = {r["model"]: r["quantity"].split("(start: ")[1].rstrip(")") for r in rows if "(start: " in r["quantity"]}
    inits = {r["model"]: r["init"] for r in rows if "(start: " in r["quantity"]}
    assert starts == {"run:kdny": "resm-export", "run:kdny-random": "random"}, starts   # the stand-in is a resm export
    assert inits["run:kdny-random"].startswith("random (2x32x4")


def test_fig4_data_column_states_the_chain_lengths(tmp_path, monkeypatch):
    "Designed proxy pairs have a 24-30-nt chain 2 (6 + 12..18 + 6), whatever frag is: the results say so."
    import re
    monkeypatch.setenv("RESM_OUTPUT_ROOT", str(tmp_path)); monkeypatch.delenv("IN_TEST", raising=False)
    nb = ROOT / "nbs" / "figures" / "fig4_zeroshot_rri.ipynb"
    run_notebook(nb, tmp_path / "fig4.ipynb", {"frag": 40, "max_pairs": 6}, cwd=nb.parent)
    data = json.loads((tmp_path / "cache" / "mini" / "results" / "fig4.json").read_text())[0]["data"]
    assert "3 unrelated: chain 1 40 nt, chain 2 40 nt" in data, data
    lo, hi = re.search(r"3 designed: chain 1 40 nt, chain 2 (\d+)(?:–(\d+))? nt", data).groups()
    assert 24 <= int(lo) <= int(hi or lo) <= 30, data
