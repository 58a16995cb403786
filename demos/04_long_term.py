# %% [markdown]
# # Demo 04: the adding problem, a dependency across many steps (Hochreiter & Schmidhuber 1997)
#
# Each input is a sequence of T pairs x(t) = (value, marker): the values are
# drawn from U(0, 1), and the marker is 1 at two positions, one in each half
# of the sequence, 0 elsewhere. The target is the sum of the two marked
# values, read from the last hidden state: y = B h(T-1).
#
# Always answering 1 (the mean of the sum) scores MSE = Var(u1 + u2) = 2/12
# ~ 0.167. Beating that baseline takes carrying the first marked value across
# about T/2 steps, which BPTT through a tanh RNN cannot teach (its gradient
# vanishes, demo 03); the LSTM's and the GRU's gated paths can.
#
# How the LSTM holds the value shows in its gates, recorded by `bptt.record`
# on one batch before and after training: the input gate i lets the marked
# values onto the cell state, c_t = f_t * c_{t-1} + i_t * c~_t, and the forget
# gate f, near 1, keeps them there until the readout.
#
# Run it as a script, `python demos/04_long_term.py` (T = 50; the pictures go
# to out/04_adding.png and out/04_gates.png, the explorer page of the LSTM
# before and after training to out/04_explorer.html; `--quick` runs the first
# 500 of the 1500 training steps), or cell by cell as a notebook.

# %%
import _common as common  # first: it sets numpy's thread count before numpy loads

import numpy as np
from matplotlib.figure import Figure

import tinygrad_rnn as tr
from tinygrad_rnn import bptt, nn, viz
from tinygrad_rnn.rng import generator

BASELINE = 2 / 12   # MSE of always predicting 1

# %% [markdown]
# ## The data

