"""viz: the DOT text of unrolled graphs, the text listing, and rendering to files."""
import re
import shutil
import subprocess

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinygrad_rnn as tr
from tinygrad_rnn import nn, viz

HAS_DOT = shutil.which("dot") is not None
needs_dot = pytest.mark.skipif(not HAS_DOT, reason="Graphviz's dot is not installed")


def tanh_rnn(steps, hidden=3, inputs=2, scale=0.5, seed=0):
    """h(t) = tanh(A x(t) + C h(t-1) + b) written out with Tensor ops, one scope per step;
    loss = 0.5 * sum(h(T-1) ** 2). Returns (loss, hidden states, parameters)."""
    rng = np.random.default_rng(seed)
    weight_ih = nn.Parameter(rng.uniform(-scale, scale, (hidden, inputs)), name="weight_ih")
    weight_hh = nn.Parameter(rng.uniform(-scale, scale, (hidden, hidden)), name="weight_hh")
    bias = nn.Parameter(np.zeros(hidden), name="bias")
    xs = tr.Tensor(rng.normal(size=(steps, 1, inputs)), name="x")
    h = tr.Tensor(np.zeros((1, hidden)), name="h0")
    states = []
    for t in range(steps):
        with tr.scope(f"t={t}"):
            h = (xs[t] @ weight_ih.T + h @ weight_hh.T + bias).tanh()
        states.append(h)
    loss = (h ** 2).sum() * 0.5
    loss.name = "loss"
    return loss, states, (weight_ih, weight_hh, bias)


def lstm(steps, hidden=2, seed=0):
    tr.manual_seed(seed)
    layer = nn.LSTM(3, hidden)
    x = tr.Tensor(np.random.default_rng(seed).normal(size=(steps, 1, 3)).astype(np.float32))
    output, _ = layer(x)
    return output[-1].sum()


# ------------------------------------------------------------ reading DOT text

class Dot:
    """The nodes, edges and clusters of DOT text written by viz (one statement a line).

    A cluster without a label (the borderless boxes that hold a state's lane
    above the rest of a step) adds nothing to its nodes' cluster path. An edge
    drawn in pieces through a lane's points is one edge in ``edges`` (with
    its last piece's attributes); ``pieces`` holds the statements as written."""

    def __init__(self, text):
        self.text = text
        self.nodes = {}      # id -> (label, attribute text, cluster path)
        self.edges = []      # (source id, target id, attribute text)
        self.clusters = []   # (path, attribute text), in order
        self.points = {}     # id -> (attribute text, cluster path) of a lane's point
        path = []
        for line in text.splitlines()[1:-1]:
            line = line.strip()
            if re.fullmatch(r"subgraph cluster_\d+ \{", line):
                path.append("?")
            elif line == "}":
                path.pop()
            elif m := re.fullmatch(r'graph \[label="((?:[^"\\]|\\.)*)"(.*)\];', line):
                path[-1] = m[1]
                if m[1]:
                    self.clusters.append(("/".join(p for p in path if p), m[2]))
            elif m := re.fullmatch(r"(\w+) -> (\w+)(?: \[(.*)\])?;", line):
                self.edges.append((m[1], m[2], m[3] or ""))
            elif m := re.fullmatch(r'(\w+) \[label="((?:[^"\\]|\\.)*)"(.*)\];', line):
                self.nodes[m[1]] = (m[2], m[3], "/".join(p for p in path if p))
            elif m := re.fullmatch(r'(\w+) \[(shape="point".*)\];', line):
                self.points[m[1]] = (m[2], "/".join(p for p in path if p))
        self.pieces, self.edges = self.edges, self._joined(self.edges)

    def _joined(self, pieces):
        onward = {a: (b, attrs) for a, b, attrs in pieces
                  if a in self.points and 'style="invis"' not in attrs}
        joined = []
        for a, b, attrs in pieces:
            if a in self.points or (b in self.points and 'style="invis"' in attrs):
                continue
            while b in self.points:
                b, attrs = onward[b]
            joined.append((a, b, attrs))
        return joined

    def ids(self, head):
        """Ids of the nodes whose label's first line is ``head``."""
        return [k for k, (label, _, _) in self.nodes.items() if label.split("\\n")[0] == head]

    def cluster_of(self, node):
        return self.nodes[node][2]

    def row_list(self):
        """The cells view's rows, top to bottom, each a list of cell ids left to right."""
        return [keys.split("; ") for keys in re.findall(r'\{rank="same"; (.*);\}', self.text)]

    def rows(self):
        """The cells view's sequences: {header (the first cell's xlabel) or "": [cell ids]};
        a row without a header continues the sequence above it."""
        rows, header = {}, ""
        for keys in self.row_list():
            match = re.search(r'xlabel=<<font [^>]*>([^<]*)</font>>', self.nodes[keys[0]][1])
            header = match[1] if match else header
            rows.setdefault(header, []).extend(keys)
        return rows

    def recurrent(self):
        return [(a, b) for a, b, attrs in self.edges if 'penwidth="3"' in attrs]

    def attribute(self, attrs, key):
        return re.search(rf'{key}="([^"]*)"', attrs)[1]


