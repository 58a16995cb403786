"""``tr.compile``: the same training step, traced once with the reference engine, replayed fast.

    step = tr.compile(loss_fn)    # nothing runs yet
    loss = step(x, y)             # = loss_fn(x, y), then loss.backward()

The first call with a new signature runs ``fn`` with the engine while a
tracer writes down every primitive call (``trace.py``); the recorded tape
goes through the passes (``passes.py``) and is lowered to a list of small
functions (``replay.py``), whose backward then runs on the trace's values.
Later calls with that signature run those functions on the new arrays: the
same primitives' forward, then their backward in the engine's order (BPTT is
still backward through the unrolled graph), adding the loss's gradient into
the ``.grad`` of every leaf that requires one, as ``fn(*args)[0].backward()``
would.

Frozen by the trace: the Python control flow of ``fn`` (fine while it depends
on shapes and settings only; a module's ``.training`` flag is read once:
compile one step per mode), the constants ``fn`` makes itself and the values
it reads through ``.data``, which Parameters it reaches, and the checks it
makes on values (such as the range of the class targets). Not frozen: the
arguments, every leaf from outside ``fn`` (read afresh at each call), and
random draws (an op whose class says ``draws_random = True`` runs its forward
at every call, so dropout draws a new mask each step, from the generator that
``tr.manual_seed`` set last).

The default passes end with ``roll.roll_loops``, which folds the unrolled
steps back into loops of generated Python source (``step.source()`` shows
them) wherever three or more steps are copies; a tape without such steps
replays unrolled. ``passes=UNROLLED_PASSES`` asks for the unrolled replay
everywhere, ``passes=()`` for the plain replay of the traced primitives.

``tr.compile`` is the function below; its modules are imported as
``from tinygrad_rnn.compile import passes`` (``import tinygrad_rnn.compile.passes
as p`` finds the function first).

The signature of a call is the structure of its arguments: for each Tensor
its shape, dtype, ``requires_grad`` and whether it repeats an earlier
argument; every other argument by value (it must be hashable). A leaf whose
shape, dtype or ``requires_grad`` changed since the trace also re-traces.
"""
import gc
from contextlib import contextmanager

import numpy as np

from .. import autograd
from ..rng import generator
from ..tensor import Tensor, _tensor, observing
from .passes import UNROLLED_PASSES, ReusingForward
from .replay import lower
from .rewrites import ForwardInto, Place, Rows, SigmoidView
from .roll import Loop, roll_loops
from .tape import Forward, Free, plan_accumulation
from .trace import TraceError, Tracer

__all__ = ["compile", "Compiled", "TraceError", "DEFAULT_PASSES", "UNROLLED_PASSES"]

# The passes of passes.py, then the loop rolled back (roll.py): one step's code run T times.
DEFAULT_PASSES = UNROLLED_PASSES + (roll_loops,)


def compile(fn, backward=True, passes=DEFAULT_PASSES):
    """``fn`` traced on its first call per signature and replayed after; see :class:`Compiled`.

    ``fn(*args)`` returns a scalar Tensor (the loss), or a tuple led by the
    loss whose other items are Tensors (or tuples of them: a final state).
    With ``backward=False`` only the forward is replayed and ``fn`` may
    return any Tensor or tuple of Tensors. ``passes`` are the optimisations
    applied to each tape, in order (``()``: the plain replay).
    """
    return Compiled(fn, backward, passes)


