"""The demos as notebooks: each one run in a real Jupyter kernel, and docs/notebooks/ in step.

A demo's kernel run is its test run: it executes every cell (with settings
smaller than ``--quick`` where the headline survives them), checks that the
cells show their pictures, and asserts the demo's headline numbers, read from
the kernel after the last cell.
"""
import collections
import importlib.util
import json
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
pytest.importorskip("jupytext")
pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("make_notebooks", ROOT / "scripts" / "make_notebooks.py")
make_notebooks = importlib.util.module_from_spec(spec)
spec.loader.exec_module(make_notebooks)

IMAGES = ("image/svg+xml", "image/png")


def pictures(cells):
    """The pictures that ``cells`` show, as a Counter of their MIME types."""
    return collections.Counter(mime for cell in cells if cell.cell_type == "code"
                               for output in cell.outputs for mime in output.get("data", {})
                               if mime in IMAGES)


def run_in_kernel(name, argv, out_dir, names):
    """Run demo ``name`` as a notebook with ``argv``, its pictures written to ``out_dir``.

    Returns the pictures its cells show, as a Counter of MIME types, and the
    values of the variables ``names`` at the end (through JSON).
    """
    nb = make_notebooks.notebook(name)
    setup = f"import _common\n_common.OUT = _common.Path({str(out_dir)!r})\n_common.KERNEL_ARGV = {argv!r}"
    report = ("import json\nprint(json.dumps({name: globals()[name] for name in %r}, "
              "default=lambda v: v.tolist() if hasattr(v, 'tolist') else str(v)))" % (names,))
    nb.cells = [nbformat.v4.new_code_cell(setup), *nb.cells, nbformat.v4.new_code_cell(report)]
    make_notebooks.execute(nb, timeout=300)
    return pictures(nb.cells[1:-1]), json.loads(nb.cells[-1].outputs[-1].text)


def test_01_in_a_kernel_shows_the_unrolled_graph_and_passes_gradcheck(tmp_path):
    shown, values = run_in_kernel("01_rnn_by_hand", [], tmp_path, ["passed", "graph"])
    assert shown == {"image/svg+xml": 1}
    assert values["passed"] is True
    assert (tmp_path / "01_rnn_graph.svg").stat().st_size > 0


def test_02_in_a_kernel_hand_written_bptt_equals_autograd_to_1e_10(tmp_path):
    shown, values = run_in_kernel("02_bptt_by_hand", ["--quick"], tmp_path,
                                  ["max_abs_diff", "loss_diff", "differences"])
    assert shown == {"image/png": 1}
    assert values["max_abs_diff"] <= 1e-10 and values["loss_diff"] <= 1e-10
    assert sorted(values["differences"]) == ["A", "B", "C"]


def test_06_in_a_kernel_the_gru_beats_the_naive_forecast_on_the_sine(tmp_path):
    shown, values = run_in_kernel("06_time_series", ["--quick", "--length", "800", "--steps", "80"],
                                  tmp_path, ["mse"])
    assert shown == {"image/png": 2}
    sine = values["mse"]["noisy sine"]
    assert sine["gru"] <= sine["naive"]
    assert (tmp_path / "06_forecast.png").exists()


def test_07_in_a_kernel_translation_beats_chance(tmp_path):
    shown, values = run_in_kernel("07_translation", ["--quick", "--steps", "150", "--test-size", "100"],
                                  tmp_path, ["exact_match", "chance", "char_accuracy"])
    assert shown == {"image/png": 1}
    assert values["exact_match"] > values["chance"]
    assert values["char_accuracy"] > 1 / 11


@pytest.mark.parametrize("name", ["01_rnn_by_hand", "02_bptt_by_hand", "06_time_series", "07_translation"])
def test_docs_notebook_has_the_cells_of_its_demo_and_shows_a_picture(name):
    path = make_notebooks.NOTEBOOKS / f"{name}.ipynb"
    assert path.exists(), f"{path.relative_to(ROOT)} is missing: run make notebooks"
    committed = nbformat.read(path, as_version=4)
    cells = [(cell.cell_type, cell.source) for cell in committed.cells]
    source = [(cell.cell_type, cell.source) for cell in make_notebooks.notebook(name).cells]
    assert cells == source, \
        f"{path.relative_to(ROOT)} is out of step with demos/{name}.py: run make notebooks"
    assert pictures(committed.cells), f"{path.relative_to(ROOT)} shows no picture"
