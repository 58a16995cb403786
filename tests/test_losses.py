import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinygrad_rnn as tr
from tinygrad_rnn import nn

sizes = st.integers(1, 5)
reductions = st.sampled_from(["mean", "sum", "none"])


def reference_cross_entropy(logits, target):
    """Per-sample -log softmax(z)_k with the log-sum-exp trick, for (N, C) logits."""
    top = logits.max(axis=-1, keepdims=True)
    log_sum_exp = top[:, 0] + np.log(np.exp(logits - top).sum(axis=-1))
    return log_sum_exp - logits[np.arange(len(target)), target]


def reference_cross_entropy_grad(logits, target, reduction):
    """d loss / d logits = softmax(z) - onehot(k), divided by N for the mean."""
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    grad = e / e.sum(axis=-1, keepdims=True)
    grad[np.arange(len(target)), target] -= 1
    return grad / len(target) if reduction == "mean" else grad


def reduce(values, reduction):
    return {"mean": np.mean, "sum": np.sum, "none": np.asarray}[reduction](values)


def cases(draw_n, draw_c, seed, scale=3.0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((draw_n, draw_c)) * scale, rng.integers(0, draw_c, draw_n)


# ------------------------------------------------------------- cross_entropy

@given(n=sizes, c=sizes, reduction=reductions, seed=st.integers(0, 1000))
def test_cross_entropy_matches_numpy_value_and_gradient(n, c, reduction, seed):
    logits, target = cases(n, c, seed)
    z = tr.Tensor(logits, requires_grad=True)
    loss = nn.cross_entropy(z, target, reduction=reduction)
    expected = reduce(reference_cross_entropy(logits, target), reduction)
    assert loss.shape == np.shape(expected)
    np.testing.assert_allclose(loss.data, expected, rtol=1e-12, atol=1e-12)
    if reduction != "none":
        loss.backward()
        np.testing.assert_allclose(z.grad, reference_cross_entropy_grad(logits, target, reduction),
                                   rtol=1e-10, atol=1e-12)


@given(n=sizes, c=sizes, reduction=reductions, seed=st.integers(0, 1000))
def test_cross_entropy_gradcheck(n, c, reduction, seed):
    logits, target = cases(n, c, seed)
    assert tr.gradcheck(lambda z: nn.cross_entropy(z, target, reduction=reduction),
                        [tr.Tensor(logits, requires_grad=True)])


def test_cross_entropy_single_sample_with_0d_target():
    logits = np.array([0.5, -1.0, 2.0])
    loss = nn.cross_entropy(tr.Tensor(logits), np.int64(2), reduction="none")
    assert loss.shape == ()
    np.testing.assert_allclose(loss.data, reference_cross_entropy(logits[None], np.array([2]))[0])
    np.testing.assert_allclose(nn.cross_entropy(tr.Tensor(logits), 0).data,
                               reference_cross_entropy(logits[None], np.array([0]))[0])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cross_entropy_is_finite_for_extreme_logits(dtype):
    logits = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, -1e4], [1e4, 1e4, -1e4]], dtype=dtype)
    target = np.array([1, 2, 0])
    z = tr.Tensor(logits, requires_grad=True)
    loss = nn.cross_entropy(z, target, reduction="none")
    loss.sum().backward()
    assert loss.dtype == dtype and np.isfinite(loss.data).all() and np.isfinite(z.grad).all()
    np.testing.assert_allclose(loss.data, [2e4, np.log(3), np.log(2)], rtol=1e-6)
    np.testing.assert_allclose(z.grad, reference_cross_entropy_grad(logits.astype(np.float64), target,
                                                                    "sum"), atol=1e-6)


@pytest.mark.parametrize("target", [np.array([0, 3]), np.array([-1, 0])])
def test_cross_entropy_out_of_range_target_names_the_value(target):
    bad = target[(target < 0) | (target >= 3)][0]
    with pytest.raises(IndexError, match=rf"target class {bad} is out of range for 3 classes"):
        nn.cross_entropy(tr.Tensor(np.zeros((2, 3))), target)


def test_cross_entropy_float_targets_name_the_dtype():
    with pytest.raises(TypeError, match="integer class indices, got dtype float64"):
        nn.cross_entropy(tr.Tensor(np.zeros((2, 3))), np.array([0.0, 1.0]))
    with pytest.raises(TypeError, match="logits must be floating point, got dtype int64"):
        nn.cross_entropy(tr.Tensor(np.zeros((2, 3), dtype=np.int64)), np.array([0, 1]))


