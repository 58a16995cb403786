"""DOT text of a :class:`~tinygrad_rnn.viz.graph.Graph`: labels, classes, tooltips, styling.

Every node carries ``class="param"``, ``"input"``, ``"op"`` or ``"cell"``
and every edge ``class="param"``, ``"data"`` or ``"recurrent"``; Graphviz
copies them into the SVG, for tests and style sheets. Every node has a
``tooltip`` (shown on hover in SVG and in Jupyter) with its op, name, scope,
shape, dtype, the min / mean / max of its value, how many entries are nan or
inf, and its gradient's norm when it has one.
"""
import html
import math

import numpy as np

from .graph import is_constant, is_step, nonfinite_count, norm, step_of, time_of
from .lanes import MCLIMIT, Lanes, lane_order

_SYMBOLS = {"add": "+", "sub": "-", "mul": "*", "div": "/", "pow": "**"}

FONT = "Helvetica"
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
_EDGE_CLASS = {"data": "data", "feed": "data", "param": "param", "recurrent": "recurrent"}
_NONFINITE_OUTLINE = {"color": "#d62728", "penwidth": "3"}
ROW_LENGTH = 25  # cells view: time steps in one row before it wraps

# viridis at 16 evenly spaced points: perceptually uniform, legible in grey
# scale and to colour-blind readers; dark purple (small) to yellow (large).
_VIRIDIS = ("#440154", "#481a6c", "#472f7d", "#414487", "#39568c", "#31688e", "#2a788e", "#23888e",
            "#1f988b", "#22a884", "#35b779", "#54c568", "#7ad151", "#a5db36", "#d2e21b", "#fde725")
_NO_GRAD = "#eeeeee"
_NONFINITE = "#ff2d2d"


# ------------------------------------------------------------ gradient shades

def _viridis(position):
    """The colour at ``position`` in [0, 1] along the viridis table, interpolated in RGB."""
    x = min(max(position, 0.0), 1.0) * (len(_VIRIDIS) - 1)
    k = min(int(x), len(_VIRIDIS) - 2)
    w = x - k
    pairs = [(int(_VIRIDIS[k][i:i + 2], 16), int(_VIRIDIS[k + 1][i:i + 2], 16)) for i in (1, 3, 5)]
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


# ------------------------------------------------------------ text

def escape(text):
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


def value_summary(tensors):
    """"min -0.5  mean 0.1  max 0.9" over the finite entries, then "nan 0  inf 0"."""
    arrays = [np.asarray(t.data, dtype=np.float64).ravel() for t in tensors if t.data.dtype.kind in "biuf"]
    values = np.concatenate(arrays) if arrays else np.zeros(0)
    finite = values[np.isfinite(values)]
    line = ("no finite value" if not finite.size else
            f"min {number(finite.min())}  mean {number(finite.mean())}  max {number(finite.max())}")
    return [line, f"nan {int(np.isnan(values).sum())}  inf {int(np.isinf(values).sum())}"]


# ------------------------------------------------------------ nodes

def _label_lines(node, graph, shades):
    if node.kind == "cell":
        outputs = graph.step_outputs.get(node.step, [])
        lines = [node.step.rpartition("/")[2], ", ".join(shape_text(t) for t in outputs)]
        if shades is not None:
            norm = graph.norm(node)
            lines.append("no gradient" if norm is None else f"|g| {number(norm)}")
    else:
        t = node.tensor
        if node.kind == "op":
            head = formula(t) if t.name is None else f"{t.name} = {formula(t)}"
        else:
            head = t.name if t.name is not None else ("parameter" if node.kind == "param" else "input")
        lines = [head, shape_text(t)]
    if node is graph.first_nonfinite:
        lines.append("first nan" if any(np.isnan(t.data).any() for t in node.tensors
                                        if t.data.dtype.kind in "fc") else "first inf")
    return lines


