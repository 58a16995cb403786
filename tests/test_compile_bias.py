"""compile/bias.py: b_hh added once into the input projection, where the tape proves it safe."""
import numpy as np
import pytest

import tinygrad_rnn as tr
from tinygrad_rnn import nn, ops
from tinygrad_rnn.compile import UNROLLED_PASSES, compile
from tinygrad_rnn.compile.bias import fold_hidden_bias
from tinygrad_rnn.tensor import linear
from compile_helpers import assert_compiled_matches
from test_compile import sequence_problem

WITHOUT = tuple(p for p in UNROLLED_PASSES if p is not fold_hidden_bias)


def linears(tape):
    """(how many) linears with a bias, linears without, adds of two biases (leaves of one axis)."""
    shapes = {leaf[0]: leaf[2] for leaf in tape.leaves}
    steps = [s for s in tape.forward if getattr(s, "fn", None) in (ops.Linear, ops.Add)]
    with_bias = sum(s.fn is ops.Linear and len(s.ins) == 3 for s in steps)
    without = sum(s.fn is ops.Linear and len(s.ins) == 2 for s in steps)
    biases = sum(s.fn is ops.Add and all(len(shapes.get(i, ())) == 1 for i in s.ins) for s in steps)
    return with_bias, without, biases


@pytest.mark.parametrize("layer_class, options, directions", [
    (nn.RNN, {}, 1), (nn.LSTM, {}, 1), (nn.LSTM, {"batch_first": True}, 1),
    (nn.RNN, {"num_layers": 2, "bidirectional": True}, 4)])
def test_each_projection_takes_its_steps_bias(layer_class, options, directions):
    fn, calls, leaves = sequence_problem(layer_class, options, steps=5)
    step = assert_compiled_matches(fn, calls, leaves, UNROLLED_PASSES)
    assert assert_compiled_matches(fn, calls, leaves) is not None  # rolled too
    # the projections and the readout keep a bias; every step's h W_hh^T has none
    assert linears(step.tape(*calls[0])) == (directions + 1, 5 * directions, directions)


@pytest.mark.parametrize("layer_class, options", [(nn.GRU, {}), (nn.GRU, {"reset_after": False}),
                                                  (nn.RNN, {"bias": False})])
def test_a_gru_or_a_layer_without_bias_is_left_alone(layer_class, options):
    fn, calls, leaves = sequence_problem(layer_class, options, steps=5)
    tape = compile(fn, passes=UNROLLED_PASSES).tape(*calls[0])
    assert linears(tape) == linears(compile(fn, passes=WITHOUT).tape(*calls[0]))
    assert linears(tape)[2] == 0


def hand_made_rnn(change=None):
    """(loss_fn, calls, leaves): a tanh RNN from primitives, with its projection and h W^T + b;
    ``change`` adds one thing that must stop the fold."""
    rng = np.random.default_rng(0)
    w_ih, w_hh = (nn.Parameter(rng.normal(size=(4, 3)) * 0.5) for _ in range(2))
    b_ih, b_hh, b_other = (nn.Parameter(rng.normal(size=4)) for _ in range(3))
    w_hh = nn.Parameter(rng.normal(size=(4, 4)) * 0.5)

    def loss_fn(x):
        projection = linear(x, w_ih, b_ih)
        h, total = tr.Tensor(np.zeros((2, 4))), 0
        for t in range(x.shape[0]):
            with tr.scope(f"t={t}"):
                row = projection[t]
                step = linear(h, w_hh, b_other if change == "another bias" and t == 2 else b_hh)
                h = (row + step).tanh()
                if change == "row read twice":
                    total = total + row.sum()
                if change == "step read twice":
                    total = total + step.sum()
        return (h * h).sum() + total

    calls = [(tr.Tensor(rng.normal(size=(5, 2, 3))),) for _ in range(2)]
    return loss_fn, calls, [w_ih, w_hh, b_ih, b_hh, b_other]


def test_a_hand_made_rnn_is_folded():
    fn, calls, leaves = hand_made_rnn()
    tape = assert_compiled_matches(fn, calls, leaves, UNROLLED_PASSES).tape(*calls[0])
    assert linears(tape) == (1, 5, 1)


@pytest.mark.parametrize("change", ["row read twice", "step read twice", "another bias"])
def test_near_misses_are_left_alone(change):
    fn, calls, leaves = hand_made_rnn(change)
    tape = assert_compiled_matches(fn, calls, leaves, UNROLLED_PASSES).tape(*calls[0])
    assert linears(tape)[2] == 0
