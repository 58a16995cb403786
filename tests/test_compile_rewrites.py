"""The rewrites made before rolling: each fires where it proved its pattern, and only there."""
import re

import numpy as np
import pytest

import tinygrad_rnn as tr
from tinygrad_rnn import nn, ops
from tinygrad_rnn.compile import UNROLLED_PASSES, compile
from tinygrad_rnn.compile import rewrites
from tinygrad_rnn.compile.rewrites import (ForwardInto, GateDerivatives, GateGrad, GateSigmoids, Place, Rows,
                                           SigmoidView, StackGrad, join_gate_sigmoids, stack_in_place)
from tinygrad_rnn.compile.tape import Backward, Forward, Free
from compile_helpers import assert_compiled_matches
from test_compile import sequence_problem
from test_compile_roll import hand_made

STACK = UNROLLED_PASSES + (stack_in_place,)
GATES = UNROLLED_PASSES + (join_gate_sigmoids,)


def count(tape, kind, fn=None):
    return sum(type(s) is kind and (fn is None or s.fn is fn) for s in tape.forward)


def stacks(tape):
    """The stacks left in the forward: the primitive's, or ``passes.stack_rows``'s along axis 0."""
    return sum(type(s) is Forward and s.fn in rewrites.STACKS for s in tape.forward)


def copied_rows(tape):
    """The rows that each Rows instruction copies into its stacked value."""
    return [[row for row, _ in s.rows] for s in tape.forward if type(s) is Rows]


def stacked(make_rows, steps=5, shape=(2, 3), axis=0, returns_row=False):
    """(loss_fn, calls, leaves): the rows ``make_rows(x_t, w)`` of every step, stacked."""
    weight = nn.Parameter(np.random.default_rng(0).normal(size=shape[-1:] * 2))

    def loss_fn(xs):
        rows = [make_rows(xs[t], weight) for t in range(xs.shape[0])]
        out = tr.stack(rows, axis=axis)
        loss = (out * out).sum()
        return (loss, rows[-1]) if returns_row else loss

    rng = np.random.default_rng(1)
    return loss_fn, [(tr.Tensor(rng.normal(size=(steps, *shape))),) for _ in range(2)], [weight]


# ------------------------------------------------------------------ the stack in place

@pytest.mark.parametrize("layer_class", [nn.RNN, nn.LSTM, nn.GRU])
def test_a_layers_outputs_are_written_into_the_stacked_sequence(layer_class):
    fn, calls, leaves = sequence_problem(layer_class, {}, steps=6)
    tape = assert_compiled_matches(fn, calls, leaves, passes=STACK).tape(*calls[0])
    assert stacks(tape) == 0 and count(tape, Place) == 1
    assert [type(s) for s in tape.backward if getattr(s, "fn", None) in rewrites.STACKS] == []  # a StackGrad
    assert len([s for s in tape.backward if type(s) is StackGrad]) == 1
    # the last h (LSTM, GRU), saved by no later step, was given an array by reuse_buffers: copied
    rows = [s.row for s in tape.forward if type(s) is ForwardInto]
    assert rows[:5] == [0, 1, 2, 3, 4] and sorted(rows + sum(copied_rows(tape), [])) == list(range(6))


def test_a_large_sequence_is_stacked_as_before(monkeypatch):
    monkeypatch.setattr(rewrites, "PLACE_ELEMENTS", 6 * 3 * 3 - 1)  # the (T, B, H) output: 54
    fn, calls, leaves = sequence_problem(nn.RNN, {}, steps=6)
    tape = assert_compiled_matches(fn, calls, leaves, passes=STACK).tape(*calls[0])
    assert stacks(tape) == 1 and count(tape, Place) == 0
    assert len([s for s in tape.backward if type(s) is StackGrad]) == 1  # its backward in rows still


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_rows_along_any_axis(axis):
    fn, calls, leaves = stacked(lambda x, w: (x @ w).tanh(), axis=axis)
    tape = assert_compiled_matches(fn, calls, leaves, passes=STACK).tape(*calls[0])
    assert count(tape, ForwardInto) == 5 and stacks(tape) == 0


def test_the_rolled_step_writes_each_output_into_its_row():
    fn, calls, leaves = sequence_problem(nn.RNN, {}, steps=8)
    step = assert_compiled_matches(fn, calls, leaves)
    assert re.search(r"h = np_tanh_\d+\(\w+, out=\w+\[1 \+ k\]\)", step.source())  # h(t) into row t
    assert stacks(step.tape(*calls[0])) == 0


