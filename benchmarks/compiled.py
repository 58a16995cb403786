"""The compiled step (``tr.compile``) and the step's matrix products alone, for ``bench.py``.

- ``compiled``: the engine's step of ``steps.engine_step`` with its loss
  function traced once by ``tr.compile`` and replayed after: forward, BPTT
  and the leaves' gradients, then the same SGD update; the default passes
  roll the tape's steps back into loops of generated source
  (``tinygrad_rnn/compile/roll.py``);
- ``unrolled``: the same with ``passes=UNROLLED_PASSES``, one closure per
  instruction of the unrolled tape;
- ``matmuls``: only the matrix products of the hand-written numpy step
  (``numpy_reference``) on arrays of the same shapes, in the same order:
  the BLAS floor of that step, which no implementation on numpy can beat.

Both are timed interleaved with the other implementations, so every ratio of
a row comes from one run. Also here: the peak memory of the compiled M LSTM
step (tracemalloc) and the first call of the compiled step (trace, passes and
the engine's backward), each against its target.
"""
import time

import numpy as np

import measure
import steps
import tinygrad_rnn as tr
from tinygrad_rnn import nn
from tinygrad_rnn.compile import DEFAULT_PASSES, UNROLLED_PASSES

# The targets of issue 25. {config: {baseline: the largest allowed compiled / baseline time ratio}}
STEP_TARGETS = {"S": {"numpy": 1.3, "torch-cells": 0.5}, "M": {"numpy": 1.1, "torch-cells": 0.6},
                "L": {"numpy": 1.03}}
MEMORY_LIMIT = 1.0
FIRST_CALL_LIMIT = 3.0
SHORT_NAMES = {"numpy": "numpy", "torch-cells": "cells", "torch-fused": "fused", "matmuls": "matmuls"}


def build_steps(cell, weights, x, targets, lr=steps.LEARNING_RATE):
    """{"compiled", "unrolled": step() -> loss, "matmuls": step() -> None} on private copies of
    ``weights``."""
    return {"compiled": compiled_step(cell, weights, x, targets, lr),
            "unrolled": compiled_step(cell, weights, x, targets, lr, UNROLLED_PASSES),
            "matmuls": matmul_step(cell, weights, x)}


def compiled_step(cell, weights, x, targets, lr, passes=DEFAULT_PASSES):
    """``steps.engine_step`` with its loss function compiled with ``passes``."""
    layer, readout, optimizer, classes = steps.engine_model(cell, weights, x, lr)
    inputs_t, flat_targets = tr.Tensor(x), tr.Tensor(targets.reshape(-1))

    def loss_fn(x, y):
        output, _ = layer(x)
        return nn.cross_entropy(readout(output).reshape(-1, classes), y)

    compiled = tr.compile(loss_fn, passes=passes)

    def step():
        loss = compiled(inputs_t, flat_targets)
        optimizer.step()
        optimizer.zero_grad()
        return loss.item()
    return step


def first_call_seconds(cell, weights, x, targets, repeats=3):
    """Median time of the first call of a new compiled step (trace, passes, the engine's
    backward and the update), over ``repeats`` new steps: one first call alone also pays
    for what a process does once (a heap that grows, a garbage collection)."""
    times = []
    for _ in range(repeats):
        step = compiled_step(cell, weights, x, targets, steps.LEARNING_RATE)
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return measure.median(times)


# Each call of the main table follows another implementation's step, whose code and data have
# taken the caches; a training loop calls its one step again and again. The warm table runs
# each step this many times in a row per round and times the last.
WARM_BURST = 3


def warm_times(config, cell, reps, burst=WARM_BURST):
    """{implementation: median ms} of the compiled step, the hand-written numpy step and (if
    PyTorch is installed) its eager cells, each timed warm: ``burst`` steps in a row per round,
    the last timed, the rounds interleaved."""
    weights, x, targets = steps.make_problem(config, cell)
    implementations = [impl for impl in ("numpy", "torch-cells") if impl in steps.available_implementations()]
    functions = {impl: steps.build_step(impl, cell, weights, x, targets) for impl in implementations}
    functions["compiled"] = compiled_step(cell, weights, x, targets, steps.LEARNING_RATE)
    times = measure.interleaved_times(functions, reps, burst=burst)
    return {impl: measure.median(ts) * 1e3 for impl, ts in times.items()}


def warm_table(records, ms, ratio):
    """The warm timings of the records that have them (``record["warm_ms"]``), as a table."""
    headers = ["config", "cell", "compiled ms", "numpy ms", "torch-cells ms", "compiled/numpy",
               "compiled/cells", "target (main table)"]
    rows = []
    for r in (r for r in records if "warm_ms" in r):
        warm, limits = r["warm_ms"], STEP_TARGETS.get(r["config"], {})
        cells = warm["compiled"] / warm["torch-cells"] if "torch-cells" in warm else None
        rows.append([r["config"], r["cell"], ms(warm["compiled"]), ms(warm["numpy"]),
                     ms(warm.get("torch-cells")), ratio(warm["compiled"] / warm["numpy"]), ratio(cells),
                     ", ".join(f"{SHORT_NAMES[base]}<={limit}x" for base, limit in limits.items())])
    return headers, rows


