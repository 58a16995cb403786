"""gradcheck passes right gradients, and names the input, index and both values of a wrong one."""
import importlib
import re

import numpy as np
import pytest

import tinygrad_rnn as tr
from tinygrad_rnn.tensor import _apply


class WrongSquare:
    """out = a²; its backward says 3a instead of 2a (the classic overwrite-instead-of-add bug)."""
    name = "wrong_square"

    @staticmethod
    def forward(a):
        return a * a, (a,)

    @staticmethod
    def backward(saved, g, needs):
        return (3 * saved[0] * g,)


class WrongAtOneOutput:
    """out = 2a, but the gradient of output element 1 is lost."""
    name = "wrong_at_one_output"

    @staticmethod
    def forward(a):
        return 2 * a, ()

    @staticmethod
    def backward(saved, g, needs):
        grad = 2 * g
        grad[1] = 0
        return (grad,)


class WrongSecondInput:
    """out = a * b with d/db reported as a + 1."""
    name = "wrong_second_input"

    @staticmethod
    def forward(a, b):
        return a * b, (a, b)

    @staticmethod
    def backward(saved, g, needs):
        a, b = saved
        return g * b, g * (a + 1)


class NaNGradient:
    name = "nan_gradient"

    @staticmethod
    def forward(a):
        return a.copy(), ()

    @staticmethod
    def backward(saved, g, needs):
        return (g * np.nan,)


def leaf(values, name=None):
    return tr.Tensor(np.asarray(values, dtype=np.float64), requires_grad=True, name=name)


def test_right_gradients_pass_for_scalar_and_non_scalar_outputs():
    x, w = leaf(np.linspace(-1, 1, 6).reshape(2, 3)), leaf(np.linspace(0.5, 2, 3))
    assert tr.gradcheck(lambda x, w: (x * w).tanh().sum(), [x, w]) is True
    assert tr.gradcheck(lambda x, w: (x @ w).sigmoid(), [x, w]) is True


def test_a_wrong_backward_names_input_index_analytic_and_numeric():
    x = leaf([1.0, 2.0, 3.0], name="x")
    v = float(np.random.default_rng(0).standard_normal(()))  # the projection of a scalar output
    expected = (f"gradcheck: input 0 (x) of shape (3,), index (0,): analytic {3 * v:.10g} "
                f"vs numeric {2 * v:.10g} (atol=1e-05, rtol=0.001)")
    with pytest.raises(tr.GradcheckError, match=re.escape(expected)):
        tr.gradcheck(lambda x: _apply(WrongSquare, (x,)).sum(), [x])


def test_a_wrong_gradient_of_a_single_output_element_is_caught_through_the_projection():
    x = leaf([1.0, 2.0, 3.0])
    with pytest.raises(tr.GradcheckError, match=r"input 0 of shape \(3,\), index \(1,\): analytic 0 "):
        tr.gradcheck(lambda x: _apply(WrongAtOneOutput, (x,)), [x])


def test_the_wrong_input_is_named_among_several():
    a, b = leaf([0.5, 1.5]), leaf([2.0, -1.0])
    constant = tr.Tensor([1.0, 1.0], dtype="float64")
    with pytest.raises(tr.GradcheckError, match=r"^gradcheck: input 2 of shape \(2,\), index \(0,\)"):
        tr.gradcheck(lambda c, a, b: _apply(WrongSecondInput, (a, b)) * c, [constant, a, b])


def test_a_nan_gradient_fails():
    x = leaf([1.0])
    with pytest.raises(tr.GradcheckError, match="analytic nan vs numeric"):
        tr.gradcheck(lambda x: _apply(NaNGradient, (x,)), [x])


def test_gradcheck_error_is_an_assertion_error():
    assert issubclass(tr.GradcheckError, AssertionError)


def test_float32_inputs_warn():
    x = tr.Tensor([1.0, 2.0], requires_grad=True)
    with pytest.warns(UserWarning, match="gradcheck: input 0 is float32; .*float64"):
        assert tr.gradcheck(lambda x: x * 3, [x], eps=1e-2, atol=1e-3)


def test_inputs_keep_their_data_and_gradients():
    x = leaf([0.3, 0.7])
    x.grad = np.array([5.0, 6.0])
    data = x.data
    before = data.copy()
    tr.gradcheck(lambda x: (x * x).sum(), [x])
    assert x.data is data and np.array_equal(data, before)
    assert x.grad.tolist() == [5.0, 6.0]
    y = leaf([1.0])
    tr.gradcheck(lambda y: y.exp(), [y])
    assert y.grad is None


