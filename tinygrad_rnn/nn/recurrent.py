"""The time loop (:func:`unroll`) and the sequence layers RNN, LSTM and GRU.

Unrolling a cell over T steps builds one graph with T copies of the step,
all sharing the same Parameters; ``loss.backward()`` through it *is*
backpropagation through time: every step's contribution is added into the
shared weights' gradients.

Truncated BPTT (the article, "Recurrent Neural Networks (RNN)" by Gayathri
Siva, Medium, 26 May 2021: backpropagate only k steps, e.g. 10). A layer
takes and returns its state, so a long sequence is cut into windows of k
steps; after each window the state is detached, which keeps its value but
drops the graph behind it, and the window's output and loss, which hold the
rest of its graph, are released, so memory stays that of k steps however
long the sequence is::

    state = None
    for start in range(0, T, k):
        output, state = lstm(x[start:start + k], state)
        loss = nn.mse_loss(readout(output), y[start:start + k])
        opt.zero_grad()
        loss.backward()
        opt.step()
        state = tuple(s.detach() for s in state)   # RNN and GRU: state = state.detach()
        del output, loss                           # else they live on through the next window
"""
import warnings
from functools import partial

import numpy as np

from .. import autograd
from ..anomaly import describe_nonfinite, user_frame, where
from ..tensor import Tensor, cat, scope, stack
from .cells import as_tensor, describe, gru_step, lstm_step, project, rnn_step, uniform_parameter, zeros
from .dropout import check_probability, dropout
from .module import Module, check_size


def unroll(cell, xs, state=None, reverse=False):
    """Run ``cell`` over a sequence, one ``tr.scope("t={t}")`` per step -> (outputs, final_state).

    ``cell(x, state) -> state`` is any callable: a built-in cell or a
    hand-made one, whose state is h or a tuple whose first element is h. At
    the first step it receives ``state`` (None unless given: the cell picks
    its zeros). ``xs`` is a (T, B, I) Tensor or a list of T (B, I) Tensors.
    ``outputs`` is the list of the T per-step h, in time order; with
    ``reverse=True`` the steps run from t = T-1 down to 0 (the backward
    direction of a bidirectional layer), each still scoped and listed by its t.

    A state the cell made but left unnamed is named here, as the built-in
    cells name theirs: h, for a pair (h, c), for a longer tuple h, state[1],
    state[2], ...; so pictures and ``bptt.record`` find a hand-made cell's
    steps and states (a name the cell gave is kept).
    """
    if not callable(cell):
        raise TypeError(f"unroll: cell must be callable as cell(x, state), e.g. nn.LSTMCell(...), "
                        f"got {type(cell).__name__}")
    length = _sequence_length(xs)
    outputs = [None] * length
    for t in (range(length - 1, -1, -1) if reverse else range(length)):
        with scope(f"t={t}"):
            state = cell(xs[t], state)
            step = autograd.current_scope
        outputs[t] = _hidden(state)
        _name_state(state, step)
    return outputs, state


def _sequence_length(xs):
    if isinstance(xs, Tensor):
        if xs.ndim < 2:
            raise ValueError(f"unroll: xs must be a (T, B, I) Tensor or a list of (B, I) "
                             f"Tensors, got a Tensor of shape {xs.shape}")
        length = xs.shape[0]
    elif isinstance(xs, (list, tuple)):
        length = len(xs)
    else:
        raise TypeError(f"unroll: xs must be a (T, B, I) Tensor or a list of (B, I) Tensors, "
                        f"got {type(xs).__name__}")
    if length == 0:
        raise ValueError("unroll: the sequence is empty (T = 0); there is nothing to run")
    return length


def _hidden(state):
    h = state[0] if isinstance(state, (tuple, list)) and state else state
    if not isinstance(h, Tensor):
        raise TypeError(f"unroll: the cell must return h or a tuple whose first element is h "
                        f"(a Tensor), got {type(state).__name__}")
    return h


def _name_state(state, step):
    """Name the parts of ``state`` made in ``step`` (its scope path) that have no name yet."""
    parts = tuple(state) if isinstance(state, (tuple, list)) else (state,)
    names = ("h", "c") if len(parts) == 2 else ("h", *(f"state[{k}]" for k in range(1, len(parts))))
    for part, name in zip(parts, names):
        made_here = isinstance(part, Tensor) and (part.scope == step or part.scope.startswith(step + "/"))
        if made_here and part.name is None:
            part.named(name)


