"""Re-execute library notebooks in place, keeping their outputs: `make docs`.

Cells run as under `nbdev_test` (working directory = the notebook's folder, `IN_TEST=1`, cells marked `#| slow`,
`#| gpu` or `#| eval: false` are skipped); afterwards `nbdev_clean` strips execution counts and metadata. Outputs
that would not be the same on another machine or run (absolute paths of this checkout or of temporary folders) are
reported, so the notebook can be fixed to print something stable instead."""
import os, re, sys
from pathlib import Path
from execnb.nbio import read_nb, write_nb
from execnb.shell import CaptureShell
from fastcore.xtras import working_directory
from nbdev.process import extract_directives

SKIP = {"slow", "gpu"}
VOLATILE = re.compile(r"(/tmp/|/var/folders/|" + re.escape(str(Path.cwd().resolve())) + r")")

def _skip(cell)->bool:
    if cell.cell_type != "code": return True
    d = extract_directives(cell, remove=False)
    return d.get("eval:", [""])[0].lower() == "false" or bool(SKIP & d.keys())

def run(fn:Path)->list:
    "Execute `fn` in place; return the cells whose outputs look machine-specific."
    nb = read_nb(fn)
    for c in nb.cells:                                    # a cell that now prints nothing must not keep its old output
        if not _skip(c): c.outputs = []
    with working_directory(fn.parent): CaptureShell(fn).run_all(nb, exc_stop=True, preproc=_skip)
    write_nb(nb, fn)
    return [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and VOLATILE.search(str(c.get("outputs", "")))]

if __name__ == "__main__":
    os.environ["IN_TEST"] = "1"
    paths = [Path(p) for p in sys.argv[1:]] or sorted(Path("nbs").glob("*.ipynb"))
    bad = {}
    for p in paths:
        print(f"executing {p}", flush=True)
        if cells := run(p): bad[str(p)] = cells
    for p, cells in bad.items(): print(f"WARNING {p}: cells {cells} print an absolute or temporary path (not reproducible)")