@pytest.mark.parametrize("logits_shape, target_shape", [((2, 3), (3,)), ((2, 3), ()), ((3,), (1,)),
                                                        ((2, 2, 3), (2, 2)), ((), ())])
def test_cross_entropy_shape_mismatch_names_both_shapes(logits_shape, target_shape):
    with pytest.raises(ValueError, match=rf"got logits \({', '.join(map(str, logits_shape))}"):
        nn.cross_entropy(tr.Tensor(np.zeros(logits_shape)), np.zeros(target_shape, dtype=np.int64))


def test_cross_entropy_bad_reduction_and_empty_mean():
    with pytest.raises(ValueError, match="reduction must be one of"):
        nn.cross_entropy(tr.Tensor(np.zeros((1, 2))), [0], reduction="avg")
    empty = tr.Tensor(np.zeros((0, 2)))
    with pytest.raises(ValueError, match="empty batch"):
        nn.cross_entropy(empty, np.zeros(0, dtype=np.int64))
    assert nn.cross_entropy(empty, np.zeros(0, dtype=np.int64), reduction="sum").item() == 0.0


def test_cross_entropy_agrees_with_pytorch():
    torch = pytest.importorskip("torch")
    logits, target = cases(4, 5, seed=7)
    for reduction in ["mean", "sum", "none"]:
        z = tr.Tensor(logits, requires_grad=True)
        zt = torch.tensor(logits, requires_grad=True)
        loss = nn.cross_entropy(z, target, reduction=reduction)
        expected = torch.nn.functional.cross_entropy(zt, torch.from_numpy(target), reduction=reduction)
        np.testing.assert_allclose(loss.data, expected.detach().numpy(), rtol=1e-12)
        loss.sum().backward()
        expected.sum().backward()
        np.testing.assert_allclose(z.grad, zt.grad.numpy(), rtol=1e-12, atol=1e-15)


# ------------------------------------------------------------------ mse_loss

@given(shape=st.lists(sizes, max_size=3), reduction=reductions, seed=st.integers(0, 1000))
def test_mse_matches_numpy_and_gradcheck(shape, reduction, seed):
    rng = np.random.default_rng(seed)
    pred, target = rng.standard_normal(shape), rng.standard_normal(shape)
    p = tr.Tensor(pred, requires_grad=True)
    t = tr.Tensor(target, requires_grad=True)
    loss = nn.mse_loss(p, t, reduction=reduction)
    np.testing.assert_allclose(loss.data, reduce((pred - target) ** 2, reduction), rtol=1e-12)
    assert tr.gradcheck(lambda p, t: nn.mse_loss(p, t, reduction=reduction), [p, t])


def test_mse_gradient_by_hand_and_array_target_takes_pred_dtype():
    pred = np.array([[1.0, 2.0], [3.0, 5.0]], dtype=np.float32)
    p = tr.Tensor(pred, requires_grad=True)
    loss = nn.mse_loss(p, [[0.0, 0.0], [0.0, 1.0]])
    assert loss.dtype == np.float32
    np.testing.assert_allclose(loss.item(), (1 + 4 + 9 + 16) / 4)
    loss.backward()
    np.testing.assert_allclose(p.grad, 2 * (pred - [[0, 0], [0, 1]]) / 4)


def test_mse_refuses_broadcasting_and_bad_input():
    with pytest.raises(ValueError, match=r"same shape, got \(3, 1\) and \(3,\)"):
        nn.mse_loss(tr.Tensor(np.zeros((3, 1))), np.zeros(3))
    with pytest.raises(ValueError, match="reduction must be one of"):
        nn.mse_loss(tr.Tensor(np.zeros(3)), np.zeros(3), reduction="max")
    with pytest.raises(TypeError, match="pred must be floating point, got dtype int64"):
        nn.mse_loss(tr.Tensor(np.zeros(3, dtype=np.int64)), np.zeros(3))
    with pytest.raises(TypeError, match="target must be floating point, got dtype int64"):
        nn.mse_loss(tr.Tensor(np.zeros(3)), tr.Tensor(np.zeros(3, dtype=np.int64)))
    with pytest.raises(ValueError, match="empty input"):
        nn.mse_loss(tr.Tensor(np.zeros(0)), np.zeros(0))
