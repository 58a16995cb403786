"""The cells against the numpy references of test_bptt_reference.py, by gradcheck, and their errors."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

import tinygrad_rnn as tr
from tinygrad_rnn import nn
from tinygrad_rnn.testing import cell_configs
from graph_walk import graph_ops, parts
from test_bptt_reference import CELL_KINDS, make_cell, random_state, reference_bptt

KINDS = list(CELL_KINDS)


def as_tensors(state, requires_grad=False):
    if isinstance(state, tuple):
        return tuple(tr.Tensor(s, requires_grad=requires_grad) for s in state)
    return tr.Tensor(state, requires_grad=requires_grad)


def reference_kind(config):
    """The CELL_KINDS key of a tinygrad_rnn.testing.CellConfig."""
    if config.kind == "rnn":
        return f"rnn_{config.nonlinearity}"
    if config.kind == "gru":
        return "gru" if config.reset_after else "gru_reset_before"
    return "lstm"


@pytest.mark.parametrize("family", ["rnn", "lstm", "gru"])
@given(data=st.data(), seed=st.integers(0, 2**32 - 1))
def test_unrolled_cell_matches_numpy_forward_and_hand_written_bptt(family, data, seed):
    config = data.draw(cell_configs(kinds=(family,)))
    kind, rng = reference_kind(config), np.random.default_rng(seed)
    cell = config.build().to(np.float64)
    cell.load_state_dict({name: rng.normal(0, 0.8, p.shape) for name, p in cell.named_parameters()})
    xs = rng.normal(size=config.input_shape)
    state = random_state(kind, config.batch, config.hidden_size, rng)
    d_outputs = rng.normal(size=(config.steps, config.batch, config.hidden_size))
    d_final = random_state(kind, config.batch, config.hidden_size, rng)
    outputs, final, dxs, d_state, grads = reference_bptt(kind, cell.state_dict(), xs, state,
                                                         d_outputs, d_final)

    xs_t, state_t = tr.Tensor(xs, requires_grad=True), as_tensors(state, requires_grad=True)
    got_outputs, got_final = nn.unroll(cell, xs_t, state_t)
    loss = (tr.stack(got_outputs) * d_outputs).sum()
    for part, d_part in zip(parts(got_final), d_final if kind == "lstm" else (d_final,)):
        loss = loss + (part * d_part).sum()
    loss.backward()

    np.testing.assert_allclose(np.stack([h.data for h in got_outputs]), outputs, rtol=0, atol=1e-12)
    for got, want in zip(parts(got_final), final if kind == "lstm" else (final,)):
        np.testing.assert_allclose(got.data, want, rtol=0, atol=1e-12)
    np.testing.assert_allclose(xs_t.grad, dxs, rtol=0, atol=1e-11)
    for got, want in zip(parts(state_t), d_state if kind == "lstm" else (d_state,)):
        np.testing.assert_allclose(got.grad, want, rtol=0, atol=1e-11)
    assert sorted(grads) == sorted(name for name, _ in cell.named_parameters())
    for name, p in cell.named_parameters():
        np.testing.assert_allclose(p.grad, grads[name], rtol=0, atol=1e-11, err_msg=name)


@pytest.mark.parametrize("kind", KINDS)
def test_unbatched_step_equals_a_batch_of_one(kind):
    rng = np.random.default_rng(1)
    cell = make_cell(kind, 3, 2, rng)
    x, state = rng.normal(size=3), random_state(kind, 1, 2, rng)
    single = tuple(s[0] for s in state) if kind == "lstm" else state[0]
    unbatched = parts(cell(tr.Tensor(x), as_tensors(single)))
    batched = parts(cell(tr.Tensor(x[None]), as_tensors(state)))
    for u, b in zip(unbatched, batched):
        assert u.shape == (2,)
        np.testing.assert_allclose(u.data, b.data[0], rtol=0, atol=1e-15)


@pytest.mark.parametrize("kind", KINDS)
def test_default_state_is_zeros(kind):
    rng = np.random.default_rng(2)
    cell = make_cell(kind, 3, 2, rng)
    x = tr.Tensor(rng.normal(size=(2, 3)))
    zero = np.zeros((2, 2))
    explicit = parts(cell(x, as_tensors((zero, zero) if kind == "lstm" else zero)))
    default = parts(cell(x))
    for a, b in zip(explicit, default):
        assert b.dtype == np.float64
        np.testing.assert_array_equal(a.data, b.data)


@pytest.mark.parametrize("kind", KINDS)
def test_three_step_unrolled_loss_passes_gradcheck(kind):
    rng = np.random.default_rng(3)
    cell = make_cell(kind, 2, 3, rng)
    xs = tr.Tensor(rng.normal(size=(3, 2, 2)), requires_grad=True)
    state = as_tensors(random_state(kind, 2, 3, rng), requires_grad=True)
    state_inputs = list(state) if kind == "lstm" else [state]

    def loss(xs, *_):
        outputs, final = nn.unroll(cell, xs, state)
        last_c = final[1][None] if kind == "lstm" else final[None]
        return tr.cat([tr.stack(outputs), last_c])

    assert tr.gradcheck(loss, [xs] + state_inputs + cell.parameters())


# The GRU multiplies h by all of W_hh at once; for reset_after=False, h by [U_r; U_z] and r * h by U_n.
@pytest.mark.parametrize("kind, h_matmuls", [("rnn_tanh", 1), ("lstm", 1), ("gru", 1),
                                             ("gru_reset_before", 2)])
def test_one_matmul_for_x_and_one_per_gate_group_for_h(kind, h_matmuls):
    cell = make_cell(kind, 3, 4, np.random.default_rng(4))
    out = cell(tr.Tensor(np.ones((2, 3))))
    h = out[0] if kind == "lstm" else out
    ops = graph_ops(h)
    assert ops.count("linear") == 1 + h_matmuls and "matmul" not in ops


@pytest.mark.parametrize("kind", KINDS)
def test_parameters_have_the_documented_names_shapes_and_initialisation(kind):
    tr.manual_seed(5)
    cell = CELL_KINDS[kind][0](3, 16, True)
    rows = {"lstm": 64, "gru": 48, "gru_reset_before": 48}.get(kind, 16)
    expected = [("weight_ih", (rows, 3)), ("weight_hh", (rows, 16)), ("bias_ih", (rows,)),
                ("bias_hh", (rows,))]
    assert [(name, p.shape) for name, p in cell.named_parameters()] == expected
    values = np.concatenate([p.data.ravel() for p in cell.parameters()])
    assert all(p.dtype == np.float32 and p.name == name for name, p in cell.named_parameters())
    assert np.abs(values).max() <= 1 / 4 and np.abs(values).max() > 0.9 / 4
    assert abs(values.mean()) < 0.02
    tr.manual_seed(5)
    again = CELL_KINDS[kind][0](3, 16, True)
    assert all(np.array_equal(a, b) for a, b in zip(cell.state_dict().values(), again.state_dict().values()))


def test_bias_false_has_no_bias_parameters():
    for cell in [nn.RNNCell(2, 3, bias=False), nn.LSTMCell(2, 3, bias=False), nn.GRUCell(2, 3, bias=False),
                 nn.GRUCell(2, 3, bias=False, reset_after=False)]:
        assert [name for name, _ in cell.named_parameters()] == ["weight_ih", "weight_hh"]
        assert "bias=False" in repr(cell)


def test_python_float_input_runs_in_float32():
    cell = nn.LSTMCell(2, 3)
    h, c = cell([[0.5, -1.0]])
    assert h.dtype == c.dtype == np.float32 and h.shape == (1, 3)


def test_a_loss_on_c_alone_gives_the_output_gate_exactly_zero_gradient():
    rng = np.random.default_rng(6)
    cell = make_cell("lstm", 3, 2, rng)
    x = tr.Tensor(rng.normal(size=(4, 3)), requires_grad=True)
    _, c = cell(x, as_tensors(random_state("lstm", 4, 2, rng)))
    c.sum().backward()
    output_gate = slice(3 * 2, 4 * 2)
    for p in cell.parameters():
        assert p.grad.shape == p.shape
        assert np.all(p.grad[output_gate] == 0)
        assert np.abs(p.grad[:3 * 2]).max() > 0


# ------------------------------------------------------------------ errors

@pytest.mark.parametrize("kind", KINDS)
def test_wrong_input_size_or_ndim_is_named(kind):
    cell = CELL_KINDS[kind][0](3, 2, True)
    with pytest.raises(ValueError, match=r"input must have shape \(B, 3\) or unbatched \(3,\), got \(4, 5\)"):
        cell(tr.Tensor(np.zeros((4, 5), np.float32)))
    with pytest.raises(ValueError, match=r"got \(2, 4, 3\); for a sequence use nn.unroll"):
        cell(tr.Tensor(np.zeros((2, 4, 3), np.float32)))
    with pytest.raises(ValueError, match=r"got \(\)"):
        cell(tr.Tensor(np.float32(1.0)))


@pytest.mark.parametrize("kind", KINDS)
def test_state_of_wrong_batch_or_hidden_size_is_not_broadcast(kind):
    cell = CELL_KINDS[kind][0](3, 2, True)
    x = tr.Tensor(np.zeros((4, 3), np.float32))
    for bad in [(1, 2), (4, 3), (2,)]:
        state = np.zeros(bad, np.float32)
        with pytest.raises(ValueError, match=rf"state h must have shape \(4, 2\), got {re_shape(bad)}"):
            cell(x, (state, state) if kind == "lstm" else state)


def re_shape(shape):
    return str(tuple(shape)).replace("(", r"\(").replace(")", r"\)")


def test_lstm_state_must_be_a_pair_of_equal_shapes():
    cell = nn.LSTMCell(3, 2)
    x = tr.Tensor(np.zeros((4, 3), np.float32))
    h = np.zeros((4, 2), np.float32)
    with pytest.raises(ValueError, match=r"h and c must have the same shape, got h \(4, 2\) and c \(4, 3\)"):
        cell(x, (h, np.zeros((4, 3), np.float32)))
    with pytest.raises(ValueError, match="state must be a pair \\(h, c\\), got a Tensor"):
        cell(x, tr.Tensor(h))
    with pytest.raises(ValueError, match="state must be a pair \\(h, c\\), got a tuple of 3"):
        cell(x, (h, h, h))
    with pytest.raises(ValueError, match=r"state h must have shape \(4, 2\), got \(1, 2\)"):
        cell(x, (h[:1], h[:1].copy()))


def test_gru_and_rnn_state_must_be_one_tensor():
    x = tr.Tensor(np.zeros((4, 3), np.float32))
    h = np.zeros((4, 2), np.float32)
    for cell in [nn.RNNCell(3, 2), nn.GRUCell(3, 2)]:
        with pytest.raises(ValueError, match="state must be one Tensor h, got a tuple of 2"):
            cell(x, (h, h))


def test_dtype_mismatch_is_a_type_error_naming_both_dtypes():
    cell = nn.GRUCell(3, 2)
    with pytest.raises(TypeError, match="input has dtype float64 but the parameters are float32"):
        cell(tr.Tensor(np.zeros((1, 3))))
    with pytest.raises(TypeError, match="state h has dtype float64 but the parameters are float32"):
        cell(tr.Tensor(np.zeros((1, 3), np.float32)), np.zeros((1, 2)))


def test_bad_constructor_arguments_are_named():
    with pytest.raises(ValueError, match="nonlinearity must be 'tanh' or 'relu', got 'sigmoid'"):
        nn.RNNCell(2, 3, nonlinearity="sigmoid")
    with pytest.raises(ValueError, match="LSTMCell: hidden_size must be a positive int, got 0"):
        nn.LSTMCell(2, 0)
    with pytest.raises(ValueError, match="GRUCell: input_size must be a positive int, got 2.5"):
        nn.GRUCell(2.5, 3)
