"""Check analytic gradients against central finite differences.

For a scalar function L of an input x, the numeric gradient of element k is

    (L(x + eps e_k) - L(x - eps e_k)) / (2 eps),

accurate to O(eps**2) in exact arithmetic. In float64 with eps = 1e-6 the
rounding error is about 1e-10 relative, so analytic and numeric agree to many
digits when backward is right; float32 cannot resolve such an eps, hence the
warning for non-float64 inputs.
"""
import warnings

import numpy as np

from .tensor import Tensor, no_grad


class GradcheckError(AssertionError):
    """An analytic gradient disagrees with its finite-difference estimate."""


def gradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-3, seed=0):
    """Compare backward's gradients of ``fn(*inputs)`` with finite differences.

    ``inputs`` is a list of Tensors; those with ``requires_grad`` are checked.
    A non-scalar output y is checked through the scalar L = sum(y * v) for a
    random v (fixed by ``seed``), which tests every output's gradient at once.
    Returns True, or raises :class:`GradcheckError` naming the input, the
    element index and the analytic and numeric values. Existing ``.grad``
    values of the inputs are left as they were.
    """
    inputs = list(inputs)
    if not all(isinstance(t, Tensor) for t in inputs):
        raise TypeError("gradcheck: inputs must be a list of Tensors")
    checked = [i for i, t in enumerate(inputs) if t.requires_grad]
    if not checked:
        raise ValueError("gradcheck: no input has requires_grad=True; nothing to check")
    for i in checked:
        if inputs[i].dtype != np.float64:
            warnings.warn(f"gradcheck: input {i} is {inputs[i].dtype}; finite differences "
                          "are only reliable in float64 (Tensor(..., dtype='float64'))",
                          UserWarning, stacklevel=2)

    out = fn(*inputs)
    if not isinstance(out, Tensor):
        raise TypeError(f"gradcheck: fn must return a Tensor, got {type(out).__name__}")
    projection = np.random.default_rng(seed).standard_normal(out.shape)

    def scalar_loss():
        with no_grad():
            return float((fn(*inputs).data * projection).sum())

    kept = [inputs[i].grad for i in checked]
    try:
        for i in checked:
            inputs[i].grad = None
        if out.requires_grad:
            out.backward(np.asarray(projection, dtype=out.dtype))
        analytic = [_grad_or_zeros(inputs[i]) for i in checked]
    finally:
        for i, grad in zip(checked, kept):
            inputs[i].grad = grad

    for i, grad in zip(checked, analytic):
        data = inputs[i].data
        for index in np.ndindex(data.shape):
            original = data[index]
            data[index] = original + eps
            plus = scalar_loss()
            data[index] = original - eps
            minus = scalar_loss()
            data[index] = original
            numeric = (plus - minus) / (2 * eps)
            if not abs(grad[index] - numeric) <= atol + rtol * abs(numeric):
                name = f" ({inputs[i].name})" if inputs[i].name else ""
                raise GradcheckError(
                    f"gradcheck: input {i}{name}, index {index}: analytic {grad[index]:.10g} "
                    f"vs numeric {numeric:.10g} (atol={atol}, rtol={rtol})")
    return True


def _grad_or_zeros(tensor):
    return np.zeros_like(tensor.data) if tensor.grad is None else tensor.grad.copy()
