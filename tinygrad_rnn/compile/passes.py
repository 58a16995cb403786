"""Passes over a traced tape: each one a function ``tape -> tape``, checked against the plain replay.

The reference engine computes a step the way it reads: one primitive after
another, each gradient summed where it arrives, every value kept until
backward ends. Once the whole step is known as a tape, some of that work can
be done in bulk, as the hand-written numpy step does it:

1. :func:`batch_weight_grads`: a weight shared by T steps receives T products
   g_t^T x_t; one product of the stacked rows, G^T X, is their sum.
2. :func:`join_slices`: the T slices x_proj[t] of a projected sequence (and
   the gate blocks of each step) cover their parent exactly once, so their
   gradients are written into one new array instead of added into zeros;
   :func:`place_slices` then makes each step's gate gradient as its place in
   x_proj's, preallocated, so nothing is copied there, and pass 1's product
   reads the T steps' gradients as the rows of that one array.
3. :func:`free_after_last_use`: every value, saved tuple and gradient is
   released right after the last instruction that reads it (and an op whose
   value nobody reads is not run), so the peak memory is what backward still
   needs rather than the whole graph.
4. :func:`reuse_buffers`: an elementwise op whose value dies within the
   forward (x_proj[t] + h W_hh^T, f * c, i * c~) writes into an array that
   an earlier op of the same shape no longer needs (``out=``).
5. :func:`stack_rows`: the stack of a layer's T outputs h(t) is one ``np.array``
   call forward, and its gradient the rows of g.

Before them all, :func:`fuse.fuse_cross_entropy` (pass 0, ``fuse.py``) computes the
cross-entropy of ``nn.cross_entropy`` and its gradient as the hand-written step does,
in one instruction each way; before liveness, :func:`bias.fold_hidden_bias` adds an RNN's
or LSTM's b_hh into its input projection once instead of at every step.

``UNROLLED_PASSES`` lists those that pay (see the benchmark), in the order
they must run: the fused cross-entropy first, on the tape as traced; liveness
after the passes that add readers, buffer reuse after liveness, whose
releases it reads. ``tr.compile``'s default runs them, then rolls the
unrolled steps back into loops (``roll.py``).
"""
import dataclasses

import numpy as np

from .. import ops
from .bias import fold_hidden_bias
from .fuse import fuse_cross_entropy
from .replay import ADD, releaser
from .tape import Backward, Forward, Free, LeafGrad, SliceGrad, Tape, reads, share_kind


# ------------------------------------------------ 1. batched weight gradients

class BatchedWeightGrad:
    """dL/dW += G^T X and dL/db += the column sums of G, for the ``linear`` nodes sharing W.

    G stacks the rows of every node's output gradient ``G[node]`` (…, out) and
    X the rows of its input ``V[x]`` (…, in): the sum over steps of
    g_t^T x_t, as one matrix product. ``bias`` is None when the nodes do not
    share one bias of shape (out,); each node then sends its own.
    """

    def __init__(self, nodes, xs, weight, bias, rows=None):
        self.nodes, self.xs, self.weight, self.bias = tuple(nodes), tuple(xs), weight, bias
        self.rows = rows  # (slot, xs in its order): the nodes' gradients are that slot's rows
        self.kinds = ()

    def reads(self):
        if self.rows is not None:
            return self.rows[1], (), (self.rows[0],)
        return self.xs, (), self.nodes

    def plan(self, owned):
        self.kinds = tuple(share_kind(owned, slot) for slot in (self.weight, self.bias) if slot is not None)

    def lower(self, free):
        nodes, xs, weight, bias = self.nodes, self.xs, self.weight, self.bias
        whole, xs = self.rows if self.rows is not None else (None, xs)
        add_weight = ADD[self.kinds[0]]
        add_bias = ADD[self.kinds[1]] if bias is not None else None
        release = releaser(free) or (lambda V, S, G: None)

        def run(V, S, G, L):
            if whole is None:
                g = np.concatenate([G[n].reshape(-1, G[n].shape[-1]) for n in nodes])
            else:  # already side by side (place_slices)
                g = G[whole].reshape(-1, G[whole].shape[-1])
            x = np.concatenate([V[s].reshape(-1, V[s].shape[-1]) for s in xs])
            add_weight(G, weight, g.T @ x)
            if add_bias is not None:
                add_bias(G, bias, g.sum(axis=0))
            release(V, S, G)
        return run


