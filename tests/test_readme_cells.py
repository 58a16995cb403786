"""The README section "Build an LSTM cell by hand": its code block run as written, and its
MyLSTMCell seen by bptt.record and in pictures as the built-in LSTM cell is."""
import contextlib
import io
import re
from pathlib import Path

import numpy as np
import pytest

import tinygrad_rnn as tr
from tinygrad_rnn import bptt, nn, viz
from test_viz import Dot

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()
SECTION = README.split("## Build an LSTM cell by hand", 1)[1].split("\n## ", 1)[0]
CODE = re.findall(r"```python\n(.*?)```", SECTION, re.S)[0]
GATES = ["f", "i", "c~", "o", "c", "h"]   # in the order MyLSTMCell makes them


@pytest.fixture(scope="module")
def readme(tmp_path_factory):
    """README's code block run in a directory of its own: (its names, what it printed)."""
    namespace, printed = {"__name__": "readme"}, io.StringIO()
    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stdout(printed):
        patch.chdir(tmp_path_factory.mktemp("readme"))
        exec(compile(CODE, "README.md", "exec"), namespace)
    return namespace, printed.getvalue()


def test_readme_build_an_lstm_cell_by_hand(readme):
    ns, printed = readme
    for line in ("loss 0.4897 -> 0.0352", "['f', 'i', 'c~', 'o', 'c', 'h'] (40, 32, 9)"):
        assert line in printed.splitlines() and f"`{line}`" in SECTION
    assert ns["loss"].item() < 0.5 * ns["first"]
    cell, restored = ns["cell"], ns["restored"]
    assert [name for name, _ in cell.named_parameters()] == ["W", "b"]
    for (name, p), q in zip(cell.named_parameters(), restored.parameters()):
        np.testing.assert_array_equal(p.data, q.data, err_msg=name)
    np.testing.assert_array_equal(tr.stack(nn.unroll(restored, ns["xs"])[0]).data,
                                  tr.stack(nn.unroll(cell, ns["xs"])[0]).data)


def readme_cell_run(ns, steps=5, batch=2):
    cell = ns["MyLSTMCell"](input_size=1, hidden_size=3)
    xs = tr.Tensor(np.random.default_rng(1).normal(size=(steps, batch, 1)))
    with bptt.record() as rec:
        hs, _ = nn.unroll(cell, xs)
        loss = (tr.stack(hs) ** 2).sum()
        loss.backward()
    return cell, hs, loss, rec


def test_the_readme_cell_is_recorded_step_by_step_under_the_articles_names(readme):
    cell, hs, _, rec = readme_cell_run(readme[0])
    assert rec.steps == [0, 1, 2, 3, 4] and rec.names() == GATES
    assert rec.values("f").shape == rec.grads("c~").shape == (5, 2, 3)
    np.testing.assert_array_equal(rec.values("h"), np.stack([h.data for h in hs]))
    shares = rec.weight_grad_by_step(cell.W)
    assert shares.shape == (5, 12, 4) and not rec.weight_grad_outside(cell.W).any()
    np.testing.assert_allclose(shares.sum(axis=0), cell.W.grad, rtol=1e-12, atol=1e-15)


def test_the_readme_cells_picture_names_its_gates_as_the_built_in_cells_does(readme):
    _, _, loss, _ = readme_cell_run(readme[0], steps=2)
    dot = Dot(viz.to_dot(loss))
    for step in ("t=0", "t=1"):
        heads = [label.split("\\n")[0] for label, _, path in dot.nodes.values() if path == step]
        assert sorted(head for head in heads if " = " in head) == sorted(
            ["f = sigmoid", "i = sigmoid", "c~ = tanh", "o = sigmoid", "c = add", "h = mul"])



def test_the_readme_says_which_name_of_the_candidate_is_pytorchs_and_which_is_shown():
    assert "i, f, g (= c~), o: `g` is the block's name in PyTorch,\n`c~` the tensor's name in" in SECTION
    with bptt.record() as rec:   # the name that the built-in cell gives the candidate
        nn.unroll(nn.LSTMCell(1, 2), tr.Tensor(np.ones((1, 1, 1), np.float32)))
    assert rec.names() == ["i", "f", "c~", "o", "c", "h"]
