"""tr.compile's tracing: guards, the signature cache, random ops, generated graphs of primitives."""
import numpy as np
import pytest
from hypothesis import given, strategies as st
from hypothesis.extra import numpy as hnp

import tinygrad_rnn as tr
from tinygrad_rnn import nn, rng, tensor
from tinygrad_rnn.compile import DEFAULT_PASSES, UNROLLED_PASSES, TraceError, compile
from compile_helpers import assert_close, assert_compiled_matches, compiled_call, eager_call

W = nn.Parameter(np.arange(6.0).reshape(2, 3) / 10)


def x_of(shape=(4, 3), seed=0):
    return tr.Tensor(np.random.default_rng(seed).normal(size=shape))


# ------------------------------------------------------------------ guards

@pytest.mark.parametrize("read", [lambda t: t.item(), float, bool, lambda t: t.numpy()],
                         ids=["item", "float", "bool", "numpy"])
def test_reading_a_traced_value_is_refused(read):
    def fn(x):
        loss = (x @ W.T).sum()
        if read(loss) > 0:
            return loss
        return -loss

    with pytest.raises(TraceError, match="the replay would use the value from the trace"):
        compile(fn)(x_of())


def test_reading_a_constant_made_inside_fn_is_allowed():
    def fn(x):
        scale = tr.Tensor(np.float64(2.0))
        return (x @ W.T).sum() * scale.item()

    step = compile(fn)
    assert step(x_of()).item() == pytest.approx(fn(x_of()).item())


@pytest.mark.parametrize("returned, message", [
    (lambda x: x @ W.T, "it returned a Tensor of shape \\(4, 2\\) first"),
    (lambda x: 3.0, "it returned a float first"),
    (lambda x: ((x @ W.T).sum(), 3), "only Tensors and tuples of Tensors can follow it"),
])
def test_returning_something_other_than_a_loss_is_refused(returned, message):
    with pytest.raises(TypeError, match=message):
        compile(returned)(x_of())


def test_a_loss_without_gradient_asks_for_backward_false():
    with pytest.raises(RuntimeError, match="backward=False"):
        compile(lambda x: x.sum())(x_of())


def test_a_leaf_that_requires_grad_made_inside_fn_is_refused():
    def fn(x):
        V = nn.Parameter(np.ones((3, 2)))
        return (x @ V).sum()

    with pytest.raises(TraceError, match="create parameters outside fn"):
        compile(fn)(x_of())


def test_an_op_under_no_grad_inside_fn_is_refused():
    def fn(x):
        with tr.no_grad():
            centre = x.mean()
        return ((x - centre) @ W.T).sum()

    with pytest.raises(TraceError, match="under no_grad"):
        compile(fn)(x_of())


def test_retain_grad_inside_fn_is_refused_rather_than_lost():
    V = nn.Parameter(np.ones((2, 3)))

    def fn(x):
        h = (x @ V.T).tanh().named("h").retain_grad()
        return (h * h).sum(), h

    loss, h = fn(x_of())
    loss.backward()
    assert h.grad is not None  # eagerly, the returned h has its gradient
    with pytest.raises(TraceError, match=r"retain_grad\(\) on a tensor it computes \(shape \(4, 2\), "
                                         r"named 'h', made by 'tanh'\)"):
        compile(fn)(x_of())
    assert compile(fn, backward=False)(x_of())[1].grad is None  # no backward: nothing to retain


def test_an_argument_with_a_graph_behind_it_is_refused():
    with pytest.raises(TypeError, match="detached"):
        compile(lambda h: (h @ W).sum())(x_of((4, 2)) @ W)


def test_an_unhashable_constant_is_refused():
    with pytest.raises(TypeError, match="pass arrays as Tensors"):
        compile(lambda x, a: (x @ W.T).sum())(x_of(), np.ones(3))


# ------------------------------------------------------- signature cache

