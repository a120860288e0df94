"Round trips and malformed input for resm.io (dot-bracket, bpseq, CT, FASTA, Stockholm)."
import gzip
import pytest
from hypothesis import given, settings, strategies as st, HealthCheck
from resm.io import (RNARecord, pairs_from_dotbracket, dotbracket_from_pairs, parse_bpseq, format_bpseq, parse_ct,
                     format_ct, read_fasta, iter_fasta, write_fasta, read_stockholm, write_bpseq, read_bpseq, write_ct, read_ct)

@st.composite
def nested_pairs(draw, max_len=60):
    "A random nested (pseudoknot-free) structure: (L, pairs)."
    L = draw(st.integers(0, max_len))
    pairs, stack = [], []
    for i in range(L):
        op = draw(st.sampled_from("(.)"))
        if op == "(": stack.append(i)
        elif op == ")" and stack: pairs.append((stack.pop(), i))
    return L, sorted(pairs)

@st.composite
def any_pairs(draw, max_len=60):
    "A random pair set, crossing allowed (pseudoknots of any depth): (L, pairs)."
    L = draw(st.integers(0, max_len))
    order = draw(st.permutations(range(L)))
    n = draw(st.integers(0, L // 2))
    return L, sorted(tuple(sorted(order[2 * k:2 * k + 2])) for k in range(n))

seqs = lambda L: st.text(alphabet="ACGU", min_size=L, max_size=L)
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

@FAST
@given(nested_pairs())
def test_nested_dotbracket_roundtrip(lp):
    L, pairs = lp
    db = dotbracket_from_pairs(pairs, L)
    assert set(db) <= set("().")
    assert pairs_from_dotbracket(db) == pairs
    assert dotbracket_from_pairs(pairs_from_dotbracket(db), L) == db

@FAST
@given(any_pairs())
def test_pseudoknot_dotbracket_roundtrip(lp):
    L, pairs = lp
    db = dotbracket_from_pairs(pairs, L)
    assert len(db) == L and pairs_from_dotbracket(db) == pairs
    assert dotbracket_from_pairs(pairs_from_dotbracket(db), L) == db

@FAST
@given(any_pairs(), st.data())
def test_bpseq_ct_roundtrip(lp, data):
    L, pairs = lp
    if L == 0: return
    rec = RNARecord("r1", data.draw(seqs(L)), dotbracket_from_pairs(pairs, L))
    assert parse_bpseq(format_bpseq(rec), id="r1") == rec
    assert parse_ct(format_ct(rec)) == [rec]
    assert parse_bpseq(format_bpseq(rec), id="r1").pairs == pairs

def test_file_roundtrips(tmp_path):
    rec = RNARecord("pk", "GGGAAACCCAAAGGGUUU", "(((...[[[)))...]]]")
    write_bpseq(tmp_path / "pk.bpseq", rec); assert read_bpseq(tmp_path / "pk.bpseq") == rec
    write_ct(tmp_path / "pk.ct", [rec, rec]); assert read_ct(tmp_path / "pk.ct") == [rec, rec]
    write_fasta(tmp_path / "a.fa", [rec]); assert read_fasta(tmp_path / "a.fa") == {"pk": rec.sequence}

@pytest.mark.parametrize("db,msg", [("((.)", "'(' at position 1 is never closed"), ("(.))", "')' at position 4"),
                                    ("A..b", "'b' at position 4 has no opening 'B'"), ("A..a.B", "'B' at position 6 is never closed"), ("(.|)", "'|' at position 3")])
def test_malformed_dotbracket(db, msg):
    with pytest.raises(ValueError, match=msg.replace("(", r"\(").replace(")", r"\)").replace("|", r"\|")):
        pairs_from_dotbracket(db)

def test_malformed_pairs_and_lengths():
    with pytest.raises(ValueError, match="paired with itself"): dotbracket_from_pairs([(3, 3)], 5)
    with pytest.raises(ValueError, match="in two pairs"): dotbracket_from_pairs([(0, 4), (1, 4)], 5)
    with pytest.raises(ValueError, match="structure length 3 != sequence length 4"): RNARecord("x", "ACGU", "...")
    with pytest.raises(ValueError, match="paired with itself"): parse_bpseq("1 A 1\n2 C 0\n", id="b")
    with pytest.raises(ValueError, match="paired with itself"): parse_ct("2 t\n1 A 0 2 1 1\n2 C 1 0 0 2\n")
    with pytest.raises(ValueError, match="invalid character 'Z' at position 2 of record b"): parse_bpseq("1 A 0\n2 Z 0\n", id="b")

def test_fasta_crlf_multiline_gz_and_errors(tmp_path):
    raw = b">a desc\r\nACGT\r\nacgu\r\n\r\n>b\r\nNNRY\r\n"
    (tmp_path / "x.fa").write_bytes(raw)
    with gzip.open(tmp_path / "x.fa.gz", "wb") as f: f.write(raw)
    for p in ("x.fa", "x.fa.gz"): assert read_fasta(tmp_path / p) == {"a": "ACGUACGU", "b": "XXXX"}
    (tmp_path / "d.fa").write_text(">a\nAC\n>b\nGG\n>a\nUU\n")
    with pytest.raises(ValueError, match="duplicate record id 'a' \\(record #3\\)"): read_fasta(tmp_path / "d.fa")
    assert [r for r, _ in iter_fasta(tmp_path / "d.fa", unique=False)] == ["a", "b", "a"]
    (tmp_path / "e.fa").write_text(">a\nAC\n>empty\n")
    with pytest.raises(ValueError, match="record 'empty'"): read_fasta(tmp_path / "e.fa")

def test_iter_fasta_is_lazy(tmp_path):
    p = tmp_path / "big.fa"
    with open(p, "w") as f:
        for k in range(20000): f.write(f">s{k}\nACGUACGUAC\n")
    it = iter_fasta(p, unique=False)
    assert next(it) == ("s0", "ACGUACGUAC")   # first record without reading all
    it.close()

STO = """# STOCKHOLM 1.0
#=GF ID famA
#=GF AC RF99999
a1  GGG-AAA.CCC
#=GR a1 SS <<<.___.>>>
a2  GGGUAAAAC-C
#=GC SS_cons <<<.___.>>>
//
# STOCKHOLM 1.0
b1  GCAAAGCA-AAUGC
b2  GCAAAGCAGAA-GC
#=GC SS_cons <<AA..>>..aa..
//
"""

def test_stockholm_projection_and_pseudoknots(tmp_path):
    (tmp_path / "m.sto").write_text(STO)
    recs = read_stockholm(tmp_path / "m.sto", family="fallback")
    assert [(r.id, r.family) for r in recs] == [("a1", "famA"), ("a2", "famA"), ("b1", "fallback"), ("b2", "fallback")]
    assert recs[0].sequence == "GGGAAACCC" and recs[0].structure == "(((...)))"
    # a2: column 10 (1-based) is a gap, so its partner, column 2, becomes unpaired
    assert recs[1].sequence == "GGGUAAAACC" and recs[1].structure == "(.(.....))"
    # b1: the A/a pseudoknot crosses the <> stem and is written in the second tier; b2: one 'a' partner is a gap
    b1, b2 = recs[2], recs[3]
    assert b1.sequence == "GCAAAGCAAAUGC" and b1.pairs == [(0, 7), (1, 6), (2, 10), (3, 9)]
    assert b1.structure == "(([[..)).]].."
    assert b2.sequence == "GCAAAGCAGAAGC" and b2.pairs == [(0, 7), (1, 6), (3, 10)]

def test_bundled_stockholm():
    from resm.data import BENCH_DIR
    recs = read_stockholm(BENCH_DIR / "4.sto.gz")
    assert {r.family for r in recs} == {"tRNA", "Vault", "snR75", "Plant_SRP"}
    rnasep = read_stockholm(BENCH_DIR / "RNaseP.sto.gz")
    assert all(any(c in r.structure for c in "[]{}<>") for r in rnasep)  # pseudoknots survive projection
    ssu = read_stockholm(BENCH_DIR / "ssu.sto.gz")
    assert min(len(r.sequence) for r in ssu) > 1400 and all(len(r.pairs) > 300 for r in ssu)