def luminance(colour):
    r, g, b = (int(colour[i:i + 2], 16) / 255 for i in (1, 3, 5))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


# ------------------------------------------------------------------ structure

def test_one_cluster_per_time_step_in_time_order():
    loss, _, _ = tanh_rnn(3)
    dot = Dot(viz.to_dot(loss))
    assert [path for path, _ in dot.clusters] == ["t=0", "t=1", "t=2"]
    tanhs = dot.ids("tanh")
    assert [dot.cluster_of(n) for n in tanhs] == ["t=0", "t=1", "t=2"]
    assert dot.cluster_of(dot.ids("loss = · * 0.5")[0]) == ""
    assert 'rankdir="LR"' in dot.text


def test_each_parameter_once_outside_the_clusters_with_an_edge_into_every_step():
    loss, _, _ = tanh_rnn(3)
    dot = Dot(viz.to_dot(loss))
    for name in ("weight_ih", "weight_hh", "bias"):
        (node,) = dot.ids(name)
        assert dot.cluster_of(node) == ""
        targets = [dot.cluster_of(b) for a, b, _ in dot.edges if a == node]
        assert targets == ["t=0", "t=1", "t=2"]


def test_recurrent_edges_join_consecutive_steps_and_stand_out():
    loss, _, _ = tanh_rnn(3)
    dot = Dot(viz.to_dot(loss))
    steps = [(dot.cluster_of(a), dot.cluster_of(b)) for a, b in dot.recurrent()]
    assert steps == [("t=0", "t=1"), ("t=1", "t=2")]
    tanhs = dot.ids("tanh")
    assert [a for a, _ in dot.recurrent()] == tanhs[:2]
    plain = [attrs for a, b, attrs in dot.edges if (a, b) not in dot.recurrent()]
    assert all("#d62728" not in attrs for attrs in plain)


def test_lstm_layer_carries_h_and_c_from_step_to_step():
    dot = Dot(viz.to_dot(lstm(3)))
    steps = [path for path, _ in dot.clusters if path.endswith(tuple(f"t={t}" for t in range(3)))]
    assert steps == ["lstm/l0/t=0", "lstm/l0/t=1", "lstm/l0/t=2"]
    for name in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"):
        assert len(dot.ids(name)) == 1
    # weight_hh multiplies h once per step; weight_ih once, for all steps together
    (weight_hh,) = dot.ids("weight_hh_l0")
    assert [dot.cluster_of(b) for a, b, _ in dot.edges if a == weight_hh] == steps
    (weight_ih,) = dot.ids("weight_ih_l0")
    assert [dot.cluster_of(b) for a, b, _ in dot.edges if a == weight_ih] == ["lstm/l0"]
    crossings = {}
    for a, b in dot.recurrent():
        crossings.setdefault((dot.cluster_of(a), dot.cluster_of(b)), []).append(dot.nodes[a][0])
    # h = o * tanh(c) is a mul, c = f * c + i * c~ an add
    assert {k: sorted(v) for k, v in crossings.items()} == {
        (steps[0], steps[1]): ["c = add\\n(1, 2)", "h = mul\\n(1, 2)"],
        (steps[1], steps[2]): ["c = add\\n(1, 2)", "h = mul\\n(1, 2)"]}


