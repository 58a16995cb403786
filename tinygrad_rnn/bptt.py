"""``bptt.record``: what backpropagation through time does at every time step.

The article ("Recurrent Neural Networks (RNN)" by Gayathri Siva, Medium,
26 May 2021) defines BPTT by one sentence: "the gradient descent weight
updates have contributions from each timestamp". Inside ``record()`` the
engine tells a recording every op it applies and, in backward, every
tensor's gradient and every share an op adds into a leaf's gradient
(``autograd.observing``). The recording keeps, for each time step (a scope
``t=<k>``) of each sequence (the scope path before it, such as ``lstm/l0``):

- every named tensor of the step (RNN ``h``; LSTM ``i f c~ o c h``; GRU
  ``r z n h``; any name a hand-made cell gives): its value and dL/d(tensor);
- for every leaf, the part of dL/dW added by the ops of that step. A step's
  ops are the ops whose output was made in its scope, so the split is exact:

      dL/dW = sum over t of (dL/dW)_t + (dL/dW)_outside

  where "outside" is what ops outside any step added (a sequence layer's
  input projection x W_ih^T for all steps at once, a readout, a loss).

    with bptt.record() as rec:
        output, (h_n, c_n) = lstm(x)
        loss = nn.cross_entropy(readout(output).reshape(-1, K), y.reshape(-1))
        loss.backward()
    rec.grad_norms("h")                            # (T,): ||dL/dh_t||
    rec.weight_grad_by_step(lstm.weight_hh_l0)     # (T, 4H, H): step t's share of dL/dW_hh

Run the forward pass and ``backward()`` inside the block. Outside it the
engine keeps nothing: the recording lets go of the graph when the block ends.

``connectivity(fn, x)``: which earlier inputs each prediction listens to, C[t, s] = ||d fn(x)[t] / d x[s]||.
"""
import re
from contextlib import contextmanager

import numpy as np

from . import autograd
from .tensor import Tensor

_STEP = re.compile(r"t=(\d+)")
# Said by every error about something not recorded.
_HOW_FOUND = ("Steps are the scopes t=<k> that nn.unroll and the sequence layers open, one per "
              "step (in a loop of one's own: with tr.scope(f't={t}'): ...); in each step the "
              "tensors with a name are recorded: the built-in cells name their gates and "
              "states, nn.unroll names a state the cell left unnamed (h, or h and c), and "
              "Tensor.named names any other")


@contextmanager
def record():
    """Record every time step inside the block; yields the :class:`Recording`."""
    recording = Recording()
    try:
        with autograd.observing(recording):
            yield recording
    finally:
        recording._close()


def step_of(scope):
    """'lstm/l0/t=3' -> ('lstm/l0', 3): the sequence and the innermost step; None outside any step."""
    parts = scope.split("/") if scope else []
    for k in range(len(parts) - 1, -1, -1):
        match = _STEP.fullmatch(parts[k])
        if match:
            return "/".join(parts[:k]), int(match.group(1))
    return None


def within(path, scope):
    """Whether ``path`` lies in ``scope``, a prefix by whole parts: 'lstm/l1' holds
    'lstm/l1/t=3', not 'lstm/l1_reverse/t=3'. ``scope=None`` holds everything."""
    return scope is None or path == scope or path.startswith(scope + "/")


def step_path(sequence, t):
    return f"{sequence}/t={t}" if sequence else f"t={t}"


class _Named:
    """One named tensor of one step: its value and, once backward reached it, dL/d(it)."""
    __slots__ = ("value", "grad")

    def __init__(self, value):
        self.value, self.grad = value, None


