"""Every primitive and Tensor method, forward against numpy and backward against
finite differences (float64, hypothesis-drawn shapes and values), plus the
extreme inputs where a naive formula would overflow or produce NaN."""
import operator

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tinygrad_rnn as tr
from tinygrad_rnn.testing import (assert_gradients_match, broadcastable_shapes, float_arrays,
                                  shapes)


def f64(values, requires_grad=False):
    return tr.Tensor(np.asarray(values, dtype=np.float64), requires_grad=requires_grad)


def check(fn, *arrays, reference=None):
    """Gradients by finite differences; forward too, when a numpy ``reference`` is given."""
    if reference is not None:
        out = fn(*[tr.Tensor(np.asarray(a)) for a in arrays])
        np.testing.assert_allclose(out.data, reference(*arrays), rtol=1e-12, atol=1e-12)
    assert_gradients_match(fn, *arrays)


def axes_for(ndim):
    """None, one axis (possibly negative) or a tuple of distinct axes of an ndim-array."""
    if ndim == 0:
        return st.none() | st.just(())
    one = st.integers(-ndim, ndim - 1)
    several = st.lists(st.integers(0, ndim - 1), unique=True, max_size=ndim).map(tuple)
    return st.none() | one | several


def distinct_values(shape, seed):
    """Values at least 0.5 apart, so a max never ties and a finite difference never flips it."""
    size = int(np.prod(shape))
    return np.random.default_rng(seed).permutation(size).reshape(shape) * 0.5 - size / 4


# ---------------------------------------------------------------- arithmetic

BINARY = {"add": operator.add, "sub": operator.sub, "mul": operator.mul}


@pytest.mark.parametrize("name", sorted(BINARY))
@given(st.data())
def test_add_sub_mul_with_broadcasting(name, data):
    shape_a, shape_b = data.draw(broadcastable_shapes())
    a, b = data.draw(float_arrays(shape_a)), data.draw(float_arrays(shape_b))
    check(BINARY[name], a, b, reference=BINARY[name])


@given(st.data())
def test_div_with_broadcasting(data):
    shape_a, shape_b = data.draw(broadcastable_shapes())
    a = data.draw(float_arrays(shape_a))
    b = data.draw(float_arrays(shape_b, away_from=(0,), margin=0.5))
    check(operator.truediv, a, b, reference=operator.truediv)


@given(st.data())
def test_pow_with_a_tensor_exponent_and_positive_base(data):
    shape_a, shape_b = data.draw(broadcastable_shapes())
    a = data.draw(float_arrays(shape_a, 0.2, 3))
    b = data.draw(float_arrays(shape_b, -2, 2))
    check(operator.pow, a, b, reference=operator.pow)


@pytest.mark.parametrize("exponent", [0, 1, 2, 3, -1, -2])
@given(x=float_arrays(shapes(), away_from=(0,), margin=0.3))
def test_pow_with_an_integer_scalar_exponent_at_any_sign(exponent, x):
    check(lambda x: x ** exponent, x, reference=lambda x: x ** exponent)


@pytest.mark.parametrize("exponent", [0.5, -1.5, 2.7])
@given(x=float_arrays(shapes(), 0.2, 3))
def test_pow_with_a_fractional_scalar_exponent(exponent, x):
    check(lambda x: x ** exponent, x, reference=lambda x: x ** exponent)


REFLECTED = {
    "radd": (lambda x: 2.5 + x, lambda x: 2.5 + x),
    "rsub": (lambda x: 2.5 - x, lambda x: 2.5 - x),
    "rmul": (lambda x: 2.5 * x, lambda x: 2.5 * x),
    "rtruediv": (lambda x: 2.5 / x, lambda x: 2.5 / x),
    "rpow": (lambda x: 2.5 ** x, lambda x: 2.5 ** x),
    "neg": (lambda x: -x, lambda x: -x),
    "sub_scalar": (lambda x: x - 2.5, lambda x: x - 2.5),
    "truediv_scalar": (lambda x: x / 2.5, lambda x: x / 2.5),
}


