"""Tensor: an n-dimensional array that remembers how it was computed.

Every operation on Tensors runs a primitive from ``ops.py`` on the underlying
ndarrays and returns a new Tensor whose ``parents`` are the inputs and whose
``op`` names the primitive. The graph lives on the outputs only: nothing
points from an input to the tensors made from it, so a graph nobody refers to
is freed by reference counting.

``backward()`` walks that graph once, children before parents (one iterative
topological sort, so a 100 000-node chain needs no deep recursion), calls each
primitive's backward with the gradient of its output, and adds the results
into the gradients of its inputs. Backpropagation through time is exactly
this walk over an unrolled recurrent network.

Non-finite values follow IEEE arithmetic, as in PyTorch. Where a formula
meets its own edge on finite inputs (``x / 0``, ``log(0)``, ``exp(100)`` in
float32, ``sqrt(-1)``) the result is inf or NaN without a numpy warning, and
the backward walk never warns. Plain arithmetic that overflows or that is fed
an inf or NaN (``inf * 0``) keeps numpy's RuntimeWarning: silencing it would
cost every op a ``np.errstate``, and it points at a real problem.
``detect_anomaly()`` is the tool that finds where a NaN or inf first appears.
"""
import itertools
import linecache
import os
import sys
from contextlib import contextmanager
from operator import attrgetter

import numpy as np

from . import deferred, ops

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep

# The only global state: the grad and anomaly modes and the current scope path.
_grad_enabled = True
_anomaly = False
_scope = ""
_data_of, _needs_grad_of = attrgetter("data"), attrgetter("_needs_grad")
_creation_number = attrgetter("_number")
# Every tensor takes the next number at creation. An op's inputs exist before
# its output, so reverse creation order is an order for backward.
_next_number = itertools.count().__next__


@contextmanager
def no_grad():
    """Inside, operations record no graph: outputs are leaves without gradients."""
    global _grad_enabled
    previous, _grad_enabled = _grad_enabled, False
    try:
        yield
    finally:
        _grad_enabled = previous


def is_grad_enabled():
    """Whether operations currently record the graph (False inside ``no_grad``)."""
    return _grad_enabled


class scope:
    """Tensors created inside carry ``.scope`` = the nested path, e.g. "lstm/l0/t=3".

    A class rather than a generator: ``unroll`` opens one per time step.
    """
    __slots__ = ("name", "previous")

    def __init__(self, name):
        if not isinstance(name, str) or not name or "/" in name:
            raise ValueError(f"scope: name must be a non-empty string without '/' (the path "
                             f"separator; nest scopes instead), got {name!r}")
        self.name = name

    def __enter__(self):
        global _scope
        self.previous = _scope
        _scope = f"{_scope}/{self.name}" if _scope else self.name
        return _scope

    def __exit__(self, *exc):
        global _scope
        _scope = self.previous


@contextmanager
def detect_anomaly():
    """Inside, the first NaN or inf made by any op, forward or backward, raises.

    The ``FloatingPointError`` names the op and the line of user code that
    created it. Off by default: the check costs a pass over every array.
    """
    global _anomaly
    previous, _anomaly = _anomaly, True
    try:
        yield
    finally:
        _anomaly = previous


def _user_frame():
    """(file, line) of the innermost caller outside this package, or None."""
    frame = sys._getframe(1)
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        frame = frame.f_back
    return None if frame is None else (frame.f_code.co_filename, frame.f_lineno)


def _where(trace):
    if trace is None:
        return "an unknown line"
    filename, lineno = trace
    code = linecache.getline(filename, lineno).strip()
    return f"{filename}:{lineno}" + (f": {code}" if code else "")


def _nonfinite_kind(array):
    return "nan" if np.isnan(array).any() else "inf"


def _leaf(array, requires_grad=False, name=None):
    """A graph leaf around an ndarray that is already of the right type."""
    t = Tensor.__new__(Tensor)
    t.data = array
    t.grad = None
    t._needs_grad = requires_grad
    t.name = name
    t.scope = _scope
    t.parents = ()
    t._fn = None
    t._saved = None
    t._retain = False
    t._trace = None
    t._number = _next_number()
    return t


