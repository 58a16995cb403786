"""viz.plot_state_grads, plot_weight_grads and plot_gates: drawn (Agg) from a bptt.record."""
import sys

import numpy as np
import pytest

import tinygrad_rnn as tr
from tinygrad_rnn import bptt, nn, viz

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402


def recorded(layer_kind, steps=8, batch=3, seed=0):
    tr.manual_seed(seed)
    layer = getattr(nn, layer_kind)(2, 4).to(np.float64)
    x = tr.Tensor(np.random.default_rng(seed).normal(size=(steps, batch, 2)))
    with bptt.record() as rec:
        output, _ = layer(x)
        output[-1].sum().backward()
    return layer, rec


def test_state_grads_draws_the_norm_at_each_step_on_a_log_scale(tmp_path):
    rnn, rnn_rec = recorded("RNN")
    lstm, lstm_rec = recorded("LSTM")
    fig = viz.plot_state_grads(rnn_rec, label="tanh RNN")
    viz.plot_state_grads(lstm_rec, names=("h", "c"), ax=fig.axes[0], label="LSTM")
    (ax,) = fig.axes
    assert ax.get_yscale() == "log"
    assert [line.get_label() for line in ax.lines] == ["tanh RNN", "LSTM: h", "LSTM: c"]
    np.testing.assert_array_equal(ax.lines[0].get_xdata(), range(8))
    np.testing.assert_array_equal(ax.lines[0].get_ydata(), rnn_rec.grad_norms("h"))
    np.testing.assert_array_equal(ax.lines[2].get_ydata(), lstm_rec.grad_norms("c"))
    fig.savefig(tmp_path / "state.png")
    assert (tmp_path / "state.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_weight_grads_draws_each_steps_share_and_leaves_out_a_zero_share(tmp_path):
    lstm, rec = recorded("LSTM")
    fig = viz.plot_weight_grads(rec, lstm.weight_hh_l0)
    (ax,) = fig.axes
    shares = rec.weight_grad_by_step(lstm.weight_hh_l0)
    norms = np.linalg.norm(shares.reshape(8, -1), axis=1)
    y = ax.lines[0].get_ydata()
    assert np.isnan(y[0]) and norms[0] == 0   # h(-1) = 0: the first step adds nothing to dL/dW_hh
    np.testing.assert_array_equal(y[1:], norms[1:])
    assert ax.get_yscale() == "log" and "weight_hh_l0" in ax.get_title()
    fig.savefig(tmp_path / "weights.png")


def test_gates_draws_units_by_time_of_one_sequence_and_the_saturation_below(tmp_path):
    lstm, rec = recorded("LSTM")
    fig = viz.plot_gates(rec, "f", low=0.4, high=0.6, sample=1)
    heatmap, saturation = fig.axes[:2]
    np.testing.assert_array_equal(heatmap.images[0].get_array(), rec.values("f")[:, 1].T)
    assert heatmap.images[0].get_clim() == (0, 1)
    np.testing.assert_array_equal(saturation.lines[0].get_ydata(), rec.saturation("f", 0.4, 0.6))
    assert saturation.get_title() == "f outside [0.4, 0.6], whole batch"
    assert heatmap.get_title() == "f, sequence 1 of the batch"
    fig.savefig(tmp_path / "gates.png")
    with pytest.raises(ValueError, match=r"sample must be in 0..2 \(the batch has 3\), got 3"):
        viz.plot_gates(rec, "f", sample=3)


def test_gates_draw_into_a_figure_of_ones_own():
    _, before = recorded("LSTM", seed=1)
    _, after = recorded("LSTM", seed=2)
    fig = Figure()
    left, right = fig.subfigures(1, 2)
    assert viz.plot_gates(before, "i", fig=left) is left
    viz.plot_gates(after, "i", fig=right)
    assert len(fig.axes) == 6   # a heatmap, a saturation line and a colour bar each


def overlap(a, b):
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


@pytest.mark.parametrize("layout", [None, "constrained"])
def test_gates_in_a_grid_of_subfigures_keep_every_title_in_its_own_panel_and_clear_of_the_others(layout):
    """A 2 x 3 grid, RNN/LSTM/GRU before and after training, as a user lays it out: every
    title, axis label and heading stays inside its own SubFigure and overlaps no other,
    and the plots still fill most of their panel."""
    fig = Figure(figsize=(11, 6.5), layout=layout)
    panels, headings = fig.subfigures(2, 3), []
    for row, when in enumerate(("before", "after")):
        for column, (kind, gate) in enumerate([("RNN", "h"), ("LSTM", "f"), ("GRU", "z")]):
            _, rec = recorded(kind, steps=12, seed=row)
            viz.plot_gates(rec, gate, fig=panels[row, column])
            headings.append(panels[row, column].suptitle(f"{kind}, {when} training"))
    renderer = FigureCanvasAgg(fig).get_renderer()
    fig.canvas.draw()
    placed = []
    for panel, heading in zip(panels.flat, headings):
        texts = [heading] + [text for ax in panel.axes for text in
                             (ax.title, ax.xaxis.label, ax.yaxis.label) if text.get_text()]
        for text in texts:
            box = text.get_window_extent(renderer)
            inside = panel.bbox.x0 <= box.x0 and box.x1 <= panel.bbox.x1 and panel.bbox.y0 <= box.y0
            assert inside and box.y1 <= panel.bbox.y1, f"{text.get_text()!r} leaves its panel"
            placed.append((text.get_text(), box))
        heatmap, saturation = panel.axes[:2]
        assert not overlap(saturation.title.get_window_extent(renderer), heatmap.bbox)
        assert heatmap.bbox.height + saturation.bbox.height > 0.5 * panel.bbox.height  # room kept, not eaten
    for k, (text, box) in enumerate(placed):
        for other, other_box in placed[k + 1:]:
            assert not overlap(box, other_box), f"{text!r} overlaps {other!r}"


def test_a_missing_matplotlib_is_named_with_how_to_install_it(monkeypatch):
    _, rec = recorded("RNN", steps=2)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(ImportError, match=r"need matplotlib.*pip install 'tinygrad_rnn\[demo\]'"):
        viz.plot_state_grads(rec)
