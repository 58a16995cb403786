# %% [markdown]
# # Demo 06: forecasting a noisy sine and a random walk ("stock prices") with a GRU
#
# The article is "Recurrent Neural Networks (RNN)" by Gayathri Siva (Medium, 26 May 2021).
#
# Stock-market prediction is one of the article's applications of recurrent
# networks. The network reads the last W values of a series, one per time
# step, and its hidden state sums up what it has seen; from the last state a
# linear readout forecasts the next value:
#
#     h(t) = GRU(x(t), h(t-1))  over the window,   forecast = last + s * (B h(last))
#
# The window enters relative to its last value and in units s of the series'
# typical step (x = (value - last) / s), so a level or a scale the model never
# saw in training does not matter. The baseline every forecast must beat is
# the naive one: tomorrow = today.
#
# A noisy sine has structure to learn; its forecasts beat the naive ones. A
# random walk has none: its next step is independent of the past, the naive
# forecast is already the best possible, and the GRU can at most match it.
#
# Run it as a script, `python demos/06_time_series.py [--quick]` (the pictures
# go to out/06_series.png and out/06_forecast.png), or cell by cell as a
# notebook.

# %%
import _common as common  # first: it sets numpy's thread count before numpy loads

import numpy as np

import tinygrad_rnn as tr
from tinygrad_rnn import nn
from tinygrad_rnn.rng import generator

SHOWN = 150   # test points drawn in the picture

# %% [markdown]
# ## Two series
#
# A sine of period 40 with noise, and a random walk: a price whose daily
# log-return is a fresh N(0, 0.01^2) draw, the simplest model of a stock.

# %%
def noisy_sine(length, period=40, noise=0.1):
    t = np.arange(length)
    return np.sin(2 * np.pi * t / period + generator().uniform(0, 2 * np.pi)) \
        + noise * generator().standard_normal(length)


def random_walk(length, volatility=0.01):
    """A price: 100 * exp(cumulative sum of N(0, volatility^2) log-returns)."""
    return 100 * np.exp(np.cumsum(volatility * generator().standard_normal(length)))


# %% [markdown]
# ## The model: a GRU and a readout
#
# The GRU is the article's gated cell with two gates and no separate cell
# state. At each step the reset gate r decides how much of h(t-1) enters the
# candidate n(t), and the update gate z how much of h(t-1) is kept as it is:
#
#     r(t) = sigmoid(W_r x(t) + U_r h(t-1) + b_r),   z(t) = sigmoid(W_z x(t) + U_z h(t-1) + b_z)
#     n(t) = tanh(W_n x(t) + b_in + r(t) * (U_n h(t-1) + b_hn))
#     h(t) = (1 - z(t)) * n(t) + z(t) * h(t-1)
#
# A z near 1 carries the state through a step unchanged, and so carries the
# gradient back through it unchanged too.

# %%
class Forecaster(nn.Module):
    """GRU over the window, then a readout of its last hidden state."""

    def __init__(self, hidden_size):
        self.gru = nn.GRU(1, hidden_size)
        self.readout = nn.Linear(hidden_size, 1)

    def forward(self, x):
        """x (W, B, 1) -> (B, 1)."""
        output, _ = self.gru(x)
        return self.readout(output[-1])


# %% [markdown]
# ## Windows, training and forecasts
#
# Training draws random windows that end before the split point; the
# forecasts are made on every window after it, values the model never saw.

# %%
def windows(series, starts, width, scale):
    """Windows relative to their last value, in units of ``scale``: x (W, B, 1), y (B, 1), last (B,)."""
    frames = np.stack([series[s:s + width + 1] for s in starts])
    last = frames[:, width - 1]
    relative = (frames - last[:, None]) / scale
    x = relative[:, :width].T[:, :, None].astype(np.float32)
    return x, relative[:, width:].astype(np.float32), last