# %%
def adding_batch(batch, length):
    """x (T, B, 2) of (value, marker) pairs and the target y (B, 1), float32."""
    values = generator().uniform(0, 1, (length, batch))
    markers = np.zeros((length, batch))
    columns = np.arange(batch)
    markers[generator().integers(0, length // 2, batch), columns] = 1
    markers[generator().integers(length // 2, length, batch), columns] = 1
    x = np.stack([values, markers], axis=-1).astype(np.float32)
    y = (values * markers).sum(axis=0, keepdims=True).T.astype(np.float32)
    return x, y


# %% [markdown]
# ## Three networks, one readout
#
# A tanh RNN, h(t) = tanh(A x(t) + C h(t-1)); an LSTM, whose cell state is the
# article's conveyor belt,
#
#     f_t = σ(W_f [h_{t-1}, x_t] + b_f)      forget gate: how much of c_{t-1} to keep
#     i_t = σ(W_i [h_{t-1}, x_t] + b_i)      input gate: how much of the candidate to add
#     c~_t = tanh(W_c [h_{t-1}, x_t] + b_c)  candidate cell state
#     c_t = f_t * c_{t-1} + i_t * c~_t       cell state
#     o_t = σ(W_o [h_{t-1}, x_t] + b_o),  h_t = o_t * tanh(c_t)
#
# and a GRU, whose update gate z plays the forget and input gates' parts at
# once. Each reads the whole sequence; a linear readout of the last hidden
# state gives the answer.

# %%
class LastStepRegressor(nn.Module):
    """A sequence layer and a readout of its last hidden state: y = B h(T-1)."""

    def __init__(self, layer):
        self.layer = layer
        self.readout = nn.Linear(layer.hidden_size, 1)

    def forward(self, x):
        """x (T, B, I) -> (B, 1)."""
        output, _ = self.layer(x)
        return self.readout(output[-1])


def make_models(hidden):
    """Name -> a function building the model (called after seeding)."""
    return {"tanh RNN": lambda: LastStepRegressor(nn.RNN(2, hidden)),
            "LSTM": lambda: LastStepRegressor(nn.LSTM(2, hidden)),
            "GRU": lambda: LastStepRegressor(nn.GRU(2, hidden))}


# %% [markdown]
# ## Training, testing, and recording the gates
#
# Every batch has the same shape, so the training step is traced once by
# `tr.compile` and replayed: the same numbers as the engine's backward, found
# faster (the run below checks the first 20 losses both ways). `bptt.record`
# keeps the named quantities of every step (for the LSTM: i, f, c~, o, c, h),
# so the gates can be looked at after a forward pass.

# %%
def regression_loss(model, x, y):
    return nn.mse_loss(model(x), y)


def train(name, model, args):
    """Adam with gradients clipped at norm 1, on a training step traced once and replayed
    (``tr.compile``: every batch has the same shape); returns the training losses."""
    batch_loss = common.compiled_loss(model, regression_loss, lambda: adding_batch(args.batch, args.length))
    return common.fit(model, batch_loss, args.steps, args.lr, name, compiled=True)


def test_mse(model, x, y):
    """MSE on held-out sequences, without recording a graph."""
    with tr.no_grad():
        return nn.mse_loss(model(tr.Tensor(x)), tr.Tensor(y)).item()


def record_gates(model, x):
    """A ``bptt.record`` of one forward pass of ``model`` on x (T, B, 2): the gates at each step."""
    with tr.no_grad(), bptt.record() as rec:
        model(tr.Tensor(x))
    return rec


def record_for_explorer(model, x):
    """(loss, rec) of one forward and backward of ``model`` on x (T, B, 2), loss = the sum of
    its answers, for the explorer page (from zero gradients: training leaves its last ones)."""
    model.zero_grad()
    with bptt.record() as rec:
        loss = model(tr.Tensor(x)).sum().named("sum of y")
        loss.backward(retain_grads=True)
    return loss, rec


# %% [markdown]
# ## Train the three networks
#
# The settings come from the command line (see `--help`); in a notebook the
# demo runs as with `--quick`, and `argv=[...]` in the call below changes
# that. Every network starts from the same seed; the LSTM's gates are
# recorded on 8 sequences before and after its training.

# %%
args = common.parse_args(description="Demo 04: the adding problem, a dependency across many steps",
                         sizes={"length": (50, 50), "steps": (500, 1500), "hidden": (32, 32),
                                "batch": (32, 32), "lr": (0.01, 0.01)})
print(f"The adding problem: T = {args.length}, H = {args.hidden}, {args.steps} steps of "
      f"{args.batch} sequences, Adam (lr {args.lr:g}), gradients clipped at norm 1")
difference = common.eager_and_compiled_differ(
    make_models(args.hidden)["LSTM"], regression_loss, lambda: adding_batch(args.batch, args.length),
    20, args.lr, args.seed)
print(f"  the LSTM's first 20 losses, eager and compiled: largest relative difference {difference:.1g}")
tr.manual_seed(args.seed)
x_test, y_test = adding_batch(1000, args.length)

x_gates, _ = adding_batch(8, args.length)
curves, mse = {}, {}
for name, make_model in make_models(args.hidden).items():
    tr.manual_seed(args.seed + 1)
    model = make_model()
    if name == "LSTM":
        gates_before = record_gates(model, x_gates)
        explored_before = record_for_explorer(model, x_gates[:, :2])
    with common.Stopwatch() as clock:
        curves[name] = train(name, model, args)
    mse[name] = test_mse(model, x_test, y_test)
    print(f"  {name:10} test MSE {mse[name]:.4f}  "
          f"({mse[name] / BASELINE:.1%} of the baseline)  {clock.seconds:.0f} s")
    if name == "LSTM":
        gates_after = record_gates(model, x_gates)
        explored_after = record_for_explorer(model, x_gates[:, :2])
print(f"  baseline   test MSE {BASELINE:.4f}  (always predict 1)")

# %% [markdown]
# ## Only the gated networks learn it
#
# The tanh RNN's loss stays at the baseline: the gradient that would teach it
# to keep the first marked value fades over the T/2 steps between them. The
# LSTM and the GRU, after a plateau at the baseline, find the gated path and
# fall far below it.

# %%
def plot(curves, length):
    fig, ax = common.figure()
    for name, losses in curves.items():
        ax.semilogy(common.smooth(losses, 50), label=name)
    ax.axhline(BASELINE, color="black", linestyle="--", label="always predict 1 (MSE 0.167)")
    ax.set_xlabel("training step (batch of sequences)")
    ax.set_ylabel("training MSE (moving average of 50; log scale)")
    ax.set_title(f"The adding problem, T = {length}")
    ax.legend()
    return common.save_figure(fig, "04_adding.png")


plot(curves, args.length)

# %% [markdown]
# ## What the forget gate does
#
# The forget gate f_t multiplies the cell state at every step: near 1 it
# keeps c_{t-1}, near 0 it wipes it. To hold the first marked value until
# the end, a unit must open its input gate i at the marked steps, to write
# the value onto c, and keep f near 1 in between. The unit whose input gate
# opens most at the marked steps after training shows just that.

# %%
def holding_unit(rec, markers):
    """The unit whose input gate opens most at the marked steps, compared with the others."""
    i, marked = rec.values("i"), markers.astype(bool)
    return int(np.argmax(i[marked].mean(axis=0) - i[~marked].mean(axis=0)))


def unit_gates(rec, markers, unit):
    """One unit's mean i at the marked steps and at the others, and its mean f, over the batch."""
    i, f, marked = rec.values("i")[..., unit], rec.values("f")[..., unit], markers.astype(bool)
    return {"i marked": float(i[marked].mean()), "i other": float(i[~marked].mean()),
            "f": float(f.mean())}


markers = x_gates[..., 1]
unit = holding_unit(gates_after, markers)
gates = {when: unit_gates(rec, markers, unit)
         for when, rec in [("before", gates_before), ("after", gates_after)]}
print(f"The LSTM unit whose input gate opens most at the marked steps after training: "
      f"unit {unit}\n(bptt.record on 8 sequences; means over them)")
print(f"  {'':18}{'i at marked steps':>18}{'i elsewhere':>13}{'f':>8}")
for when, means in gates.items():
    print(f"  {when + ' training':18}{means['i marked']:>18.3f}{means['i other']:>13.3f}"
          f"{means['f']:>8.3f}")

# %% [markdown]
# ## The gates at every step, before and after training
#
# `viz.plot_gates` draws a gate of every unit at every step of sequence 0
# (the red marks are its two marked steps). Before training the gates hover
# around 0.5 everywhere. After it, the unit that holds the value shows as one
# row: its input gate is shut except at the two marks, and its forget gate
# stays near 1 all along.

# %%
def plot_gates(before, after, markers):
    """The LSTM's forget and input gates on sequence 0, before and after training."""
    fig = Figure(figsize=(13, 9), layout="constrained")
    panels = fig.subfigures(2, 2)
    for column, (when, rec) in enumerate([("before training", before), ("after training", after)]):
        for row, (name, gate) in enumerate([("f", "forget gate"), ("i", "input gate")]):
            panel = panels[row][column]
            viz.plot_gates(rec, name, fig=panel)
            marked = np.flatnonzero(markers[:, 0])
            heatmap = panel.axes[0]
            heatmap.scatter(marked, [heatmap.get_ylim()[1]] * len(marked), marker="v", s=60,
                            color="red", clip_on=False, zorder=3)
            heatmap.set_title(heatmap.get_title(), pad=12)  # room for the marks above the heatmap
            panel.suptitle(f"LSTM {gate} {name}, {when} (red: the two marked steps)")
    path = common.out_path("04_gates.png")
    fig.savefig(path, dpi=90)
    print(f"picture: {common.shown(path)}")
    return common.Picture(path)


plot_gates(gates_before, gates_after, markers)

# %% [markdown]
# ## The LSTM before and after training, in the explorer
#
# `viz.explore` with two snapshots writes one offline page with a training
# slider: the LSTM's step drawn once (its state looping back), the gradient
# of its answer played backward through time, and below it each gate over
# time. After training, the gradient reaches back to the first marked step.

# %%
page = viz.explore([("before training", {"LSTM": explored_before}),
                    ("after training", {"LSTM": explored_after})], detail="rolled")
print(f"explorer page: {common.shown(page.save(common.out_path('04_explorer.html')))}")
