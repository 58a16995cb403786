"""tr.compile against the reference engine: every layer option, hand-made cells, truncated BPTT."""
import dataclasses
import gc

import numpy as np
import pytest

import tinygrad_rnn as tr
from tinygrad_rnn import nn, optim
from tinygrad_rnn.compile import DEFAULT_PASSES, UNROLLED_PASSES, TraceError, compile
from compile_helpers import assert_close, assert_compiled_matches, compiled_call, eager_call, sgd_nudge

LAYER_OPTIONS = [
    (nn.RNN, {}), (nn.RNN, {"nonlinearity": "relu", "bias": False}),
    (nn.LSTM, {}), (nn.LSTM, {"num_layers": 2, "bidirectional": True}),
    (nn.LSTM, {"batch_first": True, "bias": False}),
    (nn.GRU, {}), (nn.GRU, {"reset_after": False}),
    (nn.GRU, {"reset_after": False, "num_layers": 2, "batch_first": True, "bidirectional": True}),
    (nn.RNN, {"num_layers": 3, "bidirectional": True, "batch_first": True}),
]
PASS_SETS = {"plain": (), "unrolled": UNROLLED_PASSES, "rolled": DEFAULT_PASSES}


def sequence_problem(layer_class, options, steps=4, batch=3, inputs=2, hidden=3, classes=4, seed=0):
    """(loss_fn, [(x, y)] for three calls, leaves): a float64 layer (``loss_fn.layer``) with a
    readout and the cross-entropy."""
    tr.manual_seed(seed)
    layer = layer_class(inputs, hidden, **options).to(np.float64)
    directions = 2 if options.get("bidirectional") else 1
    readout = nn.Linear(directions * hidden, classes).to(np.float64)
    rng = np.random.default_rng(seed)
    first = (batch, steps) if options.get("batch_first") else (steps, batch)

    def loss_fn(x, y):
        output, _ = layer(x)
        return nn.cross_entropy(readout(output).reshape(-1, classes), y.reshape(-1))

    calls = [(tr.Tensor(rng.normal(size=(*first, inputs))), tr.Tensor(rng.integers(0, classes, size=first)))
             for _ in range(3)]
    loss_fn.layer = layer
    return loss_fn, calls, layer.parameters() + readout.parameters()


@pytest.mark.parametrize("passes", PASS_SETS.values(), ids=PASS_SETS.keys())
@pytest.mark.parametrize("layer_class, options", LAYER_OPTIONS,
                         ids=[f"{c.__name__}-{o}" for c, o in LAYER_OPTIONS])
def test_sequence_layers_match_the_engine(layer_class, options, passes):
    loss_fn, calls, leaves = sequence_problem(layer_class, options)
    step = assert_compiled_matches(loss_fn, calls, leaves, passes, update=sgd_nudge)
    assert step.traces == 1


@pytest.mark.parametrize("passes", PASS_SETS.values(), ids=PASS_SETS.keys())
@pytest.mark.parametrize("layer_class", [nn.RNN, nn.LSTM, nn.GRU])
def test_dropout_between_layers_in_eval_and_in_training_mode(layer_class, passes):
    loss_fn, calls, leaves = sequence_problem(layer_class, {"num_layers": 2, "dropout": 0.5})
    loss_fn.layer.eval()
    assert_compiled_matches(loss_fn, calls, leaves, passes, update=sgd_nudge)
    loss_fn.layer.train()  # a new step: the mode is frozen in a trace
    step = compile(loss_fn, passes=passes)
    losses = []
    for seed, args in zip([1, 2, 1], calls[:1] * 3):
        tr.manual_seed(seed)
        want = eager_call(loss_fn, args, leaves)
        tr.manual_seed(seed)
        got = compiled_call(step, args, leaves)
        assert_close(got[0], want[0], "loss")
        assert_close(got[1], want[1], "gradient")
        losses.append(got[0][0].item())
    assert losses[0] != losses[1] and losses[0] == pytest.approx(losses[2], rel=1e-12)


def test_the_plain_replay_adds_the_same_bits_as_backward():
    loss_fn, calls, leaves = sequence_problem(nn.LSTM, {"num_layers": 2})
    step = compile(loss_fn, passes=())
    for args in calls:
        (loss,), grads = eager_call(loss_fn, args, leaves)
        (fast,), fast_grads = compiled_call(step, args, leaves)
        assert loss == fast and all((a == b).all() for a, b in zip(grads, fast_grads))


