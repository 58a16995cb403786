"""Rewrites that the rolling pass makes before it rolls: fewer arrays and numpy calls per step.

A rolled step costs about one numpy call's overhead (1.4-1.8 us at small sizes)
per primitive it runs, whatever the arrays' size; Python's own bookkeeping
around the calls is negligible. These rewrites make fewer calls for the same
numbers, each a function ``tape -> tape`` that leaves alone what it has not
proved:

1. :func:`stack_in_place`: the T outputs h(t) that a ``stack`` gathers into
   a small (T, B, H) sequence are written straight into their rows of it
   (``out=``), so that the stack copies nothing; every stack's backward
   hands out the rows of the stacked gradient in one plain loop.
2. :func:`join_gate_sigmoids`: the gate sigmoids taken on column blocks of
   one array (the LSTM's i, f, o of x_proj(t) + h(t-1) W_hh^T + b) run as one
   sigmoid over each run of adjacent blocks, laid block by block so that each
   gate is a contiguous view of it; in backward, their derivatives σ (1 - σ)
   are one expression over that block.

Both give the engine's numbers: an elementwise function gives the same value
for an element wherever that element sits, up to the last bit of a SIMD
``exp``, and g (σ (1 - σ)) is (g σ) (1 - σ) to an ulp or two: well within
1e-12 relative.
"""
import dataclasses

import numpy as np

from .. import ops
from ..bptt import step_of
from .passes import UFUNCS, StackRows, _with
from .replay import ADD, releaser
from .tape import Backward, Forward, Free, reads, share_kind


def _row(axis, row):
    """The index of row ``row`` along ``axis``: (slice(None),) * axis + (row,)."""
    return (slice(None),) * axis + (row,)


# ----------------------------------------------------- 1. the stack in place

# Primitives whose forward is one ufunc that can write into a given array, and what they save
# for backward: their inputs, nothing, or their output.
INTO = {**UFUNCS, ops.Tanh: np.tanh}
SAVES = {ops.Add: "nothing", ops.Sub: "nothing", ops.Mul: "inputs", ops.Tanh: "output"}


# The stack primitive, and the same stack as ``passes.stack_rows`` makes it along the first axis.
STACKS = (ops.Stack, StackRows)

# Rows are written in place only into a stacked value of at most this many elements. At
# T=20, B=8, H=32 (5120) it saves the stack's copy and about 8% of the forward; at T=50, B=32,
# H=128 the steps writing into the large array cost more than the copy saved (the GRU's forward
# loop 5-20% slower, the RNN's batched weight gradient of h slower), measured step by step.
PLACE_ELEMENTS = 65536


@dataclasses.dataclass
class Place:
    """``V[out] = np.empty(shape, dtype)``, ``S[out] = (axis,)``: a stacked value made before the
    steps that write its rows, saved as ``ops.Stack.forward`` saves it."""
    out: int
    shape: tuple
    dtype: np.dtype
    axis: int

    def reads(self):
        return (), (), ()

    def lower(self, free):
        out, shape, dtype, saved = self.out, self.shape, self.dtype, (self.axis,)
        release = releaser(free)

        def run(V, S, G, L):
            V[out], S[out] = np.empty(shape, dtype), saved
            if release is not None:
                release(V, S, G)
        return run


@dataclasses.dataclass
class ForwardInto:
    """``V[out] = ufunc(*V[ins], out=V[place][row along axis])`` for the Forward ``step``: its
    value is a row of a stacked value, written in place."""
    step: Forward
    place: int
    row: int
    axis: int

    def reads(self):
        return self.step.ins + (self.place,), (), ()

    def lower(self, free):
        ufunc, ins, out, keep = INTO[self.step.fn], self.step.ins, self.step.out, self.step.keep_saved
        place, index, released = self.place, _row(self.axis, self.row), free.values
        saves = SAVES[self.step.fn]

        def run(V, S, G, L):
            args = [V[i] for i in ins]
            value = V[out] = ufunc(*args, out=V[place][index])
            if keep:
                S[out] = () if saves == "nothing" else (value,) if saves == "output" else tuple(args)
            for s in released:
                V[s] = None
        return run


