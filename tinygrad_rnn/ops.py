"""The primitive operations: each one's forward and backward, side by side, on ndarrays.

A primitive is a class with two static methods::

    forward(*arrays, **params)  -> (out, saved)
    backward(saved, grad, needs) -> one gradient (or None) per input array

``saved`` holds what backward needs from forward, so backward recomputes
nothing; ``needs[i]`` says whether input ``i`` wants a gradient. A gradient
may come back in the broadcast shape of the output: the engine sums it back
with :func:`unbroadcast`. Results outside a function's domain follow IEEE
arithmetic (``1 / 0`` is inf, ``log(0)`` is -inf), with numpy's warning off
on the one method concerned. This module knows nothing of Tensors.
"""
import numpy as np


def unbroadcast(grad, shape):
    """Sum ``grad`` down to ``shape``, undoing numpy broadcasting.

    Broadcasting prepends axes and stretches axes of size 1; the gradient of a
    stretched input is the sum over the copies it was stretched into.
    """
    extra = grad.ndim - len(shape)
    if extra:
        grad = grad.sum(axis=tuple(range(extra)))
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    if stretched:
        grad = grad.sum(axis=stretched, keepdims=True)
    return grad


# ----------------------------------------------------------------- arithmetic

class Add:
    """out = a + b;  d/da = d/db = 1 (the engine sums over broadcast axes)."""
    name = "add"

    @staticmethod
    def forward(a, b):
        return a + b, ()

    @staticmethod
    def backward(saved, g, needs):
        return g, g


class Sub:
    """out = a - b;  d/da = 1,  d/db = -1."""
    name = "sub"

    @staticmethod
    def forward(a, b):
        return a - b, ()

    @staticmethod
    def backward(saved, g, needs):
        return g, (-g if needs[1] else None)


class Mul:
    """out = a * b;  d/da = b,  d/db = a."""
    name = "mul"

    @staticmethod
    def forward(a, b):
        return a * b, (a, b)

    @staticmethod
    def backward(saved, g, needs):
        a, b = saved
        return (g * b if needs[0] else None), (g * a if needs[1] else None)


class Div:
    """out = a / b;  d/da = 1 / b,  d/db = -a / b**2 = -out / b.  x / 0 is ±inf (or NaN for 0 / 0)."""
    name = "div"

    @staticmethod
    @np.errstate(all="ignore")
    def forward(a, b):
        out = a / b
        return out, (b, out)

    @staticmethod
    @np.errstate(all="ignore")
    def backward(saved, g, needs):
        b, out = saved
        ga = g / b
        return (ga if needs[0] else None), (-ga * out if needs[1] else None)


class Pow:
    """out = a ** b;  d/da = b a**(b-1),  d/db = out ln a.

    The limits are taken where the formulas break down: d/da is 0 where b = 0
    (so ``x ** 0`` has gradient 0 at x = 0, not NaN), and d/db is 0 where
    a <= 0 (ln a is undefined there; for a = 0, b > 0 the limit is 0).
    """
    name = "pow"

    @staticmethod
    @np.errstate(all="ignore")
    def forward(a, b):
        out = a ** b
        return out, (a, b, out)

    @staticmethod
    @np.errstate(all="ignore")
    def backward(saved, g, needs):
        a, b, out = saved
        ga = gb = None
        if needs[0]:
            ga = g * np.where(b == 0, 0, b * a ** (b - 1))
        if needs[1]:
            gb = g * np.where(a > 0, out * np.log(np.where(a > 0, a, 1)), 0)
        return ga, gb


class MatMul:
    """out = a @ b for 1-D, 2-D and batched operands (numpy's matmul rules).

    For 2-D: dL/da = g b^T, dL/db = a^T g. A 1-D operand is treated as a row
    (left) or column (right) and the gradient reshaped back; batch axes are
    broadcast, so their gradients go through :func:`unbroadcast`.
    """
    name = "matmul"

    @staticmethod
    def forward(a, b):
        return a @ b, (a, b)

    @staticmethod
    def backward(saved, g, needs):
        a, b = saved
        if a.ndim == 2 and b.ndim == 2:
            return (g @ b.T if needs[0] else None), (a.T @ g if needs[1] else None)
        a2 = a[None, :] if a.ndim == 1 else a
        b2 = b[:, None] if b.ndim == 1 else b
        g2 = g.reshape(g.shape[:-1] + (1,) + g.shape[-1:]) if a.ndim == 1 else g
        g2 = g2[..., None] if b.ndim == 1 else g2
        ga = gb = None
        if needs[0]:
            ga = unbroadcast(g2 @ np.swapaxes(b2, -1, -2), a2.shape).reshape(a.shape)
        if needs[1]:
            gb = unbroadcast(np.swapaxes(a2, -1, -2) @ g2, b2.shape).reshape(b.shape)
        return ga, gb


