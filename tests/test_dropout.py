"""Dropout: the primitive and its gradient, nn.Dropout, train()/eval(), and the layers' dropout=."""
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinygrad_rnn as tr
from tinygrad_rnn import nn
from tinygrad_rnn.testing import float_arrays, shapes

LAYERS = {"RNN": nn.RNN, "LSTM": nn.LSTM, "GRU": nn.GRU}


def f64(*shape, seed=0):
    return tr.Tensor(np.random.default_rng(seed).standard_normal(shape), dtype="float64")


@settings(deadline=None)
@given(st.data(), st.floats(0.0, 0.9))
def test_the_gradient_at_a_fixed_mask_matches_finite_differences(data, p):
    x = tr.Tensor(data.draw(float_arrays(shapes(max_dims=3))), requires_grad=True, dtype="float64")
    # A fresh generator of the same seed at every call: every evaluation sees the same mask.
    assert tr.gradcheck(lambda x: x.dropout(p, np.random.default_rng(7)), [x])


def test_the_mask_zeroes_a_fraction_p_and_scales_the_rest_by_one_over_one_minus_p():
    x = tr.Tensor(np.ones(100_000, dtype=np.float32))
    out = nn.dropout(x, 0.3)
    assert out.dtype == np.float32 and out.op == "dropout"
    assert set(np.unique(out.data).tolist()) == {0.0, np.float32(1 / 0.7)}
    assert abs((out.data == 0).mean() - 0.3) < 0.01
    assert abs(out.data.mean() - 1.0) < 0.02


def test_backward_passes_the_gradient_through_the_kept_elements_only():
    x = tr.Tensor(np.arange(1.0, 1001.0), requires_grad=True)
    out = nn.dropout(x, 0.5)
    out.sum().backward()
    kept = out.data != 0
    np.testing.assert_array_equal(x.grad[kept], 2.0)
    np.testing.assert_array_equal(x.grad[~kept], 0.0)


def test_manual_seed_repeats_the_masks_and_each_call_draws_a_new_one():
    x = tr.Tensor(np.ones(50))
    tr.manual_seed(11)
    first, second = nn.dropout(x, 0.5).data, nn.dropout(x, 0.5).data
    tr.manual_seed(11)
    np.testing.assert_array_equal(nn.dropout(x, 0.5).data, first)
    assert not np.array_equal(first, second)


def test_the_module_is_the_identity_in_eval_mode_and_with_p_zero():
    x = f64(4, 5)
    drop = nn.Dropout(0.5)
    assert drop.training and drop(x) is not x
    assert drop.eval() is drop and not drop.training
    assert drop(x) is x
    assert nn.Dropout(0.0)(x) is x
    assert repr(drop) == "Dropout(p=0.5)"


@pytest.mark.parametrize("p", [-0.1, 1, 1.5, float("nan"), "0.5", True, None])
def test_a_probability_outside_zero_to_one_is_refused(p):
    with pytest.raises(ValueError, match=r"Dropout: dropout probability must be a number in \[0, 1\)"):
        nn.Dropout(p)
    with pytest.raises(ValueError, match=r"LSTM: dropout probability"):
        nn.LSTM(2, 3, num_layers=2, dropout=p)


def test_dropout_of_integer_data_is_refused():
    with pytest.raises(TypeError, match="dropout: input must be floating point, got dtype int64"):
        nn.dropout(tr.Tensor(np.arange(3)), 0.5)


class Inner(nn.Module):
    def __init__(self):
        self.drop = nn.Dropout(0.2)


class Outer(nn.Module):
    def __init__(self):
        self.inner = Inner()
        self.blocks = [Inner(), nn.Linear(2, 2)]
        self.heads = {"a": nn.Dropout(0.1)}
        self.again = self.inner  # reached twice, visited once


def test_train_and_eval_reach_every_sub_module_and_return_the_module():
    model = Outer()
    modules = model.modules()
    assert len(modules) == 7 and len({id(m) for m in modules}) == 7  # Outer, 2 Inner, 3 Dropout, Linear
    assert model.eval() is model
    assert [m.training for m in modules] == [False] * 7
    assert model.train() is model
    assert [m.training for m in modules] == [True] * 7
    model.train(False)
    assert not model.blocks[0].drop.training and not model.heads["a"].training


def test_train_needs_a_bool():
    with pytest.raises(TypeError, match="train: mode must be True or False, got 'eval'"):
        Outer().train("eval")


