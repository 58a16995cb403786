"""Three pictures of a ``bptt.record``: BPTT along time, drawn with matplotlib.

- :func:`plot_state_grads`: ||dL/dh_t|| at each step t, on a log scale; a
  straight falling line going back from the loss is the vanishing gradient.
- :func:`plot_weight_grads`: the norm of each step's share (dL/dW)_t of a
  weight's gradient, dL/dW = sum over t of (dL/dW)_t + the share used outside
  the steps: the article's "contributions from each timestamp" ("Recurrent
  Neural Networks (RNN)" by Gayathri Siva, Medium, 26 May 2021), and the
  vanishing gradient seen in the weight update itself.
- :func:`plot_gates`: a gate's values as a units x time heatmap for one
  sequence of the batch, above the fraction of its values that are
  saturated (below ``low`` or above ``high``) at each step.

Each returns a ``matplotlib.figure.Figure``. matplotlib is an optional extra
(``pip install tinygrad_rnn[demo]``), imported only when a plot is made; the
plots use a bare Figure, so they need no display and no pyplot. Pass ``ax=``
(or ``fig=`` for the gates) to draw into a picture of your own, e.g. an RNN
and an LSTM on the same axes.
"""
import numpy as np


def plot_state_grads(rec, names=("h",), scope=None, ax=None, label=None, **line):
    """||dL/d name_t|| (the norm over batch and units) at each step t, log scale.

    ``names``: one name or several (``("h", "c")`` for the LSTM's two states);
    ``label`` names the network in the legend; ``line``: matplotlib line
    properties (``linestyle="--"``). A norm of exactly zero has no place on a
    log scale and is left out.
    """
    ax = _axes(ax)
    names = (names,) if isinstance(names, str) else tuple(names)
    for name in names:
        text = name if label is None else label if len(names) == 1 else f"{label}: {name}"
        ax.semilogy(rec.steps_of(name, scope), _positive(rec.grad_norms(name, scope)),
                    **{"marker": ".", "label": text, **line})
    ax.set_xlabel("time step t")
    ax.set_ylabel("||dL/dh(t)||  (log scale)" if names == ("h",) else "gradient norm (log scale)")
    ax.set_title("The gradient reaching each step through BPTT")
    ax.legend(fontsize=8)
    return ax.figure


def plot_weight_grads(rec, param, scope=None, ax=None, label=None, **line):
    """||(dL/dW)_t||: the norm of each step's share of ``param``'s gradient, log scale.

    The shares add up, with the share used outside the steps, to dL/dW. A
    share of exactly zero is left out: W_hh at t=0, say, where h(-1) = 0.
    ``label`` names the line (default: the parameter's name); ``line``:
    matplotlib line properties.
    """
    ax = _axes(ax)
    shares = rec.weight_grad_by_step(param, scope)
    norms = np.linalg.norm(shares.reshape(len(shares), -1), axis=1)
    name = param.name or "W"
    style = {"marker": ".", "label": label or name, **line}
    ax.semilogy(rec.steps_of(param, scope), _positive(norms), **style)
    ax.set_xlabel("time step t")
    ax.set_ylabel(f"||(dL/d({name}))_t||  (log scale)")
    ax.set_title(f"Each step's share of dL/d({name})")
    ax.legend(fontsize=8)
    return ax.figure


def plot_gates(rec, name, low=0.1, high=0.9, scope=None, sample=0, fig=None):
    """Gate ``name`` of sequence ``sample`` of the batch as a units x time heatmap, and
    below it the fraction of the whole batch's values outside [low, high] at each step.

    ``fig``: a Figure (or SubFigure) to draw into; by default a new one. The
    panels' titles are short, so that plots side by side in a grid of
    SubFigures (``Figure(layout="constrained").subfigures(2, 3)``: RNN, LSTM,
    GRU, before and after training) do not run into each other; a SubFigure's
    ``suptitle`` is left for the grid's own heading ("LSTM, after training").
    """
    values = rec.values(name, scope)
    if values.ndim == 3:
        if not 0 <= sample < values.shape[1]:
            raise ValueError(f"plot_gates: sample must be in 0..{values.shape[1] - 1} "
                             f"(the batch has {values.shape[1]}), got {sample}")
        values = values[:, sample]
    elif values.ndim != 2:
        raise ValueError(f"plot_gates: {name!r} must be (B, H) or (H,) at each step, "
                         f"got shape {values.shape[1:]}")
    steps = rec.steps_of(name, scope)
    fig = _new_figure(figsize=(7.0, 4.6), layout="constrained") if fig is None else fig
    grid = {"height_ratios": [3, 1]}
    if fig.get_layout_engine() is None:  # nothing else will make room for the titles and labels
        grid.update(hspace=0.45, top=0.86, bottom=0.14, right=0.86)
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw=grid)
    gate = values.min() >= 0 and values.max() <= 1
    image = top.imshow(values.T, aspect="auto", origin="lower", interpolation="nearest",
                       cmap="viridis", vmin=0 if gate else None, vmax=1 if gate else None,
                       extent=(steps[0] - 0.5, steps[-1] + 0.5, -0.5, values.shape[1] - 0.5))
    fig.colorbar(image, ax=[top, bottom], label=name)
    top.set_ylabel("unit")
    top.set_title(f"{name}, sequence {sample} of the batch", fontsize=10)
    bottom.plot(steps, rec.saturation(name, low, high, scope), marker=".")
    bottom.set_ylim(-0.05, 1.05)
    bottom.set_xlabel("time step t")
    bottom.set_ylabel("saturated")
    bottom.set_title(f"{name} outside [{low:g}, {high:g}], whole batch", fontsize=9)
    return fig


def _axes(ax):
    """``ax``, or the single Axes of a new Figure."""
    return _new_figure(figsize=(6.4, 4.2)).subplots() if ax is None else ax


def _new_figure(**options):
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError("the plots of tinygrad_rnn.viz need matplotlib, an optional extra: "
                          "pip install 'tinygrad_rnn[demo]' (or pip install matplotlib)") from None
    return Figure(**options)


def _positive(values):
    """Zeros as nan, which a log-scale plot leaves out instead of clipping."""
    return np.where(values > 0, values, np.nan)

