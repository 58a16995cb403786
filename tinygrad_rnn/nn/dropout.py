"""Dropout: zero a random fraction p of the values while training, as a regulariser.

In training mode each element is kept with probability 1 - p and scaled by
1 / (1 - p), so its expected value is unchanged; in evaluation mode
(``model.eval()``) dropout is the identity. The masks are drawn from the
generator that ``tr.manual_seed(n)`` seeds, so a seeded run draws the same
masks every time. The sequence layers' ``dropout=p`` applies it, as
PyTorch does, to the outputs of every layer but the last.
"""
import numbers

from ..rng import generator
from ..tensor import Tensor
from .module import Module


def check_probability(owner, p):
    """``p`` as a float in [0, 1), or a ValueError naming ``owner``."""
    if isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0 <= p < 1:
        raise ValueError(f"{owner}: dropout probability must be a number in [0, 1), got {p!r} "
                         "(p is the chance of zeroing each element; p = 1 would zero them all)")
    return float(p)


def dropout(x, p, training=True):
    """x with each element zeroed with probability ``p`` and the rest scaled by 1 / (1 - p).

    The identity when not ``training`` or when p = 0. Shapes are unchanged.
    """
    p = check_probability("dropout", p)
    if not training or p == 0:
        return x
    x = x if isinstance(x, Tensor) else Tensor(x)
    if x.dtype.kind != "f":
        raise TypeError(f"dropout: input must be floating point, got dtype {x.dtype}")
    return x.dropout(p, generator())


class Dropout(Module):
    """``Dropout(p=0.5)``: :func:`dropout` in training mode, the identity after ``eval()``."""

    def __init__(self, p=0.5):
        self.p = check_probability("Dropout", p)

    def forward(self, x):
        """x (any shape) -> the same shape."""
        return dropout(x, self.p, self.training)

    def extra_repr(self):
        return f"p={self.p}"
