"""The first call of a compiled step, phase by phase, against an eager step of the same model.

    .venv/bin/python benchmarks/first_call.py lstm S
    .venv/bin/python benchmarks/first_call.py gru M --reps 5

The first call of the benchmark's compiled training step (``compiled.py``:
``tr.compile`` of the loss function, then the SGD update) runs ``fn`` under
the tracer, turns the trace into a tape, runs the passes, lowers the tape
(the rolled loops' source generated and compiled) and runs the replay's
backward on the trace. Each phase is timed inside the real call, by wrapping
the functions that ``Compiled`` calls; the rest (the update, the results)
is what the total leaves. Medians over ``--reps`` new compiled steps, each
in turn with an eager step of the engine, on one BLAS thread.
"""
import importlib
import time

import numpy as np

import machine
import steps
import tinygrad_rnn as tr
from tinygrad_rnn import nn
from tinygrad_rnn.compile import DEFAULT_PASSES
from tinygrad_rnn.compile.roll import REWRITES, roll_loops
from tinygrad_rnn.compile.trace import Tracer

# The module (``import tinygrad_rnn.compile as ...`` finds the function tr.compile first).
compile_module = importlib.import_module("tinygrad_rnn.compile")


def first_call_phases(cell, config, reps):
    """({phase: median ms} of the first call, in the order they run, the eager step's median ms)."""
    weights, x, targets = steps.make_problem(config, cell)
    eager = steps.build_step("engine", cell, weights, x, targets)
    eager()
    rounds, eager_ms = [], []
    for _ in range(reps):
        start = time.perf_counter()
        eager()
        eager_ms.append((time.perf_counter() - start) * 1e3)
        rounds.append(one_first_call(cell, weights, x, targets))
    phases = {name: float(np.median([r[name] for r in rounds])) for name in rounds[0]}
    return phases, float(np.median(eager_ms))


def one_first_call(cell, weights, x, targets):
    """{phase: ms} of the first call of a new compiled step."""
    spent = {}

    def timed(name, function):
        def run(*args, **kwargs):
            start = time.perf_counter()
            result = function(*args, **kwargs)
            spent[name] = spent.get(name, 0.0) + (time.perf_counter() - start) * 1e3
            return result
        return run

    layer, readout, optimizer, classes = steps.engine_model(cell, weights, x, steps.LEARNING_RATE)
    inputs, flat_targets = tr.Tensor(x), tr.Tensor(targets.reshape(-1))

    def loss_fn(x, y):
        output, _ = layer(x)
        return nn.cross_entropy(readout(output).reshape(-1, classes), y)

    rewrites = tuple(timed(f"  {rewrite.__name__} (roll.py)", rewrite) for rewrite in REWRITES)
    rolling = timed("  roll_loops: finding the copies", lambda tape: roll_loops(tape, rewrites=()))
    passes = [timed(f"  {p.__name__}", p) for p in DEFAULT_PASSES if p is not roll_loops]
    passes += [*rewrites, rolling]
    replay_class = compile_module.Replay

    class TimedReplay(replay_class):
        def __init__(self, *args):
            timed("lowering: closures, the loops' source generated and compiled",
                  super().__init__)(*args)

        def backward_from(self, tracer, tensors):
            timed("the replay's backward on the trace", super().backward_from)(tracer, tensors)

    step = tr.compile(timed("fn under the tracer", loss_fn), passes=passes)
    original_tape = Tracer.tape
    try:
        compile_module.Replay, Tracer.tape = TimedReplay, timed("tracer.tape", original_tape)
        start = time.perf_counter()
        step(inputs, flat_targets).item()
        optimizer.step()
        optimizer.zero_grad()
        total = (time.perf_counter() - start) * 1e3
    finally:
        compile_module.Replay, Tracer.tape = replay_class, original_tape
    spent["the update, the results and the rest"] = total - sum(spent.values())
    spent["the whole first call"] = total
    return spent


def main(argv=None):
    args = steps.cell_and_config(__doc__, argv, 7, "first calls")
    machine.set_blas_threads(1)
    phases, eager = first_call_phases(args.cell, steps.CONFIGS[args.config], args.reps)
    print(f"first call of the compiled {args.cell} {args.config} step; an eager step takes {eager:.2f} ms")
    for name, ms in phases.items():
        print(f"{ms:9.2f} ms  {ms / eager:5.2f} eager steps  {name}")


if __name__ == "__main__":
    main()
