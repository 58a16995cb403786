"""Check analytic gradients against central finite differences.

For a scalar function L of an input x, the numeric gradient of element k is

    (L(x + eps e_k) - L(x - eps e_k)) / (2 eps),

accurate to O(eps**2) in exact arithmetic. In float64 with eps = 1e-6 the
rounding error is about 1e-10 relative, so analytic and numeric agree to many
digits when backward is right; float32 cannot resolve such an eps, hence the
warning for non-float64 inputs.

An input whose analytic gradient is exactly zero everywhere is first probed
along one random direction v: two evaluations of L(x ± eps v) tell whether
the output moves with it at all. If it does, the input does not reach the
output through Tensor operations (its values got in some other way, such as
``W.data = x.data``), which is said at once, without differencing every
element.
"""
import warnings
from contextlib import contextmanager

import numpy as np

from .tensor import Tensor, no_grad


class GradcheckError(AssertionError):
    """An analytic gradient disagrees with its finite-difference estimate."""


_NOT_REACHED = ("the input may not reach the output through Tensor operations, e.g. because its "
                "values were assigned through .data (cell.W.data = w.data inside fn) or taken out "
                "with .numpy(); compute with the input Tensor itself (for a module's weights, "
                "check them directly: gradcheck(fn, [x] + cell.parameters()))")


def gradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-3, seed=0):
    """Compare backward's gradients of ``fn(*inputs)`` with finite differences.

    ``inputs`` is a list of Tensors; those with ``requires_grad`` are checked,
    element by element: |analytic - numeric| <= atol + rtol |numeric|.
    A non-scalar output y is checked through the scalar L = sum(y * v) for a
    random v (fixed by ``seed``), which tests every output's gradient at once.
    Returns True, or raises :class:`GradcheckError` naming the input, the
    element index and the analytic and numeric values (or, for an input that
    backward does not reach but the output moves with, saying that at once).
    The inputs' ``.data`` and ``.grad`` are left as they were.
    """
    if isinstance(inputs, Tensor):
        raise TypeError("gradcheck: inputs must be a list of Tensors, got a single Tensor "
                        "(write gradcheck(fn, [x]))")
    inputs = list(inputs)
    if not all(isinstance(t, Tensor) for t in inputs):
        kinds = ", ".join(type(t).__name__ for t in inputs)
        raise TypeError(f"gradcheck: inputs must be a list of Tensors, got {kinds}")
    if not eps > 0:
        raise ValueError(f"gradcheck: eps must be positive, got {eps}")
    checked = [i for i, t in enumerate(inputs) if t.requires_grad]
    if not checked:
        raise ValueError("gradcheck: no input has requires_grad=True; nothing to check")
    for i in checked:
        if inputs[i].op is not None:
            raise ValueError(f"gradcheck: input {i} was computed by '{inputs[i].op}'; inputs must be "
                             "leaves, e.g. Tensor(t.numpy(), requires_grad=True, dtype='float64')")
        if inputs[i].dtype != np.float64:
            warnings.warn(f"gradcheck: input {i} is {inputs[i].dtype}; finite differences "
                          "are only reliable in float64 (Tensor(..., dtype='float64'))",
                          UserWarning, stacklevel=2)

    out = fn(*inputs)
    if not isinstance(out, Tensor):
        raise TypeError(f"gradcheck: fn must return a Tensor, got {type(out).__name__}")
    if out.dtype.kind != "f":
        raise TypeError(f"gradcheck: fn must return a floating Tensor, got dtype {out.dtype}")
    projection = np.random.default_rng(seed).standard_normal(out.shape)
    analytic = _analytic_gradients(out, projection, [inputs[i] for i in checked])

    def projected_output():
        with no_grad():
            return float((fn(*inputs).data * projection).sum())

    for i, grad in zip(checked, analytic):
        if not grad.any():
            _probe_unreached(projected_output, inputs[i], eps, atol, rtol, seed, _describe(i, inputs[i]))
    for i, grad in zip(checked, analytic):
        numeric = _numeric_gradient(projected_output, inputs[i], eps)
        with np.errstate(invalid="ignore"):  # inf - inf is NaN: a mismatch, reported below
            bad = ~(np.abs(grad - numeric) <= atol + rtol * np.abs(numeric))
        if bad.any():
            index = tuple(int(k) for k in np.argwhere(bad)[0])
            zero = "" if grad.any() else f"; its analytic gradient is exactly 0 everywhere: {_NOT_REACHED}"
            raise GradcheckError(
                f"{_describe(i, inputs[i])}, index {index}: analytic {grad[index]:.10g} vs numeric "
                f"{numeric[index]:.10g} (atol={atol}, rtol={rtol}){zero}")
    return True


def _describe(i, tensor):
    name = f" ({tensor.name})" if tensor.name else ""
    return f"gradcheck: input {i}{name} of shape {tensor.shape}"


def _probe_unreached(loss, tensor, eps, atol, rtol, seed, what):
    """Raise at once if ``loss`` moves along a random direction v of ``tensor`` (entries ±1)
    although its analytic gradient is 0 everywhere.

    The bound atol |v|_1 / (1 - rtol) is what the element-wise check allows the
    derivative along v, so the probe fails only where that check would.
    """
    direction = np.random.default_rng([seed, 1]).choice([-1.0, 1.0], size=tensor.shape)
    with _private_copy(tensor) as work:
        start = work.copy()
        work[...] = start + eps * direction
        plus = loss()
        work[...] = start - eps * direction
        minus = loss()
    along = (plus - minus) / (2 * eps)
    if not abs(along) <= atol * direction.size / (1 - rtol):
        raise GradcheckError(
            f"{what}: backward gives it no gradient (analytic 0 everywhere), but the output moves "
            f"with it (numeric derivative {along:.10g} along a random direction, atol={atol}): "
            f"{_NOT_REACHED}")


def _analytic_gradients(out, projection, tensors):
    """d(sum(out * projection))/d(tensor) by backward, without disturbing existing ``.grad``."""
    kept = [t.grad for t in tensors]
    try:
        for t in tensors:
            t.grad = None
        if out.requires_grad:
            out.backward(projection.astype(out.dtype))
        return [np.zeros_like(t.data) if t.grad is None else t.grad.copy() for t in tensors]
    finally:
        for t, grad in zip(tensors, kept):
            t.grad = grad


def _numeric_gradient(loss, tensor, eps):
    """Central differences of ``loss()`` in every element of ``tensor``."""
    numeric = np.zeros(tensor.shape, dtype=np.float64)
    with _private_copy(tensor) as work:
        for index in np.ndindex(work.shape):
            value = work[index]
            work[index] = value + eps
            plus = loss()
            work[index] = value - eps
            minus = loss()
            work[index] = value
            numeric[index] = (plus - minus) / (2 * eps)
    return numeric


@contextmanager
def _private_copy(tensor):
    """A copy of ``tensor.data`` that stands in for it inside the block (the perturbations
    go there), so that arrays shared with the caller are never written to."""
    original = tensor.data
    tensor.data = original.copy()
    try:
        yield tensor.data
    finally:
        tensor.data = original
