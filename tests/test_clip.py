import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinygrad_rnn as tr
from tinygrad_rnn import nn


def with_grads(*grads):
    params = []
    for g in grads:
        p = nn.Parameter(np.zeros(np.shape(g)))
        p.grad = np.array(g, dtype=np.float64)
        params.append(p)
    return params


def reference_total_norm(grads, norm_type):
    flat = np.concatenate([np.ravel(g) for g in grads])
    if norm_type == math.inf:
        return np.abs(flat).max()
    return (np.abs(flat) ** norm_type).sum() ** (1 / norm_type)


def test_two_norm_by_hand():
    params = with_grads([3.0, 4.0], [[12.0]])
    total = nn.clip_grad_norm_(params, max_norm=6.5)
    assert isinstance(total, float) and total == pytest.approx(13.0, rel=1e-15)
    scale = 6.5 / (13.0 + 1e-6)
    np.testing.assert_allclose(params[0].grad, [3 * scale, 4 * scale], rtol=1e-15)
    np.testing.assert_allclose(params[1].grad, [[12 * scale]], rtol=1e-15)


@pytest.mark.parametrize("norm_type, expected", [(1.0, 19.0), (math.inf, 12.0),
                                                  (3, (27 + 64 + 1728) ** (1 / 3))])
def test_other_norms_by_hand(norm_type, expected):
    params = with_grads([3.0, -4.0], [[-12.0]])
    total = nn.clip_grad_norm_(params, max_norm=1.0, norm_type=norm_type)
    assert total == pytest.approx(expected, rel=1e-14)
    np.testing.assert_allclose(params[0].grad, np.array([3.0, -4.0]) / (expected + 1e-6), rtol=1e-14)


def test_norm_below_the_limit_leaves_grads_bitwise_unchanged():
    params = with_grads([0.1, 0.2], [0.3])
    before = [p.grad.copy() for p in params]
    total = nn.clip_grad_norm_(params, max_norm=1.0)
    assert total == pytest.approx(math.sqrt(0.14))
    assert all(np.array_equal(p.grad, b) for p, b in zip(params, before))


def test_all_zero_grads_need_no_division():
    params = with_grads([0.0, 0.0], [0.0])
    assert nn.clip_grad_norm_(params, max_norm=0.0) == 0.0
    assert all(np.array_equal(p.grad, np.zeros_like(p.grad)) for p in params)


@pytest.mark.parametrize("bad", [math.inf, -math.inf, math.nan])
def test_nonfinite_total_is_returned_and_grads_are_left_alone(bad):
    params = with_grads([1.0, bad], [5.0])
    before = [p.grad.copy() for p in params]
    total = nn.clip_grad_norm_(params, max_norm=1.0)
    assert math.isnan(total) if math.isnan(bad) else total == math.inf
    for p, b in zip(params, before):
        np.testing.assert_array_equal(p.grad, b)
    with pytest.raises(RuntimeError, match="total gradient norm .* is (inf|nan)"):
        nn.clip_grad_norm_(params, max_norm=1.0, error_if_nonfinite=True)
    for p, b in zip(params, before):
        np.testing.assert_array_equal(p.grad, b)


def test_params_without_grad_are_skipped_and_none_at_all_gives_zero():
    params = with_grads([3.0, 4.0])
    idle = nn.Parameter(np.ones(2))
    assert nn.clip_grad_norm_(params + [idle], max_norm=1.0) == pytest.approx(5.0)
    assert idle.grad is None
    assert nn.clip_grad_norm_([idle], max_norm=1.0) == 0.0


def test_one_tensor_a_generator_and_a_repeated_parameter():
    (p,) = with_grads([3.0, 4.0])
    assert nn.clip_grad_norm_(p, max_norm=10.0) == pytest.approx(5.0)
    assert nn.clip_grad_norm_((q for q in [p]), max_norm=10.0) == pytest.approx(5.0)
    assert nn.clip_grad_norm_([p, p], max_norm=2.5) == pytest.approx(5.0)
    np.testing.assert_allclose(np.linalg.norm(p.grad), 2.5, rtol=1e-6)


def test_float32_grads_do_not_overflow_in_the_norm():
    p = nn.Parameter(np.zeros(2, dtype=np.float32))
    p.grad = np.array([3e30, 4e30], dtype=np.float32)
    total = nn.clip_grad_norm_([p], max_norm=1.0)
    assert total == pytest.approx(5e30, rel=1e-6)
    assert p.grad.dtype == np.float32
    np.testing.assert_allclose(p.grad, [0.6, 0.8], rtol=1e-6)


