"""Independent numpy references for the cells, and BPTT checked against them.

Each reference step is written straight from the equations, with its
backward derived by hand, min-char-rnn style: the backward mirrors the
forward line by line. ``*_forward(x, state, p)`` returns (new state, cache);
``*_backward(d_new_state, cache)`` returns (dx, d_state, parameter grads).
States are h (B, H), or (h, c) for the LSTM; ``p`` maps PyTorch's parameter
names to arrays (a missing bias counts as zero). test_cells.py and
test_recurrent.py import these.
"""
import numpy as np
import pytest
from hypothesis import given, strategies as st

import tinygrad_rnn as tr
from tinygrad_rnn import nn


def sigmoid(a):
    return 1 / (1 + np.exp(-a))


def _bias(p, name, rows):
    return p[name] if p.get(name) is not None else np.zeros(rows)


def _param_grads(p, dx_proj, x, dh_proj, h):
    grads = {"weight_ih": dx_proj.T @ x, "weight_hh": dh_proj.T @ h}
    if p.get("bias_ih") is not None:
        grads["bias_ih"] = dx_proj.sum(axis=0)
        grads["bias_hh"] = dh_proj.sum(axis=0)
    return grads


# ------------------------------------------------------------------- RNN

def rnn_forward(x, h, p, nonlinearity="tanh"):
    rows = p["weight_hh"].shape[0]
    a = x @ p["weight_ih"].T + _bias(p, "bias_ih", rows) + h @ p["weight_hh"].T + _bias(p, "bias_hh", rows)
    h_new = np.tanh(a) if nonlinearity == "tanh" else np.maximum(a, 0)
    return h_new, (x, h, h_new, p, nonlinearity)


def rnn_backward(dh_new, cache):
    x, h, h_new, p, nonlinearity = cache
    da = dh_new * (1 - h_new * h_new) if nonlinearity == "tanh" else dh_new * (h_new > 0)
    return da @ p["weight_ih"], da @ p["weight_hh"], _param_grads(p, da, x, da, h)


# ------------------------------------------------------------------ LSTM

def lstm_forward(x, state, p):
    h, c = state
    rows = p["weight_hh"].shape[0]
    a = x @ p["weight_ih"].T + _bias(p, "bias_ih", rows) + h @ p["weight_hh"].T + _bias(p, "bias_hh", rows)
    a_i, a_f, a_g, a_o = np.split(a, 4, axis=-1)
    i, f, g, o = sigmoid(a_i), sigmoid(a_f), np.tanh(a_g), sigmoid(a_o)
    c_new = f * c + i * g
    tanh_c = np.tanh(c_new)
    h_new = o * tanh_c
    return (h_new, c_new), (x, h, c, i, f, g, o, tanh_c, p)


def lstm_backward(d_state, cache):
    dh_new, dc_new = d_state
    x, h, c, i, f, g, o, tanh_c, p = cache
    do = dh_new * tanh_c
    dc = dc_new + dh_new * o * (1 - tanh_c * tanh_c)
    di, df, dg, dc_prev = dc * g, dc * c, dc * i, dc * f
    da = np.concatenate([di * i * (1 - i), df * f * (1 - f), dg * (1 - g * g), do * o * (1 - o)], axis=-1)
    return da @ p["weight_ih"], (da @ p["weight_hh"], dc_prev), _param_grads(p, da, x, da, h)


# ------------------------------------------------------------------- GRU

def gru_forward(x, h, p, reset_after=True):
    rows = p["weight_hh"].shape[0]
    x_r, x_z, x_n = np.split(x @ p["weight_ih"].T + _bias(p, "bias_ih", rows), 3, axis=-1)
    U_r, U_z, U_n = np.split(p["weight_hh"], 3, axis=0)
    b_r, b_z, b_n = np.split(_bias(p, "bias_hh", rows), 3)
    r = sigmoid(x_r + h @ U_r.T + b_r)
    z = sigmoid(x_z + h @ U_z.T + b_z)
    if reset_after:
        h_n = h @ U_n.T + b_n
        n = np.tanh(x_n + r * h_n)
    else:
        h_n = None
        n = np.tanh(x_n + (r * h) @ U_n.T + b_n)
    h_new = (1 - z) * n + z * h
    return h_new, (x, h, r, z, n, h_n, p, reset_after)


