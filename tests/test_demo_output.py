"""What the demos write besides their results: progress bars, checkpoints, the tour's text."""
import importlib
import io
import sys
from pathlib import Path

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
