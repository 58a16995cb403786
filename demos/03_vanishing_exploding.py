# %% [markdown]
# # Demo 03: vanishing and exploding gradients along time, and the article's remedies
#
# The article is "Recurrent Neural Networks (RNN)" by Gayathri Siva (Medium, 26 May 2021).
#
# **Part 1: why the gradient fades.** For a loss on the last step only,
# L = (w . h(T-1) - target)^2, BPTT gives, by the chain rule,
#
#     dL/dh(t) = dL/dh(T-1) * dh(T-1)/dh(T-2) * ... * dh(t+1)/dh(t),
#
# a product of T-1-t Jacobians. For the RNN, h(s) = f(A x(s) + C h(s-1)), so
# dh(s)/dh(s-1) = diag(f'(.)) C, and the product shrinks (vanishes) or grows
# (explodes) geometrically with the distance T-1-t, depending on C's size.
# The LSTM's cell state adds a path c(t) = f_t * c(t-1) + ... whose factor is
# the forget gate f_t itself: with f_t near 1 the gradient rides the
# "conveyor belt" almost undamped. The demo records ||dL/dh(t)|| with
# `bptt.record` for a tanh RNN, a ReLU RNN, an LSTM and a GRU on the same
# data, plus an LSTM whose forget gate starts open and a tanh RNN with large
# recurrent weights (exploding).
#
# The same recording splits the gradient of the shared weight C = weight_hh
# into each step's share, dL/dC = sum over t of (dL/dC)_t: the article's "the
# weight updates have contributions from each timestamp". Where dL/dh(t)
# vanishes, so does step t's share: the update of C hardly hears the early
# steps, which is why a tanh RNN cannot learn a long dependency.
#
# **Part 2: the remedies.** That exploding RNN is trained on a short-memory
# task with plain SGD, and with the article's remedies: gradient clipping
# (`nn.clip_grad_norm_`), truncated BPTT (backpropagate only k steps) and
# RMSprop (adapts the step size).
#
# Run it as a script, `python demos/03_vanishing_exploding.py [--quick]` (the
# pictures go to out/03_gradient_norms.png, 03_weight_shares.png and
# 03_exploding.png, the explorer page to out/03_explorer.html), or cell by cell
# as a notebook.

# %%
import _common as common  # first: it sets numpy's thread count before numpy loads

import numpy as np

import tinygrad_rnn as tr
from tinygrad_rnn import bptt, nn, optim, viz
from tinygrad_rnn.rng import generator

LARGE_GAIN = 3.0      # C ~ N(0, gain^2 / H): a tanh RNN in its chaotic, exploding regime
MAX_NORM = 1.0        # the clipping threshold
WINDOW = 10           # truncated BPTT's k

# %% [markdown]
# ## Part 1: six networks, one backward each
#
# Every cell starts from the same seed. The LSTM's forget-gate bias +2 starts
# its gate at about sigmoid(2) = 0.88 instead of 0.5, the usual trick to open
# the conveyor belt from the first step; the tanh RNN with C ~ N(0, 3²/H) is
# the exploding one.

# %%
def with_open_forget_gate(cell, bias):
    """Add ``bias`` to the LSTM's forget-gate bias (rows H..2H; gate order i, f, g, o)."""
    H = cell.hidden_size
    cell.bias_ih.data[H:2 * H] += bias
    return cell


def with_large_recurrent_weights(cell, gain=LARGE_GAIN):
    """Redraw C = weight_hh from N(0, gain^2 / H)."""
    H = cell.hidden_size
    weights = generator().standard_normal((H, H)) * gain / np.sqrt(H)
    cell.weight_hh.data = weights.astype(cell.weight_hh.dtype)
    return cell


def make_cells(input_size, hidden_size):
    """Name -> a function building the cell (called right after seeding, so all start alike)."""
    I, H = input_size, hidden_size
    return {
        "tanh RNN": lambda: nn.RNNCell(I, H),
        "ReLU RNN": lambda: nn.RNNCell(I, H, nonlinearity="relu"),
        "LSTM": lambda: nn.LSTMCell(I, H),
        "GRU": lambda: nn.GRUCell(I, H),
        "LSTM, forget-gate bias +2": lambda: with_open_forget_gate(nn.LSTMCell(I, H), 2.0),
        f"tanh RNN, C ~ N(0, {LARGE_GAIN:g}²/H)": lambda: with_large_recurrent_weights(nn.RNNCell(I, H)),
    }


