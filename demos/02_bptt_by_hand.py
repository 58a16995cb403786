# %% [markdown]
# # Demo 02: BPTT written by hand gives the same gradients as backward through the unrolled graph
#
# The RNN is demo 01's:
#
#     h(t) = tanh(A x(t) + C h(t-1)),   y(t) = B h(t),   L = sum_t 1/2 ||y(t) - target(t)||^2
#
# on a longer sequence. Backpropagation through time is nothing more than the
# chain rule applied to this network unrolled over its time steps. To see
# that, its gradients are computed twice, in float64:
#
# - **by hand**: numpy only, in the style of min-char-rnn: a forward loop that
#   keeps every h(t), then a backward loop whose lines mirror the forward's;
# - **autograd**: demo 01's Tensor code and one call to `backward()`.
#
# Run it as a script, `python demos/02_bptt_by_hand.py` (the picture goes to
# out/02_bptt_by_hand.png), or cell by cell as a notebook.

# %%
import _common as common  # first: it sets numpy's thread count before numpy loads

import numpy as np

import tinygrad_rnn as tr

rnn_by_hand = common.definitions("01_rnn_by_hand")   # demo 01's functions, without its run

# %% [markdown]
# ## BPTT by hand
#
# Going back in time, the gradient reaching h(t) has two sources: the output
# y(t) of the same step, and the next state h(t+1), which h(t) fed through C.
# That second term, `dh_next`, is the gradient flowing back along the
# recurrent edge; it is multiplied by C^T and by tanh's derivative at every
# step it crosses. And because A, B and C are shared by all steps, each
# step's share is *added* into their gradients.

# %%
def bptt_by_hand(A, B, C, xs, targets):
    """L and {"A": dL/dA, "B": dL/dB, "C": dL/dC} of the RNN, in plain numpy.

    Forward, t = 0 .. T-1, keeping every h(t):
        h(t) = tanh(A x(t) + C h(t-1))
        y(t) = B h(t)
        L   += 1/2 ||y(t) - target(t)||^2
    Backward, t = T-1 .. 0, each line the mirror of a forward line:
        dy   = y(t) - target(t)
        dB  += dy h(t)^T
        dh   = B^T dy + dh_next          h(t) feeds y(t) and h(t+1)
        da   = (1 - h(t)^2) * dh         tanh'(a) = 1 - tanh(a)^2
        dA  += da x(t)^T
        dC  += da h(t-1)^T
        dh_next = C^T da                 what h(t-1) receives through C
    """
    hs, ys, loss = {-1: np.zeros(C.shape[0])}, {}, 0.0
    for t in range(len(xs)):
        hs[t] = np.tanh(A @ xs[t] + C @ hs[t - 1])
        ys[t] = B @ hs[t]
        loss += 0.5 * np.sum((ys[t] - targets[t]) ** 2)

    dA, dB, dC = np.zeros_like(A), np.zeros_like(B), np.zeros_like(C)
    dh_next = np.zeros_like(hs[-1])
    for t in reversed(range(len(xs))):
        dy = ys[t] - targets[t]
        dB += np.outer(dy, hs[t])
        dh = B.T @ dy + dh_next
        da = (1 - hs[t] ** 2) * dh
        dA += np.outer(da, xs[t])
        dC += np.outer(da, hs[t - 1])
        dh_next = C.T @ da
    return loss, {"A": dA, "B": dB, "C": dC}


# %% [markdown]
# ## The same gradients, twice
#
# The settings come from the command line (`--steps`, `--hidden`, `--seed`);
# in a notebook the demo runs as with `--quick`, and `argv=[...]` in the call
# below changes that. Autograd's gradients come from one `backward()`
# through demo 01's unrolled graph; the hand-written ones from the loop
# above, on the same weights and data.

# %%
args = common.parse_args(description="Demo 02: BPTT by hand equals backward through the "
                         "unrolled graph", sizes={"steps": (20, 50), "hidden": (16, 32)})
tr.manual_seed(args.seed)
A, B, C = rnn_by_hand.make_parameters(input_size=8, hidden_size=args.hidden, output_size=4)
xs, targets = rnn_by_hand.make_sequence(args.steps, 8, 4)

loss, _ = rnn_by_hand.unrolled_rnn(A, B, C, xs, targets)
loss.backward()
hand_loss, hand_grads = bptt_by_hand(A.data, B.data, C.data, xs, targets)

print(f"RNN with x in R^8, h in R^{args.hidden}, y in R^4, unrolled over T = {args.steps} "
      "steps, float64")
print(f"L: by hand {hand_loss:.12f}, autograd {loss.item():.12f}\n")
print(f"{'':10}{'shape':>10}{'max |dL/dW| by hand':>22}{'max |dL/dW| autograd':>23}"
      f"{'max abs difference':>21}")
differences = {}
for p in (A, B, C):
    by_hand = hand_grads[p.name]
    differences[p.name] = float(np.abs(by_hand - p.grad).max())
    print(f"dL/d{p.name:<6}{str(p.shape):>10}{np.abs(by_hand).max():>22.12f}"
          f"{np.abs(p.grad).max():>23.12f}{differences[p.name]:>21.2e}")
max_abs_diff = max(differences.values())
loss_diff = abs(hand_loss - loss.item())
verdict = "equal" if max_abs_diff <= 1e-10 else "DIFFERENT"
print(f"\nThe two BPTTs are {verdict} to 1e-10 (largest difference {max_abs_diff:.1e}).")

# %% [markdown]
# ## Every entry, by hand against autograd
#
# One point per entry of dL/dA, dL/dB and dL/dC: the hand-written value
# across, autograd's up. They all lie on the diagonal.

# %%
fig, ax = common.figure(width=5.0, height=4.6)
for p in (A, B, C):
    ax.scatter(hand_grads[p.name].ravel(), p.grad.ravel(), s=14, label=f"dL/d{p.name}")
low, high = ax.get_xlim()
ax.plot([low, high], [low, high], color="0.6", linewidth=0.8, zorder=0)
ax.set_xlabel("BPTT by hand (numpy)")
ax.set_ylabel("backward() through the unrolled graph")
ax.set_title(f"The same gradients (largest difference {max_abs_diff:.1e})")
ax.legend()
common.save_figure(fig, "02_bptt_by_hand.png")
