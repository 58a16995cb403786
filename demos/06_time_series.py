"""Demo 06: forecasting a noisy sine and a random walk ("stock prices") with a GRU.

From the last W values of a series the model forecasts the next one:

    h(t) = GRU(x(t), h(t-1))  over the window,   forecast = last + s * (B h(last))

where the window enters relative to its last value and in units s of the
series' typical step (x = (value - last) / s), so a level or a scale the
model never saw in training does not matter. The baseline every forecast
must beat is the naive one: tomorrow = today.

A noisy sine has structure to learn; its forecasts beat the naive ones. A
random walk has none: its next step is independent of the past, the naive
forecast is already the best possible, and the GRU can at most match it.

    python demos/06_time_series.py          # out/06_forecast.png
"""
import _common as common  # first: it sets numpy's thread count before numpy loads

import numpy as np

import tinygrad_rnn as tr
from tinygrad_rnn import nn
from tinygrad_rnn.rng import generator

SHOWN = 150   # test points drawn in the picture


def noisy_sine(length, period=40, noise=0.1):
    t = np.arange(length)
    return np.sin(2 * np.pi * t / period + generator().uniform(0, 2 * np.pi)) \
        + noise * generator().standard_normal(length)


def random_walk(length, volatility=0.01):
    """A price: 100 * exp(cumulative sum of N(0, volatility^2) log-returns)."""
    return 100 * np.exp(np.cumsum(volatility * generator().standard_normal(length)))


class Forecaster(nn.Module):
    """GRU over the window, then a readout of its last hidden state."""

    def __init__(self, hidden_size):
        self.gru = nn.GRU(1, hidden_size)
        self.readout = nn.Linear(hidden_size, 1)

    def forward(self, x):
        """x (W, B, 1) -> (B, 1)."""
        output, _ = self.gru(x)
        return self.readout(output[-1])


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


def main(argv=None):
    args = common.parse_args(argv, __doc__.splitlines()[0],
                             sizes={"length": (1500, 3000), "window": (30, 40), "steps": (150, 600),
                                    "hidden": (16, 32), "batch": (32, 32), "lr": (0.01, 0.005)})
    tr.manual_seed(args.seed)
    series = {"noisy sine": noisy_sine(args.length), "random walk (a stock price)": random_walk(args.length)}
    split = int(0.75 * args.length)
    print(f"{args.length} values per series, the first {split} for training; windows of "
          f"{args.window}; GRU with H = {args.hidden}, {args.steps} Adam steps of {args.batch} windows\n")

    results, mse = {}, {}
    for name, values in series.items():
        model, scale = fit(name, values, split, args)
        results[name] = forecast(model, values, split, args.window, scale)
        truth, predicted, naive = results[name]
        mse[name] = {"gru": float(np.mean((predicted - truth) ** 2)),
                     "naive": float(np.mean((naive - truth) ** 2))}
        print(f"{name:28} test MSE: GRU {mse[name]['gru']:.4g}, naive {mse[name]['naive']:.4g} "
              f"(GRU / naive = {mse[name]['gru'] / mse[name]['naive']:.2f})")
    plot(results)
    return {"mse": mse}


if __name__ == "__main__":
    main()
