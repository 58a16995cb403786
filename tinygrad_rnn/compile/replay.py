"""The replay: a tape lowered to a list of small Python functions, run on new arrays.

Each instruction of a :class:`~.tape.Tape` becomes one closure
``run(V, S, G, L)`` over the call's slots (values, saved, gradients, and the
leaf Tensors whose ``.grad`` receives a gradient), with everything that the
trace fixed (the primitive, its input slots and params, how a share is
added) bound in advance. A ``Free`` that follows an instruction is folded
into its closure. A call fills the input slots and runs the closures in
order: no Tensor is built, nothing is sorted or looked up.

The whole replay runs under ``np.errstate(all="ignore")``, as the engine's
backward does, so the primitives are called without the ``errstate``
decorators some of them carry (each costs about a microsecond per call):
NaN and inf follow IEEE arithmetic without numpy's warnings. To find where
one appears, run the eager step under ``tr.detect_anomaly()``.
"""
import numpy as np

from .. import ops
from .tape import Backward, Forward, Free, LeafGrad, SliceGrad

NOTHING = Free()


def lower(steps):
    """The instructions ``steps`` as closures, each ``Free`` folded into the closure before it."""
    paired = []
    for step in steps:
        if isinstance(step, Free) and paired and paired[-1][1] is NOTHING:
            paired[-1] = (paired[-1][0], step)
        else:
            paired.append((step, NOTHING))
    return [lower_instruction(step, free) for step, free in paired]


def lower_instruction(step, free=NOTHING):
    """One instruction, then the releases of ``free``, as ``run(V, S, G, L)``; a pass's own
    instruction lowers itself."""
    lowerings = {Forward: _forward, Backward: _backward, SliceGrad: _slice_grad,
                 LeafGrad: _leaf_grad, Free: _free}
    lowering = lowerings.get(type(step))
    return step.lower(free) if lowering is None else lowering(step, free)


def plain(function):
    """A primitive's method without its ``np.errstate`` decorator (the replay sets it once)."""
    return getattr(function, "__wrapped__", function)


def _forward(step, free):
    forward, ins, out, params = plain(step.fn.forward), step.ins, step.out, step.params
    keep, wrap, bound, released = step.keep_saved, step.wrap, step.bound, free.values
    if len(ins) == 1 and keep and not wrap and not bound:  # the common cases, an optimisation
        (a,) = ins

        def run(V, S, G, L):
            V[out], S[out] = forward(V[a], **params)
            for s in released:
                V[s] = None
        return run
    if len(ins) == 2 and keep and not wrap and not bound and not params:
        a, b = ins

        def run(V, S, G, L):
            V[out], S[out] = forward(V[a], V[b])
            for s in released:
                V[s] = None
        return run

    def run(V, S, G, L):
        value, saved = forward(*[V[i] for i in ins], **(bind(params, bound, V) if bound else params))
        V[out] = np.asarray(value) if wrap else value
        if keep:
            S[out] = saved
        for s in released:
            V[s] = None
    return run


def bind(params, bound, V):
    """``params`` with the traced arrays of ``bound`` taken from this call's values."""
    params = dict(params)
    for key, position, slot in bound:
        if position is None:
            params[key] = V[slot]
        else:
            parts = list(params[key])
            parts[position] = V[slot]
            params[key] = tuple(parts)
    return params


def _backward(step, free):
    backward, node, needs = plain(step.fn.backward), step.node, step.needs
    routes = tuple((i, parent, shape, _KIND[kind])
                   for (i, parent, shape), kind in zip(step.routes, step.kinds))
    release = releaser(free)

    def run(V, S, G, L):
        shares = backward(S[node], G[node], needs)
        for i, parent, shape, kind in routes:
            g = shares[i]
            if g.shape != shape:
                g = ops.unbroadcast(g, shape)
            if kind == 0:
                G[parent] = g
            elif kind == 1:
                G[parent] = G[parent] + g
            else:
                G[parent] += g
        if release is not None:
            release(V, S, G)
    return run


def releaser(free):
    """``release(V, S, G)``: drop the slots that ``free`` names (None if it names none)."""
    values, saved, grads = free.values, free.saved, free.grads
    if not (values or saved or grads):
        return None

    def release(V, S, G):
        for s in values:
            V[s] = None
        for s in saved:
            S[s] = None
        for s in grads:
            G[s] = None
    return release


def _set(G, slot, g):
    G[slot] = g


def _new(G, slot, g):
    G[slot] = G[slot] + g


def _inplace(G, slot, g):
    G[slot] += g


# How a share goes into a gradient slot, as planned by tape.plan_accumulation.
ADD = {"set": _set, "new": _new, "inplace": _inplace}
_KIND = {"set": 0, "new": 1, "inplace": 2}  # the same, as numbers the closures test inline


def _slice_grad(step, free):
    node, parent, shape, dtype = step.node, step.parent, step.shape, step.dtype
    kind, index, add_into = step.kind, step.index, ops.GetItem.add_into
    release = releaser(free)
    host, host_shape, host_dtype, host_index = step.host or (None, None, None, None)
    if step.assign:  # a joined slice (passes.join_slices): its place in the parent, written over
        def run(V, S, G, L):
            g = G[node]
            if kind == "empty" and host is None:
                G[parent] = np.empty(shape, np.result_type(dtype, g.dtype))
            elif kind == "empty":  # the parent's gradient is a place in a larger one (place_slices)
                if G[host] is None:
                    G[host] = np.empty(host_shape, np.result_type(host_dtype, g.dtype))
                G[parent] = G[host][host_index]
            G[parent][index] = g
            if release is not None:
                release(V, S, G)
        return run

    def run(V, S, G, L):
        g = G[node]
        if kind == "owned":
            buffer = G[parent]
        elif kind == "copy":
            buffer = G[parent] = np.array(G[parent], dtype=np.result_type(G[parent], g.dtype))
        else:
            buffer = G[parent] = np.zeros(shape, np.result_type(dtype, g.dtype))
        add_into(buffer, S[node], g)
        if release is not None:
            release(V, S, G)
    return run


def _leaf_grad(step, free):
    slot, dtype = step.slot, step.dtype
    release = releaser(free) or _nothing

    def run(V, S, G, L):
        leaf = L[slot]
        if leaf.grad is None:
            leaf.grad = np.array(G[slot], dtype=dtype)
        else:
            leaf.grad += G[slot]
        release(V, S, G)
    return run


def _free(step, free):
    release = releaser(step) or _nothing

    def run(V, S, G, L):
        release(V, S, G)
    return run


def _nothing(V, S, G):
    pass
