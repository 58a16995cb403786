"""bptt.connectivity: exact against float64 finite differences and against an independent
per-item, per-position computation; zeros after t for one-directional nets; .grad untouched."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

import tinygrad_rnn as tr
from tinygrad_rnn import bptt, nn
from test_recurrent import KINDS, make_layer

I, H, K = 3, 4, 5


def layer_model(kind, rng, **options):
    """fn(x (T, B, I)) -> logits (T, B, K): a recurrent layer and a linear readout, in float64."""
    layer = make_layer(kind, I, H, rng, **options)
    readout = nn.Linear(H * (2 if options.get("bidirectional") else 1), K).to(np.float64)
    if options.get("batch_first"):
        return lambda x: readout(layer(x.transpose(1, 0, 2))[0]).transpose(1, 0, 2)
    return lambda x: readout(layer(x)[0])


def hand_made_model(rng):
    """A hand-made cell h' = tanh(x W^T + h U^T + b) run by nn.unroll, with a readout V h."""
    W, U, b, V = (tr.Tensor(rng.normal(0, 0.7, shape), requires_grad=True)
                  for shape in ((H, I), (H, H), (H,), (K, H)))

    def cell(x, h):
        h = tr.Tensor(np.zeros((x.shape[0], H))) if h is None else h
        return (tr.linear(x, W) + tr.linear(h, U, b)).tanh()

    return lambda x: tr.linear(tr.stack(nn.unroll(cell, x)[0]), V)


MODELS = {
    **{kind: lambda rng, kind=kind: layer_model(kind, rng) for kind in KINDS},
    **{f"{kind}-2-layer-bidirectional": lambda rng, kind=kind: layer_model(
        kind, rng, num_layers=2, bidirectional=True) for kind in KINDS},
    **{f"{kind}-batch-first": lambda rng, kind=kind: layer_model(kind, rng, batch_first=True)
       for kind in KINDS},
    "hand-made-cell": hand_made_model,
}


def picked(fn, x, target):
    """The followed class at each (t, b): ``target``, or the argmax of fn's output."""
    return fn(tr.Tensor(x)).data.argmax(axis=2) if target is None else target


def finite_difference_connectivity(fn, x, target=None, eps=1e-6):
    """C[b, t, s] from central differences: perturb each x[s, b, i] and watch every output."""
    target = picked(fn, x, target)
    steps, batch = target.shape
    C = np.zeros((batch, steps, x.shape[0]))
    for s, b, i in np.ndindex(x.shape):
        up, down = x.copy(), x.copy()
        up[s, b, i] += eps
        down[s, b, i] -= eps
        difference = fn(tr.Tensor(up)).data - fn(tr.Tensor(down)).data
        slope = np.take_along_axis(difference, target[..., None], axis=2)[..., 0] / (2 * eps)
        C[b, :, s] += slope[:, b] ** 2
    return np.sqrt(C)


def per_position_connectivity(fn, x, target=None):
    """C[b, t, s] one batch item and one output at a time: every x[s] its own leaf, a fresh
    forward for each (b, t), and a scalar backward from that one output."""
    target = picked(fn, x, target)
    steps, batch = target.shape
    C = np.zeros((batch, steps, x.shape[0]))
    for b, t in np.ndindex(batch, steps):
        positions = [tr.Tensor(x[s, b:b + 1], requires_grad=True) for s in range(len(x))]
        fn(tr.stack(positions))[t, 0, target[t, b]].backward()
        C[b, t] = [0.0 if p.grad is None else np.sqrt((p.grad ** 2).sum()) for p in positions]
    return C


def model_input_and_target(model, seed, steps, batch):
    """MODELS[model] with random weights, a random x (steps, batch, I) and a random target."""
    rng = np.random.default_rng(seed)
    fn = MODELS[model](rng)
    return fn, rng.normal(size=(steps, batch, I)), rng.integers(0, K, size=(steps, batch))