@dataclasses.dataclass
class Rows:
    """``V[out][row along axis] = V[slot]`` for each (row, slot) of ``rows``: the rows of a
    stacked value that no step wrote in place."""
    out: int
    rows: tuple
    axis: int

    def reads(self):
        return tuple(slot for _, slot in self.rows) + (self.out,), (), ()

    def lower(self, free):
        out, rows, release = self.out, tuple((_row(self.axis, r), s) for r, s in self.rows), releaser(free)

        def run(V, S, G, L):
            for index, slot in rows:
                V[out][index] = V[slot]
            if release is not None:
                release(V, S, G)
        return run


@dataclasses.dataclass
class StackGrad:
    """The backward of a ``stack`` along ``axis``: each input's share is its row of the stacked
    gradient, a view, ``G[parent] (+)= G[node][row]`` for (row, parent) in ``rows``."""
    node: int
    axis: int
    rows: tuple
    kinds: tuple = ()

    def reads(self):
        return (), (), (self.node,)

    def plan(self, owned):
        self.kinds = tuple(share_kind(owned, parent) for _, parent in self.rows)

    def lower(self, free):
        node, release = self.node, releaser(free)
        rows = tuple((_row(self.axis, row), parent, ADD[kind])
                     for (row, parent), kind in zip(self.rows, self.kinds))

        def run(V, S, G, L):
            g = G[node]
            for index, parent, add in rows:
                add(G, parent, g[index])
            if release is not None:
                release(V, S, G)
        return run


def stack_in_place(tape):
    """Rewrite 1: a ``stack`` whose inputs are made by ufuncs (add, sub, mul, tanh) of its
    rows' shape and dtype has those rows written in place.

    Only a stack made outside the time steps (the sequence's, not one made
    within a step ``t=<k>``, which would keep the steps from rolling) and
    of at most ``PLACE_ELEMENTS`` elements: the choice is made by size, at
    trace time.
    The stacked array is made empty just before the first of them; each such
    input's Forward becomes a :class:`ForwardInto` its row, so its value is a
    view of the stack. The stack itself only copies the rows that are made
    otherwise (a :class:`Rows`), or is gone. It applies to an input that the
    stack reads once, made by a plain Forward (not one that ``reuse_buffers``
    gave an array) of no params, that ``fn`` does not return (the caller
    owns each returned array).

    The backward of every stack hands out the rows of the stacked gradient
    in a plain loop (a :class:`StackGrad`): 3 us for T = 20 where the
    primitive's backward, with ``np.moveaxis`` and a shape check per share,
    takes 17.
    """
    position = {}
    for k, step in enumerate(tape.forward):
        if type(step) is Forward:
            position[step.out] = k
    forward = list(tape.forward)
    places = {}  # position of the first row written in place -> its Place
    for k, stack in enumerate(tape.forward):
        if (type(stack) is not Forward or stack.fn not in STACKS or stack.bound or step_of(stack.scope)
                or np.prod(stack.shape) > PLACE_ELEMENTS):
            continue
        axis = stack.params["axis"] % len(stack.shape)
        row_shape = stack.shape[:axis] + stack.shape[axis + 1:]
        placed = [row for row, slot in enumerate(stack.ins) if stack.ins.count(slot) == 1
                  and _writable(tape, forward, position.get(slot), row_shape, stack.dtype)]
        if not placed:
            continue
        for row in placed:
            forward[position[stack.ins[row]]] = ForwardInto(tape.forward[position[stack.ins[row]]],
                                                            stack.out, row, axis)
        first = min(position[stack.ins[row]] for row in placed)
        places[first] = Place(stack.out, stack.shape, stack.dtype, axis)
        rest = tuple((row, slot) for row, slot in enumerate(stack.ins) if row not in placed)
        forward[k] = Rows(stack.out, rest, axis) if rest else None
    steps = []
    for k, step in enumerate(forward):
        if k in places:
            steps.append(places[k])
        if step is not None:
            steps.append(step)
    axes = {step.out: step.params["axis"] % len(step.shape) for step in tape.forward
            if type(step) is Forward and step.fn in STACKS}
    backward = [StackGrad(step.node, axes[step.node], tuple((row, parent) for row, parent, _ in step.routes))
                if type(step) is Backward and step.fn in STACKS and step.node in axes else step
                for step in tape.backward]
    return _with(tape, forward=steps, backward=backward)