def gru_backward(dh_new, cache):
    x, h, r, z, n, h_n, p, reset_after = cache
    U_rz, U_n = p["weight_hh"][:2 * h.shape[-1]], p["weight_hh"][2 * h.shape[-1]:]
    dn = dh_new * (1 - z)
    dz = dh_new * (h - n)
    dh = dh_new * z
    da_n = dn * (1 - n * n)
    if reset_after:
        dr = da_n * h_n
        dh_proj_n = da_n * r
        dh = dh + dh_proj_n @ U_n
    else:
        d_rh = da_n @ U_n
        dr = d_rh * h
        dh = dh + d_rh * r
    da_r = dr * r * (1 - r)
    da_z = dz * z * (1 - z)
    d_rz = np.concatenate([da_r, da_z], axis=-1)
    dh = dh + d_rz @ U_rz
    dx_proj = np.concatenate([da_r, da_z, da_n], axis=-1)
    if reset_after:
        grads = _param_grads(p, dx_proj, x, np.concatenate([d_rz, dh_proj_n], axis=-1), h)
    else:
        grads = _param_grads(p, dx_proj, x, np.concatenate([d_rz, da_n], axis=-1), h)
        grads["weight_hh"][2 * h.shape[-1]:] = da_n.T @ (r * h)
    return dx_proj @ p["weight_ih"], dh, grads


# ----------------------------------------------------- one table of cells

CELL_KINDS = {
    "rnn_tanh": (lambda i, h, bias: nn.RNNCell(i, h, bias), rnn_forward, rnn_backward),
    "rnn_relu": (lambda i, h, bias: nn.RNNCell(i, h, bias, nonlinearity="relu"),
                 lambda x, s, p: rnn_forward(x, s, p, "relu"), rnn_backward),
    "lstm": (lambda i, h, bias: nn.LSTMCell(i, h, bias), lstm_forward, lstm_backward),
    "gru": (lambda i, h, bias: nn.GRUCell(i, h, bias), gru_forward, gru_backward),
    "gru_reset_before": (lambda i, h, bias: nn.GRUCell(i, h, bias, reset_after=False),
                         lambda x, s, p: gru_forward(x, s, p, reset_after=False), gru_backward),
}


def make_cell(kind, input_size, hidden_size, rng, bias=True, scale=0.8):
    """A float64 cell of ``kind`` with N(0, scale^2) weights, large enough to leave the linear regime."""
    cell = CELL_KINDS[kind][0](input_size, hidden_size, bias).to(np.float64)
    cell.load_state_dict({name: rng.normal(0, scale, p.shape) for name, p in cell.named_parameters()})
    return cell


def random_state(kind, batch, hidden_size, rng):
    if kind == "lstm":
        return rng.normal(size=(batch, hidden_size)), rng.normal(size=(batch, hidden_size))
    return rng.normal(size=(batch, hidden_size))


def reference_bptt(kind, p, xs, state, d_outputs, d_final):
    """Numpy forward over xs (T, B, I), then BPTT: dL/dxs, dL/dstate0, parameter grads.

    ``d_outputs`` (T, B, H) is dL/dh_t from outside the recurrence (a readout);
    ``d_final`` is dL/d(final state).
    """
    forward, backward = CELL_KINDS[kind][1:]
    caches, outputs = [], []
    for x in xs:
        state, cache = forward(x, state, p)
        caches.append(cache)
        outputs.append(state[0] if kind == "lstm" else state)
    grads = {name: np.zeros_like(value) for name, value in p.items() if value is not None}
    d_state, dxs = d_final, np.zeros_like(xs)
    for t in range(len(xs) - 1, -1, -1):
        if kind == "lstm":
            d_state = (d_state[0] + d_outputs[t], d_state[1])
        else:
            d_state = d_state + d_outputs[t]
        dxs[t], d_state, step_grads = backward(d_state, caches[t])
        for name, g in step_grads.items():
            grads[name] += g
    return np.stack(outputs), state, dxs, d_state, grads


# ------------------------------------------- the vanilla RNN, min-char-rnn