def batch_weight_grads(tape):
    """Pass 1: the weight gradients of the ``linear`` nodes that share a weight, in one product.

    Each such node's backward then computes only its input's gradient (and
    its bias's, unless the nodes share one bias of shape (out,), which is
    summed in the same instruction). The product runs right after the last of
    the nodes, before the weight's own turn, so the order of backward holds.
    """
    producers = {f.out: f for f in tape.forward if isinstance(f, Forward)}
    groups = {}
    for position, step in enumerate(tape.backward):
        if isinstance(step, Backward) and step.fn is ops.Linear and step.needs[1]:
            weight = next(parent for i, parent, _ in step.routes if i == 1)
            groups.setdefault(weight, []).append(position)
    backward = list(tape.backward)
    after = {}
    for weight, positions in groups.items():
        if len(positions) < 2:
            continue
        members = [backward[p] for p in positions]
        biases = {next((parent for i, parent, _ in m.routes if i == 2), None) for m in members}
        shapes = {shape for m in members for i, _, shape in m.routes if i == 2}
        bias = biases.pop() if len(biases) == 1 and len(shapes) == 1 else None
        if bias is not None and len(shapes.pop()) != 1:  # a bias of another shape is summed by each node
            bias = None
        for p, m in zip(positions, members):
            dropped = (1, 2) if bias is not None else (1,)
            backward[p] = Backward(m.node, m.fn, (m.needs[0], False) + m.needs[2:],
                                   tuple(r for r in m.routes if r[0] not in dropped))
        xs = [producers[m.node].ins[0] for m in members]
        after[positions[-1]] = BatchedWeightGrad([m.node for m in members], xs, weight, bias)
    steps = []
    for position, step in enumerate(backward):
        steps.append(step)
        if position in after:
            steps.append(after[position])
    return _with(tape, backward=steps)


# ------------------------------------------------------------ 2. joined slices

def join_slices(tape):
    """Pass 2: when a parent's gradient comes only from slices that cover it exactly once
    (x_proj[t] for every t, or the four gate blocks of a step), the first slice takes a new
    empty array and each writes its gradient into its place, instead of adding into zeros."""
    producers = {f.out: f for f in tape.forward if isinstance(f, Forward)}
    dense = {parent for step in tape.backward if isinstance(step, Backward) for _, parent, _ in step.routes}
    slices = {}
    for step in tape.backward:
        if isinstance(step, SliceGrad) and step.parent not in dense:
            slices.setdefault(step.parent, []).append(step)
    joined = set()
    for parent, steps in slices.items():
        indices = [producers[s.node].params["index"] for s in steps]
        if all(not producers[s.node].bound and _is_basic(i) for s, i in zip(steps, indices)):
            count = np.zeros(steps[0].shape, dtype=np.uint8)
            for index in indices:
                count[index] += 1
            if (count == 1).all():
                joined.add(parent)
    backward = [SliceGrad(s.node, s.parent, s.shape, s.dtype, assign=True,
                          index=producers[s.node].params["index"])
                if isinstance(s, SliceGrad) and s.parent in joined else s for s in tape.backward]
    return _with(tape, backward=backward)


