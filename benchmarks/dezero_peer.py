"""DeZero, the other teaching engine on numpy: the same training step, and its cost per node.

DeZero (``pip install dezero``; the engine of the book "Deep Learning from
Scratch 3") has an Elman RNN and an LSTM built from its own Functions, and no
GRU. Its LSTM multiplies x and h by eight separate Linear layers per step,
where tinygrad_rnn uses one product per sequence and one per step; that
difference is part of what is measured. Both start from the same weights (the
PyTorch layout of ``steps.make_problem``, cut into DeZero's per-gate blocks),
so their first losses agree, which :func:`build_step` checks.
"""
import numpy as np

import steps
from measure import interleaved_times, median
from measure import tanh_chain as engine_tanh_chain

# DeZero 0.0.13, its last release, still names np.int, which numpy removed in 1.24:
# give it the alias (the builtin int, as it always was) before it is imported.
if not hasattr(np, "int"):
    np.int = int
try:
    import dezero
    import dezero.functions as F
    import dezero.layers as L
    import dezero.optimizers
except ImportError:
    dezero = None

CELLS = ("rnn", "lstm")
# DeZero's LSTM gates by name, and their row block in PyTorch's order i, f, g (= u), o.
LSTM_BLOCKS = {"i": 0, "f": 1, "u": 2, "o": 3}


def _load(linear, weight, bias=None):
    """DeZero's Linear computes x W + b with W (in, out): the transpose of PyTorch's weight."""
    linear.W.data = np.ascontiguousarray(weight.T)
    if bias is not None:
        linear.b.data = bias.copy()


def _layer(cell, weights):
    hidden, inputs = weights["weight_hh_l0"].shape[1], weights["weight_ih_l0"].shape[1]
    bias = weights["bias_ih_l0"] + weights["bias_hh_l0"]
    if cell == "rnn":
        layer = L.RNN(hidden, in_size=inputs)
        _load(layer.x2h, weights["weight_ih_l0"], bias)
        _load(layer.h2h, weights["weight_hh_l0"])
        return layer
    layer = L.LSTM(hidden, in_size=inputs)
    for gate, k in LSTM_BLOCKS.items():
        rows = slice(k * hidden, (k + 1) * hidden)
        _load(getattr(layer, f"x2{gate}"), weights["weight_ih_l0"][rows], bias[rows])
        _load(getattr(layer, f"h2{gate}"), weights["weight_hh_l0"][rows])
    return layer


def build_step(cell, weights, x, targets, lr=steps.LEARNING_RATE):
    """``step() -> loss``: DeZero's layer over the sequence, a Linear readout and the mean
    cross-entropy at every step, backward, one SGD update."""
    layer = _layer(cell, weights)
    readout = L.Linear(weights["readout.bias"].shape[0], in_size=weights["weight_hh_l0"].shape[1])
    _load(readout, weights["readout.weight"], weights["readout.bias"])
    optimizer = dezero.optimizers.SGD(lr).setup(layer)
    readout_optimizer = dezero.optimizers.SGD(lr).setup(readout)

    def step():
        layer.reset_state()
        loss = 0
        for x_t, target_t in zip(x, targets):
            loss = loss + F.softmax_cross_entropy(readout(layer(x_t)), target_t)
        loss = loss / len(x)
        layer.cleargrads()
        readout.cleargrads()
        loss.backward()
        optimizer.update()
        readout_optimizer.update()
        return float(loss.data)
    return step


def tanh_chain(length):
    """``run()``: forward and backward through ``length`` DeZero tanh nodes on a (4, 4) array."""
    x = dezero.Variable(np.random.default_rng(0).standard_normal((4, 4)).astype(np.float32))

    def run():
        y = x
        for _ in range(length):
            y = F.tanh(y)
        y.backward()
    return run


def compare(configs, reps):
    """Rows [config, cell, engine ms, dezero ms, engine / dezero] and the per-node costs in us."""
    rows = []
    for name in configs:
        for cell in CELLS:
            weights, x, targets = steps.make_problem(steps.CONFIGS[name], cell)
            functions = {"engine": steps.build_step("engine", cell, weights, x, targets),
                         "dezero": build_step(cell, weights, x, targets)}
            first = {impl: fn() for impl, fn in functions.items()}
            if not np.isclose(first["engine"], first["dezero"], rtol=1e-4):
                raise AssertionError(f"DeZero's {name} {cell} loss {first['dezero']} differs "
                                     f"from the engine's {first['engine']}")
            times = {impl: median(ts) for impl, ts in interleaved_times(functions, reps).items()}
            rows.append([name, cell, times["engine"] * 1e3, times["dezero"] * 1e3,
                         times["engine"] / times["dezero"]])
    length = 1000
    chains = {"engine": engine_tanh_chain(length), "dezero": tanh_chain(length)}
    per_node = {impl: median(ts) / length * 1e6 for impl, ts in interleaved_times(chains, reps).items()}
    return rows, per_node

