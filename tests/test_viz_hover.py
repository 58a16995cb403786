"""viz: what a node tells on hover, where a NaN began, and no picture that hangs."""
import os
import re
import time
import xml.etree.ElementTree as ElementTree

import numpy as np
import pytest

import tinygrad_rnn as tr
from tinygrad_rnn import nn, viz
from test_viz import Dot, tanh_rnn
from test_viz_article import layer_loss

XLINK = "{http://www.w3.org/1999/xlink}"
SVG = "{http://www.w3.org/2000/svg}"
FIELDS = ("op: ", "name: ", "scope: ", "shape: ", "dtype: ", "min ", "mean ", "max ", "nan ", "inf ")


def tooltips(svg_text):
    """{node id (n5, c2): its tooltip text} of every node in an SVG written by dot (not
    the dots where a state's line passes a lane's point: they carry the edge's tooltip)."""
    root = ElementTree.fromstring(svg_text)
    found = {}
    for group in root.iter(SVG + "g"):
        classes = group.get("class", "").split()
        if "node" in classes and "lane" not in classes:
            title = group.find(SVG + "title").text
            links = [a.get(XLINK + "title") for a in group.iter(SVG + "a")]
            found[title] = links[0] if links else None
    return found


def lstm_with_nan_at(t, steps=4):
    tr.manual_seed(0)
    layer = nn.LSTM(3, 2)
    data = np.random.default_rng(0).normal(size=(steps, 1, 3)).astype(np.float32)
    data[t, 0, 1] = np.nan
    return layer, data


# ------------------------------------------------------------ hover

@pytest.mark.parametrize("detail", ["ops", "rolled"])
def test_every_node_of_the_svg_has_a_tooltip_with_its_facts(tmp_path, detail, renderer):
    loss = layer_loss("lstm")
    loss.backward(retain_grads=True)
    svg = viz.render(loss, path=tmp_path / "lstm.svg", detail=detail, grads=True).read_text()
    tips = tooltips(svg)
    assert len(tips) == len(Dot(viz.to_dot(loss, detail=detail)).nodes)
    for node, tip in tips.items():
        assert tip is not None, node
        assert all(field in tip for field in FIELDS), tip
    forget = [tip for tip in tips.values() if "name: f\n" in tip]
    assert forget and all("op: sigmoid" in tip and "gradient norm: " in tip for tip in forget)
    (x,) = [tip for tip in tips.values() if "name: x\n" in tip]
    assert "op: input" in x and "dtype: float32" in x and "gradient norm" not in x


def test_a_tooltip_gives_the_values_of_its_tensor():
    z = tr.Tensor(np.array([[-2.0, 0.0, 3.0, np.inf]]), name="z")
    with tr.scope("gates"):
        s = z.sigmoid().named("s")
    (tip,) = re.findall(r'^\s*n1 \[.*tooltip="([^"]*)"', viz.to_dot(s), re.M)
    assert tip.split("\\n") == ["op: sigmoid", "name: s", "scope: gates", "shape: (1, 4)  dtype: float64",
                                "min 0.119  mean 0.643  max 1", "nan 0  inf 0"]
    (leaf,) = re.findall(r'^\s*n0 \[.*tooltip="([^"]*)"', viz.to_dot(s), re.M)
    assert "min -2  mean 0.333  max 3" in leaf and "nan 0  inf 1" in leaf


def test_cells_view_tooltips_say_what_the_step_passes_on():
    loss = layer_loss("lstm")
    loss.backward(retain_grads=True)
    dot = Dot(viz.to_dot(loss, detail="cells", grads=True))
    first = dot.rows()["lstm l0"][0]
    tip = re.search(r'tooltip="([^"]*)"', dot.nodes[first][1])[1]
    assert tip.startswith("time step lstm/l0/t=0\\n") and "passes on h (1, 2), c (1, 2)" in tip
    assert "gradient norm: " in tip and "nan 0  inf 0" in tip


# ------------------------------------------------------------ where a NaN began

def test_a_nan_in_x_at_t_2_marks_the_input_as_first_nan():
    layer, data = lstm_with_nan_at(2)
    output, _ = layer(tr.Tensor(data, name="x"))
    dot = Dot(viz.to_dot(output.sum()))
    firsts = [k for k, (label, _, _) in dot.nodes.items() if label.endswith("\\nfirst nan")]
    assert [dot.nodes[k][0] for k in firsts] == ["x\\n(4, 1, 3)\\nfirst nan"]
    outlined = {dot.cluster_of(k) for k, (_, attrs, _) in dot.nodes.items() if 'color="#d62728"' in attrs}
    assert "lstm/l0/t=2" in outlined and "lstm/l0/t=3" in outlined
    assert not outlined & {"lstm/l0/t=0", "lstm/l0/t=1"}  # the NaN reached neither
    with tr.detect_anomaly(), pytest.raises(FloatingPointError, match=r"at t=2"):
        layer(tr.Tensor(data, name="x"))


@pytest.mark.parametrize("detail", ["cells", "rolled"])
def test_the_cells_and_rolled_views_mark_where_the_nan_began(detail):
    layer, data = lstm_with_nan_at(2)
    output, _ = layer(tr.Tensor(data, name="x"))
    dot = Dot(viz.to_dot(output.sum(), detail=detail))
    marked = [label.split("\\n")[0] for label, _, _ in dot.nodes.values() if label.endswith("\\nfirst nan")]
    if detail == "cells":  # x is a leaf outside the steps: marked; the cells of t=2, 3 outlined
        outlined = [label.split("\\n")[0] for label, attrs, _ in dot.nodes.values()
                    if 'color="#d62728"' in attrs and 'class="cell"' in attrs]
        assert outlined == ["t=2", "t=3"]
    assert marked == ["x"]


