"""Bad input gets a clear error; extreme input stays finite.

One place that gathers the mistakes a newcomer makes and the inputs at the
edge of floating point, each with the behaviour and the words of the message
the user sees. The sections follow the checklist of cases 1 to 21, then the
other mistakes found along the way.
"""
import inspect
import io
import math
import pickle
import re
import shutil
import sys
import tracemalloc
import warnings
import zipfile
from contextlib import contextmanager

import numpy as np
import pytest
from hypothesis import given, strategies as st

import tinygrad_rnn as tr
from tinygrad_rnn import nn, optim, viz

INF = math.inf


def f32(*shape, fill=0.0):
    return tr.Tensor(np.full(shape, fill, dtype=np.float32))


def leaf(values, dtype=np.float64):
    return tr.Tensor(np.asarray(values, dtype=dtype), requires_grad=True)


@contextmanager
def no_warnings():
    """Any warning inside (numpy's RuntimeWarning above all) fails the test, whatever -W says."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


def next_line():
    """The number of the caller's next line: where the op under test is written."""
    return inspect.currentframe().f_back.f_lineno + 1


def at_this_file(line):
    return re.escape(f"{__file__}:{line}: ")


# ---------------------------------------------------------------- 1-4 backward

def test_1_backward_on_a_non_scalar_needs_an_explicit_gradient():
    y = leaf(np.ones((2, 3))) * 2
    with pytest.raises(RuntimeError, match=r"backward: the output has shape \(2, 3\); backward\(\) "
                                           r"without grad needs a scalar output, otherwise pass grad="):
        y.backward()


def test_2_a_gradient_of_the_wrong_shape_names_both_shapes():
    y = leaf(np.ones((2, 3))) * 2
    with pytest.raises(ValueError, match=r"backward: grad has shape \(3, 2\) but the output has "
                                         r"shape \(2, 3\)"):
        y.backward(np.ones((3, 2)))


def test_3_a_second_backward_needs_retain_graph_and_then_doubles_the_gradients_exactly():
    x = leaf([0.3, -1.2])
    loss = (x.tanh() * x).sum()
    loss.backward()
    once = x.grad.copy()
    with pytest.raises(RuntimeError, match=r"released by an earlier backward; call the first "
                                           r"backward with retain_graph=True"):
        loss.backward()
    np.testing.assert_array_equal(x.grad, once)  # the refused call changed nothing

    x.grad = None
    loss = (x.tanh() * x).sum()
    loss.backward(retain_graph=True)
    loss.backward()
    np.testing.assert_array_equal(x.grad, 2 * once)


@pytest.mark.parametrize("shape", [(), (1,), (1, 1)])
def test_4_backward_on_a_leaf_gives_ones(shape):
    x = tr.Tensor(np.full(shape, 7.0), requires_grad=True)
    x.backward()
    assert x.grad.shape == shape and np.all(x.grad == 1.0)


def test_4_backward_without_any_graph_says_it_does_not_require_grad():
    for t in (tr.Tensor(2.0), tr.Tensor([1.0]) * 3):
        with pytest.raises(RuntimeError, match=r"backward: this tensor \(shape \((1,)?\)\) does not "
                                               r"require grad: neither it nor anything it was "
                                               r"computed from has requires_grad=True"):
            t.backward()


# ------------------------------------------------------- 5-7 tensors and ops

@pytest.mark.parametrize("data, dtype", [([1, 2], "int64"), (np.arange(3, dtype=np.int32), "int32"),
                                         ([True, False], "bool")])
def test_5_requires_grad_on_integer_or_bool_data_names_the_dtype(data, dtype):
    with pytest.raises(TypeError, match=rf"requires_grad=True needs a floating dtype \(float32 or "
                                        rf"float64\), got {dtype}"):
        tr.Tensor(data, requires_grad=True)
    with pytest.raises(TypeError, match=f"got {dtype}"):
        nn.Parameter(np.asarray(data))


def test_5_requires_grad_set_later_on_integer_data_names_the_dtype():
    x = tr.Tensor([1, 2])
    with pytest.raises(TypeError, match="requires_grad: needs a floating dtype .*got int64"):
        x.requires_grad = True
    assert not x.requires_grad


def test_5_requires_grad_can_be_changed_only_on_leaves():
    x = tr.Tensor([1.0, 2.0])
    x.requires_grad = True
    (x * 3).sum().backward()
    np.testing.assert_array_equal(x.grad, [3.0, 3.0])
    with pytest.raises(RuntimeError, match="can only be changed on a leaf, not on the output of 'mul'"):
        (x * 3).requires_grad = False


@pytest.mark.parametrize("name, op", [("add", lambda a, b: a + b), ("sub", lambda a, b: a - b),
                                      ("mul", lambda a, b: a * b), ("div", lambda a, b: a / b),
                                      ("pow", lambda a, b: a ** b)])
def test_6_shapes_that_do_not_broadcast_name_the_op_and_both_shapes(name, op):
    with pytest.raises(ValueError, match=rf"^{name}: the shapes do not broadcast together "
                                         rf"\(input shapes \(4, 3\) and \(4,\)\)$"):
        op(f32(4, 3), f32(4))


@pytest.mark.parametrize("a, b, inner", [((2, 3), (4, 5), "3 and 4"), ((5,), (4,), "5 and 4"),
                                         ((7, 2, 3), (2, 3), "3 and 2")])
def test_6_matmul_inner_size_mismatch_names_both_shapes(a, b, inner):
    with pytest.raises(ValueError, match=re.escape(f"matmul: shapes {a} and {b} do not fit: "
                                                   f"inner sizes {inner} differ")):
        f32(*a) @ f32(*b)


def test_7_distinct_leaves_with_equal_values_get_independent_gradients():
    a, b = leaf([1.0, 2.0]), leaf([1.0, 2.0])
    (a * 3 + b * b * 5).sum().backward()
    np.testing.assert_array_equal(a.grad, [3.0, 3.0])
    np.testing.assert_array_equal(b.grad, [10.0, 20.0])


