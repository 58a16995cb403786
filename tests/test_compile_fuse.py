"""The fused cross-entropy (compile/fuse.py): where it fires, where it must not, and that it
gives the engine's loss and gradients."""
import numpy as np
import pytest

import tinygrad_rnn as tr
from tinygrad_rnn import nn
from tinygrad_rnn.compile import DEFAULT_PASSES, UNROLLED_PASSES, compile
from tinygrad_rnn.compile.fuse import CrossEntropy, CrossEntropyGrad, fuse_cross_entropy
from tinygrad_rnn.compile.tape import Forward
from compile_helpers import assert_compiled_matches, compiled_call, eager_call, sgd_nudge
from test_compile import sequence_problem

PASS_SETS = {"fused alone": (fuse_cross_entropy,), "unrolled": UNROLLED_PASSES, "rolled": DEFAULT_PASSES}
N, K = 6, 5


def fused(tape):
    """(fused forward instructions, fused backward instructions, names of the remaining ops)."""
    return ([s for s in tape.forward if isinstance(s, CrossEntropy)],
            [s for s in tape.backward if isinstance(s, CrossEntropyGrad)],
            [s.fn.name for s in tape.forward if isinstance(s, Forward)])


def classification(seed=0, dtype=np.float64):
    """A linear classifier W (K, 3) on x (N, 3), and three calls of (x, integer targets)."""
    rng = np.random.default_rng(seed)
    W = nn.Parameter(rng.normal(size=(K, 3)).astype(dtype))
    calls = [(tr.Tensor(rng.normal(size=(N, 3)).astype(dtype)), tr.Tensor(rng.integers(0, K, size=N)))
             for _ in range(3)]
    return W, calls


# ------------------------------------------------------------- where it fires

@pytest.mark.parametrize("passes", PASS_SETS.values(), ids=PASS_SETS.keys())
@pytest.mark.parametrize("layer_class, options", [(nn.RNN, {}), (nn.LSTM, {"num_layers": 2}),
                                                   (nn.GRU, {"bidirectional": True})],
                         ids=["RNN", "LSTM", "GRU"])
def test_it_fuses_the_cross_entropy_of_a_layer_s_step_and_matches_the_engine(layer_class, options, passes):
    loss_fn, calls, leaves = sequence_problem(layer_class, options)
    step = assert_compiled_matches(loss_fn, calls, leaves, passes, update=sgd_nudge)
    forward, backward, left = fused(step.tape(*calls[0]))
    assert len(forward) == len(backward) == 1 and forward[0].reduction == "mean"
    assert "log_softmax" not in left


@pytest.mark.parametrize("passes", PASS_SETS.values(), ids=PASS_SETS.keys())
@pytest.mark.parametrize("reduction, after, chain", [("mean", None, "mean"), ("sum", None, "sum"),
                                                     ("none", "weighted", "none"), ("none", "mean", "mean")])
def test_every_reduction_matches_the_engine(reduction, after, chain, passes):
    """The losses of "none" weighted, and their mean (the very chain of "mean")."""
    W, calls = classification()
    weights = np.linspace(0.5, 2.0, N)

    def loss_fn(x, y):
        losses = nn.cross_entropy(x @ W.T, y, reduction=reduction)
        if after == "mean":
            return losses.mean()
        return (losses * weights).sum() if after == "weighted" else losses

    step = assert_compiled_matches(loss_fn, calls, [W], passes, update=sgd_nudge)
    (forward,), (backward,), left = fused(step.tape(*calls[0]))
    assert forward.reduction == backward.reduction == chain and "log_softmax" not in left


@pytest.mark.parametrize("passes", PASS_SETS.values(), ids=PASS_SETS.keys())
def test_targets_computed_in_fn_or_frozen_and_logits_with_another_reader(passes):
    """Targets made by an integer op (a buffer the replay may reuse) and targets that the trace
    froze; the logits also feed a penalty, so their gradient has two shares."""
    W, calls = classification(1)
    frozen = np.random.default_rng(1).integers(0, K, size=N)

    def loss_fn(x, y):
        logits = x @ W.T
        shifted = (y + 1) - 1  # an integer op; later ops of its shape and dtype follow
        spare = ((y * 2) - y).sum() * 0.0
        return (nn.cross_entropy(logits, shifted) + nn.cross_entropy(logits, frozen, reduction="sum")
                + (logits * logits).mean() + spare)

    step = assert_compiled_matches(loss_fn, calls, [W], passes, update=sgd_nudge)
    forward, backward, _ = fused(step.tape(*calls[0]))
    assert [type(f.target) for f in forward] == [int, np.ndarray] and len(backward) == 2


def test_a_forward_only_step_fuses_the_forward():
    W, calls = classification(2)

    def loss_fn(x, y):
        return nn.cross_entropy(x @ W.T, y)

    step = compile(loss_fn, backward=False)
    for x, y in calls:
        np.testing.assert_allclose(step(x, y).data, loss_fn(x, y).data, rtol=1e-12)
    forward, backward, _ = fused(step.tape(*calls[0]))
    assert len(forward) == 1 and not forward[0].keep_saved and backward == []


