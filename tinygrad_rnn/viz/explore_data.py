"""The data of one run of the explorer page (:mod:`tinygrad_rnn.viz.explore`), as JSON-ready dicts.

For every drawn node of a picture :class:`~tinygrad_rnn.viz.model.Model`, what
the model says of it (kind, scope, the steps it stands for, its tooltip,
gradient norm and colours, nan and inf counts, the first-nan mark), as the
static pictures write it; and what only the page shows: name, op, shape, the
numbers of its value and gradient (min / mean / max over the finite entries,
nan and inf counts, the gradient's norm), heatmaps of both, the op's formula
and derivative as the primitive's docstring gives them, the article's
equation for a named state or gate, and the two times of the scrubber:

- ``fwd``: the step t at which the forward pass has computed the node: its
  step's t; -1 for a leaf; for an op outside every step, the largest t among
  the steps made before it (creation order).
- ``bwd``: the step t at which backward's gradient has reached it, backward
  running newest tensor first as the engine does: its step's t; outside every
  step, the smallest t among the steps made after it (the last t if none);
  None without a gradient. It is lit for t <= bwd.

A heatmap is a 2-D view of the array (rows = all axes but the last, e.g. the
batch; columns = units) cut to at most rows x cols, coded in one byte per
entry, base64: 0 ... 250 for -scale ... scale linearly (scale = the largest
finite magnitude shown), 253 nan, 254 inf, 255 -inf.
"""
import base64
import inspect
import math

import numpy as np

from .. import ops
from .graph import grad_norm, time_of
from .model import stats

# The primitives' docstrings give "out = <formula>;  <derivative>" on their first line.
_OPS = {cls.name: cls.__doc__.split("\n\n")[0] for _, cls in inspect.getmembers(ops, inspect.isclass)
        if isinstance(getattr(cls, "name", None), str) and cls.__doc__}

# The article's equations (NOTATION.md), by the kind of cell and the tensor's name.
_EQUATIONS = {
    "rnn": {"h": "h(t) = f(A x(t) + C h(t-1)), f = tanh (or ReLU)"},
    "lstm": {"i": "i_t = σ(W_i [h_{t-1}, x_t] + b_i)   input gate",
             "f": "f_t = σ(W_f [h_{t-1}, x_t] + b_f)   forget gate",
             "c~": "c~_t = tanh(W_c [h_{t-1}, x_t] + b_c)   candidate cell state",
             "o": "o_t = σ(W_o [h_{t-1}, x_t] + b_o)   output gate",
             "c": "c_t = f_t * c_{t-1} + i_t * c~_t   cell state (the conveyor belt)",
             "h": "h_t = o_t * tanh(c_t)"},
    "gru": {"r": "r_t = σ(W_r x_t + U_r h_{t-1} + b_r)   reset gate",
            "z": "z_t = σ(W_z x_t + U_z h_{t-1} + b_z)   update gate",
            "n": "n_t = tanh(W_n x_t + b_in + r_t * (U_n h_{t-1} + b_hn))   candidate state",
            "h": "h_t = (1 - z_t) * n_t + z_t * h_{t-1}"},
}


def run_data(name, model, rec, source, svg, note, caps):
    """The JSON-ready dict of one run: its picture ``model``, laid out as SVG number ``svg``
    from the DOT ``source``, and its recording ``rec``; ``caps``: (rows, cols) of a heatmap."""
    graph = model.graph
    fwd, bwd = _times(graph)
    kinds = _cell_kinds(graph)
    nodes = {key: _node(node, fwd, bwd, kinds, caps) for key, node in model.nodes.items()}
    times = sorted({t for node in nodes.values() for t in node["times"]})
    return {"name": name, "svg": svg, "detail": model.detail, "note": note, "times": times,
            "nodes": nodes, "boxes": _step_boxes(source, model),
            "legend": {"low": model.shades.low, "high": model.shades.high},
            "panels": time_panels(model, rec, caps)}


