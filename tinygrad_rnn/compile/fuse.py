"""Pass 0: the cross-entropy that ``nn.cross_entropy`` leaves in a tape, as one instruction each way.

On logits z (N, K) and integer targets t (N,), ``nn.cross_entropy`` runs five primitives:

    lp = log_softmax(z)          lp = z - m - ln sum_j e^(z_j - m),  m = max_j z_j, row by row
    picked = lp[arange(N), t]    each row's target entry
    losses = picked * -1         the per-sample losses (reduction "none")
    total = losses.sum()         (reduction "sum")
    loss = total / N             (reduction "mean")

and backward sends the loss's gradient back through five more, one of them a scatter
(``np.add.at``) into an (N, K) array of zeros. With s = z - m and e = exp(s), the losses are
ln sum_j e_j - s_t, and for the gradient g of the last of them (g / N for the mean)

    dL/dz = (softmax(z) - onehot(t)) * g = e * (g / sum_j e_j) - onehot(t) * g,

as the hand-written numpy step computes it: nine numpy calls forward, three backward.
:func:`fuse_cross_entropy` replaces the five forward instructions by one
:class:`CrossEntropy` and the five backward ones by one :class:`CrossEntropyGrad`. Both
round differently from the engine in the last bits only: a row's sum is added in another
order, and softmax is e over that sum where the engine takes exp(lp).

It never guesses: it fuses only that chain, its instructions consecutive as the engine
records them, each intermediate read by the next primitive only and not returned, the row
index exactly arange(N) and the constants -1 and a scalar divisor frozen by the trace; a
chain that stops early (reduction "none" or "sum") is fused as far as it goes.
"""
import dataclasses

import numpy as np

from .. import ops
from .replay import ADD, releaser
from .tape import Backward, Forward, SliceGrad, share_kind, value_readers


class CrossEntropy:
    """``V[out]`` = the cross-entropy of the logits ``V[logits]`` (N, K) against the targets,
    reduced ("none": the N losses; "sum"; "mean": the sum over ``divisor``, a 0-d array).

    The targets are ``V[target]`` when ``target`` is a slot (an index that the trace took
    from a Tensor), else the array ``target`` itself. With ``keep_saved``, ``S[out]`` holds
    e (N, K) and its row sums (N,) for :class:`CrossEntropyGrad`.
    """

    rerun = True  # no random draw: the first call may run it again on the trace's values

    def __init__(self, logits, target, out, shape, dtype, reduction, divisor, keep_saved):
        self.logits, self.target, self.out, self.shape, self.dtype = logits, target, out, shape, dtype
        self.reduction, self.divisor, self.keep_saved = reduction, divisor, keep_saved

    def reads(self):
        return (self.logits,) + ((self.target,) if type(self.target) is int else ()), (), ()

    def lower(self, free):
        logits, target, out, reduction = self.logits, self.target, self.out, self.reduction
        divisor, keep, released, bound = self.divisor, self.keep_saved, free.values, type(target) is int
        rows, ones = np.arange(self.shape[0]), np.ones(self.shape[1], self.dtype)

        def run(V, S, G, L):
            z, t = V[logits], V[target] if bound else target
            shifted = z - z.max(axis=1, keepdims=True)
            e = np.exp(shifted)
            sums = e @ ones  # a row's sum as a product: a third of e.sum(axis=1)'s time
            losses = np.log(sums) - shifted[rows, t]
            if reduction == "none":
                V[out] = losses
            else:
                total = losses.sum()
                V[out] = np.asarray(total / divisor if reduction == "mean" else total)
            if keep:
                S[out] = (e, sums)
            for s in released:
                V[s] = None
        return run


class CrossEntropyGrad:
    """``G[logits]`` gets (softmax - onehot(targets)) * g for g = ``G[node]`` (over the divisor
    for the mean; one g per row for "none"), from what :class:`CrossEntropy` saved at ``node``
    and the targets as it read them. The saved e becomes that gradient: a saved tuple is
    read once."""

    def __init__(self, node, logits, target, rows, reduction, divisor):
        self.node, self.logits, self.target, self.rows = node, logits, target, rows
        self.reduction, self.divisor, self.kinds = reduction, divisor, ()

    def reads(self):  # the targets' slot stays alive until here: no buffer reuse can overwrite it
        return (self.target,) if type(self.target) is int else (), (self.node,), (self.node,)

    def plan(self, owned):
        self.kinds = (share_kind(owned, self.logits),)

    def lower(self, free):
        node, logits, target, reduction = self.node, self.logits, self.target, self.reduction
        divisor, bound = self.divisor, type(target) is int
        add, release, rows = ADD[self.kinds[0]], releaser(free), np.arange(self.rows)

        def run(V, S, G, L):
            (e, sums), t = S[node], V[target] if bound else target
            g = G[node] / divisor if reduction == "mean" else G[node]
            e *= (g / sums)[:, None]  # g is 0-d, or (N,) for "none"
            e[rows, t] -= g
            add(G, logits, e)
            if release is not None:
                release(V, S, G)
        return run