def tooltip(node, graph):
    """What hovering over ``node`` shows, one fact a line."""
    if node.kind == "cell":
        outputs = graph.step_outputs.get(node.step, [])
        ops = sum(t.op is not None for t in node.tensors)
        passed = ", ".join(f"{t.name or t.op} {shape_text(t)}" for t in outputs)
        lines = [f"time step {node.step}", f"{ops} ops", "passes on " + (passed or "nothing"),
                 "value of what it passes on:", *value_summary(outputs)]
        bad = sum(nonfinite_count(t) for t in node.tensors)
        if bad:
            lines.append(f"{bad} nan or inf inside the step")
    else:
        t = node.tensor
        op = {"param": "parameter", "input": "input"}.get(node.kind, t.op)
        lines = [f"op: {op}", f"name: {t.name if t.name is not None else '-'}",
                 f"scope: {t.scope or '-'}", f"shape: {shape_text(t)}  dtype: {t.dtype}"]
        runs = len(node.tensors)
        if runs > 1:
            lines.append(f"stands for {runs} steps; values over all of them:")
        lines += value_summary(node.tensors)
    norm = graph.norm(node)
    if norm is not None:
        together = ", all its steps together" if node.kind != "cell" and len(node.tensors) > 1 else ""
        lines.append(f"gradient norm: {number(norm)}{together}")
    return "\n".join(lines)


def _node_line(node, graph, shades, lanes):
    label = "\\n".join(escape(line) for line in _label_lines(node, graph, shades))
    attrs = {"label": label, "class": node.kind, **_NODE_STYLE[node.kind],
             "tooltip": escape(tooltip(node, graph))}
    if shades is not None:
        attrs["fillcolor"], attrs["fontcolor"] = shades.colours(graph.norm(node))
    if node.is_root:
        attrs["peripheries"] = "2"
    if any(nonfinite_count(t) for t in node.tensors):
        attrs.update(_NONFINITE_OUTLINE)
    if node.lane is not None and node.lane in lanes:
        attrs["group"] = escape(node.lane)
    return f"{node.key} {_attributes(attrs)};"


# ------------------------------------------------------------ edges

def _edge_tooltip(edge):
    carried = edge.tensor
    return escape(f"{carried.name or carried.op or 'input'} {shape_text(carried)}"
                  + (", a slice of it" if edge.sliced else ""))


def _edge_lines(edge, detail, through=()):
    """The edge's DOT statements: one, or the pieces through the points ``through``
    (:class:`~tinygrad_rnn.viz.lanes.Lanes`), the arrowhead on the last piece only."""
    source, target, kind = edge.source, edge.target, edge.kind
    style = {"class": _EDGE_CLASS[kind], **_EDGE_STYLE[kind]}
    carried = edge.tensor
    style["tooltip"] = _edge_tooltip(edge)
    if detail != "cells" and kind in ("feed", "param"):
        # These edges feed every step from one source (x, a weight). At their
        # default weight dot pulls each step's input ops left, next to the source,
        # and the steps overlap instead of following each other left to right.
        style["weight"] = "0"
    if detail != "cells" and source.lane is not None and source.lane == target.lane:
        style["weight"] = "8"  # a state's line from step to step: keep it straight
    if detail == "rolled" and kind == "recurrent":
        style.update(constraint="false", label=escape(carried.name or ""), fontcolor="#d62728")
    if detail == "cells" and kind in ("feed", "data") and "cell" in (source.kind, target.kind):
        style["color"] = "#8c8c8c"  # the fans into and out of every step: let the chain stand out
    if detail == "cells" and kind == "recurrent" and time_of(source.step) > time_of(target.step):
        # In a row, an edge's tail is placed left of its head. A reverse direction
        # runs from t=T-1 down to 0: lay its edges out the other way round (the
        # arrow still points at the step computed next) so that t reads left to right.
        source, target = target, source
        style["dir"] = "back"
    if not through:
        return [f"{source.key} -> {target.key} {_attributes(style)};"]
    keys = [source.key, *through, target.key]
    pieces = []
    for k, (tail, head) in enumerate(zip(keys, keys[1:])):
        # the pieces meet at the points' centres, so that the line runs on unbroken
        piece = {**style, "tailclip": "false"} if k > 0 else dict(style)
        if k < len(keys) - 2:
            piece.update(arrowhead="none", headclip="false")
        pieces.append(f"{tail} -> {head} {_attributes(piece)};")
    return pieces