def test_logits_without_gradient_fuse_the_forward_only():
    W, calls = classification(3)
    constant = tr.Tensor(np.random.default_rng(3).normal(size=(N, K)))

    def loss_fn(x, y):
        return nn.cross_entropy(constant, y) + (x @ W.T).sum()

    step = assert_compiled_matches(loss_fn, calls, [W], (fuse_cross_entropy,))
    forward, backward, _ = fused(step.tape(*calls[0]))
    assert len(forward) == 1 and not forward[0].keep_saved and backward == []


# --------------------------------------------------------- where it must not

def by_hand(x, y, W, rows=np.arange(N), scale=-1.0, axis=-1, reads=None):
    """The cross-entropy's chain written out with one of its parts changed, plus zero times
    what ``reads`` takes from (log-probabilities, picked entries), if given."""
    lp = (x @ W.T).log_softmax(axis=axis)
    picked = lp[rows, y]
    loss = (picked * scale).mean()
    return loss if reads is None else loss + (reads(lp, picked) ** 2).sum() * 0.5


NEAR_MISSES = {
    "log-probabilities with a second reader": lambda x, y, W: by_hand(x, y, W, reads=lambda lp, p: lp),
    "picked entries with a second reader": lambda x, y, W: by_hand(x, y, W, reads=lambda lp, p: p),
    "rows picked in another order": lambda x, y, W: by_hand(x, y, W, rows=np.arange(N)[::-1]),
    "a weight instead of -1": lambda x, y, W: by_hand(x, y, W, scale=-2.0),
    "log_softmax over the batch": lambda x, y, W: by_hand(x, y, W, axis=0),
    "one sample, 1-D logits": lambda x, y, W: nn.cross_entropy((x @ W.T)[0], y[0]),
}


def test_the_chain_written_by_hand_unchanged_is_fused():
    W, calls = classification(4)
    step = assert_compiled_matches(lambda x, y: by_hand(x, y, W), calls, [W], UNROLLED_PASSES)
    forward, backward, left = fused(step.tape(*calls[0]))
    assert len(forward) == len(backward) == 1 and "log_softmax" not in left


@pytest.mark.parametrize("passes", PASS_SETS.values(), ids=PASS_SETS.keys())
@pytest.mark.parametrize("near_miss", NEAR_MISSES)
def test_a_near_miss_is_left_alone_and_matches_the_engine(near_miss, passes):
    W, calls = classification(4)

    def loss_fn(x, y):
        return NEAR_MISSES[near_miss](x, y, W)

    step = assert_compiled_matches(loss_fn, calls, [W], passes, update=sgd_nudge)
    forward, backward, left = fused(step.tape(*calls[0]))
    assert forward == backward == [] and "log_softmax" in left


@pytest.mark.parametrize("passes", PASS_SETS.values(), ids=PASS_SETS.keys())
def test_returned_intermediates_are_left_alone(passes):
    W, calls = classification(5)

    def loss_fn(x, y):  # the per-sample losses are returned beside their mean
        losses = nn.cross_entropy(x @ W.T, y, reduction="none")
        return losses.mean(), losses

    step = assert_compiled_matches(loss_fn, calls, [W], passes, update=sgd_nudge)
    (forward,), (backward,), left = fused(step.tape(*calls[0]))
    assert forward.reduction == "none" and "div" in left  # fused as far as nothing else reads


def test_a_divisor_that_varies_stops_the_chain_at_the_sum():
    W, calls = classification(6)

    def loss_fn(x, y, count):
        return nn.cross_entropy(x @ W.T, y, reduction="sum") / count

    calls = [(x, y, tr.Tensor(np.float64(n))) for (x, y), n in zip(calls, (2.0, 3.0, 4.0))]
    step = assert_compiled_matches(loss_fn, calls, [W], UNROLLED_PASSES)
    (forward,), (backward,), left = fused(step.tape(*calls[0]))
    assert forward.reduction == "sum" and "div" in left


# ------------------------------------------------------------------ values

def test_float32_is_close_to_the_engine():
    W, calls = classification(7, np.float32)

    def loss_fn(x, y):
        return nn.cross_entropy(x @ W.T, y)

    step = compile(loss_fn)
    for args in calls * 2:
        (loss,), (grad,) = eager_call(loss_fn, args, [W])
        (fast,), (fast_grad,) = compiled_call(step, args, [W])
        assert fast.dtype == fast_grad.dtype == np.float32
        np.testing.assert_allclose(fast, loss, rtol=1e-6)
        np.testing.assert_allclose(fast_grad, grad, rtol=1e-5, atol=1e-6 * np.abs(grad).max())


def test_huge_logits_stay_finite_as_in_the_engine():
    W, calls = classification(8)
    W.data *= 1e4  # logits of about 1e4: exp overflows without the shift by each row's max

    def loss_fn(x, y):
        return nn.cross_entropy(x @ W.T, y)

    step = assert_compiled_matches(loss_fn, calls, [W], UNROLLED_PASSES)
    loss = step(*calls[0])
    assert np.isfinite(loss.data) and np.isfinite(W.grad).all()
