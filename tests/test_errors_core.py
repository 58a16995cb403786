"""Every misuse of the core engine fails with a message that names what is wrong."""
import inspect
import re

import numpy as np
import pytest

import tinygrad_rnn as tr


def leaf(values):
    return tr.Tensor(np.asarray(values, dtype=np.float64), requires_grad=True)


def next_line():
    """'file:line' of the line after the caller's, as detect_anomaly reports it."""
    caller = inspect.currentframe().f_back
    return f"{caller.f_code.co_filename}:{caller.f_lineno + 1}"


# ------------------------------------------------------------------ backward

def test_backward_on_a_non_scalar_needs_a_gradient():
    y = leaf(np.ones((2, 3))) * 2
    with pytest.raises(RuntimeError, match=r"backward: the output has shape \(2, 3\); .*pass grad="):
        y.backward()


def test_a_wrong_shaped_gradient_names_both_shapes():
    y = leaf(np.ones((2, 3))) * 2
    with pytest.raises(ValueError, match=r"grad has shape \(3,\) but the output has shape \(2, 3\)"):
        y.backward(np.ones(3))


def test_a_second_backward_through_a_released_graph_suggests_retain_graph():
    x = leaf([1.0, 2.0])
    loss = (x.tanh() * 2).sum()
    loss.backward()
    with pytest.raises(RuntimeError, match=r"released by an earlier backward; .*retain_graph=True"):
        loss.backward()
    np.testing.assert_allclose(x.grad, 2 * (1 - np.tanh([1.0, 2.0]) ** 2))


def test_a_released_graph_shared_by_a_new_loss_is_refused_before_any_gradient_changes():
    x = leaf([1.0])
    h = x * 3
    h.sum().backward()
    with pytest.raises(RuntimeError, match="'mul'.*released"):
        (h + x).sum().backward()
    assert x.grad.tolist() == [3.0]


def test_backward_on_a_tensor_that_does_not_require_grad():
    with pytest.raises(RuntimeError, match=r"backward: this tensor \(shape \(\)\) does not require grad"):
        (tr.Tensor(2.0) * 3).backward()


def test_retain_grad_on_a_tensor_that_does_not_require_grad():
    with pytest.raises(RuntimeError, match="retain_grad: this tensor does not require grad"):
        tr.Tensor([1.0]).retain_grad()


# -------------------------------------------------------------- construction

@pytest.mark.parametrize("data, dtype", [([1, 2], "int64"), ([True], "bool"),
                                         (np.arange(3, dtype=np.uint8), "uint8")])
def test_requires_grad_on_a_non_floating_dtype_names_the_dtype(data, dtype):
    with pytest.raises(TypeError, match=f"requires_grad=True needs a floating dtype .*got {dtype}"):
        tr.Tensor(data, requires_grad=True)


def test_unsupported_data():
    with pytest.raises(TypeError, match="Tensor: unsupported dtype <U3"):
        tr.Tensor(["abc"])
    with pytest.raises(TypeError, match="unsupported dtype complex128"):
        tr.Tensor(np.ones(2, complex))
    with pytest.raises(TypeError, match="to join Tensors use tr.stack or tr.cat"):
        tr.Tensor([tr.Tensor([1.0, 2.0]), tr.Tensor([3.0, 4.0])])
    with pytest.raises(ValueError, match="Tensor: cannot make an array from this list .*inhomogeneous"):
        tr.Tensor([[1.0, 2.0], [3.0]])


def test_an_operand_that_is_not_numeric():
    with pytest.raises(TypeError, match="cannot use a str as an operand of a Tensor op"):
        tr.Tensor([1.0]) + "a"


def test_single_value_accessors_on_several_values():
    t = tr.Tensor([1.0, 2.0])
    for call, name in ((t.item, "item"), (lambda: float(t), "float"), (lambda: bool(t), "bool")):
        with pytest.raises(ValueError, match=rf"{name}: needs a tensor with one element, got shape \(2,\)"):
            call()
    with pytest.raises(TypeError, match="len\\(\\) of a 0-d Tensor"):
        len(tr.Tensor(1.0))


# ---------------------------------------------------------------- operators

@pytest.mark.parametrize("name, op", [("add", lambda a, b: a + b), ("sub", lambda a, b: a - b),
                                      ("mul", lambda a, b: a * b), ("div", lambda a, b: a / b),
                                      ("pow", lambda a, b: a ** b)])
def test_incompatible_broadcast_names_the_op_and_both_shapes(name, op):
    a, b = tr.Tensor(np.ones((2, 3))), tr.Tensor(np.ones(4))
    with pytest.raises(ValueError, match=rf"^{name}: the shapes do not broadcast together "
                                         rf"\(input shapes \(2, 3\) and \(4,\)\)$"):
        op(a, b)


