"""Pictures of the computation graph: the unrolled network, drawn with Graphviz.

BPTT is ordinary backpropagation through the network unrolled over time, and
the unrolled graph is something one can look at::

    loss.backward(retain_grads=True)
    viz.render(loss, path="rnn.svg", grads=True)    # or viz.to_dot, viz.draw

What the picture shows:

- One node per op (a white rounded box), labelled with the op and its output
  shape; ``h = tanh`` when the tensor has a name. A scalar constant operand
  is folded into its consumer, labelled by its formula with ``·`` for the
  tensor operand: the GRU's (1 - z) is one node ``1 - ·``. Parameters are
  orange boxes, other leaves (inputs, initial states) blue boxes, each with
  its name and shape; the tensors passed in as roots have a double border.
- ``group="scope"``: every ``tr.scope`` is a box (a cluster), nested as the
  scopes are: layer -> direction -> time step, where a time step is a scope
  named ``t=<k>``. The graph flows left to right, so each step sits to the
  right of the step it follows: t = 0, 1, 2 for a forward direction, t = T-1
  ... 0 for a reverse one. ``group=None`` draws no boxes.
- Each Parameter is drawn once, outside the boxes, with a grey edge into
  every op that uses it, in every step.
- An edge from one time step into another of the same sequence carries the
  recurrent state, h(t-1) -> h(t), and c for the LSTM: these edges are thick
  and red.
- ``detail="cells"`` collapses each time step into one node ("t=3" and the
  shapes of the state it passes on), for long sequences: the steps of a
  sequence form one row, headed by its scope ("lstm l0") and read left to
  right in t, with inputs and weights above. This view draws no scope boxes
  (Graphviz does not keep a boxed row in order). Separate graphs drawn
  together (an RNN's loss and an LSTM's, say) are stacked one below the other.
- ``grads=True`` fills each node with the norm of its ``.grad`` on a log
  scale (viridis: dark = small, yellow = large; grey = no gradient; red = nan
  or inf), with a colour bar legend. A time step's box, or its collapsed
  node, shows the norm of its *output state*: its tensors used outside the
  step (by the next step, the layer's output, the loss), taken together as
  one vector. After ``backward(retain_grads=True)`` this shows the gradient
  vanishing back through time. Graphs drawn together share one scale.

``to_dot`` is a pure function returning DOT text. ``draw`` wraps the same text
in a ``graphviz.Digraph`` (shown inline in Jupyter); ``render`` writes a file,
and needs Graphviz's ``dot`` executable except for ``.dot`` output. Node ids
follow the order of the graph walk, so a graph gives the same bytes every run.
``to_text`` lists the same graph as text, one line per tensor.
"""
import math
import os
import shutil
import subprocess

import numpy as np

from .nn.module import Parameter
from .plots import plot_gates, plot_state_grads, plot_weight_grads  # noqa: F401  the bptt.record plots
from .tensor import Tensor

__all__ = ["to_dot", "draw", "render", "to_text", "GraphvizNotFound"]


class GraphvizNotFound(RuntimeError):
    """Graphviz's ``dot`` executable, needed to render images, is not on PATH."""


_INSTALL_HINT = (
    "Graphviz's `dot` executable was not found on PATH; it is needed to render "
    "{fmt} images. Install it with:\n"
    "    Debian/Ubuntu: sudo apt-get install graphviz\n"
    "    macOS:         brew install graphviz\n"
    "    conda:         conda install -c conda-forge graphviz\n"
    "Writing .dot text (render(..., path='graph.dot') or to_dot(...)) works without it.")

_FORMATS = ("svg", "png", "pdf", "dot")
_SYMBOLS = {"add": "+", "sub": "-", "mul": "*", "div": "/", "pow": "**"}

_FONT = "Helvetica"
_NODE_STYLE = {
    "param": {"shape": "box", "style": "filled", "fillcolor": "#fdd49e"},
    "input": {"shape": "box", "style": "filled", "fillcolor": "#c6dbef"},
    "op": {"shape": "box", "style": "rounded,filled", "fillcolor": "#ffffff"},
    "cell": {"shape": "box", "style": "rounded,filled", "fillcolor": "#fff7bc"},
}
_EDGE_STYLE = {
    "data": {},
    "feed": {},
    "param": {"color": "#a0a0a0", "arrowsize": "0.6"},
    "recurrent": {"color": "#d62728", "penwidth": "3"},
}