# ------------------------------------------------------------ clusters

def _step_label(path, graph):
    """"t=2", or in the rolled view "t=1 ... 29 (ran 30 times)"."""
    label = path.rpartition("/")[2]
    steps = graph.runs.get(path)
    if steps is not None and len(steps) > 1:
        first, last = time_of(steps[0]), time_of(steps[-1])
        label = f"t={first} ... {last}: one step, ran {len(steps)} times"
    return label


def _cluster_attributes(path, graph, shades):
    attrs = {"label": escape(_step_label(path, graph) if is_step(path) else path.rpartition("/")[2]),
             "fontname": FONT}
    if not is_step(path):
        attrs.update(style="rounded,dashed", color="#888888")
    elif shades is None:
        attrs.update(style="rounded,filled", color="#7f9cc0", fillcolor="#f2f6fb")
    else:
        fill, _ = shades.colours(norm(graph.step_outputs.get(path, [])))
        attrs.update(style="rounded,filled", color=fill, penwidth="3", fillcolor=fill + "40")
    return attrs


def _point_line(key, lane, edge):
    """A point of a lane: where a state's edge passes, a dot of the edge's colour and
    width that closes the gap between its pieces (class "lane", the edge's tooltip);
    elsewhere invisible."""
    attrs = {"shape": "point", "width": "0", "height": "0", "style": "invis", "group": escape(lane)}
    if edge is not None:
        style = _EDGE_STYLE[edge.kind]
        size = f"{float(style.get('penwidth', 1)) / 72:.3f}"  # inches
        attrs.update({"class": "lane", "width": size, "height": size, "style": "filled",
                      "color": style.get("color", "black"), "tooltip": _edge_tooltip(edge)})
    return f"{key} {_attributes(attrs)};"


def _lane_boxes(nodes, points, order):
    """A step's nodes and its (point key, lane) ``points`` as the borderless boxes of
    :mod:`tinygrad_rnn.viz.lanes`: [(nodes, points)], one per upper lane in ``order``,
    then one for the rest of the step."""
    upper = [lane for lane in order if any(on == lane for _, on in points)]
    boxes = [([node for node in nodes if node.lane == lane], [point for point in points if point[1] == lane])
             for lane in upper]
    return boxes + [([node for node in nodes if node.lane not in upper], [])]


def clusters(graph, group, shades, lanes):
    """The node statements, nested in one cluster per scope (layer -> direction -> step).

    In a step, the nodes on a state's lane come first, in :func:`lane_order`;
    a step with upper lanes (the LSTM's c) puts them, and their points, in
    borderless boxes above the rest (:mod:`tinygrad_rnn.viz.lanes`).
    """
    order = lane_order(graph)
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
    rank = {lane: k for k, lane in enumerate(order)}
    lines, count = [], 0
    stack = [("", 0, False)]
    while stack:
        path, depth, closing = stack.pop()
        indent = "  " * depth
        if closing:
            lines.append(indent[2:] + "}")
            continue
        if path:
            lines.append(f"{indent[2:]}subgraph cluster_{count} {{")
            lines.append(f"{indent}graph {_attributes(_cluster_attributes(path, graph, shades))};")
            count += 1
            stack.append((path, depth, True))
        ordered = sorted(members[path], key=lambda node: rank.get(node.lane, len(rank)))
        if group == "scope" and path in lanes.points:
            for nodes, points in _lane_boxes(ordered, lanes.points[path], order):
                inner = indent + "  "
                lines += [f"{indent}subgraph cluster_{count} {{", f'{inner}graph [label="", style="invis"];']
                lines += [inner + _node_line(node, graph, shades, order) for node in nodes]
                lines += [inner + _point_line(key, lane, lanes.carries.get(key)) for key, lane in points]
                lines.append(indent + "}")
                count += 1
        else:
            lines += [indent + _node_line(node, graph, shades, order) for node in ordered]
            if not path and group != "scope":
                lines += [_point_line(key, lane, lanes.carries.get(key))
                          for points in lanes.points.values() for key, lane in points]
        stack += [(child, depth + 1, False) for child in reversed(children[path])]
    return lines