def single_layers(layer, name, **options):
    """The layers of a 2-layer ``layer`` as two 1-layer layers with the same weights."""
    width = layer.hidden_size * layer.num_directions
    first = LAYERS[name](layer.input_size, layer.hidden_size, **options).to(np.float64)
    second = LAYERS[name](width, layer.hidden_size, **options).to(np.float64)
    state = layer.state_dict()
    first.load_state_dict({k: v for k, v in state.items() if "_l0" in k})
    second.load_state_dict({k.replace("_l1", "_l0"): v for k, v in state.items() if "_l1" in k})
    return first, second


def final_h(state):
    return state[0] if isinstance(state, tuple) else state


@pytest.mark.parametrize("name", list(LAYERS))
@pytest.mark.parametrize("bidirectional", [False, True])
def test_layer_dropout_acts_on_every_layer_output_but_the_last(name, bidirectional):
    layer = LAYERS[name](3, 4, num_layers=2, dropout=0.4, bidirectional=bidirectional).to(np.float64)
    first, second = single_layers(layer, name, bidirectional=bidirectional)
    x = f64(6, 2, 3)
    tr.manual_seed(5)
    output, state = layer(x)
    tr.manual_seed(5)
    middle, state_0 = first(x)
    dropped = nn.dropout(middle, 0.4)
    expected, state_1 = second(dropped)
    assert (dropped.data == 0).any()
    np.testing.assert_allclose(output.data, expected.data, rtol=1e-12, atol=1e-12)
    # h_n holds each layer's final state before dropout, as in PyTorch
    np.testing.assert_allclose(final_h(state).data,
                               np.concatenate([final_h(state_0).data, final_h(state_1).data]),
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", list(LAYERS))
def test_layer_dropout_is_the_identity_in_eval_mode(name):
    layer = LAYERS[name](3, 4, num_layers=3, dropout=0.5).to(np.float64)
    plain = LAYERS[name](3, 4, num_layers=3).to(np.float64)
    plain.load_state_dict(layer.state_dict())
    x = f64(5, 2, 3)
    layer.eval()
    np.testing.assert_array_equal(layer(x)[0].data, plain(x)[0].data)
    assert "dropout" not in [t.op for t in walk(layer(x)[0])]
    layer.train()
    assert "dropout" in [t.op for t in walk(layer(x)[0])]


def walk(root):
    seen, pending, found = {}, [root], []
    while pending:
        t = pending.pop()
        if id(t) not in seen:
            seen[id(t)] = True
            found.append(t)
            pending += list(t.parents)
    return found


def test_the_gradient_through_a_two_layer_lstm_with_dropout_matches_finite_differences():
    lstm = nn.LSTM(2, 3, num_layers=2, dropout=0.3).to(np.float64)
    x = tr.Tensor(np.random.default_rng(1).standard_normal((4, 2, 2)), requires_grad=True)

    def loss(x, *weights):
        tr.manual_seed(3)  # the same masks at every evaluation
        return (lstm(x)[0] ** 2).sum()

    assert tr.gradcheck(loss, [x, *lstm.parameters()])


@pytest.mark.parametrize("name", list(LAYERS))
def test_dropout_on_a_single_layer_gives_pytorchs_warning_at_the_users_line(name):
    with pytest.warns(UserWarning, match="non-zero dropout expects num_layers greater than 1, "
                                         "but got dropout=0.5 and num_layers=1") as caught:
        LAYERS[name](2, 3, dropout=0.5)
    assert caught[0].filename == __file__
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        LAYERS[name](2, 3, num_layers=2, dropout=0.5)
        LAYERS[name](2, 3, dropout=0.0)


@pytest.mark.parametrize("name", list(LAYERS))
def test_an_unknown_keyword_names_the_public_layer(name):
    with pytest.raises(TypeError, match=rf"^{name}\.__init__\(\) got an unexpected keyword argument 'dropuot'"):
        LAYERS[name](2, 3, dropuot=0.5)


def test_the_layers_take_pytorchs_positional_order():
    lstm = nn.LSTM(2, 3, 2, True, False, 0.25, True)
    assert (lstm.dropout, lstm.bidirectional) == (0.25, True)
    assert repr(lstm) == "LSTM(2, 3, num_layers=2, dropout=0.25, bidirectional=True)"


def test_eval_mode_matches_pytorch_with_dropout():
    torch = pytest.importorskip("torch")
    reference = torch.nn.LSTM(3, 4, num_layers=2, dropout=0.5, dtype=torch.float64).eval()
    lstm = nn.LSTM(3, 4, num_layers=2, dropout=0.5).to(np.float64).eval()
    lstm.load_state_dict({k: v.detach().numpy() for k, v in reference.state_dict().items()})
    x = np.random.default_rng(2).standard_normal((5, 2, 3))
    expected, _ = reference(torch.from_numpy(x))
    np.testing.assert_allclose(lstm(tr.Tensor(x))[0].data, expected.detach().numpy(), rtol=1e-10, atol=1e-12)
