"""DOT text of a picture :class:`~tinygrad_rnn.viz.model.Model`: it writes the model out, with styling.

Every node carries ``class="param"``, ``"input"``, ``"op"`` or ``"cell"``
and every edge ``class="param"``, ``"data"`` or ``"recurrent"``; Graphviz
copies them into the SVG, for tests and style sheets. Every node has a
``tooltip`` (shown on hover in SVG and in Jupyter) with its op, name, scope,
shape, dtype, the min / mean / max of its value, how many entries are nan or
inf, and its gradient's norm when it has one. The words and colours are the
model's; the writer adds the shapes, line styles and the layout's hints.
"""
import html

from .lanes import MCLIMIT, Lanes, lane_order
from .model import NO_GRAD, NONFINITE, VIRIDIS, Model

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
_NONFINITE_OUTLINE = {"color": "#d62728", "penwidth": "3"}
ROW_LENGTH = 25  # cells view: time steps in one row before it wraps


# ------------------------------------------------------------ the legend

def legend(shades):
    """An HTML-like DOT label: the colour bar between the end norms of ``shades``, and the grey
    (and red)."""
    bar = "".join(f'<td bgcolor="{c}" width="12" height="14"></td>' for c in VIRIDIS)
    width = len(VIRIDIS)
    rows = [f'<tr><td colspan="{width}">gradient norm, log scale</td></tr>', f"<tr>{bar}</tr>"]
    if shades.low is not None:
        rows.append(f'<tr><td colspan="{width // 2}" align="left">{shades.low:.2g}</td>'
                    f'<td colspan="{width - width // 2}" align="right">{shades.high:.2g}</td></tr>')
    specials = [(NO_GRAD, "no gradient")] + ([(NONFINITE, "nan or inf")] if shades.has_nonfinite else [])
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


# ------------------------------------------------------------ nodes

def _node_line(node, shaded, lanes):
    label = "\\n".join(escape(line) for line in node.label)
    attrs = {"label": label, "class": node.kind, **_NODE_STYLE[node.kind],
             "tooltip": escape(node.tooltip)}
    if shaded:
        attrs["fillcolor"], attrs["fontcolor"] = node.fill, node.font
    if node.is_root:
        attrs["peripheries"] = "2"
    if node.nonfinite:
        attrs.update(_NONFINITE_OUTLINE)
    if node.lane is not None and node.lane in lanes:
        attrs["group"] = escape(node.lane)
    return f"{node.key} {_attributes(attrs)};"


# ------------------------------------------------------------ edges

def _edge_lines(edge, detail, through=()):
    """The edge's DOT statements: one, or the pieces through the points ``through``
    (:class:`~tinygrad_rnn.viz.lanes.Lanes`), the arrowhead on the last piece only."""
    source, target, kind = edge.source, edge.target, edge.kind
    style = {"class": edge.klass, **_EDGE_STYLE[kind], "tooltip": escape(edge.tooltip)}
    if detail != "cells" and kind in ("feed", "param"):
        # These edges feed every step from one source (x, a weight). At their
        # default weight dot pulls each step's input ops left, next to the source,
        # and the steps overlap instead of following each other left to right.
        style["weight"] = "0"
    if detail != "cells" and source.lane is not None and source.lane == target.lane:
        style["weight"] = "8"  # a state's line from step to step: keep it straight
    if detail == "rolled" and kind == "recurrent":
        style.update(constraint="false", label=escape(edge.label), fontcolor="#d62728")
    if detail == "cells" and kind in ("feed", "data") and "cell" in (source.kind, target.kind):
        style["color"] = "#8c8c8c"  # the fans into and out of every step: let the chain stand out
    if detail == "cells" and kind == "recurrent" and source.time > target.time:
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

def _cluster_attributes(box, shaded):
    attrs = {"label": escape(box.label), "fontname": FONT}
    if not box.is_step:
        attrs.update(style="rounded,dashed", color="#888888")
    elif not shaded:
        attrs.update(style="rounded,filled", color="#7f9cc0", fillcolor="#f2f6fb")
    else:
        attrs.update(style="rounded,filled", color=box.fill, penwidth="3", fillcolor=box.fill + "40")
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
                      "color": style.get("color", "black"), "tooltip": escape(edge.tooltip)})
    return f"{key} {_attributes(attrs)};"


def _lane_boxes(nodes, points, order):
    """A step's nodes and its (point key, lane) ``points`` as the borderless boxes of
    :mod:`tinygrad_rnn.viz.lanes`: [(nodes, points)], one per upper lane in ``order``,
    then one for the rest of the step."""
    upper = [lane for lane in order if any(on == lane for _, on in points)]
    boxes = [([node for node in nodes if node.lane == lane], [point for point in points if point[1] == lane])
             for lane in upper]
    return boxes + [([node for node in nodes if node.lane not in upper], [])]


