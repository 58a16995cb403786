"""The picture of a :class:`~tinygrad_rnn.viz.graph.Graph`, built once: everything a reader sees.

The graph says what is drawn; :class:`Model` says how each piece reads. A node
has its label lines, class, step, lane, tooltip, value summary, gradient
norm, fill and font colours on the picture's log scale (:class:`Shades`) and
the first-nan mark; an edge its class, tooltip and label; a step box its
label, colour and the times t it stands for. The DOT writer
(:mod:`~tinygrad_rnn.viz.dot`) and the explorer's data
(:mod:`~tinygrad_rnn.viz.explore_data`) only write this model out, so that
the static pictures and the page cannot disagree.
"""
import math

import numpy as np

from .graph import is_constant, is_step, nonfinite_count, norm, step_of, time_of

_SYMBOLS = {"add": "+", "sub": "-", "mul": "*", "div": "/", "pow": "**"}
_EDGE_CLASS = {"data": "data", "feed": "data", "param": "param", "recurrent": "recurrent"}

# viridis at 16 evenly spaced points: perceptually uniform, legible in grey
# scale and to colour-blind readers; dark purple (small) to yellow (large).
VIRIDIS = ("#440154", "#481a6c", "#472f7d", "#414487", "#39568c", "#31688e", "#2a788e", "#23888e",
           "#1f988b", "#22a884", "#35b779", "#54c568", "#7ad151", "#a5db36", "#d2e21b", "#fde725")
NO_GRAD = "#eeeeee"
NONFINITE = "#ff2d2d"


# ------------------------------------------------------------ gradient shades

def _viridis(position):
    """The colour at ``position`` in [0, 1] along the viridis table, interpolated in RGB."""
    x = min(max(position, 0.0), 1.0) * (len(VIRIDIS) - 1)
    k = min(int(x), len(VIRIDIS) - 2)
    w = x - k
    pairs = [(int(VIRIDIS[k][i:i + 2], 16), int(VIRIDIS[k + 1][i:i + 2], 16)) for i in (1, 3, 5)]
    return "#" + "".join(f"{round(a + (b - a) * w):02x}" for a, b in pairs)


class Shades:
    """Gradient norms to colours, on a log scale from the smallest to the largest
    positive finite norm in the picture; a zero norm gets the bottom colour."""

    def __init__(self, norms):
        finite = [n for n in norms if n is not None and math.isfinite(n) and n > 0]
        self.low = min(finite) if finite else None
        self.high = max(finite) if finite else None
        self.has_nonfinite = any(n is not None and not math.isfinite(n) for n in norms)

    def position(self, norm):
        if norm <= 0 or self.low is None:
            return 0.0
        if self.high == self.low:
            return 1.0
        return math.log(norm / self.low) / math.log(self.high / self.low)

    def colours(self, norm):
        """(fill, font colour) for a gradient of ``norm`` (None: no gradient)."""
        if norm is None:
            return NO_GRAD, "#777777"
        if not math.isfinite(norm):
            return NONFINITE, "#000000"
        position = self.position(norm)
        return _viridis(position), ("#ffffff" if position < 0.6 else "#000000")


# ------------------------------------------------------------ text

def shape_text(t):
    return str(tuple(t.shape))


def constant_text(t):
    return format(t.data.item(), "g")


def formula(t):
    """The op as text: "tanh", with folded constants "1 - ·", "· ** 2", "stack(·, 0)", and
    a step's slice of a whole sequence "·[t]"."""
    if t.op == "getitem" and step_of(t.scope) is not None:
        return "·[t]"
    if not any(is_constant(p) for p in t.parents):
        return t.op
    args = [constant_text(p) if is_constant(p) else "·" for p in t.parents]
    if t.op in _SYMBOLS and len(args) == 2:
        return f"{args[0]} {_SYMBOLS[t.op]} {args[1]}"
    return f"{t.op}({', '.join(args)})"


def number(x):
    return format(x, ".3g")


def stats(array):
    """{"min", "mean", "max"} over the finite entries (None if there is none), "nan", "inf"."""
    values = np.asarray(array, dtype=np.float64).ravel()
    finite = values[np.isfinite(values)]
    some = bool(finite.size)
    return {"min": float(finite.min()) if some else None, "mean": float(finite.mean()) if some else None,
            "max": float(finite.max()) if some else None,
            "nan": int(np.isnan(values).sum()), "inf": int(np.isinf(values).sum())}


def value_summary(tensors):
    """"min -0.5  mean 0.1  max 0.9" over the finite entries, then "nan 0  inf 0"."""
    arrays = [np.asarray(t.data, dtype=np.float64).ravel() for t in tensors if t.data.dtype.kind in "biuf"]
    found = stats(np.concatenate(arrays) if arrays else np.zeros(0))
    line = ("no finite value" if found["min"] is None else
            f"min {number(found['min'])}  mean {number(found['mean'])}  max {number(found['max'])}")
    return [line, f"nan {found['nan']}  inf {found['inf']}"]


# ------------------------------------------------------------ the model