def _writable(tape, forward, position, shape, dtype):
    """Whether the Forward at ``position`` (None: not a Forward) can write into a row of
    ``shape`` and ``dtype``."""
    if position is None or type(forward[position]) is not Forward:
        return False
    step = forward[position]
    return (step.fn in INTO and not step.params and not step.bound and not step.wrap
            and step.shape == shape and step.dtype == dtype and step.out not in tape.outputs)


# ------------------------------------------------------- 2. the gates joined

# A run of gate blocks is joined only when it holds at most this many elements. Laying the
# blocks out one after another costs a strided read of them all: at B=8, H=32 (the LSTM's
# i, f, c~, o: 1024 elements) one joined sigmoid saves about a third of the time of three; at
# B=32, H=128 the joined one costs more than the calls it saves (measured on issue 25's sizes).
JOIN_ELEMENTS = 2048


def sigmoid_blocks(a, lo, hi, width):
    """σ(a[..., lo:hi]) cut into its blocks of ``width`` columns, block-major: (n, ..., width).

    Block j, a[..., lo + j w : lo + (j+1) w], is row j of the result, a
    contiguous array (a column block of a is strided, and every ufunc call
    on a strided operand costs more). Element for element, the arithmetic
    of ``ops.Sigmoid``: 1 / (1 + e^-a), in place in the result.
    """
    cut = a[..., lo:hi]
    n, rows = (hi - lo) // width, cut.shape[:-1]
    block_major = (len(rows),) + tuple(range(len(rows))) + (len(rows) + 1,)
    out = np.negative(cut.reshape(*rows, n, width).transpose(block_major),
                      out=np.empty((n, *rows, width), a.dtype))
    np.exp(out, out=out)
    out += 1
    return np.divide(1, out, out=out)


@dataclasses.dataclass
class GateSigmoids:
    """``V[out] = sigmoid_blocks(V[a], lo, hi, width)``: the sigmoid of a run of gate blocks;
    with ``keep_saved``, ``S[out] = (V[out],)`` for :class:`GateDerivatives`."""
    out: int
    a: int
    lo: int
    hi: int
    width: int
    keep_saved: bool = False
    scope: str = ""
    name: str = "gates"
    rerun = True  # no random draw: the first call runs it again on the trace's values

    def reads(self):
        return (self.a,), (), ()

    def lower(self, free):
        out, a, lo, hi, width, released = self.out, self.a, self.lo, self.hi, self.width, free.values
        keep = self.keep_saved

        def run(V, S, G, L):
            V[out] = sigmoid_blocks(V[a], lo, hi, width)
            if keep:
                S[out] = (V[out],)
            for s in released:
                V[s] = None
        return run


@dataclasses.dataclass
class SigmoidView:
    """``V[out] = V[block][j]``, ``S[out] = (V[out],)``: a gate, block j of
    :class:`GateSigmoids`, saved as ``ops.Sigmoid.forward`` saves it."""
    out: int
    block: int
    j: int
    keep_saved: bool
    scope: str = ""
    name: str = ""

    def reads(self):
        return (self.block,), (), ()

    def lower(self, free):
        out, block, j, keep, released = self.out, self.block, self.j, self.keep_saved, free.values

        def run(V, S, G, L):
            V[out] = V[block][j]
            if keep:
                S[out] = (V[out],)
            for s in released:
                V[s] = None
        return run