@pytest.mark.parametrize("name", sorted(REFLECTED))
@given(x=float_arrays(shapes(), away_from=(0,), margin=0.3))
def test_scalar_operands_on_either_side(name, x):
    fn, reference = REFLECTED[name]
    check(fn, x, reference=reference)


@given(x=float_arrays(shapes(), away_from=(0,), margin=0.3), data=st.data())
def test_ndarray_operands_on_either_side(x, data):
    c = data.draw(float_arrays(x.shape, 0.5, 2))
    for fn in (lambda x: c + x, lambda x: c - x, lambda x: c * x, lambda x: c / x,
               lambda x: x / c, lambda x: c ** x):
        assert_gradients_match(fn, x)


# -------------------------------------------------------------------- matmul

MATMUL_SHAPES = hnp.mutually_broadcastable_shapes(signature=np.matmul.signature, max_dims=2,
                                                  max_side=3).map(lambda s: s.input_shapes)


@given(st.data())
def test_matmul_1d_2d_and_batched(data):
    shape_a, shape_b = data.draw(MATMUL_SHAPES)
    a, b = data.draw(float_arrays(shape_a)), data.draw(float_arrays(shape_b))
    check(operator.matmul, a, b, reference=operator.matmul)


@pytest.mark.parametrize("shape_a, shape_b", [
    ((3,), (2, 3, 4)),       # 1-D @ batched
    ((2, 4, 3), (3,)),       # batched @ 1-D
    ((3,), (3,)),            # dot product
    ((2, 1, 2, 3), (4, 3, 2)),  # batch axes broadcast
])
def test_matmul_against_einsum(shape_a, shape_b):
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=shape_a), rng.normal(size=shape_b)
    ta, tb = f64(a, True), f64(b, True)
    out = ta @ tb
    a2 = a[None] if a.ndim == 1 else a
    b2 = b[:, None] if b.ndim == 1 else b
    expected = np.einsum("...ij,...jk->...ik", a2, b2)
    expected = expected[..., 0, :] if a.ndim == 1 else expected
    expected = expected[..., 0] if b.ndim == 1 else expected
    np.testing.assert_allclose(out.data, expected, rtol=1e-13)
    assert tr.gradcheck(operator.matmul, [ta, tb])


@given(lead=shapes(max_dims=2), sizes=st.tuples(st.integers(1, 4), st.integers(1, 4)),
       bias=st.sampled_from(["none", "vector", "full", "row"]), data=st.data())
def test_linear_with_any_leading_axes_and_bias_shape(lead, sizes, bias, data):
    features, outputs = sizes
    x = data.draw(float_arrays(lead + (features,)))
    weight = data.draw(float_arrays((outputs, features)))
    bias_shape = {"vector": (outputs,), "full": lead + (outputs,), "row": (1,) * len(lead) + (outputs,)}
    if bias == "none":
        check(tr.linear, x, weight, reference=lambda x, w: x @ w.T)
    else:
        b = data.draw(float_arrays(bias_shape[bias]))
        check(tr.linear, x, weight, b, reference=lambda x, w, b: x @ w.T + b)


def test_linear_names_the_shapes_that_do_not_fit():
    with pytest.raises(ValueError, match=r"linear: input of shape \(2, 3\) does not fit weight "
                                         r"\(4, 5\): expected \(\.\.\., 5\)"):
        tr.linear(f64(np.ones((2, 3))), f64(np.ones((4, 5))))
    with pytest.raises(ValueError, match=r"linear: weight must be 2-D \(out, in\), got shape \(5,\)"):
        tr.linear(f64(np.ones((2, 5))), f64(np.ones(5)))


# --------------------------------------------------------------- elementwise

