"""Tracing: run ``fn`` once with the reference engine and write down every primitive call.

The tracer is an observer of the engine (``autograd.observing``): it is told
each op applied (the output Tensor knows its primitive, parents and params)
and each value read out. Every Tensor it meets gets a slot, and each slot is
one of four things:

- an argument of the call (its array is swapped at every replay);
- a leaf from outside ``fn``, such as a Parameter (read afresh at every call,
  so an optimizer's updates are seen);
- a constant that ``fn`` made itself (a zero initial state, a scalar operand):
  frozen, the same array at every call;
- the output of an op: recomputed at every call.

After ``fn`` returns, the backward half of the tape is written from the graph
in ``autograd.backward_pass``'s order. What a replay cannot redo is refused
with a :class:`TraceError`: reading a value that varies between calls
(``.item()``, ``float()``, ``bool()``, ``.numpy()``: the replay would freeze
it), a leaf that requires grad made inside ``fn`` (its gradient would
vanish), ``retain_grad()`` on a tensor ``fn`` computes (the replay fills the
leaves' ``.grad`` only), an op run under ``no_grad`` inside ``fn`` (its
inputs are unknown), and a Tensor with a graph behind it from before the
call (the replay cannot backpropagate into that graph).
"""
import numpy as np

from .. import autograd, ops, tensor
from ..rng import generator
from .tape import Backward, Forward, Input, LeafGrad, SliceGrad, Tape


class TraceError(RuntimeError):
    """``fn`` did something that a replay of its trace could not repeat."""