def test_scalar_constants_are_folded_into_their_consumer():
    z = tr.Tensor(np.ones((2, 3)), requires_grad=True, name="z")
    dot = Dot(viz.to_dot((1 - z.sigmoid()) ** 2))
    assert dot.ids("1 - ·") and dot.ids("· ** 2")
    assert len(dot.nodes) == 4  # z, sigmoid, 1 - ·, · ** 2: no node for the constants


def test_group_none_draws_no_clusters():
    loss, _, _ = tanh_rnn(3)
    text = viz.to_dot(loss, group=None)
    assert "subgraph cluster" not in text
    assert len(Dot(text).recurrent()) == 2


def test_same_graph_gives_identical_text():
    assert viz.to_dot(tanh_rnn(3)[0], grads=False) == viz.to_dot(tanh_rnn(3)[0])
    assert viz.to_dot(lstm(3), detail="cells") == viz.to_dot(lstm(3), detail="cells")


def test_draw_wraps_the_same_text_in_a_digraph():
    graphviz = pytest.importorskip("graphviz")
    loss, _, _ = tanh_rnn(2)
    digraph = viz.draw(loss)
    assert isinstance(digraph, graphviz.Digraph)
    assert digraph.source == viz.to_dot(loss)


# ------------------------------------------------------------------ the listing

GOLDEN_TEXT = """\
%0 = input  (2, 1, 2)  'x'
%1 = parameter  (3, 2)  'weight_ih'
%2 = parameter  (3, 3)  'weight_hh'
%3 = input  (1, 3)  'h0'
%4 = parameter  (3,)  'bias'
t=0
  %5 = getitem(%0)  (1, 2)
  %6 = transpose(%1)  (2, 3)
  %7 = matmul(%5, %6)  (1, 3)
  %8 = transpose(%2)  (3, 3)
  %9 = matmul(%3, %8)  (1, 3)
  %10 = add(%7, %9)  (1, 3)
  %11 = add(%10, %4)  (1, 3)
  %12 = tanh(%11)  (1, 3)
t=1
  %13 = transpose(%2)  (3, 3)
  %14 = matmul(%12, %13)  (1, 3)
  %15 = getitem(%0)  (1, 2)
  %16 = transpose(%1)  (2, 3)
  %17 = matmul(%15, %16)  (1, 3)
  %18 = add(%17, %14)  (1, 3)
  %19 = add(%18, %4)  (1, 3)
  %20 = tanh(%19)  (1, 3)
%21 = pow(%20, 2)  (1, 3)
%22 = sum(%21)  ()
%23 = mul(%22, 0.5)  ()  'loss'
"""


def test_to_text_of_a_two_step_rnn():
    loss, _, _ = tanh_rnn(2)
    assert viz.to_text(loss) == GOLDEN_TEXT


def test_to_text_of_a_layer_nests_ops_under_layer_direction_and_step():
    lines = viz.to_text(lstm(2)).splitlines()
    assert lines[3:7] == ["%3 = input  (1, 2)  'h0'  in lstm", "%4 = parameter  (8, 2)  'weight_hh_l0'",
                          "%5 = parameter  (8,)  'bias_hh_l0'", "%6 = input  (1, 2)  'c0'  in lstm"]
    headers = [line for line in lines if not line.lstrip().startswith("%")]
    assert headers == ["lstm", "  l0", "    t=0", "    t=1"]
    assert lines[-1] == f"%{len(lines) - len(headers) - 1} = sum(%{len(lines) - len(headers) - 2})  ()"


def test_to_text_and_to_dot_walk_deep_graphs_without_recursion():
    x = tr.Tensor(np.ones(2), requires_grad=True)
    y = x
    for _ in range(20_000):
        y = y.tanh()
    assert viz.to_text(y).count("tanh(") == 20_000
    assert viz.to_dot(y, max_nodes=None).count('label="tanh') == 20_000


