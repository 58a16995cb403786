# %% [markdown]
# # Demo 01: the article's RNN, written from Tensor ops, unrolled, drawn and gradient-checked
#
# The article is "Recurrent Neural Networks (RNN)" by Gayathri Siva (Medium, 26 May 2021).
#
# A recurrent network reads a sequence one element at a time and keeps a
# hidden state h, its memory of what it has read so far. At every time step t
# the new state mixes the input x(t) with the previous state h(t-1), and the
# output y(t) is read from the state:
#
#     h(t) = f(A x(t) + C h(t-1))      A: input -> hidden, C: hidden -> hidden, f = tanh
#     y(t) = B h(t)                    B: hidden -> output
#     L    = sum_t 1/2 ||y(t) - target(t)||^2
#
# The same A, B and C serve at every step: that sharing is what makes the
# network recurrent, and it is why training it (backpropagation through time,
# BPTT) adds every step's contribution into one gradient per weight.
#
# Run it as a script, `python demos/01_rnn_by_hand.py` (the graph goes to
# out/01_rnn_graph.svg and .png), or open it as a notebook: each cell below
# shows its result.

# %%
import _common as common  # first: it sets numpy's thread count before numpy loads

import numpy as np

import tinygrad_rnn as tr
from tinygrad_rnn import nn
from tinygrad_rnn.rng import generator

# %% [markdown]
# ## The weights and the data
#
# A, B and C are Parameters: tensors whose gradient backward computes. They
# are float64, so that the finite differences of the gradient check at the
# end are exact to many digits.

# %%
def make_parameters(input_size, hidden_size, output_size):
    """A (H, I), B (O, H), C (H, H) in float64, each entry ~ U(-1/sqrt(H), 1/sqrt(H))."""
    bound = 1 / np.sqrt(hidden_size)
    shapes = {"A": (hidden_size, input_size), "B": (output_size, hidden_size),
              "C": (hidden_size, hidden_size)}
    return [nn.Parameter(generator().uniform(-bound, bound, shape), name=name)
            for name, shape in shapes.items()]


def make_sequence(steps, input_size, output_size):
    """Random inputs x (T, I) and targets (T, O), standard normal, float64."""
    return (generator().standard_normal((steps, input_size)),
            generator().standard_normal((steps, output_size)))


# %% [markdown]
# ## Unrolling: one copy of the equations per time step
#
# The loop below is the article's two equations, once per step. Each step
# runs in its own scope, "t=0", "t=1", ..., so the picture further down reads
# left to right in time, and its tensors carry the names of the equations:
# h(t), y(t).

# %%
def unrolled_rnn(A, B, C, xs, targets):
    """The RNN unrolled over the sequence: returns (L, [h(0), .., h(T-1)]).

    xs: (T, I) and targets: (T, O) ndarrays; h(-1) = 0. Each step runs in
    scope "t=<step>", and its tensors are named as in the equations.
    """
    h = tr.Tensor(np.zeros(C.shape[0]), name="h(-1)")
    hs, loss = [], None
    for t in range(len(xs)):
        with tr.scope(f"t={t}"):
            x = tr.Tensor(xs[t], name=f"x({t})")
            h = (A @ x + C @ h).tanh()                      # h(t) = f(A x(t) + C h(t-1))
            y = B @ h                                       # y(t) = B h(t)
            target = tr.Tensor(targets[t], name=f"target({t})")
            step_loss = 0.5 * ((y - target) ** 2).sum()
            loss = step_loss if loss is None else loss + step_loss
        h.name, y.name = f"h({t})", f"y({t})"
        hs.append(h)
    return loss, hs


# %% [markdown]
# ## Forward, then BPTT
#
# The settings come from the command line (`--steps`, `--seed`); in a
# notebook the demo runs as with `--quick`, and `argv=[...]` in the call
# below changes that. `backward(retain_grads=True)` is BPTT: ordinary
# backpropagation through the unrolled graph, keeping the gradient of every
# intermediate tensor so that we can look at dL/dh(t) for each step.

# %%
args = common.parse_args(description="Demo 01: the article's RNN, unrolled, drawn and "
                         "gradient-checked", sizes={"steps": (4, 4)})
tr.manual_seed(args.seed)
A, B, C = make_parameters(input_size=3, hidden_size=4, output_size=2)
xs, targets = make_sequence(args.steps, 3, 2)

loss, hs = unrolled_rnn(A, B, C, xs, targets)
loss.backward(retain_grads=True)
print(f"The article's RNN, unrolled over T = {args.steps} steps "
      f"(x in R^3, h in R^4, y in R^2, f = tanh): L = {loss.item():.6f}")
print("\nBPTT: gradient reaching each hidden state, ||dL/dh(t)||:")
for t, h in enumerate(hs):
    print(f"  t = {t}:  {np.linalg.norm(h.grad):.6f}")
print("\nEach weight's gradient is one sum over the steps that share it:")
for p in (A, B, C):
    print(f"  dL/d{p.name} {p.shape}: norm {np.linalg.norm(p.grad):.6f}")

# %% [markdown]
# ## The picture of BPTT
#
# The unrolled graph, one box per time step. A, B and C are drawn once each,
# outside the boxes, with an edge into every step that uses them; the edges
# h(t-1) -> h(t) that carry the memory forward are drawn in red. Each node is
# shaded by the norm of its gradient: backward walks these edges from L back
# to the first step. In a notebook of your own, `viz.draw(loss, grads=True)`
# shows the same picture.

# %%
graph = common.render_graph([loss], "01_rnn_graph", grads=True)
graph

# %% [markdown]
# ## Is the gradient right?
#
# `tr.gradcheck` moves every entry of A, B and C by a tiny eps in both
# directions and compares (L(w + eps) - L(w - eps)) / (2 eps) with the
# gradient that backward computed. It raises, naming the entry, if any
# differs.

# %%
passed = tr.gradcheck(lambda A, B, C: unrolled_rnn(A, B, C, xs, targets)[0], [A, B, C])
print("gradcheck (float64, central differences, eps = 1e-6): passed for every entry "
      "of A, B and C")