class Linear:
    """out = x W^T + b for x (..., in), W (out, in) and b broadcastable to (..., out).

    The layer inside every network (PyTorch's F.linear) as one node: the
    article's A x(t), C h(t-1) and B h(t). Leading axes of x are flattened,
    so a whole sequence (T, B, in) is one matrix product, forward and back:
    dL/dx = g W,  dL/dW = g^T x (summed over every leading axis),
    dL/db = g, which the engine sums back to b's shape.
    """
    name = "linear"

    @staticmethod
    def forward(x, weight, bias=None):
        rows = x.reshape(-1, x.shape[-1])
        out = (rows @ weight.T).reshape(*x.shape[:-1], weight.shape[0])
        if bias is not None:
            out = out + bias
        return out, (x, weight)

    @staticmethod
    def backward(saved, g, needs):
        x, weight = saved
        g_rows = g.reshape(-1, g.shape[-1])
        gx = (g_rows @ weight).reshape(x.shape) if needs[0] else None
        gw = g_rows.T @ x.reshape(-1, x.shape[-1]) if needs[1] else None
        return gx, gw, g


# ---------------------------------------------------------------- elementwise

class Exp:
    """out = e^a;  d/da = out.  Overflow gives inf (e^89 in float32)."""
    name = "exp"

    @staticmethod
    @np.errstate(over="ignore")
    def forward(a):
        out = np.exp(a)
        return out, (out,)

    @staticmethod
    @np.errstate(over="ignore", invalid="ignore")
    def backward(saved, g, needs):
        return (g * saved[0],)


class Log:
    """out = ln a;  d/da = 1 / a.  log(0) is -inf (the limit), log of a negative is NaN."""
    name = "log"

    @staticmethod
    @np.errstate(divide="ignore", invalid="ignore")
    def forward(a):
        out = np.log(a)
        return out, (a,)

    @staticmethod
    @np.errstate(divide="ignore", invalid="ignore")
    def backward(saved, g, needs):
        return (g / saved[0],)


class Tanh:
    """out = tanh(a);  d/da = 1 - out**2."""
    name = "tanh"

    @staticmethod
    def forward(a):
        out = np.tanh(a)
        return out, (out,)

    @staticmethod
    def backward(saved, g, needs):
        out = saved[0]
        return (g * (1 - out * out),)


class Sigmoid:
    """out = σ(a) = 1 / (1 + e^-a);  d/da = out (1 - out).

    For very negative a, e^-a overflows to inf and 1 / (1 + inf) = 0 is the
    exact limit, so that overflow is expected and silenced: σ(-1000) is 0.0
    and σ(1000) is 1.0, in float32 too. Elsewhere the formula is accurate to
    a few ulp, relative, in both tails.
    """
    name = "sigmoid"

    @staticmethod
    @np.errstate(over="ignore")
    def forward(a):
        out = 1 / (1 + np.exp(-a))
        return out, (out,)

    @staticmethod
    def backward(saved, g, needs):
        out = saved[0]
        return (g * out * (1 - out),)


class ReLU:
    """out = max(a, 0);  d/da = 1 where a > 0, else 0 (0 at a = 0)."""
    name = "relu"

    @staticmethod
    def forward(a):
        out = np.maximum(a, 0)
        return out, (out,)

    @staticmethod
    def backward(saved, g, needs):
        return (g * (saved[0] > 0),)


class Sqrt:
    """out = sqrt(a);  d/da = 1 / (2 out).

    At a = 0 the derivative is +inf (the one-sided limit); where the incoming
    gradient is 0 the result is 0, never 0 * inf = NaN. Use sqrt(a + eps) for a
    finite gradient at 0.
    """
    name = "sqrt"

    @staticmethod
    @np.errstate(invalid="ignore")
    def forward(a):
        out = np.sqrt(a)
        return out, (out,)

    @staticmethod
    @np.errstate(divide="ignore", invalid="ignore")
    def backward(saved, g, needs):
        out = saved[0]
        grad = np.zeros(out.shape, dtype=np.result_type(g, out))
        np.divide(g, 2 * out, out=grad, where=(g != 0))
        return (grad,)


class Abs:
    """out = |a|;  d/da = sign(a) (0 at a = 0)."""
    name = "abs"

    @staticmethod
    def forward(a):
        return np.abs(a), (a,)

    @staticmethod
    def backward(saved, g, needs):
        return (g * np.sign(saved[0]),)


class Clip:
    """out = min(max(a, lo), hi);  d/da = 1 where lo <= a <= hi, else 0."""
    name = "clip"

    @staticmethod
    def forward(a, lo, hi):
        out = np.clip(a, lo, hi)
        return out, (out == a,)

    @staticmethod
    def backward(saved, g, needs):
        return (g * saved[0],)


class LogSoftmax:
    """out = a - max a - ln sum e^(a - max a) along ``axis`` (log-sum-exp trick).

    d/da: g - softmax(a) * sum(g), with softmax(a) = e^out. Stays finite for
    logits of any size: log_softmax([1000, 1000]) = [-ln 2, -ln 2].
    """
    name = "log_softmax"

    @staticmethod
    def forward(a, axis):
        shifted = a - a.max(axis=axis, keepdims=True)
        out = shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))
        return out, (out, axis)

    @staticmethod
    def backward(saved, g, needs):
        out, axis = saved
        return (g - np.exp(out) * g.sum(axis=axis, keepdims=True),)