class ShownNode:
    """A drawn node as the reader sees it.

    From the graph's node: ``key``, ``kind`` (its class), ``scope``, ``step``,
    ``lane``, ``is_root``, ``tensors``. Then ``time``, its step's t (None outside
    steps); ``times``, the steps t it stands for; ``shown``, the tensors whose
    value it shows (a cell: what its step passes on; else its tensor); ``norm``,
    its gradient norm, and ``fill`` and ``font``, its colours on the picture's
    scale; ``nonfinite``, the nan and inf entries of its tensors; ``first``,
    whether it holds the first nan or inf; ``label``, a list of lines, the last
    of them "first nan" where it holds the first; ``tooltip``, lines of text.
    """

    def __init__(self, node, graph, shades, shaded):
        self.key, self.kind, self.scope, self.step = node.key, node.kind, node.scope, node.step
        self.lane, self.is_root, self.tensors = node.lane, node.is_root, node.tensors
        self.time = time_of(node.step) if node.step else None
        self.shown = graph.step_outputs.get(node.step, []) if node.kind == "cell" else [node.tensor]
        self.times = [] if node.kind == "param" else sorted({time_of(graph.step(t)) for t in node.tensors
                                                             if graph.step(t) is not None})
        self.norm = graph.norm(node)
        self.fill, self.font = shades.colours(self.norm)
        self.nonfinite = sum(nonfinite_count(t) for t in node.tensors)
        self.first = node is graph.first_nonfinite
        self.label = self._label(shaded)
        self.tooltip = self._tooltip()

    @property
    def tensor(self):
        return self.tensors[0]

    def _label(self, shaded):
        if self.kind == "cell":
            lines = [self.step.rpartition("/")[2], ", ".join(shape_text(t) for t in self.shown)]
            if shaded:
                lines.append("no gradient" if self.norm is None else f"|g| {number(self.norm)}")
        else:
            t = self.tensor
            if self.kind == "op":
                head = formula(t) if t.name is None else f"{t.name} = {formula(t)}"
            else:
                head = t.name if t.name is not None else ("parameter" if self.kind == "param" else "input")
            lines = [head, shape_text(t)]
        if self.first:
            lines.append("first nan" if any(np.isnan(t.data).any() for t in self.tensors
                                            if t.data.dtype.kind in "fc") else "first inf")
        return lines

    def _tooltip(self):
        """What hovering shows, one fact a line."""
        if self.kind == "cell":
            ops = sum(t.op is not None for t in self.tensors)
            passed = ", ".join(f"{t.name or t.op} {shape_text(t)}" for t in self.shown)
            lines = [f"time step {self.step}", f"{ops} ops", "passes on " + (passed or "nothing"),
                     "value of what it passes on:", *value_summary(self.shown)]
            if self.nonfinite:
                lines.append(f"{self.nonfinite} nan or inf inside the step")
        else:
            t = self.tensor
            op = {"param": "parameter", "input": "input"}.get(self.kind, t.op)
            lines = [f"op: {op}", f"name: {t.name if t.name is not None else '-'}",
                     f"scope: {t.scope or '-'}", f"shape: {shape_text(t)}  dtype: {t.dtype}"]
            if len(self.tensors) > 1:
                lines.append(f"stands for {len(self.tensors)} steps; values over all of them:")
            lines += value_summary(self.tensors)
        if self.norm is not None:
            together = ", all its steps together" if self.kind != "cell" and len(self.tensors) > 1 else ""
            lines.append(f"gradient norm: {number(self.norm)}{together}")
        return "\n".join(lines)


class ShownEdge:
    """A drawn edge: ``source`` and ``target`` (:class:`ShownNode`), ``kind``, its class
    ``klass``, the ``tensor`` it carries, ``tooltip`` and ``label`` (the carried state's
    name, written on the rolled view's loops)."""

    def __init__(self, edge, node_of):
        self.source, self.target = node_of[edge.source.key], node_of[edge.target.key]
        self.kind, self.klass, self.tensor = edge.kind, _EDGE_CLASS[edge.kind], edge.tensor
        carried = edge.tensor
        self.tooltip = (f"{carried.name or carried.op or 'input'} {shape_text(carried)}"
                        + (", a slice of it" if edge.sliced else ""))
        self.label = carried.name or ""


class Box:
    """The box drawn round a scope ``path``: ``label`` ("t=2"; a rolled step "t=1 ... 29: one step, ran
    30 times"; else the scope's last part); for a time step ``times`` (the t it stands
    for), ``norm`` (of what it passes on) and ``fill``."""

    def __init__(self, path, graph, shades):
        self.path, self.is_step = path, is_step(path)
        self.label = path.rpartition("/")[2]
        self.times, self.norm, self.fill = [], None, None
        if self.is_step:
            runs = graph.runs.get(path, [path])
            self.times = sorted({time_of(step) for step in runs})
            if len(runs) > 1:
                self.label = f"t={time_of(runs[0])} ... {time_of(runs[-1])}: one step, ran {len(runs)} times"
            self.norm = norm(graph.step_outputs.get(path, []))
            self.fill = shades.colours(self.norm)[0]


class Model:
    """The picture of ``graph``: ``nodes`` ({key: :class:`ShownNode`}), ``edges``
    ([:class:`ShownEdge`]), ``boxes`` ({scope path: :class:`Box`}, for every scope a
    node is drawn in and the scopes around it) and ``shades``, the log scale of its
    colours: the one given, or else the picture's own. ``shaded`` says whether the
    picture is drawn in those colours (``shades`` given) or plain.
    """

    def __init__(self, graph, shades=None):
        self.graph, self.detail, self.shaded = graph, graph.detail, shades is not None
        self.shades = shades if shades is not None else picture_shades(graph)
        self.nodes = {key: ShownNode(node, graph, self.shades, self.shaded)
                      for key, node in graph.nodes.items()}
        self.edges = [ShownEdge(edge, self.nodes) for edge in graph.edges]
        self.boxes = {}
        for node in graph.nodes.values():
            parts = node.scope.split("/") if node.scope else []
            for k in range(1, len(parts) + 1):
                path = "/".join(parts[:k])
                if path not in self.boxes:
                    self.boxes[path] = Box(path, graph, self.shades)


def picture_shades(graph):
    """The :class:`Shades` of ``graph``: over its nodes' norms and its steps' (the boxes')."""
    return Shades([graph.norm(node) for node in graph.nodes.values()]
                  + [norm(outputs) for outputs in graph.step_outputs.values()])