@pytest.mark.parametrize("model", list(MODELS))
def test_connectivity_matches_float64_finite_differences(model):
    fn, x, target = model_input_and_target(model, 1, steps=5, batch=2)
    C = bptt.connectivity(fn, x, target)
    assert C.shape == (2, 5, 5)
    np.testing.assert_allclose(C, finite_difference_connectivity(fn, x, target), rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("model", ["lstm", "hand-made-cell"])
def test_the_default_target_is_the_predicted_class(model):
    fn, x, _ = model_input_and_target(model, 11, steps=5, batch=2)
    np.testing.assert_allclose(bptt.connectivity(fn, x), finite_difference_connectivity(fn, x),
                               rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("model", list(MODELS))
def test_connectivity_matches_an_item_by_item_position_by_position_backward(model):
    fn, x, target = model_input_and_target(model, 2, steps=6, batch=3)
    np.testing.assert_allclose(bptt.connectivity(fn, x, target), per_position_connectivity(fn, x, target),
                               rtol=1e-12, atol=1e-15)


@given(kind=st.sampled_from(KINDS), layers=st.integers(1, 2), bidirectional=st.booleans(),
       steps=st.integers(1, 5), batch=st.integers(1, 3), seed=st.integers(0, 2 ** 16))
def test_connectivity_matches_the_reference_over_small_shapes(kind, layers, bidirectional, steps, batch,
                                                              seed):
    rng = np.random.default_rng(seed)
    fn = layer_model(kind, rng, num_layers=layers, bidirectional=bidirectional)
    x = rng.normal(size=(steps, batch, I))
    np.testing.assert_allclose(bptt.connectivity(fn, x), per_position_connectivity(fn, x),
                               rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("model", [*KINDS, "hand-made-cell"])
def test_a_one_directional_net_listens_to_nothing_after_t(model):
    rng = np.random.default_rng(3)
    C = bptt.connectivity(MODELS[model](rng), rng.normal(size=(6, 2, I)))
    later = np.triu(np.ones((6, 6), bool), k=1)
    assert (C[:, later] == 0).all()
    assert (C[:, ~later] > 0).all()


def test_a_bidirectional_net_listens_after_t_too():
    rng = np.random.default_rng(3)
    C = bptt.connectivity(MODELS["lstm-2-layer-bidirectional"](rng), rng.normal(size=(6, 2, I)))
    assert (C > 0).all()


def test_one_output_is_followed_when_K_is_1():
    rng = np.random.default_rng(4)
    layer = make_layer("gru", I, H, rng)
    readout = nn.Linear(H, 1).to(np.float64)
    fn = lambda x: readout(layer(x)[0])  # noqa: E731
    x = rng.normal(size=(4, 2, I))
    np.testing.assert_allclose(bptt.connectivity(fn, x), finite_difference_connectivity(fn, x),
                               rtol=1e-6, atol=1e-9)


def test_fewer_output_steps_than_inputs():
    rng = np.random.default_rng(5)
    full = MODELS["rnn_tanh"](rng)
    fn = lambda x: full(x)[-2:]  # noqa: E731
    x = rng.normal(size=(5, 2, I))
    C = bptt.connectivity(fn, x)
    assert C.shape == (2, 2, 5)
    np.testing.assert_allclose(C, finite_difference_connectivity(fn, x), rtol=1e-6, atol=1e-9)


def test_an_unbatched_sequence_gives_T_out_by_T_in():
    rng = np.random.default_rng(6)
    fn = MODELS["lstm"](rng)
    x = rng.normal(size=(5, I))
    C = bptt.connectivity(fn, tr.Tensor(x))
    assert C.shape == (5, 5)
    np.testing.assert_allclose(C, per_position_connectivity(fn, x[:, None])[0], rtol=1e-12, atol=1e-15)
    target = np.array([0, 1, 2, 3, 4])
    np.testing.assert_allclose(bptt.connectivity(fn, x, target),
                               per_position_connectivity(fn, x[:, None], target[:, None])[0],
                               rtol=1e-12, atol=1e-15)


def test_every_parameters_grad_and_x_are_left_as_they_were():
    rng = np.random.default_rng(7)
    layer = make_layer("lstm", I, H, rng)
    readout = nn.Linear(H, K).to(np.float64)
    params = [*layer.parameters(), *readout.parameters()]
    before = {}
    for k, p in enumerate(params):
        p.grad = None if k % 2 else rng.normal(size=p.shape)
        before[p] = None if p.grad is None else (p.grad, p.grad.copy())
    x = tr.Tensor(rng.normal(size=(4, 2, I)))
    bptt.connectivity(lambda x: readout(layer(x)[0]), x)
    for p in params:
        assert p.requires_grad
        if before[p] is None:
            assert p.grad is None
        else:
            assert p.grad is before[p][0]
            np.testing.assert_array_equal(p.grad, before[p][1])
    assert not x.requires_grad and x.grad is None


def test_x_that_requires_grad_keeps_its_grad():
    rng = np.random.default_rng(8)
    fn = MODELS["rnn_tanh"](rng)
    x = tr.Tensor(rng.normal(size=(3, 1, I)), requires_grad=True)
    bptt.connectivity(fn, x)
    assert x.grad is None


def fixed_model():
    return MODELS["rnn_tanh"](np.random.default_rng(9))


@pytest.mark.parametrize("x, error, words", [
    (np.zeros((4, 2, I), np.int64), TypeError, "must be a floating Tensor or ndarray (T, B, I)"),
    ([[0.5] * I] * 4, TypeError, "got list"),
    (np.zeros((4 * 2 * I,)), ValueError, "got shape (24,)"),
    (np.zeros((4, 2, 1, I)), ValueError, "got shape (4, 2, 1, 3)"),
    (np.zeros((0, 2, I)), ValueError, "no empty axis; got shape (0, 2, 3)"),
])
def test_a_bad_x_is_named(x, error, words):
    with pytest.raises(error, match=r"connectivity: x") as caught:
        bptt.connectivity(fixed_model(), x)
    assert words in str(caught.value)


@pytest.mark.parametrize("target, words", [
    (np.zeros((4, 3), np.int64), "of shape (4, 2) (T_out, B), got shape (4, 3), dtype int64"),
    (np.zeros((4,), np.int64), "got shape (4,)"),
    (np.zeros((4, 2)), "got shape (4, 2), dtype float64"),
    (np.full((4, 2), 5), "classes 5..5 but fn(x) has K = 5 outputs per step (classes 0..4)"),
    (np.full((4, 2), -1), "classes -1..-1"),
])
def test_a_bad_target_is_named(target, words):
    x = np.zeros((4, 2, I))
    with pytest.raises(ValueError, match=r"connectivity: target") as caught:
        bptt.connectivity(fixed_model(), x, target)
    assert words in str(caught.value)


def test_a_bad_unbatched_target_is_named():
    with pytest.raises(ValueError, match=r"of shape \(4,\) \(T_out\), got shape \(4, 1\)"):
        bptt.connectivity(fixed_model(), np.zeros((4, I)), np.zeros((4, 1), np.int64))


@pytest.mark.parametrize("fn, error, words", [
    (lambda x: (x, None), TypeError, "must return a Tensor (T, B, K), got tuple"),
    (lambda x: x.sum(axis=2), ValueError, "got shape (4, 2)"),
    (lambda x: x.transpose(1, 0, 2), ValueError,
     "with B = 2 as in x (4, 2, 3) (T, B, I), got shape (2, 4, 3)"),
    (lambda x: tr.Tensor(np.ones((4, 2, 3))), ValueError, "does not depend on x"),
])
def test_an_fn_returning_the_wrong_thing_is_named(fn, error, words):
    with pytest.raises(error, match=r"connectivity: fn\(x\)") as caught:
        bptt.connectivity(fn, np.zeros((4, 2, I)))
    assert words in str(caught.value)


def test_connectivity_inside_no_grad_says_so():
    with tr.no_grad(), pytest.raises(RuntimeError, match=r"connectivity: gradients are off"):
        bptt.connectivity(fixed_model(), np.zeros((4, 2, I)))


def test_parameters_require_grad_again_after_fn_fails_in_backward():
    rng = np.random.default_rng(10)
    layer = make_layer("rnn_tanh", I, H, rng)

    def fn(x):
        out = layer(x)[0]
        layer.weight_hh_l0.data += 1.0   # changed in place after forward: backward refuses
        return out

    with pytest.raises(RuntimeError, match="changed in place"):
        bptt.connectivity(fn, rng.normal(size=(3, 1, I)))
    assert all(p.requires_grad for p in layer.parameters())