def fit(name, series, split, args):
    """Train a Forecaster on windows that end before ``split``; returns it and the scale."""
    scale = np.std(np.diff(series[:split]))
    model = Forecaster(args.hidden)

    def batch_loss():
        starts = generator().integers(0, split - args.window - 1, args.batch)
        x, y, _ = windows(series, starts, args.window, scale)
        return nn.mse_loss(model(tr.Tensor(x)), tr.Tensor(y))

    common.fit(model, batch_loss, args.steps, args.lr, name)
    return model, scale


def forecast(model, series, split, width, scale):
    """One-step forecasts of every value after ``split`` -> (truth, GRU forecast, naive forecast)."""
    starts = np.arange(split - width, len(series) - width - 1)
    x, _, last = windows(series, starts, width, scale)
    with tr.no_grad():
        predicted = last + scale * model(tr.Tensor(x)).data[:, 0]
    return series[starts + width], predicted, last


# %% [markdown]
# ## The data
#
# The settings come from the command line (see `--help`); in a notebook the
# demo runs as with `--quick`, and `argv=[...]` in the call below changes
# that. The first three quarters of each series are for training, the rest
# for testing.

# %%
args = common.parse_args(description="Demo 06: forecasting a noisy sine and a random walk "
                         "with a GRU",
                         sizes={"length": (1500, 3000), "window": (30, 40), "steps": (150, 600),
                                "hidden": (16, 32), "batch": (32, 32), "lr": (0.01, 0.005)})
tr.manual_seed(args.seed)
series = {"noisy sine": noisy_sine(args.length), "random walk (a stock price)": random_walk(args.length)}
split = int(0.75 * args.length)
print(f"{args.length} values per series, the first {split} for training; windows of "
      f"{args.window}; GRU with H = {args.hidden}, {args.steps} Adam steps of {args.batch} windows")

fig, axes = common.figure(ncols=len(series), height=3.2)
for ax, (name, values) in zip(axes, series.items()):
    ax.plot(values, color="0.4", linewidth=0.7)
    ax.axvline(split, color="tab:red", linestyle=":", label="train | test")
    ax.set_xlabel("time step")
    ax.set_title(name)
    ax.legend(fontsize=8)
common.save_figure(fig, "06_series.png")

# %% [markdown]
# ## Training, then one-step-ahead forecasts on the held-out part
#
# One model per series, trained with Adam on the mean squared error of its
# forecasts, with the gradient clipped at norm 1.

# %%
results, mse = {}, {}
for name, values in series.items():
    model, scale = fit(name, values, split, args)
    results[name] = forecast(model, values, split, args.window, scale)
    truth, predicted, naive = results[name]
    mse[name] = {"gru": float(np.mean((predicted - truth) ** 2)),
                 "naive": float(np.mean((naive - truth) ** 2))}
    print(f"{name:28} test MSE: GRU {mse[name]['gru']:.4g}, naive {mse[name]['naive']:.4g} "
          f"(GRU / naive = {mse[name]['gru'] / mse[name]['naive']:.2f})")

# %% [markdown]
# ## The forecasts
#
# On the sine, the GRU's forecast (blue) follows the truth more closely than
# "tomorrow = today" (orange), which always lags one step behind. On the
# random walk the two nearly coincide: there is nothing to learn.

# %%
def plot(results):
    fig, axes = common.figure(ncols=len(results))
    for ax, (name, (truth, predicted, naive)) in zip(axes, results.items()):
        steps = np.arange(SHOWN)
        ax.plot(steps, truth[:SHOWN], color="0.6", linewidth=2.5, label="truth")
        ax.plot(steps, naive[:SHOWN], color="tab:orange", linestyle="--", linewidth=1,
                label="naive: tomorrow = today")
        ax.plot(steps, predicted[:SHOWN], color="tab:blue", linewidth=1.2, label="GRU forecast")
        ax.set_xlabel("time step (held-out part of the series)")
        ax.set_ylabel("value")
        ax.set_title(f"{name}: one-step-ahead forecasts")
        ax.legend(fontsize=8)
    return common.save_figure(fig, "06_forecast.png")


plot(results)
