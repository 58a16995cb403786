"""One training step of a recurrent classifier, written by hand in numpy: the speed floor.

The step the benchmark times, for a 1-layer RNN (tanh), LSTM or GRU
(reset after the matmul) with a linear readout at every time step:

    h(t)   = cell(x(t), h(t-1)),  h(-1) = 0          x (T, B, I) -> hs (T, B, H)
    y(t)   = B h(t) + b                              logits (T, B, K)
    L      = mean over t, b of  -log softmax(y(t, b))[target(t, b)]
    BPTT:  dL/dW for every weight, the loop over time run backwards
    SGD:   W <- W - lr dL/dW

Weights use PyTorch's layout and names (``weight_ih_l0 (G*H, I)``,
``weight_hh_l0 (G*H, H)``, ``bias_ih_l0``, ``bias_hh_l0 (G*H)``; gate blocks
i, f, g, o for the LSTM and r, z, n for the GRU) plus ``readout.weight (K, H)``
and ``readout.bias (K,)``, so the engine's and PyTorch's state dicts load
unchanged. Written for speed but plainly: all gates in one matmul, the input
projections of all steps in one matmul before the loop, and the weight
gradients of all steps in one matmul after it; only the recurrence is a loop.
"""
import numpy as np

GATES = {"rnn": 1, "lstm": 4, "gru": 3}
READOUT = ("readout.weight", "readout.bias")


def init_params(cell, input_size, hidden_size, classes, dtype=np.float32, seed=0):
    """Every weight and bias ~ U(-1/sqrt(H), 1/sqrt(H)), as in PyTorch (for the readout too,
    whose fan-in is H)."""
    rng = np.random.default_rng(seed)
    bound = 1 / np.sqrt(hidden_size)
    rows = _gates(cell) * hidden_size
    shapes = {"weight_ih_l0": (rows, input_size), "weight_hh_l0": (rows, hidden_size),
              "bias_ih_l0": (rows,), "bias_hh_l0": (rows,),
              "readout.weight": (classes, hidden_size), "readout.bias": (classes,)}
    return {name: rng.uniform(-bound, bound, shape).astype(dtype) for name, shape in shapes.items()}


def train_step(cell, params, x, targets, lr):
    """Forward, BPTT and one SGD update of ``params`` in place; returns the loss."""
    loss, grads = loss_and_grads(cell, params, x, targets)
    for name, grad in grads.items():
        params[name] -= lr * grad
    return loss


def loss_and_grads(cell, params, x, targets):
    """The mean cross-entropy and dL/dW for every parameter (a dict in ``params``' order).

    x (T, B, I) floating, targets (T, B) integer class indices in [0, K).
    """
    _check(cell, params, x, targets)
    forward, backward = _CELLS[cell]
    hs, cache = forward(params, x)
    loss, dhs, grads = _readout_loss(params, hs, targets)
    grads.update(backward(params, x, hs, dhs, cache))
    return loss, {name: grads[name] for name in params}


def _gates(cell):
    if cell not in GATES:
        raise ValueError(f"numpy_reference: cell must be one of {list(GATES)}, got {cell!r}")
    return GATES[cell]


def _check(cell, params, x, targets):
    rows, hidden = params["weight_hh_l0"].shape
    if rows != _gates(cell) * hidden:
        raise ValueError(f"numpy_reference: weight_hh_l0 has shape {(rows, hidden)}, expected "
                         f"({_gates(cell) * hidden}, {hidden}) for a {cell} of hidden size {hidden}")
    if x.ndim != 3 or x.shape[2] != params["weight_ih_l0"].shape[1]:
        raise ValueError(f"numpy_reference: x must be (T, B, {params['weight_ih_l0'].shape[1]}), "
                         f"got {x.shape}")
    if targets.shape != x.shape[:2] or targets.dtype.kind not in "iu":
        raise ValueError(f"numpy_reference: targets must be integers of shape {x.shape[:2]}, "
                         f"got {targets.dtype} {targets.shape}")


def _sigmoid(a, out):
    """σ(a) = 1 / (1 + e^-a) into ``out``.

    e^-a overflows to inf for a < -88 in float32, giving the correct limit 0;
    the callers silence that overflow warning once for the whole loop.
    """
    np.negative(a, out=out)
    np.exp(out, out=out)
    out += 1
    return np.reciprocal(out, out=out)


def _input_projection(params, x, hidden_bias_rows):
    """x(t) W_ih^T + b_ih for all steps in one matmul -> (T, B, G*H).

    The first ``hidden_bias_rows`` entries of b_hh are folded in here too
    (all of them for RNN and LSTM; only r and z for the GRU, whose n gate
    needs b_hn inside r * (W_hn h + b_hn)).
    """
    steps, batch, inputs = x.shape
    bias = params["bias_ih_l0"].copy()
    bias[:hidden_bias_rows] += params["bias_hh_l0"][:hidden_bias_rows]
    xw = x.reshape(steps * batch, inputs) @ params["weight_ih_l0"].T
    xw += bias
    return xw.reshape(steps, batch, -1)


