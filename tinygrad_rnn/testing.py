"""Property-test your own ops and cells: hypothesis strategies and a gradient assertion.

Hypothesis draws many shapes and values; for each, :func:`assert_gradients_match`
compares backward's gradients with central finite differences in float64
(see :func:`tinygrad_rnn.gradcheck`). A hand-made op is tested in a few lines::

    import numpy as np
    from hypothesis import given, strategies as st
    import tinygrad_rnn as tr
    from tinygrad_rnn.testing import assert_gradients_match, cell_configs, float_arrays, shapes

    def softplus(x):
        return (x.exp() + 1).log()

    @given(float_arrays(shapes(), -5, 5))
    def test_softplus_gradient(x):
        assert_gradients_match(softplus, x)

and so is a hand-made cell, unrolled over a few steps (BPTT is plain backward)::

    @given(cell_configs(kinds=("rnn",)), st.data())
    def test_my_cell(config, data):
        xs = data.draw(float_arrays(config.input_shape, -2, 2))
        A = data.draw(float_arrays((config.hidden_size, config.input_size), -1, 1))
        C = data.draw(float_arrays((config.hidden_size, config.hidden_size), -1, 1))

        def last_state(xs, A, C):
            h = tr.Tensor(np.zeros(config.state_shape))
            for x in xs:                      # h(t) = tanh(A x(t) + C h(t-1))
                h = (x @ A.T + h @ C.T).tanh()
            return h

        assert_gradients_match(last_state, xs, A, C)

This module needs ``hypothesis``; ``import tinygrad_rnn`` does not import it.
"""
import math
from dataclasses import dataclass

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from .gradcheck import GradcheckError, gradcheck
from .tensor import Tensor

__all__ = ["shapes", "broadcastable_shapes", "float_arrays", "cell_configs", "CellConfig",
           "assert_gradients_match"]


def shapes(min_dims=0, max_dims=3, min_side=1, max_side=4):
    """Array shapes with ``min_dims..max_dims`` axes of ``min_side..max_side`` each.

    Small by default: a gradient check costs two forward passes per element.
    """
    return hnp.array_shapes(min_dims=min_dims, max_dims=max_dims,
                            min_side=min_side, max_side=max_side)


def broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, min_side=1, max_side=4):
    """Tuples of ``num_shapes`` shapes that broadcast together, e.g. ((2, 1, 3), (4, 1)).

    Sizes of 1 and missing leading axes appear often, so the gradients that
    must be summed back over broadcast axes are exercised.
    """
    return hnp.mutually_broadcastable_shapes(
        num_shapes=num_shapes, min_dims=min_dims, max_dims=max_dims,
        min_side=min_side, max_side=max_side).map(lambda drawn: drawn.input_shapes)


def float_arrays(shape, low=-3.0, high=3.0, dtype=np.float64, away_from=(), margin=0.1):
    """Arrays of ``shape`` (a tuple or a strategy of shapes) with finite values in [low, high].

    Every value stays at least ``margin`` from each point of ``away_from``,
    which keeps finite differences off the kinks of non-smooth functions:
    ``away_from=(0,)`` for relu and abs, ``(lo, hi)`` for clip. A finite
    difference of step eps is only valid if no kink lies within eps.
    """
    low, high = float(low), float(high)
    if not low < high:
        raise ValueError(f"float_arrays: need low < high, got low={low}, high={high}")
    away_from = tuple(float(point) for point in away_from)
    if not _has_room(low, high, away_from, margin):
        raise ValueError(f"float_arrays: no value in [{low}, {high}] is at least {margin} "
                         f"away from {away_from}")
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        raise TypeError(f"float_arrays: dtype must be floating, got {dtype}")
    width = 8 * dtype.itemsize
    elements = st.floats(_inside(low, dtype, up=True), _inside(high, dtype, up=False),
                         allow_nan=False, allow_infinity=False, allow_subnormal=False, width=width)
    if away_from:
        elements = elements.filter(lambda v: all(abs(v - point) >= margin for point in away_from))
    if isinstance(shape, st.SearchStrategy):
        return shape.flatmap(lambda drawn: hnp.arrays(dtype, drawn, elements=elements))
    return hnp.arrays(dtype, tuple(shape), elements=elements)


def _has_room(low, high, away_from, margin):
    """Whether [low, high] keeps some point outside every (p - margin, p + margin)."""
    candidate = low
    for point in sorted(away_from):
        if candidate <= point - margin:
            return True
        candidate = max(candidate, point + margin)
    return candidate <= high


