"""tinygrad_rnn.testing: the strategies draw what they promise, the assertion catches wrong
gradients, and the examples in the module docstring run as written."""
import re
import textwrap

import numpy as np
import pytest
from hypothesis import find, given
from hypothesis import strategies as st

import tinygrad_rnn as tr
from tinygrad_rnn import nn, testing
from tinygrad_rnn.tensor import _apply
from tinygrad_rnn.testing import (CellConfig, assert_gradients_match, broadcastable_shapes,
                                  cell_configs, float_arrays, shapes)


@given(shapes(min_dims=1, max_dims=2, min_side=2, max_side=3))
def test_shapes_respect_their_bounds(shape):
    assert isinstance(shape, tuple) and 1 <= len(shape) <= 2 and all(2 <= n <= 3 for n in shape)


@given(broadcastable_shapes(num_shapes=3))
def test_broadcastable_shapes_broadcast(drawn):
    assert len(drawn) == 3
    np.broadcast_shapes(*drawn)


def test_broadcastable_shapes_include_real_broadcasting():
    stretched = find(broadcastable_shapes(), lambda s: len(s[0]) == len(s[1]) and s[0] != s[1])
    prepended = find(broadcastable_shapes(), lambda s: len(s[0]) != len(s[1]))
    for a, b in (stretched, prepended):
        assert np.broadcast_shapes(a, b) != a or np.broadcast_shapes(a, b) != b


@given(float_arrays((3, 2), -2, 5))
def test_float_arrays_have_shape_dtype_and_bounds(x):
    assert x.shape == (3, 2) and x.dtype == np.float64
    assert np.isfinite(x).all() and (x >= -2).all() and (x <= 5).all()


@given(float_arrays(shapes(), -1, 1, away_from=(0, 0.5), margin=0.2))
def test_float_arrays_keep_away_from_kinks(x):
    assert (np.abs(x) >= 0.2).all() and (np.abs(x - 0.5) >= 0.2).all()
    assert ((x >= -1) & (x <= 1)).all()


@given(float_arrays((4,), 0.1, 0.3, dtype=np.float32))
def test_float32_arrays_stay_inside_bounds_that_float32_cannot_represent(x):
    assert x.dtype == np.float32 and (x >= 0.1).all() and (x <= 0.3).all()


@pytest.mark.parametrize("kwargs, kind, message", [
    ({"low": 1, "high": 1}, ValueError, "need low < high, got low=1.0, high=1.0"),
    ({"low": -1, "high": 1, "away_from": (0,), "margin": 1.5}, ValueError,
     r"no value in \[-1.0, 1.0\] is at least 1.5 away from \(0.0,\)"),
    ({"low": 0, "high": 1, "dtype": np.int64}, TypeError, "dtype must be floating, got int64"),
])
def test_float_arrays_refuse_impossible_requests(kwargs, kind, message):
    with pytest.raises(kind, match=message):
        float_arrays((2,), **kwargs)


def test_float_arrays_accept_a_gap_between_two_kinks():
    assert find(float_arrays((1,), -1, 1, away_from=(-1, 1), margin=0.9), lambda x: True).shape == (1,)


@given(cell_configs(kinds=("rnn", "gru"), max_batch=2, max_steps=3))
def test_cell_configs_respect_kinds_and_sizes(config):
    assert config.kind in ("rnn", "gru") and 1 <= config.batch <= 2 and 1 <= config.steps <= 3
    assert config.input_shape == (config.steps, config.batch, config.input_size)
    assert config.state_shape == (config.batch, config.hidden_size)
    if config.kind == "gru":
        assert config.nonlinearity == "tanh"
        assert config.cell_kwargs == {"bias": config.bias, "reset_after": config.reset_after}
    else:
        assert config.reset_after is True
        assert config.cell_kwargs == {"bias": config.bias, "nonlinearity": config.nonlinearity}


def test_cell_configs_cover_every_option():
    configs = cell_configs()
    assert find(configs, lambda c: c.kind == "rnn" and c.nonlinearity == "relu")
    assert find(configs, lambda c: c.kind == "gru" and not c.reset_after)
    assert find(configs, lambda c: c.kind == "lstm" and not c.bias)


def test_cell_configs_refuse_unknown_kinds():
    with pytest.raises(ValueError, match=r"kinds must be some of \('rnn', 'lstm', 'gru'\), got \('elman',\)"):
        cell_configs(kinds=("elman",))