def record_bptt(cell, xs, target):
    """A ``bptt.record`` of one backward of L on h(T-1) only, for xs (T, B, I), target (B, 1).

    In float64: after 100 steps the vanishing gradients are near 1e-30, and
    in float32 their squares (inside the norm) underflow to 0.
    """
    cell.to(np.float64)
    readout = nn.Linear(cell.hidden_size, 1).to(np.float64)
    with bptt.record() as rec:
        hs, _ = nn.unroll(cell, xs)
        nn.mse_loss(readout(hs[-1]), target).backward()
    return rec


def record_every_network(args):
    """Name -> (cell, its ``record_bptt``), every network on the same inputs and from the same seed."""
    tr.manual_seed(args.seed)
    xs = tr.Tensor(generator().standard_normal((args.length, args.batch, 1)))
    target = tr.Tensor(generator().standard_normal((args.batch, 1)))
    recordings = {}
    for name, make_cell in make_cells(1, args.hidden).items():
        tr.manual_seed(args.seed + 1)
        cell = make_cell()
        recordings[name] = cell, record_bptt(cell, xs, target)
    return recordings


# %% [markdown]
# ## The gradient reaching each h(t)
#
# The settings come from the command line (see `--help`); in a notebook the
# demo runs as with `--quick`, and `argv=[...]` in the call below changes
# that. The last column is the whole story: how much of the gradient at the
# last step is left at the first.

# %%
args = common.parse_args(description="Demo 03: vanishing and exploding gradients along time, "
                         "and the article's remedies",
                         sizes={"length": (50, 100), "hidden": (32, 32), "batch": (16, 16),
                                "train_steps": (120, 500), "lr": (0.2, 0.2),
                                "rmsprop_lr": (0.01, 0.01)})
print(f"Part 1: ||dL/dh(t)|| at initialisation, T = {args.length}, H = {args.hidden}, "
      f"B = {args.batch}, the same inputs for every network\n")
recordings = record_every_network(args)
norms = {name: rec.grad_norms("h") for name, (_, rec) in recordings.items()}
decay = {name: float(values[0] / values[-1]) for name, values in norms.items()}
print(f"{'network':32}{'t = T-1':>10}{'t = T/2':>10}{'t = 0':>10}   ||dL/dh(0)|| / ||dL/dh(T-1)||")
for name, values in norms.items():
    print(f"{name:32}{values[-1]:>10.1e}{values[len(values) // 2]:>10.1e}{values[0]:>10.1e}"
          f"   {decay[name]:.1e}")

# %% [markdown]
# Drawn along time (log scale): read each line from the right, where the
# loss is, to the left. The tanh and ReLU RNNs fade geometrically, a straight
# line down, and so do the GRU and the LSTM whose forget gate starts at 0.5:
# a factor f_t = 0.5 per step fades as fast. With the forget gate open (bias
# +2) the LSTM keeps most of the gradient; the RNN with large C explodes.

# %%
def plot_gradient_norms(recordings):
    fig, ax = common.figure()
    for name, (_, rec) in recordings.items():
        viz.plot_state_grads(rec, ax=ax, label=name, linestyle="--" if "," in name else "-", marker=None)
    ax.set_xlabel("time step t (the loss is on the last step)")
    ax.set_title("Gradient reaching h(t) through BPTT, at initialisation")
    return common.save_figure(fig, "03_gradient_norms.png")


plot_gradient_norms(recordings)

# %% [markdown]
# ## Each step's share of the update of C
#
# `rec.weight_grad_by_step(C)` is step t's term in dL/dC = sum over t of
# (dL/dC)_t; the terms add up exactly to the gradient backward put in
# `C.grad`. h(-1) = 0, so step 0 adds nothing: the earliest share is step 1's.

# %%
print("Each step's share of dL/dC, C = weight_hh: ||(dL/dC)_t|| (bptt.record's weight_grad_by_step)")
print(f"{'network':32}{'t = T-1':>10}{'t = T/2':>10}{'t = 1':>10}   ||(dL/dC)_1|| / ||(dL/dC)_T-1||")
share_decay = {}
for name, (cell, rec) in recordings.items():
    shares = rec.weight_grad_by_step(cell.weight_hh)
    size = np.linalg.norm(shares.reshape(len(shares), -1), axis=1)
    share_decay[name] = float(size[1] / size[-1])
    print(f"{name:32}{size[-1]:>10.1e}{size[len(size) // 2]:>10.1e}{size[1]:>10.1e}"
          f"   {share_decay[name]:.1e}")

# %% [markdown]
# Where the gradient reaching h(t) has faded, step t's share of the update
# has faded with it: the tanh RNN learns C almost only from its last steps.

