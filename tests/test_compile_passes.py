"""Each pass of tr.compile against the plain replay, and what it changes in the tape."""
import tracemalloc

import numpy as np
import pytest

import tinygrad_rnn as tr
from tinygrad_rnn import nn, tensor
from tinygrad_rnn.compile import compile, passes
from tinygrad_rnn.compile.fuse import fuse_cross_entropy
from tinygrad_rnn.compile.tape import Forward, SliceGrad
from compile_helpers import assert_close, assert_compiled_matches, compiled_call, sgd_nudge
from test_compile import sequence_problem
from test_compile_trace import Noise

PASSES = [(fuse_cross_entropy,), (passes.batch_weight_grads,), (passes.join_slices,),
          (passes.free_after_last_use,), (passes.free_after_last_use, passes.reuse_buffers),
          (passes.stack_rows,),
          (passes.batch_weight_grads, passes.join_slices, passes.place_slices)]
PROBLEMS = [(nn.LSTM, {}), (nn.GRU, {"reset_after": False, "bidirectional": True}),
            (nn.RNN, {"num_layers": 2, "batch_first": True})]


@pytest.mark.parametrize("optimise", PASSES, ids=[p[-1].__name__ for p in PASSES])
@pytest.mark.parametrize("layer_class, options", PROBLEMS, ids=[c.__name__ for c, _ in PROBLEMS])
def test_each_pass_matches_the_plain_replay(optimise, layer_class, options):
    loss_fn, calls, leaves = sequence_problem(layer_class, options, steps=5)
    plain, optimised = compile(loss_fn, passes=()), compile(loss_fn, passes=optimise)
    for args in calls * 2:  # the first call of each is eager; the replays follow
        want = compiled_call(plain, args, leaves)
        got = compiled_call(optimised, args, leaves)
        assert_close(got[0], want[0], "loss")
        assert_close(got[1], want[1], "gradient")
        sgd_nudge(leaves)


def kinds(tape):
    return [type(step).__name__ for step in tape.backward]


def test_batch_weight_grads_makes_one_product_per_shared_weight():
    loss_fn, calls, leaves = sequence_problem(nn.LSTM, {}, steps=6)
    plain = compile(loss_fn, passes=()).tape(*calls[0])
    batched = compile(loss_fn, passes=(passes.batch_weight_grads,)).tape(*calls[0])
    # weight_hh and bias_hh are used by 6 linear nodes; weight_ih and the readout by one each
    assert kinds(batched).count("BatchedWeightGrad") == 1
    weight_routes = [sum(1 for step in tape.backward if getattr(step, "fn", None) is tr.ops.Linear
                         for i, _, _ in step.routes if i == 1) for tape in (plain, batched)]
    assert weight_routes == [8, 2]


def test_join_slices_writes_over_exact_covers_only():
    x = nn.Parameter(np.arange(12.0).reshape(4, 3))

    def covered(x):  # rows 0..3 once each
        return sum((x[t] * (t + 1)).sum() for t in range(4))

    def overlapping(x):  # row 1 twice
        return (x[0:2] * x[1:3]).sum()

    for fn, joined in [(covered, True), (overlapping, False)]:
        tape = compile(fn, passes=(passes.join_slices,)).tape(x)
        assert {s.assign for s in tape.backward if isinstance(s, SliceGrad)} == {joined}
        x.grad = None
        got = compile(fn, passes=(passes.join_slices,))
        for _ in range(2):
            x.grad = None
            got(x)
        grad = x.grad.copy()
        x.grad = None
        fn(x).backward()
        np.testing.assert_array_equal(grad, x.grad)


def test_free_after_last_use_drops_unused_ops_but_keeps_random_ones():
    rng = np.random.default_rng(0)
    W = nn.Parameter(np.ones((3, 3)))

    def fn(x):
        (x * 5).exp()  # nobody reads it
        tensor._apply(Noise, (x,), rng=rng)  # nobody reads it either, but it draws
        return (x @ W).sum()

    tape = passes.free_after_last_use(compile(fn, passes=()).tape(tr.Tensor(np.ones((2, 3)))))
    ops = [step.fn.name for step in tape.forward if isinstance(step, Forward)]
    assert ops == ["noise", "matmul", "sum"]


def peak_of(step, args):
    step(*args)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        step(*args)
        return tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()


def test_a_row_read_again_keeps_the_weight_gradient_of_its_own_products():
    """The batched product reads the steps' h W^T gradients as the rows of x_proj's gradient only
    where they are equal: here each row x_proj[t] is also summed into the loss, so its gradient
    is the add's share plus one, and W's gradient takes each product's own."""
    rng = np.random.default_rng(0)
    w_ih, w_hh = nn.Parameter(rng.normal(size=(4, 3)) * 0.5), nn.Parameter(rng.normal(size=(4, 4)) * 0.5)
    bias = nn.Parameter(rng.normal(size=4))

    def loss_fn(x):
        projection, h, total = tensor.linear(x, w_ih, bias), tr.Tensor(np.zeros((2, 4))), 0
        for t in range(x.shape[0]):
            row = projection[t]
            h = (row + tensor.linear(h, w_hh, bias)).tanh()
            total = total + row.sum()
        return (h * h).sum() + total

    calls = [(tr.Tensor(rng.normal(size=(5, 2, 3))),) for _ in range(2)]
    joined = (passes.batch_weight_grads, passes.join_slices, passes.place_slices)
    assert_compiled_matches(loss_fn, calls, [w_ih, w_hh, bias], passes=joined)


