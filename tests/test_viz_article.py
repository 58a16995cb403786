"""viz: pictures that read as the article: named gates, the folded loop, the state's lanes."""
import importlib
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import tinygrad_rnn as tr
from tinygrad_rnn import nn, viz
from test_viz import Dot, needs_dot

LAYERS = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}
NAMES = {"rnn": ["h"], "lstm": ["i", "f", "c~", "o", "c", "h"], "gru": ["r", "z", "n", "h"]}
NODE_CLASSES = ("param", "input", "op", "cell")
EDGE_CLASSES = ("param", "data", "recurrent")


def layer_loss(kind, steps=3, num_layers=1, bidirectional=False, hidden=2, seed=0):
    tr.manual_seed(seed)
    layer = LAYERS[kind](3, hidden, num_layers=num_layers, bidirectional=bidirectional)
    x = tr.Tensor(np.random.default_rng(seed).normal(size=(steps, 1, 3)).astype(np.float32), name="x")
    output, _ = layer(x)
    return output[-1].sum()


def hand_lstm_cell(weight, hidden):
    """An LSTM cell written by hand: one product for the four gates, cut with chunk."""
    def cell(x, state):
        h, c = state
        i, f, g, o = (tr.cat([h, x], axis=-1) @ weight).chunk(4, axis=-1)
        i, f, g, o = i.sigmoid().named("i"), f.sigmoid().named("f"), g.tanh().named("c~"), o.sigmoid().named("o")
        c = (f * c + i * g).named("c")
        return (o * c.tanh()).named("h"), c
    return cell


def hand_lstm_loss(steps=3, hidden=2):
    rng = np.random.default_rng(0)
    weight = nn.Parameter(rng.normal(size=(hidden + 3, 4 * hidden)), name="W")
    xs = tr.Tensor(rng.normal(size=(steps, 1, 3)), name="x")
    zeros = np.zeros((1, hidden))
    outputs, _ = nn.unroll(hand_lstm_cell(weight, hidden), xs,
                           (tr.Tensor(zeros, name="h0"), tr.Tensor(zeros, name="c0")))
    return outputs[-1].sum()


def heads(dot, cluster):
    return [label.split("\\n")[0] for label, _, path in dot.nodes.values() if path == cluster]


def step_clusters(dot):
    return [path for path, _ in dot.clusters if path.rpartition("/")[2].startswith("t=")]


# ------------------------------------------------------------ named gates

@pytest.mark.parametrize("kind", list(LAYERS))
def test_every_step_shows_the_articles_names_and_no_gate_getitem(kind):
    dot = Dot(viz.to_dot(layer_loss(kind)))
    steps = step_clusters(dot)
    assert steps == [f"{kind}/l0/t={t}" for t in range(3)]
    expected = {"rnn": ["h = tanh"], "lstm": ["i = sigmoid", "f = sigmoid", "c~ = tanh", "o = sigmoid",
                                              "c = add", "h = mul"],
                "gru": ["r = sigmoid", "z = sigmoid", "n = tanh", "h = add"]}[kind]
    for step in steps:
        named = [head for head in heads(dot, step) if " = " in head]
        assert sorted(named) == sorted(expected)
        assert "getitem" not in heads(dot, step)
        assert heads(dot, step).count("·[t]") == 1  # the step's slice of the projected input
    assert not any(label.startswith("getitem") for label, _, path in dot.nodes.values() if "t=" in path)


def test_a_hand_made_cell_shows_its_named_tensors_the_same_way():
    dot = Dot(viz.to_dot(hand_lstm_loss()))
    for step in ("t=0", "t=1", "t=2"):
        assert {"i = sigmoid", "f = sigmoid", "c~ = tanh", "o = sigmoid", "c = add", "h = mul"} <= set(heads(dot, step))
        assert "getitem" not in heads(dot, step)
    # the four gates are cut out of one product: each gate has an edge from the matmul
    (product,) = [k for k, (label, _, path) in dot.nodes.items() if label.startswith("matmul") and path == "t=1"]
    gates = [dot.nodes[b][0].split("\\n")[0] for a, b, _ in dot.edges if a == product]
    assert sorted(gates) == ["c~ = tanh", "f = sigmoid", "i = sigmoid", "o = sigmoid"]


def test_to_text_with_grads_gives_every_line_its_gradient_norm():
    loss = layer_loss("gru")
    loss.backward(retain_grads=True)
    lines = [line for line in viz.to_text(loss, grads=True).splitlines() if line.lstrip().startswith("%")]
    assert all(re.search(r"  \|g\| (-|\S+)$", line) for line in lines)
    assert lines[-1].endswith("  |g| 1")  # d loss / d loss
    assert "|g| -" not in " ".join(line for line in lines if "parameter" in line)


# ------------------------------------------------------------ the folded loop

