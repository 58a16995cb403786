"""Tensor: an n-dimensional array that remembers how it was computed.

Every operation on Tensors runs a primitive from ``ops.py`` on the ndarrays and
returns a Tensor whose ``parents`` are the inputs and whose ``op`` names the
primitive. The graph lives on the outputs only, so a graph nobody refers to is
freed by reference counting. ``backward()`` visits the graph once, children
before parents, calls each primitive's backward and adds the results into the
inputs' gradients: backpropagation through time is this walk over an unrolled
network. Non-finite values follow IEEE arithmetic, as in PyTorch;
``detect_anomaly()`` finds where a NaN or inf first appears.
"""
import itertools
import operator

import numpy as np

from . import anomaly, autograd, ops
from .autograd import detect_anomaly, is_anomaly_enabled, is_grad_enabled, no_grad, observing, scope

# Every tensor takes the next number at creation. An op's inputs exist before
# its output, so reverse creation order is an order for backward.
_next_number = itertools.count().__next__

_NUMPY_OPERATORS = {np.add: operator.add, np.subtract: operator.sub, np.multiply: operator.mul,
                    np.true_divide: operator.truediv, np.power: operator.pow, np.matmul: operator.matmul}


class Tensor:
    """An ndarray with autograd: ``Tensor(data, requires_grad=False, dtype=None, name=None)``.

    ``data`` is copied. Python floats and lists become float32, a floating
    ndarray keeps its dtype, integer and bool data (indices, targets) stay as
    they are and cannot require a gradient. Scalar operands take the tensor's
    float dtype: ``x * 2`` keeps float32.
    """
    __slots__ = ("_data", "_version", "grad", "_requires_grad", "name", "scope", "parents",
                 "_fn", "_saved", "_versions", "_retain", "_trace", "_number")
    __array_priority__ = 1000  # ndarray <op> Tensor defers to the Tensor's reflected operator

    def __init__(self, data, requires_grad=False, dtype=None, name=None):
        array = _as_array(data, dtype)
        if requires_grad and array.dtype.kind != "f":
            raise TypeError(f"Tensor: requires_grad=True needs a floating dtype "
                            f"(float32 or float64), got {array.dtype}")
        _init(self, array, bool(requires_grad), name=name)

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        """``ndarray <op> Tensor`` runs as the Tensor's op; other numpy functions are refused."""
        apply = _NUMPY_OPERATORS.get(ufunc)
        if apply is not None and method == "__call__" and not kwargs:
            return apply(*(self._const(x) for x in inputs))
        raise TypeError(f"numpy's {ufunc.__name__} does not take a Tensor: use the Tensor's own "
                        f"method (t.tanh(), t.exp(), t + u, ...), or np.{ufunc.__name__}(t.data) "
                        f"for a plain array with no gradient")

    # ------------------------------------------------------------ attributes
    shape = property(lambda self: self._data.shape, doc="Shape of the data.")
    ndim = property(lambda self: self._data.ndim, doc="Number of axes.")
    size = property(lambda self: self._data.size, doc="Number of elements.")
    dtype = property(lambda self: self._data.dtype, doc="numpy dtype of the data.")
    op = property(lambda self: None if self._fn is None else self._fn.name,
                  doc="Name of the primitive that produced this tensor; None for a leaf.")
    T = property(lambda self: self.transpose(), doc="All axes reversed.")

    @property
    def data(self):
        """The ndarray. ``t.data -= x`` counts as a change in place, which a backward that
        saved the old values refuses; ``t.data = new_array`` replaces it."""
        return self._data

    @data.setter
    def data(self, array):
        if array is self._data:
            self._version += 1
        self._data = array

    @property
    def requires_grad(self):
        """Whether backward computes a gradient for this tensor."""
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, value):
        if value and self._data.dtype.kind != "f":
            raise TypeError(f"requires_grad: needs a floating dtype (float32 or float64), "
                            f"got {self._data.dtype}")
        if self._fn is not None:
            raise RuntimeError(f"requires_grad: can only be changed on a leaf, not on the output "
                               f"of '{self._fn.name}'; x.detach() gives a leaf")
        self._requires_grad = bool(value)

    def __len__(self):
        if not self._data.ndim:
            raise TypeError("len() of a 0-d Tensor")
        return len(self._data)

    def __iter__(self):
        """The rows along the first axis, each one a ``getitem`` node: ``for x in xs``."""
        return (self[i] for i in range(len(self)))

    def __bool__(self):
        return bool(self._single_value("bool"))

    def __float__(self):
        return float(self._single_value("float"))

    def __repr__(self):
        extra = ", requires_grad=True" if self._requires_grad else ""
        extra += f", op={self.op}" if self._fn is not None else ""
        extra += f", name={self.name!r}" if self.name is not None else ""
        return f"Tensor({np.array2string(self._data, prefix='Tensor(')}, dtype={self.dtype}{extra})"

    def numpy(self):
        """The underlying ndarray (shared, not copied)."""
        for observer in autograd.observers:
            observer.read(self, "numpy")
        return self._data

    def item(self):
        """The single value of a size-1 tensor as a Python number."""
        return self._single_value("item")

    def _single_value(self, caller):
        if self._data.size != 1:
            raise ValueError(f"{caller}: needs a tensor with one element, got shape {self.shape}")
        for observer in autograd.observers:
            observer.read(self, caller)
        return self._data.item()

    def named(self, name):
        """Give this tensor a name, shown in pictures and found by ``bptt.record``; returns it."""
        self.name = name
        return self

    def detach(self):
        """A new leaf sharing this data, cut from the graph (truncated BPTT)."""
        return _tensor(self._data, name=self.name)

    def retain_grad(self):
        """Keep ``.grad`` on this non-leaf after backward (leaves always keep it)."""
        if not self._requires_grad:
            raise RuntimeError("retain_grad: this tensor does not require grad, "
                               "so backward never reaches it")
        self._retain = True
        return self

    def backward(self, grad=None, retain_graph=False, retain_grads=False):
        """Backpropagate from this tensor: add d(self)/d(leaf) into every leaf's ``.grad``.

        ``grad`` is dL/d(self), needed unless self has one element. Leaf
        gradients accumulate across calls. The saved arrays of the graph are
        released afterwards unless ``retain_graph``; ``retain_grads`` keeps
        ``.grad`` on every non-leaf too.
        """
        if not self._requires_grad:
            raise RuntimeError(
                f"backward: this tensor (shape {self.shape}) does not require grad: "
                "neither it nor anything it was computed from has requires_grad=True")
        if grad is None:
            if self._data.size != 1:
                raise RuntimeError(
                    f"backward: the output has shape {self.shape}; backward() without "
                    "grad needs a scalar output, otherwise pass grad= of the output's shape")
            grad = np.ones_like(self._data)
        else:
            grad = np.array(grad.data if isinstance(grad, Tensor) else grad, dtype=self.dtype)
            if grad.shape != self.shape:
                raise ValueError(f"backward: grad has shape {grad.shape} but the output "
                                 f"has shape {self.shape}")
        with np.errstate(all="ignore"):  # gradients follow IEEE rules; detect_anomaly reports them
            autograd.backward_pass(self, grad, retain_graph, retain_grads)

    def _const(self, value):
        """Wrap a non-Tensor operand; Python and numpy scalars take this tensor's float dtype."""
        if isinstance(value, Tensor):
            return value
        if isinstance(value, (int, float, np.integer, np.floating)) and self._data.dtype.kind == "f":
            return _tensor(np.asarray(value, dtype=self._data.dtype))
        if isinstance(value, np.ndarray) and value.dtype.kind in "fiub":
            return _tensor(value)
        try:
            return Tensor(value)
        except (TypeError, ValueError) as error:
            raise type(error)(f"cannot use a {type(value).__name__} as an operand of a Tensor "
                              f"op: {error}") from None

    # Operators and elementwise functions: each one primitive, or a few (mean, softmax, -x).
    def __add__(self, other): return _apply(ops.Add, (self, self._const(other)))
    def __radd__(self, other): return _apply(ops.Add, (self._const(other), self))
    def __sub__(self, other): return _apply(ops.Sub, (self, self._const(other)))
    def __rsub__(self, other): return _apply(ops.Sub, (self._const(other), self))
    def __mul__(self, other): return _apply(ops.Mul, (self, self._const(other)))
    def __rmul__(self, other): return _apply(ops.Mul, (self._const(other), self))
    def __truediv__(self, other): return _apply(ops.Div, (self, self._const(other)))
    def __rtruediv__(self, other): return _apply(ops.Div, (self._const(other), self))
    def __pow__(self, exponent): return _apply(ops.Pow, (self, self._const(exponent)))
    def __rpow__(self, base): return _apply(ops.Pow, (self._const(base), self))
    def __neg__(self): return self * -1
    def __matmul__(self, other): return _matmul(self, self._const(other))
    def __rmatmul__(self, other): return _matmul(self._const(other), self)
    def exp(self): return _apply(ops.Exp, (self,))
    def log(self): return _apply(ops.Log, (self,))
    def tanh(self): return _apply(ops.Tanh, (self,))
    def sigmoid(self): return _apply(ops.Sigmoid, (self,))
    def relu(self): return _apply(ops.ReLU, (self,))
    def sqrt(self): return _apply(ops.Sqrt, (self,))
    def abs(self): return _apply(ops.Abs, (self,))
    def log_softmax(self, axis=-1): return _apply(ops.LogSoftmax, (self,), axis=axis)
    def softmax(self, axis=-1): return self.log_softmax(axis).exp()
    def dropout(self, p, rng): return _apply(ops.Dropout, (self,), p=p, rng=rng)

    def clip(self, lo, hi):
        """Elementwise min(max(x, lo), hi); the gradient flows where lo <= x <= hi."""
        return _apply(ops.Clip, (self,), lo=lo, hi=hi)

    def sum(self, axis=None, keepdims=False):
        return _apply(ops.Sum, (self,), axis=_as_axis(axis), keepdims=keepdims)

    def mean(self, axis=None, keepdims=False):
        """The sum over ``axis`` divided by the count; the mean of nothing is nan, as in PyTorch."""
        total = self.sum(axis, keepdims)
        return total / (self.size // max(total.size, 1))

    def max(self, axis=None, keepdims=False):
        """Largest value along ``axis``; tied maxima share the gradient equally."""
        return _apply(ops.Max, (self,), axis=_as_axis(axis), keepdims=keepdims)

    # ----------------------------------------------------------------- shape
    def reshape(self, *shape):
        shape = tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
        return _apply(ops.Reshape, (self,), shape=shape)

    def transpose(self, *axes):
        """Permute the axes (numpy's rule): ``transpose()`` reverses them, like ``.T``."""
        axes = tuple(axes[0]) if len(axes) == 1 and isinstance(axes[0], (tuple, list)) else axes
        ndim = self.ndim
        axes = axes or tuple(range(ndim - 1, -1, -1))
        if (len(axes) != ndim or not all(isinstance(ax, int) and -ndim <= ax < ndim for ax in axes)
                or sorted(ax % ndim for ax in axes) != list(range(ndim))):
            raise ValueError(f"transpose: axes {axes} are not a permutation of "
                             f"the {ndim} axes of shape {self.shape}")
        return _apply(ops.Transpose, (self,), axes=tuple(ax % ndim for ax in axes))

    def __getitem__(self, index):
        return _apply(ops.GetItem, (self,), index=_as_index(index))

    def split(self, sizes, axis=0):
        """Pieces along ``axis``: of ``sizes`` each (an int; the last may be
        smaller), or of the given list of sizes, which must add up to the axis."""
        length = self._axis_length("split", axis)
        if isinstance(sizes, int):
            if sizes <= 0:
                raise ValueError(f"split: size must be positive, got {sizes}")
            cuts = [*range(0, length, sizes), length]
        else:
            cuts = [*itertools.accumulate(sizes, initial=0)]
            if cuts[-1] != length or min(sizes, default=0) < 0:
                raise ValueError(f"split: sizes {list(sizes)} do not add up to {length}, "
                                 f"the length of axis {axis} of shape {self.shape}")
        lead = (slice(None),) * (axis % self.ndim)
        return [self[lead + (slice(start, stop),)] for start, stop in zip(cuts, cuts[1:])]

    def chunk(self, n, axis=0):
        """Pieces of size ceil(length / n) along ``axis`` (PyTorch's rule: the
        last may be smaller, and there may be fewer than ``n``)."""
        if not isinstance(n, int) or n <= 0:
            raise ValueError(f"chunk: n must be a positive int, got {n!r}")
        return self.split(max(-(-self._axis_length("chunk", axis) // n), 1), axis)

    def _axis_length(self, op, axis):
        if not isinstance(axis, int) or not -self.ndim <= axis < self.ndim:
            raise ValueError(f"{op}: axis {axis!r} is out of range for shape {self.shape}")
        return self.shape[axis]


def _init(t, data, requires_grad=False, fn=None, parents=(), saved=None, name=None):
    """Set every field of a Tensor: the one list of them, for users' and ops' tensors alike."""
    t._data, t._version, t.grad, t._requires_grad = data, 0, None, requires_grad
    t.name, t.scope, t.parents, t._fn, t._saved = name, autograd.current_scope, parents, fn, saved
    t._versions = [p._version for p in parents] if saved is not None else ()
    t._retain, t._trace, t._number = False, None, _next_number()


def _tensor(data, requires_grad=False, fn=None, parents=(), saved=None, name=None):
    """A Tensor around an ndarray that is already of the right type."""
    t = Tensor.__new__(Tensor)
    _init(t, data, requires_grad, fn, parents, saved, name)
    return t


def _apply(fn, parents, **params):
    """Run primitive ``fn`` on the parents' arrays and record the result's graph.

    In grad mode the output keeps its op and parents; it requires grad if any
    parent does, and only then keeps what backward needs. Inside ``no_grad``
    the output is a leaf.
    """
    try:
        out, saved = fn.forward(*[p._data for p in parents], **params)
    except (ValueError, IndexError, TypeError) as error:
        raise _op_error(fn, parents, error) from None
    out = np.asarray(out)
    if not autograd.grad_enabled:
        t = _tensor(out)
    else:
        requires_grad = any([p._requires_grad for p in parents])
        t = _tensor(out, requires_grad, fn, parents, saved if requires_grad else None)
    for observer in autograd.observers:
        observer.applied(t, params)
    return anomaly.check_forward(t, fn) if autograd.anomaly else t


def _op_error(fn, parents, error):
    """numpy's complaint about an op's inputs, reworded to name the op and every input shape."""
    shapes = " and ".join(str(p.shape) for p in parents)
    reason = str(error).strip()
    if "could not be broadcast" in reason:
        reason = "the shapes do not broadcast together"
    kind = next(k for k in (ValueError, IndexError, TypeError) if isinstance(error, k))
    return kind(f"{fn.name}: {reason} (input shapes {shapes})")


def _as_array(data, dtype):
    """A fresh ndarray for the constructor, following the dtype rules of :class:`Tensor`."""
    if isinstance(data, Tensor):
        data = data._data
    elif isinstance(data, (list, tuple)) and any(isinstance(item, Tensor) for item in data):
        raise TypeError("Tensor: data is a list holding Tensors; to join Tensors use tr.stack or tr.cat")
    try:
        array = np.array(data, dtype=dtype)
    except (ValueError, TypeError) as error:
        raise type(error)(f"Tensor: cannot make an array from this {type(data).__name__} "
                          f"(dtype={dtype}): {error}") from None
    if dtype is None and array.dtype.kind == "f" and not isinstance(data, (np.ndarray, np.generic)):
        array = array.astype(np.float32)
    if array.dtype.kind not in "fiub":
        raise TypeError(f"Tensor: unsupported dtype {array.dtype}; expected floating, "
                        "integer or bool data")
    return array


def _as_index(index):
    """Tensors and lists inside an index become ndarrays."""
    if isinstance(index, tuple):
        return tuple(_as_index(i) for i in index)
    if isinstance(index, Tensor):
        return index._data
    return np.asarray(index) if isinstance(index, list) else index


def _as_axis(axis):
    """numpy takes several axes as a tuple only; accept a list too."""
    return tuple(axis) if isinstance(axis, list) else axis


def _matmul(a, b):
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"matmul: operands need at least one axis, got shapes {a.shape} and {b.shape}")
    inner_b = b.shape[0] if b.ndim == 1 else b.shape[-2]
    if a.shape[-1] != inner_b:
        raise ValueError(f"matmul: shapes {a.shape} and {b.shape} do not fit: "
                         f"inner sizes {a.shape[-1]} and {inner_b} differ")
    return _apply(ops.MatMul, (a, b))


def linear(x, weight, bias=None):
    """x W^T + b in one op: x (..., in), weight (out, in), bias broadcastable to (..., out).

    The A x(t), C h(t-1) and readout B h(t) of the article ("Recurrent Neural
    Networks (RNN)" by Gayathri Siva, Medium, 26 May 2021) are each one
    ``linear``; a whole (T, B, in) sequence goes through one matrix product.
    """
    x = x if isinstance(x, Tensor) else Tensor(x)
    if weight.ndim != 2:
        raise ValueError(f"linear: weight must be 2-D (out, in), got shape {weight.shape}")
    if not x.ndim or x.shape[-1] != weight.shape[1]:
        raise ValueError(f"linear: input of shape {x.shape} does not fit weight {weight.shape}: "
                         f"expected (..., {weight.shape[1]})")
    return _apply(ops.Linear, (x, weight) if bias is None else (x, weight, bias))


def cat(tensors, axis=0):
    """Concatenate tensors along an existing axis."""
    return _apply(ops.Cat, _tensor_list("cat", tensors), axis=axis)


def stack(tensors, axis=0):
    """Stack equally shaped tensors along a new axis."""
    return _apply(ops.Stack, _tensor_list("stack", tensors), axis=axis)


def _tensor_list(op, tensors):
    if isinstance(tensors, (Tensor, np.ndarray)):
        raise TypeError(f"{op}: expects a list of Tensors, got a single {type(tensors).__name__}")
    tensors = tuple(t if isinstance(t, Tensor) else Tensor(t) for t in tensors)
    if not tensors:
        raise ValueError(f"{op}: needs at least one tensor, got none")
    return tensors
