"""The README's core examples, copied here verbatim: build an expression, backward, read the
grads, gradcheck it (checked against the derivative worked out by hand); and a property test
of a hand-made op with tinygrad_rnn.testing."""
import numpy as np


def test_readme_autograd_example(capsys):
    import tinygrad_rnn as tr

    x = tr.Tensor([0.5, -1.0, 2.0], requires_grad=True, dtype="float64")
    W = tr.Tensor([[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]], requires_grad=True, dtype="float64")
    h = (W @ x).tanh()                  # h = tanh(W x)
    loss = (h * h).sum()                # L = sum of h²
    loss.backward()                     # fills x.grad and W.grad
    print(loss.item())                  # 0.6910...
    print(W.grad)                       # dL/dW = (2 h (1 - h²)) xᵀ
    print(x.grad)                       # dL/dx = Wᵀ (2 h (1 - h²))
    assert tr.gradcheck(lambda x, W: ((W @ x).tanh() ** 2).sum(), [x, W])

    a = np.tanh(W.data @ x.data)
    delta = 2 * a * (1 - a * a)
    np.testing.assert_allclose(loss.item(), (a * a).sum(), rtol=1e-15)
    np.testing.assert_allclose(W.grad, np.outer(delta, x.data), rtol=1e-14)
    np.testing.assert_allclose(x.grad, W.data.T @ delta, rtol=1e-14)
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith("0.6910")


def test_readme_property_test_example():
    from hypothesis import given
    from tinygrad_rnn.testing import assert_gradients_match, float_arrays, shapes

    def softplus(x):                    # a hand-made op: log(1 + e^x)
        return (x.exp() + 1).log()

    @given(float_arrays(shapes(), -5, 5))
    def test_softplus_gradient(x):
        assert_gradients_match(softplus, x)

    test_softplus_gradient()

