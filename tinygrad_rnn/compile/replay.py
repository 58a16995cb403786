"""The replay: a tape lowered to a list of small Python functions, run on new arrays.

Each instruction of a :class:`~.tape.Tape` becomes one closure
``run(V, S, G, L)`` over the call's slots (values, saved, gradients, and the
leaf Tensors whose ``.grad`` receives a gradient), with everything that the
trace fixed (the primitive, its input slots and params, how a share is
added) bound in advance. A call fills the input slots and runs the closures
in order: no Tensor is built, nothing is sorted or looked up.
"""
import numpy as np

from .. import ops
from .tape import Backward, Forward, Free, LeafGrad, SliceGrad


def lower(tape, backward=True):
    """The tape's instructions as closures, forward then (if ``backward``) backward."""
    program = [lower_instruction(instruction) for instruction in tape.forward]
    if backward:
        program += [lower_instruction(instruction) for instruction in tape.backward]
    return program


def lower_instruction(instruction):
    """One instruction as ``run(V, S, G, L)``; a pass's own instruction lowers itself."""
    lowerings = {Forward: _forward, Backward: _backward, SliceGrad: _slice_grad,
                 LeafGrad: _leaf_grad, Free: _free}
    lowering = lowerings.get(type(instruction))
    return instruction.lower() if lowering is None else lowering(instruction)


def _forward(instruction):
    forward, ins, out, params = instruction.fn.forward, instruction.ins, instruction.out, instruction.params
    keep, wrap, bound = instruction.keep_saved, instruction.wrap, instruction.bound
    if len(ins) == 1 and keep and not wrap and not bound:  # the common case, an optimisation
        (a,) = ins

        def run(V, S, G, L):
            V[out], S[out] = forward(V[a], **params)
        return run
    if len(ins) == 2 and keep and not wrap and not bound and not params:  # likewise
        a, b = ins

        def run(V, S, G, L):
            V[out], S[out] = forward(V[a], V[b])
        return run

    def run(V, S, G, L):
        value, saved = forward(*[V[i] for i in ins], **(bind(params, bound, V) if bound else params))
        V[out] = np.asarray(value) if wrap else value
        if keep:
            S[out] = saved
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


def _backward(instruction):
    backward, node, needs = instruction.fn.backward, instruction.node, instruction.needs
    routes = tuple((i, parent, shape, _ADD[kind])
                   for (i, parent, shape), kind in zip(instruction.routes, instruction.kinds))

    def run(V, S, G, L):
        shares = backward(S[node], G[node], needs)
        for i, parent, shape, add in routes:
            g = shares[i]
            add(G, parent, g if g.shape == shape else ops.unbroadcast(g, shape))
    return run


def _set(G, slot, g):
    G[slot] = g


def _new(G, slot, g):
    G[slot] = G[slot] + g


def _inplace(G, slot, g):
    G[slot] += g


# How a share goes into a gradient slot, as planned by tape.plan_accumulation.
_ADD = {"set": _set, "new": _new, "inplace": _inplace}


def _slice_grad(instruction):
    node, parent, shape, dtype = instruction.node, instruction.parent, instruction.shape, instruction.dtype
    kind, assign, add_into = instruction.kind, instruction.assign, ops.GetItem.add_into

    def run(V, S, G, L):
        g = G[node]
        if kind == "owned":
            buffer = G[parent]
        elif kind == "copy":
            buffer = G[parent] = np.array(G[parent], dtype=np.result_type(G[parent], g.dtype))
        else:
            make = np.empty if kind == "empty" else np.zeros
            buffer = G[parent] = make(shape, np.result_type(dtype, g.dtype))
        if assign:
            buffer[S[node][1]] = g
        else:
            add_into(buffer, S[node], g)
    return run


def _leaf_grad(instruction):
    slot, dtype = instruction.slot, instruction.dtype

    def run(V, S, G, L):
        leaf = L[slot]
        if leaf.grad is None:
            leaf.grad = np.array(G[slot], dtype=dtype)
        else:
            leaf.grad += G[slot]
    return run


def _free(instruction):
    values, saved, grads = instruction.values, instruction.saved, instruction.grads

    def run(V, S, G, L):
        for s in values:
            V[s] = None
        for s in saved:
            S[s] = None
        for s in grads:
            G[s] = None
    return run
