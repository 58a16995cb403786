import numpy as np
import pytest

import tinygrad_rnn as tr
from tinygrad_rnn import nn


class Pair(nn.Module):
    """Two parameters assigned in the order b, a: discovery must keep that order."""

    def __init__(self):
        self.b = nn.Parameter(np.ones((2, 3)))
        self.a = nn.Parameter(np.zeros(3))
        self.note = "not a parameter"
        self.count = 3

    def forward(self, x):
        return x @ self.b.T


class Model(nn.Module):
    def __init__(self):
        self.first = Pair()
        self.blocks = [Pair(), Pair()]
        self.extra = (nn.Parameter(np.full(4, 2.0)), "text", 7)
        self.scale = nn.Parameter(np.array(0.5))


def names(module):
    return [name for name, _ in module.named_parameters()]


def test_discovery_follows_assignment_order_with_dotted_names():
    assert names(Pair()) == ["b", "a"]
    assert names(Model()) == ["first.b", "first.a", "blocks.0.b", "blocks.0.a",
                              "blocks.1.b", "blocks.1.a", "extra.0", "scale"]


def test_parameters_match_named_parameters_and_are_the_same_objects():
    model = Model()
    assert [id(p) for p in model.parameters()] == [id(p) for _, p in model.named_parameters()]
    assert model.parameters()[0] is model.first.b


def test_named_children_lists_modules_only():
    model = Model()
    assert [name for name, _ in model.named_children()] == ["first", "blocks.0", "blocks.1"]


def test_shared_parameter_and_shared_module_are_listed_once():
    class Tied(nn.Module):
        def __init__(self):
            self.encoder = Pair()
            self.decoder = Pair()
            self.decoder.b = self.encoder.b
            self.again = self.encoder

    tied = Tied()
    assert names(tied) == ["encoder.b", "encoder.a", "decoder.a"]


def test_a_module_that_refers_back_to_its_parent_does_not_recurse_forever():
    outer = Model()
    outer.first.owner = outer
    assert names(outer)[0] == "first.b" and len(names(outer)) == 8


def test_prefix_is_prepended():
    assert names(Pair()) == [n[len("p."):] for n, _ in Pair().named_parameters(prefix="p.")]


def test_zero_grad_clears_every_gradient():
    model = Model()
    loss = sum((p * p).sum() for p in model.parameters())
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())
    model.zero_grad()
    assert all(p.grad is None for p in model.parameters())


def test_call_runs_forward_and_a_module_without_forward_says_so():
    pair = Pair()
    out = pair(tr.Tensor(np.ones((1, 3))))
    np.testing.assert_array_equal(out.data, [[3.0, 3.0]])
    with pytest.raises(TypeError, match="Model has no forward"):
        Model()(1.0)


def test_state_dict_is_a_copy_in_named_order():
    model = Model()
    state = model.state_dict()
    assert list(state) == names(model)
    state["first.b"][...] = 42.0
    assert np.all(model.first.b.data == 1.0)
    assert state["scale"].shape == ()


def test_state_dict_round_trip_between_models():
    source, target = Model(), Model()
    for i, p in enumerate(source.parameters()):
        p.data[...] = np.arange(p.size).reshape(p.shape) + 10 * i
    missing, unexpected = target.load_state_dict(source.state_dict())
    assert missing == [] and unexpected == []
    for (name, p), q in zip(source.named_parameters(), target.parameters()):
        np.testing.assert_array_equal(p.data, q.data, err_msg=name)
        assert p.data is not q.data


def snapshot(module):
    return {name: (p.data.dtype, p.data.tobytes()) for name, p in module.named_parameters()}


def valid_state(model):
    return {name: np.full(p.shape, 9.0) for name, p in model.named_parameters()}


@pytest.mark.parametrize("change, message", [
    (lambda s: s.pop("blocks.1.a"), r"missing key 'blocks\.1\.a' \(expected shape \(3,\)\)"),
    (lambda s: s.__setitem__("blocks.2.a", np.zeros(3)), r"unexpected key 'blocks\.2\.a'"),
    (lambda s: s.__setitem__("first.b", np.zeros((3, 2))),
     r"'first\.b': expected shape \(2, 3\), found \(3, 2\)"),
    (lambda s: s.__setitem__("scale", np.array("x")), r"'scale': expected real numbers, found dtype <U1"),
    (lambda s: s.__setitem__("first.a", np.zeros(3, dtype=complex)), r"found dtype complex128"),
])
def test_failed_load_names_the_problem_and_changes_nothing(change, message):
    model = Model()
    before = snapshot(model)
    state = valid_state(model)
    change(state)
    with pytest.raises(ValueError, match=message):
        model.load_state_dict(state)
    assert snapshot(model) == before