# ------------------------------------------------------------------ cells view

def test_cells_view_one_node_per_step_in_a_row():
    loss, _, _ = tanh_rnn(4)
    dot = Dot(viz.to_dot(loss, detail="cells"))
    cells = dot.ids("t=0") + dot.ids("t=1") + dot.ids("t=2") + dot.ids("t=3")
    assert len(cells) == 4 and all(dot.nodes[c][0].endswith("\\n(1, 3)") for c in cells)
    assert dot.recurrent() == list(zip(cells, cells[1:]))
    assert dot.rows() == {"": cells}  # steps at the top level: a row without a header
    (weight_hh,) = dot.ids("weight_hh")
    assert [b for a, b, _ in dot.edges if a == weight_hh] == cells


def test_cells_view_of_an_lstm_shows_h_and_c():
    dot = Dot(viz.to_dot(lstm(3), detail="cells"))
    cells = dot.rows()["lstm l0"]
    # steps 0 and 1 pass on h and c; the last one only h, to the output
    labels = [dot.nodes[c][0] for c in cells]
    assert labels == ["t=0\\n(1, 2), (1, 2)", "t=1\\n(1, 2), (1, 2)", "t=2\\n(1, 2)"]
    assert dot.recurrent() == [(cells[0], cells[1])] * 2 + [(cells[1], cells[2])] * 2
    assert len(dot.ids("weight_hh_l0")) == 1


def test_reverse_direction_row_reads_left_to_right():
    tr.manual_seed(0)
    layer = nn.GRU(2, 2, bidirectional=True)
    output, _ = layer(tr.Tensor(np.ones((3, 1, 2), dtype=np.float32)))
    dot = Dot(viz.to_dot(output.sum(), detail="cells"))
    rows = dot.rows()
    assert list(rows) == ["gru l0", "gru l0_reverse"]
    forward, reverse = rows.values()
    for row in rows.values():
        assert [dot.nodes[c][0].split("\\n")[0] for c in row] == ["t=0", "t=1", "t=2"]
    assert dot.recurrent()[:2] == [(forward[0], forward[1]), (forward[1], forward[2])]
    backward = [(a, b) for a, b, attrs in dot.edges if 'dir="back"' in attrs]
    assert backward == [(reverse[1], reverse[2]), (reverse[0], reverse[1])]


def test_separate_graphs_drawn_together_are_stacked_and_share_one_scale():
    with tr.scope("first"):
        first, _, _ = tanh_rnn(3, seed=0)
    with tr.scope("second"):
        second, _, _ = tanh_rnn(3, seed=1)
    first.backward(retain_grads=True)
    second.backward(retain_grads=True)
    dot = Dot(viz.to_dot(first, second, detail="cells", grads=True))
    assert dot.text.count("gradient norm, log scale") == 1
    assert list(dot.rows()) == ["first", "second"]
    first_loss, _ = dot.ids("loss = · * 0.5")
    starts = [dot.ids(name)[1] for name in ("x", "weight_ih", "weight_hh", "h0", "bias")]
    invisible = [(a, b) for a, b, attrs in dot.edges if attrs == 'style="invis"']
    assert [(first_loss, start) for start in starts] == invisible[-5:]


def test_ten_thousand_steps_in_cells_view_render_to_dot(tmp_path):
    loss, _, _ = tanh_rnn(10_000, hidden=1, inputs=1)
    path = viz.render(loss, path=tmp_path / "long.dot", detail="cells", max_nodes=20_000)
    dot = Dot(path.read_text())
    assert [dot.nodes[c][0] for c in dot.ids("t=9999")] == ["t=9999\\n(1, 1)"]
    assert sum(node.startswith("c") for node in dot.nodes) == 10_000
    assert len(dot.recurrent()) == 9_999


# ------------------------------------------------------------------ gradients