def _weight_grads(x, hs, d_xw, d_hw):
    """dL/dW from the per-step gradients of the pre-activations, one matmul each.

    d_xw (T, B, G*H): gradient w.r.t. x(t) W_ih^T; d_hw: w.r.t. h(t-1) W_hh^T
    (h(-1) = 0, so step 0 adds nothing to dW_hh).
    """
    steps, batch, inputs = x.shape
    rows, hidden = d_xw.shape[2], hs.shape[2]
    flat_dx = d_xw.reshape(steps * batch, rows)
    flat_dh = d_hw[1:].reshape((steps - 1) * batch, rows)
    return {"weight_ih_l0": flat_dx.T @ x.reshape(steps * batch, inputs),
            "weight_hh_l0": flat_dh.T @ hs[:-1].reshape((steps - 1) * batch, hidden),
            "bias_ih_l0": flat_dx.sum(axis=0),
            "bias_hh_l0": d_hw.reshape(steps * batch, rows).sum(axis=0)}


def _readout_loss(params, hs, targets):
    """Readout y = hs B^T + b at every step, mean cross-entropy, and its backward.

    Returns (loss, dL/dhs (T, B, H), {readout gradients}).
    dL/dy = (softmax(y) - onehot(target)) / N for N = T * B predictions.
    """
    steps, batch, hidden = hs.shape
    n = steps * batch
    weight, bias = params["readout.weight"], params["readout.bias"]
    flat_h = hs.reshape(n, hidden)
    logits = flat_h @ weight.T
    logits += bias
    logits -= logits.max(axis=1, keepdims=True)
    exp = np.exp(logits)
    total = exp.sum(axis=1, keepdims=True)
    rows, flat_targets = np.arange(n), targets.reshape(n)
    loss = float(np.mean(np.log(total[:, 0]) - logits[rows, flat_targets]))
    d_logits = exp
    d_logits /= total
    d_logits[rows, flat_targets] -= 1
    d_logits /= n
    grads = {"readout.weight": d_logits.T @ flat_h, "readout.bias": d_logits.sum(axis=0)}
    return loss, (d_logits @ weight).reshape(steps, batch, hidden), grads


# ------------------------------------------------------------------------ RNN

def _rnn_forward(params, x):
    """h(t) = tanh(A x(t) + b_ih + C h(t-1) + b_hh)  (A = W_ih, C = W_hh)."""
    xw = _input_projection(params, x, hidden_bias_rows=len(params["bias_hh_l0"]))
    hs = np.empty_like(xw)
    h = np.zeros_like(xw[0])
    w_hh_t = params["weight_hh_l0"].T
    for t in range(len(xw)):
        h = np.tanh(xw[t] + h @ w_hh_t, out=hs[t])
    return hs, None


def _rnn_backward(params, x, hs, dhs, cache):
    """da(t) = (dL/dh(t) + da(t+1) C) * (1 - h(t)^2), with a(t) the pre-activation."""
    d_pre = np.empty_like(hs)
    d_next = np.zeros_like(hs[0])
    w_hh = params["weight_hh_l0"]
    for t in reversed(range(len(hs))):
        d_pre[t] = (dhs[t] + d_next) * (1 - hs[t] * hs[t])
        d_next = d_pre[t] @ w_hh
    return _weight_grads(x, hs, d_pre, d_pre)


# ----------------------------------------------------------------------- LSTM

@np.errstate(over="ignore")
def _lstm_forward(params, x):
    """i, f, o = σ(.), c~ = tanh(.) of x(t) W_ih^T + h(t-1) W_hh^T + b (blocks i, f, g, o);
    c(t) = f c(t-1) + i c~,  h(t) = o tanh(c(t)).

    Saves the gate activations (T, B, 4H), c (T, B, H) and tanh c (T, B, H).
    """
    xw = _input_projection(params, x, hidden_bias_rows=len(params["bias_hh_l0"]))
    hidden = params["weight_hh_l0"].shape[1]
    steps, batch = x.shape[:2]
    acts = np.empty_like(xw)
    hs = np.empty((steps, batch, hidden), dtype=xw.dtype)
    cs, tanh_cs = np.empty_like(hs), np.empty_like(hs)
    h, c = np.zeros_like(hs[0]), np.zeros_like(hs[0])
    w_hh_t = params["weight_hh_l0"].T
    candidate = slice(2 * hidden, 3 * hidden)
    for t in range(steps):
        pre = xw[t] + h @ w_hh_t
        a = acts[t]
        _sigmoid(pre[:, :2 * hidden], out=a[:, :2 * hidden])
        np.tanh(pre[:, candidate], out=a[:, candidate])
        _sigmoid(pre[:, 3 * hidden:], out=a[:, 3 * hidden:])
        i, f, g, o = a[:, :hidden], a[:, hidden:2 * hidden], a[:, candidate], a[:, 3 * hidden:]
        c = np.add(f * c, i * g, out=cs[t])
        h = np.multiply(o, np.tanh(c, out=tanh_cs[t]), out=hs[t])
    return hs, (acts, cs, tanh_cs)


