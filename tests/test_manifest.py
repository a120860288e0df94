"resm data: the real downloader against a loopback HTTP server (success, checksum mismatch, interrupted and resumed transfers, the download lock), offline errors, safe extraction, the CLI."
import argparse, hashlib, http.server, io, os, re, subprocess, sys, tarfile, threading, time
from pathlib import Path
import pytest
import yaml
from resm.manifest import add_cli, fetch, load_manifest, verify, DataError, ChecksumError, safe_extract, ResumableDownloader

BODY = os.urandom(200_000)

def _tar_bytes(data=b"1 G 0\n2 C 0\n"):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        ti = tarfile.TarInfo("ds/a.bpseq"); ti.size = len(data); tf.addfile(ti, io.BytesIO(data))
    return buf.getvalue()
TAR = _tar_bytes()
PAGE = b"<!DOCTYPE html>\n<html><body>Sign in to continue</body></html>\n"   # what a link that needs a login serves
ROUTES = {"/page/archiveII.tar.gz": PAGE, "/page/bpRNA_dataset.zip": PAGE, "/cut/archiveII.tar.gz": TAR[: len(TAR) // 2]}

class Handler(http.server.BaseHTTPRequestHandler):
    hits = []      # paths requested
    seen = []      # (path, Range header, If-Range header) of every request
    cut = {}       # path -> bytes of the next answer to send before hanging up (once)
    def log_message(self, *a): pass
    def do_GET(self):
        Handler.hits.append(self.path); Handler.seen.append((self.path, self.headers.get("Range"), self.headers.get("If-Range")))
        body = TAR if self.path.startswith("/ds.tar.gz") else ROUTES.get(self.path, BODY)
        etag, start, rng = f'"{hashlib.sha256(body).hexdigest()[:16]}"', 0, self.headers.get("Range")
        if rng and not self.path.startswith("/norange") and self.headers.get("If-Range", etag) == etag:   # Range support
            start = int(re.fullmatch(r"bytes=(\d+)-", rng).group(1))
            if start >= len(body):
                self.send_response(416); self.send_header("Content-Range", f"bytes */{len(body)}")
                self.send_header("Content-Length", "0"); self.end_headers(); return
            self.send_response(206); self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else: self.send_response(200)
        data = body[start:]
        self.send_header("Content-Length", str(len(data))); self.send_header("ETag", etag); self.end_headers()
        n = len(data) // 2 if self.path.startswith("/short") else Handler.cut.pop(self.path, None)   # /short: every answer half
        if n is not None:   # promise len(data) bytes, send n, hang up
            self.wfile.write(data[:n]); self.wfile.flush(); self.close_connection = True
            return
        if self.path.startswith("/slow"):
            for i in range(0, len(data), 20_000): self.wfile.write(data[i:i + 20_000]); self.wfile.flush(); time.sleep(0.05)
            return
        self.wfile.write(data)

@pytest.fixture(scope="module")
def server():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True); t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown(); srv.server_close()

def _entry(url, sha, **kw):
    return dict(kind="dataset", url=url, sha256=sha, note="test", size="200 kB", license="CC0", citation="none", used_by=["tests"], **kw)

def _manifest(tmp_path, **entries):
    p = tmp_path / "manifest.yaml"
    p.write_text(yaml.safe_dump({"version": 1, "entries": entries}))
    return p

def _cli(*argv):
    parser = argparse.ArgumentParser(prog="resm"); add_cli(parser.add_subparsers(dest="cmd"))
    args = parser.parse_args(list(argv))
    from resm.errors import run_command
    return run_command(args.func, args, "resm data")

SHA = hashlib.sha256(BODY).hexdigest()

def _leftovers(d): return sorted(p.name for p in Path(d).iterdir())

def test_fetch_success_and_cache(server, tmp_path, capsys):
    m = _manifest(tmp_path, good=_entry(f"{server}/good.bin?download=1", SHA, filename="good.bin"))
    dest = tmp_path / "cache"
    assert _cli("data", "fetch", "good", "--manifest", str(m), "--dest", str(dest)) == 0
    assert (dest / "good.bin").read_bytes() == BODY and _leftovers(dest) == ["good.bin"]
    n = len(Handler.hits)
    assert fetch("good", m, dest=dest) == dest / "good.bin" and len(Handler.hits) == n   # cached: no new request
    assert _cli("data", "verify", "good", "--manifest", str(m), "--dest", str(dest)) == 0
    assert "ok" in capsys.readouterr().out

def test_checksum_mismatch(server, tmp_path, capsys):
    m = _manifest(tmp_path, bad=_entry(f"{server}/good.bin", "0" * 64))
    dest = tmp_path / "cache"
    rc = _cli("data", "fetch", "bad", "--manifest", str(m), "--dest", str(dest))
    err = capsys.readouterr().err
    assert rc != 0 and f"expected {'0' * 64}" in err and f"actual {SHA}" in err
    assert _leftovers(dest) == ["good.bin.corrupt"] and (dest / "good.bin.corrupt").read_bytes() == BODY
    with pytest.raises(ChecksumError): fetch("bad", m, dest=dest)
    assert _leftovers(dest) == ["good.bin.corrupt", "good.bin.corrupt1"]

def test_valid_file_never_overwritten(server, tmp_path):
    dest = tmp_path / "cache"; dest.mkdir()
    (dest / "good.bin").write_bytes(BODY)
    m = load_manifest(_manifest(tmp_path, good=_entry(f"{server}/short.bin", SHA, filename="good.bin")))
    n = len(Handler.hits)
    assert fetch("good", m, dest=dest).read_bytes() == BODY and len(Handler.hits) == n

@pytest.mark.parametrize("sha", [SHA, None])
def test_interrupted_transfer(server, tmp_path, sha, capsys, monkeypatch):
    waits = []; monkeypatch.setattr("resm.manifest.time.sleep", waits.append)
    m = _manifest(tmp_path, cut=_entry(f"{server}/short.bin", sha))
    dest = tmp_path / "cache"
    n = len(Handler.seen)
    assert _cli("data", "fetch", "cut", "--manifest", str(m), "--dest", str(dest)) != 0
    err = capsys.readouterr().err
    assert "could not download 'cut'" in err and "retry 3 of 3" in err and waits == [2.0, 4.0, 8.0]
    assert [r for _, r, _ in Handler.seen[n:]] == [None, "bytes=100000-", "bytes=150000-", "bytes=175000-"]   # no byte received is lost
    assert _leftovers(dest) == [".short.bin.part", ".short.bin.part.info"]    # only the hidden partial file: nothing that looks valid

def _cut_download(server, tmp_path, path, sha=SHA, n=100_000):
    "A fetch whose transfer the server ends after `n` bytes; returns manifest, cache folder and the bytes kept."
    tmp_path.mkdir(exist_ok=True)
    m, dest = _manifest(tmp_path, x=_entry(f"{server}{path}", sha)), tmp_path / "cache"
    Handler.cut[path] = n
    with pytest.raises(DataError, match="continues from there"): fetch("x", m, dest=dest, downloader=ResumableDownloader(retries=0))
    part = dest / f".{Path(path).name}.part"
    kept = part.read_bytes()
    assert 0 < len(kept) <= n and kept == BODY[: len(kept)]
    return m, dest, len(kept)

@pytest.mark.parametrize("sha", [SHA, None])
def test_interrupted_download_resumes(server, tmp_path, sha, capsys):
    m, dest, kept = _cut_download(server, tmp_path, "/resume.bin", sha)
    assert _leftovers(dest) == [".resume.bin.part", ".resume.bin.part.info"]
    n = len(Handler.seen)
    assert fetch("x", m, dest=dest).read_bytes() == BODY
    etag = f'"{SHA[:16]}"'
    assert Handler.seen[n:] == [("/resume.bin", f"bytes={kept}-", etag)]   # only the remainder, and only if the file is unchanged
    assert _leftovers(dest) == ["resume.bin"]

def test_broken_transfer_continues_in_the_same_call(server, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("resm.manifest.time.sleep", lambda s: None)
    m, dest = _manifest(tmp_path, x=_entry(f"{server}/once.bin", SHA)), tmp_path / "cache"
    Handler.cut["/once.bin"] = 100_000; n = len(Handler.seen)
    assert fetch("x", m, dest=dest).read_bytes() == BODY                 # one call: the server hung up once
    assert [r for _, r, _ in Handler.seen[n:]] == [None, "bytes=100000-"] and _leftovers(dest) == ["once.bin"]
    assert "the transfer broke off at byte 100000" in capsys.readouterr().err

def test_server_ignoring_range(server, tmp_path):
    m, dest, kept = _cut_download(server, tmp_path, "/norange/x.bin")
    n = len(Handler.seen)
    assert fetch("x", m, dest=dest).read_bytes() == BODY          # the server answered 200 with the whole file
    assert [r for _, r, _ in Handler.seen[n:]] == [f"bytes={kept}-"] and _leftovers(dest) == ["x.bin"]

def test_complete_part_is_not_downloaded_again(server, tmp_path):
    m, dest, kept = _cut_download(server, tmp_path, "/whole.bin")
    (dest / ".whole.bin.part").write_bytes(BODY)                   # killed after the last byte, before the move
    n = len(Handler.seen)
    assert fetch("x", m, dest=dest).read_bytes() == BODY
    assert Handler.seen[n:] == [("/whole.bin", f"bytes={len(BODY)}-", f'"{SHA[:16]}"')] and _leftovers(dest) == ["whole.bin"]   # 416: nothing left

def test_resumed_part_failing_sha256_is_discarded(server, tmp_path, capsys):
    m, dest, kept = _cut_download(server, tmp_path, "/bad-part.bin")
    part = dest / ".bad-part.bin.part"; part.write_bytes(b"x" * kept)   # a partial file whose bytes are not the file's
    n = len(Handler.seen)
    assert fetch("x", m, dest=dest).read_bytes() == BODY
    err = capsys.readouterr().err
    assert f"sha256 mismatch for 'x' after continuing a partial download at byte {kept}" in err
    assert f"the partial download {part} was discarded, downloading again from the start" in err
    assert [r for _, r, _ in Handler.seen[n:]] == [f"bytes={kept}-", None] and _leftovers(dest) == ["bad-part.bin"]
    # a wrong sha256 in the manifest: the resumed copy is discarded, the fresh one moved aside; no final file, no partial file
    m, dest, kept = _cut_download(server, tmp_path / "w", "/bad-pin.bin", sha="0" * 64)
    with pytest.raises(ChecksumError, match="moved aside"): fetch("x", m, dest=dest)
    assert "was discarded, downloading again from the start" in capsys.readouterr().err
    assert _leftovers(dest) == ["bad-pin.bin.corrupt"] and (dest / "bad-pin.bin.corrupt").read_bytes() == BODY

def test_stale_lock_is_taken_over(server, tmp_path):
    m, dest, kept = _cut_download(server, tmp_path, "/stale.bin")
    dead = subprocess.Popen([sys.executable, "-c", ""]); dead.wait()
    (dest / ".stale.bin.lock").write_text(f"{dead.pid}\n")           # left by a fetch that was killed
    n = len(Handler.seen)
    assert fetch("x", m, dest=dest).read_bytes() == BODY
    assert [r for _, r, _ in Handler.seen[n:]] == [f"bytes={kept}-"] and _leftovers(dest) == ["stale.bin"]

def test_concurrent_fetches_download_once(server, tmp_path, capsys):
    m, dest = _manifest(tmp_path, x=_entry(f"{server}/slow.bin", SHA)), tmp_path / "cache"
    out, n = {}, len(Handler.hits)
    t = threading.Thread(target=lambda: out.setdefault("first", fetch("x", m, dest=dest))); t.start()
    while "/slow.bin" not in Handler.hits[n:]: time.sleep(0.01)    # the first fetch is downloading
    second = fetch("x", m, dest=dest); t.join()
    assert out["first"] == second == dest / "slow.bin" and second.read_bytes() == BODY
    assert Handler.hits[n:].count("/slow.bin") == 1                   # the second waited, then used the first one's file
    assert f"waiting for process {os.getpid()}, which is fetching slow.bin" in capsys.readouterr().err
    assert _leftovers(dest) == ["slow.bin"]


def test_offline_message(tmp_path, monkeypatch):
    waits = []; monkeypatch.setattr("resm.manifest.time.sleep", waits.append)
    m = _manifest(tmp_path, off=_entry("http://127.0.0.1:9/files/off.ckpt?download=1", SHA))
    dest = tmp_path / "cache"
    with pytest.raises(DataError) as e: fetch("off", m, dest=dest)
    assert waits == []                                                  # nothing arrived: no retry, no wait
    msg = str(e.value)
    assert "http://127.0.0.1:9/files/off.ckpt?download=1" in msg and str(dest / "off.ckpt") in msg and SHA in msg
    assert _leftovers(dest) == []

def test_manual_entry_message(tmp_path):
    m = _manifest(tmp_path, man=_entry("https://example.org/record", None, manual=True, filename="x.zip"))
    with pytest.raises(DataError, match="no direct download URL"): fetch("man", m, dest=tmp_path / "c")

def test_archive_is_extracted(server, tmp_path):
    m = _manifest(tmp_path, ds=_entry(f"{server}/ds.tar.gz", hashlib.sha256(TAR).hexdigest(), extract=True))
    out = fetch("ds", m, dest=tmp_path / "cache")
    assert out == tmp_path / "cache" / "ds" and (out / "ds" / "a.bpseq").read_text().startswith("1 G 0")

@pytest.mark.parametrize("path", ["/page/archiveII.tar.gz", "/page/bpRNA_dataset.zip", "/cut/archiveII.tar.gz"])
def test_download_that_is_no_archive(server, tmp_path, capsys, path):
    m = _manifest(tmp_path, arch=_entry(f"{server}{path}", None, extract=True))
    dest, fn = tmp_path / "cache", Path(path).name
    assert _cli("data", "fetch", "arch", "--manifest", str(m), "--dest", str(dest)) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and "entry 'arch'" in err and f"{dest / fn} is not a readable archive" in err
    assert f"moved aside to {dest / fn}.bad" in err and "downloads it again" in err
    assert _leftovers(dest) == [fn + ".bad"]                    # nothing left under the archive's name
    n = len(Handler.hits)
    assert _cli("data", "fetch", "arch", "--manifest", str(m), "--dest", str(dest)) == 2 and len(Handler.hits) == n + 1
    assert _leftovers(dest) == [fn + ".bad", fn + ".bad1"]

def test_redownloaded_archive_is_unpacked_again(server, tmp_path, capsys):
    dest = tmp_path / "cache"; dest.mkdir()
    (dest / "ds.tar.gz").write_bytes(_tar_bytes(b"old\n")); safe_extract(dest / "ds.tar.gz")   # an older download, unpacked
    m = _manifest(tmp_path, ds=_entry(f"{server}/ds.tar.gz", hashlib.sha256(TAR).hexdigest(), extract=True))
    out = fetch("ds", m, dest=dest)
    assert "sha256 mismatch for 'ds'" in capsys.readouterr().err
    assert (out / "ds" / "a.bpseq").read_text().startswith("1 G 0")

def test_folder_without_record_is_unpacked_again(server, tmp_path):
    dest = tmp_path / "cache"; (dest / "ds" / "ds").mkdir(parents=True)
    (dest / "ds.tar.gz").write_bytes(TAR); (dest / "ds" / "ds" / "a.bpseq").write_text("1 G")   # an unpack cut short
    m = _manifest(tmp_path, ds=_entry(f"{server}/ds.tar.gz", hashlib.sha256(TAR).hexdigest(), extract=True))
    n = len(Handler.hits)
    out = fetch("ds", m, dest=dest)
    assert (out / "ds" / "a.bpseq").read_text() == "1 G 0\n2 C 0\n" and len(Handler.hits) == n   # unpacked again, not downloaded
    assert fetch("ds", m, dest=dest) == out and _leftovers(dest) == ["ds", "ds.tar.gz"]

def test_tar_traversal_rejected(tmp_path):
    p = tmp_path / "evil.tar.gz"
    with tarfile.open(p, "w:gz") as tf:
        ti = tarfile.TarInfo("/etc/evil"); ti.size = 1; tf.addfile(ti, io.BytesIO(b"x"))
        ti = tarfile.TarInfo("link"); ti.type = tarfile.SYMTYPE; ti.linkname = "../../outside"; tf.addfile(ti)
    with pytest.raises(DataError): safe_extract(p)
    assert _leftovers(tmp_path) == ["evil.tar.gz"]

def test_verify_detects_corruption(tmp_path, capsys):
    dest = tmp_path / "cache"; dest.mkdir(); (dest / "f.bin").write_bytes(b"tampered")
    m = _manifest(tmp_path, f=_entry("http://127.0.0.1:9/f.bin", SHA))
    assert _cli("data", "verify", "--manifest", str(m), "--dest", str(dest)) == 2
    assert SHA in capsys.readouterr().err

def test_verify_unknown_name_and_missing_entry(tmp_path, capsys):
    m = _manifest(tmp_path, rfam_seed=_entry("http://127.0.0.1:9/Rfam.seed.gz", SHA))
    assert _cli("data", "verify", "rfam_sed", "--manifest", str(m), "--dest", str(tmp_path)) == 2
    err = capsys.readouterr().err
    assert err.startswith("resm data: error: unknown dataset 'rfam_sed'; did you mean rfam_seed?") and err.count("\n") == 1
    assert _cli("data", "verify", "rfam_seed", "--manifest", str(m), "--dest", str(tmp_path)) == 2
    err = capsys.readouterr().err
    assert err.startswith("resm data: error: 1 of 1 entries failed: 'rfam_seed' is missing") and err.count("\n") == 1

def test_verify_folder_with_sha256(tmp_path, capsys):
    dest = tmp_path / "cache"; (dest / "kit").mkdir(parents=True); (dest / "kit" / "a.txt").write_text("a")
    (dest / "f.bin").write_bytes(BODY)
    m = _manifest(tmp_path, kit=_entry("https://example.org/record", "0" * 64, manual=True), f=_entry("http://127.0.0.1:9/f.bin", SHA))
    assert _cli("data", "verify", "--manifest", str(m), "--dest", str(dest)) == 0
    out = capsys.readouterr().out
    assert "unverified kit" in out and "is a folder" in out and "ok         f " in out
    assert fetch("kit", m, dest=dest) == dest / "kit" and "'kit' is a folder" in capsys.readouterr().err

def test_repository_manifest():
    m = load_manifest()
    e = m["entries"]
    assert e["resm_150m"]["url"].startswith("https://zenodo.org/records/15980875/")
    for k in ("esm2_t6_8M_UR50D", "esm2_t12_35M_UR50D", "esm2_t30_150M_UR50D", "esm2_t33_650M_UR50D"):
        assert e[k]["url"] == f"https://dl.fbaipublicfiles.com/fair-esm/models/{k}.pt"
        assert e[k + "_contact_regression"]["url"].endswith(f"{k}-contact-regression.pt")
    rows = [r for r in verify(m) if r["kind"] == "bundled"]
    assert len(rows) == 5 and all(r["status"] == "ok" for r in rows)

def test_wired_cli(tmp_path):
    r = subprocess.run([sys.executable, "-m", "resm.cli", "data", "list", "--dest", str(tmp_path)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "resm_650m" in r.stdout and "rnacentral_active" in r.stdout

def test_unknown_sha256_is_printed_for_pinning(server, tmp_path, capsys):
    m = _manifest(tmp_path, new=_entry(f"{server}/new.bin", None))
    dest = tmp_path / "cache"
    assert _cli("data", "fetch", "new", "--manifest", str(m), "--dest", str(dest)) == 0
    err = capsys.readouterr().err
    assert f"has sha256 {SHA}" in err and "pin it" in err            # the actual hash of what was downloaded
    assert (dest / "new.bin").read_bytes() == BODY


def test_guessed_urls_and_names_are_labelled():
    e = load_manifest()["entries"]
    # URLs or file names not read from their source (built from a script default, recalled, or a layout assumed)
    for name in ("resm_150m", "resm_650m", "resm_datasets", "rfam_seed", "bprna_spot", "bprna_new", "pdb_spot_ts1", "pdb_ts2_ts3", "rri_rise"):
        assert "GUESS" in e[name]["note"], name
