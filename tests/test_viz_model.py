"""viz.model: the picture built once, and the DOT text and the explorer's data only writing it out."""
import re

import pytest

from tinygrad_rnn import viz
from tinygrad_rnn.viz import model as picture_model
from tinygrad_rnn.viz.dot import write
from tinygrad_rnn.viz.explore_data import run_data
from tinygrad_rnn.viz.graph import Graph
from tinygrad_rnn.viz.model import Model, picture_shades

from explore_helpers import needs_graphviz, page_data, recorded


@pytest.fixture(scope="module")
def lstm():
    return recorded("lstm", steps=4)


def statement(lines, key):
    """The DOT statement of node ``key``."""
    (found,) = [line for line in lines if line.strip().startswith(f"{key} [")]
    return found


def attribute(text, name):
    return re.search(rf'\b{name}="((?:[^"\\]|\\.)*)"', text).group(1)


def test_the_dot_text_writes_the_models_words_and_colours(lstm):
    loss, _, _ = lstm
    graph = Graph([loss], "ops")
    model = Model(graph, picture_shades(graph))
    node = next(node for node in model.nodes.values() if node.kind == "op")
    node.label, node.tooltip, node.fill = ["said", "by the model"], "a tooltip of the model", "#123456"
    box = next(box for box in model.boxes.values() if box.is_step)
    box.label, box.fill = "a box of the model", "#654321"
    edge = model.edges[0]
    edge.tooltip = "an edge of the model"
    lines = write(model, "scope")
    written = statement(lines, node.key)
    assert attribute(written, "label") == "said\\nby the model"
    assert attribute(written, "tooltip") == "a tooltip of the model"
    assert attribute(written, "fillcolor") == "#123456"
    assert any('label="a box of the model"' in line and 'fillcolor="#65432140"' in line for line in lines)
    assert any(line.strip().startswith(f"{edge.source.key} -> ") and 'tooltip="an edge of the model"' in line
               for line in lines)


def test_the_page_data_writes_the_models_facts(lstm):
    loss, rec, _ = lstm
    model = Model(Graph([loss], "ops"))
    node = next(node for node in model.nodes.values() if node.kind == "op")
    node.tooltip, node.fill, node.font, node.norm, node.times = "told by the model", "#123456", "#abcdef", 7.0, [9]
    node.first, node.nonfinite = True, 5
    box = next(box for box in model.boxes.values() if box.is_step)
    box.times = [41, 42]
    source = "digraph tinygrad_rnn {\n" + "".join(f"\t{line}\n" for line in write(model, "scope")) + "}\n"
    data = run_data("run", model, rec, source, 0, None, (4, 4))
    shown = data["nodes"][node.key]
    assert (shown["tooltip"], shown["fill"], shown["font"], shown["norm"], shown["times"]) == (
        "told by the model", "#123456", "#abcdef", 7.0, [9])
    assert shown["first"] is True and shown["nonfinite"] == 5
    assert [41, 42] in data["boxes"].values()


@pytest.mark.parametrize("detail", ["ops", "cells", "rolled"])
def test_a_plain_model_has_the_shaded_pictures_colours_and_words_but_the_norm_line(lstm, detail):
    loss, _, _ = lstm
    graph = Graph([loss], detail)
    plain, shaded = Model(graph), Model(graph, picture_shades(graph))
    assert not plain.shaded and shaded.shaded
    for key, node in plain.nodes.items():
        other = shaded.nodes[key]
        assert (node.fill, node.font, node.tooltip) == (other.fill, other.font, other.tooltip)
        extra = other.label[len(node.label):]
        assert other.label[:len(node.label)] == node.label
        assert extra == ([f"|g| {node.norm:.3g}"] if node.kind == "cell" else [])


def test_a_rolled_step_box_stands_for_every_run_of_its_step(lstm):
    loss, _, _ = lstm
    model = Model(Graph([loss], "rolled"))
    (box,) = [box for box in model.boxes.values() if box.is_step]
    assert box.label == "t=0 ... 3: one step, ran 4 times" and box.times == [0, 1, 2, 3]
    assert {tuple(node.times) for node in model.nodes.values() if node.step == box.path} == {(0, 1, 2, 3)}


@needs_graphviz
def test_explore_builds_one_model_per_run_for_its_picture_and_its_data(lstm, monkeypatch):
    built = []
    original = picture_model.Model.__init__

    def counted(self, graph, shades=None):
        built.append(graph)
        original(self, graph, shades)

    monkeypatch.setattr(picture_model.Model, "__init__", counted)
    loss, rec, _ = lstm
    other = recorded("rnn", steps=3)
    data = page_data(viz.explore({"lstm": (loss, rec), "rnn": other[:2]}).html())
    assert len(data["snapshots"][0]["runs"]) == 2 and len(built) == 2