# -------------------------------------------------------------------- 8 cells

def cell_cases():
    x = f32(2, 3)
    return [
        (nn.RNNCell, (f32(2, 5),), r"RNNCell: input must have shape \(B, 3\) or unbatched \(3,\), "
                                   r"got \(2, 5\)"),
        (nn.LSTMCell, (f32(2, 4),), r"LSTMCell: input must have shape \(B, 3\) .*got \(2, 4\)"),
        (nn.GRUCell, (f32(4),), r"GRUCell: input must have shape .*got \(4,\)"),
        (nn.RNNCell, (f32(5, 2, 3),), r"got \(5, 2, 3\); for a sequence use nn\.unroll or a "
                                      r"sequence layer"),
        (nn.RNNCell, (x, f32(3, 4)), r"RNNCell: state h must have shape \(2, 4\), got \(3, 4\)"),
        (nn.GRUCell, (x, f32(2, 5)), r"GRUCell: state h must have shape \(2, 4\), got \(2, 5\)"),
        (nn.RNNCell, (f32(4, 3), f32(1, 4)), r"state h must have shape \(4, 4\), got \(1, 4\)"),
        (nn.GRUCell, (f32(4, 3), f32(4)), r"state h must have shape \(4, 4\), got \(4,\)"),
        (nn.LSTMCell, (x, (f32(2, 4), f32(2, 5))), r"LSTMCell: h and c must have the same shape, "
                                                   r"got h \(2, 4\) and c \(2, 5\)"),
        (nn.LSTMCell, (f32(4, 3), (f32(1, 4), f32(1, 4))), r"LSTMCell: state h must have shape "
                                                           r"\(4, 4\), got \(1, 4\)"),
        (nn.LSTMCell, (x, f32(2, 4)), r"LSTMCell: state must be a pair \(h, c\), got a Tensor"),
        (nn.GRUCell, (x, (f32(2, 4),)), r"GRUCell: state must be one Tensor h, got a tuple of 1"),
    ]


@pytest.mark.parametrize("case", range(len(cell_cases())))
def test_8_cells_name_expected_and_got_and_never_broadcast_a_state(case):
    cell_type, args, message = cell_cases()[case]
    cell = cell_type(3, 4)
    with pytest.raises(ValueError, match=message):
        cell(*args)


def test_8_cells_refuse_an_input_of_another_dtype_instead_of_casting_it():
    with pytest.raises(TypeError, match=r"LSTMCell: input has dtype float64 but the parameters are "
                                        r"float32; convert the input or the cell \(\.to\(dtype\)\)"):
        nn.LSTMCell(3, 4)(np.zeros((2, 3)))
    with pytest.raises(TypeError, match=r"GRUCell: state h has dtype float64 but the parameters "
                                        r"are float32"):
        nn.GRUCell(3, 4)(f32(2, 3), tr.Tensor(np.zeros((2, 4))))


# ---------------------------------------------------------- 9 sequence layers

@pytest.mark.parametrize("make, x, message", [
    (lambda: nn.RNN(3, 4), f32(0, 2, 3), r"RNN: the sequence is empty \(T = 0, input shape \(0, 2, 3\)\)"),
    (lambda: nn.LSTM(3, 4, batch_first=True), f32(2, 0, 3),
     r"LSTM: the sequence is empty \(T = 0, input shape \(2, 0, 3\)\)"),
    (lambda: nn.GRU(3, 4), f32(3), r"GRU: input must be 3-D \(T, B, I\), or 2-D \(T, I\) for one "
                                   r"unbatched sequence; got shape \(3,\)"),
    (lambda: nn.RNN(3, 4, batch_first=True), f32(1, 5, 2, 3), r"RNN: input must be 3-D \(B, T, I\)"),
    # (T, B) without the feature axis: read as one unbatched sequence, and the sizes disagree
    (lambda: nn.RNN(1, 4), f32(5, 2), r"RNN: input of shape \(5, 2\), read as \(T, I\), one "
                                      r"unbatched sequence \(a batch needs 3-D\), has 2 features "
                                      r"but input_size is 1"),
    # (B, T, I) given to a batch_first=False layer whose input_size is T
    (lambda: nn.LSTM(5, 4), f32(2, 5, 3), r"LSTM: input of shape \(2, 5, 3\), read as \(T, B, I\), "
                                          r"has 3 features but input_size is 5"),
])
def test_9_sequence_layers_refuse_empty_and_misshaped_input(make, x, message):
    with pytest.raises(ValueError, match=message):
        make()(x)


@pytest.mark.parametrize("make, x, state, message", [
    (lambda: nn.RNN(3, 4), f32(5, 2, 3), f32(1, 1, 4), r"RNN: h0 must have shape \(1, 2, 4\), "
                                                       r"got \(1, 1, 4\)"),
    (lambda: nn.GRU(3, 4, num_layers=2), f32(5, 2, 3), f32(1, 2, 4),
     r"GRU: h0 must have shape \(2, 2, 4\), got \(1, 2, 4\)"),
    (lambda: nn.RNN(3, 4), f32(5, 3), f32(1, 2, 4), r"RNN: h0 \(unbatched input\) must have shape "
                                                    r"\(1, 4\), got \(1, 2, 4\)"),
    (lambda: nn.LSTM(3, 4), f32(5, 2, 3), f32(1, 2, 4), r"LSTM: the initial state must be a pair "
                                                        r"\(h0, c0\), got a Tensor"),
    (lambda: nn.LSTM(3, 4), f32(5, 2, 3), (f32(1, 2, 4), f32(1, 2, 5)),
     r"LSTM: c0 must have shape \(1, 2, 4\), got \(1, 2, 5\)"),
])
def test_9_sequence_layers_refuse_an_initial_state_of_the_wrong_shape(make, x, state, message):
    with pytest.raises(ValueError, match=message):
        make()(x, state)