class Recording:
    """What one ``record()`` block saw, step by step; every query takes ``scope=``.

    A step is a scope ``t=<k>``; its sequence is the scope path before it
    (``lstm/l0``, ``lstm/l0_reverse``, ``""`` for ``nn.unroll`` at the top
    level). When a name or a parameter is found in several sequences, the
    query needs ``scope=`` (see :func:`within`) and says which ones match.
    """

    def __init__(self):
        self._places = {}      # scope string -> (sequence, t) or None, computed once per scope
        self._made = []        # tensors made in a step, perhaps, not yet looked at for a name
        self._steps = {}       # (sequence, t) -> {name: [_Named, ...]}, in the order steps ran
        self._tensors = {}     # named tensor -> its _Named, while the block is open
        self._shares = {}      # leaf -> {(sequence, t) or (scope, None): the gradient its ops added}
        self._backward_ran = False

    # ------------------------------------------------------ what the engine tells

    def applied(self, t, params):
        # Kept short: it runs for every op. Names are read later, when backward starts.
        if "t=" in t.scope:
            self._made.append(t)

    def read(self, t, how):
        """Reading a value out changes nothing in the recording."""

    def gradient(self, t, g):
        self._backward_ran = True
        if self._made:  # backward starts: the step tensors have their names by now
            self._settle()
        named = self._tensors.get(t)
        if named is not None:
            named.grad = g if named.grad is None else named.grad + g

    def added(self, node, leaf, g):
        place = self._place(node.scope)
        key = (node.scope, None) if place is None else place
        shares = self._shares.setdefault(leaf, {})
        # The engine never changes in place an array it passed on, so keeping g itself is safe.
        shares[key] = g if key not in shares else shares[key] + g

    def _place(self, scope):
        place = self._places.get(scope, False)
        if place is False:
            place = self._places[scope] = step_of(scope)
        return place

    def _settle(self):
        """File the tensors made in steps under their names; forget the unnamed ones."""
        for t in self._made:
            place = None if t.name is None else self._place(t.scope)
            if place is not None:
                named = _Named(t.data)
                self._steps.setdefault(place, {}).setdefault(t.name, []).append(named)
                self._tensors[t] = named
        self._made = []

    def _close(self):
        self._settle()
        self._tensors = {}

    # ------------------------------------------------------------------ queries

    @property
    def steps(self):
        """The recorded time steps k (scopes ``t=<k>``) of every sequence, in time order."""
        self._settle()
        return sorted(dict.fromkeys(t for _, t in self._steps))

    @property
    def sequences(self):
        """The scope paths of the recorded sequences, in the order they first ran."""
        self._settle()
        return list(dict.fromkeys(sequence for sequence, _ in self._steps))

    def names(self, scope=None):
        """The names of the tensors recorded in the steps within ``scope``."""
        self._settle()
        return list(dict.fromkeys(name for place, names in self._steps.items()
                                  if within(step_path(*place), scope) for name in names))

    def steps_of(self, what, scope=None):
        """The steps k that the queries about ``what`` (a name, or a leaf such as a weight)
        within ``scope`` return, in order: the x axis of their pictures."""
        return self._pick(what, scope)[1] if isinstance(what, str) else self._param_steps(what, scope)[1]

    def values(self, name, scope=None):
        """(T, *shape): the tensor named ``name`` at each step, in time order."""
        return _stacked(name, [n.value for n in self._named(name, scope)])

    def grads(self, name, scope=None):
        """(T, *shape): dL/d(name) at each step (zeros where backward did not reach it)."""
        self._need_backward(f"grads({name!r})")
        named = self._named(name, scope)
        return _stacked(name, [np.zeros_like(n.value) if n.grad is None else n.grad for n in named])

    def grad_norms(self, name, scope=None):
        """(T,): the norm of dL/d(name)_t over its batch and units."""
        grads = self.grads(name, scope)
        return np.linalg.norm(grads.reshape(len(grads), -1), axis=1)

    def saturation(self, name, low=0.1, high=0.9, scope=None):
        """(T,): at each step, the fraction of the values of ``name`` below ``low`` or above
        ``high``: a gate near 0 or 1 passes almost no gradient through its sigmoid."""
        if not low < high:
            raise ValueError(f"saturation: low must be below high, got low={low}, high={high}")
        values = self.values(name, scope)
        outside = (values < low) | (values > high)
        return outside.reshape(len(values), -1).mean(axis=1)

    def weight_grad_by_step(self, param, scope=None):
        """(T, *param.shape): step t's share of the gradient that backward added to ``param``.

        Its sum over the steps plus :meth:`weight_grad_outside` is that gradient.
        A step that did not use ``param`` has a share of zeros.
        """
        self._need_backward("weight_grad_by_step")
        shares = self._leaf_shares(param)
        sequence, steps = self._param_steps(param, scope)
        zeros = np.zeros(param.shape, param.dtype)
        return np.stack([shares.get((sequence, t), zeros) for t in steps])

    def weight_grad_outside(self, param, scope=None):
        """The part of ``param``'s gradient added by ops outside every step (within ``scope``)."""
        self._need_backward("weight_grad_outside")
        total = np.zeros(param.shape, param.dtype)
        for (where, t), share in self._leaf_shares(param).items():
            if t is None and within(where, scope):
                total = total + share
        return total

    # ------------------------------------------------------------------ helpers

    def _named(self, name, scope):
        """The recorded tensors called ``name`` of the one sequence within ``scope``, in t order."""
        return self._pick(name, scope)[2]

    def _pick(self, name, scope):
        """(sequence, its steps within ``scope``, the _Named of ``name`` at each) for the one
        sequence within ``scope`` that has ``name``; else a ValueError saying what there is."""
        places = self._places_within(scope)
        where = "" if scope is None else f" within scope {scope!r}"
        if not places:
            what = "no step was recorded" if scope is None else f"no recorded step lies{where}"
            raise ValueError(f"bptt.record: {what}; recorded sequences: {_listing(self.sequences)}. "
                             f"{_HOW_FOUND}")
        found = [p for p in places if name in self._steps[p]]
        if not found:
            raise ValueError(f"bptt.record: no tensor named {name!r} in the recorded steps{where}; "
                             f"known names: {_listing(self.names(scope))}. {_HOW_FOUND}")
        sequences = list(dict.fromkeys(s for s, _ in found))
        if len(sequences) > 1:
            raise ValueError(_ambiguous(f"{name!r}", sequences))
        sequence = sequences[0]
        steps = sorted(t for s, t in places if s == sequence)
        missing = [t for t in steps if name not in self._steps[(sequence, t)]]
        if missing:
            raise ValueError(f"bptt.record: {name!r} is recorded in {sequence or 'the top-level'} "
                             f"sequence but not at steps {missing}; pass scope= to pick steps")
        named = [self._steps[(sequence, t)][name] for t in steps]
        repeated = [t for t, n in zip(steps, named) if len(n) > 1]
        if repeated:
            raise ValueError(
                f"bptt.record: {len(named[steps.index(repeated[0])])} tensors are named {name!r} "
                f"at {step_path(sequence, repeated[0])}: the block ran that sequence more than "
                f"once (or a step names two tensors alike); record one run, or run each in "
                f"its own tr.scope(...)")
        return sequence, steps, [n[0] for n in named]

    def _leaf_shares(self, param):
        shares = self._shares.get(param)
        if shares is None:
            known = [_describe(leaf) for leaf in self._shares]
            raise ValueError(f"bptt.record: {_describe(param)} received no gradient in the "
                             f"backward run inside the block; the leaves that did: {_listing(known)}")
        return shares

    def _places_within(self, scope):
        """The recorded (sequence, t) whose step path lies within ``scope``, in the order they ran."""
        self._settle()
        return [p for p in self._steps if within(step_path(*p), scope)]

    def _param_steps(self, param, scope):
        """(sequence, its steps within ``scope``) for the one sequence there whose steps used
        ``param``; else the one whose own scope used it (a layer's input projection), else
        the only sequence there."""
        shares = self._leaf_shares(param)
        places = self._places_within(scope)
        candidates = list(dict.fromkeys(s for s, _ in places))
        in_steps = dict.fromkeys(s for s, t in shares if t is not None)
        using = [s for s in candidates if s in in_steps]
        using = using or [s for s in candidates if (s, None) in shares]
        using = using or (candidates if len(candidates) == 1 else [])
        if len(using) == 1:
            return using[0], sorted(t for s, t in places if s == using[0])
        if using:
            raise ValueError(_ambiguous(_describe(param), using))
        where = "" if scope is None else f" within scope {scope!r}"
        raise ValueError(f"bptt.record: no recorded sequence{where} used {_describe(param)} in "
                         f"its steps; recorded sequences: {_listing(self.sequences)}. {_HOW_FOUND}")

    def _need_backward(self, what):
        self._settle()
        if not self._backward_ran:
            raise RuntimeError(f"bptt.record: {what} needs gradients, but no backward ran "
                               f"inside the record() block; call loss.backward() inside it")