@pytest.mark.parametrize("kind", list(LAYERS))
@pytest.mark.parametrize("num_layers, bidirectional", [(1, False), (2, False), (1, True), (2, True)])
def test_rolled_draws_each_sequences_step_once_with_its_state_looping_back(kind, num_layers, bidirectional):
    dot = Dot(viz.to_dot(layer_loss(kind, 4, num_layers, bidirectional), detail="rolled"))
    directions = ["", "_reverse"] if bidirectional else [""]
    sequences = [f"{kind}/l{k}{d}" for k in range(num_layers) for d in directions]
    steps = step_clusters(dot)
    assert [step.rpartition("/")[0] for step in steps] == sequences  # one drawn step each
    for path, attrs in dot.clusters:
        if path in steps:
            assert "ran 4 times" in path
    states = 2 if kind == "lstm" else 1
    loops = [(a, b) for a, b, attrs in dot.edges if 'class="recurrent"' in attrs]
    assert len({a for a, _ in loops}) == states * len(sequences)  # h (and c) of each drawn step
    for a, b in loops:
        assert dot.cluster_of(a) == dot.cluster_of(b)  # from its outputs back to its inputs
    for step in steps:
        names = [head.split(" = ")[0] for head in heads(dot, step) if " = " in head]
        assert sorted(names) == sorted(NAMES[kind])


def test_rolled_works_for_a_hand_made_cell_run_by_unroll():
    dot = Dot(viz.to_dot(hand_lstm_loss(steps=5), detail="rolled"))
    assert [path for path, _ in dot.clusters] == ["t=0 ... 4: one step, ran 5 times"]
    loops = [(dot.nodes[a][0].split("\\n")[0], dot.nodes[b][0].split("\\n")[0])
             for a, b, attrs in dot.edges if 'class="recurrent"' in attrs]
    assert sorted(loops) == [("c = add", "mul"), ("h = mul", "cat")]
    assert len(dot.ids("f = sigmoid")) == 1


def cell_making_its_zero_state(weight, hidden):
    """The hand-made LSTM cell that, given no state, makes its zeros inside the step, as
    README's MyLSTMCell does: step t=0 then holds one tensor more than the others."""
    step = hand_lstm_cell(weight, hidden)

    def cell(x, state):
        if state is None:
            zeros = tr.Tensor(np.zeros((x.shape[0], hidden)))
            state = (zeros, zeros)
        return step(x, state)
    return cell


@pytest.mark.parametrize("make_cell", ["hand-made", "LSTMCell"])
def test_rolled_draws_one_step_when_the_cell_makes_its_zero_state_at_t0(make_cell):
    rng = np.random.default_rng(0)
    weight = nn.Parameter(rng.normal(size=(5, 8)), name="W")
    cell = (cell_making_its_zero_state(weight, 2) if make_cell == "hand-made"
            else nn.LSTMCell(3, 2).to("float64"))
    outputs, _ = nn.unroll(cell, tr.Tensor(rng.normal(size=(5, 1, 3)), name="x"))
    dot = Dot(viz.to_dot(outputs[-1].sum(), detail="rolled"))
    assert [path for path, _ in dot.clusters] == ["t=0 ... 4: one step, ran 5 times"]
    assert len(dot.ids("f = sigmoid")) == len(dot.ids("c = add")) == 1
    zeros = [k for k, (label, attrs, path) in dot.nodes.items()
             if 'class="input"' in attrs and "min 0  mean 0  max 0" in attrs]
    assert zeros and all(dot.cluster_of(k) == "" for k in zeros)   # outside the loop, as h0 is
    fed = [b for a, b, _ in dot.edges if a in zeros]
    assert fed and all(dot.cluster_of(b) == "t=0 ... 4: one step, ran 5 times" for b in fed)


def test_rolled_is_much_smaller_than_unrolled():
    loss = layer_loss("lstm", steps=30)
    rolled, unrolled = Dot(viz.to_dot(loss, detail="rolled")), Dot(viz.to_dot(loss))
    assert len(rolled.nodes) < 25 < 300 < len(unrolled.nodes)


# ------------------------------------------------------------ only state is red

def demo_01():
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "demos"))
    return importlib.import_module("_common").definitions("01_rnn_by_hand")


def test_in_demo_01_only_the_hidden_state_is_recurrent_not_the_running_loss_sum():
    rnn = demo_01()
    tr.manual_seed(0)
    A, B, C = rnn.make_parameters(3, 4, 2)
    loss, hs = rnn.unrolled_rnn(A, B, C, *rnn.make_sequence(4, 3, 2))
    dot = Dot(viz.to_dot(loss))
    recurrent = [(dot.nodes[a][0].split("\\n")[0], dot.cluster_of(a), dot.cluster_of(b))
                 for a, b, attrs in dot.edges if 'class="recurrent"' in attrs]
    assert recurrent == [(f"h({t}) = tanh", f"t={t}", f"t={t + 1}") for t in range(3)]
    sums = [k for k, (label, _, _) in dot.nodes.items() if label.startswith(("add\\n()", "0.5 * ·"))]
    for a, b, attrs in dot.edges:
        if a in sums and dot.cluster_of(a) != dot.cluster_of(b):
            assert 'class="data"' in attrs and "#d62728" not in attrs