def test_incompatible_broadcast_with_an_ndarray_on_the_left():
    with pytest.raises(ValueError, match=r"add: .*\(input shapes \(4,\) and \(2, 3\)\)"):
        np.ones(4) + tr.Tensor(np.ones((2, 3)))


@pytest.mark.parametrize("shape_a, shape_b, inner", [((2, 3), (4, 5), "3 and 4"),
                                                     ((3,), (2,), "3 and 2"),
                                                     ((2, 2, 3), (2,), "3 and 2")])
def test_matmul_inner_size_mismatch(shape_a, shape_b, inner):
    a, b = tr.Tensor(np.ones(shape_a)), tr.Tensor(np.ones(shape_b))
    shapes = re.escape(f"shapes {shape_a} and {shape_b} do not fit: inner sizes {inner} differ")
    with pytest.raises(ValueError, match=f"matmul: {shapes}"):
        a @ b


def test_matmul_batch_axes_that_do_not_broadcast():
    a, b = tr.Tensor(np.ones((2, 3, 4))), tr.Tensor(np.ones((5, 4, 2)))
    with pytest.raises(ValueError, match=r"matmul: .*\(input shapes \(2, 3, 4\) and \(5, 4, 2\)\)"):
        a @ b


def test_matmul_with_a_scalar():
    with pytest.raises(ValueError, match=r"matmul: operands need at least one axis, "
                                         r"got shapes \(\) and \(2,\)"):
        tr.Tensor(1.0) @ tr.Tensor([1.0, 2.0])


# -------------------------------------------------------------- shape errors

def test_shape_op_errors_name_the_op_and_the_shape():
    x = tr.Tensor(np.ones((2, 3)))
    cases = [
        (lambda: x.reshape(4), ValueError, r"reshape: cannot reshape array of size 6 into shape \(4,\)"),
        (lambda: x.transpose(0, 0), ValueError,
         r"transpose: axes \(0, 0\) are not a permutation of the 2 axes"),
        (lambda: x.transpose(0), ValueError, r"transpose: axes \(0,\) are not a permutation"),
        (lambda: x[5], IndexError, r"getitem: index 5 is out of bounds .*\(input shapes \(2, 3\)\)"),
        (lambda: x[0.5], IndexError, r"getitem: only integers, slices"),
        (lambda: x.sum(axis=2), ValueError, r"sum: axis 2 is out of bounds for array of dimension 2"),
        (lambda: x.max(axis=-3), ValueError, r"max: axis -3 is out of bounds"),
        (lambda: x.softmax(axis=2), ValueError, r"softmax: axis 2 is out of bounds"),
        (lambda: x.split([1, 1], axis=1), ValueError,
         r"split: sizes \[1, 1\] do not add up to 3, the length of axis 1"),
        (lambda: x.split(0), ValueError, r"split: size must be positive, got 0"),
        (lambda: x.split(1, axis=2), ValueError, r"split: axis 2 is out of range for shape \(2, 3\)"),
        (lambda: x.chunk(0), ValueError, r"chunk: n must be a positive int, got 0"),
        (lambda: tr.cat([x, tr.Tensor(np.ones((2, 2)))]), ValueError,
         r"cat: .*\(input shapes \(2, 3\) and \(2, 2\)\)"),
        (lambda: tr.stack([x, tr.Tensor(np.ones((3, 2)))]), ValueError,
         r"stack: all input arrays must have the same shape \(input shapes \(2, 3\) and \(3, 2\)\)"),
        (lambda: tr.cat([]), ValueError, r"cat: needs at least one tensor, got none"),
        (lambda: tr.stack(x), TypeError, r"stack: expects a list of Tensors, got a single Tensor"),
    ]
    for call, kind, message in cases:
        with pytest.raises(kind, match=message):
            call()


def test_a_scope_needs_a_name():
    with pytest.raises(ValueError, match="scope: name must be a non-empty string .*got ''"):
        with tr.scope(""):
            pass


# ------------------------------------------------------------ detect_anomaly

def test_detect_anomaly_in_forward_names_the_op_and_this_line():
    x = tr.Tensor([1.0, -1.0])
    with tr.detect_anomaly(), pytest.raises(FloatingPointError) as error:
        where = next_line()
        x.sqrt()
    assert str(error.value) == f"detect_anomaly: 'sqrt' produced nan in forward, at {where}: x.sqrt()"


def test_detect_anomaly_in_backward_names_the_op_and_the_line_that_created_it():
    x = leaf([0.0, 4.0])
    with tr.detect_anomaly():
        where = next_line()
        y = x.sqrt()
        with pytest.raises(FloatingPointError) as error:
            y.sum().backward()
    message = str(error.value)
    assert "detect_anomaly: backward of 'sqrt' produced inf in the gradient of its input 0 (shape (2,))" \
        in message
    assert message.endswith(f"created at {where}: y = x.sqrt()")