def min_char_rnn_loss_and_grads(inputs, targets, h_prev, Wxh, Whh, bxh, bhh, Why, by):
    """Softmax cross-entropy of y(t) = B h(t) + b_y against targets, summed over t, and its BPTT.

    inputs (T, I) one-hot rows, targets (T,) ints; h(t) = tanh(A x(t) + C h(t-1) + b).
    """
    hs, ps, loss = {-1: h_prev}, {}, 0.0
    for t in range(len(inputs)):
        hs[t] = np.tanh(Wxh @ inputs[t] + bxh + Whh @ hs[t - 1] + bhh)
        y = Why @ hs[t] + by
        ps[t] = np.exp(y - y.max()) / np.exp(y - y.max()).sum()
        loss += -np.log(ps[t][targets[t]])
    dWxh, dWhh, dWhy = np.zeros_like(Wxh), np.zeros_like(Whh), np.zeros_like(Why)
    dbh, dby = np.zeros_like(bxh), np.zeros_like(by)
    dh_next = np.zeros_like(h_prev)
    for t in reversed(range(len(inputs))):
        dy = ps[t].copy()
        dy[targets[t]] -= 1
        dWhy += np.outer(dy, hs[t])
        dby += dy
        dh = Why.T @ dy + dh_next
        dhraw = (1 - hs[t] * hs[t]) * dh
        dbh += dhraw
        dWxh += np.outer(dhraw, inputs[t])
        dWhh += np.outer(dhraw, hs[t - 1])
        dh_next = Whh.T @ dhraw
    return loss, dWxh, dWhh, dbh, dWhy, dby, dh_next


def _sequence_cross_entropy(logits, targets):
    """Sum over t of -log softmax(logits)[t, target_t], from Tensor ops."""
    return -logits.log_softmax(axis=-1)[np.arange(len(targets)), targets].sum()


@pytest.mark.parametrize("layer", [True, False], ids=["nn.RNN", "unroll(RNNCell)"])
@given(steps=st.integers(1, 12), vocab=st.integers(2, 6), hidden=st.integers(1, 6),
       seed=st.integers(0, 2**32 - 1))
def test_vanilla_rnn_bptt_matches_min_char_rnn(layer, steps, vocab, hidden, seed):
    rng = np.random.default_rng(seed)
    tokens = rng.integers(0, vocab, size=steps + 1)
    inputs, targets = np.eye(vocab)[tokens[:-1]], tokens[1:]
    h_prev = rng.normal(size=hidden)
    weights = [rng.normal(0, 0.7, shape) for shape in
               [(hidden, vocab), (hidden, hidden), (hidden,), (hidden,), (vocab, hidden), (vocab,)]]
    expected = min_char_rnn_loss_and_grads(inputs, targets, h_prev, *weights)

    names = ["weight_ih", "weight_hh", "bias_ih", "bias_hh"]
    B, b_y = (tr.Tensor(w, requires_grad=True) for w in weights[4:])
    h0 = tr.Tensor(h_prev, requires_grad=True)
    if layer:
        rnn = nn.RNN(vocab, hidden).to(np.float64)
        rnn.load_state_dict({f"{name}_l0": w for name, w in zip(names, weights)})
        hs, _ = rnn(tr.Tensor(inputs), h0[None, :])
    else:
        rnn = nn.RNNCell(vocab, hidden).to(np.float64)
        rnn.load_state_dict(dict(zip(names, weights)))
        outputs, _ = nn.unroll(rnn, list(tr.Tensor(inputs)), h0)
        hs = tr.stack(outputs)
    loss = _sequence_cross_entropy(hs @ B.T + b_y, targets)
    loss.backward()

    loss_value, dWxh, dWhh, dbh, dWhy, dby, dh_prev = expected
    assert loss.item() == pytest.approx(loss_value, rel=1e-12)
    pairs = zip(rnn.parameters() + [B, b_y, h0], [dWxh, dWhh, dbh, dbh, dWhy, dby, dh_prev])
    for tensor, grad in pairs:
        np.testing.assert_allclose(tensor.grad, grad, rtol=0, atol=1e-10)


def test_bptt_adds_every_steps_contribution_into_the_shared_weights():
    rng = np.random.default_rng(0)
    cell = make_cell("rnn_tanh", 2, 3, rng)
    xs = rng.normal(size=(4, 1, 2))
    h0 = rng.normal(size=(1, 3))
    outputs, _ = nn.unroll(cell, tr.Tensor(xs), tr.Tensor(h0))
    outputs[-1].sum().backward()
    total = cell.weight_hh.grad.copy()
    p = {name: value for name, value in cell.state_dict().items()}
    per_step, h, caches = [], h0, []
    for x in xs:
        h, cache = rnn_forward(x, h, p)
        caches.append(cache)
    dh = np.ones((1, 3))
    for cache in reversed(caches):
        _, dh, grads = rnn_backward(dh, cache)
        per_step.append(grads["weight_hh"])
    assert all(np.abs(g).max() > 0 for g in per_step)
    np.testing.assert_allclose(total, np.sum(per_step, axis=0), rtol=0, atol=1e-12)
