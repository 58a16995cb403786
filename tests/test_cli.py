"""The command line: python -m tinygrad_rnn draw ..."""
import os
import re
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
    assert 'label="weight_hh_l0\\n' in text
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


def test_draw_svg(tmp_path, renderer):
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
    assert err.startswith("python -m tinygrad_rnn draw: error: the graph has ")
    # the advice in this command's flags, not in Python keywords
    assert ("more than --max-nodes 20; use --detail cells (one node per time step) or --detail rolled "
            "(one step drawn once), or unroll fewer --steps, or pass a larger --max-nodes") in err
    assert "max_nodes" not in err and "detail=" not in err
    assert main(["draw", "rnn", "-o", str(tmp_path / "graph.jpg")]) == 1
    assert "cannot tell the format of" in capsys.readouterr().err


def test_a_picture_dot_could_not_lay_out_is_refused_with_the_flags_to_use(tmp_path, capsys):
    big = tmp_path / "big.svg"
    assert main(["draw", "lstm", "--steps", "100", "-o", str(big)]) == 1
    err = capsys.readouterr().err
    assert "to lay out; use --detail cells" in err and err.endswith("or pass --no-limit to try anyway\n")
    assert "max_nodes" not in err and not big.exists()
    assert main(["draw", "rnn", "--steps", "3", "--detail", "rolled", "--max-nodes", "5",
                 "-o", str(tmp_path / "rolled.dot")]) == 1
    assert "; unroll fewer --steps, or pass a larger --max-nodes" in capsys.readouterr().err


def test_no_limit_draws_past_max_nodes(tmp_path, capsys):
    path = tmp_path / "long.dot"
    assert main(["draw", "lstm", "--steps", "200", "-o", str(path)]) == 1
    assert "more than --max-nodes 2000" in capsys.readouterr().err
    assert main(["draw", "lstm", "--steps", "200", "--no-limit", "-o", str(path)]) == 0
    assert path.read_text().count('label="t=') == 200
    with pytest.raises(SystemExit):
        main(["draw", "rnn", "--max-nodes", "5", "--no-limit", "-o", str(path)])
    assert "not allowed with argument" in capsys.readouterr().err


def test_a_stopped_dot_says_which_flag_gives_it_longer(tmp_path, monkeypatch, capsys):
    fake = tmp_path / "bin" / "dot"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\nexec sleep 30\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(fake.parent) + os.pathsep + os.environ.get("PATH", ""))
    assert main(["draw", "rnn", "--steps", "2", "--timeout", "1", "-o", str(tmp_path / "graph.svg")]) == 1
    err = capsys.readouterr().err
    assert "after 1 s and was stopped; use --detail cells" in err
    assert err.endswith("pass a larger --timeout\n")


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