def join_gate_sigmoids(tape):
    """Rewrite 2: the sigmoids of column blocks a[..., lo:hi] of one array a, all of one width,
    run as one :func:`sigmoid_blocks` per run of adjacent blocks (σ over i, f, c~, o for the
    LSTM's i, f and o), each gate a :class:`SigmoidView` of it.

    Blocks of one array are one run when the sigmoid over all of them,
    including the blocks between them (σ of the LSTM's c~ block is computed
    and not read), holds at most ``JOIN_ELEMENTS`` elements: the choice is
    made by size, at trace time. A run of one block is left as it is. The run's sigmoid is
    computed right after ``a`` is made, while ``a`` is alive, and released
    after its last gate.
    """
    made = {step.out: step for step in tape.forward if type(step) is Forward}
    shapes = {f.out: f.shape for f in map(_forward_of, tape.forward) if f is not None}
    blocks = {}  # (parent slot, width) -> [(lo, hi, position of the sigmoid)]
    for k, step in enumerate(tape.forward):
        cut = made.get(step.ins[0]) if type(step) is Forward and step.fn is ops.Sigmoid else None
        columns = None if cut is None else _columns(cut, shapes.get(cut.ins[0]))
        if columns is not None and not step.wrap and cut.dtype == step.dtype:
            blocks.setdefault((cut.ins[0], columns[1] - columns[0]), []).append((*columns, k))
    slots, after, replaced, last, gates = tape.slots, {}, {}, {}, {}
    for (parent, width), members in blocks.items():
        rows = int(np.prod(shapes[parent][:-1]))
        for run in _runs(sorted(members), rows, width):
            lo, hi = run[0][0], run[-1][1]
            scope = tape.forward[run[0][2]].scope
            gates[slots] = GateSigmoids(slots, parent, lo, hi, width, scope=scope)
            after.setdefault(parent, []).append(gates[slots])
            for m_lo, _, k in run:
                sigmoid = tape.forward[k]
                replaced[k] = SigmoidView(sigmoid.out, slots, (m_lo - lo) // width, sigmoid.keep_saved,
                                          sigmoid.scope, sigmoid.name)
            last[max(k for _, _, k in run)] = slots
            slots += 1
    if not replaced:
        return tape
    dead = _dead_cuts(tape, [tape.forward[k].ins[0] for k in replaced], replaced)
    forward = [step for slot in [s.slot for s in tape.inputs] for step in after.pop(slot, [])]
    for k, step in enumerate(tape.forward):
        if type(step) is Forward and step.out in dead:
            continue
        if type(step) is Free and dead.intersection(step.values):  # nothing to release: never made
            step = dataclasses.replace(step, values=tuple(s for s in step.values if s not in dead))
            if not (step.values or step.saved or step.grads):
                continue
        forward.append(replaced.get(k, step))
        if k in last:
            forward.append(Free(values=(last[k],)))
        forward += after.pop(_out(step), [])
    backward, joined = _join_gate_derivatives(tape.backward, [s for s in forward if type(s) is SigmoidView])
    for block in joined:
        gates[block].keep_saved = True
    return _with(tape, forward=forward, backward=backward, slots=slots)


@dataclasses.dataclass
class GateDerivatives:
    """``S[node] = (σ (1 - σ),)`` for the joined gate sigmoids σ that :class:`GateSigmoids` saved
    in ``S[node]``: the derivatives of all the blocks, in one expression, before their gates'
    backward."""
    node: int

    def reads(self):
        return (), (self.node,), ()

    def lower(self, free):
        node, release = self.node, releaser(free)

        def run(V, S, G, L):
            gates, = S[node]
            S[node] = (gates * (1 - gates),)
            if release is not None:
                release(V, S, G)
        return run


