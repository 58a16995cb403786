"""Bad input gets a clear error; extreme input stays finite: the core, cells, layers, training.

One place that gathers the mistakes a newcomer makes and the inputs at the
edge of floating point, each with the behaviour and the words of the message
the user sees. The sections follow the checklist of cases 1 to 17; cases 18 to
21 (checkpoints, graph names, depth) and the other mistakes found along the way
are in test_bad_files_graphs_and_more.py.
"""
import inspect
import math
import re
import warnings
from contextlib import contextmanager

import numpy as np
import pytest

import tinygrad_rnn as tr
from tinygrad_rnn import nn, optim

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
