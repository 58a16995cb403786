"""Memory of recurrent training: truncated BPTT stays flat, graphs are freed without gc, long chains.

The graph lives on the outputs and nothing points back, so a dropped loss
frees its whole unrolled graph by reference counting; these tests measure
that with tracemalloc, with the cyclic garbage collector switched off.
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


def sgd_step(params, lr=0.01):
    for p in params:
        p.data -= lr * p.grad
        p.grad = None


def train_window(lstm, x, state):
    output, state = lstm(tr.Tensor(x), state)
    (output * output).mean().backward()
    sgd_step(lstm.parameters())
    return tuple(s.detach() for s in state)


def peak_memory(run):
    tracemalloc.start()
    try:
        run()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_truncated_bptt_peak_memory_does_not_grow_with_the_sequence():
    tr.manual_seed(0)
    lstm = nn.LSTM(4, 16)
    x = np.random.default_rng(0).normal(size=(800, 2, 4)).astype(np.float32)

    def truncated(steps):
        def run():
            state = None
            for start in range(0, steps, WINDOW):
                state = train_window(lstm, x[start:start + WINDOW], state)
        return run

    def untruncated(steps):
        def run():
            output, _ = lstm(tr.Tensor(x[:steps]))
            (output * output).mean().backward()
        return run

    with gc_disabled():
        short, long = peak_memory(truncated(200)), peak_memory(truncated(800))
        full_short, full_long = peak_memory(untruncated(50)), peak_memory(untruncated(200))
    assert long < 1.3 * short, (short, long)
    assert full_long > 3 * full_short, (full_short, full_long)
    assert full_long > 4 * long


def test_training_loop_memory_is_flat_and_graphs_are_freed_without_gc():
    tr.manual_seed(1)
    gru = nn.GRU(3, 8, bidirectional=True)
    readout = nn.Linear(16, 1)
    params = gru.parameters() + readout.parameters()
    x = tr.Tensor(np.random.default_rng(1).normal(size=(8, 4, 3)).astype(np.float32))
    target = np.random.default_rng(2).normal(size=(8, 4, 1)).astype(np.float32)
    current, objects, peak = {}, {}, 0
    with gc_disabled():
        tracemalloc.start()
        try:
            for step in range(1, 21):
                output, h_n = gru(x)
                error = readout(output) - target
                loss = (error * error).mean()
                loss.backward()
                sgd_step(params)
                del output, h_n, error, loss
                current[step], step_peak = tracemalloc.get_traced_memory()
                peak = max(peak, step_peak - current[step])
                if step in (5, 20):
                    # With gc off, a cycle made by any step so far would still be here.
                    assert gc.collect() == 0, f"reference cycles left by step {step}"
                    objects[step] = len(gc.get_objects())
        finally:
            tracemalloc.stop()
    # Python's free lists keep a few freed tuples and floats, so allow a sliver
    # of one step's graph, which is what a leak would retain every step.
    assert abs(current[20] - current[5]) < 0.05 * peak, (current, peak)
    # A leak of even one object per step would add 15 between steps 5 and 20; the
    # interpreter's own bookkeeping (a cache entry, a resized dict) moves it by one or two.
    assert abs(objects[20] - objects[5]) <= 5, objects


def test_a_graph_dropped_without_backward_is_freed_by_reference_counting():
    lstm = nn.LSTM(2, 4, num_layers=2)
    with gc_disabled():
        output, (h_n, c_n) = lstm(tr.Tensor(np.ones((30, 3, 2), np.float32)))
        del output, h_n, c_n
        assert gc.collect() == 0


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
