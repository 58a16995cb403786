"""The tape: a traced step as a flat list of instructions over numbered slots.

A traced step is a program on three arrays of slots, one slot per tensor of
the trace: ``V[s]`` its value, ``S[s]`` what its op's forward saved for
backward, ``G[s]`` its gradient so far. Slots are filled from the call's
arguments (``Input``), the leaves that ``fn`` reached from outside (read
afresh at every call) and the constants ``fn`` made itself (frozen). The
instructions, in the order they run:

- ``Forward``: ``V[out], S[out] = fn.forward(*V[ins], **params)``;
- ``Backward``: ``fn.backward(S[node], G[node], needs)``, each input's share
  summed back to its shape (``ops.unbroadcast``) and added into ``G[parent]``;
- ``SliceGrad``: a ``getitem``'s gradient added into its parent's, in place
  (``ops.GetItem.add_into``), as the reference engine does;
- ``LeafGrad``: ``G[leaf]`` added into the leaf Tensor's ``.grad``;
- ``Free``: slots released (written by the liveness pass).

Backward instructions come in ``autograd.backward_pass``'s order (newest
tensor first), so the unoptimised replay adds the same numbers in the same
order as ``loss.backward()`` and gets the same bits. How a share is added
into ``G[parent]`` (kept as it is, summed into a new array, or added in
place) is decided once, by :func:`plan_accumulation`, from the order of the
shares, exactly as ``autograd._accumulate`` decides it at run time.
"""
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from .. import ops


@dataclass
class Input:
    """Slot ``slot`` is read at the start of a call: the call's ``arg``-th Tensor argument,
    an outside ``leaf`` (a Parameter: its ``.data`` now), a frozen ``array``, or with
    ``generator`` the random generator of ``tr.manual_seed`` now (a random op's ``rng``)."""
    slot: int
    arg: int = None
    leaf: object = None
    array: np.ndarray = None
    generator: bool = False


@dataclass
class Forward:
    """``V[out], S[out] = fn.forward(*V[ins], **params)``; S kept only when ``keep_saved``.

    ``bound`` lists the params that hold a traced array (an index taken from an
    integer Tensor): ``(key, position in a tuple or None, slot)``, filled from
    ``V`` at every call. ``shape`` and ``dtype`` are the output's.
    ``wrap``: the output is 0-d, so numpy may give a scalar. ``scope``: the
    output's scope path ("lstm/l0/t=3"), which says to which step it belongs;
    ``name``: the output's name ("c~"), if it has one.
    """
    fn: type
    ins: tuple
    params: dict
    out: int
    keep_saved: bool
    bound: tuple = ()
    shape: tuple = ()
    dtype: np.dtype = None
    wrap: bool = False
    scope: str = ""
    name: str = ""


@dataclass
class Backward:
    """``fn.backward(S[node], G[node], needs)``; ``routes`` = ((i, parent slot, parent shape), ...)
    for the inputs whose share is added into ``G[parent]``."""
    node: int
    fn: type
    needs: tuple
    routes: tuple
    kinds: tuple = ()


@dataclass
class SliceGrad:
    """``G[parent][index] += G[node]`` (``ops.GetItem.add_into``) for ``node = parent[index]``.

    ``assign``: the pass :func:`join_slices` proved that the slices of the
    parent are disjoint and cover it, so the first writes into an empty array
    and every slice is assigned, at ``index``, rather than added. ``host``
    (from :func:`place_slices`): that empty array is the place ``index`` of
    a larger gradient, ``(slot, shape, dtype, index)``, made first if needed.
    """
    node: int
    parent: int
    shape: tuple
    dtype: np.dtype
    assign: bool = False
    index: object = None
    host: tuple = None
    kind: str = ""


@dataclass
class LeafGrad:
    """Add ``G[slot]`` into the leaf's ``.grad`` (set it, a copy, if it has none)."""
    slot: int
    dtype: np.dtype


@dataclass
class Free:
    """Release slots: ``V[s] = None`` for s in ``values``, and likewise ``saved`` and ``grads``."""
    values: tuple = ()
    saved: tuple = ()
    grads: tuple = ()


@dataclass
class Tape:
    """A traced step: its inputs, forward and backward instructions, and what it returns.

    ``outputs`` is the slot of the loss followed by the slots of the other
    returned Tensors; ``leaves`` are the (slot, Tensor, shape, dtype,
    requires_grad) of the outside leaves, checked before every replay.
    """
    slots: int
    inputs: list
    forward: list
    backward: list
    outputs: tuple
    leaves: list = field(default_factory=list)


def plan_accumulation(tape):
    """Decide, for every share added into a gradient slot, how it is added.

    Mirrors ``autograd._accumulate`` and ``_owned``: the first share is kept as
    it is ("set": it may be the very array another slot received); the second
    is summed into a new array ("new"), which this slot then owns; later ones
    are added in place ("inplace"). A slice's share needs an owned array: a
    new zeros array ("zeros"), a copy of the shares so far ("copy"), or the
    one already owned ("owned"); with ``assign`` the first slice takes a new
    empty array ("empty") and every slice is written over its place.
    """
    owned = {}  # slot -> whether G[slot] is an array the replay owns (absent: no share yet)
    for instruction in tape.backward:
        plan_step(instruction, owned)
    return tape


def plan_step(instruction, owned):
    """Plan one backward instruction's shares (see :func:`plan_accumulation`), noting in
    ``owned`` the gradient slots it leaves owned."""
    if isinstance(instruction, Backward):
        instruction.kinds = tuple(share_kind(owned, parent) for _, parent, _ in instruction.routes)
    elif isinstance(instruction, SliceGrad):
        state = owned.get(instruction.parent)
        if instruction.assign:
            instruction.kind = "empty" if state is None else "owned"
        else:
            instruction.kind = {None: "zeros", False: "copy", True: "owned"}[state]
        owned[instruction.parent] = True
    elif hasattr(instruction, "plan"):
        instruction.plan(owned)


def share_kind(owned, slot):
    """How the next dense share goes into ``G[slot]``: "set", "new" or "inplace" (and note it)."""
    kind = {None: "set", False: "new", True: "inplace"}[owned.get(slot)]
    owned[slot] = slot in owned
    return kind


# The primitives whose backward reads nothing of what their forward saved (it saves ()).
SAVE_NOTHING = (ops.Add, ops.Sub)


def reads(step):
    """(value slots, saved slots, gradient slots) that an instruction reads."""
    if isinstance(step, Forward):
        return step.ins + tuple(slot for _, _, slot in step.bound), (), ()
    if isinstance(step, Backward):  # an add's or a sub's saved tuple is (): its backward reads none
        return (), () if step.fn in SAVE_NOTHING else (step.node,), (step.node,)
    if isinstance(step, SliceGrad):  # a joined slice knows its index: it needs no saved tuple
        return (), () if step.assign else (step.node,), (step.node,)
    if isinstance(step, LeafGrad):
        return (), (), (step.slot,)
    return step.reads()


# The instructions of this module that read no value, only saved tuples and gradients.
READ_NO_VALUE = (Backward, SliceGrad, LeafGrad, Free)


def value_readers(tape):
    """{slot: how many instructions read its value} (a Counter: 0 for none), a returned value
    counting once more."""
    readers = Counter(tape.outputs)
    for step in tape.forward + tape.backward:
        if type(step) not in READ_NO_VALUE:
            readers.update(reads(step)[0])
    return readers