UNARY = {
    "exp": (lambda x: x.exp(), np.exp, {}),
    "log": (lambda x: x.log(), np.log, {"low": 0.1, "high": 5}),
    "tanh": (lambda x: x.tanh(), np.tanh, {}),
    "sigmoid": (lambda x: x.sigmoid(), lambda x: 1 / (1 + np.exp(-x)), {"low": -8, "high": 8}),
    "relu": (lambda x: x.relu(), lambda x: np.maximum(x, 0), {"away_from": (0,)}),
    "sqrt": (lambda x: x.sqrt(), np.sqrt, {"low": 0.1, "high": 4}),
    "abs": (lambda x: x.abs(), np.abs, {"away_from": (0,)}),
    "clip": (lambda x: x.clip(-1, 0.5), lambda x: np.clip(x, -1, 0.5), {"away_from": (-1, 0.5)}),
    "clip_open": (lambda x: x.clip(None, 0.5), lambda x: np.minimum(x, 0.5), {"away_from": (0.5,)}),
}


@pytest.mark.parametrize("name", sorted(UNARY))
@given(data=st.data())
def test_elementwise(name, data):
    fn, reference, bounds = UNARY[name]
    x = data.draw(float_arrays(shapes(), **bounds))
    check(fn, x, reference=reference)


def test_relu_abs_and_clip_gradients_at_their_kinks():
    x = f64([-1.0, 0.0, 2.0], True)
    x.relu().sum().backward()
    np.testing.assert_array_equal(x.grad, [0, 0, 1])
    x = f64([-1.0, 0.0, 2.0], True)
    x.abs().sum().backward()
    np.testing.assert_array_equal(x.grad, [-1, 0, 1])
    x = f64([-2.0, -1.0, 0.0, 1.0, 2.0], True)
    x.clip(-1, 1).sum().backward()
    np.testing.assert_array_equal(x.grad, [0, 1, 1, 1, 0])


SOFTMAX = {
    "softmax": (lambda x, axis: x.softmax(axis),
                lambda x, axis: np.exp(x) / np.exp(x).sum(axis, keepdims=True)),
    "log_softmax": (lambda x, axis: x.log_softmax(axis),
                    lambda x, axis: x - np.log(np.exp(x).sum(axis, keepdims=True))),
}


@pytest.mark.parametrize("name", sorted(SOFTMAX))
@given(data=st.data())
def test_softmax_and_log_softmax_along_any_axis(name, data):
    fn, reference = SOFTMAX[name]
    x = data.draw(float_arrays(shapes(min_dims=1)))
    axis = data.draw(st.integers(-x.ndim, x.ndim - 1))
    check(lambda x: fn(x, axis), x, reference=lambda x: reference(x, axis))


def test_softmax_gradient_is_the_jacobian_product():
    x = np.array([0.2, -1.0, 0.7])
    g = np.array([1.0, -2.0, 0.5])
    t = f64(x, True)
    t.softmax().backward(g)
    p = np.exp(x) / np.exp(x).sum()
    jacobian = np.diag(p) - np.outer(p, p)
    np.testing.assert_allclose(t.grad, jacobian @ g, rtol=1e-14)


# ---------------------------------------------------------------- reductions

@pytest.mark.parametrize("name", ["sum", "mean"])
@given(data=st.data())
def test_sum_and_mean_over_any_axes(name, data):
    x = data.draw(float_arrays(shapes()))
    axis = data.draw(axes_for(x.ndim))
    keepdims = data.draw(st.booleans())
    check(lambda x: getattr(x, name)(axis=axis, keepdims=keepdims), x,
          reference=lambda x: getattr(np, name)(x, axis=axis, keepdims=keepdims))


@given(shape=shapes(), seed=st.integers(0, 2**16), data=st.data())
def test_max_over_any_axes(shape, seed, data):
    x = distinct_values(shape, seed)
    axis = data.draw(axes_for(x.ndim))
    keepdims = data.draw(st.booleans())
    check(lambda x: x.max(axis=axis, keepdims=keepdims), x,
          reference=lambda x: np.max(x, axis=axis, keepdims=keepdims))