def place_slices(tape):
    """Pass 2b, after :func:`join_slices`: the gradient of each step's gate sum
    ``a_t = x_proj[t] + h W_hh^T`` is made as its place in the gradient of
    x_proj, so the slice x_proj[t] has nothing left to copy, and the batched
    product of :func:`batch_weight_grads` reads the T steps' gradients as the
    rows of that one array.

    It applies when a joined slice N = P[index] has its gradient made by
    joined slices (the GRU's gate blocks of x_proj[t]), or gets it whole as
    the one share of an ``add`` whose gradient joined slices make (the
    LSTM's a_t, cut into its four gate blocks). The gradients of the GRU's
    h W_hh^T, made by joined slices too, are placed side by side in a new
    array for the batched product.
    """
    producers = {f.out: f for f in tape.forward if isinstance(f, Forward)}
    shares, slices = {}, {}
    for step in tape.backward:
        if isinstance(step, Backward):
            for i, parent, _ in step.routes:
                shares.setdefault(parent, []).append((step, i))
        elif isinstance(step, SliceGrad):
            slices.setdefault(step.parent, []).append(step)
    candidates = {}
    for parent, steps in slices.items():
        placed = [_placement(step, shares, slices, producers) for step in steps]
        if all(s.assign for s in steps) and all(a is not None for a in placed):
            candidates[parent] = list(zip(steps, placed))
    placed_nodes = {a for pairs in candidates.values() for _, a in pairs}
    hosts, dropped = {}, set()
    for parent, pairs in candidates.items():
        if parent in placed_nodes:  # its own gradient is a place elsewhere: one level only
            continue
        for step, a in pairs:
            hosts[a] = (parent, step.shape, step.dtype, step.index)
            dropped.add(id(step))
    slots, fresh = tape.slots, {}
    for step in tape.backward:  # the GRU's h W_hh^T: gradients made by joined slices, in a new array
        if isinstance(step, BatchedWeightGrad) and all(
                _made_by_joined_slices(n, shares, slices) and n not in hosts and n not in placed_nodes
                for n in step.nodes):
            kinds = {(producers[n].shape, producers[n].dtype) for n in step.nodes}
            if len(kinds) == 1:
                shape, dtype = kinds.pop()
                for k, node in enumerate(step.nodes):
                    hosts[node] = (slots, (len(step.nodes), *shape), dtype, k)
                fresh[id(step)] = (slots, step.xs)
                slots += 1
    copies = {step.node: step for step in tape.backward  # slices that copy x_proj[t] into place
              if isinstance(step, SliceGrad) and step.assign and id(step) not in dropped
              and type(step.index) is int and step.parent not in hosts}
    backward, waiting, order = [], {}, {id(step): k for k, step in enumerate(tape.backward)}
    for step in tape.backward:
        if id(step) in dropped:
            continue
        if isinstance(step, SliceGrad) and step.parent in hosts:
            step = dataclasses.replace(step, host=hosts[step.parent])
        elif isinstance(step, BatchedWeightGrad) and id(step) in fresh:
            step = BatchedWeightGrad(step.nodes, step.xs, step.weight, step.bias, fresh[id(step)])
        elif isinstance(step, BatchedWeightGrad):
            step, last = _rows_of(step, shares, slices, hosts, copies, order)
            if last is not None:  # it reads rows that are copied later: it runs after them
                waiting.setdefault(id(last), []).append(step)
                continue
        backward.append(step)
        backward += waiting.pop(id(step), [])
    return _with(tape, backward=backward, slots=slots)


def _placement(step, shares, slices, producers):
    """The node whose gradient can be made as the place of slice ``step`` (the slice itself,
    when joined slices make its gradient, or the ``add`` whose one share it is), or None."""
    if type(step.index) is not int:
        return None
    if step.node in slices:
        return step.node if _made_by_joined_slices(step.node, shares, slices) else None
    given = shares.get(step.node, [])
    if len(given) != 1:
        return None
    source, _ = given[0]
    a = source.node
    if source.fn is not ops.Add or not _made_by_joined_slices(a, shares, slices):
        return None
    return a if producers[a].shape == producers[step.node].shape else None


def _made_by_joined_slices(node, shares, slices):
    return node in slices and node not in shares and all(s.assign for s in slices[node])