def _apply(fn, parents, **params):
    """Run primitive ``fn`` on the parents' arrays and record the result's graph.

    The result requires grad if any parent does; only then are the arrays
    that backward needs kept. Inside ``no_grad`` nothing is recorded.
    """
    arity = len(parents)
    try:  # the common cases (unary or binary, no parameters) without building argument lists
        if params:
            if arity == 1:
                out, saved = fn.forward(parents[0].data, **params)
            else:
                out, saved = fn.forward(*map(_data_of, parents), **params)
        elif arity == 1:
            out, saved = fn.forward(parents[0].data)
        elif arity == 2:
            out, saved = fn.forward(parents[0].data, parents[1].data)
        else:
            out, saved = fn.forward(*map(_data_of, parents))
    except (ValueError, IndexError, TypeError) as error:
        raise _op_error(fn, parents, error) from None
    if type(out) is not np.ndarray:
        out = np.asarray(out)
    t = Tensor.__new__(Tensor)
    t.data = out
    t.grad = None
    t.name = None
    t.scope = _scope
    t._retain = False
    t._trace = None
    t._number = _next_number()
    if _grad_enabled:
        if arity == 1:
            requires_grad = parents[0]._needs_grad
        elif arity == 2:
            requires_grad = parents[0]._needs_grad or parents[1]._needs_grad
        else:
            requires_grad = any(map(_needs_grad_of, parents))
        t._fn = fn
        t.parents = parents
        t._needs_grad = requires_grad
        t._saved = saved if requires_grad else None
    else:
        t._fn = None
        t.parents = ()
        t._needs_grad = False
        t._saved = None
    if _anomaly:
        t._trace = _user_frame()
        if not np.isfinite(out).all():
            raise FloatingPointError(
                f"detect_anomaly: '{fn.name}' produced {_nonfinite_kind(out)} in forward, "
                f"at {_where(t._trace)}")
    return t


def _op_error(fn, parents, error):
    """numpy's complaint about an op's inputs, reworded to name the op and every input shape."""
    shapes = " and ".join(str(p.shape) for p in parents)
    reason = str(error).strip()
    if "could not be broadcast" in reason:
        reason = "the shapes do not broadcast together"
    kind = ValueError if isinstance(error, ValueError) else (
        IndexError if isinstance(error, IndexError) else TypeError)
    return kind(f"{fn.name}: {reason} (input shapes {shapes})")


def _as_array(data, dtype):
    """A fresh ndarray for the constructor, following the dtype rules of :class:`Tensor`."""
    if isinstance(data, Tensor):
        data = data.data
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
    if type(index) is int:
        return index
    if isinstance(index, tuple):
        return tuple(_as_index(i) for i in index)
    if isinstance(index, Tensor):
        return index.data
    if isinstance(index, list):
        return np.asarray(index)
    return index


def _as_axis(axis):
    """numpy takes several axes as a tuple only; accept a list too."""
    return tuple(axis) if isinstance(axis, list) else axis


