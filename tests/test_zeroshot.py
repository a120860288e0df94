"""Zero-shot evaluations: hand-checkable metrics and `resm eval ...` end to end with the tiny model."""
import json, math, subprocess, sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from resm.decode import decode_pairs, greedy_one_partner
from resm.metrics import pair_metrics, overlap_ratio, spearman, best_threshold, knn_accuracy, cluster_ari
from resm.fitness import parse_mutant

FIX = Path(__file__).parent / "fixtures"


def resm(*args, cwd=None):
    "Run the wired CLI in a fresh interpreter."
    return subprocess.run([sys.executable, "-m", "resm.cli", *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=300)


def resm_inproc(*args):
    "Run the wired CLI in this process (saves the ~5 s import of a fresh interpreter)."
    from resm.cli import main
    return main([str(a) for a in args])


@pytest.fixture(autouse=True)
def _restore_threads():
    "`--num-threads` sets a process-wide torch setting; put it back after each test."
    import torch
    n = torch.get_num_threads(); yield; torch.set_num_threads(n)


# ---------------------------------------------------------------- metrics by hand
def test_perfect_prediction_scores_one():
    true = [(0, 20), (1, 19), (5, 30)]
    m = pair_metrics(true, true, L=32)
    assert (m["precision"], m["recall"], m["f1"], m["mcc"]) == (1.0, 1.0, 1.0, 1.0)


def test_partial_prediction_by_hand():
    m = pair_metrics([(0, 9), (3, 6)], [(0, 9), (1, 8), (2, 7)], L=10)    # tp 1, fp 1, fn 2, tn 41
    assert m["f1"] == pytest.approx(0.4)
    assert m["mcc"] == pytest.approx((41 - 2) / math.sqrt(2 * 3 * 42 * 43))


def test_empty_conventions():
    assert pair_metrics([], [], L=10)["f1"] == 1.0
    assert pair_metrics([], [(0, 9)], L=10)["f1"] == 0.0
    assert pair_metrics([(0, 9)], [], L=10)["f1"] == 0.0


def test_overlap_ratio_known_values():
    rng = np.random.default_rng(0)
    x = rng.normal(0, 0.1, 200)
    assert overlap_ratio(x, x) == pytest.approx(1.0)
    assert overlap_ratio(rng.normal(-0.6, 0.05, 200), rng.normal(0.6, 0.05, 200)) < 1e-6


def test_spearman_known_value():
    assert spearman([1, 2, 3, 4, 5], [2, 1, 4, 3, 5]) == pytest.approx(0.8)    # 1 - 6*4/(5*24)


def test_best_threshold_and_clusters():
    assert best_threshold([0.9, 0.8, 0.3, 0.2], [1, 1, 0, 0])["f1"] == 1.0
    X = np.array([[1, 0], [0.9, 0.1], [0, 1], [0.1, 0.9]]); y = ["a", "a", "b", "b"]
    assert knn_accuracy(X, y) == 1.0 and cluster_ari(X, y) == 1.0


def test_decode_keeps_pseudoknot_and_one_partner():
    L = 32; P = np.zeros((L, L))
    for a, b in [(0, 20), (1, 19), (5, 30)]: P[a, b] = P[b, a] = 0.9
    P[0, 25] = P[25, 0] = 0.8                                                 # competes with (0, 20)
    assert decode_pairs(P) == [(0, 20), (1, 19), (5, 30)]
    assert greedy_one_partner(P) == [(0, 20), (1, 19), (5, 30)]


def test_variant_errors_name_the_variant():
    with pytest.raises(ValueError, match="variant 'G3A'"): parse_mutant("G3A", "GGACU")


# ---------------------------------------------------------------- CLI end to end
def _outputs(d):
    return sorted(p.name for p in Path(d).iterdir())


def test_cli_zeroshot_ss(tmp_path):
    r = resm("eval", "zeroshot-ss", "--model", "tiny", "--data", "mini", "--out", tmp_path, "--max-seqs", 4, "--n-lr", 2, "--n-val", 4, "--num-threads", 1)
    assert r.returncode == 0, r.stderr
    assert _outputs(tmp_path) == ["metrics.json", "per_sequence.csv", "per_sequence.png"]
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert m["n"] == 4
    for k in ("model", "viennarna", "best_head"): assert {"f1", "precision", "recall", "mcc"} <= set(m[k])
    assert m["viennarna"]["f1"] > 0.1                                        # a real baseline on real structures
    tab = pd.read_csv(tmp_path / "per_sequence.csv")
    assert set(tab.method) == {"probe", "best_head", "viennarna", "probe_authors"} and len(tab) == 16
    assert {"f1", "threshold", "tp", "fp", "fn"} <= set(m["authors"]["model"]) and m["protocol"] == "both"


def test_cli_zeroshot_cls(tmp_path):
    assert resm_inproc("eval", "zeroshot-cls", "--model", "tiny", "--out", tmp_path, "--max-per-family", 3, "--num-threads", 1) == 0
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert {"or", "delta_mean", "knn_acc", "ari"} <= set(m) and m["n_families"] >= 5
    from resm.zeroshot_cls import run_zeroshot_cls                  # the command computes what the library computes
    lib = run_zeroshot_cls("tiny", "mini", tmp_path/"lib", max_per_family=3)
    assert {k: m[k] for k in ("or", "delta_mean", "knn_acc", "ari", "n")} == {k: lib[k] for k in ("or", "delta_mean", "knn_acc", "ari", "n")}
    assert {"pc1", "pc2", "family"} <= set(pd.read_csv(tmp_path / "per_sequence.csv").columns)
    assert (tmp_path / "per_sequence.png").stat().st_size > 1000


def test_cli_zeroshot_rri_proxy_labels(tmp_path):
    assert resm_inproc("eval", "zeroshot-rri", "--model", "tiny", "--out", tmp_path, "--max-seqs", 2, "--n-val", 2, "--n-lr", 2,
                       "--frag", 20, "--linker", "AAAA", "--num-threads", 1) == 0
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert m["linker"] == "AAAA" and m["label_source"] == ["viennarna_proxy"] and m["n"] == 2
    assert set(pd.read_csv(tmp_path / "per_pair.csv").label_source) == {"viennarna_proxy"}


def test_cli_fitness_fixture(tmp_path):
    assert resm_inproc("eval", "fitness", "--model", "tiny", "--data", FIX / "dms_tiny.csv", "--wt", FIX / "dms_tiny_wt.fa",
                       "--out", tmp_path, "--num-threads", 1) == 0
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert m["n"] == 10 and set(m["spearman"]) == {"masked_marginal", "pll"}
    var = pd.read_csv(tmp_path / "variants.csv")                                  # one wild type: the mean is its rho
    for k, v in m["spearman"].items(): assert v == pytest.approx(var[k].rank().corr(var.DMS_score.rank()), abs=1e-9), k
    png = (tmp_path / "variants.png").read_bytes()
    assert resm_inproc("eval", "fitness", "--model", "tiny", "--data", FIX / "dms_tiny.csv", "--wt", FIX / "dms_tiny_wt.fa",
                       "--out", tmp_path / "again", "--num-threads", 1) == 0
    assert (tmp_path / "again" / "variants.png").read_bytes() == png                  # deterministic figure


def test_cli_fitness_bad_variant(tmp_path, capsys):
    bad = tmp_path / "bad.csv"; bad.write_text("mutant,DMS_score\nA3G,0.1\nG4A,0.2\n")
    assert resm_inproc("eval", "fitness", "--model", "tiny", "--data", bad, "--wt", "GGACUUCG", "--out", tmp_path / "o") == 2
    err = capsys.readouterr().err
    assert "variant 'G4A'" in err and "position 4" in err
    assert not (tmp_path / "o" / "metrics.json").exists()


def test_cli_fitness_mini_proxy(tmp_path):
    assert resm_inproc("eval", "fitness", "--model", "tiny", "--out", tmp_path, "--methods", "masked_marginal", "--max-variants", 30, "--num-threads", 1) == 0
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert m["n"] == 30 and m["label_source"] == ["viennarna_proxy"]