@pytest.mark.parametrize("cell, xs, kind, message", [
    (5, [f32(1, 3)], TypeError, r"unroll: cell must be callable as cell\(x, state\), e\.g\. "
                                r"nn\.LSTMCell\(\.\.\.\), got int"),
    (None, [f32(1, 3)], TypeError, r"unroll: cell must be callable .*got NoneType"),
    ("cell", [], ValueError, r"unroll: the sequence is empty \(T = 0\); there is nothing to run"),
    ("cell", f32(0, 1, 3), ValueError, r"unroll: the sequence is empty"),
    ("cell", np.zeros((2, 1, 3), np.float32), TypeError,
     r"unroll: xs must be a \(T, B, I\) Tensor or a list of \(B, I\) Tensors, got ndarray"),
    ("cell", f32(3), ValueError, r"unroll: xs must be .*got a Tensor of shape \(3,\)"),
])
def test_9_unroll_refuses_a_non_callable_cell_and_an_empty_or_wrong_sequence(cell, xs, kind, message):
    cell = nn.RNNCell(3, 2) if cell == "cell" else cell
    with pytest.raises(kind, match=message):
        nn.unroll(cell, xs)


# ------------------------------------------------------- 10 an unused output

def sequence_input():
    return tr.Tensor(np.random.default_rng(0).standard_normal((4, 2, 3)))


def test_10_a_loss_of_only_c_or_only_h_backpropagates_with_the_unused_path_as_zeros():
    tr.manual_seed(0)
    lstm = nn.LSTM(3, 4).to("float64")
    x = sequence_input()
    for pick in (lambda h, c: c, lambda h, c: h):
        lstm.zero_grad()
        _, (h_n, c_n) = lstm(x)
        pick(h_n, c_n).sum().backward()
        alone = {name: p.grad.copy() for name, p in lstm.named_parameters()}
        lstm.zero_grad()
        _, (h_n, c_n) = lstm(x)
        (pick(h_n, c_n).sum() + 0 * (h_n.sum() + c_n.sum())).backward()
        for name, p in lstm.named_parameters():
            np.testing.assert_array_equal(alone[name], p.grad)


def test_10_one_lstm_step_scored_on_c_gives_the_output_gate_exactly_zero_gradient():
    tr.manual_seed(1)
    cell = nn.LSTMCell(3, 4).to("float64")
    h0, c0 = leaf(np.full((2, 4), 0.5)), leaf(np.full((2, 4), -0.25))
    _, c1 = cell(sequence_input()[0], (h0, c0))
    c1.sum().backward()
    output_gate = slice(12, 16)  # row blocks i, f, g, o
    assert np.all(cell.weight_ih.grad[output_gate] == 0) and np.all(cell.bias_hh.grad[output_gate] == 0)
    assert np.all(cell.weight_ih.grad[:12] != 0)
    assert np.all(np.isfinite(h0.grad)) and np.all(c0.grad != 0)


def test_10_a_gru_scored_on_its_last_output_instead_of_h_n_gets_the_same_gradient():
    tr.manual_seed(2)
    gru = nn.GRU(3, 4).to("float64")
    x = sequence_input()
    output, _ = gru(x)
    output[-1].sum().backward()
    by_output = {name: p.grad.copy() for name, p in gru.named_parameters()}
    gru.zero_grad()
    _, h_n = gru(x)
    h_n.sum().backward()
    for name, p in gru.named_parameters():
        np.testing.assert_allclose(by_output[name], p.grad, rtol=1e-12, atol=0)


# ---------------------------------------------------- 11-13 the edge of floats

@pytest.mark.parametrize("op, x, value, grad", [
    ("sigmoid", [-1000.0, 1000.0], [0.0, 1.0], [0.0, 0.0]),
    ("tanh", [-1e4, 1e4], [-1.0, 1.0], [0.0, 0.0]),
    ("exp", [-1e4, 88.0], [0.0, np.exp(np.float32(88.0))], [0.0, np.exp(np.float32(88.0))]),
    ("exp", [89.0, 1e4], [INF, INF], [INF, INF]),  # overflow: inf, the IEEE answer, silently
    ("relu", [-3e38, 3e38], [0.0, 3e38], [0.0, 1.0]),
])
def test_11_extreme_float32_inputs_give_exact_limits_without_warnings(op, x, value, grad):
    x = leaf(x, np.float32)
    with no_warnings():
        y = getattr(x, op)()
        y.sum().backward()
    assert y.dtype == np.float32 and x.grad.dtype == np.float32
    np.testing.assert_array_equal(y.data, np.float32(value))
    np.testing.assert_array_equal(x.grad, np.float32(grad))


@pytest.mark.parametrize("cell_type", [nn.RNNCell, nn.LSTMCell, nn.GRUCell])
def test_11_cells_saturate_on_huge_inputs_and_stay_finite(cell_type):
    tr.manual_seed(3)
    cell = cell_type(3, 4)
    x = leaf([[1e4, -1e4, 1e4], [-1e4, 1e4, 3e4]], np.float32)
    with no_warnings():
        out, _ = nn.unroll(cell, [x, x, x])
        out[-1].sum().backward()
    assert np.all(np.isfinite(out[-1].data)) and np.all(np.abs(out[-1].data) <= 1)
    for name, p in cell.named_parameters():
        assert np.all(np.isfinite(p.grad)), name
    assert np.all(np.isfinite(x.grad))


def test_12_cross_entropy_with_logits_near_1e4_is_finite_and_exact():
    logits = leaf([[1e4, -1e4, 0.0], [0.0, -200.0, 0.0]], np.float32)
    with no_warnings():
        loss = nn.cross_entropy(logits, np.array([1, 1]), reduction="sum")
        loss.backward()
    # -log softmax: 2e4 for the first row; e^-200 underflows float32, yet its log is -200 - ln 2
    assert loss.item() == pytest.approx(2e4 + 200 + math.log(2), rel=1e-6)
    np.testing.assert_allclose(logits.grad, [[1, -1, 0], [0.5, -1, 0.5]], atol=1e-6)


