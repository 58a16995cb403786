import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinygrad_rnn as tr
from tinygrad_rnn import nn

sizes = st.integers(1, 4)


def float64_tensor(rng, shape, requires_grad=True):
    return tr.Tensor(rng.standard_normal(shape), requires_grad=requires_grad)


# ------------------------------------------------------------------- Linear

def test_linear_shapes_names_dtype_and_init_bounds():
    layer = nn.Linear(16, 5)
    assert layer.weight.shape == (5, 16) and layer.bias.shape == (5,)
    assert [n for n, _ in layer.named_parameters()] == ["weight", "bias"]
    assert layer.weight.name == "weight" and layer.bias.name == "bias"
    assert layer.weight.dtype == np.float32 and layer.bias.dtype == np.float32
    bound = 1 / np.sqrt(16)
    assert np.abs(layer.weight.data).max() <= bound and np.abs(layer.bias.data).max() <= bound
    assert np.abs(layer.weight.data).max() > bound / 2  # spread over the interval, not all near 0


def test_linear_init_is_repeatable_after_manual_seed():
    tr.manual_seed(123)
    first = nn.Linear(3, 4).state_dict()
    tr.manual_seed(123)
    second = nn.Linear(3, 4).state_dict()
    assert all(np.array_equal(first[k], second[k]) for k in first)
    assert not np.array_equal(nn.Linear(3, 4).weight.data, second["weight"])


@given(batch=st.lists(sizes, max_size=2), n_in=sizes, n_out=sizes, bias=st.booleans())
def test_linear_matches_numpy_on_any_leading_shape(batch, n_in, n_out, bias):
    rng = np.random.default_rng(0)
    layer = nn.Linear(n_in, n_out, bias=bias).to("float64")
    x = rng.standard_normal((*batch, n_in))
    expected = x @ layer.weight.data.T + (layer.bias.data if bias else 0)
    out = layer(tr.Tensor(x))
    assert out.shape == (*batch, n_out)
    np.testing.assert_allclose(out.data, expected, rtol=1e-12, atol=1e-12)


@given(batch=st.lists(sizes, max_size=2), n_in=sizes, n_out=sizes)
def test_linear_gradients_match_finite_differences(batch, n_in, n_out):
    rng = np.random.default_rng(1)
    layer = nn.Linear(n_in, n_out).to("float64")
    x = float64_tensor(rng, (*batch, n_in))

    def forward(x, weight, bias):
        return layer(x)

    assert tr.gradcheck(forward, [x, layer.weight, layer.bias])


def test_linear_gradient_by_hand():
    rng = np.random.default_rng(2)
    layer = nn.Linear(3, 2).to("float64")
    x = rng.standard_normal((4, 3))
    g = rng.standard_normal((4, 2))
    layer(tr.Tensor(x)).backward(g)
    np.testing.assert_allclose(layer.weight.grad, g.T @ x, rtol=1e-12)
    np.testing.assert_allclose(layer.bias.grad, g.sum(axis=0), rtol=1e-12)


def test_linear_without_bias_has_one_parameter():
    layer = nn.Linear(2, 3, bias=False)
    assert layer.bias is None and [n for n, _ in layer.named_parameters()] == ["weight"]
    assert "bias=False" in repr(layer)


def test_linear_wrong_feature_size_names_expected_and_got():
    layer = nn.Linear(3, 2)
    with pytest.raises(ValueError, match=r"expected input of shape \(\.\.\., 3\).*got shape \(4, 5\)"):
        layer(tr.Tensor(np.zeros((4, 5), dtype=np.float32)))
    with pytest.raises(ValueError, match=r"got shape \(\)"):
        layer(tr.Tensor(1.0))
    with pytest.raises(TypeError, match="floating point, got dtype int64"):
        layer(np.zeros((2, 3), dtype=np.int64))


@pytest.mark.parametrize("args", [(0, 2), (2, -1), (2.0, 3), (True, 2)])
def test_linear_bad_sizes_raise(args):
    with pytest.raises(ValueError, match="must be a positive int"):
        nn.Linear(*args)


