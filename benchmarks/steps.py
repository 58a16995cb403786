"""The training step being timed, in four implementations that start from the same weights.

One step: forward over the sequence, a linear readout y(t) = B h(t) + b at
every step, the mean cross-entropy over all T * B predictions (integer
targets), BPTT, one SGD update, gradients cleared. Each builder returns a
function ``step() -> loss`` that runs one such step on its own copy of the
weights, so calling the four in turn compares like with like:

- ``engine``: tinygrad_rnn's sequence layer, ``nn.Linear``, ``nn.cross_entropy``, ``optim.SGD``;
- ``numpy``: the hand-written forward and BPTT of ``numpy_reference``;
- ``torch-cells``: PyTorch eager ``RNNCell/LSTMCell/GRUCell`` in a Python loop (the closest peer);
- ``torch-fused``: PyTorch's ``nn.RNN/LSTM/GRU`` (one call for the whole sequence).
"""
import argparse
import os
from dataclasses import dataclass

import numpy as np

import numpy_reference
import tinygrad_rnn as tr
from tinygrad_rnn import nn, optim

# PyTorch's OpenMP threads spin-wait after every parallel region by default,
# taking the cores from numpy's BLAS threads that run next in this process:
# on 2 cores that made numpy's L RNN step 8x slower. Passive waiting must be
# chosen before torch loads its OpenMP runtime, so it is set here, where torch
# is imported for the whole benchmark.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
try:
    import torch
except ImportError:
    torch = None

CELLS = ("rnn", "lstm", "gru")
LEARNING_RATE = 0.01


@dataclass(frozen=True)
class Config:
    """A problem size: batch B, input features I, hidden size H, time steps T.

    The readout predicts one of K = I classes at every step.
    """
    name: str
    batch: int
    input: int
    hidden: int
    steps: int

    @property
    def classes(self):
        return self.input


CONFIGS = {"S": Config("S", batch=8, input=16, hidden=32, steps=20),
           "M": Config("M", batch=32, input=64, hidden=128, steps=50),
           "L": Config("L", batch=64, input=256, hidden=512, steps=50)}


