"""The rolling pass: the unrolled tape folded back into its loop, only where the steps are copies."""
import pathlib
import re

import numpy as np
import pytest

import tinygrad_rnn as tr
from tinygrad_rnn import nn
from tinygrad_rnn.compile import UNROLLED_PASSES, compile
from tinygrad_rnn.compile.replay import lower
from tinygrad_rnn import ops
from tinygrad_rnn.compile.roll import INLINE_FORWARD, Loop, inline_backward, inline_forward, subscript
from tinygrad_rnn.compile.tape import Backward, Forward, SliceGrad, plan_accumulation
from tinygrad_rnn.rng import generator
from compile_helpers import assert_compiled_matches
from test_compile import sequence_problem


def loops(tape):
    return [step for step in tape.forward + tape.backward if isinstance(step, Loop)]


@pytest.mark.parametrize("layer_class", [nn.RNN, nn.LSTM, nn.GRU])
def test_the_steps_of_a_layer_run_as_one_body(layer_class):
    fn, calls, leaves = sequence_problem(layer_class, {}, steps=9)
    step = assert_compiled_matches(fn, calls, leaves)
    forward = [s for s in step.tape(*calls[0]).forward if isinstance(s, Loop)]
    backward = [s for s in step.tape(*calls[0]).backward if isinstance(s, Loop)]
    assert len(forward) == 1 and len(backward) == 1
    assert forward[0].steps >= 6 and backward[0].steps >= 7
    assert len(forward[0].blocks) >= 3 and len(backward[0].blocks) >= 7


@pytest.mark.parametrize("layer_class", [nn.LSTM, nn.GRU])
def test_the_unrolled_replay_stays_available(layer_class):
    fn, calls, leaves = sequence_problem(layer_class, {}, steps=9)
    step = assert_compiled_matches(fn, calls, leaves, passes=UNROLLED_PASSES)
    assert loops(step.tape(*calls[0])) == []
    with pytest.raises(RuntimeError, match="no rolled loop"):
        step.source()


def steps_of(loop):
    """The steps t that a loop's label says it runs: 'steps, t=1..4' -> range(1, 5)."""
    first, last = loop.label.split("t=")[1].split("..")
    return range(int(first), int(last) + 1)


def hand_made(activations, steps=6):
    """(loss_fn, calls, leaves): a hand-made loop whose step t applies the ``activations(t)``
    (Tensor method names, or functions of the Tensor)."""
    tr.manual_seed(0)
    weight = nn.Parameter(np.random.default_rng(0).normal(size=(3, 3)))

    def loss_fn(xs):
        h = tr.Tensor(np.zeros((2, 3)))
        for t in range(xs.shape[0]):
            with tr.scope(f"t={t}"):
                h = xs[t] + h @ weight
                for name in activations(t):
                    h = getattr(h, name)() if isinstance(name, str) else name(h)
        return (h * h).sum()

    rng = np.random.default_rng(1)
    return loss_fn, [(tr.Tensor(rng.normal(size=(steps, 2, 3))),) for _ in range(2)], [weight]


def test_steps_that_are_not_copies_stay_unrolled():
    # no two steps in a row alike, nor two pairs of steps
    fn, calls, leaves = hand_made(lambda t: [("tanh", "sigmoid", "relu")[t % 3]])
    step = assert_compiled_matches(fn, calls, leaves)
    assert loops(step.tape(*calls[0])) == []


def test_a_step_that_differs_ends_the_loop():
    fn, calls, leaves = hand_made(lambda t: ["tanh"] * (2 if t == 4 else 1), steps=9)
    step = assert_compiled_matches(fn, calls, leaves)
    spans = [steps_of(s) for s in step.tape(*calls[0]).forward if isinstance(s, Loop)]
    assert spans == [range(1, 4), range(5, 8)], spans  # step 0 reads zeros, step 8 is the last


def test_a_share_of_a_broadcast_input_is_summed_back_in_a_loop():
    """A bias (3,) and a scale (1, 3) applied to (2, 3) rows at every step: the loop's body sums
    their shares back to their shapes."""
    rng = np.random.default_rng(0)
    weight, bias, scale = (nn.Parameter(rng.normal(size=shape)) for shape in [(3, 3), (3,), (1, 3)])

    def loss_fn(xs):
        h = tr.Tensor(np.zeros((2, 3)))
        for t in range(xs.shape[0]):
            with tr.scope(f"t={t}"):
                h = ((xs[t] + h @ weight) * scale + bias).tanh()
        return (h * h).sum()

    calls = [(tr.Tensor(rng.normal(size=(6, 2, 3))),) for _ in range(2)]
    step = assert_compiled_matches(loss_fn, calls, [weight, bias, scale])
    assert [s for s in step.tape(*calls[0]).backward if isinstance(s, Loop)]