class Tracer:
    """The observer that records one call of ``fn``: slots, inputs and forward instructions.

    ``arguments`` are the Tensors among the call's arguments, in order; an
    argument given twice keeps the slot of its first place.
    """

    def __init__(self, arguments):
        self.start = tensor._next_number()  # tensors numbered after this were made by fn
        self.slots = {}        # id(tensor) -> slot
        self.kept = []         # every tensor with a slot, so that no id is reused during the trace
        self.varies = []       # per slot: whether its value can change from call to call
        self.array_slots = {}  # id(array) -> slot, for the arrays of slots that vary
        self.inputs, self.forward, self.leaves = [], [], []
        for position, t in enumerate(arguments):
            if id(t) not in self.slots:
                self._new_slot(t, Input(None, arg=position), varies=True)
        # a param that is the generator of tr.manual_seed is that generator at every call
        self.array_slots[id(generator())] = len(self.varies)
        self.inputs.append(Input(len(self.varies), generator=True))
        self.varies.append(True)

    # -------------------------------------------------- told by the engine
    def applied(self, t, params):
        """Record the op that made ``t``: one ``Forward`` instruction."""
        if t._fn is None:
            raise TraceError(f"compile: fn ran an op under no_grad (its output has shape {t.shape}); "
                             "the trace cannot see that op's inputs, so the replay could not "
                             "recompute it: move the no_grad block out of fn")
        ins = tuple(self.slot_of(p) for p in t.parents)
        varies = any(self.varies[i] for i in ins) or getattr(t._fn, "draws_random", False)
        out = self._new_slot(t, None, varies)
        self.forward.append(Forward(t._fn, ins, params, out, keep_saved=t._requires_grad,
                                    bound=self._bound(params), shape=t._data.shape,
                                    dtype=t._data.dtype, wrap=t._data.ndim == 0,
                                    scope=t.scope))

    def read(self, t, how):
        """Refuse to let ``fn`` read a value that differs from call to call."""
        if self.varies[self.slot_of(t)]:
            call = {"item": ".item()", "float": "float()", "bool": "bool()", "numpy": ".numpy()"}[how]
            raise TraceError(
                f"compile: fn reads the value of a traced tensor (shape {t.shape}) with {call}; "
                "the replay would use the value from the trace at every call. Return the tensor "
                "from fn instead, or make the decision outside fn")

    def gradient(self, t, g):
        """Backward runs outside the trace; nothing to record."""

    def added(self, node, leaf, g):
        """Backward runs outside the trace; nothing to record."""

    # ------------------------------------------------------------ slots
    def slot_of(self, t):
        """The slot of tensor ``t``, given one on first sight (see the module docstring)."""
        slot = self.slots.get(id(t))
        if slot is not None:
            return slot
        made_here = t._number > self.start
        if t._fn is None and made_here:
            if t._requires_grad:
                raise TraceError(
                    f"compile: fn made a leaf that requires grad (shape {t.shape}{_named(t)}) "
                    "inside the trace; the replay would make it anew at every call and its "
                    "gradient would be lost: create parameters outside fn")
            alias = self.array_slots.get(id(t._data))
            if alias is not None:  # x.detach(): a new leaf on the same array, which varies
                self.slots[id(t)] = alias
                self.kept.append(t)
                return alias
            return self._new_slot(t, Input(None, array=t._data), varies=False)
        if t._fn is not None and t._requires_grad:
            raise TraceError(
                f"compile: fn uses a tensor (shape {t.shape}{_named(t)}, made by '{t._fn.name}') "
                "computed before the call, with a graph behind it; the replay cannot "
                "backpropagate into that graph: pass it as an argument, detached")
        slot = self._new_slot(t, Input(None, leaf=t), varies=True)
        self.leaves.append((slot, t, t._data.shape, t._data.dtype, t._requires_grad))
        return slot

    def _new_slot(self, t, source, varies):
        slot = len(self.varies)
        self.slots[id(t)] = slot
        self.kept.append(t)
        self.varies.append(varies)
        if varies:
            self.array_slots[id(t._data)] = slot
        if source is not None:
            source.slot = slot
            self.inputs.append(source)
        return slot

    def _bound(self, params):
        """(key, position, slot) of every param array (or generator) that is the value of a
        varying slot."""
        bound = []
        for key, value in params.items():
            parts = value if type(value) is tuple else (value,)
            for position, part in enumerate(parts):
                if isinstance(part, (np.ndarray, np.random.Generator)) and id(part) in self.array_slots:
                    bound.append((key, position if type(value) is tuple else None,
                                  self.array_slots[id(part)]))
        return tuple(bound)

    # ------------------------------------------------------------ the tape
    def tape(self, loss, results, backward):
        """The recorded step as a :class:`Tape`: outputs ``loss`` and ``results``, and if
        ``backward`` the backward instructions for ``loss``. Call before backward runs."""
        outputs = tuple(self.slot_of(t) for t in (loss, *results))
        if backward:
            self._refuse_retained()
        steps = backward_instructions(self, loss) if backward else []
        names = {self.slots[id(t)]: t.name for t in self.kept if t.name}  # named after the op ran
        for step in self.forward:
            step.name = names.get(step.out, "")
        return Tape(len(self.varies), self.inputs, self.forward, steps, outputs, self.leaves)

    def _refuse_retained(self):
        """Refuse a tensor of the trace that asked, by ``retain_grad()``, for its own gradient."""
        for t in self.kept:
            if t._fn is not None and t._retain:
                raise TraceError(
                    f"compile: fn calls retain_grad() on a tensor it computes (shape {t.shape}{_named(t)}, "
                    f"made by '{t._fn.name}'); a replay adds gradients into the leaves' .grad only, so "
                    "that tensor's gradient would be lost: look at it in an eager step instead")


def backward_instructions(tracer, loss):
    """The backward of ``loss``'s graph as instructions, in ``autograd.backward_pass``'s order."""
    steps = []
    for node in autograd._graph_order(loss):
        slot = tracer.slot_of(node)
        if node._fn is None:
            steps.append(LeafGrad(slot, node._data.dtype))
        elif node._fn is ops.GetItem:
            parent = node.parents[0]
            steps.append(SliceGrad(slot, tracer.slot_of(parent), parent._data.shape, parent._data.dtype))
        else:
            routes = tuple((i, tracer.slot_of(p), p._data.shape)
                           for i, p in enumerate(node.parents) if p._requires_grad)
            steps.append(Backward(slot, node._fn, tuple(p._requires_grad for p in node.parents), routes))
    return steps


def _named(t):
    return f", named {t.name!r}" if t.name else ""