# viridis at 16 evenly spaced points: perceptually uniform, legible in grey
# scale and to colour-blind readers; dark purple (small) to yellow (large).
_VIRIDIS = ("#440154", "#481a6c", "#472f7d", "#414487", "#39568c", "#31688e", "#2a788e", "#23888e",
            "#1f988b", "#22a884", "#35b779", "#54c568", "#7ad151", "#a5db36", "#d2e21b", "#fde725")
_NO_GRAD = "#eeeeee"
_NONFINITE = "#ff2d2d"


# ----------------------------------------------------------------- public API

def to_dot(*roots, group="scope", detail="ops", grads=False, max_nodes=2000):
    """DOT source text of the graph that computed ``roots`` (pure: no Graphviz needed).

    ``roots``: Tensors, or lists/tuples of them (e.g. a layer's ``(output, h_n)``).
    ``group``: "scope" (a nested box per scope) or None.
    ``detail``: "ops" (a node per op) or "cells" (a node per time step).
    ``grads``: shade by gradient norm (run ``backward(retain_grads=True)`` first).
    ``max_nodes``: a graph with more nodes to draw raises ValueError; None: no limit.

    Boxes and time steps are told apart by their scope path: to draw two runs
    side by side, make each inside its own ``tr.scope`` ("rnn", "lstm" for
    the layers; your own names for hand-written loops).
    """
    return _source("to_dot", roots, group, detail, grads, max_nodes)


def draw(*roots, group="scope", detail="ops", grads=False, max_nodes=2000):
    """The picture as a ``graphviz.Digraph`` (shown inline in Jupyter); options as :func:`to_dot`."""
    try:
        import graphviz  # here, not at the top: to_dot and render need no package but numpy
    except ImportError:
        raise ImportError("draw: needs the graphviz Python package (pip install graphviz); "
                          "to_dot and render work without it") from None

    digraph = graphviz.Digraph(name="tinygrad_rnn")
    digraph.body += [f"\t{line}\n" for line in _body("draw", roots, group, detail, grads, max_nodes)]
    return digraph


def render(*roots, path=None, group="scope", detail="ops", grads=False, max_nodes=2000):
    """Write the picture to ``path`` and return ``path``; options as :func:`to_dot`.

    The extension gives the format: .svg, .png, .pdf (made by Graphviz's
    ``dot``; without it :class:`GraphvizNotFound`) or .dot (the DOT text).
    """
    if path is None or any(isinstance(root, (str, os.PathLike)) for root in roots):
        raise TypeError("render: the file to write goes in path=..., "
                        "e.g. render(loss, path='graph.svg')")
    filename = os.fspath(path)
    fmt = os.path.splitext(filename)[1].lower().lstrip(".")
    if fmt not in _FORMATS:
        raise ValueError(f"render: cannot tell the format of {filename!r} from its extension; "
                         f"use one of {', '.join('.' + f for f in _FORMATS)}")
    folder = os.path.dirname(filename)
    if folder and not os.path.isdir(folder):
        raise FileNotFoundError(f"render: the folder {folder!r} of {filename!r} does not exist")
    source = _source("render", roots, group, detail, grads, max_nodes)
    if fmt == "dot":
        with open(filename, "w", encoding="utf-8") as file:
            file.write(source)
        return path
    executable = shutil.which("dot")
    if executable is None:
        raise GraphvizNotFound("render: " + _INSTALL_HINT.format(fmt=fmt.upper()))
    finished = subprocess.run([executable, f"-T{fmt}", "-o", filename],
                              input=source.encode("utf-8"), capture_output=True, check=False)
    if finished.returncode != 0:
        message = finished.stderr.decode("utf-8", "replace").strip()
        raise RuntimeError(f"render: Graphviz's dot could not write {filename!r}: {message}")
    return path