# A subnormal max_norm (5e-324) has no relative precision left: g * (max_norm / total)
# rounds to a multiple of 5e-324 that may exceed it, in PyTorch's rule as in any other.
@given(shapes=st.lists(st.lists(st.integers(1, 3), max_size=2), min_size=1, max_size=3),
       norm_type=st.sampled_from([1.0, 2.0, 3.5, math.inf]),
       max_norm=st.floats(0.0, 10.0, allow_subnormal=False), seed=st.integers(0, 1000))
def test_clipping_caps_the_norm_and_keeps_the_direction(shapes, norm_type, max_norm, seed):
    rng = np.random.default_rng(seed)
    grads = [rng.standard_normal(shape) * 3 for shape in shapes]
    params = with_grads(*grads)
    total = nn.clip_grad_norm_(params, max_norm, norm_type=norm_type)
    assert total == pytest.approx(reference_total_norm(grads, norm_type), rel=1e-12)
    scale = min(1.0, max_norm / (total + 1e-6))
    for p, g in zip(params, grads):
        np.testing.assert_allclose(p.grad, g * scale, rtol=1e-12, atol=1e-300)
    assert reference_total_norm([p.grad for p in params], norm_type) <= max_norm * (1 + 1e-12)


def test_agrees_with_pytorch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    grads = [rng.standard_normal((3, 4)), rng.standard_normal(5)]
    for norm_type in [1.0, 2.0, 3.0, math.inf]:
        for max_norm in [0.5, 100.0]:
            params = with_grads(*grads)
            tensors = [torch.zeros(g.shape, dtype=torch.float64, requires_grad=True) for g in grads]
            for t, g in zip(tensors, grads):
                t.grad = torch.from_numpy(g.copy())
            total = nn.clip_grad_norm_(params, max_norm, norm_type=norm_type)
            expected = torch.nn.utils.clip_grad_norm_(tensors, max_norm, norm_type=norm_type)
            assert total == pytest.approx(expected.item(), rel=1e-13)
            for p, t in zip(params, tensors):
                np.testing.assert_allclose(p.grad, t.grad.numpy(), rtol=1e-13)


@pytest.mark.parametrize("kwargs, message", [
    (dict(max_norm=-1.0), "max_norm must be a number >= 0, got -1.0"),
    (dict(max_norm=math.nan), "max_norm must be a number >= 0, got nan"),
    (dict(max_norm="1"), "max_norm must be a number >= 0"),
    (dict(max_norm=1.0, norm_type=0), "norm_type must be > 0"),
])
def test_bad_arguments_raise(kwargs, message):
    with pytest.raises(ValueError, match=message):
        nn.clip_grad_norm_(with_grads([1.0]), **kwargs)


def test_passing_a_module_or_non_tensors_is_explained():
    with pytest.raises(TypeError, match=r"pass model.parameters\(\), not the Linear"):
        nn.clip_grad_norm_(nn.Linear(2, 2), 1.0)
    with pytest.raises(TypeError, match="item 1 is ndarray"):
        nn.clip_grad_value_(with_grads([1.0]) + [np.zeros(2)], 1.0)


# ----------------------------------------------------------- clip_grad_value_

def test_clip_value_by_hand_in_place():
    params = with_grads([-3.0, 0.5, 2.0], [[np.nan, -0.25]])
    arrays = [p.grad for p in params]
    assert nn.clip_grad_value_(params, 1.0) is None
    assert all(p.grad is a for p, a in zip(params, arrays))
    np.testing.assert_array_equal(params[0].grad, [-1.0, 0.5, 1.0])
    np.testing.assert_array_equal(params[1].grad, [[np.nan, -0.25]])


def test_clip_value_keeps_float32_and_skips_missing_grads():
    p = nn.Parameter(np.zeros(2, dtype=np.float32))
    p.grad = np.array([5.0, -5.0], dtype=np.float32)
    idle = nn.Parameter(np.zeros(1))
    nn.clip_grad_value_([p, idle], 0.5)
    assert p.grad.dtype == np.float32 and idle.grad is None
    np.testing.assert_array_equal(p.grad, [0.5, -0.5])


@pytest.mark.parametrize("clip_value", [-0.1, math.nan, None])
def test_clip_value_rejects_bad_limits(clip_value):
    with pytest.raises(ValueError, match="clip_value must be a number >= 0"):
        nn.clip_grad_value_(with_grads([1.0]), clip_value)


def test_clip_after_backward_of_an_unrolled_tanh_chain():
    w = nn.Parameter(np.array([[0.3]]))
    h = tr.Tensor(np.array([[1.0]]))
    for _ in range(5):
        h = (h @ w).tanh() * 3
    h.sum().backward()
    raw = w.grad.copy()
    total = nn.clip_grad_norm_([w], max_norm=1.0)
    assert total == pytest.approx(abs(raw.item())) and total > 5
    np.testing.assert_allclose(w.grad, raw / (total + 1e-6))
