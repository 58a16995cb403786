"""What a compiled step leaves behind: gradients added into .grad as backward adds them, and
returned arrays that are the caller's to keep.

The other compile tests clear every ``.grad`` before each call and copy every
returned array at once; these tests do neither, as a training loop that
accumulates gradients over micro-batches, or keeps the state of the last
window, does not.
"""
import numpy as np
import pytest

import tinygrad_rnn as tr
from tinygrad_rnn import nn, optim
from tinygrad_rnn.compile import DEFAULT_PASSES, UNROLLED_PASSES, compile
from compile_helpers import assert_close, assert_compiled_matches

PASS_SETS = {"plain": (), "unrolled": UNROLLED_PASSES, "rolled": DEFAULT_PASSES}
STEPS, BATCH, INPUTS, HIDDEN = 4, 2, 2, 3


def sequences(seed, calls=4):
    """``calls`` different (x (T, B, I), y (T, B, 1)) pairs of float64 Tensors."""
    rng = np.random.default_rng(seed)
    return [(tr.Tensor(rng.normal(size=(STEPS, BATCH, INPUTS))),
             tr.Tensor(rng.normal(size=(STEPS, BATCH, 1)))) for _ in range(calls)]


def layer_problem(layer_class):
    """A sequence layer and a readout; the step returns (loss, the layer's final state)."""
    tr.manual_seed(0)
    layer, readout = layer_class(INPUTS, HIDDEN).to(np.float64), nn.Linear(HIDDEN, 1).to(np.float64)

    def loss_fn(x, y):
        output, state = layer(x)
        return nn.mse_loss(readout(output), y), state

    return loss_fn, sequences(0), layer.parameters() + readout.parameters()


def cell_problem(cell_class):
    """A built-in cell through ``nn.unroll``: its final h comes straight from a multiply
    (the LSTM's o * tanh(c)) or an add (the GRU's (1 - z) * n + z * h), as does the LSTM's c."""
    tr.manual_seed(1)
    cell, readout = cell_class(INPUTS, HIDDEN).to(np.float64), nn.Linear(HIDDEN, 1).to(np.float64)

    def loss_fn(x, y):
        outputs, state = nn.unroll(cell, x)
        return nn.mse_loss(readout(tr.stack(outputs)), y), state

    return loss_fn, sequences(1), cell.parameters() + readout.parameters()


def hand_made_problem(last, view):
    """A hand-made cell whose new h is the result of an ``add`` or a ``mul``:

        add:  h(t) = a * h(t-1) + tanh(A x(t) + C h(t-1) + b)      (a leaky unit)
        mul:  h(t) = tanh(A x(t) + C h(t-1) + b) * sigmoid(D x(t))  (a gated output)

    The loss, an add of two means, is returned with the final h (or, with
    ``view``, the view h[1:] of it, its last rows).
    """
    rng = np.random.default_rng(2)
    A, C, D = (nn.Parameter(rng.normal(size=(HIDDEN, n)) * 0.5) for n in (INPUTS, HIDDEN, INPUTS))
    a = nn.Parameter(rng.uniform(size=HIDDEN))
    b = nn.Parameter(rng.normal(size=HIDDEN))
    B = nn.Parameter(rng.normal(size=(1, HIDDEN)))

    def cell(x, h):
        h = tr.Tensor(np.zeros((x.shape[0], HIDDEN))) if h is None else h
        candidate = (x @ A.T + h @ C.T + b).tanh()
        return a * h + candidate if last == "add" else candidate * (x @ D.T).sigmoid()

    def loss_fn(x, y):
        outputs, h = nn.unroll(cell, x)
        hs = tr.stack(outputs)
        return nn.mse_loss(hs @ B.T, y) + (hs ** 2).mean(), h[1:] if view else h

    return loss_fn, sequences(2), [A, C, b, B] + ([a] if last == "add" else [D])