def test_an_add_or_a_sub_keeps_no_saved_tuple():
    """Their backward reads none of what they saved, so the forward saves nothing for it."""
    def loss_fn(x, w):
        return ((x + w) * (x - w)).sum()

    calls = [(tr.Tensor(np.ones((2, 3))), nn.Parameter(np.full((2, 3), 0.5)))]
    step = assert_compiled_matches(loss_fn, calls, [calls[0][1]], passes=(passes.free_after_last_use,))
    kept = {s.fn.name: s.keep_saved for s in step.tape(*calls[0]).forward if type(s) is Forward}
    assert kept == {"add": False, "sub": False, "mul": True, "sum": True}
    fn, calls, leaves = sequence_problem(nn.RNN, {}, steps=6)
    assert " = ()" not in assert_compiled_matches(fn, calls, leaves).source()  # in the rolled loops


def test_free_after_last_use_lowers_the_peak_memory():
    tr.manual_seed(0)
    lstm = nn.LSTM(8, 32).to(np.float64)
    x = tr.Tensor(np.random.default_rng(0).normal(size=(40, 4, 8)))

    def loss_fn(x):
        return (lstm(x)[0] ** 2).mean()

    plain = peak_of(compile(loss_fn, passes=()), (x,))
    freed = peak_of(compile(loss_fn, passes=(passes.free_after_last_use,)), (x,))
    assert freed < 0.7 * plain


def test_reuse_buffers_shares_arrays_between_steps():
    loss_fn, calls, leaves = sequence_problem(nn.LSTM, {}, steps=6)
    tape = compile(loss_fn, passes=(passes.free_after_last_use, passes.reuse_buffers)).tape(*calls[0])
    reusing = [step for step in tape.forward if isinstance(step, passes.ReusingForward)]
    # x_proj[t] + h W_hh^T, f * c and i * c~ die within each step (c and h are saved by the
    # next), and so do the last step's c and h and the loss's -picked: 21 ops in 5 arrays
    assert len(reusing) == 3 * 6 + 3
    assert len({id(step.buffer) for step in reusing}) == 5


def test_the_optimised_replay_s_gradients_match_finite_differences():
    loss_fn, calls, leaves = sequence_problem(nn.GRU, {"reset_after": False}, steps=3, batch=2, hidden=2)
    step = compile(loss_fn)
    x, y = calls[0]
    step(x, y)  # the trace; the next call is a replay
    for leaf in leaves:
        leaf.grad = None
    step(x, y)
    eps = 1e-6
    for leaf in leaves:
        numeric = np.zeros_like(leaf.data)
        for index in np.ndindex(leaf.shape):
            saved = leaf.data[index]
            leaf.data[index] = saved + eps
            up = loss_fn(x, y).item()
            leaf.data[index] = saved - eps
            down = loss_fn(x, y).item()
            leaf.data[index] = saved
            numeric[index] = (up - down) / (2 * eps)
        np.testing.assert_allclose(leaf.grad, numeric, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("layer_class, blocks, placed", [(nn.LSTM, 4, 4), (nn.GRU, 3, 6), (nn.RNN, 0, 0)])
def test_place_slices_makes_each_step_s_gradient_in_place(layer_class, blocks, placed):
    loss_fn, calls, leaves = sequence_problem(layer_class, {}, steps=6)
    joined = (passes.batch_weight_grads, passes.join_slices)
    before = compile(loss_fn, passes=joined).tape(*calls[0])
    after = compile(loss_fn, passes=joined + (passes.place_slices,)).tape(*calls[0])
    slices = [s for s in after.backward if isinstance(s, SliceGrad)]
    # the gate blocks of the 6 steps write into x_proj's gradient, and the GRU's blocks of
    # h W_hh^T into a new array; the 6 copies of x_proj[t] are gone (the RNN has no gate blocks:
    # tanh's backward makes a_t's gradient, copied as before)
    assert sum(s.host is not None for s in slices) == placed * 6
    assert len(slices) == len([s for s in before.backward if isinstance(s, SliceGrad)]) - 6 * bool(blocks)
    batched = [s for s in after.backward if isinstance(s, passes.BatchedWeightGrad)]
    assert [s.rows is not None for s in batched] == [True]  # W_hh's product reads those rows


def test_place_slices_of_slices_match_the_engine():
    big = nn.Parameter(np.random.default_rng(3).normal(size=(1, 3, 4)))

    def fn(x):  # big[0] is cut into rows, each row into halves: slices of slices, all joined
        top = big[0]
        rows = [top[t] for t in range(3)]
        return sum(((row[:2] * x).sum() + (row[2:] ** 2).sum()) * (t + 1) for t, row in enumerate(rows))

    calls = [(tr.Tensor(np.random.default_rng(s).normal(size=2)),) for s in range(3)]
    for optimise in [(), passes.UNROLLED_PASSES]:
        assert_compiled_matches(fn, calls, [big], optimise)


@pytest.mark.parametrize("optimise", [(passes.stack_rows,), passes.UNROLLED_PASSES],
                         ids=["alone", "unrolled"])
def test_stack_rows_takes_the_stacks_along_the_first_axis_only(optimise):
    W0 = nn.Parameter(np.random.default_rng(8).normal(size=(3, 3)))

    def fn(x):
        rows = [(x[t] @ W0).tanh() * (t + 1) for t in range(4)]
        return (tr.stack(rows) ** 2).sum() + (tr.stack(rows, axis=-1) * x.transpose((1, 2, 0))).sum()

    calls = [(tr.Tensor(np.random.default_rng(s).normal(size=(4, 2, 3))),) for s in range(3)]
    step = assert_compiled_matches(fn, calls, [W0], optimise)
    tape = step.tape(*calls[0])
    stacks = [s.fn for s in tape.forward if getattr(s, "fn", None) in (tr.ops.Stack, passes.StackRows)]
    assert stacks == [passes.StackRows, tr.ops.Stack]