def test_rows_made_otherwise_are_copied():
    # a sigmoid is not one ufunc: its rows are copied by the stack as before
    fn, calls, leaves = stacked(lambda x, w: (x @ w).sigmoid())
    tape = assert_compiled_matches(fn, calls, leaves, passes=STACK).tape(*calls[0])
    assert stacks(tape) == 1 and count(tape, ForwardInto) == 0
    fn, calls, leaves = stacked(lambda x, w: (x @ w).tanh(), returns_row=True)  # the last row is returned
    tape = assert_compiled_matches(fn, calls, leaves, passes=STACK).tape(*calls[0])
    assert count(tape, ForwardInto) == 4 and copied_rows(tape) == [[4]]


def test_a_value_stacked_twice_is_not_placed():
    weight = nn.Parameter(np.ones((3, 3)))

    def loss_fn(x):
        h = (x @ weight).tanh()
        out = tr.stack([h, h, (h * 2).tanh()])
        return (out * out).sum()

    calls = [(tr.Tensor(np.random.default_rng(k).normal(size=(2, 3))),) for k in range(2)]
    tape = assert_compiled_matches(loss_fn, calls, [weight], passes=STACK).tape(*calls[0])
    assert count(tape, ForwardInto) == 1 and copied_rows(tape) == [[0, 1]]


# ------------------------------------------------------------------- the gates joined

def gate_views(tape):
    return [s for s in tape.forward if type(s) is SigmoidView]


def test_the_lstm_gates_run_as_one_sigmoid_at_small_sizes():
    fn, calls, leaves = sequence_problem(nn.LSTM, {}, steps=5)
    tape = assert_compiled_matches(fn, calls, leaves, passes=GATES).tape(*calls[0])
    assert len(gate_views(tape)) == 3 * 5 and count(tape, GateSigmoids) == 5
    unrolled = compile(fn, passes=UNROLLED_PASSES).tape(*calls[0])
    # the cuts a[:, 0:H], a[:, H:2H], a[:, 3H:4H] are read by nothing now: gone
    assert count(unrolled, Forward, ops.GetItem) - count(tape, Forward, ops.GetItem) == 3 * 5
    made = {s.out for s in tape.forward if hasattr(s, "out")} | {s.step.out for s in tape.forward
                                                                 if hasattr(s, "step")}
    made |= {s.slot for s in tape.inputs}
    released = {slot for s in tape.forward if type(s) is Free for slot in s.values}
    assert released <= made  # nor are they released
    blocks = {s.block for s in gate_views(tape)}
    assert len(blocks) == 5  # i, f and o of a step: views of one sigmoid over the whole (B, 4H) block
    assert [s.j for s in gate_views(tape)[:3]] == [0, 1, 3]
    # in backward, σ (1 - σ) once per step, and each gate's share reads its block of it
    derived = [s.node for s in tape.backward if type(s) is GateDerivatives]
    assert sorted(derived) == sorted(blocks)
    assert all(s.keep_saved for s in tape.forward if type(s) is GateSigmoids)
    assert len([s for s in tape.backward if type(s) is GateGrad]) == 3 * 5
    assert not any(type(s) is Backward and s.fn is ops.Sigmoid for s in tape.backward)
    assert [s.name for s in gate_views(tape)[:3]] == ["i", "f", "o"]


@pytest.mark.parametrize("elements, views, sigmoids", [(18, 2, 1), (17, 0, 3)])
def test_larger_gates_are_left_alone(monkeypatch, elements, views, sigmoids):
    # B = H = 3: σ over i and f holds 18 elements, over i, f, c~ and o 36
    monkeypatch.setattr(rewrites, "JOIN_ELEMENTS", elements)
    fn, calls, leaves = sequence_problem(nn.LSTM, {}, steps=5)
    tape = assert_compiled_matches(fn, calls, leaves, passes=GATES).tape(*calls[0])
    assert len(gate_views(tape)) == views * 5 and count(tape, Forward, ops.Sigmoid) == sigmoids * 5
    assert all(s.name in ("i", "f") for s in gate_views(tape))


def test_the_rolled_lstm_step_reads_its_gates_from_one_sigmoid():
    fn, calls, leaves = sequence_problem(nn.LSTM, {}, steps=8)
    step = assert_compiled_matches(fn, calls, leaves)
    source = step.source()
    forward, backward = source.split("def run")[1:3]
    assert "np.exp" not in forward and forward.count("gates = sigmoid_blocks(") == 2  # a body of two steps
    assert "i = gates[0]" in forward and "f = gates[1]" in forward and "o = gates[3]" in forward
    assert "d_gates = gates * (1 - gates)" in backward and "* d_gates[3]  # backward of o" in backward