def test_every_problem_is_reported_at_once():
    model = Model()
    state = valid_state(model)
    del state["scale"]
    state["first.a"] = np.zeros(5)
    with pytest.raises(ValueError) as info:
        model.load_state_dict(state)
    assert "missing key 'scale'" in str(info.value) and "'first.a': expected shape" in str(info.value)


def test_non_strict_load_skips_missing_and_unexpected_keys_but_not_bad_shapes():
    model = Model()
    missing, unexpected = model.load_state_dict({"scale": np.array(3.0), "other": np.zeros(2)},
                                                strict=False)
    assert model.scale.data == 3.0
    assert missing == [n for n in names(model) if n != "scale"] and unexpected == ["other"]
    before = snapshot(model)
    with pytest.raises(ValueError, match="expected shape"):
        model.load_state_dict({"scale": np.zeros(2)}, strict=False)
    assert snapshot(model) == before


def test_load_casts_to_each_parameters_dtype_and_accepts_tensors():
    model = Pair()
    model.a.data = model.a.data.astype(np.float32)
    model.load_state_dict({"b": tr.Tensor(np.arange(6, dtype=np.int64).reshape(2, 3)),
                           "a": np.array([0.1, 0.2, 0.3], dtype=np.float64)})
    assert model.b.dtype == np.float64 and model.a.dtype == np.float32
    np.testing.assert_array_equal(model.b.data, np.arange(6.0).reshape(2, 3))
    np.testing.assert_array_equal(model.a.data, np.array([0.1, 0.2, 0.3], dtype=np.float32))


def test_load_rejects_a_non_mapping():
    with pytest.raises(TypeError, match="expected a dict"):
        Pair().load_state_dict([np.zeros(3)])


def test_to_casts_parameters_and_gradients_in_place_and_returns_self():
    model = Model()
    (model.first.b * 2).sum().backward()
    params = model.parameters()
    assert model.to("float32") is model
    assert model.parameters() == params
    assert all(p.dtype == np.float32 for p in params)
    assert model.first.b.grad.dtype == np.float32
    np.testing.assert_array_equal(model.first.b.grad, np.full((2, 3), 2.0))
    model.to(np.float64)
    assert all(p.dtype == np.float64 for p in params)


def test_to_refuses_a_non_floating_dtype():
    with pytest.raises(TypeError, match="floating dtype, got int32"):
        Model().to("int32")


def test_parameter_requires_grad_and_rejects_integer_data():
    p = nn.Parameter([1.0, 2.0])
    assert p.requires_grad and p.dtype == np.float32 and repr(p).startswith("Parameter(")
    with pytest.raises(TypeError, match="int64"):
        nn.Parameter(np.arange(3))


def test_repr_shows_nested_children():
    text = repr(Model())
    assert text.splitlines()[:2] == ["Model(", "  (first): Pair()"]


@pytest.mark.parametrize("value", [tr.Tensor(np.zeros((16, 4), np.float32), requires_grad=True),
                                   np.zeros((16, 4), np.float32), None])
def test_assigning_a_non_parameter_over_a_parameter_is_refused_and_changes_nothing(value):
    lstm = nn.LSTM(3, 4)
    before = lstm.weight_hh_l0
    with pytest.raises(TypeError, match=r"LSTM: cannot assign a \w+ to 'weight_hh_l0', which holds a "
                                        r"Parameter: it would drop out of parameters\(\) and state_dict\(\)"):
        lstm.weight_hh_l0 = value
    assert lstm.weight_hh_l0 is before
    assert len(lstm.parameters()) == 4 and "weight_hh_l0" in lstm.state_dict()


def test_a_parameter_can_replace_a_parameter_and_data_can_change_in_place():
    lstm = nn.LSTM(3, 4)
    replacement = nn.Parameter(np.ones((16, 4), np.float32))
    lstm.weight_hh_l0 = replacement
    assert lstm.parameters()[1] is replacement
    lstm.weight_hh_l0.data = np.zeros((16, 4), np.float32)
    np.testing.assert_array_equal(lstm.state_dict()["weight_hh_l0"], 0.0)
    lstm.note = tr.Tensor([1.0])  # a new name may hold anything
    assert len(lstm.parameters()) == 4
