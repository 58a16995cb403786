# %% [markdown]
# # Demo 08: truncated BPTT: time and peak memory against the window length k
#
# The article is "Recurrent Neural Networks (RNN)" by Gayathri Siva (Medium, 26 May 2021).
#
# Truncated BPTT is the last of the article's remedies: backpropagate only k
# steps (e.g. 10) instead of the whole sequence. Full BPTT over a sequence of
# T steps keeps the whole unrolled graph (every step's saved arrays) alive
# until backward, so its memory grows with T. Truncated BPTT cuts the
# sequence into windows of k steps: forward k steps, backward through them,
# then detach the state, which keeps its value for the next window but drops
# the graph behind it:
#
#     state = None
#     for each window x[s : s+k]:
#         output, state = lstm(x[s : s+k], state)
#         loss = loss_of(output)
#         loss.backward()                          # k steps back, no further
#         state = (h.detach(), c.detach())
#         del output, loss                         # free this window's graph now
#
# Peak memory then grows with k, not with T, while the time per pass stays
# about the same (the same T steps are computed whatever k): the price of a
# short window is only the gradient it ignores, dependencies longer than k
# steps. The `del` matters: `output` and `loss` hold the window's whole
# graph (every step's values), and without it they stay alive while the next
# window runs, so the peak would hold two windows' values.
#
# Run it as a script, `python demos/08_truncated_bptt.py [--quick]` (the
# picture goes to out/08_truncated_bptt.png), or cell by cell as a notebook.

# %%
import tracemalloc

import _common as common  # first: it sets numpy's thread count before numpy loads

import numpy as np

import tinygrad_rnn as tr
from tinygrad_rnn import nn
from tinygrad_rnn.rng import generator

# %% [markdown]
# ## One pass of truncated BPTT
#
# An LSTM with a readout y(t) = B h(t) at every step, and the loop above
# written out.

# %%
class SequenceModel(nn.Module):
    """LSTM and a readout y(t) = B h(t) at every step."""

    def __init__(self, input_size, hidden_size):
        self.lstm = nn.LSTM(input_size, hidden_size)
        self.readout = nn.Linear(hidden_size, 1)


def one_pass(model, x, y, window):
    """Truncated BPTT over the whole sequence, x (T, B, I) and y (T, B, 1), in windows of k steps."""
    model.zero_grad()
    state, total = None, 0.0
    for start in range(0, len(x), window):
        output, state = model.lstm(tr.Tensor(x[start:start + window]), state)
        loss = nn.mse_loss(model.readout(output), tr.Tensor(y[start:start + window]))
        loss.backward()
        total += loss.item()
        state = tuple(s.detach() for s in state)
        del output, loss  # the graph of this window goes now, not when the next one replaces it
    return total


# %% [markdown]
# ## Measuring it
#
# Memory is measured with tracemalloc (numpy reports its arrays to it), in a
# separate pass from the timing, since tracing slows allocation down.

# %%
def measure(model, x, y, window, repeats=2):
    """(seconds, peak MiB allocated) of one pass with windows of ``window`` steps.

    The time is the best of ``repeats`` passes: the least disturbed by
    whatever else the machine is doing.
    """
    seconds = []
    for _ in range(repeats):
        with common.Stopwatch() as clock:
            one_pass(model, x, y, window)
        seconds.append(clock.seconds)
    tracemalloc.start()
    try:
        one_pass(model, x, y, window)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return min(seconds), peak / 2 ** 20


# %% [markdown]
# ## Windows from 5 steps to the whole sequence
#
# The settings come from the command line (see `--help`); in a notebook the
# demo runs as with `--quick`, and `argv=[...]` in the call below changes
# that. The last window, k = T, is full BPTT.

# %%
args = common.parse_args(description="Demo 08: truncated BPTT, time and peak memory against "
                         "the window length k",
                         sizes={"length": (400, 2000), "hidden": (32, 64), "batch": (16, 16)})
tr.manual_seed(args.seed)
model = SequenceModel(8, args.hidden)
x = generator().standard_normal((args.length, args.batch, 8)).astype(np.float32)
y = generator().standard_normal((args.length, args.batch, 1)).astype(np.float32)
windows = [k for k in (5, 10, 20, 50, 100, 200, 500, 1000, 2000) if k < args.length] + [args.length]

print(f"LSTM (H = {args.hidden}), one pass over T = {args.length} steps of a batch of "
      f"{args.batch}, truncated BPTT in windows of k steps (k = T: full BPTT)\n")
print(f"{'k':>6}{'seconds':>10}{'peak MiB':>10}{'MiB per step of k':>19}")
seconds, peaks = [], []
for k in windows:
    time_taken, peak = measure(model, x, y, k)
    seconds.append(time_taken)
    peaks.append(peak)
    print(f"{k:>6}{time_taken:>10.2f}{peak:>10.1f}{peak / k:>19.3f}")

# %% [markdown]
# ## Memory grows with k, time does not
#
# Left, the peak memory of one pass: a straight line on log-log axes, about
# proportional to k. Right, its time: about the same for every k (what
# differs is mostly the machine's noise), since every pass computes the same
# T steps forward and back.

# %%
def plot(windows, seconds, peaks, length):
    fig, (left, right) = common.figure(ncols=2)
    left.loglog(windows, peaks, marker="o")
    left.set_xlabel("window k (steps backpropagated)")
    left.set_ylabel("peak memory allocated (MiB, log scale)")
    left.set_title(f"Memory of one pass over T = {length} steps")
    right.semilogx(windows, seconds, marker="o", color="tab:orange")
    right.set_ylim(bottom=0)
    right.set_xlabel("window k (steps backpropagated)")
    right.set_ylabel("seconds per pass")
    right.set_title(f"Time of one pass over T = {length} steps")
    for ax in (left, right):
        ax.grid(True, which="both", alpha=0.3)
    return common.save_figure(fig, "08_truncated_bptt.png")


plot(windows, seconds, peaks, args.length)