def test_a_nan_made_inside_a_step_is_labelled_at_the_op_that_made_it():
    x = tr.Tensor(np.array([1.0, 2.0]), requires_grad=True, name="x")
    h = x
    for t in range(3):
        with tr.scope(f"t={t}"):
            h = (h - 1.5).log() if t == 1 else h.tanh()  # log of a negative value at t=1
    dot = Dot(viz.to_dot(h))
    (first,) = [label for label, _, _ in dot.nodes.values() if "first nan" in label]
    assert first == "log\\n(2,)\\nfirst nan"
    assert [dot.cluster_of(k) for k, (_, attrs, _) in dot.nodes.items() if 'penwidth="3"' in attrs] == ["t=1", "t=2"]


def test_inf_is_labelled_first_inf():
    x = tr.Tensor(np.array([0.0, 1.0]), requires_grad=True, name="x")
    y = (x.log() * 2).named("y")
    assert "log\\n(2,)\\nfirst inf" in viz.to_dot(y)


# ------------------------------------------------------------ no picture that hangs

def test_the_100_step_op_level_lstm_is_refused_at_once_with_the_advice(tmp_path, renderer):
    loss = layer_loss("lstm", steps=100, hidden=4)
    start = time.perf_counter()
    with pytest.raises(ValueError, match=r"about \d+ s to lay out; use detail='cells' .* detail='rolled'"):
        viz.render(loss, path=tmp_path / "big.svg")
    assert time.perf_counter() - start < 10
    assert not (tmp_path / "big.svg").exists()
    assert viz.to_dot(loss).startswith("digraph")  # text alone is fine: no layout
    viz.render(loss, path=tmp_path / "rolled.svg", detail="rolled")
    viz.render(loss, path=tmp_path / "cells.svg", detail="cells")


def test_draw_refuses_what_jupyter_could_not_lay_out():
    pytest.importorskip("graphviz")
    loss = layer_loss("lstm", steps=100, hidden=4)
    with pytest.raises(ValueError, match=r"draw: the graph has \d+ nodes and \d+ edges"):
        viz.draw(loss)
    assert viz.draw(loss, detail="rolled").source.startswith("digraph")


def test_layout_estimate_errs_long_on_the_measurements():
    # measured here (seconds): ops LSTM 20 / 25 / 40 steps 1.9 / 18 / 33, RNN 60 steps 40,
    # 2-layer GRU 15 steps 40, RNN 100 steps over 120; cells LSTM 200 / 400 steps 2.0 / 50
    assert 1.9 < viz.layout_seconds(251, 405, 20) < viz.LAYOUT_LIMIT
    assert 18 < viz.layout_seconds(311, 505, 25) < viz.LAYOUT_LIMIT
    for nodes, edges, steps in [(491, 805, 40), (250, 485, 60), (406, 698, 30), (410, 805, 100)]:
        assert viz.layout_seconds(nodes, edges, steps) > viz.LAYOUT_LIMIT
    assert 2 < viz.layout_seconds(211, 1205, detail="cells") < viz.LAYOUT_LIMIT
    assert viz.layout_seconds(411, 2405, detail="cells") > viz.LAYOUT_LIMIT
    assert viz.layout_seconds(23, 27, 1, "rolled") < 0.01


def test_render_stops_dot_after_the_timeout(tmp_path, monkeypatch):
    fake = tmp_path / "bin" / "dot"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\nexec sleep 30\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(fake.parent) + os.pathsep + os.environ.get("PATH", ""))
    loss, _, _ = tanh_rnn(2)
    start = time.perf_counter()
    with pytest.raises(TimeoutError, match=r"after 0.5 s and was stopped; use detail='cells'"):
        viz.render(loss, path=tmp_path / "graph.svg", timeout=0.5)
    assert time.perf_counter() - start < 10


def test_cells_view_wraps_long_sequences_into_rows_and_prints_norms():
    loss, _, _ = tanh_rnn(60, hidden=2, inputs=1)
    loss.backward(retain_grads=True)
    dot = Dot(viz.to_dot(loss, detail="cells", grads=True))
    rows = dot.row_list()
    assert [len(row) for row in rows] == [20, 20, 20]  # at most 25 a row, as even as can be
    assert [dot.nodes[row[0]][0].split("\\n")[0] for row in rows] == ["t=0", "t=20", "t=40"]
    labels = [dot.nodes[c][0] for row in rows for c in row]
    assert all(re.fullmatch(r"t=\d+\\n\(1, 2\)\\n\|g\| \S+", label) for label in labels)


def test_grads_without_retained_gradients_warn_what_to_do():
    loss, _, _ = tanh_rnn(3)
    loss.backward()
    with pytest.warns(UserWarning, match=r"backward\(retain_grads=True\)"):
        viz.to_dot(loss, grads=True)
    with pytest.warns(UserWarning, match=r"retain_grads=True"):
        viz.to_text(loss, grads=True)


@pytest.mark.parametrize("timeout", [0, -1, "60", True])
def test_bad_timeouts_are_named(tmp_path, timeout):
    loss, _, _ = tanh_rnn(2)
    with pytest.raises(ValueError, match="timeout must be a positive number"):
        viz.render(loss, path=tmp_path / "graph.svg", timeout=timeout)