# ------------------------------------------------------------ the cells view

def rows(graph):
    """Each sequence's cells as rows (``rank="same"``) of at most ROW_LENGTH steps in
    order of t, as few rows as that takes, of even length, each row below the one
    before; a sequence's first cell carries
    its scope ("lstm l0") as an outside label.

    Graphviz keeps a row in order only outside clusters: inside one it may
    rotate it (t=7 ... t=29, t=0 ... t=6), hence no clusters in this view.
    """
    sequences = {}
    for node in graph.nodes.values():
        if node.kind == "cell":
            sequences.setdefault(node.scope, []).append(node)
    lines, firsts, headed = [], [], {}
    for sequence, cells in sequences.items():
        cells = sorted(cells, key=lambda node: time_of(node.step))
        if sequence:
            headed[cells[0].key] = sequence.replace("/", " ")
        count = -(-len(cells) // ROW_LENGTH)
        length = -(-len(cells) // count)  # rows of even length: 30 steps are two rows of 15
        for start in range(0, len(cells), length):
            keys = [node.key for node in cells[start:start + length]]
            lines.append('{rank="same"; ' + "; ".join(keys) + ";}")
            firsts.append(keys[0])
    lines += [f'{above} -> {below} [style="invis"];' for above, below in zip(firsts, firsts[1:])]
    return lines, headed


def stacked_components(graph):
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
    for edge in graph.edges:
        part[find(edge.source.key)] = find(edge.target.key)
        has_out[edge.source.key] = has_in[edge.target.key] = True
    ends, starts = {}, {}
    for key in graph.nodes:
        if key not in has_out:
            ends.setdefault(find(key), []).append(key)
        if key not in has_in:
            starts.setdefault(find(key), []).append(key)
    parts = list(starts)
    return [f'{end} -> {start} [style="invis"];'
            for above, below in zip(parts, parts[1:]) for end in ends[above] for start in starts[below]]


# ------------------------------------------------------------ the whole text

def body(graph, group, shades):
    """The statements between ``digraph {`` and ``}``, one a line."""
    # ops and rolled: the graph flows left to right, so each step sits right of the one before.
    # cells: the steps of a sequence form rows, inputs and weights above them.
    cells = graph.detail == "cells"
    rankdir, ranksep = ("TB", "0.7") if cells else ("LR", "0.25")
    lanes = Lanes(graph)
    held = f', mclimit="{MCLIMIT}"' if lanes.upper else ""
    lines = [f'graph [rankdir="{rankdir}", newrank="true", fontname="{FONT}", fontsize="12", '
             f'nodesep="0.2", ranksep="{ranksep}"{held}];',
             f'node [fontname="{FONT}", fontsize="11", height="0.3", margin="0.05,0.02"];',
             f'edge [arrowsize="0.7", fontname="{FONT}", fontsize="10"];']
    if not cells:
        lines += clusters(graph, group, shades, lanes)
        lines += ['{rank="same"; ' + "; ".join(keys) + ";}" for keys in lanes.ranks]
        lines += [f'{tail} -> {head} [style="invis", weight="8"];' for tail, head in lanes.ties]
    else:
        row_lines, headed = rows(graph)
        for node in graph.nodes.values():
            line = _node_line(node, graph, shades, ())
            if node.key in headed:
                # HTML-like, for a colour of its own: an xlabel takes the node's font colour
                header = html.escape(headed[node.key])
                line = line[:-2] + f', xlabel=<<font color="#333333" point-size="13">{header}</font>>];'
            lines.append(line)
        lines += row_lines + stacked_components(graph)
    for edge in graph.edges:
        lines += _edge_lines(edge, graph.detail, lanes.through(edge))
    if shades is not None:  # last, so that no cluster inherits it
        lines.append(f'graph [label={shades.legend()}, labelloc="b"];')
    return lines
