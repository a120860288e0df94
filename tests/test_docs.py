"""The documentation site: built offline from the executed notebooks, each page carries its title, code and outputs."""
import importlib.util, re
from html.parser import HTMLParser
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("build_site", ROOT/"docs"/"build_site.py")
site = importlib.util.module_from_spec(spec); spec.loader.exec_module(site)

class Page(HTMLParser):
    "Collects the <title>, the code inputs and the rendered outputs of a nbconvert page."
    def __init__(self):
        super().__init__(); self.title, self.inputs, self.outputs, self._in_title, self.links = "", 0, 0, False, []
    def handle_starttag(self, tag, attrs):
        a = dict(attrs); cls = a.get("class") or ""
        if tag == "title": self._in_title = True
        if "jp-InputArea-editor" in cls: self.inputs += 1
        if "jp-OutputArea-output" in cls: self.outputs += 1
        if tag == "a" and "href" in a: self.links.append(a["href"])
    def handle_endtag(self, tag):
        if tag == "title": self._in_title = False
    def handle_data(self, data):
        if self._in_title: self.title += data

PAGES = ["index.html", "01_model.html", "06_metrics.html"]

@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("site")
    return out, site.build(out, only=PAGES)

@pytest.mark.parametrize("name", PAGES)
def test_page_has_title_code_and_outputs(built, name):
    out, _ = built
    p = Page(); p.feed((out/name).read_text(encoding="utf-8"))
    assert p.title.endswith("· resm") and len(p.title) > len("· resm") + 2, p.title
    assert p.inputs >= 1, f"{name}: no code cell"
    assert p.outputs >= 1, f"{name}: no rendered output (are the notebooks committed with outputs? run `make docs`)"
    assert "search.html" in p.links and "01_model.html" in p.links            # the navigation bar

def test_directives_and_hidden_cells_are_not_shown(built):
    out, _ = built
    text = (out/"01_model.html").read_text(encoding="utf-8")
    assert "#| export" not in text and "#| hide" not in text and "default_exp" not in text

def test_search_page_indexes_the_built_pages(built):
    out, files = built
    s = (out/"search.html").read_text(encoding="utf-8")
    assert "load_model" in s and '"file": "01_model.html"' in s