def test_a_getitem_that_keeps_its_index_is_written_in_a_loop():
    """Columns picked by an array at every step: the getitem keeps (shape, index) for its
    gradient, and the loop's body writes that tuple with the index it was traced with."""
    rng = np.random.default_rng(0)
    weight, columns = nn.Parameter(rng.normal(size=(3, 3))), np.array([2, 0, 1])

    def loss_fn(xs):
        h = tr.Tensor(np.ones((2, 3)))
        for t in range(xs.shape[0]):
            with tr.scope(f"t={t}"):
                h = h * (xs[t] @ weight)[:, columns].tanh()
        return h.sum()

    calls = [(tr.Tensor(rng.normal(size=(6, 2, 3))),) for _ in range(2)]
    step = assert_compiled_matches(loss_fn, calls, [weight])
    assert loops(step.tape(*calls[0]))
    assert re.search(r"S\[[^]]*\] = \(\w+\.shape, \(slice\(None, None, None\), c\d+\)\)",
                     step.source())


def test_numbers_that_do_not_move_on_evenly_end_the_loop():
    """A constant made between steps 3 and 4 shifts every slot after it: the slots of steps
    1..7 then do not advance by one amount, so no loop spans steps 3 and 4."""
    tr.manual_seed(0)
    weight = nn.Parameter(np.random.default_rng(0).normal(size=(3, 3)))

    def loss_fn(xs):
        h = xs[0]
        for t in range(xs.shape[0]):
            if t == 4:
                h = h * 0.5
            with tr.scope(f"t={t}"):
                h = (xs[t] + h @ weight).tanh()
        return (h * h).sum()

    rng = np.random.default_rng(1)
    calls = [(tr.Tensor(rng.normal(size=(9, 2, 3))),) for _ in range(2)]
    step = assert_compiled_matches(loss_fn, calls, [weight])
    spans = [steps_of(s) for s in step.tape(*calls[0]).forward if isinstance(s, Loop)]
    assert spans == [range(1, 4), range(4, 8)], spans


def test_the_source_does_not_grow_with_the_number_of_steps():
    lengths = []
    for steps in (8, 16):
        fn, calls, leaves = sequence_problem(nn.LSTM, {}, steps=steps)
        step = compile(fn)
        step(*calls[0])
        lengths.append(len(step.source().splitlines()))
        assert f"for k in range({steps - 2}):" in step.source()  # backward: every step but the ends
    assert lengths[0] == lengths[1]


@pytest.mark.parametrize("layer_class, names", [(nn.LSTM, ["i", "f", "c_tilde", "o", "c", "h"]),
                                                (nn.GRU, ["r", "z", "n", "h"])])
def test_the_source_names_the_articles_quantities(layer_class, names):
    fn, calls, leaves = sequence_problem(layer_class, {}, steps=8)
    step = compile(fn)
    step(*calls[0])
    for name in names:  # made (as the value of its slot, if a later step reads it) and read by that name
        assert re.search(rf"^ +(V\[[^]]+\] = )?{name} = ", step.source(), re.M), name
        assert name == "h" or re.search(rf"[(, ]{name}[,)]", step.source()), name


def test_readme_shows_the_lstm_source_as_it_is_generated():
    """README's excerpt of an LSTM's loops: every line it shows, in order, and the length it gives."""
    readme = (pathlib.Path(__file__).parent.parent / "README.md").read_text()
    start = readme.index('```python\ndef run(V, S, G, L):\n    """lstm/l0')
    shown = [line for line in readme[start:readme.index("```\n", start + 3)].splitlines()[1:]
             if line.strip() != "..."]
    length = int(re.search(r"whatever T is: (\d+) lines for an LSTM of 16 units", readme).group(1))
    tr.manual_seed(0)
    lstm, readout = nn.LSTM(8, 16), nn.Linear(16, 8)

    def loss_fn(x, y):
        output, _ = lstm(x)
        return nn.cross_entropy(readout(output).reshape(-1, 8), y.reshape(-1))

    rng = np.random.default_rng(0)
    step = compile(loss_fn)
    x, y = rng.normal(size=(10, 4, 8)).astype(np.float32), rng.integers(0, 8, size=(10, 4))
    step(tr.Tensor(x), tr.Tensor(y))
    source = step.source().splitlines()
    assert len(source) == length
    lines = iter(source)
    assert all(any(line == generated for generated in lines) for line in shown)


def test_source_needs_a_rolled_trace():
    fn, calls, leaves = hand_made(lambda t: ["tanh"] * (t + 1))
    step = compile(fn)
    with pytest.raises(RuntimeError, match="call the step once"):
        step.source()
    step(*calls[0])
    with pytest.raises(RuntimeError, match="no rolled loop"):
        step.source()


def filled_slots(tape, args):
    """V, S, G, L of a call with ``args``, its inputs read as a replay reads them."""
    V, S, G, L = ([None] * tape.slots for _ in range(4))
    for source in tape.inputs:
        if source.arg is not None:
            V[source.slot], L[source.slot] = args[source.arg].data, args[source.arg]
        elif source.generator:
            V[source.slot] = generator()
        elif source.leaf is not None:
            V[source.slot], L[source.slot] = source.leaf.data, source.leaf
        else:
            V[source.slot] = source.array
    return V, S, G, L


