"""What a picture of the graph holds: the tensors to draw, grouped into nodes, and the edges.

The walk (:func:`walk`) lists every tensor behind the roots in an order close
to the order of computation. :class:`Graph` turns that list into drawn nodes
and edges, at one of three levels of detail:

- ``"ops"``: one node per op, the unrolled network. Two kinds of tensor get
  no node of their own: a scalar constant (the 1 of 1 - z) is written into
  its consumer's label, and the plumbing of a step (a getitem, as made by
  ``chunk`` and ``split``, cutting gate blocks out of one product) is folded
  into the edge to its consumer, so that an LSTM step reads as its gates.
- ``"cells"``: each time step (a scope named ``t=<k>``) one node.
- ``"rolled"``: each sequence's step drawn once, standing for all of its
  runs; its state edges loop back from its outputs to its inputs. Step t of
  a sequence is matched to the drawn step tensor by tensor, in creation
  order.

An edge from one step into a later step of the same sequence carries the
recurrent state, h(t-1) -> h(t) (and c for the LSTM), when the step computes
with it; an edge whose tensor the step only adds to (a running loss sum
L = L + L(t)) is data, not state.
"""
import math

import numpy as np

from ..nn.module import Parameter
from ..tensor import Tensor

# Ops that leave a tensor's values as they are, or only add to them: a tensor
# that reaches nothing else in a step is accumulated there (a running sum), not used.
_ACCUMULATING = ("add", "sub", "neg", "getitem", "reshape", "transpose")
_SCALING = ("mul", "div")


# ------------------------------------------------------------ walking the graph

def flatten_roots(caller, roots):
    """The Tensors in ``roots``, with lists and tuples (a layer's outputs) flattened."""
    found, pending = [], list(reversed(roots))
    while pending:
        item = pending.pop()
        if isinstance(item, Tensor):
            found.append(item)
        elif isinstance(item, (list, tuple)):
            pending += reversed(item)
        else:
            raise TypeError(f"{caller}: roots must be Tensors (or lists/tuples of them), "
                            f"got {type(item).__name__}")
    if not found:
        raise ValueError(f"{caller}: needs at least one Tensor to draw")
    return found


def is_constant(t):
    """A scalar constant, such as the 1 in (1 - z): written into its consumer's label."""
    return (t.op is None and t.ndim == 0 and not t.requires_grad and t.name is None
            and not isinstance(t, Parameter))


def is_plumbing(t):
    """A getitem that cuts a block out of a value made in its own time step, or out of a
    weight (a gate block of a product, as ``chunk`` and ``split`` make): folded.

    A getitem that takes a step's slice x[t] of a whole sequence stays: it is the
    step's input.
    """
    if t.op != "getitem" or t.name is not None:
        return False
    step = step_of(t.scope)
    parent = t.parents[0]
    return step is not None and (isinstance(parent, Parameter) or step_of(parent.scope) == step)


def _depths(roots):
    """Length of the longest path from a leaf to each tensor (iterative post-order walk)."""
    depth = {}
    stack = [(root, False) for root in roots]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            depth[id(node)] = 1 + max((depth[id(p)] for p in node.parents), default=-1)
        elif id(node) not in depth:
            depth[id(node)] = None  # being expanded
            stack.append((node, True))
            stack += [(p, False) for p in node.parents if id(p) not in depth]
    return depth


def walk(roots):
    """Every tensor behind ``roots`` but the scalar constants, in an order close to computation.

    The leaves first, in the order met, then the ops, parents before children.
    At each op the deepest parent is visited first: in an unrolled network
    that is the recurrent state, so step t-1 comes out before step t. Both
    walks are iterative, so any depth of graph is fine.
    """
    depth = _depths(roots)
    is_root = {id(root): True for root in roots}
    leaves, ops, seen = [], [], {}
    stack = [(root, False) for root in reversed(roots)]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            ops.append(node)
            continue
        if id(node) in seen:
            continue
        seen[id(node)] = True
        if node.op is None:
            if not is_constant(node) or id(node) in is_root:
                leaves.append(node)
            continue
        stack.append((node, True))
        parents = node.parents
        if len(parents) > 1:
            parents = sorted(parents, key=lambda p: depth[id(p)], reverse=True)  # stable
        stack += [(p, False) for p in reversed(parents) if id(p) not in seen]
    return leaves + ops