# ----------------------------------------------------------------- reductions

def _expand_reduced(g, shape, axis, keepdims):
    """Reshape a reduced gradient so that it broadcasts against ``shape``."""
    if axis is None or keepdims:
        return g if axis is not None else np.reshape(g, (1,) * len(shape))
    axes = (axis,) if isinstance(axis, int) else axis
    return np.expand_dims(g, tuple(ax % len(shape) for ax in axes))


class Sum:
    """out = sum of a over ``axis``;  every element gets the gradient of the sum it is in."""
    name = "sum"

    @staticmethod
    def forward(a, axis, keepdims):
        return a.sum(axis=axis, keepdims=keepdims), (a.shape, axis, keepdims)

    @staticmethod
    def backward(saved, g, needs):
        shape, axis, keepdims = saved
        return (np.broadcast_to(_expand_reduced(g, shape, axis, keepdims), shape),)


class Max:
    """out = max along ``axis``; the gradient is shared equally among tied maxima
    (so max([2, 2]) sends g / 2 to each), which keeps it the same for any order."""
    name = "max"

    @staticmethod
    def forward(a, axis, keepdims):
        out = a.max(axis=axis, keepdims=keepdims)
        return out, (a, out, axis, keepdims)

    @staticmethod
    @np.errstate(divide="ignore", invalid="ignore")
    def backward(saved, g, needs):
        a, out, axis, keepdims = saved
        mask = a == _expand_reduced(out, a.shape, axis, keepdims)
        count = mask.sum(axis=axis, keepdims=True)
        return (mask * (_expand_reduced(g, a.shape, axis, keepdims) / count),)


# ---------------------------------------------------------------------- shape

class Reshape:
    """out = a with a new shape (same elements, same order);  the gradient is reshaped back."""
    name = "reshape"

    @staticmethod
    def forward(a, shape):
        return a.reshape(shape), (a.shape,)

    @staticmethod
    def backward(saved, g, needs):
        return (g.reshape(saved[0]),)


class Transpose:
    """out = a with its axes permuted; the gradient is permuted back by the inverse."""
    name = "transpose"

    @staticmethod
    def forward(a, axes):
        return a.transpose(axes), (tuple(np.argsort(axes)),)

    @staticmethod
    def backward(saved, g, needs):
        return (g.transpose(saved[0]),)


class GetItem:
    """out = a[index] for ints, slices, None, Ellipsis, integer arrays and boolean masks.

    The gradient is g put back where the slice came from, zeros elsewhere.
    With integer arrays an index may repeat, and repeated contributions add up.
    """
    name = "getitem"

    @staticmethod
    def forward(a, index):
        return a[index], (a.shape, index)

    @staticmethod
    def backward(saved, g, needs):
        shape, index = saved
        grad = np.zeros(shape, dtype=g.dtype)
        GetItem.add_into(grad, saved, g)
        return (grad,)

    @staticmethod
    def add_into(grad, saved, g):
        """grad[index] += g, in place. The engine calls this directly with a buffer
        that holds a's whole gradient, so that the T slices x[t] of a sequence cost
        O(T), not the O(T^2) of T dense arrays of the sequence's shape."""
        index = saved[1]
        if _has_array(index):
            np.add.at(grad, index, g)
        else:
            grad[index] += g


def _has_array(index):
    """Whether an index holds an integer array, which may repeat an element."""
    parts = index if type(index) is tuple else (index,)
    return any(isinstance(part, np.ndarray) and part.dtype.kind in "iu" for part in parts)


class Cat:
    """out = concatenate(arrays, axis); each input's gradient is its slice of g."""
    name = "cat"

    @staticmethod
    def forward(*arrays, axis):
        bounds = np.cumsum([x.shape[axis] for x in arrays])[:-1]
        return np.concatenate(arrays, axis=axis), (axis, bounds)

    @staticmethod
    def backward(saved, g, needs):
        axis, bounds = saved
        return tuple(np.split(g, bounds, axis=axis))


class Stack:
    """out = stack(arrays, axis); input i's gradient is g taken at i along axis."""
    name = "stack"

    @staticmethod
    def forward(*arrays, axis):
        out = np.stack(arrays, axis=axis)
        return out, (axis % out.ndim,)

    @staticmethod
    def backward(saved, g, needs):
        axis = saved[0]
        return tuple(np.moveaxis(g, axis, 0))


# -------------------------------------------------------------------- random

class Dropout:
    """out = a * mask, mask = (u >= p) / (1 - p) for u ~ U[0, 1) drawn from ``rng``;  d/da = mask.

    Each element is zeroed with probability p and the survivors are scaled
    by 1 / (1 - p), so E[out] = a. ``rng`` is a ``numpy.random.Generator``;
    the mask is drawn afresh at every forward (``draws_random``) and saved
    for backward.
    """
    name = "dropout"
    draws_random = True

    @staticmethod
    def forward(a, p, rng):
        mask = ((rng.random(a.shape) >= p) / (1 - p)).astype(a.dtype)
        return a * mask, (mask,)

    @staticmethod
    def backward(saved, g, needs):
        return (g * saved[0],)
