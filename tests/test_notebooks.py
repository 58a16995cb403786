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
    setup = (f"import pathlib\nimport _common\n_common.OUT = pathlib.Path({str(out_dir)!r})\n"
             f"_common.KERNEL_ARGV = {argv!r}")
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


def test_03_in_a_kernel_the_tanh_rnn_gradient_vanishes_faster_than_the_lstm_and_clipping_caps_it(tmp_path):
    shown, values = run_in_kernel(
        "03_vanishing_exploding", ["--quick", "--length", "30", "--hidden", "16", "--train-steps", "8"],
        tmp_path, ["decay", "share_decay", "first_norm_before_clipping"])
    assert shown == {"image/png": 3}
    decay = values["decay"]   # ||dL/dh(0)|| / ||dL/dh(T-1)||
    assert decay["tanh RNN"] < decay["LSTM"] < decay["LSTM, forget-gate bias +2"]
    assert max(decay.values()) > 1   # the large-weight tanh RNN explodes
    assert values["first_norm_before_clipping"] > 1
    shares = values["share_decay"]   # ||(dL/dC)_1|| / ||(dL/dC)_T-1||, from bptt.record
    assert shares["tanh RNN"] < 1e-3 < shares["LSTM, forget-gate bias +2"]


def test_04_in_a_kernel_the_lstm_ends_below_the_tanh_rnn_and_its_gates_hold_the_value(tmp_path):
    shown, values = run_in_kernel("04_long_term", ["--quick", "--length", "20", "--steps", "200",
                                                   "--lr", "0.02"], tmp_path, ["mse", "gates", "difference"])
    assert shown == {"image/png": 2}
    mse = values["mse"]
    assert mse["LSTM"] < mse["tanh RNN"] and mse["LSTM"] < 2 / 12   # the baseline
    assert values["difference"] < 1e-5  # eager against compiled: float32 rounding, not another curve
    before, after = values["gates"]["before"], values["gates"]["after"]   # the unit that holds the value
    assert after["i marked"] - after["i other"] > 0.5 > before["i marked"] - before["i other"]
    assert after["f"] > 0.9 > before["f"]


def test_05_in_a_kernel_the_loss_falls_and_the_samples_continue_the_prompt(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("Return the value of the key. Return the list of values.\n" * 40)
    shown, values = run_in_kernel(
        "05_text_generation", ["--quick", "--text", str(corpus), "--window", "16", "--length", "30",
                               "--hidden", "16", "--embedding", "8", "--steps", "30"],
        tmp_path, ["losses", "samples", "PROMPT"])
    assert shown == {"image/png": 1}
    assert values["losses"][-1] < values["losses"][0]
    assert len(values["samples"]) == 2
    for text in values["samples"].values():
        assert text.startswith(values["PROMPT"]) and len(text) == len(values["PROMPT"]) + 30


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


def test_08_in_a_kernel_peak_memory_grows_with_the_window(tmp_path):
    shown, values = run_in_kernel("08_truncated_bptt", ["--quick", "--length", "100", "--hidden", "16"],
                                  tmp_path, ["windows", "peaks"])
    assert shown == {"image/png": 1}
    peaks = values["peaks"]
    assert values["windows"] == [5, 10, 20, 50, 100]
    assert all(a < b for a, b in zip(peaks, peaks[1:]))
    assert peaks[-1] > 5 * peaks[0]


@pytest.mark.parametrize("name", make_notebooks.demo_names())
def test_docs_notebook_has_the_cells_of_its_demo_and_shows_a_picture(name):
    path = make_notebooks.NOTEBOOKS / f"{name}.ipynb"
    assert path.exists(), f"{path.relative_to(ROOT)} is missing: run make notebooks"
    committed = nbformat.read(path, as_version=4)
    cells = [(cell.cell_type, cell.source) for cell in committed.cells]
    source = [(cell.cell_type, cell.source) for cell in make_notebooks.notebook(name).cells]
    assert cells == source, \
        f"{path.relative_to(ROOT)} is out of step with demos/{name}.py: run make notebooks"
    assert pictures(committed.cells), f"{path.relative_to(ROOT)} shows no picture"