class Compiled:
    """A compiled step: ``step(*args)`` returns what ``fn(*args)`` returns, without a graph.

    ``traces`` counts the traces made so far (one per new signature).
    """

    def __init__(self, fn, backward=True, passes=DEFAULT_PASSES):
        if not callable(fn):
            raise TypeError(f"compile: fn must be callable, got {type(fn).__name__}")
        self.fn, self.backward, self.passes = fn, bool(backward), tuple(passes)
        self.traces = 0
        self._cache, self._last = {}, None

    def __call__(self, *args):
        tensors, key = signature(args)
        replay = self._cache.get(key)
        if replay is None or not replay.leaves_unchanged():
            replay, results = self._trace(args, tensors)
            self._cache[key] = replay
            return results
        return replay(tensors)

    def tape(self, *args):
        """The optimised tape that a call with ``args`` replays (if it is not cached, this
        makes that call, which traces it and adds its gradients)."""
        tensors, key = signature(args)
        if key not in self._cache:
            self(*args)
        return self._cache[key].tape

    def source(self):
        """The Python source of every loop that the last traced signature rolled back:
        one body per loop, forward loops first, whatever T is."""
        replay = self._last
        if replay is None:
            raise RuntimeError("compile: source() needs a traced call first; call the step once")
        loops = [step for step in replay.tape.forward + replay.tape.backward if isinstance(step, Loop)]
        if not loops:
            raise RuntimeError("compile: this step has no rolled loop (it needs the default passes "
                               "and three or more time steps that are copies of one step)")
        return "\n".join(loop.source()[0] for loop in loops)

    def _trace(self, args, tensors):
        """Run ``fn`` under the tracer, then backward: the first call's results and its Replay.

        The backward is the replay's own, run on the values and saved tuples of the trace
        (half the engine's time at S, two thirds at M), unless the engine's must run: under
        ``detect_anomaly`` or another observer, after a change in place that its backward
        would refuse, or with an instruction whose saved tuple the trace cannot give.
        """
        tracer = Tracer(tensors)
        with collector_paused():
            with observing(tracer), autograd._setting("grad_enabled", True):
                returned = self.fn(*args)
            loss, rest, rebuild = check_returned(returned, self.backward)
            tape = tracer.tape(loss, rest, self.backward)
            for optimise in self.passes:
                tape = optimise(tape)
            fixed = [not tracer.varies[slot] for slot in tape.outputs]
            replay = Replay(plan_accumulation(tape), rebuild, self.backward, fixed)
            self.traces += 1
            self._last = replay
            if self.backward:
                needs_engine = autograd.anomaly or autograd.observers or changed_in_place(tracer)
                if needs_engine or replay.refill is None:
                    loss.backward()
                else:
                    replay.backward_from(tracer, tensors)
        return replay, replay.results([t._data for t in (loss, *rest)])


class Replay:
    """One signature's lowered tape: ``replay(tensors)`` runs it on the call's Tensor arguments.

    ``fixed`` says, for each returned Tensor, whether its value is the same at
    every call (a constant that ``fn`` made, or computed from such constants
    only: a view of one is the very array the next call reads).
    """

    def __init__(self, tape, rebuild, backward, fixed):
        self.tape, self.rebuild, self.fixed_outputs = tape, rebuild, fixed
        self.forward = lower(tape.forward)
        self.backward = lower(tape.backward) if backward else []
        self.refill = refill(tape.forward)
        self.args = [(s.slot, s.arg) for s in tape.inputs if s.arg is not None]
        self.fixed = [(s.slot, s.leaf, s.array) for s in tape.inputs if s.arg is None and not s.generator]
        self.generators = [s.slot for s in tape.inputs if s.generator]
        self.loss_slot = tape.outputs[0]

    def leaves_unchanged(self):
        """Whether every outside leaf still has the shape, dtype and requires_grad of the trace."""
        return all(t._data.shape == shape and t._data.dtype == dtype and t._requires_grad == grad
                   for _, t, shape, dtype, grad in self.tape.leaves)

    def slots(self, tensors):
        """(V, S, G, L) for a call on the Tensor arguments ``tensors``, the inputs filled in."""
        n = self.tape.slots
        V, S, G, L = [None] * n, [None] * n, [None] * n, [None] * n
        for slot, position in self.args:
            L[slot] = tensors[position]
            V[slot] = tensors[position]._data
        for slot, leaf, array in self.fixed:
            if leaf is None:
                V[slot] = array
            else:
                V[slot], L[slot] = leaf._data, leaf
        for slot in self.generators:
            V[slot] = generator()
        return V, S, G, L

    def __call__(self, tensors):
        V, S, G, L = self.slots(tensors)
        with np.errstate(all="ignore"):  # IEEE arithmetic without warnings: see replay.py
            for run in self.forward:
                run(V, S, G, L)
            outputs = [V[slot] for slot in self.tape.outputs]
            if self.backward:
                G[self.loss_slot] = np.ones_like(V[self.loss_slot])
                for run in self.backward:
                    run(V, S, G, L)
        return self.results(outputs)

    def backward_from(self, tracer, tensors):
        """The replay's backward on the trace's values and the saved tuples of its ops, adding
        the loss's gradient into the leaves' ``.grad`` as the engine's backward would. The
        saved tuples move from the graph into the replay's slots, which release each after
        its last reader, as the engine's backward releases the graph's."""
        V, S, G, L = self.slots(tensors)
        for t in tracer.kept:
            slot = tracer.slots[id(t)]
            V[slot] = t._data
            if t._fn is not None:  # a detached alias of an op's output shares its slot
                S[slot], t._saved = t._saved, None
        with np.errstate(all="ignore"):
            for run in self.refill:
                run(V, S, G, L)
            G[self.loss_slot] = np.ones_like(V[self.loss_slot])
            for run in self.backward:
                run(V, S, G, L)

    def results(self, values):
        """The returned structure, as Tensors of ``values``; a fixed value is copied, so that a
        caller who writes into it, as into any result, changes no later call."""
        return self.rebuild([_tensor(v.copy() if fixed else v)
                             for v, fixed in zip(values, self.fixed_outputs)])