def to_text(*roots):
    """The graph as an indented listing, one line per tensor, in computation order.

    The leaves come first (``parameter`` or ``input``, with ``in <scope>``
    if an input was made inside one), then every op as ``%k = op(%i, %j)``,
    with folded scalar constants written in place (``sub(1, %7)``), indented
    under the scope it was made in (``t=0`` ...). Each line ends with the
    shape and the name, if any. The numbers %k are the node ids n<k> of
    :func:`to_dot`.
    """
    tensors = _walk(_roots("to_text", roots))
    number = {id(t): k for k, t in enumerate(tensors)}
    lines, current = [], []
    for k, t in enumerate(tensors):
        parts = t.scope.split("/") if t.scope and t.op is not None else []
        same = 0
        while same < min(len(parts), len(current)) and parts[same] == current[same]:
            same += 1
        lines += ["  " * depth + parts[depth] for depth in range(same, len(parts))]
        current = parts
        if isinstance(t, Parameter):
            expression = "parameter"
        elif t.op is None:
            expression = "input"
        else:
            args = [f"%{number[id(p)]}" if id(p) in number else _value(p) for p in t.parents]
            expression = f"{t.op}({', '.join(args)})"
        name = "" if t.name is None else f"  {t.name!r}"
        where = f"  in {t.scope}" if t.op is None and t.scope and not isinstance(t, Parameter) else ""
        lines.append("  " * len(parts) + f"%{k} = {expression}  {_shape(t)}{name}{where}")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------- walking the graph

def _roots(caller, roots):
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


def _is_folded(t):
    """A scalar constant, such as the 1 in (1 - z): written into its consumer's label."""
    return (t.op is None and t.ndim == 0 and not t.requires_grad and t.name is None
            and not isinstance(t, Parameter))


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


def _walk(roots):
    """Every tensor to draw, in an order close to the order of computation.

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
            if not _is_folded(node) or id(node) in is_root:
                leaves.append(node)
            continue
        stack.append((node, True))
        parents = node.parents
        if len(parents) > 1:
            parents = sorted(parents, key=lambda p: depth[id(p)], reverse=True)  # stable
        stack += [(p, False) for p in reversed(parents) if id(p) not in seen]
    return leaves + ops


# ---------------------------------------------------------- scopes and steps

def _step_of(scope):
    """The time-step scope enclosing ``scope``: "lstm/l0/t=3/gates" -> "lstm/l0/t=3"; else None."""
    parts = scope.split("/") if scope else []
    for k in range(len(parts), 0, -1):
        if parts[k - 1].startswith("t="):
            return "/".join(parts[:k])
    return None


def _is_step(path):
    return path.rpartition("/")[2].startswith("t=")


def _sequence_of(step):
    """The scope holding a time step, i.e. its sequence: "lstm/l0/t=3" -> "lstm/l0"."""
    return step.rpartition("/")[0]


def _time(step):
    """k of a time-step scope ".../t=k"; -1 when k is not a number."""
    text = step.rpartition("/")[2][len("t="):]
    return int(text) if text.isdigit() else -1


# ----------------------------------------------------------- nodes and edges

def _shape(t):
    return str(tuple(t.shape))


def _value(t):
    return format(t.data.item(), "g")


def _formula(t):
    """The op as text: "tanh", or with folded constants "1 - ·", "· ** 2", "stack(·, 0)"."""
    if not any(_is_folded(p) for p in t.parents):
        return t.op
    args = [_value(p) if _is_folded(p) else "·" for p in t.parents]
    if t.op in _SYMBOLS and len(args) == 2:
        return f"{args[0]} {_SYMBOLS[t.op]} {args[1]}"
    return f"{t.op}({', '.join(args)})"


class _Node:
    """One drawn node: a tensor, or with detail="cells" a whole time step.

    ``kind`` is "param", "input", "op" or "cell"; ``scope`` is the cluster it
    is drawn in; ``step`` the time step it belongs to (None outside steps).
    """

    def __init__(self, key, kind, scope, tensor=None, step=None):
        self.key, self.kind, self.scope = key, kind, scope
        self.tensor, self.step = tensor, step
        self.is_root = False

    def lines(self, outputs):
        """The label's lines; ``outputs`` of a cell are the state it passes on."""
        if self.kind == "cell":
            return [self.step.rpartition("/")[2], ", ".join(_shape(t) for t in outputs)]
        t = self.tensor
        if self.kind == "op":
            head = _formula(t) if t.name is None else f"{t.name} = {_formula(t)}"
        else:
            head = t.name if t.name is not None else ("parameter" if self.kind == "param" else "input")
        return [head, _shape(t)]


