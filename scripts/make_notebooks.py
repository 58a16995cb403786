"""Write the executed notebook of every demo into docs/notebooks/ (run by `make notebooks`).

Each demo in demos/ is a script in jupytext's percent format. This reads it
as a notebook, runs its cells top to bottom in a fresh Jupyter kernel (where
a demo runs as with ``--quick``) and writes the result, outputs and pictures
included, so that it reads on any repository viewer without running.

    python scripts/make_notebooks.py [NN_name ...]     # default: every demo
"""
import os
import sys
from pathlib import Path

import jupytext
import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
DEMOS, NOTEBOOKS = ROOT / "demos", ROOT / "docs" / "notebooks"
KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}


def demo_names():
    """The demos, ``"01_rnn_by_hand"`` ..., in their order."""
    return sorted(path.stem for path in DEMOS.glob("[0-9][0-9]_*.py"))


def notebook(name):
    """Demo ``name`` as a notebook, not yet run: one cell per ``# %%`` cell of its file."""
    nb = jupytext.read(DEMOS / f"{name}.py")
    nb.metadata = nbformat.from_dict({"kernelspec": KERNELSPEC})
    for index, cell in enumerate(nb.cells):
        cell.id = f"cell-{index}"   # not random, so that a notebook made again differs only where it should
    return nb


def execute(nb, timeout=600):
    """Run every cell of ``nb`` in a new kernel started in demos/, so ``import _common`` works;
    the outputs go into ``nb``. A cell that raises stops the run with its traceback.

    A cell's printed lines are kept as one text per stream, as a reader sees them: a progress
    bar, redrawn with carriage returns and erased at its end, leaves nothing.
    """
    # numpy in the kernel gets one BLAS thread, as in the demos' scripts.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", record_timing=False,
                            coalesce_streams=True, resources={"metadata": {"path": str(DEMOS)}})
    client.execute()
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = [output for output in cell.outputs
                            if output.output_type != "stream" or output.text.strip()]
    return nb


def main(names):
    NOTEBOOKS.mkdir(parents=True, exist_ok=True)
    for name in names or demo_names():
        path = NOTEBOOKS / f"{name}.ipynb"
        nbformat.write(execute(notebook(name)), path)
        print(f"notebook: {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main(sys.argv[1:])