class _SequenceLayer(Module):
    """A stack of num_layers recurrent layers, each run forward (and backward in time).

    Layer k reads the (T, B, D*H) output of layer k-1 (layer 0 reads x). For
    each layer and direction the input's share of every gate is computed for
    all T steps in one matmul, then :func:`unroll` runs the step function,
    one h matmul per step. Parameters carry PyTorch's names and order. With
    ``dropout=p``, in training mode, the output of every layer but the last
    goes through dropout before the next layer reads it (PyTorch's rule;
    h_n holds the states before dropout).
    """
    gate_blocks = 1
    scope_name = "rnn"
    state_names = ("h0",)

    def __init__(self, input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional):
        name = type(self).__name__
        self.input_size = check_size(name, "input_size", input_size)
        self.hidden_size = check_size(name, "hidden_size", hidden_size)
        self.num_layers = check_size(name, "num_layers", num_layers)
        self.dropout = check_probability(name, dropout)
        if self.dropout > 0 and self.num_layers == 1:
            # PyTorch's warning, word for word: dropout=p never acts on a single layer
            warnings.warn("dropout option adds dropout after all but last recurrent layer, so "
                          "non-zero dropout expects num_layers greater than 1, but got "
                          f"dropout={dropout} and num_layers={num_layers}", UserWarning, stacklevel=3)
        self.bias = bool(bias)
        self.batch_first = bool(batch_first)
        self.bidirectional = bool(bidirectional)
        rows = self.gate_blocks * self.hidden_size
        for k in range(self.num_layers):
            features = self.input_size if k == 0 else self.hidden_size * self.num_directions
            for suffix in self._suffixes():
                shapes = [("weight_ih", (rows, features)), ("weight_hh", (rows, self.hidden_size))]
                shapes += [("bias_ih", (rows,)), ("bias_hh", (rows,))] if self.bias else []
                for kind, shape in shapes:
                    full = f"{kind}_l{k}{suffix}"
                    setattr(self, full, uniform_parameter(shape, self.hidden_size, full))

    @property
    def num_directions(self):
        """D: 2 if bidirectional, else 1."""
        return 2 if self.bidirectional else 1

    def _suffixes(self):
        return ("", "_reverse") if self.bidirectional else ("",)

    def _weights(self, k, suffix):
        """(weight_ih, weight_hh, bias_ih, bias_hh) of layer k in one direction."""
        return tuple(getattr(self, f"{kind}_l{k}{suffix}", None)
                     for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))

    def forward(self, x, h0=None):
        """x (T, B, I), or (B, T, I) with batch_first, or unbatched (T, I).

        Returns (output, h_n): output (T, B, D*H) (batch_first: (B, T, D*H);
        unbatched: (T, D*H)) holds the last layer's h at every step, both
        directions side by side; h_n (D*num_layers, B, H) the final h of each
        layer and direction, ordered l0, l0_reverse, l1, ... The LSTM's state
        is the pair (h, c) in and out.
        """
        x = self._check_input(x)
        batched = x.ndim == 3
        batch_shape = (x.shape[0 if self.batch_first else 1],) if batched else ()
        finals = []
        with scope(self.scope_name):
            states = self._initial_states(h0, batch_shape, x.dtype)
            if batched and self.batch_first:
                x = x.transpose(1, 0, 2)
            for k in range(self.num_layers):
                directions = []
                for suffix in self._suffixes():
                    weight_ih, weight_hh, bias_ih, bias_hh = self._weights(k, suffix)
                    with scope(f"l{k}{suffix}"):
                        x_proj = project(x, weight_ih, bias_ih)
                        outputs, final = unroll(self._step(weight_hh, bias_hh), x_proj,
                                                states[len(finals)], reverse=bool(suffix))
                        directions.append(stack(outputs))
                    finals.append(final)
                x = directions[0] if len(directions) == 1 else cat(directions, axis=-1)
                if k < self.num_layers - 1:
                    x = dropout(x, self.dropout, self.training)
            if batched and self.batch_first:
                x = x.transpose(1, 0, 2)
            return x, self._final_state(finals)

    def _check_input(self, x):
        name = type(self).__name__
        x = x if isinstance(x, Tensor) else Tensor(x)
        layout = "(B, T, I)" if self.batch_first else "(T, B, I)"
        if x.ndim not in (2, 3):
            raise ValueError(f"{name}: input must be 3-D {layout}, or 2-D (T, I) for one "
                             f"unbatched sequence; got shape {x.shape}")
        if x.shape[-1] != self.input_size:
            read_as = layout if x.ndim == 3 else "(T, I), one unbatched sequence (a batch needs 3-D)"
            raise ValueError(f"{name}: input of shape {x.shape}, read as {read_as}, has "
                             f"{x.shape[-1]} features but input_size is {self.input_size}")
        time_axis = 1 if self.batch_first and x.ndim == 3 else 0
        if x.shape[time_axis] == 0:
            raise ValueError(f"{name}: the sequence is empty (T = 0, input shape {x.shape})")
        if x.dtype != self.weight_ih_l0.dtype:
            raise TypeError(f"{name}: input has dtype {x.dtype} but the parameters are "
                            f"{self.weight_ih_l0.dtype}; convert the input or the layer (.to(dtype))")
        if autograd.is_anomaly_enabled() and not np.isfinite(x.data).all():
            # the whole sequence is projected at once, so say here which step the bad value is in
            first = tuple(int(i) for i in np.argwhere(~np.isfinite(x.data))[0])
            raise FloatingPointError(
                f"detect_anomaly: {describe_nonfinite(x, f'the input of {name}')}: it came in with "
                f"the data, at t={first[time_axis]}, {where('', user_frame())}")
        return x

    def _initial_states(self, h0, batch_shape, dtype):
        """One initial state per layer and direction, from h0 (D*num_layers, B, H) or zeros."""
        name = type(self).__name__
        slots = self.num_directions * self.num_layers
        shape = (slots, *batch_shape, self.hidden_size)
        if h0 is None:
            parts = [zeros(shape[1:], dtype, part) for part in self.state_names]
            return [parts[0] if len(parts) == 1 else tuple(parts)] * slots
        if len(self.state_names) > 1:
            if not isinstance(h0, (tuple, list)) or len(h0) != len(self.state_names):
                raise ValueError(f"{name}: the initial state must be a pair (h0, c0), got {describe(h0)}")
            given = h0
        else:
            given = (h0,)
        unbatched = " (unbatched input)" if not batch_shape else ""
        parts = [as_tensor(name, f"{what}{unbatched}", value, shape, dtype)
                 for what, value in zip(self.state_names, given)]
        states = [tuple(p[j] for p in parts) for j in range(slots)]
        return [s[0] if len(s) == 1 else s for s in states]

    def _final_state(self, finals):
        if len(self.state_names) == 1:
            return stack(finals)
        return tuple(stack([f[i] for f in finals]) for i in range(len(self.state_names)))

    def extra_repr(self):
        text = f"{self.input_size}, {self.hidden_size}"
        text += f", num_layers={self.num_layers}" if self.num_layers != 1 else ""
        text += "" if self.bias else ", bias=False"
        text += ", batch_first=True" if self.batch_first else ""
        text += f", dropout={self.dropout}" if self.dropout else ""
        text += ", bidirectional=True" if self.bidirectional else ""
        return text