class _Graph:
    """The nodes to draw, the edges between them, and what each time step passes on."""

    def __init__(self, roots, detail):
        tensors = _walk(roots)
        self.nodes = {}          # key -> _Node, in drawing order
        self.edges = []          # (source node, target node, kind)
        self.step_outputs = {}   # time-step scope -> its tensors used outside it
        node_of, step_of, cells = {}, {}, {}
        for k, t in enumerate(tensors):
            if isinstance(t, Parameter):
                node = _Node(f"n{k}", "param", "", tensor=t)
            else:
                step = step_of.setdefault(t.scope, _step_of(t.scope))
                if detail == "cells" and step is not None:
                    if step not in cells:
                        cells[step] = _Node(f"c{len(cells)}", "cell", _sequence_of(step), step=step)
                    node = cells[step]
                else:
                    node = _Node(f"n{k}", "input" if t.op is None else "op", t.scope, tensor=t, step=step)
            self.nodes.setdefault(node.key, node)
            node_of[id(t)] = node
        self._connect(tensors, node_of, detail)
        for root in roots:
            node_of[id(root)].is_root = True
            self._passes_on(node_of[id(root)].step, root)

    def _connect(self, tensors, node_of, detail):
        drawn = {}
        for t in tensors:
            target = node_of[id(t)]
            for p in t.parents:
                source = node_of.get(id(p))  # None for a folded constant
                if source is None or source is target:
                    continue
                if source.step is not None and source.step != target.step:
                    self._passes_on(source.step, p)
                if detail == "cells":
                    # one edge per tensor from cell to cell, so that h and c both show
                    if (source.key, target.key, id(p)) in drawn:
                        continue
                    drawn[source.key, target.key, id(p)] = True
                self.edges.append((source, target, _edge_kind(source, target)))

    def _passes_on(self, step, t):
        if step is not None:
            outputs = self.step_outputs.setdefault(step, [])
            if all(o is not t for o in outputs):
                outputs.append(t)

    def norm(self, node):
        """The gradient norm shown on ``node``: its tensor's, or for a cell its output state's."""
        if node.kind == "cell":
            return _norm(self.step_outputs.get(node.step, []))
        return _norm([node.tensor])


def _edge_kind(source, target):
    """"param" (from a Parameter), "recurrent" (between time steps of one sequence),
    "feed" (from outside every time step into one) or "data"."""
    if source.kind == "param":
        return "param"
    if source.step is None and target.step is not None:
        return "feed"
    if (source.step is not None and target.step is not None and source.step != target.step
            and _sequence_of(source.step) == _sequence_of(target.step)):
        return "recurrent"
    return "data"


# ------------------------------------------------------------ gradient shades

def _grad_norm(grad):
    """The 2-norm of an array, scaled by its largest entry first so that it cannot overflow."""
    magnitudes = np.abs(np.asarray(grad, dtype=np.float64)).ravel()
    top = magnitudes.max() if magnitudes.size else 0.0
    if top == 0 or not np.isfinite(top):
        return float(top)
    return float(top * np.sqrt(np.sum(np.square(magnitudes / top))))


def _norm(tensors):
    """The norm of the tensors' gradients taken together as one vector; None if none has one."""
    norms = [_grad_norm(t.grad) for t in tensors if t.grad is not None]
    return math.hypot(*norms) if norms else None


def _viridis(position):
    """The colour at ``position`` in [0, 1] along the viridis table, interpolated in RGB."""
    x = min(max(position, 0.0), 1.0) * (len(_VIRIDIS) - 1)
    k = min(int(x), len(_VIRIDIS) - 2)
    w = x - k
    pairs = [(int(_VIRIDIS[k][i:i + 2], 16), int(_VIRIDIS[k + 1][i:i + 2], 16)) for i in (1, 3, 5)]
    return "#" + "".join(f"{round(a + (b - a) * w):02x}" for a, b in pairs)


class _Shades:
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
            return _NO_GRAD, "#777777"
        if not math.isfinite(norm):
            return _NONFINITE, "#000000"
        position = self.position(norm)
        return _viridis(position), ("#ffffff" if position < 0.6 else "#000000")

    def legend(self):
        """An HTML-like DOT label: the colour bar between the end norms, and the grey (and red)."""
        bar = "".join(f'<td bgcolor="{c}" width="12" height="14"></td>' for c in _VIRIDIS)
        width = len(_VIRIDIS)
        rows = [f'<tr><td colspan="{width}">gradient norm, log scale</td></tr>', f"<tr>{bar}</tr>"]
        if self.low is not None:
            rows.append(f'<tr><td colspan="{width // 2}" align="left">{self.low:.2g}</td>'
                        f'<td colspan="{width - width // 2}" align="right">{self.high:.2g}</td></tr>')
        specials = [(_NO_GRAD, "no gradient")] + ([(_NONFINITE, "nan or inf")] if self.has_nonfinite else [])
        rows += [f'<tr><td bgcolor="{colour}" border="1"></td>'
                 f'<td colspan="{width - 1}" align="left">{text}</td></tr>' for colour, text in specials]
        return ('<<table border="0" cellborder="0" cellspacing="0" cellpadding="2">'
                + "".join(rows) + "</table>>")