@pytest.mark.parametrize("passes", PASS_SETS.values(), ids=PASS_SETS.keys())
def test_hand_made_cell_through_unroll(passes):
    rng = np.random.default_rng(1)
    A = nn.Parameter(rng.normal(size=(3, 2)))
    C = nn.Parameter(rng.normal(size=(3, 3)) * 0.5)
    B = nn.Parameter(rng.normal(size=(1, 3)))

    def cell(x, h):  # h(t) = tanh(A x(t) + C h(t-1)), with a hand-made zero state
        h = tr.Tensor(np.zeros((x.shape[0], 3))) if h is None else h
        return (x @ A.T + h @ C.T).tanh()

    def loss_fn(xs, target):
        outputs, h = nn.unroll(cell, xs)
        prediction = tr.stack(outputs) @ B.T
        return nn.mse_loss(prediction, target) + (h * h).mean()

    calls = [(tr.Tensor(rng.normal(size=(5, 2, 2))), tr.Tensor(rng.normal(size=(5, 2, 1))))
             for _ in range(3)]
    assert_compiled_matches(loss_fn, calls, [A, C, B], passes, update=sgd_nudge)


@pytest.mark.parametrize("passes", PASS_SETS.values(), ids=PASS_SETS.keys())
def test_truncated_bptt_carries_the_state_between_calls(passes):
    tr.manual_seed(2)
    lstm, readout = nn.LSTM(2, 3).to(np.float64), nn.Linear(3, 1).to(np.float64)
    leaves = lstm.parameters() + readout.parameters()
    rng = np.random.default_rng(2)
    xs, ys = rng.normal(size=(12, 2, 2)), rng.normal(size=(12, 2, 1))

    def window(x, y, state):
        output, state = lstm(x, state)
        return nn.mse_loss(readout(output), y), state

    def run(call):
        state, losses = None, []
        for start in range(0, 12, 4):
            returned, grads = call(window, (tr.Tensor(xs[start:start + 4]), tr.Tensor(ys[start:start + 4]),
                                            state), leaves)
            losses.append((returned, grads))
            state = tuple(tr.Tensor(s) for s in returned[1:])
        return losses

    step = compile(window, passes=passes)
    eager = run(lambda fn, args, leaves: eager_call(fn, args, leaves))
    compiled = run(lambda fn, args, leaves: compiled_call(step, args, leaves))
    for (want, want_grads), (got, got_grads) in zip(eager, compiled):
        assert_close(got, want, "loss and state")
        assert_close(got_grads, want_grads, "gradient")
    assert step.traces == 2  # the first window starts from None, the others from a state


def test_returned_structure_matches_fn():
    tr.manual_seed(3)
    lstm = nn.LSTM(2, 3).to(np.float64)
    step = compile(lambda x: (lstm(x)[0].sum(), lstm(x)[1], [lstm(x)[0]]))
    x = tr.Tensor(np.ones((2, 1, 2)))
    for _ in range(2):
        loss, (h, c), [output] = step(x)
        assert loss.shape == () and h.shape == c.shape == (1, 1, 3) and output.shape == (2, 1, 3)
        assert not h.requires_grad and h.parents == ()


@pytest.mark.parametrize("passes", [UNROLLED_PASSES, DEFAULT_PASSES], ids=["unrolled", "rolled"])
def test_a_training_run_of_100_steps_matches_the_engine(passes):
    def train(compiled):
        tr.manual_seed(4)
        gru, readout = nn.GRU(2, 4).to(np.float64), nn.Linear(4, 3).to(np.float64)
        optimizer = optim.Adam(gru.parameters() + readout.parameters(), lr=0.01)
        rng = np.random.default_rng(4)

        def loss_fn(x, y):
            output, _ = gru(x)
            return nn.cross_entropy(readout(output).reshape(-1, 3), y.reshape(-1))

        step = compile(loss_fn, passes=passes) if compiled else None
        losses = []
        for _ in range(100):
            x, y = tr.Tensor(rng.normal(size=(5, 2, 2))), tr.Tensor(rng.integers(0, 3, size=(5, 2)))
            loss = step(x, y) if compiled else loss_fn(x, y)
            if not compiled:
                loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            losses.append(loss.item())
        return np.array(losses), [p.data for p in gru.parameters()]

    (eager, eager_weights), (fast, fast_weights) = train(False), train(True)
    assert eager[-1] < eager[0]
    assert_close([fast], [eager], "loss curve")
    assert_close(fast_weights, eager_weights, "trained weights")


def test_backward_false_replays_the_forward_only():
    tr.manual_seed(5)
    rnn = nn.RNN(2, 3).to(np.float64)
    step = compile(lambda x: rnn(x)[0], backward=False)
    for seed in range(3):
        x = tr.Tensor(np.random.default_rng(seed).normal(size=(4, 1, 2)))
        np.testing.assert_allclose(step(x).data, rnn(x)[0].data, rtol=1e-12)
        assert all(p.grad is None for p in rnn.parameters())