@pytest.mark.parametrize("kind, cell", [("rnn", nn.RNNCell), ("lstm", nn.LSTMCell), ("gru", nn.GRUCell)])
def test_a_cell_config_builds_its_cell(kind, cell):
    built = CellConfig(kind, batch=2, input_size=3, hidden_size=4, steps=1, bias=False).build()
    assert type(built) is cell
    assert built.weight_ih.shape[1] == 3 and built.weight_hh.shape[1] == 4
    assert [name for name, _ in built.named_parameters()] == ["weight_ih", "weight_hh"]


# ------------------------------------------------------- assert_gradients_match

class HalfGradientTanh:
    name = "half_gradient_tanh"

    @staticmethod
    def forward(a):
        out = np.tanh(a)
        return out, (out,)

    @staticmethod
    def backward(saved, g, needs):
        return (0.5 * g * (1 - saved[0] ** 2),)


def test_assert_gradients_match_passes_right_gradients_of_mixed_inputs():
    assert_gradients_match(lambda z, t: -z.log_softmax()[np.arange(2), t].mean(),
                           np.array([[0.1, 0.4], [2.0, -1.0]]), np.array([1, 0]))
    assert_gradients_match(lambda a, b: a * b, 2.0, [1.0, 3.0])


def test_assert_gradients_match_wraps_inputs_as_float64_leaves():
    seen = []

    def spy(a, b):
        seen.append((a.dtype, a.requires_grad, b.dtype, b.requires_grad))
        return a * b

    assert_gradients_match(spy, np.ones(2, np.float32), tr.Tensor([1.0, 2.0]))
    assert seen[0] == (np.float64, True, np.float64, True)


def test_assert_gradients_match_names_the_function_shapes_and_element():
    def half_tanh(x):
        return _apply(HalfGradientTanh, (x,))

    with pytest.raises(AssertionError, match=r"^half_tanh on shapes \(2, 2\): gradients do not match "
                                             r"finite differences: gradcheck: input 0 of shape "
                                             r"\(2, 2\), index \(0, 0\): analytic"):
        assert_gradients_match(half_tanh, np.full((2, 2), 0.5))


def test_assert_gradients_match_says_when_an_input_was_assigned_through_data():
    cell = nn.RNNCell(2, 3).to("float64")

    def last_state(xs, weight):
        cell.weight_hh.data = weight.data   # the mistake: weight never enters the graph
        return nn.unroll(cell, xs)[0][-1]

    with pytest.raises(AssertionError, match=r"^last_state on shapes \(2, 1, 2\), \(3, 3\): gradients do "
                                             r"not match .* input 1 of shape \(3, 3\): backward gives it no "
                                             r"gradient .*may not reach the output through Tensor operations"):
        assert_gradients_match(last_state, np.ones((2, 1, 2)), np.eye(3))


def test_assert_gradients_match_rejects_non_finite_outputs():
    with pytest.raises(AssertionError, match=r"log on shapes \(2,\): the output is not finite"):
        assert_gradients_match(tr.Tensor.log, np.array([1.0, -1.0]))


@pytest.mark.parametrize("fn, arrays, kind, message", [
    (lambda t: t * 2, [np.array([1, 2])], ValueError, "no floating input to check"),
    (lambda x: x.data, [np.ones(2)], TypeError, "fn must return a Tensor, got ndarray"),
])
def test_assert_gradients_match_misuse(fn, arrays, kind, message):
    with pytest.raises(kind, match=message):
        assert_gradients_match(fn, *arrays)


def test_the_module_docstring_examples_run_as_written():
    blocks = re.findall(r"::\n\n((?:    .*\n|\n)+)", testing.__doc__)
    assert len(blocks) == 2
    namespace = {}
    exec(compile("\n".join(textwrap.dedent(block) for block in blocks), "testing-docstring", "exec"),
         namespace)
    tests = [name for name in namespace if name.startswith("test_")]
    assert tests == ["test_softplus_gradient", "test_my_cell"]
    for name in tests:
        namespace[name]()


def test_the_docstring_cell_example_would_catch_a_wrong_cell():
    def broken_cell(x, h, A, C):
        return _apply(HalfGradientTanh, (x @ A.T + h @ C.T,))

    @given(cell_configs(kinds=("rnn",)), st.data())
    def check_cell(config, data):
        x = data.draw(float_arrays((config.batch, config.input_size), -2, 2))
        h = data.draw(float_arrays(config.state_shape, -1, 1))
        A = data.draw(float_arrays((config.hidden_size, config.input_size), -1, 1))
        C = data.draw(float_arrays((config.hidden_size, config.hidden_size), -1, 1))
        assert_gradients_match(broken_cell, x, h, A, C)

    with pytest.raises(AssertionError, match="broken_cell on shapes"):
        check_cell()
