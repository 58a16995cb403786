"""Deferred gradients: slices' Scatters and per-step weight Products, gathered exactly."""
import numpy as np
from hypothesis import given
from hypothesis import strategies as st

import tinygrad_rnn as tr
from tinygrad_rnn.deferred import Product, Scatter, gather
from tinygrad_rnn.testing import float_arrays, shapes


def f64(values, requires_grad=False):
    return tr.Tensor(np.asarray(values, dtype=np.float64), requires_grad=requires_grad)


def slice_pieces(shape):
    """Indices of pieces of an array of ``shape``: x[t] (negative t too) or x[..., a:b]
    along one axis, which may tile the array, overlap, repeat or leave gaps."""
    def block(axis):
        n = shape[axis]
        return st.tuples(st.integers(0, n), st.integers(0, n)).map(
            lambda ab: (slice(None),) * axis + (slice(min(ab), max(ab)),))
    rows = st.integers(-shape[0], shape[0] - 1)
    return st.lists(rows | st.sampled_from(range(len(shape))).flatmap(block), min_size=1, max_size=6)


@given(data=st.data())
def test_the_gradients_of_many_pieces_of_one_tensor_add_up(data):
    """Pieces that tile an axis are joined by one stack or concatenate, the others
    added into zeros: either way dL/dx is the sum over the pieces, with a dense use too."""
    x = data.draw(float_arrays(shapes(min_dims=1)))
    indices = data.draw(slice_pieces(x.shape))
    if data.draw(st.booleans()):  # the exact tilings, in any order
        axis = data.draw(st.integers(0, x.ndim - 1))
        indices = (list(range(x.shape[0])) if data.draw(st.booleans()) else
                   [(slice(None),) * axis + (slice(i, i + 1),) for i in range(x.shape[axis])])
        indices = data.draw(st.permutations(indices))
    dense = data.draw(st.booleans())
    rng = np.random.default_rng(len(indices))
    weights = [rng.normal(size=x[index].shape) for index in indices]
    dense_weight = rng.normal(size=x.shape)

    def loss(t):
        total = sum((t[index] * w).sum() for index, w in zip(indices, weights))
        return total + (t * dense_weight).sum() if dense else total

    expected = dense_weight.copy() if dense else np.zeros_like(x)
    for index, w in zip(indices, weights):
        expected[index] += w
    t = tr.Tensor(x, requires_grad=True)
    loss(t).backward()
    np.testing.assert_allclose(t.grad, expected, rtol=1e-12, atol=1e-12)


def test_blocks_taken_with_array_indices_in_front_are_added_not_joined():
    x = f64(np.arange(12.0).reshape(3, 4), True)
    (x[np.array([0, 2]), 0:2].sum() + 10 * x[np.array([0, 1, 2]), 2:4].sum()).backward()
    np.testing.assert_array_equal(x.grad, [[1, 1, 10, 10], [0, 0, 10, 10], [1, 1, 10, 10]])


@given(data=st.data())
def test_products_and_scatters_and_a_dense_part_gather_to_their_sum(data):
    """The products become one matmul over all their rows; with slices and a dense part beside."""
    rows = data.draw(st.lists(st.integers(1, 4), min_size=1, max_size=5))
    out, inputs = data.draw(st.integers(1, 4)), data.draw(st.integers(1, 4))
    rng = np.random.default_rng(sum(rows))
    products = [Product(rng.normal(size=(n, out)), rng.normal(size=(n, inputs))) for n in rows]
    expected = sum(p.g.T @ p.x for p in products)
    pieces = list(products)
    dense = rng.normal(size=(out, inputs)) if data.draw(st.booleans()) else None
    if dense is not None:
        expected = expected + dense
    if data.draw(st.booleans()):
        values = rng.normal(size=inputs)
        pieces.append(Scatter((out, inputs), np.float64, 0, values))
        expected[0] += values
    np.testing.assert_allclose(gather(dense, data.draw(st.permutations(pieces))), expected,
                               rtol=1e-12, atol=1e-12)


def test_a_recurrent_weight_gets_the_sum_of_its_steps_products():
    """h(t) = tanh(C h(t-1) + x_proj(t)) over 4 steps: dL/dC = sum over t of g(t)^T h(t-1)."""
    rng = np.random.default_rng(0)
    C = f64(rng.normal(size=(3, 3)), True)
    x_proj = f64(rng.normal(size=(4, 2, 3)), True)
    h, hs = f64(np.zeros((2, 3))), []
    for t in range(4):
        h = tr.linear(h, C, x_proj[t]).tanh()
        hs.append(h)
    tr.stack(hs).sum().backward()
    values = [np.zeros((2, 3))] + [h.data for h in hs]
    g, expected = np.zeros((2, 3)), np.zeros((3, 3))
    for t in reversed(range(4)):  # min-char-rnn style: da(t) = (1 + da(t+1) C) (1 - h(t)^2)
        g = (1 + g @ C.data) * (1 - values[t + 1] ** 2)
        expected += g.T @ values[t]
    np.testing.assert_allclose(C.grad, expected, rtol=1e-12)