def test_readme_eager_and_compiled_example():
    def train(compiled):
        tr.manual_seed(6)
        K = 3
        lstm, readout = nn.LSTM(2, 4), nn.Linear(4, K)
        opt = optim.SGD(lstm.parameters() + readout.parameters(), lr=0.1)
        rng = np.random.default_rng(6)
        batches = [(tr.Tensor(rng.normal(size=(5, 2, 2)).astype(np.float32)),
                    tr.Tensor(rng.integers(0, K, size=(5, 2)))) for _ in range(3)]
        losses = []
        if not compiled:
            for x, y in batches:
                loss = nn.cross_entropy(readout(lstm(x)[0]).reshape(-1, K), y.reshape(-1))
                loss.backward()
                opt.step()
                opt.zero_grad()
                losses.append(loss.item())
            return losses

        # the README's example, verbatim from here
        def loss_fn(x, y):
            output, _ = lstm(x)
            return nn.cross_entropy(readout(output).reshape(-1, K), y.reshape(-1))

        step = tr.compile(loss_fn)      # nothing runs yet
        for x, y in batches:            # Tensors of the same shapes and dtypes each time
            loss = step(x, y)           # = loss_fn(x, y), then loss.backward()
            opt.step()
            opt.zero_grad()
            # to here
            losses.append(loss.item())
        assert step.traces == 1
        return losses

    np.testing.assert_allclose(train(True), train(False), rtol=1e-5)


# ------------------------------------------------------------ the first call

def test_the_first_call_s_backward_is_the_replay_s_on_the_trace(monkeypatch):
    loss_fn, calls, leaves = sequence_problem(nn.LSTM, {"num_layers": 2, "dropout": 0.5})
    tr.manual_seed(7)
    want = eager_call(loss_fn, calls[0], leaves)
    step = compile(loss_fn)

    def refused(*args, **kwargs):
        raise AssertionError("the engine's backward ran")

    monkeypatch.setattr(tr.Tensor, "backward", refused)
    tr.manual_seed(7)  # the same dropout masks as the eager call
    got = compiled_call(step, calls[0], leaves)
    assert_close(got[0], want[0], "loss")
    assert_close(got[1], want[1], "gradient")


def test_the_first_call_releases_the_traced_graph_as_backward_does():
    W0 = nn.Parameter(np.ones((2, 2)))
    kept = []

    def loss_fn(x):
        hidden = (x @ W0).tanh()
        kept.append(hidden)  # a tensor of the trace, kept by the caller
        return (hidden * hidden).sum()

    loss_fn(tr.Tensor(np.ones((3, 2)))).backward()
    compile(loss_fn)(tr.Tensor(np.ones((3, 2))))
    for hidden in kept:  # eager, then traced: backward through either graph again is refused
        with pytest.raises(RuntimeError, match="was released by an earlier backward"):
            hidden.sum().backward()


def test_the_first_call_under_detect_anomaly_reports_a_backward_anomaly():
    W0 = nn.Parameter(np.array([[0.0, 4.0]]))

    def loss_fn(x):  # sqrt's gradient at 0 is inf
        return ((W0 * x).sqrt() * 3).sum()

    with tr.detect_anomaly(), pytest.raises(FloatingPointError, match="backward of 'sqrt'"):
        compile(loss_fn)(tr.Tensor(np.ones((1, 2))))


def test_the_first_call_refuses_a_change_in_place_as_backward_does():
    W0 = nn.Parameter(np.ones((2, 2)))

    def loss_fn(x):
        y = x @ W0
        z = (y * y).sum()
        y.data += 1  # y was saved by the multiply: its gradient would be wrong
        return z

    with pytest.raises(RuntimeError, match="was changed in place after the forward pass"):
        compile(loss_fn)(tr.Tensor(np.ones((3, 2))))


class Counting:
    """A forward instruction of a pass that counts its runs and says nothing about running again."""

    def __init__(self, runs):
        self.runs = runs

    def reads(self):
        return (), (), ()

    def lower(self, free):
        def run(V, S, G, L):
            self.runs.append(1)
        return run


def test_an_instruction_that_may_not_run_twice_keeps_the_engine_s_backward():
    loss_fn, calls, leaves = sequence_problem(nn.GRU, {})
    runs = []

    def counting(tape):
        return dataclasses.replace(tape, forward=[Counting(runs)] + list(tape.forward))

    assert_compiled_matches(loss_fn, calls[:1], leaves, (counting,) + DEFAULT_PASSES)
    assert runs == []  # the trace ran fn itself; the replay's forward never ran


@pytest.mark.parametrize("raises", [False, True])
def test_the_cyclic_collector_is_back_on_after_a_first_call(raises):
    W0 = nn.Parameter(np.ones((2, 2)))

    def loss_fn(x):
        loss = (x @ W0).sum()
        return loss.item() if raises else loss  # .item() of a traced value is refused

    step = compile(loss_fn)
    if raises:
        with pytest.raises(TraceError):
            step(tr.Tensor(np.ones((3, 2))))
    else:
        step(tr.Tensor(np.ones((3, 2))))
    assert gc.isenabled()