@pytest.mark.parametrize("detail", ["ops", "cells", "rolled"])
def test_every_node_and_edge_has_a_semantic_class(detail):
    loss = layer_loss("lstm", num_layers=2, bidirectional=True)
    loss.backward(retain_grads=True)
    text = viz.to_dot(loss, detail=detail, grads=True)
    dot = Dot(text)
    assert dot.nodes and all(re.search(r'class="(\w+)"', attrs)[1] in NODE_CLASSES
                             for _, attrs, _ in dot.nodes.values())
    drawn = [attrs for _, _, attrs in dot.edges if attrs != 'style="invis"']
    assert drawn and all(re.search(r'class="(\w+)"', attrs)[1] in EDGE_CLASSES for attrs in drawn)
    assert 'class="cell"' in text if detail == "cells" else 'class="op"' in text


def test_every_h_and_c_edge_between_steps_is_recurrent():
    dot = Dot(viz.to_dot(layer_loss("lstm", steps=4)))
    between = [(dot.nodes[a][0].split("\\n")[0], attrs) for a, b, attrs in dot.edges
               if dot.cluster_of(a) != dot.cluster_of(b) and "t=" in dot.cluster_of(a) and "t=" in dot.cluster_of(b)]
    assert sorted(head for head, _ in between) == ["c = add"] * 3 + ["h = mul"] * 3
    assert all('class="recurrent"' in attrs for _, attrs in between)


# ------------------------------------------------------------ the conveyor belt

def test_c_and_h_each_keep_one_lane_from_step_to_step():
    dot = Dot(viz.to_dot(layer_loss("lstm", steps=4)))
    groups = {}
    for label, attrs, _ in dot.nodes.values():
        match = re.search(r'group="([^"]*)"', attrs)
        if match:
            groups.setdefault(match[1], []).append(label.split("\\n")[0])
    assert set(groups) == {"lstm/l0:c", "lstm/l0:h"}
    # every step's c and h, the last step's too, and the initial states
    assert groups["lstm/l0:c"].count("c = add") == 4 and "c0" in groups["lstm/l0:c"]
    assert groups["lstm/l0:h"].count("h = mul") == 4 and "h0" in groups["lstm/l0:h"]
    lane_edges = [attrs for a, b, attrs in dot.edges if 'weight="8"' in attrs]
    assert len(lane_edges) >= 12


def test_the_state_edge_from_step_to_step_is_drawn_through_points_inside_the_boxes():
    dot = Dot(viz.to_dot(layer_loss("lstm", steps=3)))
    (c1,) = [b for a, b, attrs in dot.edges if 'class="recurrent"' in attrs
             and dot.cluster_of(b) == "lstm/l0/t=1" and dot.nodes[b][0].startswith("mul")]
    pieces = [(a, b, attrs) for a, b, attrs in dot.pieces if 'class="recurrent"' in attrs
              and (b == c1 or b in dot.points) and "c (1, 2)" in attrs]
    into = {b: a for a, b, _ in pieces}
    exit_point = into[into[c1]]
    entry_point = into[c1]
    assert dot.points[exit_point][1] == "lstm/l0/t=0" and dot.points[entry_point][1] == "lstm/l0/t=1"
    assert dot.nodes[into[exit_point]][0].startswith("c = add")
    # one arrowhead, at the end; the points are dots of the line's colour where it passes
    ends = [attrs.count('arrowhead="none"') for a, b, attrs in pieces if b in (exit_point, entry_point, c1)]
    assert ends == [1, 1, 0]
    assert all('class="lane"' in dot.points[p][0] and "#d62728" in dot.points[p][0]
               and 'tooltip="c (1, 2)"' in dot.points[p][0] for p in (exit_point, entry_point))


def plain_heights(text):
    """{node id: y} of dot's layout of ``text`` (-Tplain: inches, y grows upwards)."""
    out = subprocess.run(["dot", "-Tplain"], input=text.encode(), capture_output=True, check=True).stdout
    lines = map(str.split, out.decode().splitlines())
    return {words[1]: float(words[3]) for words in lines if words[0] == "node"}


@needs_dot
@pytest.mark.parametrize("steps, num_layers", [(3, 1), (5, 1), (3, 2), (5, 2)])
def test_c_runs_straight_along_the_top_of_every_step_above_h(steps, num_layers):
    text = viz.to_dot(layer_loss("lstm", steps=steps, num_layers=num_layers))
    dot, height = Dot(text), plain_heights(text)
    for layer in range(num_layers):
        sequence, belt = f"lstm/l{layer}", []
        for t in range(steps):
            on = {lane: [(label.split("\\n")[0], height[k]) for k, (label, attrs, path) in dot.nodes.items()
                         if path == f"{sequence}/t={t}" and f'group="{sequence}:{lane}"' in attrs]
                  for lane in "ch"}
            assert {"mul", "c = add"} <= {head for head, _ in on["c"]}
            assert {"o = sigmoid", "h = mul"} <= {head for head, _ in on["h"]}
            assert min(y for _, y in on["c"]) > max(y for _, y in on["h"]), (sequence, t, on)
            belt += [y for _, y in on["c"]]
        assert max(belt) - min(belt) < 0.05, (sequence, belt)  # inches: one straight line