def test_linear_loads_a_pytorch_state_dict_and_agrees():
    torch = pytest.importorskip("torch")
    reference = torch.nn.Linear(4, 3).double()
    layer = nn.Linear(4, 3).to("float64")
    layer.load_state_dict({k: v.detach().numpy() for k, v in reference.state_dict().items()})
    x = np.random.default_rng(3).standard_normal((2, 5, 4))
    expected = reference(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(layer(tr.Tensor(x)).data, expected, rtol=1e-12, atol=1e-14)


# ---------------------------------------------------------------- Embedding

def test_embedding_shape_name_dtype_and_normal_init():
    tr.manual_seed(0)
    table = nn.Embedding(2000, 8)
    assert table.weight.shape == (2000, 8) and table.weight.dtype == np.float32
    assert table.weight.name == "weight"
    assert abs(table.weight.data.mean()) < 0.05 and abs(table.weight.data.std() - 1) < 0.05


@given(shape=st.lists(sizes, max_size=3), num=sizes, dim=sizes)
def test_embedding_looks_up_rows_for_any_index_shape(shape, num, dim):
    rng = np.random.default_rng(4)
    table = nn.Embedding(num, dim)
    indices = rng.integers(0, num, size=shape)
    out = table(tr.Tensor(indices))
    assert out.shape == (*shape, dim)
    for position in np.ndindex(*shape):
        np.testing.assert_array_equal(out.data[position], table.weight.data[indices[position]])


def test_embedding_gradient_adds_up_repeated_indices():
    table = nn.Embedding(4, 2).to("float64")
    indices = np.array([[1, 3], [1, 1]])
    g = np.arange(8.0).reshape(2, 2, 2)
    table(indices).backward(g)
    expected = np.zeros((4, 2))
    for position in np.ndindex(2, 2):
        expected[indices[position]] += g[position]
    np.testing.assert_array_equal(table.weight.grad, expected)


def test_embedding_gradcheck():
    table = nn.Embedding(5, 3).to("float64")
    indices = np.array([0, 4, 4, 2])
    assert tr.gradcheck(lambda w: table(indices).tanh(), [table.weight])


def test_embedding_accepts_ints_lists_and_unsigned():
    table = nn.Embedding(3, 2)
    assert table(2).shape == (2,)
    assert table([0, 2]).shape == (2, 2)
    assert table([]).shape == (0, 2)
    assert table(np.array([1], dtype=np.uint8)).shape == (1, 2)


@pytest.mark.parametrize("indices, message", [
    (np.array([0, 5]), r"index 5 is out of range for num_embeddings=5 \(valid: 0 to 4\)"),
    (np.array([[1, -1]]), r"index -1 is out of range"),
])
def test_embedding_out_of_range_names_the_bad_value(indices, message):
    with pytest.raises(IndexError, match=message):
        nn.Embedding(5, 2)(indices)


@pytest.mark.parametrize("indices, dtype", [(np.array([1.0]), "float64"), ([True], "bool"),
                                            (tr.Tensor([0.0, 1.0]), "float32")])
def test_embedding_non_integer_indices_name_the_dtype(indices, dtype):
    with pytest.raises(TypeError, match=f"indices must be integers, got dtype {dtype}"):
        nn.Embedding(5, 2)(indices)


def test_embedding_agrees_with_pytorch():
    torch = pytest.importorskip("torch")
    reference = torch.nn.Embedding(6, 3)
    table = nn.Embedding(6, 3)
    table.load_state_dict({k: v.detach().numpy() for k, v in reference.state_dict().items()})
    indices = np.array([[5, 0, 5], [1, 2, 3]])
    out = table(indices)
    expected = reference(torch.from_numpy(indices))
    np.testing.assert_array_equal(out.data, expected.detach().numpy())
    g = np.random.default_rng(5).standard_normal((2, 3, 3)).astype(np.float32)
    out.backward(g)
    expected.backward(torch.from_numpy(g))
    np.testing.assert_allclose(table.weight.grad, reference.weight.grad.numpy(), rtol=1e-6)