def test_12_log_softmax_keeps_finite_entries_finite_next_to_a_minus_inf_logit():
    logits = leaf([[-INF, 1.0, 2.0]], np.float32)
    with no_warnings():
        log_probs = logits.log_softmax()
        loss = nn.cross_entropy(logits, np.array([2]))
        loss.backward()
    assert log_probs.data[0, 0] == -INF and np.all(np.isfinite(log_probs.data[0, 1:]))
    expected = -math.log(math.e ** 2 / (math.e + math.e ** 2))
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    assert logits.grad[0, 0] == 0 and np.all(np.isfinite(logits.grad))


@pytest.mark.parametrize("target, bad", [([0, 3], 3), ([-1, 0], -1), ([-100, 0], -100)])
def test_12_out_of_range_targets_name_the_bad_value(target, bad):
    with pytest.raises(IndexError, match=rf"cross_entropy: target class {bad} is out of range for "
                                         rf"3 classes \(valid: 0 to 2\)"):
        nn.cross_entropy(f32(2, 3), np.array(target))


def test_13_x_to_the_power_0_at_0_has_gradient_0_not_nan():
    x = leaf([0.0, 0.0, 2.0])
    with no_warnings():
        y = x ** 0 + x ** tr.Tensor(np.zeros(3))
        y.sum().backward()
    np.testing.assert_array_equal(y.data, [2.0, 2.0, 2.0])
    np.testing.assert_array_equal(x.grad, [0.0, 0.0, 0.0])


def test_13_sqrt_at_0_follows_its_docstring():
    """Sqrt: the derivative at 0 is +inf (the one-sided limit), but 0 where the incoming gradient is 0."""
    x = leaf([0.0, 4.0])
    with no_warnings():
        x.sqrt().sum().backward()
    np.testing.assert_array_equal(x.grad, [INF, 0.25])
    x.grad = None
    with no_warnings():
        (x.sqrt() * tr.Tensor([0.0, 1.0])).sum().backward()
    np.testing.assert_array_equal(x.grad, [0.0, 0.25])
    x.grad = None
    (x + 1e-12).sqrt().sum().backward()
    assert np.all(np.isfinite(x.grad))


@pytest.mark.parametrize("compute, expected", [
    (lambda: tr.Tensor([0.0, 2.0]) ** -1, [INF, 0.5]),
    (lambda: tr.Tensor([0.0, -1.0]).log(), [-INF, np.nan]),
    (lambda: tr.Tensor([1.0, -1.0, 0.0]) / 0, [INF, -INF, np.nan]),
    (lambda: f32(0).mean(), np.nan),
], ids=["pow-0**-1", "log-0-and-negative", "div-by-0", "mean-empty"])
def test_11_a_formula_at_its_edge_gives_ieee_values_without_numpy_warnings(compute, expected):
    with no_warnings():
        out = compute()
    np.testing.assert_array_equal(out.data, np.float32(expected))


@pytest.mark.parametrize("compute, expected", [
    (lambda: f32(1, fill=INF) * f32(1), [np.nan]),
    (lambda: f32(1, fill=INF) + f32(1, fill=-INF), [np.nan]),
    (lambda: f32(1, fill=INF) - f32(1, fill=INF), [np.nan]),
    (lambda: f32(1, fill=3e38) * 10, [INF]),
    (lambda: f32(2, fill=3e38).sum(), INF),
    (lambda: tr.Tensor([[INF, 1.0]]) @ tr.Tensor([[0.0], [1.0]]), [[np.nan]]),
    (lambda: tr.Tensor([INF, 1.0]).softmax(), [np.nan, np.nan]),
    (lambda: tr.Tensor([-INF, -INF]).log_softmax(), [np.nan, np.nan]),
], ids=["inf*0", "inf+-inf", "inf-inf", "mul-overflow", "sum-overflow", "matmul-inf*0",
        "softmax-inf", "log_softmax-all-minus-inf"])
def test_11_arithmetic_fed_inf_or_overflowing_gives_ieee_values_and_numpys_warning(compute, expected):
    # Documented in tensor.py: silencing these would cost every op an np.errstate.
    with pytest.warns(RuntimeWarning):
        out = compute()
    np.testing.assert_array_equal(out.data, np.float32(expected))


def test_11_backward_through_a_saturated_sigmoid_and_log_warns_not():
    x = leaf([-1000.0], np.float32)
    with no_warnings():
        x.sigmoid().log().sum().backward()
    assert np.isnan(x.grad).all()  # the IEEE answer (PyTorch's too): inf * 0


# -------------------------------------------------------------- 14 anomalies

def test_14_detect_anomaly_names_the_op_and_this_line_in_forward():
    x = tr.Tensor([1.0, -1.0])
    with tr.detect_anomaly(), pytest.raises(FloatingPointError) as error:
        line = next_line()
        x.log()
    message = str(error.value)
    assert message.startswith("detect_anomaly: 'log' produced nan in forward, at ")
    assert re.search(at_this_file(line) + re.escape("x.log()") + "$", message)


def test_14_detect_anomaly_names_the_op_and_the_line_that_created_it_in_backward():
    x = leaf([0.0, 4.0])
    with tr.detect_anomaly():
        line = next_line()
        y = x.sqrt()
        loss = (y * 3).sum()
        with pytest.raises(FloatingPointError) as error:
            loss.backward()
    message = str(error.value)
    assert message.startswith("detect_anomaly: backward of 'sqrt' produced inf in the gradient of "
                              "its input 0 (shape (2,))")
    assert re.search(at_this_file(line) + re.escape("y = x.sqrt()") + "$", message)
    assert x.grad is None


