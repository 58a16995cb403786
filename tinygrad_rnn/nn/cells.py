"""Recurrent cells: one time step of a vanilla RNN, an LSTM and a GRU.

Each cell is a pure step function written like the equations of the article,
"Recurrent Neural Networks (RNN)" by Gayathri Siva (Medium, 26 May 2021),
one line per equation, and a Module that owns the weights and checks its inputs.
The input x reaches every gate through one product for all gates at once,

    x_proj = x W_ih^T + b_ih   (B, G*H), G = 1 (RNN), 4 (LSTM), 3 (GRU)

(:func:`project`), so a sequence layer projects all T time steps in one
``linear`` op; the step adds the h projection W_hh h + b_hh and applies the
gates. ``cell(x, state)`` is ``cell.step(cell.project_input(x), state)``.

Weights use PyTorch's layout: the gates' row blocks are stacked in
``weight_ih (G*H, I)`` and ``weight_hh (G*H, H)``, with biases ``(G*H,)``, so
the article's matrix for gate g acting on [h, x] is the g-th row block of
weight_hh next to the g-th row block of weight_ih. Shapes: x (B, I) and h
(B, H), or unbatched x (I,) and h (H,); the state defaults to zeros.

Every step names the tensors the article names (``.name``: RNN h; LSTM i, f,
c~, o, c, h; GRU r, z, n, h), so pictures, ``to_text`` and ``bptt.record``
show them.

Inputs and states must have the parameters' dtype (float32 unless the module
was converted with ``.to``; Python floats make float32 too). A mismatch is a
TypeError naming both dtypes rather than a silent cast, which would, say, run
a float64 gradient check in float32 without telling.
"""
import math

import numpy as np

from ..rng import generator
from ..tensor import Tensor, linear
from .module import Module, Parameter, check_size


def project(x, weight_ih, bias_ih=None):
    """x_proj = x W_ih^T + b_ih: the input's share of every gate, (..., G*H).

    One ``linear`` op for any leading axes, so a (T, B, I) sequence is
    projected in one matrix product.
    """
    return linear(x, weight_ih, bias_ih)


def rnn_step(x_proj, h, weight_hh, bias_hh=None, nonlinearity="tanh"):
    """One step of the vanilla RNN:  h(t) = f(A x(t) + C h(t-1)).

    A = weight_ih (H, I) arrives as x_proj = A x(t) + b_ih (B, H); C =
    weight_hh (H, H); f is tanh, or relu (a remedy for vanishing gradients).
    The output y(t) = B h(t) is a separate readout (an ``nn.Linear``), not
    part of the cell. Returns h(t) (B, H).
    """
    a = x_proj + linear(h, weight_hh, bias_hh)  # A x(t) + C h(t-1) + b
    return (a.relu() if nonlinearity == "relu" else a.tanh()).named("h")


def lstm_step(x_proj, state, weight_hh, bias_hh=None):
    """One step of the LSTM; ``state = (h_{t-1}, c_{t-1})`` -> ``(h_t, c_t)``.

        i_t  = σ(W_i [h_{t-1}, x_t] + b_i)      input gate
        f_t  = σ(W_f [h_{t-1}, x_t] + b_f)      forget gate
        c~_t = tanh(W_c [h_{t-1}, x_t] + b_c)   candidate cell state
        o_t  = σ(W_o [h_{t-1}, x_t] + b_o)      output gate
        c_t  = f_t * c_{t-1} + i_t * c~_t       cell state (the conveyor belt)
        h_t  = o_t * tanh(c_t)

    W_g [h, x] = W_hh,g h + W_ih,g x and b_g = b_ih,g + b_hh,g, where ,g is
    the g-th row block of weight_ih (4H, I), weight_hh (4H, H) and the biases
    (4H,), in the order i, f, g (= c~), o. x_proj = x_t W_ih^T + b_ih (B, 4H)
    holds the x halves of all four gates; h and c are (B, H).
    """
    h, c = state
    a_i, a_f, a_c, a_o = (x_proj + linear(h, weight_hh, bias_hh)).chunk(4, axis=-1)
    i = a_i.sigmoid().named("i")
    f = a_f.sigmoid().named("f")
    c_tilde = a_c.tanh().named("c~")
    o = a_o.sigmoid().named("o")
    c = (f * c + i * c_tilde).named("c")
    h = (o * c.tanh()).named("h")
    return h, c


