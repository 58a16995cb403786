"""Tensor construction, dtype rules and the semantics of backward (accumulation,
retained graphs and gradients, no_grad, detach, scopes, deep graphs)."""
import gc
import operator
import sys
import weakref

import numpy as np
import pytest

import tinygrad_rnn as tr
from tinygrad_rnn import rng


def leaf(values, dtype=np.float64):
    return tr.Tensor(np.asarray(values, dtype=dtype), requires_grad=True)


# ---------------------------------------------------------------- dtype rules

@pytest.mark.parametrize("data, dtype", [
    (1.5, np.float32),
    ([1.0, 2.0], np.float32),
    ([[1, 2.5]], np.float32),
    (np.zeros(2, np.float32), np.float32),
    (np.zeros(2, np.float64), np.float64),
    (np.float64(2.0), np.float64),
    ([1, 2], np.int64),
    (np.arange(3, dtype=np.int32), np.int32),
    ([True, False], np.bool_),
])
def test_constructor_dtype_rules(data, dtype):
    assert tr.Tensor(data).dtype == dtype


def test_explicit_dtype_wins_and_a_tensor_can_be_rewrapped():
    t = tr.Tensor([1, 2], dtype="float64")
    assert t.dtype == np.float64 and t.data.tolist() == [1.0, 2.0]
    assert tr.Tensor(t).dtype == np.float64


def test_constructor_copies_its_data():
    source = np.array([1.0, 2.0])
    t = tr.Tensor(source)
    source[0] = 99.0
    assert t.data[0] == 1.0


def test_python_and_numpy_scalars_take_the_tensors_float_dtype():
    x = tr.Tensor([1.0, 2.0])
    for result in (x * 2.5, 2.5 * x, x + 1, x - np.float64(1), np.float64(3) * x, x ** 2,
                   2 ** x, x / np.int64(2), 1 / x):
        assert result.dtype == np.float32
    assert (tr.Tensor(np.ones(2)) * np.float32(2)).dtype == np.float64