# ------------------------------------------------------------ scopes and steps

def step_of(scope):
    """The time-step scope enclosing ``scope``: "lstm/l0/t=3/gates" -> "lstm/l0/t=3"; else None."""
    parts = scope.split("/") if scope else []
    for k in range(len(parts), 0, -1):
        if parts[k - 1].startswith("t="):
            return "/".join(parts[:k])
    return None


def is_step(path):
    return path.rpartition("/")[2].startswith("t=")


def sequence_of(step):
    """The scope holding a time step, i.e. its sequence: "lstm/l0/t=3" -> "lstm/l0"."""
    return step.rpartition("/")[0]


def time_of(step):
    """k of a time-step scope ".../t=k"; -1 when k is not a number."""
    text = step.rpartition("/")[2][len("t="):]
    return int(text) if text.isdigit() else -1


# ------------------------------------------------------------ numbers on nodes

def grad_norm(grad):
    """The 2-norm of an array, scaled by its largest entry first so that it cannot overflow."""
    magnitudes = np.abs(np.asarray(grad, dtype=np.float64)).ravel()
    top = magnitudes.max() if magnitudes.size else 0.0
    if top == 0 or not np.isfinite(top):
        return float(top)
    return float(top * np.sqrt(np.sum(np.square(magnitudes / top))))


def norm(tensors):
    """The norm of the tensors' gradients taken together as one vector; None if none has one."""
    norms = [grad_norm(t.grad) for t in tensors if t.grad is not None]
    return math.hypot(*norms) if norms else None


def nonfinite_count(t):
    """How many entries of ``t``'s value are nan or inf (0 for integer data)."""
    data = t.data
    return 0 if data.dtype.kind not in "fc" else int(data.size - np.count_nonzero(np.isfinite(data)))


# ------------------------------------------------------------ nodes and edges

class Node:
    """One drawn node: a tensor; with detail="cells" a whole time step; with
    detail="rolled" a tensor of the drawn step standing for its match in every run.

    ``kind`` is "param", "input", "op" or "cell"; ``scope`` the cluster it is
    drawn in; ``step`` the time step it belongs to (None outside steps);
    ``tensors`` what it stands for, the drawn tensor first; ``lane`` the
    state whose path from step to step it lies on, if any, as
    "<sequence>:<name>" ("lstm/l0:c").
    """

    def __init__(self, key, kind, scope, tensors, step=None):
        self.key, self.kind, self.scope = key, kind, scope
        self.tensors, self.step = tensors, step
        self.is_root = False
        self.lane = None

    @property
    def tensor(self):
        return self.tensors[0]


class Edge:
    """An edge between drawn nodes. ``kind`` is "param" (from a Parameter),
    "recurrent" (state into a later step of the same sequence), "feed" (from
    outside every step into one) or "data"; ``tensor`` is what it carries;
    ``sliced`` whether a folded getitem cut it out of the source's value."""

    def __init__(self, source, target, kind, tensor, sliced):
        self.source, self.target, self.kind = source, target, kind
        self.tensor, self.sliced = tensor, sliced