def test_14_detect_anomaly_inside_a_layer_points_at_the_users_call():
    lstm = nn.LSTM(2, 3)
    x = f32(4, 1, 2, fill=1.0)
    x.data[2, 0, 1] = np.inf
    with tr.detect_anomaly(), pytest.raises(FloatingPointError) as error:
        line = next_line()
        lstm(x)
    assert re.search(r"the input of LSTM of shape \(4, 1, 2\) holds inf, first at index \(2, 0, 1\): it came "
                     r"in with the data, at t=2, at " + at_this_file(line) + "lstm\\(x\\)$",
                     str(error.value))


# ---------------------------------------------------------- 15 clip_grad_norm_

@pytest.mark.parametrize("bad", [np.nan, INF, -INF])
def test_15_a_non_finite_gradient_is_reported_and_nothing_is_written(bad):
    p, q = nn.Parameter(np.ones(3, np.float32)), nn.Parameter(np.ones(2, np.float32))
    p.grad = np.array([bad, 3.0, 4.0], np.float32)
    q.grad = np.array([30.0, 40.0], np.float32)
    before = [p.grad.copy(), q.grad.copy()]
    with no_warnings():
        total = nn.clip_grad_norm_([p, q], max_norm=1.0)
    assert (math.isnan(total) if np.isnan(bad) else total == INF)
    with pytest.raises(RuntimeError, match=r"clip_grad_norm_: the total gradient norm \(order 2\.0\) "
                                           r"is (nan|inf), so the gradients cannot be clipped"):
        nn.clip_grad_norm_([p, q], max_norm=1.0, error_if_nonfinite=True)
    for grad, old in zip((p.grad, q.grad), before):
        np.testing.assert_array_equal(grad, old)
    assert np.all(p.data == 1) and np.all(q.data == 1)


@pytest.mark.parametrize("max_norm", [0.0, 1.0])
def test_15_all_zero_gradients_need_no_division_by_zero(max_norm):
    p = nn.Parameter(np.ones((2, 2), np.float32))
    p.grad = np.zeros((2, 2), np.float32)
    with no_warnings():
        assert nn.clip_grad_norm_([p], max_norm) == 0.0
    assert np.all(p.grad == 0) and not np.signbit(p.grad).any()


def test_15_float32_gradients_near_the_top_of_the_range_do_not_overflow_the_norm():
    p = nn.Parameter(np.ones(2, np.float32))
    p.grad = np.array([3e38, 3e38], np.float32)
    with no_warnings():
        total = nn.clip_grad_norm_([p], max_norm=1.0)
    assert total == pytest.approx(3e38 * math.sqrt(2), rel=1e-6)
    np.testing.assert_allclose(p.grad, [math.sqrt(0.5)] * 2, rtol=1e-5)


@pytest.mark.parametrize("call, message", [
    (lambda p: nn.clip_grad_norm_(p, max_norm=math.nan), r"max_norm must be a number >= 0, got nan"),
    (lambda p: nn.clip_grad_norm_(p, max_norm=1.0, norm_type="fro"),
     r"clip_grad_norm_: norm_type must be > 0 \(a number, or inf\), got 'fro'"),
    (lambda p: nn.clip_grad_value_(p, -1), r"clip_grad_value_: clip_value must be a number >= 0, got -1"),
])
def test_15_bad_clipping_limits(call, message):
    p = nn.Parameter(np.ones(2, np.float32))
    p.grad = np.ones(2, np.float32)
    with pytest.raises(ValueError, match=message):
        call([p])


# --------------------------------------------------------------- 16 optimizers

def one_parameter():
    return nn.Parameter(np.ones(3, np.float32))


@pytest.mark.parametrize("make, message", [
    (lambda p: optim.SGD([p], lr=-0.1), r"SGD: lr must be finite and >= 0, got -0\.1"),
    (lambda p: optim.Adam([p], lr=math.nan), r"Adam: lr must be finite and >= 0, got nan"),
    (lambda p: optim.RMSprop([p], lr=INF), r"RMSprop: lr must be finite and >= 0, got inf"),
    (lambda p: optim.SGD([p], lr="0.1"), r"SGD: lr must be a real number, got '0\.1'"),
    (lambda p: optim.Adam([]), r"Adam: got an empty list of parameters, so there is nothing to optimize"),
    (lambda p: optim.SGD([p, p], lr=0.1), r"SGD: params\[1\] \(shape \(3,\)\) is the same parameter "
                                          r"as params\[0\]; list each parameter once"),
    (lambda p: optim.Adam([p], eps=0), r"Adam: eps must be > 0 \(with eps=0 a zero gradient divides "
                                       r"0 by 0"),
    (lambda p: optim.RMSprop([p], eps=0.0), r"RMSprop: eps must be > 0"),
    (lambda p: optim.Adam([p], betas=(0.9, 1.0)), r"Adam: betas\[1\] must be in \[0, 1\.0\), got 1\.0"),
])
def test_16_bad_hyper_parameters_and_parameter_lists_raise(make, message):
    with pytest.raises(ValueError, match=message):
        make(one_parameter())


@pytest.mark.parametrize("make", [lambda p: optim.Adam([p], lr=0.1), lambda p: optim.RMSprop([p]),
                                  lambda p: optim.SGD([p], lr=0.1, momentum=0.9)])
def test_16_zero_gradients_leave_the_parameters_finite_and_unchanged(make):
    p = one_parameter()
    opt = make(p)
    for _ in range(3):
        p.grad = np.zeros(3, np.float32)
        with no_warnings():
            opt.step()
    np.testing.assert_array_equal(p.data, np.ones(3, np.float32))


# -------------------------------------------------------------- 17 gradcheck

