"""What the demos write besides their results: progress bars, checkpoints, the tour's text."""
import importlib
import io
import sys
from pathlib import Path

import numpy as np
import pytest

DEMOS = Path(__file__).resolve().parent.parent / "demos"
sys.path.insert(0, str(DEMOS))
common = importlib.import_module("_common")


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_bars_stay_out_of_output_that_is_not_a_terminal(capsys):
    assert common.train(lambda i: 1.0 / (i + 1), 50, "steps") == [1.0 / (i + 1) for i in range(50)]
    captured = capsys.readouterr()
    assert "\r" not in captured.err + captured.out
    assert "steps" not in captured.err


def test_progress_bars_are_drawn_on_a_terminal(monkeypatch):
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    common.train(lambda i: 1.0, 5, "steps")
    assert "\r" in terminal.getvalue() and "steps" in terminal.getvalue()


@pytest.fixture
def out_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(common, "OUT", tmp_path / "out")
    return tmp_path / "out"


def test_05_quick_and_resumed_runs_never_overwrite_another_runs_checkpoint(tmp_path, out_dir):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("Return the value of the key.\n" * 40)
    small = ["--text", str(corpus), "--window", "8", "--length", "5", "--hidden", "8",
             "--embedding", "4", "--batch", "4"]
    full = common.run("05_text_generation", small + ["--steps", "2"])
    quick = common.run("05_text_generation", small + ["--quick", "--steps", "2"])
    assert Path(full["checkpoint"]) == out_dir / "05_char_lstm.npz"
    assert Path(quick["checkpoint"]) == out_dir / "05_char_lstm_quick.npz"
    before = Path(full["checkpoint"]).read_bytes()
    resumed = common.run("05_text_generation", small + ["--steps", "2", "--resume", full["checkpoint"]])
    assert Path(resumed["checkpoint"]) == out_dir / "05_char_lstm_resumed.npz"
    assert Path(full["checkpoint"]).read_bytes() == before
    assert Path(resumed["checkpoint"]).read_bytes() != before
    chosen = tmp_path / "mine.npz"
    mine = common.run("05_text_generation", small + ["--steps", "1", "--checkpoint", str(chosen)])
    assert mine["checkpoint"] == str(chosen)
    assert chosen.exists()


def test_08_a_window_of_half_the_sequence_needs_about_half_the_memory_of_full_bptt():
    truncated = common.definitions("08_truncated_bptt")
    rng = np.random.default_rng(0)
    model = truncated.SequenceModel(8, 32)
    x = rng.standard_normal((200, 16, 8)).astype(np.float32)
    y = rng.standard_normal((200, 16, 1)).astype(np.float32)
    _, half = truncated.measure(model, x, y, 100, repeats=1)
    _, full = truncated.measure(model, x, y, 200, repeats=1)
    # with the previous window's output and loss kept alive, half came to about 0.8 of full
    assert half < 0.6 * full


def tour_arguments(name):
    tour = importlib.import_module("tour")
    return next(["--quick", *extra] for demo, extra, _ in tour.DEMOS if demo == name)


@pytest.mark.slow
def test_the_tours_run_of_03_is_long_enough_for_every_remedy_to_learn(out_dir):
    result = common.run("03_vanishing_exploding", tour_arguments("03_vanishing_exploding"))
    baseline = 1.25  # always predicting 0: the variance of y(t) = x(t) - x(t-1)/2
    assert result["final_loss"]["SGD"] == float("inf")
    remedies = {name: loss for name, loss in result["final_loss"].items() if name != "SGD"}
    assert len(remedies) == 3 and all(loss < baseline / 2 for loss in remedies.values()), remedies