# ------------------------------------------------------------------ DOT text

def _check_options(caller, group, detail, grads, max_nodes):
    if group not in ("scope", None):
        raise ValueError(f"{caller}: group must be 'scope' or None, got {group!r}")
    if detail not in ("ops", "cells"):
        raise ValueError(f"{caller}: detail must be 'ops' or 'cells', got {detail!r}")
    if not isinstance(grads, bool):
        raise TypeError(f"{caller}: grads must be True or False, got {grads!r}")
    if max_nodes is not None and (isinstance(max_nodes, bool) or not isinstance(max_nodes, int)
                                  or max_nodes < 1):
        raise ValueError(f"{caller}: max_nodes must be a positive int or None, got {max_nodes!r}")


def _source(caller, roots, group, detail, grads, max_nodes):
    lines = _body(caller, roots, group, detail, grads, max_nodes)
    return "digraph tinygrad_rnn {\n" + "".join(f"\t{line}\n" for line in lines) + "}\n"


def _body(caller, roots, group, detail, grads, max_nodes):
    """The statements between ``digraph {`` and ``}``, one a line."""
    _check_options(caller, group, detail, grads, max_nodes)
    graph = _Graph(_roots(caller, roots), detail)
    count = len(graph.nodes)
    if max_nodes is not None and count > max_nodes:
        advice = ("unroll fewer steps" if detail == "cells"
                  else "use detail='cells' (one node per time step) or unroll fewer steps")
        raise ValueError(f"{caller}: the graph has {count} nodes to draw, more than "
                         f"max_nodes={max_nodes}; {advice}, or pass a larger max_nodes")
    shades = None
    if grads:
        shades = _Shades([graph.norm(node) for node in graph.nodes.values()]
                         + [_norm(outputs) for outputs in graph.step_outputs.values()])
    # ops: the graph flows left to right, so each step sits right of the one before.
    # cells: the steps of a sequence form one row, inputs and weights above it.
    rankdir, ranksep = ("LR", "0.25") if detail == "ops" else ("TB", "0.7")
    lines = [f'graph [rankdir="{rankdir}", newrank="true", fontname="{_FONT}", fontsize="12", '
             f'nodesep="0.2", ranksep="{ranksep}"];',
             f'node [fontname="{_FONT}", fontsize="11", height="0.3", margin="0.05,0.02"];',
             'edge [arrowsize="0.7"];']
    if detail == "ops":
        lines += _clusters(graph, group, shades)
    else:
        lines += [_node_line(node, graph, shades) for node in graph.nodes.values()]
        lines += _rows(graph) + _stacked_components(graph)
    lines += [_edge_line(source, target, kind, detail) for source, target, kind in graph.edges]
    if shades is not None:
        lines.append(f'legend [shape="plaintext", label={shades.legend()}];')
    return lines


def _escape(text):
    """``text`` made safe inside a DOT double-quoted string; a newline becomes a line break."""
    out = []
    for ch in str(text):
        if ch in '\\"':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ord(ch) < 32 or ord(ch) == 127:
            out.append(f"\\\\x{ord(ch):02x}")  # shown as the characters \x07
        else:
            out.append(ch)
    return "".join(out)


def _attributes(attrs):
    """``[key="value", ...]``; every value is ours or already escaped."""
    return "[" + ", ".join(f'{key}="{value}"' for key, value in attrs.items()) + "]"


def _node_line(node, graph, shades):
    outputs = graph.step_outputs.get(node.step, [])
    label = "\\n".join(_escape(line) for line in node.lines(outputs))
    attrs = {"label": label, **_NODE_STYLE[node.kind]}
    if shades is not None:
        attrs["fillcolor"], attrs["fontcolor"] = shades.colours(graph.norm(node))
    if node.is_root:
        attrs["peripheries"] = "2"
    return f"{node.key} {_attributes(attrs)};"