def gru_step(x_proj, h, weight_hh, bias_hh=None, reset_after=True):
    """One step of the GRU: h_{t-1} -> h_t.

        r_t = σ(W_r x_t + b_ir + U_r h_{t-1} + b_hr)                   reset gate
        z_t = σ(W_z x_t + b_iz + U_z h_{t-1} + b_hz)                   update gate
        n_t = tanh(W_n x_t + b_in + r_t * (U_n h_{t-1} + b_hn))      reset_after=True
        n_t = tanh(W_n x_t + b_in + U_n (r_t * h_{t-1}) + b_hn)      reset_after=False
        h_t = (1 - z_t) * n_t + z_t * h_{t-1}

    W_r, W_z, W_n are the row blocks r, z, n of weight_ih (3H, I), arriving
    as x_proj = x_t W_ih^T + b_ih (B, 3H); U_r, U_z, U_n are those of
    weight_hh (3H, H) and b_hr, b_hz, b_hn those of bias_hh (3H,).
    reset_after=True is PyTorch's (and cuDNN's, Keras') form; False is Cho
    et al. (2014), the article's: U_n acts on r_t * h_{t-1}.
    """
    x_r, x_z, x_n = x_proj.chunk(3, axis=-1)
    if reset_after:
        h_r, h_z, h_n = linear(h, weight_hh, bias_hh).chunk(3, axis=-1)
    else:
        u_rz, u_n = weight_hh.split([2 * h.shape[-1], h.shape[-1]])
        b_rz, b_n = (None, None) if bias_hh is None else bias_hh.split([2 * h.shape[-1], h.shape[-1]])
        h_r, h_z = linear(h, u_rz, b_rz).chunk(2, axis=-1)
    r = (x_r + h_r).sigmoid().named("r")
    z = (x_z + h_z).sigmoid().named("z")
    if reset_after:
        n = (x_n + r * h_n).tanh().named("n")
    else:
        n = (x_n + linear(r * h, u_n, b_n)).tanh().named("n")
    return ((1 - z) * n + z * h).named("h")


def uniform_parameter(shape, hidden_size, name):
    """A float32 Parameter drawn from U(-1/sqrt(H), 1/sqrt(H)), as PyTorch initialises RNNs."""
    bound = 1 / math.sqrt(hidden_size)
    data = generator().uniform(-bound, bound, size=shape).astype(np.float32)
    return Parameter(data, name=name)


def as_tensor(owner, what, value, shape, dtype):
    """``value`` as a Tensor of exactly ``shape`` and ``dtype``, else a clear error.

    No broadcasting: a state meant for another batch size is a mistake that
    broadcasting would hide.
    """
    tensor = value if isinstance(value, Tensor) else Tensor(value)
    if tensor.shape != tuple(shape):
        raise ValueError(f"{owner}: {what} must have shape {tuple(shape)}, got {tensor.shape}")
    if tensor.dtype != dtype:
        raise TypeError(f"{owner}: {what} has dtype {tensor.dtype} but the parameters are "
                        f"{dtype}; convert it (Tensor(..., dtype='{dtype}')) or the module "
                        f"(.to('{tensor.dtype}'))")
    return tensor


def describe(value):
    """'a Tensor', 'a tuple of 3': what a wrong state argument was, for error messages."""
    if isinstance(value, (tuple, list)):
        return f"a {type(value).__name__} of {len(value)}"
    return f"a {type(value).__name__}"


def zeros(shape, dtype, name):
    """A constant Tensor of zeros: the default initial state, named for pictures."""
    return Tensor(np.zeros(shape, dtype=dtype), name=name)