# %%
def plot_weight_shares(recordings, names):
    fig, ax = common.figure()
    for name in names:
        cell, rec = recordings[name]
        viz.plot_weight_grads(rec, cell.weight_hh, ax=ax, label=name,
                              linestyle="--" if "," in name else "-", marker=None)
    ax.set_xlabel("time step t (the loss is on the last step)")
    ax.set_ylabel("||(dL/dC)_t||, step t's share of dL/dC  (log scale)")
    ax.set_title("Each step's share of the update of C = weight_hh, at initialisation")
    return common.save_figure(fig, "03_weight_shares.png")


plot_weight_shares(recordings, ["tanh RNN", "LSTM", "LSTM, forget-gate bias +2"])

# %% [markdown]
# ## Part 2: training the exploding RNN, and the remedies
#
# The task needs a memory of one step only: y(t) = x(t) - x(t-1)/2. A tanh
# RNN with large C explodes on it. The remedies: clip the gradient's norm at
# a threshold before each step; backpropagate only k steps at a time
# (truncated BPTT, the state detached between windows); or let RMSprop scale
# each weight's step by the running size of its gradient.

# %%
class SequenceRegressor(nn.Module):
    """A cell and a readout: y(t) = B h(t) at every step."""

    def __init__(self, cell):
        self.cell = cell
        self.readout = nn.Linear(cell.hidden_size, 1)

    def forward(self, xs, state=None):
        """xs: list of (B, 1) Tensors -> (list of (B, 1) predictions, final state)."""
        hs, state = nn.unroll(self.cell, xs, state)
        return [self.readout(h) for h in hs], state


def short_memory_batch(batch, length):
    """x(t) ~ N(0, 1) and the target y(t) = x(t) - x(t-1) / 2 (x(-1) = 0), each (T, B, 1)."""
    x = generator().standard_normal((length, batch, 1)).astype(np.float32)
    previous = np.concatenate([np.zeros_like(x[:1]), x[:-1]])
    return x, x - previous / 2


def sequence_loss(predictions, targets):
    """Mean over the steps of the mean squared error."""
    return sum(nn.mse_loss(p, tr.Tensor(y)) for p, y in zip(predictions, targets)) / len(targets)


def backprop_full(model, x, y):
    """Loss of the whole sequence, backpropagated through all T steps."""
    predictions, _ = model([tr.Tensor(xt) for xt in x])
    loss = sequence_loss(predictions, y)
    loss.backward()
    return loss.item()


def backprop_truncated(model, x, y, window=WINDOW):
    """Truncated BPTT: windows of k steps, the state detached in between.

    Each window's loss is backpropagated through its own k steps only; the
    gradients of all windows add up in the parameters (one update per
    sequence, as for the full run).
    """
    state, total = None, 0.0
    for start in range(0, len(x), window):
        predictions, state = model([tr.Tensor(xt) for xt in x[start:start + window]], state)
        loss = sequence_loss(predictions, y[start:start + window]) * (len(predictions) / len(x))
        loss.backward()
        total += loss.item()
        state = state.detach()
    return total


def train_exploding(name, args, backprop, make_optimizer, clip):
    """Train a fresh exploding tanh RNN; returns (losses, gradient norms before clipping)."""
    tr.manual_seed(args.seed)
    model = SequenceRegressor(with_large_recurrent_weights(nn.RNNCell(1, args.hidden)))
    optimizer = make_optimizer(model.parameters())
    norms = []

    def step(i):
        x, y = short_memory_batch(args.batch, args.length)
        optimizer.zero_grad()
        loss = backprop(model, x, y)
        # max_norm=inf measures the norm without clipping.
        norms.append(nn.clip_grad_norm_(model.parameters(), MAX_NORM if clip else float("inf")))
        optimizer.step()
        return loss

    # Plain SGD on this network overflows to inf and NaN: that is what it shows.
    with np.errstate(over="ignore", invalid="ignore"):
        losses = common.train(step, args.train_steps, name)
    return np.array(losses), np.array(norms[:len(losses)])


# %% [markdown]
# ## Four runs from the same start

# %%
print(f"Part 2: training the exploding tanh RNN on y(t) = x(t) - x(t-1)/2 "
      f"({args.train_steps} steps, batches of {args.batch} sequences of {args.length})")


def sgd(params):
    return optim.SGD(params, lr=args.lr)


def rmsprop(params):
    return optim.RMSprop(params, lr=args.rmsprop_lr)