def _edge_line(source, target, kind, detail):
    style = dict(_EDGE_STYLE[kind])
    if detail == "ops" and kind in ("feed", "param"):
        # These edges feed every step from one source (x, a weight). At their
        # default weight dot pulls each step's input ops left, next to the source,
        # and the steps overlap instead of following each other left to right.
        style["weight"] = "0"
    if detail == "cells" and kind in ("feed", "data") and "cell" in (source.kind, target.kind):
        style["color"] = "#8c8c8c"  # the fans into and out of every step: let the chain stand out
    if detail == "cells" and kind == "recurrent" and _time(source.step) > _time(target.step):
        # In a row, an edge's tail is placed left of its head. A reverse direction
        # runs from t=T-1 down to 0: lay its edges out the other way round (the
        # arrow still points at the step computed next) so that t reads left to right.
        source, target = target, source
        style["dir"] = "back"
    return f"{source.key} -> {target.key}" + (f" {_attributes(style)}" if style else "") + ";"


def _cluster_attributes(path, graph, shades):
    attrs = {"label": _escape(path.rpartition("/")[2]), "fontname": _FONT}
    if not _is_step(path):
        attrs.update(style="rounded,dashed", color="#888888")
    elif shades is None:
        attrs.update(style="rounded,filled", color="#7f9cc0", fillcolor="#f2f6fb")
    else:
        fill, _ = shades.colours(_norm(graph.step_outputs.get(path, [])))
        attrs.update(style="rounded,filled", color=fill, penwidth="3", fillcolor=fill + "40")
    return attrs


def _clusters(graph, group, shades):
    """The node statements, nested in one cluster per scope (layer -> direction -> step)."""
    members, children = {"": []}, {"": []}
    for node in graph.nodes.values():
        path = node.scope if group == "scope" else ""
        if path not in members:
            parts = path.split("/")
            for k in range(1, len(parts) + 1):
                prefix = "/".join(parts[:k])
                if prefix not in members:
                    members[prefix], children[prefix] = [], []
                    children["/".join(parts[:k - 1])].append(prefix)
        members[path].append(node)
    lines, clusters = [], 0
    stack = [("", 0, False)]
    while stack:
        path, depth, closing = stack.pop()
        indent = "  " * depth
        if closing:
            lines.append(indent[2:] + "}")
            continue
        if path:
            lines.append(f"{indent[2:]}subgraph cluster_{clusters} {{")
            lines.append(f"{indent}graph {_attributes(_cluster_attributes(path, graph, shades))};")
            clusters += 1
            stack.append((path, depth, True))
        lines += [indent + _node_line(node, graph, shades) for node in members[path]]
        stack += [(child, depth + 1, False) for child in reversed(children[path])]
    return lines


def _rows(graph):
    """Each sequence's cells as one row (``rank="same"``) in order of t, headed by
    the sequence's scope ("lstm l0"), each row below the one before.

    Graphviz keeps a row in order only outside clusters: inside one it may
    rotate it (t=7 ... t=29, t=0 ... t=6), hence no clusters in this view.
    """
    rows = {}
    for node in graph.nodes.values():
        if node.kind == "cell":
            rows.setdefault(_sequence_of(node.step), []).append(node)
    lines, firsts = [], []
    for k, (sequence, cells) in enumerate(rows.items()):
        keys = [node.key for node in sorted(cells, key=lambda node: _time(node.step))]
        if sequence:
            label = _escape(sequence.replace("/", " "))
            lines.append(f'row{k} [label="{label}", shape="plaintext", fontsize="14"];')
            lines.append(f'row{k} -> {keys[0]} [style="invis"];')
            keys.insert(0, f"row{k}")
        lines.append('{rank="same"; ' + "; ".join(keys) + ";}")
        firsts.append(keys[0])
    lines += [f'{above} -> {below} [style="invis"];' for above, below in zip(firsts, firsts[1:])]
    return lines


def _stacked_components(graph):
    """Invisible edges that put each unconnected part of the picture (several roots
    drawn together, e.g. an RNN and an LSTM to compare) wholly below the one before:
    from the ends of one part to the starts of the next."""
    part = {key: key for key in graph.nodes}

    def find(key):
        while part[key] != key:
            part[key] = part[part[key]]
            key = part[key]
        return key

    has_in, has_out = {}, {}
    for source, target, _ in graph.edges:
        part[find(source.key)] = find(target.key)
        has_out[source.key] = has_in[target.key] = True
    ends, starts = {}, {}
    for key in graph.nodes:
        if key not in has_out:
            ends.setdefault(find(key), []).append(key)
        if key not in has_in:
            starts.setdefault(find(key), []).append(key)
    parts = list(starts)
    return [f'{end} -> {start} [style="invis"];'
            for above, below in zip(parts, parts[1:]) for end in ends[above] for start in starts[below]]
