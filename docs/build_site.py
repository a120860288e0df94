"""Build the documentation site into `_docs/` from the executed notebooks, offline and in pure Python.

nbdev's own `nbdev_docs` renders through the quarto binary, which cannot be installed without a download. This builds
the same content with nbconvert's HTML exporter instead: one page per library notebook (`nbs/*.ipynb`, index first),
one per executed figure notebook (`docs/runs/mini/*.ipynb`), a navigation bar on every page, and a search page over
the text of all of them. nbdev's directives are honoured: `#| hide` cells are left out, `#| export` and other `#|`
lines are removed from the code shown.

Usage: python docs/build_site.py [--out _docs]
"""
import argparse, copy, html, json, re, sys
from pathlib import Path
import nbformat
from nbconvert import HTMLExporter

ROOT = Path(__file__).resolve().parent.parent

def pages(root:Path=ROOT)->list:
    "(source notebook, page file name, title, section) for every page, in navigation order."
    lib = sorted(p for p in (root/"nbs").glob("*.ipynb") if p.name != "index.ipynb")
    figs = sorted((root/"docs"/"runs"/"mini").glob("*.ipynb"))
    out = [(root/"nbs"/"index.ipynb", "index.html", "resm", "Home")]
    out += [(p, p.stem + ".html", title_of(p), "Library") for p in lib]
    out += [(p, "run_" + p.stem + ".html", title_of(p), "Figures (mini profile)") for p in figs]
    return out

def title_of(nb_path:Path)->str:
    "The notebook's H1 title."
    nb = nbformat.read(nb_path, as_version=4)
    for c in nb.cells:
        if c.cell_type == "markdown" and (m := re.search(r"^#\s+(.+)$", c.source, re.M)): return m.group(1).strip()
    return nb_path.stem

def doc_cells(nb):
    "The notebook as readers see it: hidden cells dropped, `#|` directive lines removed."
    nb = copy.deepcopy(nb); keep = []
    for c in nb.cells:
        if c.cell_type == "code":
            lines = c.source.splitlines()
            if any(re.match(r"#\|\s*(hide|default_exp)\b", l) for l in lines): continue
            c.source = "\n".join(l for l in lines if not l.startswith("#|")).strip("\n")
            if not c.source and not c.get("outputs"): continue
        keep.append(c)
    nb.cells = keep
    return nb

def nav(all_pages, current:str)->str:
    "The navigation bar: every page by section, the current one marked."
    parts, section = ['<nav class="resm-nav"><a href="search.html">Search</a>'], None
    for _, fname, title, sec in all_pages:
        if sec != section: parts.append(f'<span class="resm-sec">{html.escape(sec)}</span>'); section = sec
        cls = ' class="resm-here"' if fname == current else ""
        parts.append(f'<a href="{fname}"{cls}>{html.escape(title)}</a>')
    return "\n".join(parts) + "</nav>"

STYLE = """<style>
.resm-nav{position:fixed;top:0;left:0;bottom:0;width:15rem;overflow-y:auto;padding:1rem;background:#f6f7f9;
  border-right:1px solid #ddd;font:14px/1.5 sans-serif;z-index:10}
.resm-nav a{display:block;color:#124;text-decoration:none;padding:1px 0}.resm-nav a.resm-here{font-weight:bold}
.resm-sec{display:block;margin-top:.8rem;color:#666;font-size:12px;text-transform:uppercase}
body{margin-left:17rem !important}
</style>"""

def text_of(nb)->str:
    "Plain text of a page for the search index."
    return " ".join(re.sub(r"\s+", " ", c.source) for c in nb.cells)[:20000]

SEARCH = """<!doctype html><html><head><meta charset="utf-8"><title>Search · resm</title>{style}</head><body>{nav}
<h1>Search</h1><input id="q" size="40" placeholder="e.g. load_model, pseudoknot, bf16" autofocus>
<ul id="hits"></ul>
<script>
const pages = {index};
const q = document.getElementById('q'), hits = document.getElementById('hits');
q.addEventListener('input', () => {{
  const w = q.value.toLowerCase().trim(); hits.innerHTML = '';
  if (!w) return;
  for (const p of pages) {{
    const i = p.text.toLowerCase().indexOf(w); if (i < 0) continue;
    const li = document.createElement('li');
    li.innerHTML = '<a href="' + p.file + '">' + p.title + '</a> — ' +
      p.text.slice(Math.max(0, i - 60), i + 80).replace(/</g, '&lt;');
    hits.appendChild(li);
  }}
}});
</script></body></html>"""

def build(out:Path, root:Path=ROOT, only=None)->list:
    "Write every page (or the pages named in `only`), the search page and its index; return the page file names."
    out.mkdir(parents=True, exist_ok=True)
    all_pages, exporter, index = pages(root), HTMLExporter(template_name="lab"), []
    for src, fname, title, sec in all_pages:
        if only is not None and fname not in only: continue
        nb = doc_cells(nbformat.read(src, as_version=4))
        body, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": f"{title} · resm"}})
        body = body.replace("</head>", STYLE + "</head>", 1)
        body = re.sub(r"(<body[^>]*>)", lambda m: m.group(1) + nav(all_pages, fname), body, count=1)
        (out/fname).write_text(body, encoding="utf-8")
        index.append({"file": fname, "title": title, "text": text_of(nb)})
    (out/"search.html").write_text(SEARCH.format(style=STYLE, nav=nav(all_pages, "search.html"),
                                                 index=json.dumps(index)), encoding="utf-8")
    return [p[1] for p in all_pages] + ["search.html"]

if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT/"_docs"))
    a = ap.parse_args()
    files = build(Path(a.out))
    print(f"wrote {len(files)} pages to {a.out}")