class Tensor:
    """An ndarray with autograd.

    ``Tensor(data, requires_grad=False, dtype=None, name=None)`` copies
    ``data``. Python floats and lists become float32; a floating ndarray (or
    numpy scalar) keeps its dtype; integer and bool data stay as they are
    (indices, targets) and cannot require a gradient. Python and numpy scalars
    used as operands take the tensor's float dtype: ``x * 2`` keeps float32.
    """
    __slots__ = ("data", "grad", "_needs_grad", "name", "scope", "parents",
                 "_fn", "_saved", "_retain", "_trace", "_number")
    # ndarray <op> Tensor defers to the Tensor's reflected operator.
    __array_priority__ = 1000
    __array_ufunc__ = None

    def __init__(self, data, requires_grad=False, dtype=None, name=None):
        array = _as_array(data, dtype)
        if requires_grad and array.dtype.kind != "f":
            raise TypeError(f"Tensor: requires_grad=True needs a floating dtype "
                            f"(float32 or float64), got {array.dtype}")
        self.data = array
        self.grad = None
        self._needs_grad = bool(requires_grad)
        self.name = name
        self.scope = _scope
        self.parents = ()
        self._fn = None
        self._saved = None
        self._retain = False
        self._trace = None
        self._number = _next_number()

    # ------------------------------------------------------------ attributes
    shape = property(lambda self: self.data.shape, doc="Shape of the data.")
    ndim = property(lambda self: self.data.ndim, doc="Number of axes.")
    size = property(lambda self: self.data.size, doc="Number of elements.")
    dtype = property(lambda self: self.data.dtype, doc="numpy dtype of the data.")
    op = property(lambda self: None if self._fn is None else self._fn.name,
                  doc="Name of the primitive that produced this tensor; None for a leaf.")
    T = property(lambda self: self.transpose(), doc="All axes reversed.")

    @property
    def requires_grad(self):
        """Whether backward computes a gradient for this tensor."""
        return self._needs_grad

    @requires_grad.setter
    def requires_grad(self, value):
        if value and self.data.dtype.kind != "f":
            raise TypeError(f"requires_grad: needs a floating dtype (float32 or float64), "
                            f"got {self.data.dtype}")
        if self._fn is not None:
            raise RuntimeError(f"requires_grad: can only be changed on a leaf, not on the output "
                               f"of '{self._fn.name}'; x.detach() gives a leaf")
        self._needs_grad = bool(value)

    def __len__(self):
        if not self.data.ndim:
            raise TypeError("len() of a 0-d Tensor")
        return len(self.data)

    def __iter__(self):
        """The rows along the first axis, each one a ``getitem`` node: ``for x in xs``."""
        return (self[i] for i in range(len(self)))

    def __bool__(self):
        return bool(self._single_value("bool"))

    def __float__(self):
        return float(self._single_value("float"))

    def __repr__(self):
        extra = ", requires_grad=True" if self.requires_grad else ""
        extra += f", op={self.op}" if self._fn is not None else ""
        extra += f", name={self.name!r}" if self.name is not None else ""
        return f"Tensor({np.array2string(self.data, prefix='Tensor(')}, dtype={self.dtype}{extra})"

    def numpy(self):
        """The underlying ndarray (shared, not copied)."""
        return self.data

    def item(self):
        """The single value of a size-1 tensor as a Python number."""
        return self._single_value("item")

    def _single_value(self, caller):
        if self.data.size != 1:
            raise ValueError(f"{caller}: needs a tensor with one element, got shape {self.shape}")
        return self.data.item()

    def detach(self):
        """A new leaf sharing this data, cut from the graph (truncated BPTT)."""
        return _leaf(self.data, name=self.name)

    def retain_grad(self):
        """Keep ``.grad`` on this non-leaf after backward (leaves always keep it)."""
        if not self.requires_grad:
            raise RuntimeError("retain_grad: this tensor does not require grad, "
                               "so backward never reaches it")
        self._retain = True
        return self

    # ------------------------------------------------------------- backward
    def backward(self, grad=None, retain_graph=False, retain_grads=False):
        """Backpropagate from this tensor: add d(self)/d(leaf) into every leaf's ``.grad``.

        ``grad`` is dL/d(self), needed unless self has one element. Leaf
        gradients accumulate across calls. The saved arrays of the graph are
        released afterwards unless ``retain_graph``; ``retain_grads`` keeps
        ``.grad`` on every non-leaf too.
        """
        if not self.requires_grad:
            raise RuntimeError(
                f"backward: this tensor (shape {self.shape}) does not require grad: "
                "neither it nor anything it was computed from has requires_grad=True")
        if grad is None:
            if self.data.size != 1:
                raise RuntimeError(
                    f"backward: the output has shape {self.shape}; backward() without "
                    "grad needs a scalar output, otherwise pass grad= of the output's shape")
            grad = np.ones_like(self.data)
        else:
            grad = np.array(grad.data if isinstance(grad, Tensor) else grad, dtype=self.dtype)
            if grad.shape != self.shape:
                raise ValueError(f"backward: grad has shape {grad.shape} but the output "
                                 f"has shape {self.shape}")
        with np.errstate(all="ignore"):  # gradients follow IEEE rules; detect_anomaly reports them
            _backprop(self, grad, retain_graph, retain_grads)

    # -------------------------------------------------------------- helpers
    def _const(self, value):
        """Wrap a non-Tensor operand; Python and numpy scalars take this tensor's float dtype."""
        if isinstance(value, Tensor):
            return value
        if isinstance(value, (int, float, np.integer, np.floating)) and self.data.dtype.kind == "f":
            return _leaf(np.asarray(value, dtype=self.data.dtype))
        if isinstance(value, np.ndarray) and value.dtype.kind in "fiub":
            return _leaf(value)
        try:
            return Tensor(value)
        except (TypeError, ValueError) as error:
            raise type(error)(f"cannot use a {type(value).__name__} as an operand of a Tensor "
                              f"op: {error}") from None

    # ------------------------------------------------------------ arithmetic
    def __add__(self, other):
        return _apply(ops.Add, (self, self._const(other)))

    def __radd__(self, other):
        return _apply(ops.Add, (self._const(other), self))

    def __sub__(self, other):
        return _apply(ops.Sub, (self, self._const(other)))

    def __rsub__(self, other):
        return _apply(ops.Sub, (self._const(other), self))

    def __mul__(self, other):
        return _apply(ops.Mul, (self, self._const(other)))

    def __rmul__(self, other):
        return _apply(ops.Mul, (self._const(other), self))

    def __truediv__(self, other):
        return _apply(ops.Div, (self, self._const(other)))

    def __rtruediv__(self, other):
        return _apply(ops.Div, (self._const(other), self))

    def __pow__(self, exponent):
        return _apply(ops.Pow, (self, self._const(exponent)))

    def __rpow__(self, base):
        return _apply(ops.Pow, (self._const(base), self))

    def __neg__(self):
        return _apply(ops.Neg, (self,))

    def __matmul__(self, other):
        return _matmul(self, self._const(other))

    def __rmatmul__(self, other):
        return _matmul(self._const(other), self)

    # ----------------------------------------------------------- elementwise
    def exp(self):
        return _apply(ops.Exp, (self,))

    def log(self):
        return _apply(ops.Log, (self,))

    def tanh(self):
        return _apply(ops.Tanh, (self,))

    def sigmoid(self):
        return _apply(ops.Sigmoid, (self,))

    def relu(self):
        return _apply(ops.ReLU, (self,))

    def sqrt(self):
        return _apply(ops.Sqrt, (self,))

    def abs(self):
        return _apply(ops.Abs, (self,))

    def clip(self, lo, hi):
        """Elementwise min(max(x, lo), hi); the gradient flows where lo <= x <= hi."""
        return _apply(ops.Clip, (self,), lo=lo, hi=hi)

    def softmax(self, axis=-1):
        return _apply(ops.Softmax, (self,), axis=axis)

    def log_softmax(self, axis=-1):
        return _apply(ops.LogSoftmax, (self,), axis=axis)

    # ------------------------------------------------------------ reductions
    def sum(self, axis=None, keepdims=False):
        return _apply(ops.Sum, (self,), axis=_as_axis(axis), keepdims=keepdims)

    def mean(self, axis=None, keepdims=False):
        return _apply(ops.Mean, (self,), axis=_as_axis(axis), keepdims=keepdims)

    def max(self, axis=None, keepdims=False):
        """Largest value along ``axis``; tied maxima share the gradient equally."""
        return _apply(ops.Max, (self,), axis=_as_axis(axis), keepdims=keepdims)

    # ----------------------------------------------------------------- shape
    def reshape(self, *shape):
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        return _apply(ops.Reshape, (self,), shape=shape)

    def transpose(self, *axes):
        """Permute the axes (numpy's rule): ``transpose()`` reverses them, like ``.T``."""
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = tuple(axes[0])
        ndim = self.ndim
        if not axes:
            axes = tuple(range(ndim - 1, -1, -1))
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
        lead = (slice(None),) * (axis % self.data.ndim)
        return [_apply(ops.GetItem, (self,), index=lead + (slice(start, stop),))
                for start, stop in zip(cuts, cuts[1:])]

    def chunk(self, n, axis=0):
        """Pieces of size ceil(length / n) along ``axis`` (PyTorch's rule: the
        last may be smaller, and there may be fewer than ``n``)."""
        if not isinstance(n, int) or n <= 0:
            raise ValueError(f"chunk: n must be a positive int, got {n!r}")
        length = self._axis_length("chunk", axis)
        return self.split(max(-(-length // n), 1), axis)

    def _axis_length(self, op, axis):
        shape = self.data.shape
        if not isinstance(axis, int) or not -len(shape) <= axis < len(shape):
            raise ValueError(f"{op}: axis {axis!r} is out of range for shape {shape}")
        return shape[axis]


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

    The article's A x(t) + C h(t-1) terms and the readout B h(t) are each one
    ``linear``; a whole (T, B, in) sequence goes through one matrix product.
    """
    x = x if isinstance(x, Tensor) else Tensor(x)
    x_shape, weight_shape = x.data.shape, weight.data.shape
    if len(weight_shape) != 2:
        raise ValueError(f"linear: weight must be 2-D (out, in), got shape {weight_shape}")
    if not x_shape or x_shape[-1] != weight_shape[1]:
        raise ValueError(f"linear: input of shape {x_shape} does not fit weight {weight_shape}: "
                         f"expected (..., {weight_shape[1]})")
    parents = (x, weight) if bias is None else (x, weight, bias)
    return _apply(ops.Linear, parents)


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


# ------------------------------------------------------------------ backward

def _graph_order(root):
    """Every tensor that ``root`` depends on through grad-requiring paths,
    each listed after every tensor computed from it (newest first).

    An op's inputs are created before its output, so reverse creation order
    is a topological order. An iterative walk collects the tensors, so depth
    costs no recursion; it fails before any gradient is touched if part of
    the graph was released.
    """
    seen = {root}
    found = [root]  # in walk order, which is nearly newest first: the sort has little to do
    stack = [root]
    while stack:
        node = stack.pop()
        if node._fn is not None and node._saved is None:
            raise RuntimeError(
                f"backward: the graph through '{node._fn.name}' (shape {node.shape}) was "
                "released by an earlier backward; call the first backward with "
                "retain_graph=True to backpropagate through it again")
        for parent in node.parents:
            if parent._needs_grad and parent not in seen:
                seen.add(parent)
                found.append(parent)
                stack.append(parent)
    found.sort(key=_creation_number, reverse=True)
    return found


_ONLY_INPUT = (True,)


def _backprop(root, grad, retain_graph, retain_grads):
    """Visit the graph newest first: when a tensor's turn comes, every tensor
    computed from it has passed its gradient on. Each gradient is dropped
    right after use."""
    grads = {root: grad}
    waiting = {}  # tensor -> its deferred gradients (Scatter, Product), gathered on its turn
    owned = set()  # tensors whose gradient buffer was allocated here, so += in place is safe
    Scatter, Product = deferred.Scatter, deferred.Product  # locals: this loop runs once per node
    gather, unbroadcast = deferred.gather, ops.unbroadcast
    for node in _graph_order(root):
        g = grads.pop(node, None)
        if node in waiting:
            g = gather(g, waiting.pop(node))
            owned.add(node)
        elif g is None:  # nothing reached it: its inputs get nothing from it either
            continue
        fn = node._fn
        if fn is None:
            if node.grad is not None:
                node.grad += g
            elif node in owned and g.dtype == node.data.dtype:
                node.grad = g  # a buffer made here: no one else holds it
            else:
                node.grad = np.array(g, dtype=node.data.dtype)
            continue
        if retain_grads or node._retain:
            node.grad = np.array(g, dtype=node.data.dtype) if node.grad is None else node.grad + g
        parents = node.parents
        arity = len(parents)
        # A unary node is in the graph only because its one input needs a gradient.
        if arity == 1:
            needs = _ONLY_INPUT
        elif arity == 2:
            needs = (parents[0]._needs_grad, parents[1]._needs_grad)
        else:
            needs = list(map(_needs_grad_of, parents))
        parent_grads = fn.backward(node._saved, g, needs)
        if not retain_graph:
            node._saved = None
        if _anomaly:
            _check_backward(node, parent_grads)
        for parent, pg in zip(parents, parent_grads):
            if pg is None or not parent._needs_grad:
                continue
            if type(pg) is Scatter or type(pg) is Product:
                if parent in waiting:
                    waiting[parent].append(pg)
                else:
                    waiting[parent] = [pg]
                continue
            if pg.shape != parent.data.shape:
                pg = unbroadcast(pg, parent.data.shape)
            acc = grads.get(parent)
            if acc is None:
                grads[parent] = pg
            elif parent in owned:
                acc += pg
            else:
                acc = acc + pg
                grads[parent] = acc
                if type(acc) is np.ndarray:  # not a numpy scalar, which is immutable
                    owned.add(parent)


def _check_backward(node, parent_grads):
    """Under ``detect_anomaly``: the first non-finite gradient names its op and source line."""
    fn = node._fn
    for i, (parent, pg) in enumerate(zip(node.parents, parent_grads)):
        values = (pg.values if type(pg) is deferred.Scatter else
                  pg.dense() if type(pg) is deferred.Product else pg)
        if pg is not None and parent._needs_grad and not np.isfinite(values).all():
            raise FloatingPointError(
                f"detect_anomaly: backward of '{fn.name}' produced {_nonfinite_kind(values)} "
                f"in the gradient of its input {i} (shape {parent.shape}); "
                f"the '{fn.name}' was created at {_where(node._trace)}")