def _node(node, fwd, bwd, kinds, caps):
    t = node.tensor
    value = node.shown[0].data if node.shown else np.zeros(0)
    gradient = node.shown[0].grad if node.shown else None
    arrived = [bwd[id(m)] for m in node.tensors if bwd.get(id(m)) is not None]
    return {
        "kind": node.kind, "name": t.name if node.kind != "cell" else None,
        "op": {"param": "parameter", "input": "input", "cell": "cell"}.get(node.kind, t.op),
        "scope": node.scope if node.kind != "cell" else node.step, "shape": list(value.shape),
        "dtype": str(value.dtype), "tooltip": node.tooltip, "times": node.times, "drawn": node.time,
        "fwd": min(fwd[id(m)] for m in node.tensors), "bwd": max(arrived) if arrived else None,
        "norm": _number(node.norm), "fill": node.fill, "font": node.font,
        "nonfinite": node.nonfinite, "first": node.first,
        "value": {**stats(value), "heat": heat(value, *caps)},
        "grad": None if gradient is None else {**stats(gradient), "norm": _number(grad_norm(gradient)),
                                               "heat": heat(gradient, *caps)},
        "formula": _OPS.get(t.op) if node.kind == "op" else None,
        "equation": _EQUATIONS.get(kinds.get(node.step), {}).get(t.name) if node.kind == "op" else None,
    }


def heat(array, rows, cols):
    """The heatmap of ``array`` (see the module's docstring): {"rows", "cols", "of", "scale", "codes"}."""
    a = np.asarray(array, dtype=np.float64)
    a = a.reshape(1, -1) if a.ndim < 2 else a.reshape(-1, a.shape[-1])
    shown = a[:rows, :cols]
    finite = np.isfinite(shown)
    scale = float(np.abs(shown[finite]).max()) if finite.any() else 0.0
    scaled = np.where(finite, shown, 0) / (scale or 1.0)
    codes = np.rint((scaled + 1) * 125).astype(np.uint8)
    codes[np.isnan(shown)] = 253
    codes[np.isposinf(shown)] = 254
    codes[np.isneginf(shown)] = 255
    return {"rows": shown.shape[0], "cols": shown.shape[1], "of": list(a.shape), "scale": scale,
            "codes": base64.b64encode(codes.tobytes()).decode("ascii")}


def _number(x):
    """A float for the JSON; None stands for "no number", and nan or inf become strings."""
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else str(x)


# ----------------------------------------------------------------- the scrubber's times

def _times(graph):
    """({id(tensor): fwd}, {id(tensor): bwd}) for every tensor of ``graph`` (module docstring)."""
    order = sorted(graph.tensors, key=lambda t: t._number)
    step_time = {id(t): time_of(graph.step(t)) for t in order if graph.step(t) is not None}
    last = max(step_time.values(), default=0)
    fwd, latest = {}, -1
    for t in order:
        if id(t) in step_time:
            latest = max(latest, step_time[id(t)])
            fwd[id(t)] = step_time[id(t)]
        else:
            fwd[id(t)] = -1 if t.op is None else latest
    bwd, earliest = {}, last
    for t in reversed(order):
        if id(t) in step_time:
            earliest = min(earliest, step_time[id(t)])
        if t.grad is not None:
            bwd[id(t)] = step_time.get(id(t), earliest)
    return fwd, bwd


def _cell_kinds(graph):
    """{step: "lstm", "gru" or "rnn"}, told by the names of the step's tensors."""
    names = {}
    for t in graph.tensors:
        step = graph.step(t)
        if step is not None and t.name is not None:
            names.setdefault(step, set()).add(t.name)
    return {step: "lstm" if "c~" in found else "gru" if "z" in found else "rnn"
            for step, found in names.items()}


def _step_boxes(source, model):
    """{SVG title of a step's box ("cluster_4"): the times t it stands for}, read from the DOT
    ``source``: a box labelled "t=..." holds, directly or in its borderless lane boxes, the
    nodes of one step, whose model box gives the times."""
    boxes, stack, members = {}, [], {}
    for line in source.splitlines():
        text = line.strip()
        if text.startswith("subgraph cluster_"):
            stack.append(text.split()[1])
            members[stack[-1]] = []
        elif text == "}" and stack:
            done = stack.pop()
            if stack:
                members[stack[-1]] += members[done]
        elif stack and text.startswith("graph [label=\"t="):
            boxes[stack[-1]] = True
        elif stack and text.split(" ", 1)[0] in model.nodes:
            members[stack[-1]].append(model.nodes[text.split(" ", 1)[0]])
    found = {}
    for title in boxes:
        steps = [node.step for node in members[title] if node.step is not None]
        if steps:
            found[title] = model.boxes[steps[0]].times
    return found


# ----------------------------------------------------------------- the time panels

_STATES = ("h", "c")
_GATES = ("f", "i", "o", "c~", "r", "z", "n")