def _stacked(name, arrays):
    shapes = list(dict.fromkeys(a.shape for a in arrays))
    if len(shapes) > 1:
        raise ValueError(f"bptt.record: {name!r} has different shapes at different steps "
                         f"({_listing(shapes)}), so they do not stack into one (T, ...) array")
    return np.stack(arrays)


def _ambiguous(what, sequences):
    return (f"bptt.record: {what} is found in {len(sequences)} recorded sequences: "
            f"{_listing(sequences)}; pass scope= with one of them (a hand-made unroll at the "
            f"top level has the path ''; wrap it in tr.scope(name) to tell it apart)")


def _describe(leaf):
    name = f" {leaf.name!r}" if leaf.name else ""
    return f"the leaf{name} of shape {leaf.shape}"


def _listing(items):
    return ", ".join(repr(item) for item in items) or "none"


# ------------------------------------------------------------------ connectivity

def connectivity(fn, x, target=None):
    """Which earlier inputs each prediction listens to: C (B, T_out, T_in), exact.

    ``fn(x)`` maps a float input sequence x (T, B, I) (for a character model:
    the embedded characters) to outputs (T_out, B, K); ``target`` (T_out, B)
    names the output followed at each step (default: the argmax, the
    predicted class; for K = 1 the one output). Then

        C[b, t, s] = || d fn(x)[t, b, target[t, b]] / d x[s, b] ||_2

    the norm over the I features of the gradient of one prediction with
    respect to one input. It is computed by backward through the unrolled
    graph, one backward per output step t for all batch items at once: the
    items of a batch do not mix, so d(sum over b of fn(x)[t, b, target]) /
    d x[s, b] is item b's own gradient. For a one-directional network
    C[b, t, s] = 0 for s > t. An unbatched x (T, I) goes to ``fn`` as a
    batch of one, (T, 1, I), and gives C (T_out, T_in).

    ``x`` (a Tensor or an ndarray) need not require grad: a fresh leaf copy
    of it is followed. The leaves ``fn`` uses (its parameters) do not
    require grad during the backward passes, so their ``.grad`` are left
    as they were and their gradients are not computed.
    """
    leaf, unbatched = _connectivity_input(x)
    if not autograd.is_grad_enabled():
        raise RuntimeError("connectivity: gradients are off (inside tr.no_grad()); "
                           "call it outside no_grad")
    out = fn(leaf)
    steps = _connectivity_output(out, leaf)
    picked = _connectivity_target(target, out, unbatched)
    others = [node for node in autograd._graph_order(out) if node.op is None and node is not leaf]
    C = np.zeros((leaf.shape[1], steps, leaf.shape[0]), leaf.dtype)
    try:
        for other in others:
            other.requires_grad = False
        for t in range(steps):
            seed = np.zeros(out.shape, out.dtype)
            seed[t, np.arange(out.shape[1]), picked[t]] = 1
            leaf.grad = None
            out.backward(seed, retain_graph=t < steps - 1)
            if leaf.grad is not None:  # else fn's output at t does not depend on x
                C[:, t, :] = np.linalg.norm(leaf.grad, axis=2).T
    finally:
        for other in others:
            other.requires_grad = True
    return C[0] if unbatched else C