PROBLEMS = {
    "LSTM layer": lambda: layer_problem(nn.LSTM),
    "GRU layer": lambda: layer_problem(nn.GRU),
    "LSTMCell unrolled": lambda: cell_problem(nn.LSTMCell),
    "GRUCell unrolled": lambda: cell_problem(nn.GRUCell),
    "hand-made cell, h from an add": lambda: hand_made_problem("add", view=False),
    "hand-made cell, h from a mul": lambda: hand_made_problem("mul", view=False),
    "hand-made cell, a view of h from an add": lambda: hand_made_problem("add", view=True),
}


def grads(leaves):
    return [None if leaf.grad is None else leaf.grad.copy() for leaf in leaves]


# ------------------------------------------------------------ accumulation

STARTS = ["no .grad, the first call traces", "no .grad, replays only", ".grad from an eager backward"]


@pytest.mark.parametrize("passes", PASS_SETS.values(), ids=PASS_SETS.keys())
@pytest.mark.parametrize("start", STARTS)
@pytest.mark.parametrize("problem", PROBLEMS)
def test_calls_without_zero_grad_add_up_as_backward_calls_do(problem, start, passes):
    loss_fn, calls, leaves = PROBLEMS[problem]()
    first, rest = calls[0], calls[1:]
    step = compile(loss_fn, passes=passes)
    if start != STARTS[0]:
        step(*first)  # the trace: every call below is a replay

    def begin():
        for leaf in leaves:
            leaf.grad = None
        if start == STARTS[2]:
            loss_fn(*first)[0].backward()

    begin()
    for args in rest:
        loss_fn(*args)[0].backward()
    want = grads(leaves)
    begin()
    for args in rest:
        step(*args)
    assert_close(grads(leaves), want, "gradient summed over the calls, of leaf")


@pytest.mark.parametrize("problem", PROBLEMS)
def test_eager_backward_calls_add_up_to_the_sum_of_each_call_s_gradient(problem):
    loss_fn, calls, leaves = PROBLEMS[problem]()
    each = []
    for args in calls:
        for leaf in leaves:
            leaf.grad = None
        loss_fn(*args)[0].backward()
        each.append(grads(leaves))
    for leaf in leaves:
        leaf.grad = None
    for args in calls:
        loss_fn(*args)[0].backward()
    assert_close(grads(leaves), [sum(g) for g in zip(*each)], "gradient summed over the calls, of leaf")


def test_one_tensor_given_as_two_arguments_gets_both_shares():
    rng = np.random.default_rng(7)
    x, y = (tr.Tensor(rng.normal(size=3), requires_grad=True) for _ in range(2))
    calls = [(x, x), (x, y), (x, x), (y, x)]
    step = assert_compiled_matches(lambda a, b: (a * b.tanh()).sum(), calls, [x, y])
    assert step.traces == 2


def test_an_argument_that_requires_grad_accumulates_over_calls():
    W = nn.Parameter(np.random.default_rng(3).normal(size=(2, 3)))

    def loss_fn(x, y):
        return ((x @ W.T).tanh() * y).sum()

    rng = np.random.default_rng(4)
    x = tr.Tensor(rng.normal(size=(4, 3)), requires_grad=True)
    ys = [tr.Tensor(rng.normal(size=(4, 2))) for _ in range(3)]
    for y in ys:
        loss_fn(x, y).backward()
    want = [x.grad.copy(), W.grad.copy()]
    x.grad = W.grad = None
    step = compile(loss_fn)
    for y in ys:
        step(x, y)
    assert_close([x.grad, W.grad], want, "gradient summed over the calls, of")