class RNN(_SequenceLayer):
    """Multi-layer vanilla RNN, h(t) = f(A x(t) + C h(t-1)) per layer (see ``rnn_step``).

    ``RNN(input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
    dropout=0.0, bidirectional=False, nonlinearity="tanh")``; ``rnn(x, h0=None)``
    -> (output, h_n). weight_ih_l{k} (H, I_k), weight_hh_l{k} (H, H).
    """

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, nonlinearity="tanh"):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNN: nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional)
        self.nonlinearity = nonlinearity

    def _step(self, weight_hh, bias_hh):
        return partial(rnn_step, weight_hh=weight_hh, bias_hh=bias_hh, nonlinearity=self.nonlinearity)

    def extra_repr(self):
        return super().extra_repr() + f", nonlinearity={self.nonlinearity!r}"


class LSTM(_SequenceLayer):
    """Multi-layer LSTM (see ``lstm_step``); ``lstm(x, (h0, c0)=None)`` -> (output, (h_n, c_n)).

    ``LSTM(input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
    dropout=0.0, bidirectional=False)``. weight_ih_l{k} (4H, I_k),
    weight_hh_l{k} (4H, H), biases (4H,), row blocks i, f, g (= c~), o; h0,
    c0, h_n, c_n (D*num_layers, B, H).
    """
    gate_blocks = 4
    scope_name = "lstm"
    state_names = ("h0", "c0")

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False):
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional)

    def _step(self, weight_hh, bias_hh):
        return partial(lstm_step, weight_hh=weight_hh, bias_hh=bias_hh)


class GRU(_SequenceLayer):
    """Multi-layer GRU (see ``gru_step``); ``gru(x, h0=None)`` -> (output, h_n).

    ``GRU(input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
    dropout=0.0, bidirectional=False, reset_after=True)``. weight_ih_l{k}
    (3H, I_k), weight_hh_l{k} (3H, H), biases (3H,), blocks r, z, n.
    reset_after=True is PyTorch's form, False the article's.
    """
    gate_blocks = 3
    scope_name = "gru"

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, reset_after=True):
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional)
        self.reset_after = bool(reset_after)

    def _step(self, weight_hh, bias_hh):
        return partial(gru_step, weight_hh=weight_hh, bias_hh=bias_hh, reset_after=self.reset_after)

    def extra_repr(self):
        return super().extra_repr() + ("" if self.reset_after else ", reset_after=False")