def test_detect_anomaly_reports_inf_from_overflow_and_passes_finite_graphs():
    with tr.detect_anomaly():
        with pytest.raises(FloatingPointError, match="'exp' produced inf in forward"):
            tr.Tensor([100.0]).exp()
        x = leaf([0.5])
        (x.tanh() * x).sum().backward()
    assert np.isfinite(x.grad).all()


def test_detect_anomaly_sees_an_overflowing_weight_gradient_of_a_recurrent_step():
    """One step C h + x_proj(t): the weight's gradient g^T h overflows."""
    h = tr.Tensor(np.full((2, 4), 1e30, dtype=np.float32))
    weight = tr.Tensor(np.full((3, 4), 0.5, dtype=np.float32), requires_grad=True)
    x_proj = tr.Tensor(np.zeros((2, 3), dtype=np.float32), requires_grad=True)
    with tr.detect_anomaly():
        out = tr.linear(h, weight, x_proj)
        with pytest.raises(FloatingPointError, match="backward of 'linear' produced inf in the "
                                                     r"gradient of its input 1 \(shape \(3, 4\)\)"):
            out.backward(np.full((2, 3), 1e10, dtype=np.float32))


@pytest.mark.parametrize("seed", [-1, 1.5, "7", True])
def test_manual_seed_needs_a_non_negative_integer(seed):
    with pytest.raises(ValueError, match=f"manual_seed: seed must be a non-negative integer, got {seed!r}"):
        tr.manual_seed(seed)


def test_detect_anomaly_points_past_library_code_to_the_users_line():
    layer = tr.nn.Linear(2, 1)
    x = tr.Tensor([[np.inf, 1.0]])
    with tr.detect_anomaly(), pytest.raises(FloatingPointError) as error:
        where = next_line()
        layer(x)
    assert str(error.value).endswith(f"inf came in with the data: the input leaf of shape (1, 2) holds "
                                     f"inf, first at index (0, 0), first used by 'linear', at {where}: layer(x)")


def test_a_scope_name_cannot_hold_the_path_separator():
    with pytest.raises(ValueError, match=r"without '/' \(the path separator; nest scopes instead\), got 'a/b'"):
        with tr.scope("a/b"):
            pass


# ------------------------------------------------- arrays changed in place

def test_a_saved_array_changed_in_place_before_backward_is_refused():
    """x * x saves x; x.data *= 100 after forward would make d(x*x)/dx = 200 instead of 2."""
    x = tr.Tensor(1.0, requires_grad=True, name="x")
    y = x * x
    x.data *= 100
    with pytest.raises(RuntimeError, match=r"backward: 'x' of shape \(\), an input of 'mul', was changed "
                                           r"in place after the forward pass \(version 1, saved at 0\)"):
        y.backward()


def test_an_optimizer_step_between_forward_and_backward_is_refused():
    layer = tr.nn.Linear(3, 2)
    opt = tr.optim.SGD(layer.parameters(), lr=0.1)
    loss = layer(tr.Tensor(np.ones((4, 3)))).sum()
    for p in layer.parameters():
        p.grad = np.ones_like(p.data)
    opt.step()
    with pytest.raises(RuntimeError, match="'weight' of shape \\(2, 3\\), an input of 'linear', was changed"):
        loss.backward()


def test_changes_that_backward_does_not_depend_on_are_allowed():
    """A replaced array, or one whose values the op did not save (add), changes no gradient."""
    x = tr.Tensor([1.0, 2.0], requires_grad=True)
    y = (x + 1.0).sum()
    x.data *= 3  # add saved nothing of x
    y.backward()
    np.testing.assert_array_equal(x.grad, [1.0, 1.0])
    z = tr.Tensor([1.0, 2.0], requires_grad=True)
    w = (z * z).sum()
    z.data = np.array([5.0, 5.0], dtype=np.float32)  # a new array: mul kept the old one
    w.backward()
    np.testing.assert_array_equal(z.grad, [2.0, 4.0])


# ------------------------------------------------------------ numpy ufuncs

def test_a_numpy_function_of_a_tensor_points_to_the_tensors_own_method():
    t = tr.Tensor([0.5])
    with pytest.raises(TypeError, match=r"numpy's tanh does not take a Tensor: use the Tensor's own "
                                        r"method \(t\.tanh\(\), t\.exp\(\), t \+ u, \.\.\.\), or "
                                        r"np\.tanh\(t\.data\)"):
        np.tanh(t)
    with pytest.raises(TypeError, match="numpy's maximum does not take a Tensor"):
        np.maximum(t, 0)