def matmul_step(cell, weights, x):
    """The matrix products of ``numpy_reference.train_step``, alone, on arrays of their shapes.

    Forward: the input projection of all steps, one h W_hh^T per step, the
    readout. Backward: dL/dh from the readout, the readout's weight gradient,
    one d_pre W_hh per step, and the two weight gradients of the recurrence.
    """
    steps_, batch, inputs = x.shape
    rows, hidden = weights["weight_hh_l0"].shape
    classes = weights["readout.weight"].shape[0]
    rng = np.random.default_rng(0)

    def array(*shape):
        return rng.standard_normal(shape).astype(x.dtype)

    x_flat, w_ih, w_hh = x.reshape(-1, inputs), weights["weight_ih_l0"], weights["weight_hh_l0"]
    hs, d_pre, readout = array(steps_, batch, hidden), array(steps_, batch, rows), weights["readout.weight"]
    d_logits = array(steps_ * batch, classes)

    def step():
        x_flat @ w_ih.T
        for t in range(steps_):
            hs[t] @ w_hh.T
        flat_h = hs.reshape(-1, hidden)
        flat_h @ readout.T
        d_logits @ readout
        d_logits.T @ flat_h
        for t in range(steps_):
            d_pre[t] @ w_hh
        d_pre.reshape(-1, rows).T @ x_flat
        d_pre[1:].reshape(-1, rows).T @ hs[:-1].reshape(-1, hidden)
    return step


# ---------------------------------------------------------------- reporting

def ratios(record):
    """{baseline: compiled / baseline} of one step record, for every baseline timed."""
    medians = record["median_ms"]
    return {impl: medians["compiled"] / medians[impl] for impl in SHORT_NAMES if impl in medians}


def unrolled(record):
    """The compiled step's time / the unrolled one's (None if the record has no unrolled step)."""
    medians = record["median_ms"]
    return medians["compiled"] / medians["unrolled"] if "unrolled" in medians else None


def step_table(records, ms, ratio, verdict):
    """The compiled step beside the others, as table headers and rows.

    ``ms`` and ``ratio`` format the figures; ``verdict(ratios, targets)`` is bench.py's.
    """
    names = ["compiled", "unrolled", "engine", "numpy", "torch-cells", "torch-fused", "matmuls"]
    headers = (["config", "cell"] + [f"{name} ms" for name in names]
               + [f"compiled/{SHORT_NAMES[name]}" for name in SHORT_NAMES] + ["compiled/unrolled"]
               + ["first call / engine step", "target", "result"])
    rows = []
    for r in records:
        got = ratios(r)
        first = r.get("first_call_ms")
        limits = STEP_TARGETS.get(r["config"], {})
        target = ", ".join(f"{SHORT_NAMES[base]}<={limit}x" for base, limit in limits.items())
        rows.append([r["config"], r["cell"]] + [ms(r["median_ms"].get(name)) for name in names]
                    + [ratio(got.get(name)) for name in SHORT_NAMES] + [ratio(unrolled(r))]
                    + [ratio(None if first is None else first / r["median_ms"]["engine"]),
                       (target + ", " if target else "") + f"first<={FIRST_CALL_LIMIT:g}x",
                       _combined(verdict(got, limits), first is None or first / r["median_ms"]["engine"]
                                 <= FIRST_CALL_LIMIT)])
    return headers, rows


def _combined(result, first_ok):
    if not first_ok:
        return "FAIL"
    return "PASS" if result == "-" else result


def peak_memory(config_name="M", cell="lstm"):
    """{"compiled", "numpy", "engine": peak bytes of one step (tracemalloc)} and the ratio."""
    weights, x, targets = steps.make_problem(steps.CONFIGS[config_name], cell)
    peaks = {"compiled": measure.peak_bytes(compiled_step(cell, weights, x, targets, steps.LEARNING_RATE))}
    for impl in ("engine", "numpy"):
        peaks[impl] = measure.peak_bytes(steps.build_step(impl, cell, weights, x, targets))
    return {"config": config_name, "cell": cell, "peak_bytes": peaks,
            "ratio": peaks["compiled"] / peaks["numpy"]}


def memory_table(memory, ratio):
    peaks = memory["peak_bytes"]
    headers = ["figure", "compiled", "engine", "numpy", "compiled/numpy", "target", "result"]
    rows = [[f"peak memory, {memory['config']} {memory['cell'].upper()} step (tracemalloc)",
             f"{peaks['compiled'] / 2**20:.1f} MiB", f"{peaks['engine'] / 2**20:.1f} MiB",
             f"{peaks['numpy'] / 2**20:.1f} MiB", ratio(memory["ratio"]), f"<= {MEMORY_LIMIT:.2f}x",
             "PASS" if memory["ratio"] <= MEMORY_LIMIT else "FAIL"]]
    return headers, rows