def _connectivity_input(x):
    """(a fresh (T, B, I) leaf that requires grad, whether x was unbatched (T, I))."""
    data = x.data if isinstance(x, Tensor) else x
    if not isinstance(data, np.ndarray) or data.dtype.kind != "f":
        got = data.dtype if isinstance(data, np.ndarray) else type(data).__name__
        raise TypeError(f"connectivity: x must be a floating Tensor or ndarray (T, B, I), e.g. the "
                        f"embedded characters, got {got}")
    if data.ndim not in (2, 3) or 0 in data.shape:
        raise ValueError(f"connectivity: x must be (T, B, I), or (T, I) for one unbatched "
                         f"sequence, with no empty axis; got shape {data.shape}")
    unbatched = data.ndim == 2
    leaf = Tensor(data[:, None] if unbatched else data, requires_grad=True)
    return leaf, unbatched


def _connectivity_output(out, leaf):
    """T_out, after checking that fn's output is a (T_out, B, K) Tensor computed from x."""
    if not isinstance(out, Tensor):
        raise TypeError(f"connectivity: fn(x) must return a Tensor (T, B, K), got {type(out).__name__}"
                        f" (a layer returns (output, state): pass a fn that returns the output)")
    if out.ndim != 3 or out.shape[1] != leaf.shape[1] or 0 in out.shape:
        raise ValueError(f"connectivity: fn(x) must return (T_out, B, K) with B = {leaf.shape[1]} "
                         f"as in x {leaf.shape} (T, B, I), got shape {out.shape}")
    if not out.requires_grad:
        raise ValueError("connectivity: fn(x) does not depend on x through operations on Tensors "
                         "(its output does not require grad); fn must compute with the x it is given")
    return out.shape[0]


def _connectivity_target(target, out, unbatched):
    """The (T_out, B) class indices followed: ``target`` checked, or the argmax of each output."""
    steps, batch, classes = out.shape
    if target is None:
        return out.data.argmax(axis=2)
    data = np.asarray(target.data if isinstance(target, Tensor) else target)
    shape = (steps,) if unbatched else (steps, batch)
    if data.shape != shape or data.dtype.kind not in "iu":
        raise ValueError(f"connectivity: target must be integer class indices of shape {shape} "
                         f"(T_out{'' if unbatched else ', B'}), got shape {data.shape}, dtype {data.dtype}")
    if data.size and (data.min() < 0 or data.max() >= classes):
        raise ValueError(f"connectivity: target holds classes {data.min()}..{data.max()} but fn(x) "
                         f"has K = {classes} outputs per step (classes 0..{classes - 1})")
    return data.reshape(steps, batch)
