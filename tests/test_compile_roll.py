"""The rolling pass: the unrolled tape folded back into its loop, only where the steps are copies."""
import numpy as np
import pytest

import tinygrad_rnn as tr
from tinygrad_rnn import nn
from tinygrad_rnn.compile import ROLLED_PASSES, compile
from tinygrad_rnn.compile.roll import Loop
from compile_helpers import assert_compiled_matches
from test_compile import sequence_problem


def loops(tape):
    return [step for step in tape.forward + tape.backward if isinstance(step, Loop)]


@pytest.mark.parametrize("layer_class", [nn.RNN, nn.LSTM, nn.GRU])
def test_the_steps_of_a_layer_run_as_one_body(layer_class):
    fn, calls, leaves = sequence_problem(layer_class, {}, steps=9)
    step = assert_compiled_matches(fn, calls, leaves, passes=ROLLED_PASSES)
    forward = [s for s in step.tape(*calls[0]).forward if isinstance(s, Loop)]
    backward = [s for s in step.tape(*calls[0]).backward if isinstance(s, Loop)]
    assert len(forward) == 1 and len(backward) == 1
    assert forward[0].steps >= 6 and backward[0].steps >= 7
    assert len(forward[0].blocks) >= 3 and len(backward[0].blocks) >= 7


def steps_of(loop):
    """The steps t that a loop's label says it runs: 'steps, t=1..4' -> range(1, 5)."""
    first, last = loop.label.split("t=")[1].split("..")
    return range(int(first), int(last) + 1)


def hand_made(activations):
    """(loss_fn, calls, leaves): a hand-made loop whose step t applies the ``activations(t)``."""
    tr.manual_seed(0)
    weight = nn.Parameter(np.random.default_rng(0).normal(size=(3, 3)))

    def loss_fn(xs):
        h = tr.Tensor(np.zeros((2, 3)))
        for t in range(xs.shape[0]):
            with tr.scope(f"t={t}"):
                h = xs[t] + h @ weight
                for name in activations(t):
                    h = getattr(h, name)()
        return (h * h).sum()

    rng = np.random.default_rng(1)
    return loss_fn, [(tr.Tensor(rng.normal(size=(6, 2, 3))),) for _ in range(2)], [weight]


def test_steps_that_are_not_copies_stay_unrolled():
    # no two steps in a row alike, nor two pairs of steps
    fn, calls, leaves = hand_made(lambda t: [("tanh", "sigmoid", "relu")[t % 3]])
    step = assert_compiled_matches(fn, calls, leaves, passes=ROLLED_PASSES)
    assert loops(step.tape(*calls[0])) == []


def test_a_step_that_differs_ends_the_loop():
    fn, calls, leaves = hand_made(lambda t: ["tanh"] * (2 if t == 3 else 1))
    step = assert_compiled_matches(fn, calls, leaves, passes=ROLLED_PASSES)
    spans = [steps_of(s) for s in step.tape(*calls[0]).forward if isinstance(s, Loop)]
    assert spans and all(3 not in span for span in spans), spans


def test_numbers_that_do_not_move_on_evenly_end_the_loop():
    """A constant made between steps 2 and 3 shifts every slot after it: the slots of steps
    0..5 then do not advance by one amount, so no loop spans step 3."""
    tr.manual_seed(0)
    weight = nn.Parameter(np.random.default_rng(0).normal(size=(3, 3)))

    def loss_fn(xs):
        h = xs[0]
        for t in range(xs.shape[0]):
            if t == 3:
                h = h * 0.5
            with tr.scope(f"t={t}"):
                h = (xs[t] + h @ weight).tanh()
        return (h * h).sum()

    rng = np.random.default_rng(1)
    calls = [(tr.Tensor(rng.normal(size=(7, 2, 3))),) for _ in range(2)]
    step = assert_compiled_matches(loss_fn, calls, [weight], passes=ROLLED_PASSES)
    spans = [steps_of(s) for s in step.tape(*calls[0]).forward if isinstance(s, Loop)]
    assert spans and all(not (2 in span and 3 in span) for span in spans), spans


def test_the_source_does_not_grow_with_the_number_of_steps():
    lengths = []
    for steps in (6, 12):
        fn, calls, leaves = sequence_problem(nn.LSTM, {}, steps=steps)
        step = compile(fn, passes=ROLLED_PASSES)
        step(*calls[0])
        lengths.append(len(step.source().splitlines()))
        assert f"range({steps - 1})" in step.source() or f"range({steps - 2})" in step.source()
    assert lengths[0] == lengths[1]


def test_source_needs_a_rolled_trace():
    fn, calls, leaves = hand_made(lambda t: ["tanh"] * (t + 1))
    step = compile(fn, passes=ROLLED_PASSES)
    with pytest.raises(RuntimeError, match="call the step once"):
        step.source()
    step(*calls[0])
    with pytest.raises(RuntimeError, match="no rolled loop"):
        step.source()
