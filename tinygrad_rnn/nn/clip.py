"""Gradient clipping: a remedy for exploding gradients in BPTT in the article,
"Recurrent Neural Networks (RNN)" by Gayathri Siva (Medium, 26 May 2021).

Call between ``loss.backward()`` and ``optimizer.step()``; both functions
change the parameters' ``.grad`` arrays in place.
"""
import math

import numpy as np

from ..tensor import Tensor
from .module import Module


def _grads(params, name):
    """The ``.grad`` arrays of ``params`` (one Tensor or an iterable), skipping None."""
    if isinstance(params, Module):
        raise TypeError(f"{name}: pass model.parameters(), not the {type(params).__name__} itself")
    params = [params] if isinstance(params, Tensor) else list(params)
    for i, p in enumerate(params):
        if not isinstance(p, Tensor):
            raise TypeError(f"{name}: params must be Tensors, item {i} is {type(p).__name__}")
    grads, seen = [], {}
    for p in params:
        if p.grad is not None and id(p) not in seen:  # a parameter listed twice is clipped once
            seen[id(p)] = True
            grads.append(p.grad)
    return grads


def _check_limit(name, what, value):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not value >= 0:
        raise ValueError(f"{name}: {what} must be a number >= 0, got {value!r}")
    return float(value)


def clip_grad_norm_(params, max_norm, norm_type=2.0, error_if_nonfinite=False):
    """Scale all gradients together so that their joint norm is at most ``max_norm``.

    The total norm treats every gradient as one long vector g:

        total = (sum_i |g_i|^p)^(1/p)      (p = norm_type; p = inf: max_i |g_i|)

    and when max_norm / (total + 1e-6) < 1 every gradient is multiplied by
    that factor (PyTorch's rule; the 1e-6 keeps all-zero gradients free of a
    division by zero). The direction of the update is kept, only its length
    is capped. The norm is accumulated in float64, so float32 gradients do
    not overflow on the way.

    Returns the total norm before clipping, as a Python float. A NaN or inf
    total leaves the gradients unchanged and is returned, or raises a
    RuntimeError with ``error_if_nonfinite=True``. Parameters whose
    ``.grad`` is None are skipped; with none at all the total is 0.0.
    """
    max_norm = _check_limit("clip_grad_norm_", "max_norm", max_norm)
    if isinstance(norm_type, bool) or not isinstance(norm_type, (int, float, np.integer, np.floating)) \
            or not norm_type > 0:
        raise ValueError(f"clip_grad_norm_: norm_type must be > 0 (a number, or inf), got {norm_type!r}")
    norm_type = float(norm_type)
    grads = _grads(params, "clip_grad_norm_")
    if not grads:
        return 0.0
    norms = [np.linalg.norm(g.astype(np.float64, copy=False).ravel(), norm_type) for g in grads]
    total = float(np.linalg.norm(np.array(norms), norm_type))
    if not math.isfinite(total):
        if error_if_nonfinite:
            raise RuntimeError(f"clip_grad_norm_: the total gradient norm (order {norm_type}) is "
                               f"{total}, so the gradients cannot be clipped; set "
                               "error_if_nonfinite=False to skip clipping and go on")
        return total
    scale = max_norm / (total + 1e-6)
    if scale < 1:
        for g in grads:
            g *= scale
    return total


def clip_grad_value_(params, clip_value):
    """Clip every gradient element into [-clip_value, clip_value] in place.

    Unlike :func:`clip_grad_norm_` this changes the direction of the update.
    Parameters whose ``.grad`` is None are skipped.
    """
    clip_value = _check_limit("clip_grad_value_", "clip_value", clip_value)
    for g in _grads(params, "clip_grad_value_"):
        np.clip(g, -clip_value, clip_value, out=g)
