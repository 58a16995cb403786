"""Memory of recurrent training: truncated BPTT stays flat, graphs are freed without gc, long chains.

The graph lives on the outputs and nothing points back, so a dropped loss
frees its whole unrolled graph by reference counting. These tests switch the
cyclic garbage collector off and count what a step leaves behind: live
Tensors (found through ``gc.get_objects()``), all objects the collector
tracks, and the bytes of ndarray data, which numpy reports to tracemalloc in
a domain of its own. The bytes of Python's own objects are not compared: the
interpreter keeps freed tuples and floats on free lists that tracemalloc
counts as live, and how full those lists are depends on what ran before.
"""
import gc
import sys
import tracemalloc
from contextlib import contextmanager

import numpy as np

import tinygrad_rnn as tr
from tinygrad_rnn import nn
from test_bptt_reference import reference_bptt

WINDOW = 20


@contextmanager
def gc_disabled():
    was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


@contextmanager
def tracing_arrays():
    tracemalloc.start()
    try:
        yield
    finally:
        tracemalloc.stop()


def live_tensors():
    # type(o), not isinstance: isinstance asks o for __class__, which some modules' objects
    # answer with a warning (torch.distributed.reduce_op), and warnings are errors here.
    return sum(issubclass(type(o), tr.Tensor) for o in gc.get_objects())


def array_bytes():
    """Bytes of ndarray data allocated since tracing started and still alive."""
    arrays = tracemalloc.DomainFilter(inclusive=True, domain=np.lib.tracemalloc_domain)
    return sum(trace.size for trace in tracemalloc.take_snapshot().filter_traces([arrays]).traces)


def sgd_step(params, lr=0.01):
    for p in params:
        p.data -= lr * p.grad
        p.grad = None


def test_truncated_bptt_keeps_one_window_of_graph_whatever_the_sequence_length():
    tr.manual_seed(0)
    lstm = nn.LSTM(4, 16)
    x = np.random.default_rng(0).normal(size=(400, 2, 4)).astype(np.float32)

    def held_at_the_last_window(steps, window):
        """Tensors and array bytes that the run holds after its last window's forward, its largest moment."""
        before, state = live_tensors(), None
        for start in range(0, steps, window):
            output, state = lstm(tr.Tensor(x[start:start + window]), state)
            if start + window >= steps:
                held = live_tensors() - before, array_bytes()
            (output * output).mean().backward()
            sgd_step(lstm.parameters())
            state = tuple(s.detach() for s in state)
        return held

    with gc_disabled(), tracing_arrays():
        short, long = held_at_the_last_window(100, WINDOW), held_at_the_last_window(400, WINDOW)
        full_short, full_long = held_at_the_last_window(50, 50), held_at_the_last_window(200, 200)
    # Each window starts from a detached state, so the 20th window's graph is the 5th's.
    assert long == short, f"(Tensors, array bytes) held by the 5th window {short}, by the 20th {long}"
    assert full_long[0] > 3 * full_short[0] and full_long[1] > 3 * full_short[1], (full_short, full_long)
    assert full_long[0] > 4 * long[0] and full_long[1] > 4 * long[1], (long, full_long)


def test_training_loop_memory_is_flat_and_graphs_are_freed_without_gc():
    tr.manual_seed(1)
    gru = nn.GRU(3, 8, bidirectional=True)
    readout = nn.Linear(16, 1)
    params = gru.parameters() + readout.parameters()
    x = tr.Tensor(np.random.default_rng(1).normal(size=(8, 4, 3)).astype(np.float32))
    target = np.random.default_rng(2).normal(size=(8, 4, 1)).astype(np.float32)

    def step():
        output, h_n = gru(x)
        error = readout(output) - target
        (error * error).mean().backward()
        sgd_step(params)

    tensors, arrays, objects = [], [], []
    with gc_disabled(), tracing_arrays():
        before = live_tensors()
        # Four windows of five steps: the first warms the interpreter's caches up, the others are compared.
        for _ in range(4):
            for _ in range(5):
                step()
            tensors.append(live_tensors())
            arrays.append(array_bytes())
            objects.append(len(gc.get_objects()))
        cycles = gc.collect()
    assert cycles == 0, f"{cycles} objects in reference cycles, left by the training steps"
    assert tensors == [before] * 4, f"live Tensors after each window {tensors}, {before} before the first"
    assert arrays[1:] == arrays[:1] * 3, f"bytes of live arrays after each window: {arrays}"
    # A leak of one object per step would add 5 to every window; the interpreter's own
    # bookkeeping (a cache entry, a resized dict) moves the count by one or two, once.
    growth = np.diff(objects)
    assert max(growth) <= 2, f"objects the collector tracks, after each window: {objects}"


def test_a_graph_dropped_without_backward_is_freed_by_reference_counting():
    lstm = nn.LSTM(2, 4, num_layers=2)
    with gc_disabled():
        before = live_tensors()
        output, (h_n, c_n) = lstm(tr.Tensor(np.ones((30, 3, 2), np.float32)))
        during = live_tensors()
        del output, h_n, c_n
        after = live_tensors()
        cycles = gc.collect()
    assert cycles == 0
    assert during > before + 30 and after == before, (before, during, after)


def test_ten_thousand_step_rnn_backpropagates_with_the_default_recursion_limit():
    steps = 10_000
    rng = np.random.default_rng(3)
    rnn = nn.RNN(1, 2).to(np.float64)
    rnn.load_state_dict({name: rng.normal(0, 0.5, p.shape) for name, p in rnn.named_parameters()})
    xs = rng.normal(size=(steps, 1, 1))
    d_output = rng.normal(size=(steps, 1, 2))
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(1000)
    try:
        x = tr.Tensor(xs, requires_grad=True)
        output, _ = rnn(x)
        (output * d_output).sum().backward()
    finally:
        sys.setrecursionlimit(limit)

    p = {name: rnn.state_dict()[f"{name}_l0"] for name in ["weight_ih", "weight_hh", "bias_ih", "bias_hh"]}
    _, _, dxs, _, grads = reference_bptt("rnn_tanh", p, xs, np.zeros((1, 2)), d_output, np.zeros((1, 2)))
    np.testing.assert_allclose(x.grad, dxs, rtol=0, atol=1e-10)
    for name, grad in grads.items():
        np.testing.assert_allclose(getattr(rnn, f"{name}_l0").grad, grad, rtol=1e-10, atol=1e-10)