def test_17_gradcheck_on_float32_warns_and_points_at_float64():
    x = tr.Tensor(np.zeros(3, np.float32), requires_grad=True)
    advice = r"gradcheck: input 0 is float32; .* reliable in float64 \(Tensor\(\.\.\., dtype='float64'\)\)"
    with pytest.warns(UserWarning, match=advice) as record:
        assert tr.gradcheck(lambda x: (x * 3).sum(), [x])
    assert record[0].filename == __file__  # the warning points at the caller's line


def test_17_a_wrong_gradient_names_input_index_analytic_and_numeric():
    x = tr.Tensor([1.5, 2.0], dtype="float64", requires_grad=True, name="x")
    w = tr.Tensor([0.5], dtype="float64", requires_grad=True, name="w")
    # x * x.detach() has the value x^2 but the gradient x instead of 2x
    with pytest.raises(tr.GradcheckError) as error:
        tr.gradcheck(lambda w, x: (w * x * x.detach()).sum(), [w, x])
    found = re.fullmatch(r"gradcheck: input 1 \(x\) of shape \(2,\), index \(0,\): analytic (\S+) vs "
                         r"numeric (\S+) \(atol=1e-05, rtol=0\.001\)", str(error.value))
    assert found, str(error.value)
    analytic, numeric = float(found[1]), float(found[2])
    assert numeric == pytest.approx(2 * analytic, rel=1e-6)


# ------------------------------------------------------------- 18 checkpoints

class CreatesAFileWhenUnpickled:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def write(path, data):
    with open(path, "wb") as file:
        file.write(data)
    return path


def npy_bytes(header_shape, data=b"", descr="<f8"):
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": descr, "fortran_order": False,
                                                 "shape": header_shape})
    return buffer.getvalue() + data


def npz_with(path, members):
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def test_18_object_arrays_are_refused_on_save_and_on_load_and_never_unpickled(tmp_path):
    trap = tmp_path / "unpickled"
    with pytest.raises(tr.CheckpointError, match=r"save: 'w' has dtype object; only numeric and bool "
                                                 r"arrays can be saved"):
        tr.save({"w": np.array([1, None], dtype=object)}, tmp_path / "a.npz")
    np.savez(tmp_path / "object.npz", w=np.array([CreatesAFileWhenUnpickled(str(trap))], dtype=object))
    with pytest.raises(tr.CheckpointError, match=r"'w\.npy' holds dtype object; only numeric arrays "
                                                 r"are loaded"):
        tr.load(tmp_path / "object.npz")
    assert not trap.exists()


def test_18_pickle_files_and_pickles_inside_archives_are_refused_unopened(tmp_path):
    trap = tmp_path / "unpickled"
    payload = pickle.dumps({"w": CreatesAFileWhenUnpickled(str(trap))}, protocol=2)
    with pytest.raises(tr.CheckpointError, match=r"is a pickle file .*never loaded, because "
                                                 r"unpickling can run arbitrary code"):
        tr.load(write(tmp_path / "model.pt", payload))
    torch_like = npz_with(tmp_path / "torch.pt", {"archive/data.pkl": payload})
    with pytest.raises(tr.CheckpointError, match=r"is a PyTorch checkpoint .*never loaded, because "
                                                 r"unpickling can run arbitrary code\. Convert it once"):
        tr.load(torch_like)
    assert not trap.exists()