def test_max_shares_the_gradient_among_ties():
    x = f64([[2.0, 5.0, 5.0], [1.0, 1.0, 1.0]], True)
    x.max(axis=1).sum().backward()
    np.testing.assert_allclose(x.grad, [[0, 0.5, 0.5], [1 / 3, 1 / 3, 1 / 3]])
    y = f64([3.0, 3.0], True)
    y.max().backward()
    np.testing.assert_array_equal(y.grad, [0.5, 0.5])


def test_an_axis_list_works_like_a_tuple():
    x = f64(np.arange(24.0).reshape(2, 3, 4), True)
    np.testing.assert_array_equal(x.sum(axis=[0, -1]).data, x.data.sum(axis=(0, 2)))


# --------------------------------------------------------------------- shape

@given(x=float_arrays(shapes()), data=st.data())
def test_reshape_and_transpose(x, data):
    permutation = tuple(data.draw(st.permutations(range(x.ndim))))
    check(lambda x: x.reshape(-1), x, reference=lambda x: x.reshape(-1))
    check(lambda x: x.reshape(x.shape[::-1]), x, reference=lambda x: x.reshape(x.shape[::-1]))
    check(lambda x: x.reshape(*x.shape, 1), x, reference=lambda x: x[..., None])
    check(lambda x: x.transpose(*permutation), x, reference=lambda x: x.transpose(permutation))
    check(lambda x: x.T, x, reference=lambda x: x.T)


def test_transpose_accepts_negative_axes_and_a_tuple():
    x = f64(np.arange(6.0).reshape(1, 2, 3), True)
    np.testing.assert_array_equal(x.transpose(-1, 0, 1).data, x.data.transpose(2, 0, 1))
    np.testing.assert_array_equal(x.transpose((1, 2, 0)).data, x.data.transpose(1, 2, 0))


INDICES = {
    "int": 1,
    "negative int": -1,
    "slice": slice(1, None),
    "step slice": (slice(None), slice(None, None, 2)),
    "reversed": slice(None, None, -1),
    "none": (None, 0),
    "ellipsis": (Ellipsis, 1),
    "mixed": (1, None, slice(0, 3), Ellipsis),
    "int array with repeats": np.array([0, 2, 0, 0]),
    "int list": [2, 1],
    "two int arrays": (np.array([0, 2, 2]), np.array([1, 3, 1])),
    "int array and slice": (slice(None), np.array([[3, 0], [3, 3]])),
    "bool mask": np.array([True, False, True]),
    "bool mask 2d": np.arange(12).reshape(3, 4) % 3 == 0,
}


@pytest.mark.parametrize("name", sorted(INDICES))
def test_getitem_variants(name):
    index = INDICES[name]
    x = np.random.default_rng(1).normal(size=(3, 4, 2))
    check(lambda x: x[index], x, reference=lambda x: x[np.asarray(index) if isinstance(index, list)
                                                      else index])


def test_getitem_with_repeated_indices_adds_their_gradients():
    x = f64([1.0, 2.0, 3.0], True)
    x[np.array([0, 2, 0, 0])].backward(np.array([1.0, 10.0, 100.0, 1000.0]))
    np.testing.assert_array_equal(x.grad, [1101.0, 0.0, 10.0])


def test_getitem_with_a_tensor_index():
    x = f64([[1.0, 2.0], [3.0, 4.0]], True)
    picked = x[tr.Tensor([1, 0]), tr.Tensor([0, 1])]
    np.testing.assert_array_equal(picked.data, [3.0, 2.0])