def test_a_new_signature_retraces_and_a_cached_one_does_not():
    calls = []

    def fn(x, power):
        calls.append(x.shape)
        return ((x @ W.T) ** power).sum()

    step = compile(fn)
    for shape, power, traces in [((4, 3), 2, 1), ((4, 3), 2, 1), ((5, 3), 2, 2), ((4, 3), 3, 3),
                                 ((5, 3), 2, 3), ((4, 3), 2, 3)]:
        W.grad = None
        x = x_of(shape)
        loss = step(x, power)
        assert step.traces == traces and len(calls) == traces
        assert loss.item() == pytest.approx(((x.data @ W.data.T) ** power).sum(), rel=1e-12)
    W.grad = None
    step(x_of().detach(), 2)
    step(tr.Tensor(x_of().data, requires_grad=True), 2)  # requires_grad is part of the signature
    assert step.traces == 4


def test_a_leaf_whose_shape_changed_retraces():
    V = nn.Parameter(np.ones((3, 2)))
    step = compile(lambda x: (x @ V).sum())
    step(x_of())
    V.data, V.grad = np.ones((3, 5)), None
    assert step(x_of()).item() == pytest.approx(5 * x_of().data.sum())
    assert step.traces == 2


def test_a_detached_value_inside_fn_follows_the_argument():
    def fn(x):
        y = x @ W.T
        return (y * y.detach()).sum()

    assert_compiled_matches(fn, [(x_of(seed=s),) for s in range(3)], [W])


def test_an_integer_tensor_used_as_an_index_follows_the_argument():
    table = nn.Parameter(np.random.default_rng(0).normal(size=(5, 3)))

    def fn(tokens, targets):
        return nn.cross_entropy(table[tokens.reshape(-1)] @ W.T, targets)

    rng = np.random.default_rng(1)
    calls = [(tr.Tensor(rng.integers(0, 5, size=(2, 3))), tr.Tensor(rng.integers(0, 2, size=6)))
             for _ in range(3)]
    assert_compiled_matches(fn, calls, [table, W])


def test_an_argument_that_requires_grad_gets_its_gradient():
    step = compile(lambda x, y: ((x @ W.T) * y).sum())
    for seed in range(2):
        x, y = x_of(seed=seed), x_of((4, 2), seed)
        x.requires_grad = True
        step(x, y)
        np.testing.assert_allclose(x.grad, y.data @ W.data, rtol=1e-12)


# ------------------------------------------------------------ random ops

class Noise:
    """out = a * m with m drawn afresh at every forward (1 or 3, each with probability 1/2):
    a primitive that draws, like dropout, for these tests only."""
    name = "noise"
    draws_random = True

    @staticmethod
    def forward(a, rng):
        mask = 1.0 + 2.0 * (rng.random(a.shape) < 0.5)
        return a * mask, (mask,)

    @staticmethod
    def backward(saved, g, needs):
        return (g * saved[0],)


def test_a_random_op_draws_afresh_at_every_replay():
    rng = np.random.default_rng(0)

    def fn(x):
        return (tensor._apply(Noise, (x @ W.T,), rng=rng) ** 2).sum()

    step = compile(fn, passes=DEFAULT_PASSES)
    x = x_of()
    grads = []
    for _ in range(4):
        W.grad = None
        loss = step(x)
        # loss = sum (m * xW^T)^2 with m in {1, 3}: the gradient tells which mask was drawn
        grads.append(W.grad.copy())
        assert 0 < loss.item()
    assert not all(np.allclose(grads[0], g) for g in grads[1:])


def test_a_random_op_gives_the_engine_s_results_for_the_same_draws():
    def run(call, seed):
        rng = np.random.default_rng(seed)

        def fn(x):
            return (tensor._apply(Noise, (x @ W.T,), rng=rng) ** 2).sum()

        return [call(fn, (x_of(seed=s),), [W]) for s in range(3)]

    for passes in [(), UNROLLED_PASSES, DEFAULT_PASSES]:
        step = {}
        compiled = run(lambda fn, args, leaves: compiled_call(step.setdefault("s", compile(fn, passes=passes)),
                                                              args, leaves), 7)
        for (want, want_grads), (got, got_grads) in zip(run(eager_call, 7), compiled):
            assert_close(got, want, "loss")
            assert_close(got_grads, want_grads, "gradient")