def _inside(bound, dtype, up):
    """The nearest value of ``dtype`` to ``bound`` that does not leave the interval."""
    value = dtype.type(bound)
    if (up and value < bound) or (not up and value > bound):
        value = np.nextafter(value, dtype.type(math.inf if up else -math.inf))
    return float(value)


@dataclass(frozen=True)
class CellConfig:
    """One recurrent-cell set-up drawn by :func:`cell_configs`.

    ``kind`` is "rnn", "lstm" or "gru"; ``nonlinearity`` matters for "rnn"
    only and ``reset_after`` for "gru" only.
    """
    kind: str
    batch: int
    input_size: int
    hidden_size: int
    steps: int
    bias: bool
    nonlinearity: str = "tanh"
    reset_after: bool = True

    @property
    def cell_name(self):
        """The ``nn`` class of this cell: "RNNCell", "LSTMCell" or "GRUCell"."""
        return {"rnn": "RNNCell", "lstm": "LSTMCell", "gru": "GRUCell"}[self.kind]

    @property
    def cell_kwargs(self):
        """Keyword arguments of that class beyond the two sizes."""
        if self.kind == "rnn":
            return {"bias": self.bias, "nonlinearity": self.nonlinearity}
        if self.kind == "gru":
            return {"bias": self.bias, "reset_after": self.reset_after}
        return {"bias": self.bias}

    @property
    def input_shape(self):
        """(T, B, I): a whole input sequence, time first."""
        return (self.steps, self.batch, self.input_size)

    @property
    def state_shape(self):
        """(B, H): one hidden (or cell) state."""
        return (self.batch, self.hidden_size)

    def build(self):
        """The ``nn`` cell this configuration describes (``nn`` is imported on first use)."""
        from . import nn
        return getattr(nn, self.cell_name)(self.input_size, self.hidden_size, **self.cell_kwargs)


_CELL_KINDS = ("rnn", "lstm", "gru")


def cell_configs(kinds=_CELL_KINDS, max_batch=3, max_input=4, max_hidden=4, max_steps=4):
    """:class:`CellConfig` values: a cell kind from ``kinds``, sizes from 1 up to the
    maxima, with and without bias, and every nonlinearity / reset_after option."""
    kinds = tuple(kinds)
    unknown = [kind for kind in kinds if kind not in _CELL_KINDS]
    if not kinds or unknown:
        raise ValueError(f"cell_configs: kinds must be some of {_CELL_KINDS}, got {kinds}")

    def configs_of(kind):
        return st.builds(
            CellConfig,
            kind=st.just(kind),
            batch=st.integers(1, max_batch),
            input_size=st.integers(1, max_input),
            hidden_size=st.integers(1, max_hidden),
            steps=st.integers(1, max_steps),
            bias=st.booleans(),
            nonlinearity=st.sampled_from(("tanh", "relu")) if kind == "rnn" else st.just("tanh"),
            reset_after=st.booleans() if kind == "gru" else st.just(True))

    return st.sampled_from(kinds).flatmap(configs_of)


def assert_gradients_match(fn, *arrays, eps=1e-6, atol=1e-5, rtol=1e-3):
    """Assert that backward's gradients of ``fn(*tensors)`` match finite differences.

    Each floating array (ndarray, number, list or Tensor) becomes a float64
    leaf with ``requires_grad=True``; integer and bool arrays (indices,
    class targets) are passed as constant Tensors. Raises AssertionError
    naming ``fn``, the input shapes and the first mismatching element.
    """
    tensors = [_leaf_for_check(array) for array in arrays]
    if not any(t.requires_grad for t in tensors):
        raise ValueError("assert_gradients_match: no floating input to check")
    shapes_text = ", ".join(str(t.shape) for t in tensors)
    label = f"{getattr(fn, '__name__', type(fn).__name__)} on shapes {shapes_text}"
    out = fn(*tensors)
    if not isinstance(out, Tensor):
        raise TypeError(f"assert_gradients_match: {label}: fn must return a Tensor, "
                        f"got {type(out).__name__}")
    if not np.isfinite(out.data).all():
        raise AssertionError(f"{label}: the output is not finite at these inputs; keep the "
                             "inputs inside the function's domain (float_arrays low/high)")
    try:
        gradcheck(fn, tensors, eps=eps, atol=atol, rtol=rtol)
    except GradcheckError as error:
        raise AssertionError(f"{label}: gradients do not match finite differences: {error}") from None


def _leaf_for_check(array):
    data = array.data if isinstance(array, Tensor) else np.asarray(array)
    if data.dtype.kind == "f":
        return Tensor(data, requires_grad=True, dtype=np.float64)
    return Tensor(data)