def time_panels(model, rec, caps):
    """The recording's time panels: {"norms": [...], "weights": [...], "gates": [...]}, one item
    per sequence and state, weight or gate, each with the steps ``times`` it covers:

    - norms: ||dL/d(state)_t|| (``rec.grad_norms``), the gradient along time;
    - weights: ||(dL/dW)_t|| for each step t (``rec.weight_grad_by_step``), the article's
      "contributions from each timestamp", and the norm of the part added outside the steps;
    - gates: the gate's value averaged over the batch as a heatmap of units x time, and at
      each step the fraction of its values below 0.1 or above 0.9 (``rec.saturation``).
    """
    norms, weights, gates = [], [], []
    params = [node.tensor for node in model.nodes.values() if node.kind == "param"]
    for sequence in rec.sequences:
        # bptt's scopes are prefixes by whole parts: the top level's steps are reached by None
        scope, where = sequence or None, sequence or "top level"
        names = rec.names(scope=scope)
        for name in [n for n in _STATES if n in names]:
            norms += _item(lambda: {"label": f"{name}, {where}", "times": rec.steps_of(name, scope=scope),
                                    "values": [_number(v) for v in rec.grad_norms(name, scope=scope)]})
        for name in [n for n in _GATES if n in names]:
            gates += _item(lambda: _gate(rec, name, scope, where, caps[1]))
        for param in params:
            weights += [item for item in _item(lambda: _weight(rec, param, scope, where)) if item is not None]
    weights.sort(key=lambda item: "_hh" not in item["label"])  # the recurrent weight, C, first
    return {"norms": norms, "weights": weights, "gates": gates}


def _item(make):
    """[make()], or [] where the recording cannot tell the sequence apart (a ValueError saying so)."""
    try:
        return [make()]
    except ValueError:
        return []


def _gate(rec, name, scope, where, units):
    """The gates panel's item: the batch's mean (T, units) as a heatmap of units x time."""
    mean = rec.values(name, scope=scope).mean(axis=1)
    return {"label": f"{name}, {where}", "times": rec.steps_of(name, scope=scope),
            "heat": heat(mean.T, units, len(mean)),
            "saturation": [_number(v) for v in rec.saturation(name, scope=scope)]}


def _weight(rec, param, scope, where):
    """The weights panel's item of ``param`` in the sequence ``scope``; None if no step used it."""
    values = [grad_norm(share) for share in rec.weight_grad_by_step(param, scope=scope)]
    if not any(values):
        return None
    return {"label": f"{param.name or 'parameter'} {tuple(param.shape)}, {where}",
            "times": rec.steps_of(param, scope=scope), "values": [_number(v) for v in values],
            "outside": _number(grad_norm(rec.weight_grad_outside(param, scope=scope)))}


# ----------------------------------------------------------------- the tokens' units

def token_units(rec, count, annotation):
    """For the tokens strip: one item per sequence and state or gate whose steps are the ``count``
    tokens, with each unit's value along time for batch item 0 (``values``: units x T) and the
    units in the order offered (``order``): by |correlation| with ``annotation`` (T,), largest
    first, else as they are; ``corr`` gives each unit's correlation (None without annotation)."""
    items = []
    for sequence in rec.sequences:
        scope, where = sequence or None, sequence or "top level"
        for name in [n for n in _STATES + _GATES if n in rec.names(scope=scope)]:
            found = _item(lambda: rec.values(name, scope=scope))
            if not found or found[0].ndim != 3 or len(found[0]) != count:
                continue  # not one (T, B, units) value per token
            units = found[0][:, 0, :].T.astype(np.float64)
            corr = None if annotation is None else [_correlation(unit, annotation) for unit in units]
            order = list(range(len(units))) if corr is None else sorted(range(len(units)),
                                                                       key=lambda k: -abs(corr[k]))
            items.append({"label": f"{name}, {where}", "order": order,
                          "corr": corr, "values": [[_number(v) for v in unit] for unit in units]})
    return items


def _correlation(a, b):
    """Pearson's r of two series; 0 where either is constant or not finite."""
    if not (np.isfinite(a).all() and np.isfinite(b).all()) or a.std() == 0 or b.std() == 0:
        return 0.0
    return float(np.corrcoef(a, b)[0, 1])


def connectivity_rows(matrix):
    """C (T, T) -> its rows scaled to 0 ... 1 (C[t, s] / max_s C[t, s]), to 3 digits, as lists."""
    top = matrix.max(axis=1, keepdims=True)
    return np.round(matrix / np.where(top > 0, top, 1), 3).tolist()


def top_predictions(p, count):
    """p (T, K) -> for each step t, the ``count`` most probable tokens as [index, probability],
    most probable first."""
    best = np.argsort(-p, axis=1, kind="stable")[:, :count]
    return [[[int(k), _number(row[k])] for k in ks] for row, ks in zip(p, best)]