def _rows_of(batched, shares, slices, hosts, copies, order):
    """(``batched`` reading its nodes' gradients as the rows of one array, if they are its T
    places in order, and the slice after which those rows are all written, or None).

    A node's gradient is such a row when it is the one share of an ``add`` whose
    gradient is a place (``hosts``) or whose same share a slice copies into place
    (``copies``, as in the RNN, where tanh's backward makes the add's gradient; only when
    that share is all the slice's gradient, which ``shares`` and ``slices`` say);
    ``order`` gives each instruction's position, to find the last of those copies.
    """
    places, used = [], []
    for node, x in zip(batched.nodes, batched.xs):
        given = shares.get(node, [])
        if len(given) != 1 or given[0][0].fn is not ops.Add:
            return batched, None
        source, i = given[0]
        shape = next(shape for j, _, shape in source.routes if j == i)
        if source.node in hosts:
            place = hosts[source.node]
        else:
            copy = next((copies[p] for j, p, _ in source.routes  # p's gradient is the add's share alone
                         if j != i and p in copies and len(shares.get(p, ())) == 1 and p not in slices), None)
            if copy is None:
                return batched, None
            place = (copy.parent, copy.shape, copy.dtype, copy.index)
            used.append(copy)
        if shape != place[1][1:]:
            return batched, None  # summed back to another shape: a new array, not the row
        places.append((place, x))
    wholes = {place[0] for place, _ in places}
    indices = sorted(place[3] for place, _ in places)
    if len(wholes) != 1 or indices != list(range(places[0][0][1][0])):
        return batched, None
    xs = tuple(x for _, x in sorted(places, key=lambda place: place[0][3]))
    rows = BatchedWeightGrad(batched.nodes, batched.xs, batched.weight, batched.bias, (wholes.pop(), xs))
    return rows, max(used, key=lambda copy: order[id(copy)], default=None)


def _is_basic(index):
    """Whether an index takes a view (ints, slices, None, Ellipsis): no element twice."""
    parts = index if type(index) is tuple else (index,)
    return all(part is None or part is Ellipsis or isinstance(part, (int, np.integer, slice))
               for part in parts)


# -------------------------------------------------------------- 3. liveness

def free_after_last_use(tape):
    """Pass 3: release every value, saved tuple and gradient after the last instruction that
    reads it, and drop the ops whose value nobody reads (except those that draw at random:
    the draws of the ops after them must stay those of the engine)."""
    forward = _live_forward(tape)
    program = forward + list(tape.backward)
    last = {}
    for position, step in enumerate(program):
        for kind, slots in zip("VSG", reads(step)):
            for slot in slots:
                last[kind, slot] = position
    for slot in tape.outputs:
        last["V", slot] = len(program)  # returned: never freed
    frees = {}
    for (kind, slot), position in last.items():
        frees.setdefault(position, {"V": [], "S": [], "G": []})[kind].append(slot)
    steps = ([], [])
    for position, step in enumerate(program):
        half = steps[0] if position < len(forward) else steps[1]
        half.append(step)
        if position in frees:
            released = frees[position]
            half.append(Free(tuple(released["V"]), tuple(released["S"]), tuple(released["G"])))
    return _with(tape, forward=steps[0], backward=steps[1])


def _live_forward(tape):
    """The forward instructions whose value or saved tuple someone reads, newest first decided."""
    needed_values = set(tape.outputs)
    needed_saved = {slot for step in tape.backward for slot in reads(step)[1]}
    for step in tape.backward:
        needed_values.update(reads(step)[0])
    kept = []
    for step in reversed(tape.forward):
        if isinstance(step, Forward):
            if not (step.out in needed_values or step.out in needed_saved
                    or getattr(step.fn, "draws_random", False)):
                continue
            if step.out not in needed_saved:
                step = dataclasses.replace(step, keep_saved=False)
        needed_values.update(reads(step)[0])  # a pass's own instruction is always kept
        kept.append(step)
    return kept[::-1]


# --------------------------------------------------------- 4. buffer reuse

# The elementwise primitives whose forward is one ufunc, so that it can write into a given
# array (``out=``), and whose saved tuple is () or their inputs, never their output.
UFUNCS = {ops.Add: np.add, ops.Sub: np.subtract, ops.Mul: np.multiply}
# The primitives whose saved tuple holds none of their input arrays.
SAVES_NO_INPUT = (ops.Add, ops.Sub, ops.Exp, ops.Tanh, ops.Sigmoid, ops.ReLU, ops.Sqrt, ops.Clip,
                  ops.LogSoftmax, ops.Sum, ops.Reshape, ops.Transpose, ops.GetItem, ops.Cat, ops.Stack)
# The primitives whose output may be a view of their (first) input.
VIEWS = (ops.Reshape, ops.Transpose, ops.GetItem)