def clusters(model, group, lanes):
    """The node statements, nested in one cluster per scope (layer -> direction -> step).

    In a step, the nodes on a state's lane come first, in :func:`lane_order`;
    a step with upper lanes (the LSTM's c) puts them, and their points, in
    borderless boxes above the rest (:mod:`tinygrad_rnn.viz.lanes`).
    """
    order = lane_order(model)
    members, children = {"": []}, {"": []}
    for node in model.nodes.values():
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
            box = _cluster_attributes(model.boxes[path], model.shaded)
            lines.append(f"{indent}graph {_attributes(box)};")
            count += 1
            stack.append((path, depth, True))
        ordered = sorted(members[path], key=lambda node: rank.get(node.lane, len(rank)))
        if group == "scope" and path in lanes.points:
            for nodes, points in _lane_boxes(ordered, lanes.points[path], order):
                inner = indent + "  "
                lines += [f"{indent}subgraph cluster_{count} {{", f'{inner}graph [label="", style="invis"];']
                lines += [inner + _node_line(node, model.shaded, order) for node in nodes]
                lines += [inner + _point_line(key, lane, lanes.carries.get(key)) for key, lane in points]
                lines.append(indent + "}")
                count += 1
        else:
            lines += [indent + _node_line(node, model.shaded, order) for node in ordered]
            if not path and group != "scope":
                lines += [_point_line(key, lane, lanes.carries.get(key))
                          for points in lanes.points.values() for key, lane in points]
        stack += [(child, depth + 1, False) for child in reversed(children[path])]
    return lines


# ------------------------------------------------------------ the cells view

def rows(model):
    """Each sequence's cells as rows (``rank="same"``) of at most ROW_LENGTH steps in
    order of t, as few rows as that takes, of even length, each row below the one
    before; a sequence's first cell carries
    its scope ("lstm l0") as an outside label.

    Graphviz keeps a row in order only outside clusters: inside one it may
    rotate it (t=7 ... t=29, t=0 ... t=6), hence no clusters in this view.
    """
    sequences = {}
    for node in model.nodes.values():
        if node.kind == "cell":
            sequences.setdefault(node.scope, []).append(node)
    lines, firsts, headed = [], [], {}
    for sequence, cells in sequences.items():
        cells = sorted(cells, key=lambda node: node.time)
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


def stacked_components(model):
    """Invisible edges that put each unconnected part of the picture (several roots
    drawn together, e.g. an RNN and an LSTM to compare) wholly below the one before:
    from the ends of one part to the starts of the next."""
    part = {key: key for key in model.nodes}

    def find(key):
        while part[key] != key:
            part[key] = part[part[key]]
            key = part[key]
        return key

    has_in, has_out = {}, {}
    for edge in model.edges:
        part[find(edge.source.key)] = find(edge.target.key)
        has_out[edge.source.key] = has_in[edge.target.key] = True
    ends, starts = {}, {}
    for key in model.nodes:
        if key not in has_out:
            ends.setdefault(find(key), []).append(key)
        if key not in has_in:
            starts.setdefault(find(key), []).append(key)
    parts = list(starts)
    return [f'{end} -> {start} [style="invis"];'
            for above, below in zip(parts, parts[1:]) for end in ends[above] for start in starts[below]]


# ------------------------------------------------------------ the whole text

def body(graph, group, shades):
    """The statements between ``digraph {`` and ``}`` of ``graph``'s picture, one a line,
    shaded by ``shades`` (None: plain)."""
    return write(Model(graph, shades), group)


def write(model, group):
    """The statements between ``digraph {`` and ``}`` of the picture ``model``, one a line."""
    # ops and rolled: the graph flows left to right, so each step sits right of the one before.
    # cells: the steps of a sequence form rows, inputs and weights above them.
    cells = model.detail == "cells"
    rankdir, ranksep = ("TB", "0.7") if cells else ("LR", "0.25")
    lanes = Lanes(model)
    held = f', mclimit="{MCLIMIT}"' if lanes.upper else ""
    lines = [f'graph [rankdir="{rankdir}", newrank="true", fontname="{FONT}", fontsize="12", '
             f'nodesep="0.2", ranksep="{ranksep}"{held}];',
             f'node [fontname="{FONT}", fontsize="11", height="0.3", margin="0.05,0.02"];',
             f'edge [arrowsize="0.7", fontname="{FONT}", fontsize="10"];']
    if not cells:
        lines += clusters(model, group, lanes)
        lines += ['{rank="same"; ' + "; ".join(keys) + ";}" for keys in lanes.ranks]
        lines += [f'{tail} -> {head} [style="invis", weight="8"];' for tail, head in lanes.ties]
    else:
        row_lines, headed = rows(model)
        for node in model.nodes.values():
            line = _node_line(node, model.shaded, ())
            if node.key in headed:
                # HTML-like, for a colour of its own: an xlabel takes the node's font colour
                header = html.escape(headed[node.key])
                line = line[:-2] + f', xlabel=<<font color="#333333" point-size="13">{header}</font>>];'
            lines.append(line)
        lines += row_lines + stacked_components(model)
    for edge in model.edges:
        lines += _edge_lines(edge, model.detail, lanes.through(edge))
    if model.shaded:  # last, so that no cluster inherits it
        lines.append(f'graph [label={legend(model.shades)}, labelloc="b"];')
    return lines