class Graph:
    """The nodes to draw, the edges between them, and what each time step passes on.

    ``step_outputs`` maps a time step to its tensors used outside it (by the
    next step, the layer's output, the loss): the state it passes on.
    ``runs`` maps each drawn step of the rolled view to the steps it stands
    for, in the order they ran. ``first_nonfinite`` is the node holding the first tensor, in
    creation order, whose value has a nan or inf (None if none has).
    """

    def __init__(self, roots, detail):
        self.detail = detail
        self.tensors = walk(roots)
        self.nodes = {}
        self.edges = []
        self.step_outputs = {}
        self.runs = {}
        self._step = {}
        self._entering = {}   # rolled: id of a leaf made in one step only -> the scope it is drawn in
        self._children = {}
        for t in self.tensors:
            for p in t.parents:
                self._children.setdefault(id(p), []).append(t)
        self.node_of = self._make_nodes()
        self._connect()
        for root in roots:
            node = self.source_of(root)[0]
            node.is_root = True
            self._passes_on(self.step(root), root)
        self._mark_lanes()
        self.first_nonfinite = self._first_nonfinite()

    def step(self, t):
        if id(t) in self._entering:
            return None
        scope = t.scope
        if scope not in self._step:
            self._step[scope] = step_of(scope)
        return self._step[scope]

    # ---------------------------------------------------------------- nodes

    def _make_nodes(self):
        stands_for = self._rolled_matches() if self.detail == "rolled" else {}
        node_of, cells = {}, {}
        for k, t in enumerate(self.tensors):
            if is_plumbing(t) or id(t) in node_of:
                continue
            step = None if isinstance(t, Parameter) else self.step(t)
            if self.detail == "cells" and step is not None:
                if step not in cells:
                    cells[step] = self._add(Node(f"c{len(cells)}", "cell", sequence_of(step), [], step))
                node = cells[step]
                node.tensors.append(t)
            else:
                # rolled: a tensor of a step not drawn joins the node of its match,
                # made here if the walk meets the stand-in first
                drawn = stands_for.get(id(t), t)
                node = node_of.get(id(drawn))
                if node is None:
                    kind = "param" if isinstance(t, Parameter) else "input" if t.op is None else "op"
                    scope, step = ("", None) if kind == "param" else (drawn.scope, self.step(drawn))
                    scope = self._entering.get(id(drawn), scope)
                    node = node_of[id(drawn)] = self._add(Node(f"n{k}", kind, scope, [drawn], step))
                if drawn is not t:
                    node.tensors.append(t)
            node_of[id(t)] = node
        return node_of

    def _add(self, node):
        self.nodes[node.key] = node
        return node

    def _runs(self):
        """({step: its tensors in creation order}, {sequence: its steps in the order they ran})."""
        by_step, sequences = {}, {}
        for t in self.tensors:
            step = None if isinstance(t, Parameter) else self.step(t)
            if step is not None:
                by_step.setdefault(step, []).append(t)
        for step, members in by_step.items():
            members.sort(key=lambda t: t._number)
            sequences.setdefault(sequence_of(step), []).append(step)
        for steps in sequences.values():
            steps.sort(key=lambda step: by_step[step][0]._number)
        return by_step, sequences

    def _rolled_matches(self):
        """For the rolled view: each tensor of a step that is not drawn -> the drawn
        tensor it matches (same place in creation order, same op and shape).

        The drawn step of a sequence is its second (its first takes the initial
        state from outside the loop). Leaves are matched with leaves and ops
        with ops, so that a leaf made in one step only, such as the zero state a
        cell makes for itself at t=0, shifts nothing: it is drawn outside the
        loop, entering the drawn step as an initial state does.
        """
        by_step, sequences = self._runs()
        stands_for = {}
        for steps in sequences.values():
            drawn = steps[1] if len(steps) > 1 else steps[0]
            self.runs[drawn] = steps
            for step in steps:
                if step == drawn:
                    continue
                for leaves in (True, False):
                    mine = [t for t in by_step[step] if (t.op is None) == leaves]
                    for t, match in zip(mine, [m for m in by_step[drawn] if (m.op is None) == leaves]):
                        if t.op == match.op and t.shape == match.shape:
                            stands_for[id(t)] = match
                    for t in mine if leaves else ():
                        if id(t) not in stands_for:
                            self._entering[id(t)] = sequence_of(step)
        return stands_for

    # ---------------------------------------------------------------- edges

    def source_of(self, t):
        """(drawn node, whether a folded getitem was crossed, the tensor drawn) for ``t``."""
        sliced = False
        while is_plumbing(t):
            t, sliced = t.parents[0], True
        return self.node_of.get(id(t)), sliced, t

    def _connect(self):
        drawn = {}
        for t in self.tensors:
            target = self.node_of.get(id(t))
            if target is None:
                continue
            for p in t.parents:
                source, sliced, carried = self.source_of(p)
                if source is None:  # a folded constant
                    continue
                from_step, to_step = (None if isinstance(carried, Parameter) else self.step(carried),
                                      self.step(t))
                crossing = from_step is not None and from_step != to_step
                if source is target and not crossing:
                    continue
                if crossing:
                    self._passes_on(from_step, carried)
                kind = self._edge_kind(source, carried, from_step, t, to_step)
                if self.detail != "ops":
                    # one edge per carried tensor (cells: h and c both show; rolled: once for all runs)
                    key = (source.key, target.key, id(carried) if self.detail == "cells" else kind)
                    if key in drawn:
                        continue
                    drawn[key] = True
                self.edges.append(Edge(source, target, kind, carried, sliced))

    def _edge_kind(self, source, carried, from_step, t, to_step):
        if source.kind == "param":
            return "param"
        if from_step is None:
            return "feed" if to_step is not None else "data"
        if (to_step is not None and to_step != from_step
                and sequence_of(from_step) == sequence_of(to_step)
                and self._computes_with(carried, to_step)):
            return "recurrent"
        return "data"

    def _computes_with(self, carried, step):
        """Whether ``step`` computes with ``carried`` (state), rather than only adding to it."""
        pending, seen = list(self._children.get(id(carried), [])), {}
        while pending:
            t = pending.pop()
            if id(t) in seen or self.step(t) != step:
                continue
            seen[id(t)] = True
            scaled = t.op in _SCALING and any(is_constant(p) for p in t.parents)
            if t.op not in _ACCUMULATING and not scaled:
                return True
            pending += self._children.get(id(t), [])
        return False

    def _passes_on(self, step, t):
        if step is not None:
            outputs = self.step_outputs.setdefault(step, [])
            if all(o is not t for o in outputs):
                outputs.append(t)

    # ---------------------------------------------------------------- lanes

    def _mark_lanes(self):
        """Put each state's path from step to step on a lane ("c", "h", ...): the state
        tensors and, in each step, the shortest path from the incoming state to the
        outgoing one of the same name (in the last step, which passes nothing on, to
        the state of that name it computes), so that the picture can draw it straight."""
        if self.detail == "cells":
            return
        by_step, sequences = self._runs()
        for edge in self.edges:
            if edge.kind != "recurrent":
                continue
            name = edge.tensor.name
            step = self.step(edge.target.tensor)
            lane = f"{sequence_of(step)}:{name or 'state'}"
            edge.source.lane = edge.source.lane or lane
            ends = [t for t in self.step_outputs.get(step, []) if t.name == name]
            if not ends and name is not None:
                ends = [t for t in by_step[step] if t.name == name]
            for node in self._path(edge.tensor, ends, step):
                node.lane = node.lane or lane
        self._mark_first_lanes(by_step, sequences)

    def _mark_first_lanes(self, by_step, sequences):
        """The first step of a sequence has no state edge coming in: it takes the lanes
        of its second step, tensor by tensor, and so does the initial state (h0, c0)
        standing where the second step takes the state from the first."""
        for steps in sequences.values():
            if len(steps) < 2:
                continue
            for t, model in zip(by_step[steps[0]], by_step[steps[1]]):
                lane = self.node_of[id(model)].lane if id(model) in self.node_of else None
                if lane is None or t.op != model.op or id(t) not in self.node_of:
                    continue
                self.node_of[id(t)].lane = self.node_of[id(t)].lane or lane
                for p, q in zip(t.parents, model.parents):
                    source = self.source_of(p)[0]
                    state, _, carried = self.source_of(q)
                    came_in = state is not None and state.lane == lane and self.step(carried) == steps[0]
                    if source is not None and source.kind == "input" and source.step is None and came_in:
                        source.lane = source.lane or lane

    def _path(self, start, ends, step):
        """The drawn nodes on the shortest path from ``start`` to one of ``ends`` inside ``step``."""
        goal = {id(t): True for t in ends}
        came_from, frontier = {id(start): None}, [start]
        while frontier:
            following = []
            for t in frontier:
                if id(t) in goal:
                    path = []
                    while t is not None:
                        if t is not start and self.node_of.get(id(t)) is not None:
                            path.append(self.node_of[id(t)])
                        t = came_from[id(t)]
                    return path
                for child in self._children.get(id(t), []):
                    if id(child) not in came_from and self.step(child) == step:
                        came_from[id(child)] = t
                        following.append(child)
            frontier = following
        return []

    # ---------------------------------------------------------------- values

    def _first_nonfinite(self):
        first = None
        for node in self.nodes.values():
            for t in node.tensors:
                if (first is None or t._number < first[0]._number) and nonfinite_count(t):
                    first = (t, node)
        return None if first is None else first[1]

    def norm(self, node):
        """The gradient norm shown on ``node``: its tensors', or for a cell its output state's."""
        if node.kind == "cell":
            return norm(self.step_outputs.get(node.step, []))
        return norm(node.tensors)