def _lstm_backward(params, x, hs, dhs, cache):
    """BPTT through the LSTM, mirroring the forward line by line.

    dc(t) = dc(t+1) f(t+1) + dh(t) o (1 - tanh^2 c(t)); then
    di = dc c~, df = dc c(t-1), dc~ = dc i, do = dh tanh c(t), each times its
    activation's derivative; dh(t-1) gets d_pre(t) W_hh.
    """
    acts, cs, tanh_cs = cache
    hidden = hs.shape[2]
    d_pre = np.empty_like(acts)
    d_h_next = np.zeros_like(hs[0])
    d_c = np.zeros_like(hs[0])
    zeros = np.zeros_like(hs[0])
    w_hh = params["weight_hh_l0"]
    for t in reversed(range(len(hs))):
        a, tc = acts[t], tanh_cs[t]
        i, f, g, o = a[:, :hidden], a[:, hidden:2 * hidden], a[:, 2 * hidden:3 * hidden], a[:, 3 * hidden:]
        c_prev = cs[t - 1] if t else zeros
        d_h = dhs[t] + d_h_next
        d_c = d_c + d_h * o * (1 - tc * tc)
        d = d_pre[t]
        d[:, :hidden] = d_c * g * i * (1 - i)
        d[:, hidden:2 * hidden] = d_c * c_prev * f * (1 - f)
        d[:, 2 * hidden:3 * hidden] = d_c * i * (1 - g * g)
        d[:, 3 * hidden:] = d_h * tc * o * (1 - o)
        d_c = d_c * f
        d_h_next = d @ w_hh
    return _weight_grads(x, hs, d_pre, d_pre)


# ------------------------------------------------------------------------ GRU

@np.errstate(over="ignore")
def _gru_forward(params, x):
    """r, z = σ(x W_i{r,z}^T + h(t-1) W_h{r,z}^T + b), blocks r, z, n;
    n = tanh(x W_in^T + b_in + r (h(t-1) W_hn^T + b_hn));  h(t) = (1 - z) n + z h(t-1).

    Saves r, z, n and h(t-1) W_hn^T + b_hn, each (T, B, H).
    """
    hidden = params["weight_hh_l0"].shape[1]
    xw = _input_projection(params, x, hidden_bias_rows=2 * hidden)
    steps, batch = x.shape[:2]
    hs = np.empty((steps, batch, hidden), dtype=xw.dtype)
    rs, zs, ns, hns = np.empty_like(hs), np.empty_like(hs), np.empty_like(hs), np.empty_like(hs)
    h = np.zeros_like(hs[0])
    w_hh_t, b_hn = params["weight_hh_l0"].T, params["bias_hh_l0"][2 * hidden:]
    for t in range(steps):
        hw = h @ w_hh_t
        r = _sigmoid(xw[t, :, :hidden] + hw[:, :hidden], out=rs[t])
        z = _sigmoid(xw[t, :, hidden:2 * hidden] + hw[:, hidden:2 * hidden], out=zs[t])
        hn = np.add(hw[:, 2 * hidden:], b_hn, out=hns[t])
        n = np.tanh(xw[t, :, 2 * hidden:] + r * hn, out=ns[t])
        h = np.add(n, z * (h - n), out=hs[t])
    return hs, (rs, zs, ns, hns)


def _gru_backward(params, x, hs, dhs, cache):
    """BPTT through the GRU: with dh = dL/dh(t),
    dn = dh (1 - z), dz = dh (h(t-1) - n), dh(t-1) = dh z + d_hw W_hh, and
    through n = tanh(a_n + r hn): da_n = dn (1 - n^2), dr = da_n hn, dhn = da_n r.
    """
    rs, zs, ns, hns = cache
    hidden = hs.shape[2]
    d_xw = np.empty(hs.shape[:2] + (3 * hidden,), dtype=hs.dtype)
    d_hw = np.empty_like(d_xw)
    d_h_next = np.zeros_like(hs[0])
    zeros = np.zeros_like(hs[0])
    w_hh = params["weight_hh_l0"]
    for t in reversed(range(len(hs))):
        r, z, n = rs[t], zs[t], ns[t]
        h_prev = hs[t - 1] if t else zeros
        d_h = dhs[t] + d_h_next
        d_n = d_h * (1 - z) * (1 - n * n)
        d_r = d_n * hns[t] * r * (1 - r)
        d_z = d_h * (h_prev - n) * z * (1 - z)
        dx, dh = d_xw[t], d_hw[t]
        dx[:, :hidden] = dh[:, :hidden] = d_r
        dx[:, hidden:2 * hidden] = dh[:, hidden:2 * hidden] = d_z
        dx[:, 2 * hidden:] = d_n
        dh[:, 2 * hidden:] = d_n * r
        d_h_next = d_h * z + dh @ w_hh
    return _weight_grads(x, hs, d_xw, d_hw)


_CELLS = {"rnn": (_rnn_forward, _rnn_backward),
          "lstm": (_lstm_forward, _lstm_backward),
          "gru": (_gru_forward, _gru_backward)}