@given(x=float_arrays(shapes(min_dims=1)), data=st.data())
def test_split_into_sizes_and_chunks(x, data):
    axis = data.draw(st.integers(-x.ndim, x.ndim - 1))
    length = x.shape[axis]
    size = data.draw(st.integers(1, length + 1))
    n = data.draw(st.integers(1, length + 1))
    cuts = sorted(data.draw(st.lists(st.integers(0, length), max_size=3)))
    sizes = [b - a for a, b in zip([0] + cuts, cuts + [length])]
    weights = np.random.default_rng(length).normal(size=x.shape)

    def weighted(pieces):  # each piece weighted differently, so a misplaced gradient shows
        return tr.cat([p * 1.0 for p in pieces], axis=axis) * weights

    for pieces_of in (lambda x: x.split(size, axis), lambda x: x.split(sizes, axis),
                      lambda x: x.chunk(n, axis)):
        pieces = pieces_of(tr.Tensor(x))
        np.testing.assert_array_equal(np.concatenate([p.data for p in pieces], axis=axis), x)
        assert_gradients_match(lambda x: weighted(pieces_of(x)), x)
    expected = [min(size, length - start) for start in range(0, length, size)]
    assert [p.shape[axis] for p in tr.Tensor(x).split(size, axis)] == expected


def test_chunk_follows_pytorch_sizes():
    x = tr.Tensor(np.arange(10.0))
    assert [p.shape[0] for p in x.chunk(3)] == [4, 4, 2]
    assert [p.shape[0] for p in x.chunk(4)] == [3, 3, 3, 1]
    assert [p.shape[0] for p in tr.Tensor(np.arange(8.0)).chunk(4)] == [2, 2, 2, 2]


@given(data=st.data())
def test_cat_and_stack(data):
    shape = data.draw(shapes(min_dims=1))
    count = data.draw(st.integers(1, 3))
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    lengths = data.draw(st.lists(st.integers(1, 3), min_size=count, max_size=count))
    cat_shapes = [shape[:axis % len(shape)] + (n,) + shape[axis % len(shape) + 1:] for n in lengths]
    pieces = [data.draw(float_arrays(s)) for s in cat_shapes]
    check(lambda *ts: tr.cat(ts, axis=axis), *pieces,
          reference=lambda *arrays: np.concatenate(arrays, axis=axis))
    same = [data.draw(float_arrays(shape)) for _ in range(count)]
    stack_axis = data.draw(st.integers(-len(shape) - 1, len(shape)))
    check(lambda *ts: tr.stack(ts, axis=stack_axis), *same,
          reference=lambda *arrays: np.stack(arrays, axis=stack_axis))


def test_cat_of_mixed_float_dtypes_gives_each_input_its_own_dtype():
    a = tr.Tensor(np.ones(2, np.float32), requires_grad=True)
    b = tr.Tensor(np.ones(3), requires_grad=True)
    (tr.cat([a, b]) * 2).sum().backward()
    assert (a.grad.dtype, b.grad.dtype) == (np.float32, np.float64)
    assert a.grad.tolist() == [2, 2] and b.grad.tolist() == [2, 2, 2]


# ------------------------------------------------------------ a composition

@given(st.data())
def test_an_rnn_step_composed_from_primitives(data):
    batch, inputs, hidden = data.draw(st.tuples(*[st.integers(1, 3)] * 3))
    x = data.draw(float_arrays((batch, inputs)))
    h = data.draw(float_arrays((batch, hidden)))
    A = data.draw(float_arrays((hidden, inputs), -1, 1))
    C = data.draw(float_arrays((hidden, hidden), -1, 1))
    b = data.draw(float_arrays((hidden,), -1, 1))

    def step(x, h, A, C, b):  # h(t) = tanh(A x(t) + C h(t-1) + b)
        return (x @ A.T + h @ C.T + b).tanh()

    check(step, x, h, A, C, b, reference=lambda x, h, A, C, b: np.tanh(x @ A.T + h @ C.T + b))


# --------------------------------------------------- numerically hard inputs

