"""Demo 01: the article's RNN written from Tensor ops, unrolled, drawn and gradient-checked.

    h(t) = f(A x(t) + C h(t-1))      A: input -> hidden, C: hidden -> hidden, f = tanh
    y(t) = B h(t)                    B: hidden -> output
    L    = sum_t 1/2 ||y(t) - target(t)||^2

Unrolled over T = 4 steps, each step in its own scope "t=0" .. "t=3", so the
picture reads left to right in time. A, B and C are drawn once each, with an
edge into every step that uses them: BPTT is plain backward through this
picture, and that sharing is why every step's contribution is added into one
gradient per weight.

    python demos/01_rnn_by_hand.py          # writes out/01_rnn_graph.svg and .png
"""
import _common as common  # first: it sets numpy's thread count before numpy loads

import numpy as np

import tinygrad_rnn as tr
from tinygrad_rnn import nn
from tinygrad_rnn.rng import generator


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


def main(argv=None):
    args = common.parse_args(argv, __doc__.splitlines()[0], sizes={"steps": (4, 4)})
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

    graph = common.render_graph([loss], "01_rnn_graph", grads=True)

    # gradcheck raises GradcheckError, naming the entry, if any gradient is wrong.
    passed = tr.gradcheck(lambda A, B, C: unrolled_rnn(A, B, C, xs, targets)[0], [A, B, C])
    print("\ngradcheck (float64, central differences, eps = 1e-6): passed for every entry "
          "of A, B and C")
    return {"loss": loss.item(), "gradcheck": passed, "graph": graph}


if __name__ == "__main__":
    main()