def test_18_truncated_and_corrupt_archives_are_refused(tmp_path):
    tr.save({"w": np.arange(20.0)}, tmp_path / "ok.npz")
    data = (tmp_path / "ok.npz").read_bytes()
    for cut in (0, 3, 30, len(data) // 2, len(data) - 1):
        with pytest.raises(tr.CheckpointError, match=r"is empty|is corrupt or truncated|is neither an "
                                                     r"\.npz archive nor a \.safetensors file"):
            tr.load(write(tmp_path / "cut.npz", data[:cut]))
    corrupt = bytearray(data)
    corrupt[data.index(b"\x93NUMPY") + 140] ^= 0x01  # one bit of the array's data
    with pytest.raises(tr.CheckpointError, match=r"corrupt or truncated \(BadZipFile: Bad CRC-32"):
        tr.load(write(tmp_path / "flip.npz", bytes(corrupt)))


def test_18_an_absurd_declared_shape_is_refused_before_any_allocation(tmp_path):
    path = npz_with(tmp_path / "huge.npz", {"w.npy": npy_bytes((10 ** 12,), b"\0" * 64)})
    tracemalloc.start()
    try:
        with pytest.raises(tr.CheckpointError, match=r"'w\.npy' declares shape \(1000000000000,\) of "
                                                     r"float64 \(8000000000000 bytes\) but holds 64 bytes"):
            tr.load(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000


def test_18_a_missing_file_and_other_files_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.npz"):
        tr.load(tmp_path / "nowhere.npz")
    np.save(tmp_path / "single.npy", np.ones(3))
    with pytest.raises(tr.CheckpointError, match=r"is neither an \.npz archive nor a \.safetensors file"):
        tr.load(tmp_path / "single.npy")
    with pytest.raises(TypeError, match=r"save: expected a dict of name -> array, got Linear; for a "
                                        r"model pass model\.state_dict\(\)"):
        tr.save(nn.Linear(2, 2), tmp_path / "model.npz")


class Model(nn.Module):
    def __init__(self):
        self.readin = nn.Linear(2, 3)
        self.cell = nn.GRUCell(3, 2)


def snapshot(model):
    return {name: p.data.tobytes() for name, p in model.named_parameters()}


@pytest.mark.parametrize("change, message", [
    (lambda s: s.pop("cell.bias_hh"), r"missing key 'cell\.bias_hh' \(expected shape \(6,\)\)"),
    (lambda s: s.update(extra=np.zeros(2)), r"unexpected key 'extra'"),
    (lambda s: s.update({"cell.weight_hh": np.zeros((2, 6))}),
     r"key 'cell\.weight_hh': expected shape \(6, 2\), found \(2, 6\)"),
    (lambda s: s.update({"cell.bias_ih": np.full(6, 1e300)}),
     r"key 'cell\.bias_ih': the value 1e\+300 does not fit the parameter's dtype float32"),
    (lambda s: s.update({"cell.bias_ih": np.array([None] * 6)}),
     r"key 'cell\.bias_ih': expected real numbers, found dtype object"),
])
def test_18_a_failed_load_state_dict_changes_no_parameter(change, message):
    model = Model()
    before = snapshot(model)
    state = {name: np.full(p.shape, 0.5) for name, p in model.named_parameters()}
    change(state)
    with no_warnings(), pytest.raises(ValueError, match=rf"load_state_dict into Model: .*{message}.*"
                                                         r"\(nothing was loaded\)"):
        model.load_state_dict(state)
    assert snapshot(model) == before


def test_18_a_torch_state_dict_loads_and_tensors_that_require_grad_are_named():
    torch = pytest.importorskip("torch")
    reference = torch.nn.Linear(2, 3)
    layer = nn.Linear(2, 3)
    layer.load_state_dict(reference.state_dict())
    np.testing.assert_array_equal(layer.weight.data, reference.weight.detach().numpy())
    before = snapshot(layer)
    with pytest.raises(ValueError, match=r"key 'weight': cannot read it as an array \(.*detach"):
        layer.load_state_dict(dict(reference.named_parameters()))
    assert snapshot(layer) == before


# ------------------------------------------------ 19 fuzzing the checkpoint reader

SAVED = {"w": np.arange(6, dtype=np.float64).reshape(2, 3),
         "fortran": np.asfortranarray(np.arange(6, dtype=np.float32).reshape(2, 3)),
         "ints": np.array([1, -2], np.int16), "mask": np.array([True, False]),
         "scalar": np.array(3.5), "empty": np.zeros((0, 2))}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fuzz")
    tr.save(SAVED, folder / "saved.npz")
    return folder, (folder / "saved.npz").read_bytes()


def same_arrays(loaded, saved):
    return list(loaded) == list(saved) and all(
        loaded[k].dtype == saved[k].dtype and loaded[k].shape == saved[k].shape
        and loaded[k].tobytes(order="A") == saved[k].tobytes(order="A") for k in saved)


edits = st.one_of(
    st.tuples(st.just("xor"), st.integers(0, 10 ** 6), st.integers(1, 255)),
    st.tuples(st.just("insert"), st.integers(0, 10 ** 6), st.binary(min_size=1, max_size=8)),
    st.tuples(st.just("delete"), st.integers(0, 10 ** 6), st.integers(1, 8)),
)


@given(changes=st.lists(edits, max_size=4), cut=st.one_of(st.none(), st.integers(0, 10 ** 6)))
def test_19_every_mutated_checkpoint_loads_equal_or_raises_checkpoint_error(checkpoint, changes, cut):
    folder, saved = checkpoint
    data = bytearray(saved)
    for kind, position, arg in changes:
        position %= len(data) + 1
        if kind == "xor" and position < len(data):
            data[position] ^= arg
        elif kind == "insert":
            data[position:position] = arg
        elif kind == "delete":
            del data[position:position + arg]
    if cut is not None:
        data = data[:cut % (len(data) + 1)]
    try:
        loaded = tr.load(write(folder / "mutated.npz", bytes(data)))
    except tr.CheckpointError:
        return
    assert same_arrays(loaded, SAVED)


def test_19_the_unmutated_checkpoint_loads_equal(checkpoint):
    folder, saved = checkpoint
    loaded = tr.load(write(folder / "copy.npz", saved))
    assert same_arrays(loaded, SAVED) and loaded["fortran"].flags.f_contiguous


# ------------------------------------------------------------- 20 graph names

HOSTILE = 'a<b> "q" \\N\\'


def hostile_graph():
    with tr.scope(HOSTILE):
        x = tr.Tensor([1.0, 2.0], requires_grad=True, name=HOSTILE)
        return (x * 2).tanh().sum()


def test_20_names_with_markup_characters_are_escaped_in_dot():
    source = viz.to_dot(hostile_graph())
    escaped = 'a<b> \\"q\\" \\\\N\\\\'
    assert f'label="{escaped}' in source  # the leaf's label starts with its name
    assert f'label="{escaped}"' in source  # the scope's cluster
    assert all(quotes_closed(line) for line in source.splitlines())


def quotes_closed(line):
    """Whether every DOT double-quoted string on ``line`` ends on it (a backslash escapes one character)."""
    inside, i = False, 0
    while i < len(line):
        if inside and line[i] == "\\":
            i += 2
            continue
        inside ^= line[i] == '"'
        i += 1
    return not inside


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")
def test_20_names_with_markup_characters_render_to_svg(tmp_path):
    path = viz.render(hostile_graph(), path=tmp_path / "hostile.svg")
    with open(path, encoding="utf-8") as file:
        svg = file.read()
    assert svg.count("a&lt;b&gt; &quot;q&quot; \\N\\") >= 2  # the leaf and its scope, as written


# -------------------------------------------------------------------- 21 depth

@pytest.fixture
def default_recursion_limit():
    previous = sys.getrecursionlimit()
    sys.setrecursionlimit(1000)
    yield
    sys.setrecursionlimit(previous)


def numpy_rnn_bptt(x, weight_ih, weight_hh, bias_ih, bias_hh):
    """Gradients of sum(h_T) for h_t = tanh(A x_t + b_ih + C h_{t-1} + b_hh), by hand."""
    hs = [np.zeros((x.shape[1], weight_hh.shape[0]))]
    for x_t in x:
        hs.append(np.tanh(x_t @ weight_ih.T + bias_ih + hs[-1] @ weight_hh.T + bias_hh))
    grads = [np.zeros_like(weight_ih), np.zeros_like(weight_hh), np.zeros_like(bias_ih)]
    dh = np.ones_like(hs[-1])
    for t in range(len(x) - 1, -1, -1):
        da = dh * (1 - hs[t + 1] ** 2)
        grads[0] += da.T @ x[t]
        grads[1] += da.T @ hs[t]
        grads[2] += da.sum(axis=0)
        dh = da @ weight_hh
    return grads


def test_21_a_10000_step_rnn_backpropagates_with_the_default_recursion_limit(default_recursion_limit):
    tr.manual_seed(4)
    rnn = nn.RNN(1, 2).to("float64")
    x = np.random.default_rng(4).standard_normal((10_000, 1, 1))
    _, h_n = rnn(tr.Tensor(x))
    h_n.sum().backward()
    weights = [p.data for p in rnn.parameters()]
    expected = numpy_rnn_bptt(x, *weights)
    for grad, reference in zip([rnn.weight_ih_l0.grad, rnn.weight_hh_l0.grad, rnn.bias_ih_l0.grad],
                               expected):
        np.testing.assert_allclose(grad, reference, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(rnn.bias_hh_l0.grad, expected[2], rtol=1e-10, atol=1e-12)


# ------------------------------------------------- other mistakes a newcomer makes

@pytest.mark.parametrize("call, kind, message", [
    (lambda: nn.Linear(3, 2)(f32(4, 5)), ValueError,
     r"Linear: expected input of shape \(\.\.\., 3\) \(in_features=3\), got shape \(4, 5\)"),
    (lambda: nn.Linear(2, 2)([[1, 2]]), TypeError, r"Linear: input must be floating point, got dtype int64"),
    (lambda: nn.cross_entropy(f32(2, 3), np.array([0.0, 1.0])), TypeError,
     r"cross_entropy: target must hold integer class indices, got dtype float64"),
    (lambda: nn.cross_entropy(f32(5, 2, 3), np.zeros((5, 2), int)), ValueError,
     r"cross_entropy: expected logits \(N, C\) with target \(N,\), or logits \(C,\) with a 0-d target; "
     r"got logits \(5, 2, 3\) and target \(5, 2\)"),
    (lambda: nn.Embedding(10, 4)(np.array([[2, 10]])), IndexError,
     r"Embedding: index 10 is out of range for num_embeddings=10 \(valid: 0 to 9\)"),
    (lambda: nn.Embedding(10, 4)(tr.Tensor([1.0, 2.0])), TypeError,
     r"Embedding: indices must be integers, got dtype float32"),
    (lambda: nn.mse_loss(f32(4, 1), f32(4)), ValueError,
     r"mse_loss: pred and target must have the same shape, got \(4, 1\) and \(4,\)"),
    (lambda: nn.mse_loss(f32(4), f32(0)), ValueError,
     r"mse_loss: pred and target must have the same shape, got \(4,\) and \(0,\)"),
    (lambda: tr.Tensor([tr.Tensor([1.0]), tr.Tensor([2.0])]), TypeError,
     r"Tensor: data is a list holding Tensors; to join Tensors use tr\.stack or tr\.cat"),
    (lambda: nn.clip_grad_norm_(nn.Linear(2, 2), 1.0), TypeError,
     r"clip_grad_norm_: pass model\.parameters\(\), not the Linear itself"),
    (lambda: nn.RNN(3, 4)(tr.Tensor(np.zeros((5, 2, 3)))), TypeError,
     r"RNN: input has dtype float64 but the parameters are float32; convert the input or the layer"),
])
def test_common_mistakes_get_a_message_naming_what_is_wrong(call, kind, message):
    with pytest.raises(kind, match=message):
        call()


@pytest.mark.parametrize("params, message", [
    (lambda model: model, r"params must be an iterable of Parameters \(for example "
                          r"model\.parameters\(\)\), got Linear"),
    (lambda model: model.parameters, r"params must be an iterable of Parameters .*got method"),
    (lambda model: model.named_parameters(), r"params\[0\] is a tuple, not a Parameter"),
    (lambda model: model.weight, r"params must be an iterable of Parameters, got one Tensor; wrap it "
                                 r"in a list"),
    (lambda model: [model.weight * 2], r"params\[0\] \(shape \(2, 2\)\) is not a trainable leaf"),
])
def test_an_optimizer_given_something_other_than_parameters_says_so(params, message):
    with pytest.raises(ValueError, match=rf"SGD: {message}"):
        optim.SGD(params(nn.Linear(2, 2)), lr=0.1)


def test_layers_kept_in_a_dict_are_found_and_trained():
    class Gates(nn.Module):
        def __init__(self):
            self.gates = {"i": nn.Linear(2, 2), "f": nn.Linear(2, 2, bias=False)}
            self.vocabulary = {"a": 0}

    model = Gates()
    names = [name for name, _ in model.named_parameters()]
    assert names == ["gates.i.weight", "gates.i.bias", "gates.f.weight"]
    assert len(optim.SGD(model.parameters(), lr=0.1).params) == 3


def test_an_optimizer_given_an_iterator_already_used_up_says_so():
    model = nn.Linear(2, 2)
    both = iter(model.parameters())
    optim.SGD(both, lr=0.1)
    with pytest.raises(ValueError, match=r"SGD: got an empty list of parameters, .*an iterator "
                                         r"such as itertools\.chain\(\.\.\.\) can be read only once"):
        optim.SGD(both, lr=0.1)


def test_a_graph_too_big_to_draw_suggests_the_cells_view():
    tr.manual_seed(5)
    outputs, _ = nn.unroll(nn.LSTMCell(2, 2), f32(30, 1, 2))
    with pytest.raises(ValueError, match=r"to_dot: the graph has \d+ nodes to draw, more than .*"
                                         r"use detail='cells'"):
        viz.to_dot(outputs[-1], max_nodes=100)
    assert "digraph" in viz.to_dot(outputs[-1], detail="cells", max_nodes=100)