# ------------------------------------------------------------------- the pass

def fuse_cross_entropy(tape):
    """Pass 0: every cross-entropy chain of the tape (see the module docstring) as one
    :class:`CrossEntropy` forward and one :class:`CrossEntropyGrad` backward instruction.
    Run it first: it reads the tape as the trace wrote it."""
    starts = [k for k, step in enumerate(tape.forward) if getattr(step, "fn", None) is ops.LogSoftmax]
    if not starts or not all(type(step) is Forward for step in tape.forward):
        return tape
    readers = value_readers(tape)
    frozen = {source.slot: source.array for source in tape.inputs if source.array is not None}
    forward, backward = list(tape.forward), list(tape.backward)
    for position in reversed(starts):  # from the last, so that the positions before stay put
        chain = forward_chain(forward[position:position + 5], readers, frozen)
        fused = None if chain is None else fuse(chain, backward, frozen)
        if fused is not None:
            forward[position:position + len(chain)] = [fused]
    return dataclasses.replace(tape, forward=forward, backward=backward)


def forward_chain(steps, readers, frozen):
    """The longest cross-entropy chain that ``steps`` begin with (3 to 5 Forward instructions,
    from the log_softmax), or None. ``readers``: slot -> how many instructions read its value
    (a returned value counts one more); ``frozen``: slot -> the array of a constant of the trace."""
    first = steps[0]
    if not (type(first) is Forward and first.fn is ops.LogSoftmax and len(first.shape) == 2
            and first.params["axis"] in (-1, 1)):
        return None
    rows = first.shape[0]
    pick, negate = steps[1:3] if len(steps) >= 3 else (None, None)
    if not (type(pick) is Forward and pick.fn is ops.GetItem and pick.ins == (first.out,)
            and _picks_one_per_row(pick, rows) and type(negate) is Forward and negate.fn is ops.Mul
            and negate.ins[0] == pick.out and _constant(negate.ins[1], frozen, first.dtype) == -1
            and readers[first.out] == readers[pick.out] == 1):
        return None
    chain = [first, pick, negate]
    for step, fn in zip(steps[3:], (ops.Sum, ops.Div)):
        if not (type(step) is Forward and step.fn is fn and step.ins[0] == chain[-1].out
                and readers[chain[-1].out] == 1):
            break
        if fn is ops.Sum and step.params != {"axis": None, "keepdims": False}:
            break
        if fn is ops.Div and _constant(step.ins[1], frozen, first.dtype) is None:
            break
        chain.append(step)
    return chain


def _picks_one_per_row(pick, rows):
    """Whether ``pick`` is lp[arange(N), t] for integer targets t (N,) (t may be bound)."""
    index = pick.params["index"]
    if type(index) is not tuple or len(index) != 2 or any(position != 1 for _, position, _ in pick.bound):
        return False
    return all(isinstance(part, np.ndarray) and part.dtype.kind in "iu" and part.shape == (rows,)
               for part in index) and np.array_equal(index[0], np.arange(rows))


def _constant(slot, frozen, dtype):
    """The value of a 0-d constant of ``dtype`` that the trace froze, else None."""
    array = frozen.get(slot)
    if array is None or array.shape != () or array.dtype != dtype:
        return None
    return array


def fuse(chain, backward, frozen):
    """The fused forward instruction of ``chain``, its backward (if the tape has one) put into
    ``backward`` in place of the chain's; None, ``backward`` untouched, if that backward is not
    the chain's instructions back to front, one after another."""
    first, pick, last = chain[0], chain[1], chain[-1]
    rows, slots = first.shape[0], [step.out for step in chain]
    reduction = {3: "none", 4: "sum", 5: "mean"}[len(chain)]
    divisor = frozen[last.ins[1]] if reduction == "mean" else None
    start = next((k for k, step in enumerate(backward) if getattr(step, "node", None) == last.out), None)
    if start is None and any(getattr(step, "node", None) in slots for step in backward):
        return None
    target = pick.bound[0][2] if pick.bound else pick.params["index"][1]
    if start is not None:
        if backward[start:start + len(chain)] != expected_backward(chain):
            return None
        backward[start:start + len(chain)] = [CrossEntropyGrad(last.out, first.ins[0], target, rows,
                                                               reduction, divisor)]
    return CrossEntropy(first.ins[0], target, last.out, first.shape, first.dtype, reduction, divisor,
                        start is not None)


def expected_backward(chain):
    """The backward instructions that the engine records for ``chain``, newest first."""
    steps = []
    for before, step in zip([None] + chain[:-1], chain):
        if step.fn is ops.GetItem:
            steps.append(SliceGrad(step.out, before.out, before.shape, before.dtype))
        elif step.fn is ops.LogSoftmax:
            steps.append(Backward(step.out, step.fn, (True,), ((0, step.ins[0], step.shape),)))
        else:
            needs = (True,) + (False,) * (len(step.ins) - 1)
            steps.append(Backward(step.out, step.fn, needs, ((0, before.out, before.shape),)))
    return steps[::-1]
