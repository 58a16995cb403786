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
in a ``graphviz.Digraph`` (shown inline in Jupyter); ``render`` writes a file,
and needs Graphviz's ``dot`` executable except for ``.dot`` output. A graph
that ``dot`` could not lay out in about 30 s is refused before it runs.
``to_text`` lists the same graph as text, one line per tensor.
"""
import os
import shutil
import subprocess
import warnings

from ..nn.module import Parameter
from .plots import plot_gates, plot_state_grads, plot_weight_grads  # noqa: F401  the bptt.record plots
from .dot import Shades, body, constant_text, shape_text
from .graph import Graph, flatten_roots, norm, walk
from .explore import Page, explore  # noqa: E402  the explorer page; it uses this package's errors

__all__ = ["to_dot", "draw", "render", "to_text", "layout_seconds", "GraphvizNotFound",
           "PictureTooBig", "LayoutTimeout", "explore", "Page"]


class GraphvizNotFound(RuntimeError):
    """Graphviz's ``dot`` executable, needed to render images, is not on PATH."""


# The advice of a refusal, in the terms of the caller: Python keywords, or the
# command line's flags (python -m tinygrad_rnn draw).
_TERMS = {
    "python": {"cells": "detail='cells'", "rolled": "detail='rolled'", "steps": "steps",
               "max_nodes": "max_nodes={}", "larger max_nodes": "pass a larger max_nodes",
               "no limit": "pass max_nodes=None to try anyway", "larger timeout": "pass a larger timeout"},
    "cli": {"cells": "--detail cells", "rolled": "--detail rolled", "steps": "--steps",
            "max_nodes": "--max-nodes {}", "larger max_nodes": "pass a larger --max-nodes",
            "no limit": "pass --no-limit to try anyway", "larger timeout": "pass a larger --timeout"},
}


class _Refusal:
    """What a refused or stopped picture says: ``what`` went wrong (a template that
    may name ``{max_nodes}``, the limit ``max_nodes`` in the caller's terms), then
    what to do for ``detail``, then ``lift`` (a key of the terms: how to lift the
    limit that stopped it)."""

    def _explained(self, caller, what, detail, lift, max_nodes=None):
        self.caller, self.what, self.detail, self.lift, self.max_nodes = caller, what, detail, lift, max_nodes
        return self.explain()

    def explain(self, terms="python"):
        """The message in ``terms``: "python" (with the caller, "render: ...") or "cli"."""
        words = _TERMS[terms]
        todo = f"unroll fewer {words['steps']}"
        if self.detail == "ops":
            todo = (f"use {words['cells']} (one node per time step) or {words['rolled']} "
                    f"(one step drawn once), or {todo}")
        what = self.what.format(max_nodes=words["max_nodes"].format(self.max_nodes))
        text = f"{what}; {todo}, or {words[self.lift]}"
        return f"{self.caller}: {text}" if terms == "python" else text


class PictureTooBig(_Refusal, ValueError):
    """A picture refused before ``dot`` runs: more nodes than ``max_nodes``, or a layout
    :func:`layout_seconds` puts past about 30 s. ``explain("cli")``: the advice in
    the command line's flags."""

    def __init__(self, caller, what, detail, lift, max_nodes=None):
        super().__init__(self._explained(caller, what, detail, lift, max_nodes))


class LayoutTimeout(_Refusal, TimeoutError):
    """``render`` stopped ``dot`` after its ``timeout``; ``explain("cli")`` as :class:`PictureTooBig`."""

    def __init__(self, caller, what, detail):
        super().__init__(self._explained(caller, what, detail, "larger timeout"))


_INSTALL_HINT = (
    "Graphviz's `dot` executable was not found on PATH; it is needed to render "
    "{fmt} images. Install it with:\n"
    "    Debian/Ubuntu: sudo apt-get install graphviz\n"
    "    macOS:         brew install graphviz\n"
    "    conda:         conda install -c conda-forge graphviz\n"
    "Writing .dot text (render(..., path='graph.dot') or to_dot(...)) works without it.")

_FORMATS = ("svg", "png", "pdf", "dot")
_DETAILS = ("ops", "cells", "rolled")
LAYOUT_LIMIT = 30.0  # seconds of dot layout beyond which a picture is refused


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
    return _source(_graph("to_dot", roots, group, detail, grads, max_nodes, layout=False), group, grads)


def draw(*roots, group="scope", detail="ops", grads=False, max_nodes=2000):
    """The picture as a ``graphviz.Digraph`` (shown inline in Jupyter); options as :func:`to_dot`.

    Jupyter runs ``dot`` to show it, so a graph too big to lay out in about
    30 s is refused here as in :func:`render`.
    """
    try:
        import graphviz  # here, not at the top: to_dot and render need no package but numpy
    except ImportError:
        raise ImportError("draw: needs the graphviz Python package (pip install graphviz); "
                          "to_dot and render work without it") from None
    graph = _graph("draw", roots, group, detail, grads, max_nodes, layout=True)
    digraph = graphviz.Digraph(name="tinygrad_rnn")
    digraph.body += [f"\t{line}\n" for line in body(graph, group, _shades(graph, grads))]
    return digraph