def test_grads_shade_the_fading_gradient_of_a_tanh_rnn():
    loss, states, params = tanh_rnn(6)
    loss.backward(retain_grads=True)
    dot = Dot(viz.to_dot(loss, grads=True))
    assert "gradient norm, log scale" in dot.text
    fills = [dot.attribute(attrs, "color") for _, attrs in dot.clusters]
    assert len(set(fills)) == 6
    norms = [np.linalg.norm(h.grad) for h in states]
    assert all(a < b for a, b in zip(norms, norms[1:]))  # the gradient vanishes going back
    lightness = [luminance(c) for c in fills]
    assert all(a < b for a, b in zip(lightness, lightness[1:]))
    legend = re.search(r"graph \[label=<<table.*\];", dot.text)[0]
    low = float(re.search(r'align="left">([^<]*)<', legend)[1])
    high = float(re.search(r'align="right">([^<]*)<', legend)[1])
    assert low <= min(norms) * 1.01 and high >= max(np.linalg.norm(p.grad) for p in params) * 0.99
    (x,) = dot.ids("x")
    assert dot.attribute(dot.nodes[x][1], "fillcolor") == "#eeeeee"  # no gradient


def test_grads_in_cells_view_shade_each_step_by_its_output_state():
    loss, states, _ = tanh_rnn(5)
    loss.backward(retain_grads=True)
    dot = Dot(viz.to_dot(loss, detail="cells", grads=True))
    fills = [dot.attribute(dot.nodes[dot.ids(f"t={t}")[0]][1], "fillcolor") for t in range(5)]
    lightness = [luminance(c) for c in fills]
    assert all(a < b for a, b in zip(lightness, lightness[1:]))


def test_nonfinite_gradients_are_red_and_named_in_the_legend():
    x = tr.Tensor(np.ones(3), requires_grad=True, name="x")
    y = x.exp()
    y.name = "y"
    y.grad = np.array([1.0, np.nan, 0.0])
    x.grad = np.ones(3)
    dot = Dot(viz.to_dot(y, grads=True))
    assert dot.attribute(dot.nodes[dot.ids("y = exp")[0]][1], "fillcolor") == "#ff2d2d"
    assert "nan or inf" in dot.text


# ------------------------------------------------------------------ escaping

HOSTILE = 'w<"\\{}|>\n[];'


def test_hostile_names_are_escaped():
    w = nn.Parameter(np.ones((2, 2)), name=HOSTILE)
    with tr.scope('t=0 "quoted" {x}|<y>'):
        y = (w @ w).sum()
    with tr.scope("<html>"):
        z = y * 2
    text = viz.to_dot(z)
    assert 'label="w<\\"\\\\{}|>\\n[];\\n(2, 2)"' in text
    assert 'label="t=0 \\"quoted\\" {x}|<y>"' in text
    assert 'label="<html>"' in text  # quoted: not read as an HTML-like label


def test_hostile_names_render(tmp_path, renderer):
    w = nn.Parameter(np.ones((2, 2)), name=HOSTILE)
    with tr.scope('t=0 "quoted" {x}|<y>\\N'):
        y = (w @ w).sum()
    svg = viz.render(y, path=tmp_path / "hostile.svg").read_text()
    assert "w&lt;&quot;\\{}|&gt;" in svg and "[];" in svg
    assert "t=0 &quot;quoted&quot; {x}|&lt;y&gt;\\N" in svg


@pytest.mark.parametrize("detail", ["cells", "rolled"])
def test_hostile_scope_names_render_in_the_cells_and_rolled_views(tmp_path, detail, renderer):
    with tr.scope('<b>&"x"'):
        loss, _, _ = tanh_rnn(3)
    svg = viz.render(loss, path=tmp_path / "hostile.svg", detail=detail).read_text()
    assert "&lt;b&gt;&amp;" in svg


@needs_dot
@given(name=st.text(st.characters(exclude_categories=("Cs",)), max_size=12),
       scope=st.text(st.characters(exclude_categories=("Cs",), exclude_characters="/"), min_size=1,
                     max_size=12))