def test_integer_tensors_stay_integer_and_index_other_tensors():
    targets = tr.Tensor([2, 0])
    assert (targets + 1).dtype == np.int64
    x = leaf([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    x[np.arange(2), targets].sum().backward()
    np.testing.assert_array_equal(x.grad, [[0, 0, 1], [1, 0, 0]])


def test_attributes():
    with tr.scope("outer"):
        x = tr.Tensor(np.ones((2, 3)), requires_grad=True, name="x")
        y = x.tanh()
    assert (x.shape, x.ndim, x.size, x.dtype, x.name) == ((2, 3), 2, 6, np.float64, "x")
    assert x.op is None and x.parents == () and x.grad is None and x.scope == "outer"
    assert y.op == "tanh" and y.parents == (x,) and y.requires_grad and y.name is None
    assert x.numpy() is x.data


def test_single_values_and_iteration():
    t = tr.Tensor([[3.5]])
    assert t.item() == 3.5 and float(t) == 3.5 and bool(t) and not bool(tr.Tensor(0.0))
    rows = list(tr.Tensor(np.arange(6.0).reshape(3, 2)))
    assert [r.data.tolist() for r in rows] == [[0, 1], [2, 3], [4, 5]]
    assert all(r.op == "getitem" for r in rows) and len(tr.Tensor(np.zeros((4, 2)))) == 4


def test_repr_names_data_dtype_and_graph_role():
    x = tr.Tensor([1.0], requires_grad=True, name="w")
    assert repr(x) == "Tensor([1.], dtype=float32, requires_grad=True, name='w')"
    assert repr(x * 2) == "Tensor([2.], dtype=float32, requires_grad=True, op=mul)"


# -------------------------------------------------------- ndarray op Tensor

@pytest.mark.parametrize("op", [operator.add, operator.sub, operator.mul, operator.truediv,
                                operator.pow, operator.matmul])
def test_ndarray_on_the_left_dispatches_to_the_tensor(op):
    a = np.array([[1.0, 2.0], [3.0, 0.5]])
    x = leaf([[0.5, 1.5], [2.0, 1.0]])
    result = op(a, x)
    assert isinstance(result, tr.Tensor) and result.requires_grad
    np.testing.assert_allclose(result.data, op(a, x.data))
    assert tr.gradcheck(lambda x: op(a, x), [x])


# ------------------------------------------------------------- graph shapes

def test_fan_out_and_diamond_add_up():
    a = leaf(3.0)
    b = a + a
    c = b + b
    c.backward()
    assert a.grad == 4.0


def test_square_by_product_has_gradient_two_x():
    x = leaf([1.5, -2.0])
    (x * x).sum().backward()
    np.testing.assert_array_equal(x.grad, [3.0, -4.0])


def test_a_diamond_through_different_ops():
    x = leaf(0.7)
    y = x.tanh() * x.sigmoid() + x.exp()
    y.backward()
    t, s = np.tanh(0.7), 1 / (1 + np.exp(-0.7))
    assert x.grad == pytest.approx((1 - t * t) * s + t * s * (1 - s) + np.exp(0.7), rel=1e-14)


def test_leaf_gradients_accumulate_over_backward_calls():
    x = leaf([1.0, 2.0])
    (x * 3).sum().backward()
    (x * x).sum().backward()
    np.testing.assert_array_equal(x.grad, [3 + 2, 3 + 4])


def test_retain_graph_lets_a_second_backward_exactly_double():
    x = leaf([0.3, -1.2])
    y = (x.tanh() * x).sum()
    y.backward(retain_graph=True)
    first = x.grad.copy()
    y.backward()
    np.testing.assert_array_equal(x.grad, 2 * first)


def test_retain_grads_keeps_every_non_leaf_gradient():
    x = leaf([1.0, 2.0])
    h = x * 3
    y = h.tanh()
    loss = y.sum()
    loss.backward(retain_grads=True)
    np.testing.assert_allclose(y.grad, [1.0, 1.0])
    np.testing.assert_allclose(h.grad, 1 - np.tanh([3.0, 6.0]) ** 2)
    assert loss.grad == 1.0


def test_retained_gradients_are_private_copies():
    x = leaf([1.0, 2.0])
    a, b = x * 1, x * 2
    (a + b).sum().backward(retain_grads=True)
    a.grad[0] = 100.0
    assert b.grad[0] == 1.0


def test_retain_grad_keeps_only_the_chosen_non_leaf():
    x = leaf([1.0, 2.0])
    h = (x * 2).retain_grad()
    y = h.tanh()
    y.sum().backward()
    np.testing.assert_allclose(h.grad, 1 - np.tanh([2.0, 4.0]) ** 2)
    assert y.grad is None


def test_non_leaf_gradients_are_not_kept_by_default():
    x = leaf([1.0])
    h = x * 2
    h.sum().backward()
    assert h.grad is None and x.grad[0] == 2.0


def test_no_grad_records_nothing():
    x = leaf([1.0, 2.0])
    with tr.no_grad():
        assert not tr.is_grad_enabled()
        y = (x * 2).tanh()
    assert tr.is_grad_enabled()
    assert y.op is None and y.parents == () and not y.requires_grad
    np.testing.assert_allclose(y.data, np.tanh([2.0, 4.0]))


def test_no_grad_nests_and_restores_after_an_error():
    with pytest.raises(KeyError):
        with tr.no_grad():
            with tr.no_grad():
                pass
            assert not tr.is_grad_enabled()
            raise KeyError
    assert tr.is_grad_enabled()


def test_detach_cuts_the_graph_and_shares_the_data():
    x = leaf([1.0, 2.0])
    h = x * 2
    d = h.detach()
    assert d.op is None and d.parents == () and not d.requires_grad and d.data is h.data
    (d * x).sum().backward()
    np.testing.assert_array_equal(x.grad, [2.0, 4.0])


def test_equal_valued_leaves_get_independent_gradients():
    a, b = leaf([2.0]), leaf([2.0])
    (a * 3 + b * 5).sum().backward()
    assert a.grad[0] == 3.0 and b.grad[0] == 5.0


def test_constants_in_the_graph_get_no_gradient():
    x = leaf([1.0, 2.0])
    c = tr.Tensor([3.0, 4.0], dtype="float64")
    (x * c).sum().backward()
    assert c.grad is None


def test_backward_on_a_leaf_and_with_an_explicit_gradient():
    x = leaf([1.0, 2.0])
    x.backward(np.array([0.5, 0.25]))
    np.testing.assert_array_equal(x.grad, [0.5, 0.25])
    y = x * 2
    y.backward(tr.Tensor([1.0, 1.0]))
    np.testing.assert_array_equal(x.grad, [2.5, 2.25])


def test_float32_leaf_gets_a_float32_gradient_from_float64_arithmetic():
    x = tr.Tensor([1.0, 2.0], requires_grad=True)
    (x * np.array([0.5, 0.5])).sum().backward()
    assert x.grad.dtype == np.float32 and x.grad.tolist() == [0.5, 0.5]


def test_a_100_000_node_chain_backpropagates_with_the_default_recursion_limit():
    limit = sys.getrecursionlimit()
    x = leaf(0.5)
    y = x
    for _ in range(100_000):
        y = -y
    (y * 3.0).backward()
    assert sys.getrecursionlimit() == limit
    assert x.grad == 3.0


def test_a_finished_graph_is_freed_without_the_garbage_collector():
    gc.disable()
    try:
        x = leaf(np.ones(1000))
        hidden = (x * 2).tanh()
        saved = weakref.ref(hidden.data)
        loss = hidden.sum()
        del hidden
        assert saved() is not None
        del loss
        assert saved() is None
    finally:
        gc.enable()


# -------------------------------------------------------------- scopes, rng

def test_scopes_nest_and_restore():
    with tr.scope("lstm") as outer:
        with tr.scope("l0"):
            with tr.scope("t=3") as path:
                y = tr.Tensor([1.0]) * 2
        z = tr.Tensor([1.0]) + 1
    w = tr.Tensor([1.0]) - 1
    assert (outer, path) == ("lstm", "lstm/l0/t=3")
    assert (y.scope, z.scope, w.scope) == ("lstm/l0/t=3", "lstm", "")


def test_manual_seed_repeats_the_generator():
    tr.manual_seed(7)
    first = rng.generator().standard_normal(3)
    tr.manual_seed(7)
    np.testing.assert_array_equal(rng.generator().standard_normal(3), first)
    tr.manual_seed(8)
    assert not np.array_equal(rng.generator().standard_normal(3), first)


def test_manual_seed_reseeds_the_generator_that_others_already_hold():
    held = rng.generator()
    tr.manual_seed(7)
    first = held.standard_normal(3)
    tr.manual_seed(7)
    assert rng.generator() is held
    np.testing.assert_array_equal(held.standard_normal(3), first)


def test_detect_anomaly_is_off_by_default_and_scoped():
    nan = tr.Tensor([0.0]) / 0.0
    assert np.isnan(nan.data).all()
    with pytest.raises(FloatingPointError):
        with tr.detect_anomaly():
            tr.Tensor([0.0]) / 0.0
    assert np.isnan((tr.Tensor([0.0]) / 0.0).data).all()


class Log:
    """An observer that writes down everything the engine tells it."""

    def __init__(self):
        self.events = []

    def applied(self, t, params):
        self.events.append(("applied", t.op, params))

    def read(self, t, how):
        self.events.append(("read", how))

    def gradient(self, t, g):
        self.events.append(("gradient", t.op, g.copy()))

    def added(self, node, leaf, g):
        self.events.append(("added", node.op, leaf.name, g.copy()))


def test_an_observer_sees_ops_reads_gradients_and_every_share_added_into_a_leaf():
    w = tr.Tensor(np.array([1.0, 2.0, 3.0]), requires_grad=True, name="w")
    with tr.tensor.observing(Log()) as log:
        y = (w[:2] * 3.0).sum() + (w * w).sum()
        y.item()
        y.backward()
    kinds = [event[0] for event in log.events]
    assert [e[1] for e in log.events if e[0] == "applied"] == ["getitem", "mul", "sum", "mul", "sum", "add"]
    assert ("read", "item") in log.events and kinds.index("read") < kinds.index("gradient")
    shares = [(e[1], e[3]) for e in log.events if e[0] == "added"]
    assert [op for op, _ in shares] == ["mul", "mul", "getitem"]
    np.testing.assert_array_equal(sum(g for _, g in shares), w.grad)
    np.testing.assert_array_equal(shares[-1][1], [3.0, 3.0, 0.0])
    assert not tr.autograd.observers