def render(*roots, path=None, group="scope", detail="ops", grads=False, max_nodes=2000, timeout=60):
    """Write the picture to ``path`` and return ``path``; options as :func:`to_dot`.

    The extension gives the format: .svg, .png, .pdf (made by Graphviz's
    ``dot``; without it :class:`GraphvizNotFound`) or .dot (the DOT text).
    A graph whose layout :func:`layout_seconds` puts past about 30 s is
    refused before ``dot`` runs (:class:`PictureTooBig`; ``max_nodes=None``
    lifts that too), and ``dot`` is stopped after ``timeout`` seconds with a
    :class:`LayoutTimeout` (a ``TimeoutError``).
    """
    if path is None or any(isinstance(root, (str, os.PathLike)) for root in roots):
        raise TypeError("render: the file to write goes in path=..., "
                        "e.g. render(loss, path='graph.svg')")
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
        raise ValueError(f"render: timeout must be a positive number of seconds, got {timeout!r}")
    filename = os.fspath(path)
    fmt = os.path.splitext(filename)[1].lower().lstrip(".")
    if fmt not in _FORMATS:
        raise ValueError(f"render: cannot tell the format of {filename!r} from its extension; "
                         f"use one of {', '.join('.' + f for f in _FORMATS)}")
    folder = os.path.dirname(filename)
    if folder and not os.path.isdir(folder):
        raise FileNotFoundError(f"render: the folder {folder!r} of {filename!r} does not exist")
    graph = _graph("render", roots, group, detail, grads, max_nodes, layout=fmt != "dot")
    source = _source(graph, group, grads)
    if fmt == "dot":
        with open(filename, "w", encoding="utf-8") as file:
            file.write(source)
        return path
    executable = shutil.which("dot")
    if executable is None:
        raise GraphvizNotFound("render: " + _INSTALL_HINT.format(fmt=fmt.upper()))
    try:
        finished = subprocess.run([executable, f"-T{fmt}", "-o", filename], input=source.encode("utf-8"),
                                  capture_output=True, check=False, timeout=timeout)
    except subprocess.TimeoutExpired:
        if os.path.exists(filename):
            os.remove(filename)
        raise LayoutTimeout("render", f"Graphviz's dot had not laid out the {len(graph.nodes)} nodes "
                            f"after {timeout} s and was stopped", detail) from None
    if finished.returncode != 0:
        message = finished.stderr.decode("utf-8", "replace").strip()
        raise RuntimeError(f"render: Graphviz's dot could not write {filename!r}: {message}")
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


def layout_seconds(nodes, edges, steps=1, detail="ops"):
    """About how long Graphviz's ``dot`` takes to lay out a picture of this size here.

    ``steps`` is the number of time steps drawn as boxes. dot's crossing
    minimisation and its placement of the long edges (a weight's edge into
    every step) grow much faster than the graph. Fitted, on the long side, to
    unrolled LSTM, RNN and GRU pictures timed on a 2-core machine (README,
    "Seeing the unrolled graph"): seconds ~ 5e-6 * nodes * edges * steps for
    "ops" and "rolled", and 5e-8 * (nodes * edges) ** 1.5 for the rows of
    "cells".
    """
    if detail == "cells":
        return 5e-8 * (nodes * edges) ** 1.5
    return 5e-6 * nodes * edges * max(steps, 1)


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


def _graph(caller, roots, group, detail, grads, max_nodes, layout):
    """The Graph to draw, after the checks: options, max_nodes, and (``layout``:
    dot will run) the layout time."""
    _check_options(caller, group, detail, grads, max_nodes)
    graph = Graph(flatten_roots(caller, roots), detail)
    count = len(graph.nodes)
    if max_nodes is not None and count > max_nodes:
        raise PictureTooBig(caller, f"the graph has {count} nodes to draw, more than {{max_nodes}}",
                            detail, "larger max_nodes", max_nodes)
    if layout and max_nodes is not None:
        steps = len({node.step for node in graph.nodes.values() if node.step is not None})
        seconds = layout_seconds(count, len(graph.edges), steps, detail)
        if seconds > LAYOUT_LIMIT:
            raise PictureTooBig(caller, f"the graph has {count} nodes and {len(graph.edges)} edges to "
                                f"draw, which Graphviz would take about {seconds:.0f} s to lay out",
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
    if not grads:
        return None
    return Shades([graph.norm(node) for node in graph.nodes.values()]
                  + [norm(outputs) for outputs in graph.step_outputs.values()])


def _source(graph, group, grads):
    lines = body(graph, group, _shades(graph, grads))
    return "digraph tinygrad_rnn {\n" + "".join(f"\t{line}\n" for line in lines) + "}\n"