def test_any_name_and_scope_give_dot_text_that_graphviz_reads(name, scope):
    with tr.scope(scope):
        y = nn.Parameter(np.ones(2), name=name).tanh()
    y.name = name
    finished = subprocess.run(["dot", "-Tsvg"], input=viz.to_dot(y).encode("utf-8"),
                              capture_output=True, check=False)
    assert finished.returncode == 0 and finished.stderr == b""


# ------------------------------------------------------------------ rendering

MAGIC = {"svg": b"<?xml", "png": b"\x89PNG", "pdf": b"%PDF", "dot": b"digraph"}


@pytest.mark.parametrize("fmt", ["png", "pdf", "dot"])
def test_render_each_format(tmp_path, fmt):
    if fmt != "dot" and not HAS_DOT:
        pytest.skip("Graphviz's dot is not installed")
    loss, _, _ = tanh_rnn(2)
    path = tmp_path / f"graph.{fmt}"
    assert viz.render(loss, path=path) == path
    assert path.read_bytes().startswith(MAGIC[fmt])


def test_render_svg_with_each_renderer(tmp_path, renderer):
    loss, _, _ = tanh_rnn(2)
    path = tmp_path / "graph.svg"
    assert viz.render(loss, path=path) == path
    assert path.read_bytes().startswith(MAGIC["svg"])


INSTALL_HINTS = ("sudo apt-get install graphviz", "brew install graphviz", "winget install graphviz",
                 "choco install graphviz", "conda install -c conda-forge graphviz", "viz.to_text", ".dot")


@pytest.mark.parametrize("fmt", ["png", "pdf"])
def test_without_dot_png_and_pdf_fail_clearly_but_svg_and_dot_text_work(tmp_path, no_dot, fmt):
    loss, _, _ = tanh_rnn(2)
    with pytest.raises(viz.GraphvizNotFound) as error:
        viz.render(loss, path=tmp_path / f"graph.{fmt}")
    message = str(error.value)
    assert message.startswith(f"render: Graphviz's `dot` executable was not found on PATH; it is needed "
                              f"to render {fmt.upper()} images. SVG works without it")
    for hint in INSTALL_HINTS:
        assert hint in message
    assert isinstance(error.value, RuntimeError)
    assert not (tmp_path / f"graph.{fmt}").exists()
    assert viz.render(loss, path=tmp_path / "graph.dot").read_text().startswith("digraph")


def test_too_many_nodes_is_refused_with_advice():
    loss, _, _ = tanh_rnn(3)
    count = len(Dot(viz.to_dot(loss)).nodes)
    with pytest.raises(ValueError, match=rf"{count} nodes .*max_nodes=10; use detail='cells'"):
        viz.to_dot(loss, max_nodes=10)
    assert viz.to_dot(loss, max_nodes=count)


@pytest.mark.parametrize("call, error, message", [
    (lambda y: viz.to_dot(y, group="layer"), ValueError, "group must be 'scope' or None"),
    (lambda y: viz.to_dot(y, detail="steps"), ValueError, "detail must be 'ops', 'cells' or 'rolled'"),
    (lambda y: viz.to_dot(y, grads="yes"), TypeError, "grads must be True or False"),
    (lambda y: viz.to_dot(y, max_nodes=0), ValueError, "max_nodes must be a positive int"),
    (lambda y: viz.to_dot(y, 3.0), TypeError, "roots must be Tensors .* got float"),
    (lambda y: viz.to_dot(), ValueError, "at least one Tensor"),
    (lambda y: viz.to_text([]), ValueError, "to_text: needs at least one Tensor"),
    (lambda y: viz.render(y, "graph.svg"), TypeError, "path=..."),
    (lambda y: viz.render(y, path="graph.jpg"), ValueError, "'graph.jpg' .* .svg, .png, .pdf, .dot"),
    (lambda y: viz.render(y, path="no/such/folder/graph.dot"), FileNotFoundError, "'no/such/folder'"),
])
def test_bad_arguments_are_named(call, error, message):
    y = tr.Tensor(np.ones(2), requires_grad=True).tanh()
    with pytest.raises(error, match=message):
        call(y)