@pytest.mark.parametrize("passes", PASS_SETS.values(), ids=PASS_SETS.keys())
def test_each_leaf_s_gradient_is_an_array_of_its_own(passes):
    """The two shares of an add are one array, and a sum's share is a read-only broadcast
    view: each leaf must get its own copy, as backward gives it, for later calls to add into."""
    rng = np.random.default_rng(5)
    P, Q, R = (nn.Parameter(rng.normal(size=(2, 3))) for _ in range(3))

    def loss_fn(x):
        return ((P + Q) * x).sum() + R.sum()

    xs = [tr.Tensor(rng.normal(size=(2, 3))) for _ in range(3)]
    for x in xs:
        loss_fn(x).backward()
    want = grads([P, Q, R])
    step = compile(loss_fn, passes=passes)
    step(xs[0])  # the trace: the calls below are replays
    P.grad = Q.grad = R.grad = None
    for x in xs:
        step(x)
    assert_close(grads([P, Q, R]), want, "gradient summed over the calls, of leaf")
    assert P.grad is not Q.grad and R.grad.flags.writeable


@pytest.mark.parametrize("passes", PASS_SETS.values(), ids=PASS_SETS.keys())
def test_an_optimizer_step_after_accumulating_calls_matches_the_engine(passes):
    def train(compiled):
        loss_fn, calls, leaves = layer_problem(nn.LSTM)
        optimizer = optim.Adam(leaves, lr=0.01)
        step = compile(loss_fn, passes=passes) if compiled else None
        for _ in range(3):  # each update from the gradients of two micro-batches
            for args in calls[:2]:
                if compiled:
                    step(*args)
                else:
                    loss_fn(*args)[0].backward()
            optimizer.step()
            optimizer.zero_grad()
        return [leaf.data.copy() for leaf in leaves]

    assert_close(train(True), train(False), "weight after three updates,")


# ------------------------------------------------------- returned arrays

def flat(returned):
    """The Tensors of a step's result, in order."""
    if isinstance(returned, (tuple, list)):
        return [t for item in returned for t in flat(item)]
    return [returned]


def assert_returned_arrays_stay_put(step, calls):
    """Each call's returned arrays, kept as they are (no copy), still hold after every later
    call the values they had when it returned."""
    kept = []
    for args in calls:
        arrays = [t.data for t in flat(step(*args))]
        kept.append((arrays, [array.copy() for array in arrays]))
    for call, (arrays, copies) in enumerate(kept):
        for position, (array, copy) in enumerate(zip(arrays, copies)):
            assert np.array_equal(array, copy), f"call {call}'s returned array {position} changed later"


@pytest.mark.parametrize("passes", PASS_SETS.values(), ids=PASS_SETS.keys())
@pytest.mark.parametrize("problem", PROBLEMS)
def test_returned_arrays_keep_their_values_after_the_next_calls(problem, passes):
    loss_fn, calls, _ = PROBLEMS[problem]()
    assert_returned_arrays_stay_put(compile(loss_fn, passes=passes), calls)


@pytest.mark.parametrize("passes", PASS_SETS.values(), ids=PASS_SETS.keys())
@pytest.mark.parametrize("last", ["add", "mul"])
def test_a_forward_only_step_s_returned_arrays_keep_their_values(last, passes):
    loss_fn, calls, _ = hand_made_problem(last, view=False)

    def forward(x, y):
        loss, h = loss_fn(x, y)
        return h, loss

    assert_returned_arrays_stay_put(compile(forward, backward=False, passes=passes), calls)


@pytest.mark.parametrize("passes", PASS_SETS.values(), ids=PASS_SETS.keys())
def test_writing_into_a_returned_constant_changes_no_later_call(passes):
    """A constant that fn makes is frozen by the trace; returned (or a view of it returned),
    it is the caller's array, as it is eagerly, not the one later calls read."""
    rng = np.random.default_rng(6)
    W = nn.Parameter(rng.normal(size=(2, 2)))

    def loss_fn(x):
        bias = tr.Tensor(np.full((1, 2), 0.5))
        return ((x @ W + bias) ** 2).sum(), bias, bias[0]

    step = compile(loss_fn, passes=passes)
    for x in [tr.Tensor(rng.normal(size=(3, 2))) for _ in range(3)]:
        loss, bias, row = step(x)
        assert loss.item() == pytest.approx(loss_fn(x)[0].item(), rel=1e-12)
        bias.data[...] = row.data[...] = 100.0
