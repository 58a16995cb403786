"""viz.plot_state_grads, plot_weight_grads and plot_gates: drawn (Agg) from a bptt.record."""
import sys

import numpy as np
import pytest

import tinygrad_rnn as tr
from tinygrad_rnn import bptt, nn, viz

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
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
    assert "below 0.4 or above 0.6" in saturation.get_title()
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


def test_a_missing_matplotlib_is_named_with_how_to_install_it(monkeypatch):
    _, rec = recorded("RNN", steps=2)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(ImportError, match=r"need matplotlib.*pip install 'tinygrad_rnn\[demo\]'"):
        viz.plot_state_grads(rec)