def test_inputs_are_restored_when_fn_raises_midway():
    x = leaf([1.0, 2.0])
    calls = []

    def flaky(x):
        calls.append(1)
        if len(calls) > 2:
            raise KeyError("boom")
        return x.sum()

    with pytest.raises(KeyError):
        tr.gradcheck(flaky, [x])
    assert x.data.tolist() == [1.0, 2.0]


def test_integer_inputs_are_constants():
    logits = leaf([[0.2, -0.3, 1.0], [0.0, 0.5, -1.0]])
    targets = tr.Tensor([2, 0])
    assert tr.gradcheck(lambda z, t: -z.log_softmax()[np.arange(2), t].mean(), [logits, targets])


def test_parameters_inside_fn_are_checked_through_the_inputs_list():
    w = leaf([0.5, -0.5])
    x = tr.Tensor([1.0, 2.0], dtype="float64")
    assert tr.gradcheck(lambda *_: (x * w).tanh().sum(), [w])


NOT_REACHED = (r"the input may not reach the output through Tensor operations, e\.g\. because its values "
               r"were assigned through \.data")


def test_an_input_assigned_through_data_is_named_at_once_as_not_reaching_the_output():
    """The mistake of setting a weight from the checked input by ``.data``: backward gives the
    input no gradient while the output moves with it. Two evaluations along a random
    direction tell, instead of two per element (here 2 * 40)."""
    weight = tr.Tensor(np.zeros((4, 10)), requires_grad=True, name="W")
    calls = []

    def fn(x, w):
        calls.append(1)
        weight.data = w.data          # w does not reach the output through Tensor ops
        return (x @ weight).tanh()

    x, w = leaf(np.linspace(-1, 1, 4), name="x"), leaf(np.linspace(0.1, 0.9, 40).reshape(4, 10), name="w")
    with pytest.raises(tr.GradcheckError, match=r"^gradcheck: input 1 \(w\) of shape \(4, 10\): backward "
                                                r"gives it no gradient \(analytic 0 everywhere\), but the "
                                                r"output moves with it .*: " + NOT_REACHED):
        tr.gradcheck(fn, [x, w])
    assert len(calls) == 3   # the forward with backward, then the probe's two; x is not differenced


def test_an_output_cut_from_every_input_is_named_as_not_reached():
    x = leaf([0.5, 1.5])
    with pytest.raises(tr.GradcheckError, match="input 0 of shape \\(2,\\): backward gives it no gradient.*" +
                       NOT_REACHED):
        tr.gradcheck(lambda x: tr.Tensor(x.data ** 2), [x])


def test_an_input_the_output_does_not_depend_on_passes():
    x, unused = leaf([0.5, 1.5]), leaf(np.ones((3, 3)))
    assert tr.gradcheck(lambda x, unused: x * 2, [x, unused])


def test_a_zero_gradient_that_the_probe_misses_still_fails_element_wise_with_the_reason(monkeypatch):
    monkeypatch.setattr(importlib.import_module("tinygrad_rnn.gradcheck"), "_probe_unreached",
                        lambda *args: None)
    x = leaf([0.5, 1.5])
    with pytest.raises(tr.GradcheckError, match=r"index \(0,\): analytic 0 vs numeric .*its analytic "
                                                r"gradient is exactly 0 everywhere: " + NOT_REACHED):
        tr.gradcheck(lambda x: tr.Tensor(x.data ** 2), [x])


def test_a_wrong_zero_at_one_element_is_not_called_unreached():
    x = leaf([1.0, 2.0, 3.0])
    with pytest.raises(tr.GradcheckError) as caught:
        tr.gradcheck(lambda x: _apply(WrongAtOneOutput, (x,)), [x])
    assert "may not reach" not in str(caught.value)


@pytest.mark.parametrize("call, kind, message", [
    (lambda x: tr.gradcheck(lambda x: x, x), TypeError, "got a single Tensor"),
    (lambda x: tr.gradcheck(lambda x: x, [x.data]), TypeError,
     "inputs must be a list of Tensors, got ndarray"),
    (lambda x: tr.gradcheck(lambda x: x, [x.detach()]), ValueError, "no input has requires_grad=True"),
    (lambda x: tr.gradcheck(lambda x: x, [x * 2]), ValueError, "input 0 was computed by 'mul'"),
    (lambda x: tr.gradcheck(lambda x: x.data, [x]), TypeError, "fn must return a Tensor, got ndarray"),
    (lambda x: tr.gradcheck(lambda x: x, [x], eps=0), ValueError, "eps must be positive, got 0"),
])
def test_misuse_is_named(call, kind, message):
    with pytest.raises(kind, match=message):
        call(leaf([1.0]))