def test_sigmoid_saturates_exactly_in_float32_without_warning():
    x = tr.Tensor(np.array([-1000.0, -100.0, 0.0, 100.0, 1000.0], np.float32), requires_grad=True)
    y = x.sigmoid()
    assert y.dtype == np.float32
    assert y.data[0] == 0.0 and y.data[-1] == 1.0 and y.data[2] == 0.5
    y.sum().backward()
    assert np.isfinite(x.grad).all() and x.grad[0] == 0.0 and x.grad[-1] == 0.0


def test_sigmoid_is_accurate_in_both_tails():
    x = np.array([-700.0, -30.0, -1e-3, 2.0, 30.0])
    exact = [1 / (1 + np.exp(np.longdouble(-v))) for v in x]
    np.testing.assert_allclose(f64(x).sigmoid().data, np.array(exact, dtype=np.float64), rtol=1e-15)


def test_tanh_of_huge_values_is_plus_minus_one_with_zero_gradient():
    x = tr.Tensor([-1e4, 1e4], requires_grad=True)
    y = x.tanh()
    assert y.data.tolist() == [-1.0, 1.0]
    y.sum().backward()
    assert x.grad.tolist() == [0.0, 0.0]


def test_exp_overflow_in_float32_is_inf_without_warning():
    y = tr.Tensor([100.0, 1.0]).exp()
    assert y.dtype == np.float32 and np.isinf(y.data[0]) and np.isfinite(y.data[1])


def test_log_softmax_of_large_logits_is_exact():
    assert tr.Tensor([1000.0, 1000.0]).log_softmax().data.tolist() == [np.float32(-np.log(2))] * 2
    logits = np.array([1e4, 1e4 - 1.0, 1e4 - 3.0], dtype=np.float32)
    shifted = logits.astype(np.float64) - 1e4
    exact = shifted - np.log(np.exp(shifted).sum())
    got = tr.Tensor(logits).log_softmax().data
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, exact, rtol=1e-6)


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_a_minus_inf_logit_is_masked_out_with_finite_gradients(name):
    x = tr.Tensor(np.array([[1.0, -np.inf, 2.0], [0.5, 0.5, -np.inf]]), requires_grad=True)
    y = getattr(x, name)()
    finite = np.isfinite(x.data)
    ref = np.exp(x.data[0, [0, 2]]) / np.exp(x.data[0, [0, 2]]).sum()
    probabilities = y.data if name == "softmax" else np.exp(y.data)
    np.testing.assert_allclose(probabilities[0, [0, 2]], ref, rtol=1e-14)
    assert np.isfinite(y.data[finite]).all()
    if name == "softmax":
        assert (y.data[~finite] == 0).all()
    else:
        assert (y.data[~finite] == -np.inf).all()
    (y[finite] * np.array([1.0, 2.0, 3.0, 4.0])).sum().backward()
    assert np.isfinite(x.grad).all() and (x.grad[~finite] == 0).all()


def test_power_zero_has_zero_gradient_at_zero():
    x = f64([0.0, 2.0], True)
    (x ** 0).sum().backward()
    assert x.grad.tolist() == [0.0, 0.0]


def test_sqrt_at_zero_has_infinite_slope_unless_the_upstream_gradient_is_zero():
    x = f64([0.0, 4.0], True)
    x.sqrt().sum().backward()
    assert x.grad[0] == np.inf and x.grad[1] == 0.25
    z = f64([0.0, 4.0], True)
    (z.sqrt() * np.array([0.0, 1.0])).sum().backward()
    assert z.grad.tolist() == [0.0, 0.25]


def test_domain_edges_follow_ieee_without_warnings():
    assert tr.Tensor([1.0]).__truediv__(0.0).data[0] == np.inf
    assert tr.Tensor([0.0]).log().data[0] == -np.inf
    assert np.isnan(tr.Tensor([-1.0]).sqrt().data[0])
    assert np.isnan(tr.Tensor([-1.0]).log().data[0])
    x = f64([0.0], True)
    x.log().backward(np.array([1.0]))
    assert x.grad[0] == np.inf