runs = {
    "SGD": train_exploding("SGD", args, backprop_full, sgd, clip=False),
    "SGD + clipping": train_exploding("SGD + clipping", args, backprop_full, sgd, clip=True),
    f"SGD + truncated BPTT (k={WINDOW})":
        train_exploding("SGD + truncated BPTT", args, backprop_truncated, sgd, clip=False),
    "RMSprop": train_exploding("RMSprop", args, backprop_full, rmsprop, clip=False),
}
print("\nclip_grad_norm_ in the SGD + clipping run, first steps:")
print("  step   norm before   norm after")
for i, norm in enumerate(runs["SGD + clipping"][1][:5]):
    print(f"  {i:>4}   {norm:>11.3g}   {min(norm, MAX_NORM):>10.3g}")
print(f"\n{'run':32}{'gradient norm (median)':>24}{'final loss':>12}")
for name, (losses, grad_norms) in runs.items():
    ending = (f"   diverged: loss not finite at step {len(losses)}"
              if len(losses) < args.train_steps else f"{np.mean(losses[-10:]):>12.4f}")
    print(f"{name:32}{np.median(grad_norms):>24.3g}{ending}")
final_loss = {name: float(np.mean(losses[-10:])) if len(losses) == args.train_steps
              else float("inf") for name, (losses, _) in runs.items()}
first_norm_before_clipping = float(runs["SGD + clipping"][1][0])

# %% [markdown]
# Left, the losses: plain SGD diverges within a few dozen steps, while the
# remedies keep training finite. Truncated BPTT learns fastest here; in
# `--quick`'s 120 steps clipping and RMSprop have hardly left 1.25, the loss
# of always predicting 0. Given 500 steps on these sequences of 50
# (`--quick --train-steps 500`, as the tour runs it) each remedy ends below
# half of that; on the full run's sequences of 100, RMSprop has still not
# learned after 500. Right, what clipping does: the gradient's norm before
# clipping, often far above the threshold, and after it, never above.

# %%
def plot_training(runs, steps):
    fig, (left, right) = common.figure(ncols=2)
    for name, (losses, _) in runs.items():
        if len(losses) < steps:
            name += f" (diverged at step {len(losses)})"
        left.semilogy(common.smooth(losses, 10), label=name)
    left.set_ylim(top=10 * runs["SGD + clipping"][0][0])
    left.set_xlabel("training step (one batch of sequences)")
    left.set_ylabel("loss (MSE, moving average of 10; log scale)")
    left.set_title("Training the exploding tanh RNN")
    left.legend(fontsize=8)
    before = runs["SGD + clipping"][1]
    right.semilogy(before, label="before clipping (total norm)")
    right.semilogy(np.minimum(before, MAX_NORM), label=f"after clip_grad_norm_(max_norm={MAX_NORM:g})")
    right.set_xlabel("training step")
    right.set_ylabel("||gradient||  (log scale)")
    right.set_title("Gradient norm of the SGD + clipping run")
    right.legend(fontsize=8)
    return common.save_figure(fig, "03_exploding.png")


plot_training(runs, args.train_steps)

# %% [markdown]
# ## Playing BPTT forward and backward: the explorer page
#
# `viz.explore` writes the unrolled graphs of four of the networks, on the
# first 8 steps of the same inputs, into one page that opens offline in any
# browser: scrub forward to watch each step compute, then backward to watch
# the gradient arrive step by step, each node coloured by its norm. In the
# tanh RNN it fades as it goes back; in the LSTM with its forget gate open it
# travels along c. Click a node for its values and gradient; below the graph,
# ||dL/dh(t)||, each step's share of dL/dC and the gates over time.

# %%
def explorer_page(args, names=("tanh RNN", "LSTM", "LSTM, forget-gate bias +2", "GRU"), steps=8):
    """Write out/03_explorer.html: the networks ``names`` on the first ``steps`` inputs, 2 sequences."""
    tr.manual_seed(args.seed)
    xs = generator().standard_normal((args.length, args.batch, 1))[:steps, :2]
    target = generator().standard_normal((args.batch, 1))[:2]
    xs, target = tr.Tensor(xs.astype(np.float32), name="x"), tr.Tensor(target.astype(np.float32))
    runs, cells = {}, make_cells(1, args.hidden)
    for name in names:
        tr.manual_seed(args.seed + 1)
        cell = cells[name]()
        readout = nn.Linear(cell.hidden_size, 1)
        with bptt.record() as rec:
            hs, _ = nn.unroll(cell, xs)
            loss = nn.mse_loss(readout(hs[-1]), target).named("L")
            loss.backward(retain_grads=True)
        runs[name] = loss, rec
    path = viz.explore(runs).save(common.out_path("03_explorer.html"))
    print(f"explorer page: {common.shown(path)}")
    return path


explorer_page(args)