class ReusingForward:
    """``V[out] = ufunc(*V[ins], out=buffer)``: an elementwise forward into an array kept by the
    replay across calls, shared with earlier ops of the same shape whose values are dead."""

    def __init__(self, step, buffer):
        self.step, self.buffer = step, buffer

    def reads(self):
        return reads(self.step)

    def lower(self, free):
        ufunc, (a, b), out, buffer = UFUNCS[self.step.fn], self.step.ins, self.step.out, self.buffer
        keep, released = self.step.keep_saved, free.values
        saved = (lambda V: (V[a], V[b])) if self.step.fn is ops.Mul else (lambda V: ())

        def run(V, S, G, L):
            V[out] = ufunc(V[a], V[b], out=buffer)
            if keep:
                S[out] = saved(V)
            for s in released:
                V[s] = None
        return run


def reuse_buffers(tape):
    """Pass 4: elementwise ops (add, sub, mul) write into arrays allocated once and reused.

    Runs after :func:`free_after_last_use`, whose releases say when a value is
    dead. A value gives its array back for a later op of the same shape and
    dtype once it and every view of it are released, provided that no op
    saved it (or a view of it) for backward and that it is not returned.
    The arrays live as long as the compiled step.
    """
    root, pinned = {}, set()
    for step in tape.forward:
        if isinstance(step, Forward):
            if step.fn in VIEWS:
                root[step.out] = root.get(step.ins[0], step.ins[0])
            if step.keep_saved and not issubclass(step.fn, SAVES_NO_INPUT):
                pinned.update(root.get(i, i) for i in step.ins)
    pinned.update(root.get(s, s) for s in tape.outputs)
    views = {}
    for slot, base in root.items():
        views[base] = views.get(base, 0) + 1
    pool, holding, forward = {}, {}, []
    for step in tape.forward:
        if isinstance(step, Forward) and step.fn in UFUNCS and step.out not in pinned:
            key = (step.shape, step.dtype)
            buffer = pool[key].pop() if pool.get(key) else np.empty(step.shape, step.dtype)
            holding[step.out] = [views.get(step.out, 0) + 1, buffer, key]
            step = ReusingForward(step, buffer)
        elif isinstance(step, Free):
            for slot in step.values:
                entry = holding.get(root.get(slot, slot))
                if entry is not None:
                    entry[0] -= 1
                    if entry[0] == 0:  # the value and all its views are dead: its array is free
                        pool.setdefault(entry[2], []).append(entry[1])
        forward.append(step)
    return _with(tape, forward=forward)


# ------------------------------------------------------------ 5. stacked rows

class StackRows:
    """out = stack(arrays) along axis 0, made by ``np.array`` in one call (``np.stack``
    expands each array first, in Python); input i's gradient is row i of g. Saves what
    ``ops.Stack`` saves, (0,)."""
    name = "stack"

    @staticmethod
    def forward(*arrays, axis):
        return np.array(arrays), (0,)

    @staticmethod
    def backward(saved, g, needs):
        return tuple(g)


def stack_rows(tape):
    """Pass 5: every ``stack`` along the first axis (the T outputs h(t) of a layer) as
    :class:`StackRows`, forward and backward: for 20 arrays of (8, 32), 5 us instead of 13
    forward and 2 instead of 7 backward."""
    stacks = {step.out for step in tape.forward if type(step) is Forward and step.fn is ops.Stack
              and step.params["axis"] % len(step.shape) == 0}
    forward = [dataclasses.replace(step, fn=StackRows) if type(step) is Forward and step.out in stacks
               else step for step in tape.forward]
    backward = [dataclasses.replace(step, fn=StackRows) if type(step) is Backward and step.node in stacks
                else step for step in tape.backward]
    return _with(tape, forward=forward, backward=backward)


def _with(tape, **changes):
    fields = {"slots": tape.slots, "inputs": tape.inputs, "forward": tape.forward,
              "backward": tape.backward, "outputs": tape.outputs, "leaves": tape.leaves}
    fields.update(changes)
    return Tape(**fields)


UNROLLED_PASSES = (fuse_cross_entropy, batch_weight_grads, join_slices, place_slices, fold_hidden_bias,
                   free_after_last_use, reuse_buffers, stack_rows)
