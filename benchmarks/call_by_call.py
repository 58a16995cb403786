"""The compiled step and the hand-written numpy step, call by call.

    .venv/bin/python benchmarks/call_by_call.py rnn S
    .venv/bin/python benchmarks/call_by_call.py lstm M --reps 100

Times every instruction of ``tr.compile``'s replay of the benchmark's
training step (``steps.py``), forward then backward, as ``replay.lower``
runs them (a ``Free`` folded into the instruction before it; a rolled loop
is one instruction, printed with its time per step), then the parts of the
hand-written step of ``numpy_reference.py``, in turn with the replay.
Medians over ``--reps`` rounds, one BLAS thread. Each call is timed on its
own, so a column's total is a little above the step's time in ``make
bench``: compare the two columns with each other, piece by piece.
"""
import time

import numpy as np

import machine
import numpy_reference
import steps
import tinygrad_rnn as tr
from tinygrad_rnn import nn
from tinygrad_rnn.compile.roll import Loop
from tinygrad_rnn.compile.tape import Free


def labels(instructions):
    """(label, steps) of each lowered instruction: a ``Free`` after an instruction is part of
    it; ``steps`` is a rolled loop's number of steps, else None."""
    result = []
    for instruction in instructions:
        if isinstance(instruction, Free) and result and not result[-1][2]:
            result[-1] = (*result[-1][:2], True)
            continue
        fn = getattr(instruction, "fn", None)
        name = getattr(fn, "__name__", "") or getattr(instruction, "label", "")
        steps_ = instruction.steps if isinstance(instruction, Loop) else None
        result.append((f"{type(instruction).__name__} {name}".strip(), steps_, False))
    return [(label, steps_) for label, steps_, _ in result]


def call_by_call(cell, config, reps):
    """(rows, hand): ``rows`` = [(label, median µs, steps or None)] of every instruction of the
    compiled step's replay, forward then backward; ``hand`` = {part: median µs} of the
    hand-written step. One round replays the step once (then the SGD update, as in a training
    loop) and runs each hand-written part once, so that a change in the machine's speed
    touches both sides alike."""
    replay_once, named = compiled_replay(cell, config)
    parts = hand_parts(cell, config)
    replayed, hand = np.zeros((reps, len(named))), np.zeros((reps, len(parts)))
    for rep in range(reps):
        replayed[rep] = replay_once()
        for k, part in enumerate(parts.values()):
            start = time.perf_counter()
            part()
            hand[rep, k] = time.perf_counter() - start
    rows = [(label, us, count) for (label, count), us in zip(named, np.median(replayed, axis=0) * 1e6)]
    return rows, dict(zip(parts, np.median(hand, axis=0) * 1e6))


def compiled_replay(cell, config):
    """(replay_once() -> seconds of each lowered instruction, [(label, steps or None)]) for the
    compiled training step of ``steps.py``."""
    weights, x, targets = steps.make_problem(config, cell)
    layer, readout, optimizer, classes = steps.engine_model(cell, weights, x, steps.LEARNING_RATE)
    inputs, flat_targets = tr.Tensor(x), tr.Tensor(targets.reshape(-1))

    def loss_fn(x, y):
        output, _ = layer(x)
        return nn.cross_entropy(readout(output).reshape(-1, classes), y)

    step = tr.compile(loss_fn)
    step(inputs, flat_targets)
    replay = step._last
    runs = replay.forward + replay.backward
    named = labels(replay.tape.forward) + labels(replay.tape.backward)
    if len(named) != len(runs):
        raise RuntimeError(f"call_by_call: {len(named)} labels for {len(runs)} lowered instructions; "
                           "labels() no longer pairs a Free as replay.lower does")

    def replay_once():
        seconds = np.zeros(len(runs))
        V, S, G, L = replay.slots([inputs, flat_targets])
        with np.errstate(all="ignore"):
            for k, run in enumerate(runs):
                if k == len(replay.forward):
                    G[replay.loss_slot] = np.ones_like(V[replay.loss_slot])
                start = time.perf_counter()
                run(V, S, G, L)
                seconds[k] = time.perf_counter() - start
        optimizer.step()
        optimizer.zero_grad()
        return seconds
    return replay_once, named


def hand_parts(cell, config):
    """{part: a callable that runs it} of the hand-written step of ``numpy_reference``."""
    params, x, targets = steps.make_problem(config, cell)
    forward, backward = numpy_reference._CELLS[cell]
    hs, cache = forward(params, x)
    _, d_hs, _ = numpy_reference._readout_loss(params, hs, targets)
    return {"forward (input projection and steps)": lambda: forward(params, x),
            "readout, loss and their backward": lambda: numpy_reference._readout_loss(params, hs, targets),
            "backward (steps and weight gradients)": lambda: backward(params, x, hs, d_hs, cache),
            "the whole step": lambda: numpy_reference.loss_and_grads(cell, params, x, targets)}


def main(argv=None):
    args = steps.cell_and_config(__doc__, argv, 300, "replays")
    machine.set_blas_threads(1)
    config = steps.CONFIGS[args.config]
    rows, hand = call_by_call(args.cell, config, args.reps)
    print(f"compiled replay, {args.cell} {args.config}: {sum(t for _, t, _ in rows):.0f} µs")
    for label, us, count in rows:
        each = f"   ({us / count:.1f} µs a step)" if count else ""
        print(f"{us:10.1f} µs  {label}{each}")
    print(f"hand-written numpy step, {args.cell} {args.config}:")
    for part, us in hand.items():
        print(f"{us:10.1f} µs  {part}")


if __name__ == "__main__":
    main()