def snapshot(slots):
    return [None if v is None else (np.array(v) if isinstance(v, np.ndarray) else v) for v in slots]


@pytest.mark.parametrize("layer_class", [nn.RNN, nn.LSTM, nn.GRU])
def test_the_source_run_on_its_own_gives_the_steps_results(layer_class, monkeypatch):
    """Each loop's source, executed alone on the slots of a call, leaves the values and gradients
    that the loop's steps, run one instruction after another, leave."""
    monkeypatch.setattr(np, "empty", np.zeros)  # the rows not yet written compare too
    fn, calls, leaves = sequence_problem(layer_class, {}, steps=8)
    step = compile(fn)
    step(*calls[0])
    tape = step.tape(*calls[0])
    program = tape.forward + ["seed"] + tape.backward
    for j in [j for j, s in enumerate(program) if isinstance(s, Loop)]:
        results = []
        for way in ("source", "steps"):
            V, S, G, L = filled_slots(tape, calls[1])
            with np.errstate(all="ignore"):
                for instruction in program[:j]:
                    if instruction == "seed":
                        G[tape.outputs[0]] = np.ones_like(V[tape.outputs[0]])
                    else:
                        lower([instruction])[0](V, S, G, L)
                loop = program[j]
                if way == "source":
                    source, names = loop.source()
                    namespace = dict(names)
                    exec(source, namespace)
                    namespace["run"](V, S, G, L)
                else:
                    for run in lower([i for block in loop.blocks for i in block]):
                        run(V, S, G, L)
            results.append((snapshot(V), snapshot(G)))
        for got, want in zip(*results):
            assert [v is None for v in got] == [v is None for v in want]
            assert all(v is None or np.array_equal(v, w) for v, w in zip(got, want))


def test_a_loop_whose_steps_add_their_shares_differently_runs_them_one_by_one():
    fn, calls, leaves = sequence_problem(nn.RNN, {}, steps=8)
    tape = compile(fn).tape(*calls[0])
    loop = next(s for s in tape.backward if isinstance(s, Loop))
    first = next(i for i in loop.blocks[0] if isinstance(i, Backward) and i.routes)
    loop.plan({first.routes[0][1]: True})  # that slot already owned: its first share is added in place
    assert not loop.rolled
    plan_accumulation(tape)  # planned in the tape's order again, as a replay plans it
    assert loop.rolled


# fn: (the shapes of its inputs, its params)
INLINED = {ops.Sigmoid: ([(3, 4)], {}), ops.Tanh: ([(3, 4)], {}), ops.Mul: ([(3, 4), (3, 4)], {}),
           ops.Add: ([(3, 4), (3, 4)], {}), ops.Sub: ([(3, 4), (3, 4)], {}),
           ops.GetItem: ([(3, 4)], {"index": (slice(None), slice(1, 3))}),
           ops.Linear: ([(3, 4), (5, 4), (5,)], {})}


def same(got, want):
    if isinstance(want, np.ndarray):
        return got.dtype == want.dtype and np.array_equal(got, want)
    if isinstance(want, tuple):
        return len(got) == len(want) and all(same(a, b) for a, b in zip(got, want))
    return got == want


@pytest.mark.parametrize("fn", list(INLINE_FORWARD), ids=lambda fn: fn.name)
def test_a_primitive_written_inline_is_the_primitive_bit_for_bit(fn):
    """The expressions a loop's body writes in place of a primitive's forward and backward give
    its value, saved tuple and shares, bit for bit."""
    shapes, params = INLINED[fn]
    rng = np.random.default_rng(0)
    args = [(rng.normal(size=shape) * 4).astype(np.float32) for shape in shapes]
    names = [f"a{k}" for k in range(len(args))]
    want, want_saved = fn.forward(*args, **params)
    value, saved = inline_forward(Forward(fn, tuple(range(len(args))), params, 9, True, shape=want.shape))
    scope = {"np": np, **dict(zip(names, args))}
    where = {"subscript": subscript(params["index"])} if "index" in params else {}
    scope["out"] = eval(value.format(*names, **params, **where), scope)
    assert same(scope["out"], want)
    assert same(eval(saved.format(*names, out="out", **params), scope), want_saved)
    if fn is ops.GetItem:  # its gradient is a SliceGrad, written by emit_slice
        return
    routes = tuple((i, i, shape) for i, shape in enumerate(shapes))
    saved_names, shares = inline_backward(Backward(9, fn, (True,) * len(args), routes))
    g = rng.normal(size=want.shape).astype(np.float32)
    scope = {"np": np, "saved": want_saved, "g": g}
    if saved_names:
        exec(f"{saved_names} = saved", scope)
    for got, expected in zip(shares, fn.backward(want_saved, g, (True,) * len(args))):
        assert same(eval(got.format(g="g"), scope), expected)
