"""Autograd: the recording modes and backpropagation through the graph of Tensors.

The graph is what ``tensor.py`` records on each op's output: ``parents``, the
primitive ``_fn`` and what its backward needs, ``_saved``. ``backward_pass``
is one loop over that graph, children before parents; the modes say whether
ops record (``no_grad``), where they are (``scope``) and whether a NaN or inf
stops them (``detect_anomaly``). This module knows Tensors only by those
fields, so that imports point one way: ops, anomaly <- autograd <- tensor;
what the anomaly mode reports is in ``anomaly.py``.
"""
from contextlib import contextmanager

import numpy as np

from . import ops
from .anomaly import check_gradient

# The only global state: the grad and anomaly modes, the scope path and the observers.
grad_enabled = True
anomaly = False
current_scope = ""
# Observers (``bptt.record``, ``tr.compile``'s tracer) see what the engine does; see observing.
observers = []


@contextmanager
def _setting(name, value):
    """Set the module global ``name`` to ``value`` inside the block."""
    previous = globals()[name]
    globals()[name] = value
    try:
        yield value
    finally:
        globals()[name] = previous


def no_grad():
    """Inside, operations record no graph: outputs are leaves without gradients."""
    return _setting("grad_enabled", False)


def detect_anomaly():
    """Inside, the first NaN or inf made by any op, forward or backward, raises a
    ``FloatingPointError`` naming the op, the user's line and the time step.
    Off by default: the check costs a pass over every array."""
    return _setting("anomaly", True)


def scope(name):
    """Inside, new tensors carry ``.scope`` = the nested path, e.g. "lstm/l0/t=3"."""
    if not isinstance(name, str) or not name or "/" in name:
        raise ValueError(f"scope: name must be a non-empty string without '/' (the path "
                         f"separator; nest scopes instead), got {name!r}")
    return _setting("current_scope", f"{current_scope}/{name}" if current_scope else name)


def is_grad_enabled():
    """Whether operations record the graph (False inside ``no_grad``)."""
    return grad_enabled


def is_anomaly_enabled():
    """Whether ``detect_anomaly`` is on."""
    return anomaly


@contextmanager
def observing(observer):
    """Inside, ``observer`` is told ``applied(t, params)`` after an op makes t, ``read(t, how)``
    when a value is read out (item, float, bool, numpy), and in backward ``gradient(t, g)``
    on each tensor's turn and ``added(node, leaf, g)`` for what node's op adds into a leaf's
    gradient (summed to the leaf's shape). With none open the engine pays one list check."""
    observers.append(observer)
    try:
        yield observer
    finally:
        observers.remove(observer)


# ------------------------------------------------------------------ backward

def backward_pass(root, grad, retain_graph, retain_grads):
    """Backpropagation as one loop: visit the graph newest first, so that when a
    tensor's turn comes every tensor computed from it has passed its gradient on;
    call its op's backward and add the results into its parents' gradients."""
    grads = {root: [grad, False]}  # tensor -> [its gradient so far, whether this walk owns the array]
    for node in _graph_order(root):
        if node not in grads:  # nothing reached it: its inputs get nothing from it either
            continue
        g = grads.pop(node)[0]
        for observer in observers:
            observer.gradient(node, g)
        if node._fn is None:  # a leaf: its gradient accumulates across backward calls
            if node.grad is None:
                node.grad = np.array(g, dtype=node._data.dtype)
            else:
                node.grad += g
            continue
        if retain_grads or node._retain:
            node.grad = np.array(g, dtype=node._data.dtype) if node.grad is None else node.grad + g
        _check_unchanged(node)
        if node._fn is ops.GetItem:  # an optimisation: see GetItem.add_into
            parent = node.parents[0]
            ops.GetItem.add_into(_owned(grads, parent, g.dtype), node._saved, g)
            if observers and parent._fn is None:
                _tell_added(node, parent, ops.GetItem.backward(node._saved, g, (True,))[0])
        else:
            parent_grads = node._fn.backward(node._saved, g, [p._requires_grad for p in node.parents])
            for i, (parent, parent_grad) in enumerate(zip(node.parents, parent_grads)):
                if parent._requires_grad:
                    if anomaly:
                        check_gradient(node, i, parent_grad)
                    parent_grad = _accumulate(grads, parent, parent_grad)
                    if observers and parent._fn is None:
                        _tell_added(node, parent, parent_grad)
        if not retain_graph:
            node._saved = None


def _tell_added(node, leaf, g):
    for observer in observers:
        observer.added(node, leaf, g)


def _graph_order(root):
    """Every tensor that ``root`` depends on through grad-requiring paths, newest first.

    An iterative walk collects them (depth costs no recursion), then reverse
    creation order sorts them: each tensor comes after every tensor computed
    from it. The walk fails before any gradient is touched if part of the
    graph was released.
    """
    found, stack = {root: None}, [root]
    while stack:
        node = stack.pop()
        if node._fn is not None and node._saved is None:
            raise RuntimeError(
                f"backward: the graph through '{node._fn.name}' (shape {node.shape}) was "
                "released by an earlier backward; call the first backward with "
                "retain_graph=True to backpropagate through it again")
        for parent in node.parents:
            if parent._requires_grad and parent not in found:
                found[parent] = None
                stack.append(parent)
    return sorted(found, key=lambda t: t._number, reverse=True)


def _accumulate(grads, tensor, g):
    """Add ``g``, summed back to ``tensor``'s shape, into its gradient so far; returns that g.

    The first gradient to arrive is kept as it is: it may be the very array
    that another tensor received (add passes g to both inputs). The first sum
    is a new array, owned by this walk, so later ones add into it in place.
    """
    if g.shape != tensor._data.shape:
        g = ops.unbroadcast(g, tensor._data.shape)
    entry = grads.get(tensor)
    if entry is None:
        grads[tensor] = [g, False]
    elif entry[1]:
        entry[0] += g
    else:
        grads[tensor] = [entry[0] + g, True]
    return g


def _owned(grads, tensor, dtype):
    """``tensor``'s gradient so far as an array this walk owns (zeros if none yet), to add into."""
    entry = grads.get(tensor)
    if entry is None:
        entry = grads[tensor] = [np.zeros(tensor._data.shape, np.result_type(tensor._data, dtype)), True]
    elif not entry[1]:
        entry[:] = [np.array(entry[0], dtype=np.result_type(entry[0], dtype)), True]
    return entry[0]


def _check_unchanged(node):
    """Refuse an input whose array the op saved and that was changed in place since forward."""
    for parent, version in zip(node.parents, node._versions):
        if parent._version != version and any(s is parent._data for s in node._saved):
            raise RuntimeError(
                f"backward: {parent.name or 'a tensor'!r} of shape {parent.shape}, an input of "
                f"'{node._fn.name}', was changed in place after the forward pass (version "
                f"{parent._version}, saved at {version}), so its saved values are gone and the "
                "gradient would be wrong; change it after backward, or use a copy")
