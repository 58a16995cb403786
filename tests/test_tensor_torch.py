"""Forward values and gradients of the core ops against PyTorch, in float64."""
import numpy as np
import pytest

import tinygrad_rnn as tr

torch = pytest.importorskip("torch")


def pair(array):
    """The same float64 values as a tinygrad_rnn leaf and a torch leaf."""
    return (tr.Tensor(array, requires_grad=True, dtype="float64"),
            torch.tensor(array, dtype=torch.float64, requires_grad=True))


def assert_same(ours, theirs, rtol=1e-12, atol=1e-14):
    np.testing.assert_allclose(ours, theirs.detach().numpy(), rtol=rtol, atol=atol)


def run_both(fn_ours, fn_torch, *arrays):
    """Apply both, backpropagate the same random output gradient, compare values and grads."""
    ours, theirs = zip(*[pair(a) for a in arrays])
    out, ref = fn_ours(*ours), fn_torch(*theirs)
    assert_same(out.data, ref)
    g = np.random.default_rng(0).normal(size=out.shape)
    out.backward(g)
    ref.backward(torch.tensor(g))
    for a, b in zip(ours, theirs):
        assert_same(a.grad, b.grad)


RNG = np.random.default_rng(42)
X = RNG.normal(size=(2, 3, 4))
W = RNG.normal(size=(4, 5))
P = RNG.uniform(0.5, 2.0, size=(3, 4))

CASES = {
    "broadcast arithmetic": (
        lambda x, p: (x * p - p / (x.abs() + 1)) ** 2 + 3 - x,
        lambda x, p: (x * p - p / (x.abs() + 1)) ** 2 + 3 - x, (X, P)),
    "tensor exponent": (lambda p, q: p ** q, lambda p, q: p ** q, (P, P[::-1].copy())),
    "batched matmul": (lambda x, w: x @ w, lambda x, w: x @ w, (X, W)),
    "1-D @ batched": (lambda v, x: v @ x, lambda v, x: v @ x, (X[0, :, 0].copy(), X)),
    "unary": (
        lambda x: x.exp() + x.tanh() + x.sigmoid() + x.relu() + x.abs().sqrt() + (x.abs() + 0.1).log(),
        lambda x: x.exp() + x.tanh() + x.sigmoid() + x.relu() + x.abs().sqrt() + (x.abs() + 0.1).log(),
        (X,)),
    "clip": (lambda x: x.clip(-0.5, 0.5), lambda x: x.clip(-0.5, 0.5), (X,)),
    "softmax axis 1": (lambda x: x.softmax(1), lambda x: x.softmax(1), (X,)),
    "log_softmax last": (lambda x: x.log_softmax(), lambda x: x.log_softmax(-1), (X,)),
    "sum and mean": (lambda x: x.sum(axis=(0, 2), keepdims=True) * x.mean(axis=1, keepdims=True),
                     lambda x: x.sum(dim=(0, 2), keepdim=True) * x.mean(dim=1, keepdim=True), (X,)),
    "max": (lambda x: x.max(axis=-1), lambda x: x.amax(dim=-1), (X,)),
    "getitem": (lambda x: x[np.array([0, 1, 0]), 1:, None, ::2],
                lambda x: x[torch.tensor([0, 1, 0]), 1:, None, ::2], (X,)),
    "shape ops": (lambda x: x.transpose(2, 0, 1).reshape(4, 6).T,
                  lambda x: x.permute(2, 0, 1).reshape(4, 6).T, (X,)),
    "cat and stack": (lambda x, p: tr.stack([tr.cat([x[0], p], axis=1), tr.cat([p, x[1]], axis=1)]),
                      lambda x, p: torch.stack([torch.cat([x[0], p], 1), torch.cat([p, x[1]], 1)]),
                      (X, P)),
    "split and chunk": (lambda x: x.split([1, 3], axis=2)[1] * x.chunk(2, axis=2)[0].sum(),
                        lambda x: x.split([1, 3], dim=2)[1] * x.chunk(2, dim=2)[0].sum(), (X,)),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_matches_pytorch(name):
    fn_ours, fn_torch, arrays = CASES[name]
    run_both(fn_ours, fn_torch, *arrays)


def test_tied_maxima_share_the_gradient_like_amax():
    run_both(lambda x: x.max(axis=1), lambda x: x.amax(dim=1), np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]]))


def test_float32_sigmoid_saturation_matches():
    x = np.array([-1000.0, -90.0, -20.0, 0.0, 20.0, 1000.0], np.float32)
    ours = tr.Tensor(x).sigmoid().data
    theirs = torch.sigmoid(torch.tensor(x)).numpy()
    np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=0)
    assert ours[0] == theirs[0] == 0.0 and ours[-1] == theirs[-1] == 1.0