def test_a_random_op_draws_from_the_generator_that_manual_seed_set_last():
    def fn(x):
        return (tensor._apply(Noise, (x @ W.T,), rng=rng.generator()) ** 2).sum()

    step, x = compile(fn), x_of()
    for seed in [1, 2, 1]:
        tr.manual_seed(seed)
        want = fn(x).item()
        tr.manual_seed(seed)
        assert step(x).item() == pytest.approx(want, rel=1e-12)
        W.grad = None


# ------------------------------------------------- generated graphs of primitives

# exp reads a tanh: a chain of exps would overflow to inf, and inf - inf warns (an error here)
UNARY = [lambda a: a.tanh(), lambda a: a.sigmoid(), lambda a: a.tanh().exp() * 0.1,
         lambda a: (a * a + 1).log(),
         lambda a: a.relu(), lambda a: (a * a + 1).sqrt(), lambda a: a.abs(), lambda a: a.clip(-0.5, 0.5),
         lambda a: a.softmax(-1), lambda a: a.log_softmax(0 if a.ndim else -1),
         lambda a: rows_cut_in_two(a, 0.0), lambda a: rows_cut_in_two(a, 0.5)]


def rows_cut_in_two(a, shift):
    """a's rows a[t], each (plus ``shift``, an add) cut into two slices along its last axis and
    put back together: slices of slices that cover their parents, as in a recurrent layer."""
    if a.ndim < 2 or a.shape[-1] < 2:
        return a * 2
    rows = [row + shift if shift else row for row in a]
    return tr.stack([tr.cat([row[..., :1] * 2, row[..., 1:].tanh()], axis=-1) for row in rows])
BINARY = [lambda a, b: a + b, lambda a, b: a - b, lambda a, b: a * b, lambda a, b: a / (b * b + 1),
          lambda a, b: tr.stack([a + b, a * b]).max(axis=0),
          lambda a, b: tr.cat([a + b, a - b], axis=-1)[..., ::2],
          lambda a, b: (a @ (b.transpose() @ b) * 0.1 if a.ndim == b.ndim == 2 and a.shape[1] == b.shape[1]
                        else a * b)]


@st.composite
def programs(draw):
    """A float64 graph of primitives: a few leaves of broadcastable shapes, ops, slices, one loss."""
    shapes = draw(hnp.mutually_broadcastable_shapes(num_shapes=3, min_dims=1, max_dims=3, max_side=3))
    arrays = [draw(hnp.arrays(np.float64, shape, elements=st.floats(-2, 2))) for shape in shapes.input_shapes]
    plan = [(draw(st.integers(0, len(UNARY) - 1)), draw(st.integers(0, len(BINARY) - 1)),
             draw(st.integers(0, 2)), draw(st.booleans())) for _ in range(draw(st.integers(1, 5)))]
    return arrays, plan


@given(programs(), st.sampled_from([(), UNROLLED_PASSES, DEFAULT_PASSES]))
def test_generated_graphs_match_the_engine(program, passes):
    arrays, plan = program
    leaves = [nn.Parameter(a.copy()) for a in arrays[1:]]

    def fn(x):
        values = [x, *leaves]
        for unary, binary, other, sliced in plan:
            value = BINARY[binary](UNARY[unary](values[-1]), values[other])
            if sliced:  # basic slices of the same shape, and one that broadcasts back
                value = value[..., ::-1] * 0.5 + value[..., :1]
            values.append(value)
        return values[-1].sum() + sum((v * v).sum() for v in values[:3]) * 0.01

    rng = np.random.default_rng(0)
    calls = [(tr.Tensor(arrays[0] + rng.normal(size=arrays[0].shape) * k),) for k in (0, 0.1, 0.2)]
    assert_compiled_matches(fn, calls, leaves, passes)
