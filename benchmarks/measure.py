"""How things are timed and weighed: interleaved repetitions, per-node cost, long unrolls, peak memory.

Timings are wall-clock (``time.perf_counter``) with the garbage collector
left on, as a user would run. Implementations are timed round by round, one
call each per round in an order drawn anew, so a burst of load from
elsewhere on the machine slows all of them alike instead of one.
"""
import random
import resource
import statistics
import time
import tracemalloc

import numpy as np

import tinygrad_rnn as tr
from steps import torch
from tinygrad_rnn import nn, ops


def interleaved_times(functions, reps, warmup=1, burst=1):
    """{name: [seconds per call]} for ``reps`` rounds over ``functions`` ({name: callable}).

    Each function first runs ``warmup`` times untimed. Each round runs them in
    a new order, drawn from a generator seeded with 0, so that no
    implementation always runs first or always right after the same other one
    (a step timed right after PyTorch's fused LSTM finds the caches taken,
    and one that always followed it would pay for that every time). With
    ``burst`` above 1, each function runs that many times in a row in a round
    and only the last call is timed: the step as a training loop runs it,
    right after itself, rather than right after another implementation's.
    """
    names = list(functions)
    for _ in range(warmup):
        for name in names:
            functions[name]()
    times = {name: [] for name in names}
    order = random.Random(0)
    for _ in range(reps):
        for name in order.sample(names, len(names)):
            for _ in range(burst - 1):
                functions[name]()
            start = time.perf_counter()
            functions[name]()
            times[name].append(time.perf_counter() - start)
    return times


def minor_page_faults(function, reps=3):
    """Median minor page faults of one ``function()`` call, after one uncounted call.

    A minor fault is the kernel handing the process a fresh zeroed page:
    memory that the allocator had returned to the system and asks for again.
    """
    function()
    counts = []
    for _ in range(reps):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        function()
        counts.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    return median(counts)


def median(values):
    return statistics.median(values)


def tanh_chain(length, backend="engine"):
    """``run()``: forward and backward through ``length`` tanh nodes on a (4, 4) tensor.

    The per-node cost of the engine's bookkeeping (recording a node,
    visiting it in backward), which dominates small recurrent networks.
    """
    start = np.random.default_rng(0).standard_normal((4, 4)).astype(np.float32)
    if backend == "numpy":  # the same arithmetic with no graph: the floor for any engine on numpy
        seed = np.ones((4, 4), dtype=np.float32)

        def run():
            outs, y = [], start
            for _ in range(length):
                y = np.tanh(y)
                outs.append(y)
            g = seed
            for out in reversed(outs):
                g = g * (1 - out * out)
        return run
    if backend == "torch":
        x = torch.tensor(start, requires_grad=True)

        def run():
            y = x
            for _ in range(length):
                y = torch.tanh(y)
            y.backward(torch.ones_like(y))
    else:
        x = tr.Tensor(start, requires_grad=True)
        seed = np.ones((4, 4), dtype=np.float32)

        def run():
            y = x
            for _ in range(length):
                y = y.tanh()
            y.backward(seed)
    return run


def per_node_microseconds(reps, length=1000):
    """{backend: median microseconds per tanh node, forward + backward}: the engine,
    torch if present, and "numpy", the same ufunc calls without any graph."""
    chains = {"engine": tanh_chain(length), "numpy": tanh_chain(length, "numpy")}
    if torch is not None:
        chains["torch"] = tanh_chain(length, "torch")
    times = interleaved_times(chains, reps)
    return {name: median(ts) / length * 1e6 for name, ts in times.items()}


def unrolled_backward_seconds(lengths, reps, hidden=4):
    """({T: median seconds of backward alone through a tiny tanh ``nn.RNN`` unrolled T steps},
    the median over rounds of the longest's time / the shortest's in the same round).

    Batch 1, input and hidden size ``hidden``; the loss is the mean of all
    outputs, so every step receives a gradient. Each repetition builds a
    fresh graph per length (backward releases it) and times only
    ``loss.backward()``. The lengths take turns and the growth is taken
    within each round, so a change in the machine's speed between rounds
    (this one has two, about 2x apart) moves both times of a ratio alike.
    """
    tr.manual_seed(0)
    rnn = nn.RNN(hidden, hidden)
    rng = np.random.default_rng(0)
    inputs = {T: tr.Tensor(rng.standard_normal((T, 1, hidden)).astype(np.float32)) for T in lengths}
    times = {T: [] for T in lengths}
    for _ in range(reps):
        for T in lengths:
            output, _ = rnn(inputs[T])
            loss = output.mean()
            start = time.perf_counter()
            loss.backward()
            times[T].append(time.perf_counter() - start)
            rnn.zero_grad()
    short, long = min(lengths), max(lengths)
    growth = median([t_long / t_short for t_short, t_long in zip(times[short], times[long])])
    return {T: median(ts) for T, ts in times.items()}, growth


def primitive_work(engine_step, numpy_step, reps):
    """(the engine step's numpy work alone / the hand-written numpy step,
    that work / the whole engine step), from medians of interleaved runs.

    One engine step is recorded: every call of a primitive's forward,
    backward or ``add_into`` (a slice's gradient), with its arguments. Replaying those
    calls in order, with no graph around them, is the numpy work of the
    step. A first ratio above a target means that no bookkeeping, however
    cheap, could meet it with these primitives.
    """
    calls = _recorded_primitive_calls(engine_step)

    def replay():
        for function, args, kwargs in calls:
            function(*args, **kwargs)

    times = interleaved_times({"engine": engine_step, "replay": replay, "numpy": numpy_step}, reps)
    engine, work, reference = (median(times[name]) for name in ("engine", "replay", "numpy"))
    return work / reference, work / engine


def _recorded_primitive_calls(step):
    """[(function, args, kwargs)] of every primitive forward, backward and
    ``add_into`` during one ``step()``, after an unrecorded one.

    Primitives write only into arrays they create, so a replay repeats the
    same work; only the parameters, which the optimizer updates in place
    after backward, hold newer values.
    """
    step()
    calls = []

    def recorded(function):
        def run(*args, **kwargs):
            calls.append((function, args, kwargs))
            return function(*args, **kwargs)
        return run

    primitives = [op for op in vars(ops).values()
                  if isinstance(op, type) and "forward" in vars(op) and "backward" in vars(op)]
    originals = {(op, name): vars(op)[name] for op in primitives
                 for name in ("forward", "backward", "add_into") if name in vars(op)}
    try:
        for (op, name), method in originals.items():
            setattr(op, name, staticmethod(recorded(method.__func__)))
        step()
    finally:
        for (op, name), method in originals.items():
            setattr(op, name, method)
    return calls


def peak_bytes(step):
    """Peak bytes allocated (tracemalloc: Python objects and numpy arrays) during one ``step()``.

    Measured above what is alive before the call, after one untimed call so
    that caches and lazily created buffers are not counted.
    """
    step()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        step()
        return tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()


def no_grad_records_nothing(layer, readout, x):
    """True when inference under ``tr.no_grad()`` leaves every output without a graph.

    Checks the sequence output, the final state and the readout's logits:
    no parents, no op, no ``requires_grad``.
    """
    with tr.no_grad():
        output, state = layer(x)
        logits = readout(output)
    states = state if isinstance(state, tuple) else (state,)
    return all(t.parents == () and t.op is None and not t.requires_grad
               for t in (output, logits, *states))