# The forward instructions whose saved tuple ``S[out]`` is the one the engine's op saved, as
# the trace holds it, or that save nothing; a pass's own instruction that saves another (the
# joined gates' sigmoid) is run again on the trace's values, if it says it may be.
SAVED_AS_TRACED = (Forward, ReusingForward, Free, Place, ForwardInto, Rows, SigmoidView)


def refill(forward):
    """The forward instructions to run again before the replay's backward can start from the
    trace (lowered), or None if one of them may not run twice (it would draw again). A Loop's
    steps are looked at one by one: only those of its instructions are run again."""
    steps = [step for each in forward
             for step in ([i for block in each.blocks for i in block] if isinstance(each, Loop) else [each])]
    again = [step for step in steps if not isinstance(step, SAVED_AS_TRACED)]
    if not all(getattr(step, "rerun", False) for step in again):
        return None
    return lower(again)


def changed_in_place(tracer):
    """Whether an op's input was changed in place after the op saved it, which the engine's
    backward refuses (``autograd._check_unchanged``) and the replay's could not see."""
    return any(p._version != version for t in tracer.kept if t._fn is not None
               for p, version in zip(t.parents, t._versions))


@contextmanager
def collector_paused():
    """Inside, no cyclic garbage collection: the trace makes tens of thousands of objects that
    all live until it ends, and the engine's graph holds no cycles for it to find."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def signature(args):
    """(the Tensors among ``args`` in order, a hashable key of the call's signature)."""
    tensors, seen = [], {}

    def key_of(value):
        if isinstance(value, Tensor):
            if value._fn is not None and value._requires_grad:
                raise TypeError(
                    f"compile: an argument (shape {value.shape}) is the output of "
                    f"'{value._fn.name}' with a graph behind it; the replay cannot backpropagate "
                    "into that graph: pass it detached (x.detach())")
            first = seen.setdefault(id(value), len(tensors))
            tensors.append(value)
            return (value._data.shape, value._data.dtype, value._requires_grad, first)
        if isinstance(value, (tuple, list)):
            return (type(value), tuple(key_of(item) for item in value))
        try:
            hash(value)
        except TypeError:
            raise TypeError(f"compile: an argument that is not a Tensor is a constant of the "
                            f"trace and must be hashable, got a {type(value).__name__}; pass "
                            "arrays as Tensors") from None
        return (type(value), value)

    return tensors, key_of(args)


def check_returned(returned, backward):
    """(loss, the other returned Tensors, a function that rebuilds the structure from Tensors)."""
    first = returned[0] if isinstance(returned, tuple) and returned else returned
    if not isinstance(first, Tensor) or (backward and first._data.size != 1):
        what = (f"a Tensor of shape {first.shape}" if isinstance(first, Tensor)
                else f"a {type(first).__name__}")
        raise TypeError(f"compile: fn must return the loss, a scalar Tensor, or a tuple led by it "
                        f"(loss, state, ...) whose other items are Tensors; it returned {what} first")
    if backward and not first._requires_grad:
        raise RuntimeError("compile: the loss that fn returned does not require grad (nothing it "
                           "was computed from has requires_grad=True); use compile(fn, "
                           "backward=False) for a forward only")
    rest = []

    def template(value):
        if isinstance(value, Tensor):
            rest.append(value)
            return len(rest)
        if isinstance(value, (tuple, list)):
            return (type(value), [template(item) for item in value])
        raise TypeError(f"compile: fn returned a {type(value).__name__} after the loss; only "
                        "Tensors and tuples of Tensors can follow it")

    if not isinstance(returned, tuple):
        return first, [], lambda tensors: tensors[0]
    shape = [template(item) for item in returned[1:]]

    def rebuild(tensors):
        def build(node):
            if isinstance(node, int):
                return tensors[node]
            kind, items = node
            return kind(build(item) for item in items)
        return (tensors[0], *[build(node) for node in shape])

    return first, rest, rebuild
