"""The command line: python -m tinygrad_rnn draw ..."""
import re
import shutil
import subprocess
import sys

import pytest

from tinygrad_rnn.__main__ import main


def clusters(text):
    return re.findall(r'graph \[label="([^"]+)"', text)  # not the borderless boxes of a lane


@pytest.mark.parametrize("layer, scope", [("rnn", "rnn"), ("lstm", "lstm"), ("gru", "gru")])
def test_draw_writes_the_unrolled_layer(tmp_path, capsys, layer, scope):
    path = tmp_path / "graph.dot"
    assert main(["draw", layer, "--steps", "3", "-o", str(path)]) == 0
    text = path.read_text()
    assert clusters(text) == [scope, "l0", "t=0", "t=1", "t=2"]
    assert f'label="weight_hh_l0\\n' in text
    assert 'label="loss = sum\\n()"' in text
    assert capsys.readouterr().out == f"wrote {path}\n"


def test_draw_is_repeatable(tmp_path):
    first, second = tmp_path / "a.dot", tmp_path / "b.dot"
    main(["draw", "gru", "--steps", "2", "--seed", "3", "--grads", "-o", str(first)])
    main(["draw", "gru", "--steps", "2", "--seed", "3", "--grads", "-o", str(second)])
    assert first.read_text() == second.read_text()
    main(["draw", "gru", "--steps", "2", "--seed", "4", "--grads", "-o", str(second)])
    assert first.read_text() != second.read_text()  # the seed reaches the gradient shades


def test_draw_cells_with_gradients(tmp_path):
    path = tmp_path / "cells.dot"
    assert main(["draw", "lstm", "--steps", "12", "--hidden", "2", "--detail", "cells", "--grads",
                 "-o", str(path)]) == 0
    text = path.read_text()
    assert '>lstm l0</font>' in text
    assert [f"t={t}" for t in range(12)] == re.findall(r'label="(t=\d+)\\n', text)
    assert "gradient norm, log scale" in text
    assert "subgraph cluster" not in text


def test_draw_rolled_draws_each_step_once(tmp_path):
    path = tmp_path / "rolled.dot"
    assert main(["draw", "gru", "--steps", "100", "--layers", "2", "--detail", "rolled",
                 "-o", str(path)]) == 0
    text = path.read_text()
    assert re.findall(r'label="(t=[^"]*)"', text) == ["t=0 ... 99: one step, ran 100 times"] * 2
    assert text.count("label=\"h = add") == 2


def test_draw_options_shape_the_layer(tmp_path):
    path = tmp_path / "graph.dot"
    assert main(["draw", "rnn", "--steps", "2", "--hidden", "5", "--input-size", "7", "--batch", "3",
                 "--layers", "2", "--bidirectional", "-o", str(path)]) == 0
    text = path.read_text()
    assert 'label="weight_ih_l0\\n(5, 7)"' in text
    assert 'label="weight_ih_l1_reverse\\n(5, 10)"' in text
    assert 'label="x\\n(2, 3, 7)"' in text


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")
def test_draw_svg(tmp_path):
    path = tmp_path / "graph.svg"
    assert main(["draw", "lstm", "--steps", "2", "-o", str(path)]) == 0
    assert path.read_text().lstrip().startswith("<?xml")


@pytest.mark.parametrize("argv, message", [
    (["draw", "rnn", "--steps", "0", "-o", "x.dot"], "--steps: expected a positive integer, got 0"),
    (["draw", "rnn", "--hidden", "two", "-o", "x.dot"], "--hidden: expected a positive integer, got 'two'"),
    (["draw", "transformer", "-o", "x.dot"], "invalid choice: 'transformer'"),
    (["draw", "rnn"], "the following arguments are required: -o/--output"),
    (["draw", "rnn", "--detail", "steps", "-o", "x.dot"], "invalid choice: 'steps'"),
    ([], "the following arguments are required: COMMAND"),
])
def test_bad_arguments_exit_with_usage(capsys, argv, message):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


def test_errors_while_drawing_are_reported_without_traceback(tmp_path, capsys):
    assert main(["draw", "lstm", "--max-nodes", "20", "-o", str(tmp_path / "big.dot")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("python -m tinygrad_rnn draw: error: render: the graph has ")
    assert "more than max_nodes=20; use detail='cells'" in err
    assert main(["draw", "rnn", "-o", str(tmp_path / "graph.jpg")]) == 1
    assert "cannot tell the format of" in capsys.readouterr().err


def test_without_dot_an_image_fails_with_the_install_hint(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert main(["draw", "rnn", "-o", str(tmp_path / "graph.png")]) == 1
    assert "sudo apt-get install graphviz" in capsys.readouterr().err
    assert main(["draw", "rnn", "-o", str(tmp_path / "graph.dot")]) == 0


def test_module_runs_as_a_program():
    finished = subprocess.run([sys.executable, "-m", "tinygrad_rnn", "draw", "--help"],
                              capture_output=True, text=True, check=False)
    assert finished.returncode == 0
    assert "usage: python -m tinygrad_rnn draw" in finished.stdout
    assert "--detail {ops,cells,rolled}" in finished.stdout