class _Cell(Module):
    """What the three cells share: weights, input checks, forward = project then step."""
    gate_blocks = 1

    def __init__(self, input_size, hidden_size, bias=True):
        name = type(self).__name__
        self.input_size = check_size(name, "input_size", input_size)
        self.hidden_size = check_size(name, "hidden_size", hidden_size)
        self.bias = bool(bias)
        rows = self.gate_blocks * self.hidden_size
        self.weight_ih = uniform_parameter((rows, self.input_size), self.hidden_size, "weight_ih")
        self.weight_hh = uniform_parameter((rows, self.hidden_size), self.hidden_size, "weight_hh")
        self.bias_ih = uniform_parameter((rows,), self.hidden_size, "bias_ih") if bias else None
        self.bias_hh = uniform_parameter((rows,), self.hidden_size, "bias_hh") if bias else None

    def project_input(self, x):
        """x W_ih^T + b_ih: the input's share of every gate, (..., G*H)."""
        return project(x, self.weight_ih, self.bias_ih)

    def forward(self, x, state=None):
        """One time step: x (B, I) or (I,), state as in :meth:`step` (None: zeros)."""
        x = self._check_input(x)
        return self.step(self.project_input(x), self._check_state(state, x.shape[:-1]))

    def _check_input(self, x):
        name = type(self).__name__
        x = x if isinstance(x, Tensor) else Tensor(x)
        if x.ndim not in (1, 2) or x.shape[-1] != self.input_size:
            raise ValueError(
                f"{name}: input must have shape (B, {self.input_size}) or unbatched "
                f"({self.input_size},), got {x.shape}"
                + ("; for a sequence use nn.unroll or a sequence layer" if x.ndim > 2 else ""))
        if x.dtype != self.weight_ih.dtype:
            raise TypeError(f"{name}: input has dtype {x.dtype} but the parameters are "
                            f"{self.weight_ih.dtype}; convert the input or the cell (.to(dtype))")
        return x

    def _check_hidden(self, what, value, batch_shape):
        return as_tensor(type(self).__name__, what, value, (*batch_shape, self.hidden_size),
                         self.weight_ih.dtype)

    def _check_state(self, state, batch_shape):
        if state is None:
            return zeros((*batch_shape, self.hidden_size), self.weight_ih.dtype, "h0")
        if isinstance(state, (tuple, list)):
            raise ValueError(f"{type(self).__name__}: state must be one Tensor h, got {describe(state)}")
        return self._check_hidden("state h", state, batch_shape)

    def extra_repr(self):
        return f"{self.input_size}, {self.hidden_size}" + ("" if self.bias else ", bias=False")


class RNNCell(_Cell):
    """Vanilla RNN cell: h(t) = f(A x(t) + C h(t-1)), A = weight_ih (H, I), C = weight_hh (H, H).

    ``RNNCell(input_size, hidden_size, bias=True, nonlinearity="tanh")``;
    ``cell(x, h=None)`` -> h' (B, H). See :func:`rnn_step`.
    """

    def __init__(self, input_size, hidden_size, bias=True, nonlinearity="tanh"):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNNCell: nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        super().__init__(input_size, hidden_size, bias)
        self.nonlinearity = nonlinearity

    def step(self, x_proj, h):
        """h' = f(x_proj + C h + b_hh), with x_proj = A x + b_ih from :meth:`project_input`."""
        return rnn_step(x_proj, h, self.weight_hh, self.bias_hh, self.nonlinearity)

    def extra_repr(self):
        return super().extra_repr() + f", nonlinearity={self.nonlinearity!r}"


class LSTMCell(_Cell):
    """LSTM cell: ``cell(x, (h, c)=None)`` -> (h', c'), gates i, f, g (= c~), o.

    ``LSTMCell(input_size, hidden_size, bias=True)``: weight_ih (4H, I),
    weight_hh (4H, H), biases (4H,). See :func:`lstm_step` for the equations.
    """
    gate_blocks = 4

    def step(self, x_proj, state):
        """(h, c) -> (h', c') given x_proj = x W_ih^T + b_ih (B, 4H)."""
        return lstm_step(x_proj, state, self.weight_hh, self.bias_hh)

    def _check_state(self, state, batch_shape):
        if state is None:
            shape, dtype = (*batch_shape, self.hidden_size), self.weight_ih.dtype
            return zeros(shape, dtype, "h0"), zeros(shape, dtype, "c0")
        if not isinstance(state, (tuple, list)) or len(state) != 2:
            raise ValueError(f"LSTMCell: state must be a pair (h, c), got {describe(state)}")
        h, c = (s if isinstance(s, Tensor) else Tensor(s) for s in state)
        if h.shape != c.shape:
            raise ValueError(f"LSTMCell: h and c must have the same shape, got h {h.shape} "
                             f"and c {c.shape}")
        return self._check_hidden("state h", h, batch_shape), self._check_hidden("state c", c, batch_shape)


class GRUCell(_Cell):
    """GRU cell: ``cell(x, h=None)`` -> h', gates r, z and candidate n.

    ``GRUCell(input_size, hidden_size, bias=True, reset_after=True)``:
    weight_ih (3H, I), weight_hh (3H, H), biases (3H,), blocks r, z, n.
    reset_after=True is PyTorch's form, False the article's (Cho et al. 2014);
    see :func:`gru_step`.
    """
    gate_blocks = 3

    def __init__(self, input_size, hidden_size, bias=True, reset_after=True):
        super().__init__(input_size, hidden_size, bias)
        self.reset_after = bool(reset_after)

    def step(self, x_proj, h):
        """h -> h' given x_proj = x W_ih^T + b_ih (B, 3H)."""
        return gru_step(x_proj, h, self.weight_hh, self.bias_hh, self.reset_after)

    def extra_repr(self):
        return super().extra_repr() + ("" if self.reset_after else ", reset_after=False")