def gates_of(columns, rows=None):
    """(loss_fn, calls, leaves): the sigmoids of ``a[:, lo:hi]`` for (lo, hi) in ``columns`` (of
    ``a[lo:hi]`` for (lo, hi) in ``rows``), multiplied together."""
    weight = nn.Parameter(np.random.default_rng(0).normal(size=(3, 6)))

    def loss_fn(x):
        a = x @ weight
        parts = [a[:, lo:hi].sigmoid() for lo, hi in columns] + [a[lo:hi].sigmoid() for lo, hi in rows or []]
        return sum(((p * p).sum() for p in parts), tr.Tensor(0.0))

    calls = [(tr.Tensor(np.random.default_rng(k).normal(size=(4, 3))),) for k in range(2)]
    return loss_fn, calls, [weight]


@pytest.mark.parametrize("columns, rows, views", [
    ([(0, 2), (2, 4)], None, 2),           # touching: joined
    ([(4, 6), (0, 2)], None, 2),           # a gap of whole blocks, in any order: joined
    ([(0, 2), (3, 5)], None, 0),           # a gap of half a block: each its own
    ([(0, 2), (2, 5)], None, 0),           # blocks of two widths: each its own
    ([(0, 3), (2, 5)], None, 0),           # overlapping: each its own
    ([(0, 2)], None, 0),                   # alone
    ([], [(0, 2), (2, 4)], 0),             # blocks of rows, not columns: left alone
])
def test_which_sigmoids_are_joined(columns, rows, views):
    fn, calls, leaves = gates_of(columns, rows)
    tape = assert_compiled_matches(fn, calls, leaves, passes=GATES).tape(*calls[0])
    assert len(gate_views(tape)) == views


def test_a_gate_without_a_gradient_keeps_its_view():
    weight = nn.Parameter(np.random.default_rng(0).normal(size=(3, 6)))

    def loss_fn(x):
        a = x @ weight
        unused = a[:, 2:4].sigmoid()  # noqa: F841, joined in forward, sends no gradient
        return (a[:, 0:2].sigmoid() * 2).sum()

    calls = [(tr.Tensor(np.random.default_rng(k).normal(size=(4, 3))),) for k in range(2)]
    tape = assert_compiled_matches(loss_fn, calls, [weight], passes=(join_gate_sigmoids,)).tape(*calls[0])
    assert len(gate_views(tape)) == 2 and [s.j for s in tape.backward if type(s) is GateGrad] == [0]
    # the cut a[:, 0:2] stays, its slice's gradient (not joined) reads the saved index; a[:, 2:4] goes
    assert [s.params["index"][1] for s in tape.forward if type(s) is Forward and s.fn is ops.GetItem] == [
        slice(0, 2)]


@pytest.mark.parametrize("other_last", [True, False])
def test_a_gate_whose_input_has_another_share_adds_its_own(other_last):
    weight = nn.Parameter(np.random.default_rng(0).normal(size=(3, 6)))

    def loss_fn(x):
        a = x @ weight
        left = a[:, 0:2]
        other = None if other_last else (left * 3).sum()
        gates = (left.sigmoid() * a[:, 2:4].sigmoid()).sum()
        return gates + ((left * 3).sum() if other_last else other)  # the gate's share second, or first

    calls = [(tr.Tensor(np.random.default_rng(k).normal(size=(4, 3))),) for k in range(2)]
    tape = assert_compiled_matches(loss_fn, calls, [weight], passes=GATES).tape(*calls[0])
    kinds = [s.kinds for s in tape.backward if type(s) is GateGrad]
    assert kinds[-1] == (("new",) if other_last else ("set",)) and len(kinds) == 2


def test_the_gru_gates_of_separate_sums_are_left_alone():
    fn, calls, leaves = sequence_problem(nn.GRU, {}, steps=5)
    tape = assert_compiled_matches(fn, calls, leaves, passes=GATES).tape(*calls[0])
    assert gate_views(tape) == []


@pytest.mark.parametrize("axis", [0, 1])
def test_a_stack_inside_each_step_rolls_with_its_rows_as_gradients(axis):
    def both(a):
        return (tr.stack([a.tanh(), a.sigmoid()], axis=axis) * 0.5).sum(axis=axis)

    fn, calls, leaves = hand_made(lambda t: [both])
    step = assert_compiled_matches(fn, calls, leaves)
    tape = step.tape(*calls[0])
    assert any(hasattr(s, "blocks") for s in tape.forward)  # a stack within a step is not placed: it rolls
    rolled = [i for s in tape.backward if hasattr(s, "blocks") for b in s.blocks for i in b]
    assert any(type(i) is StackGrad for i in rolled)
    assert f"G[{':, ' * axis}1]" in step.source().replace("g[", "G[")