@dataclasses.dataclass
class GateGrad:
    """A gate's sigmoid backward, as its share g σ'(a) with σ' block ``j`` of
    :class:`GateDerivatives`: ``G[parent] (+)= G[node] * S[block][0][j]``."""
    node: int
    block: int
    j: int
    parent: int
    kinds: tuple = ()

    def reads(self):
        return (), (self.block,), (self.node,)

    def plan(self, owned):
        self.kinds = (share_kind(owned, self.parent),)

    def lower(self, free):
        node, block, j, parent = self.node, self.block, self.j, self.parent
        add, release = ADD[self.kinds[0]], releaser(free)

        def run(V, S, G, L):
            add(G, parent, G[node] * S[block][0][j])
            if release is not None:
                release(V, S, G)
        return run


def _join_gate_derivatives(backward, views):
    """(``backward`` with the sigmoid Backward of each gate of ``views`` that sends its share to
    its input as a :class:`GateGrad`, after one :class:`GateDerivatives` per block, the blocks
    so joined). g σ (1 - σ) is then computed as g (σ (1 - σ)), within an ulp or two of it."""
    owner = {view.out: view for view in views}
    found = {}  # block -> positions of its gates' Backwards
    for k, step in enumerate(backward):
        if (type(step) is Backward and step.node in owner and step.fn is ops.Sigmoid
                and [i for i, _, _ in step.routes] == [0]):
            found.setdefault(owner[step.node].block, []).append(k)
    first = {min(positions): block for block, positions in found.items()}
    last = {max(positions): block for block, positions in found.items()}
    moved = {k for positions in found.values() for k in positions}
    result = []
    for k, step in enumerate(backward):
        if k in first:
            result.append(GateDerivatives(first[k]))
        if k in moved:
            view = owner[step.node]
            result.append(GateGrad(step.node, view.block, view.j, step.routes[0][1]))
        else:
            result.append(step)
        if k in last:
            result.append(Free(saved=(last[k],)))
    return result, list(found)


def _dead_cuts(tape, cuts, replaced):
    """The ``cuts`` (a gate's a[..., lo:hi], read by its sigmoid) that nothing reads once the
    sigmoids at the positions ``replaced`` read their block: a joined slice's gradient needs
    no saved tuple, so in the LSTM only c~'s cut is left."""
    read = set(tape.outputs)
    readers = [step for k, step in enumerate(tape.forward) if k not in replaced] + tape.backward
    for step in readers:
        if type(step) is not Free:
            values, saved, _ = reads(step)
            read.update(values + saved)
    return set(cuts) - read


def _out(step):
    """The slot whose value a forward instruction computes (None for a Free, a Place, Rows)."""
    if type(step) in (Forward, SigmoidView, GateSigmoids):
        return step.out
    inner = getattr(step, "step", None)  # passes.ReusingForward, ForwardInto
    return inner.out if type(inner) is Forward else None


def _forward_of(step):
    """The Forward that a forward instruction runs, if any (as itself or with an ``out=``)."""
    return step if type(step) is Forward else getattr(step, "step", None)


def _columns(cut, shape):
    """(lo, hi) when the Forward ``cut`` is a[..., lo:hi] of an array a of ``shape`` (None: not
    known), else None."""
    index = cut.params.get("index")
    if cut.fn is not ops.GetItem or cut.bound or shape is None or type(index) is not tuple:
        return None
    if len(index) != len(shape) or any(part != slice(None) for part in index[:-1]):
        return None
    last = index[-1]
    if type(last) is not slice or last.step not in (None, 1):
        return None
    lo, hi, _ = last.indices(shape[-1])
    return (lo, hi) if lo < hi else None


def _runs(members, rows, width):
    """``members`` (lo, hi, k) of one width, sorted, cut into runs whose blocks do not overlap,
    start a whole number of blocks apart and span at most ``JOIN_ELEMENTS`` elements; only the
    runs of two blocks or more."""
    runs = [[members[0]]]
    for member in members[1:]:
        start, gap = runs[-1][0][0], member[0] - runs[-1][-1][1]
        if gap >= 0 and gap % width == 0 and (member[1] - start) * rows <= JOIN_ELEMENTS:
            runs[-1].append(member)
        else:
            runs.append([member])
    return [run for run in runs if len(run) >= 2]
