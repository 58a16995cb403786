"""Draw the pictures shown in README into docs/images/ (run by `make images`).

Every picture comes from a seeded layer on seeded data, so running this again
gives the same files:

- rnn_3_steps.svg, lstm_3_steps.svg, gru_3_steps.svg: the unrolled graph of
  each layer over three steps, op by op (what `python -m tinygrad_rnn draw`
  writes).
- rnn_rolled.svg, lstm_rolled.svg: the same RNN and LSTM, folded: each step
  drawn once, its state looping back, for the rolled-vs-unrolled pair.
- rnn_3_steps_grads.svg: the RNN again after backward, shaded by gradient norm.
- lstm_nan.svg: an LSTM whose input holds a NaN at t=2: the input is labelled
  "first nan", and only what the NaN reached is outlined in red.
- grads_30_steps.svg: a tanh RNN and an LSTM (hidden size 8) over 30 steps,
  one node per step, drawn together on one gradient scale: the gradient of
  the loss on the last step fades toward t=0 much faster through the RNN.
- bptt_state_grads.png, bptt_weight_grads.png: a ``bptt.record`` of a tanh
  RNN, an LSTM and an LSTM with forget-gate bias +2 over 30 steps (the
  README's example, :func:`bptt_pictures`). bptt_gates.png is demo 04's
  picture of the LSTM's gates, copied by ``make images``.

    python scripts/make_images.py [--out docs/images] [--png]

``--png`` also writes a PNG next to every SVG, to look at them quickly.
"""
import argparse
import os

import numpy as np

import tinygrad_rnn as tr
from tinygrad_rnn import bptt, nn, viz
from tinygrad_rnn.rng import generator

IMAGES = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "docs", "images"))
LAYERS = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


def unrolled_loss(kind, steps, hidden, seed=0, backward=False):
    """A seeded one-layer ``kind`` over ``steps`` steps of seeded data (batch 1, 3
    inputs); returns loss = sum of the last output h(T-1)."""
    tr.manual_seed(seed)
    layer = LAYERS[kind](3, hidden)
    x = tr.Tensor(generator().standard_normal((steps, 1, 3)).astype(np.float32), name="x")
    output, _ = layer(x)
    loss = output[-1].sum()
    loss.name = "loss"
    if backward:
        loss.backward(retain_grads=True)
    return loss


def nan_at_t2():
    """A seeded LSTM over 4 steps whose input holds a NaN at t=2; returns the sum of its output."""
    tr.manual_seed(0)
    layer = nn.LSTM(3, 2)
    data = generator().standard_normal((4, 1, 3)).astype(np.float32)
    data[2, 0, 1] = np.nan
    output, _ = layer(tr.Tensor(data, name="x"))
    return output.sum()


def write(out, name, *roots, png=False, **options):
    path = viz.render(*roots, path=os.path.join(out, name), **options)
    if png and name.endswith(".svg"):
        viz.render(*roots, path=path[:-len(".svg")] + ".png", **options)
    print(f"wrote {path} ({os.path.getsize(path) // 1024} KB)")


def bptt_pictures(out):
    """The README's ``bptt.record`` example: writes two pictures, returns {name: (layer, recording)}."""
    from matplotlib.figure import Figure

    tr.manual_seed(0)
    x = tr.Tensor(np.random.default_rng(0).standard_normal((30, 4, 3)), dtype="float32")
    layers = {"tanh RNN": nn.RNN(3, 8), "LSTM": nn.LSTM(3, 8), "LSTM, forget-gate bias +2": nn.LSTM(3, 8)}
    layers["LSTM, forget-gate bias +2"].bias_ih_l0.data[8:16] += 2.0   # f's rows (gates i, f, g, o)
    states, weights = Figure().subplots(), Figure().subplots()
    recordings = {}
    for name, layer in layers.items():
        with bptt.record() as rec:
            output, _ = layer(x)
            output[-1].sum().backward()               # the loss is on the last step only
        viz.plot_state_grads(rec, ax=states, label=name)                      # ||dL/dh(t)||
        viz.plot_weight_grads(rec, layer.weight_hh_l0, ax=weights, label=name)  # ||(dL/dC)_t||
        recordings[name] = layer, rec
    states.figure.savefig(os.path.join(out, "bptt_state_grads.png"), dpi=90)
    weights.figure.savefig(os.path.join(out, "bptt_weight_grads.png"), dpi=90)
    return recordings


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=IMAGES, help="folder to write into (default: docs/images)")
    parser.add_argument("--png", action="store_true", help="also write a PNG of every SVG")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    for kind in LAYERS:
        write(args.out, f"{kind}_3_steps.svg", unrolled_loss(kind, 3, hidden=4), png=args.png)
    for kind in ("rnn", "lstm"):
        write(args.out, f"{kind}_rolled.svg", unrolled_loss(kind, 3, hidden=4), detail="rolled", png=args.png)
    write(args.out, "rnn_3_steps_grads.svg", unrolled_loss("rnn", 3, hidden=4, backward=True),
          grads=True, png=args.png)
    rnn = unrolled_loss("rnn", 30, hidden=8, backward=True)
    lstm = unrolled_loss("lstm", 30, hidden=8, backward=True)
    write(args.out, "grads_30_steps.svg", rnn, lstm, detail="cells", grads=True, png=args.png)
    write(args.out, "lstm_nan.svg", nan_at_t2(), png=args.png)
    for name, (layer, rec) in bptt_pictures(args.out).items():
        states, shares = rec.grad_norms("h"), rec.weight_grad_by_step(layer.weight_hh_l0)
        first, last = np.linalg.norm(shares[1]), np.linalg.norm(shares[-1])
        print(f"bptt.record, {name}: ||dL/dh(0)|| / ||dL/dh(29)|| = {states[0] / states[-1]:.1e}, "
              f"||(dL/dC)_1|| / ||(dL/dC)_29|| = {first / last:.1e}")


if __name__ == "__main__":
    main()