def cell_and_config(doc, argv, reps, what):
    """The arguments of a script that times one cell at one size: ``cell``, ``config`` and
    ``--reps`` (``reps`` by default, ``what`` it counts); ``doc``'s first paragraph describes it."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("cell", choices=list(CELLS))
    parser.add_argument("config", choices=list(CONFIGS))
    parser.add_argument("--reps", type=int, default=reps, help=f"{what} timed (default {reps})")
    return parser.parse_args(argv)


def make_problem(config, cell, dtype=np.float32, seed=0):
    """(weights, x (T, B, I), targets (T, B)) for one configuration, repeatable by ``seed``.

    ``weights`` uses the names of :mod:`numpy_reference` (PyTorch's, plus
    ``readout.weight`` and ``readout.bias``).
    """
    weights = numpy_reference.init_params(cell, config.input, config.hidden, config.classes,
                                          dtype=dtype, seed=seed)
    rng = np.random.default_rng(seed + 1)
    x = rng.standard_normal((config.steps, config.batch, config.input)).astype(dtype)
    targets = rng.integers(0, config.classes, size=(config.steps, config.batch))
    return weights, x, targets


def available_implementations():
    """The implementation names that can run here (the PyTorch ones need torch)."""
    return list(BUILDERS) if torch is not None else ["engine", "numpy"]


def build_step(implementation, cell, weights, x, targets, lr=LEARNING_RATE):
    """``step() -> loss`` for one implementation, on a private copy of ``weights``.

    The dtype of ``x`` (float32 or float64) is the dtype of the whole step.
    """
    if implementation not in BUILDERS:
        raise ValueError(f"build_step: implementation must be one of {list(BUILDERS)}, "
                         f"got {implementation!r}")
    if implementation.startswith("torch") and torch is None:
        raise RuntimeError(f"build_step: '{implementation}' needs PyTorch, which is not installed "
                           "(make torch)")
    if cell not in CELLS:
        raise ValueError(f"build_step: cell must be one of {list(CELLS)}, got {cell!r}")
    return BUILDERS[implementation](cell, weights, x, targets, lr)


def _split(weights):
    """(recurrent-layer weights, readout weights {'weight', 'bias'}), as copies."""
    layer = {name: w.copy() for name, w in weights.items() if not name.startswith("readout.")}
    readout = {name[len("readout."):]: w.copy() for name, w in weights.items()
               if name.startswith("readout.")}
    return layer, readout


def engine_model(cell, weights, x, lr):
    """(layer, readout, optimizer, classes) in tinygrad_rnn, loaded with copies of ``weights``."""
    layer_weights, readout_weights = _split(weights)
    inputs, hidden, classes = x.shape[2], weights["weight_hh_l0"].shape[1], weights["readout.weight"].shape[0]
    layer = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}[cell](inputs, hidden).to(x.dtype)
    readout = nn.Linear(hidden, classes).to(x.dtype)
    layer.load_state_dict(layer_weights)
    readout.load_state_dict(readout_weights)
    optimizer = optim.SGD(layer.parameters() + readout.parameters(), lr=lr)
    return layer, readout, optimizer, classes


def engine_step(cell, weights, x, targets, lr):
    """tinygrad_rnn: ``nn.RNN/LSTM/GRU`` over the sequence, ``nn.Linear`` on its (T, B, H) output."""
    layer, readout, optimizer, classes = engine_model(cell, weights, x, lr)
    inputs_t, flat_targets = tr.Tensor(x), targets.reshape(-1)

    def step():
        output, _ = layer(inputs_t)
        loss = nn.cross_entropy(readout(output).reshape(-1, classes), flat_targets)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        return loss.item()
    return step


def numpy_step(cell, weights, x, targets, lr):
    """The hand-written forward, BPTT and update of :mod:`numpy_reference`."""
    params = {name: w.copy() for name, w in weights.items()}

    def step():
        return numpy_reference.train_step(cell, params, x, targets, lr)
    return step


def _torch_setup(module_class, weights, lr, strip=""):
    """(layer, readout, optimizer) in PyTorch, loaded with copies of ``weights``.

    ``strip`` is removed from the layer's weight names (the cells' are
    ``weight_ih``, the sequence layers' ``weight_ih_l0``).
    """
    layer_weights, readout_weights = _split(weights)
    inputs, hidden = weights["weight_ih_l0"].shape[1], weights["weight_hh_l0"].shape[1]
    dtype = getattr(torch, str(weights["weight_hh_l0"].dtype))
    layer = module_class(inputs, hidden).to(dtype)
    layer.load_state_dict({name.replace(strip, ""): torch.from_numpy(w)
                           for name, w in layer_weights.items()})
    readout = torch.nn.Linear(hidden, len(readout_weights["bias"])).to(dtype)
    readout.load_state_dict({name: torch.from_numpy(w) for name, w in readout_weights.items()})
    optimizer = torch.optim.SGD(list(layer.parameters()) + list(readout.parameters()), lr=lr)
    return layer, readout, optimizer


def _torch_loss_and_update(logits, targets, optimizer):
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets)
    loss.backward()
    optimizer.step()
    optimizer.zero_grad()
    return loss.item()


def torch_cells_step(cell, weights, x, targets, lr):
    """PyTorch eager: one ``RNNCell/LSTMCell/GRUCell`` call per time step in a Python loop."""
    module_class = {"rnn": torch.nn.RNNCell, "lstm": torch.nn.LSTMCell, "gru": torch.nn.GRUCell}[cell]
    layer, readout, optimizer = _torch_setup(module_class, weights, lr, strip="_l0")
    inputs_t, flat_targets = torch.from_numpy(x), torch.from_numpy(targets.reshape(-1))

    def step():
        state, hs = None, []
        for x_t in inputs_t:
            state = layer(x_t, state)
            hs.append(state[0] if cell == "lstm" else state)
        return _torch_loss_and_update(readout(torch.stack(hs)), flat_targets, optimizer)
    return step


def torch_fused_step(cell, weights, x, targets, lr):
    """PyTorch's ``nn.RNN/LSTM/GRU``: the whole sequence in one call."""
    module_class = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell]
    layer, readout, optimizer = _torch_setup(module_class, weights, lr)
    inputs_t, flat_targets = torch.from_numpy(x), torch.from_numpy(targets.reshape(-1))

    def step():
        output, _ = layer(inputs_t)
        return _torch_loss_and_update(readout(output), flat_targets, optimizer)
    return step


BUILDERS = {"engine": engine_step, "numpy": numpy_step,
            "torch-cells": torch_cells_step, "torch-fused": torch_fused_step}
