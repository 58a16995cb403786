"""nn.unroll and the sequence layers RNN, LSTM, GRU against numpy references, gradcheck, errors."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

import tinygrad_rnn as tr
from tinygrad_rnn import nn
from graph_walk import graph_nodes, parts
from test_bptt_reference import CELL_KINDS, random_state, reference_bptt

LAYER_KINDS = {
    "rnn_tanh": lambda *a, **k: nn.RNN(*a, **k),
    "rnn_relu": lambda *a, **k: nn.RNN(*a, nonlinearity="relu", **k),
    "lstm": lambda *a, **k: nn.LSTM(*a, **k),
    "gru": lambda *a, **k: nn.GRU(*a, **k),
    "gru_reset_before": lambda *a, **k: nn.GRU(*a, reset_after=False, **k),
}
KINDS = list(LAYER_KINDS)
CELL_PARAMS = ["weight_ih", "weight_hh", "bias_ih", "bias_hh"]


def make_layer(kind, input_size, hidden_size, rng, scale=0.6, **options):
    layer = LAYER_KINDS[kind](input_size, hidden_size, **options).to(np.float64)
    layer.load_state_dict({name: rng.normal(0, scale, p.shape) for name, p in layer.named_parameters()})
    return layer


def reference_layer(kind, layer, x, states):
    """Numpy forward of ``layer`` from its state_dict: x (T, B, I), one state per layer and direction."""
    forward = CELL_KINDS[kind][1]
    weights = layer.state_dict()
    suffixes = ["", "_reverse"] if layer.bidirectional else [""]
    finals = []
    for k in range(layer.num_layers):
        directions = []
        for suffix in suffixes:
            p = {name: weights.get(f"{name}_l{k}{suffix}") for name in CELL_PARAMS}
            state, hs = states[len(finals)], [None] * len(x)
            for t in (reversed(range(len(x))) if suffix else range(len(x))):
                state, _ = forward(x[t], state, p)
                hs[t] = state[0] if kind == "lstm" else state
            directions.append(np.stack(hs))
            finals.append(state)
        x = np.concatenate(directions, axis=-1)
    return x, finals


def initial_state(kind, slots, batch, hidden, rng):
    """(per-slot numpy states, the h0 argument of the layer)."""
    if kind == "lstm":
        h0, c0 = rng.normal(size=(slots, batch, hidden)), rng.normal(size=(slots, batch, hidden))
        return list(zip(h0, c0)), (tr.Tensor(h0, requires_grad=True), tr.Tensor(c0, requires_grad=True))
    h0 = rng.normal(size=(slots, batch, hidden))
    return list(h0), tr.Tensor(h0, requires_grad=True)


# ------------------------------------------------------------------ unroll

def test_unroll_runs_a_hand_made_cell_with_one_scope_per_step():
    def cell(x, h):
        return x.tanh() if h is None else (x + h).tanh()

    xs = np.random.default_rng(0).normal(size=(4, 2, 3))
    outputs, final = nn.unroll(cell, tr.Tensor(xs))
    h, expected = np.zeros((2, 3)), []
    for x in xs:
        h = np.tanh(x + h)
        expected.append(h)
    assert [o.scope for o in outputs] == ["t=0", "t=1", "t=2", "t=3"]
    assert final is outputs[-1]
    np.testing.assert_allclose(np.stack([o.data for o in outputs]), expected, rtol=0, atol=1e-15)


def test_unroll_takes_a_list_and_a_tuple_state_whose_first_element_is_h():
    def cell(x, state):
        h, count = (x, 0) if state is None else (x + state[0], state[1] + 1)
        return h, count

    xs = [tr.Tensor(np.full((1, 2), float(t))) for t in range(3)]
    outputs, (h, count) = nn.unroll(cell, xs)
    assert count == 2 and h is outputs[-1]
    assert [o.data[0, 0] for o in outputs] == [0.0, 1.0, 3.0]


def test_unroll_reverse_runs_from_the_last_step_and_keeps_time_order():
    rng = np.random.default_rng(1)
    cell = nn.GRUCell(3, 2).to(np.float64)
    xs = rng.normal(size=(5, 2, 3))
    backward, final = nn.unroll(cell, tr.Tensor(xs), reverse=True)
    forward_over_flipped, flipped_final = nn.unroll(cell, tr.Tensor(xs[::-1].copy()))
    assert [o.scope for o in backward] == [f"t={t}" for t in range(5)]
    for t in range(5):
        np.testing.assert_array_equal(backward[t].data, forward_over_flipped[4 - t].data)
    np.testing.assert_array_equal(final.data, flipped_final.data)


def unnamed_lstm_cell(weight):
    """README's hand-made LSTM cell before it named its gates: nothing in it has a name."""
    def cell(x, state):
        if state is None:
            zeros = tr.Tensor(np.zeros((x.shape[0], weight.shape[0] // 4)))
            state = (zeros, zeros)
        h, c = state
        f, i, g, o = (tr.cat([h, x], axis=-1) @ weight.T).chunk(4, axis=-1)
        c = f.sigmoid() * c + i.sigmoid() * g.tanh()
        return o.sigmoid() * c.tanh(), c
    return cell


def test_unroll_names_the_state_an_unnamed_cell_makes_h_and_c():
    weight = tr.Tensor(np.random.default_rng(2).normal(size=(8, 3)), requires_grad=True, name="W")
    outputs, (h, c) = nn.unroll(unnamed_lstm_cell(weight), tr.Tensor(np.ones((3, 2, 1))))
    assert (h.name, c.name) == ("h", "c") and [o.name for o in outputs] == ["h"] * 3
    assert [o.parents[0].name for o in outputs] == [None] * 3   # only the state is named


def test_unroll_names_a_longer_state_by_position_and_keeps_the_names_a_cell_gave():
    def cell(x, state):
        h = x if state is None else x + state[0]
        return h * 2, (h * 3).named("memory"), h * 4

    _, state = nn.unroll(cell, tr.Tensor(np.ones((2, 1, 1))))
    assert [s.name for s in state] == ["h", "memory", "state[2]"]


def test_unroll_does_not_rename_a_tensor_made_outside_the_step():
    kept = tr.Tensor(np.ones((1, 2)))
    outputs, state = nn.unroll(lambda x, s: (x * 2, kept), tr.Tensor(np.ones((2, 1, 2))))
    assert kept.name is None and state[1] is kept and outputs[1].name == "h"


def test_unroll_rejects_empty_and_malformed_sequences():
    cell = nn.RNNCell(2, 2)
    with pytest.raises(ValueError, match=r"unroll: the sequence is empty \(T = 0\)"):
        nn.unroll(cell, [])
    with pytest.raises(ValueError, match=r"unroll: the sequence is empty \(T = 0\)"):
        nn.unroll(cell, tr.Tensor(np.zeros((0, 1, 2), np.float32)))
    with pytest.raises(ValueError, match=r"got a Tensor of shape \(5,\)"):
        nn.unroll(cell, tr.Tensor(np.zeros(5, np.float32)))
    with pytest.raises(TypeError, match="unroll: xs must be a .* got int"):
        nn.unroll(cell, 3)
    with pytest.raises(TypeError, match="the cell must return h or a tuple whose first element is h"):
        nn.unroll(lambda x, h: "h", [tr.Tensor([1.0])])


# ---------------------------------------------------- layers against numpy

@pytest.mark.parametrize("kind", KINDS)
@given(num_layers=st.integers(1, 2), bidirectional=st.booleans(), batch_first=st.booleans(),
       bias=st.booleans(), given_state=st.booleans(), steps=st.integers(1, 4), batch=st.integers(1, 3),
       inputs=st.integers(1, 3), hidden=st.integers(1, 3), seed=st.integers(0, 2**32 - 1))
def test_layer_forward_matches_numpy(kind, num_layers, bidirectional, batch_first, bias, given_state,
                                     steps, batch, inputs, hidden, seed):
    rng = np.random.default_rng(seed)
    layer = make_layer(kind, inputs, hidden, rng, num_layers=num_layers, bias=bias,
                       batch_first=batch_first, bidirectional=bidirectional)
    slots = num_layers * (2 if bidirectional else 1)
    x = rng.normal(size=(steps, batch, inputs))
    if given_state:
        states, h0 = initial_state(kind, slots, batch, hidden, rng)
    else:
        zero = np.zeros((batch, hidden))
        states, h0 = [(zero, zero) if kind == "lstm" else zero] * slots, None
    expected_output, finals = reference_layer(kind, layer, x, states)

    output, state = layer(tr.Tensor(x.transpose(1, 0, 2) if batch_first else x), h0)

    got = output.data.transpose(1, 0, 2) if batch_first else output.data
    directions = 2 if bidirectional else 1
    assert output.shape == ((batch, steps) if batch_first else (steps, batch)) + (directions * hidden,)
    np.testing.assert_allclose(got, expected_output, rtol=0, atol=1e-12)
    if kind == "lstm":
        np.testing.assert_allclose(state[0].data, [f[0] for f in finals], rtol=0, atol=1e-12)
        np.testing.assert_allclose(state[1].data, [f[1] for f in finals], rtol=0, atol=1e-12)
    else:
        assert state.shape == (slots, batch, hidden)
        np.testing.assert_allclose(state.data, finals, rtol=0, atol=1e-12)


@pytest.mark.parametrize("kind", KINDS)
@given(steps=st.integers(1, 5), batch=st.integers(1, 3), inputs=st.integers(1, 3), hidden=st.integers(1, 3),
       seed=st.integers(0, 2**32 - 1))
def test_layer_gradients_match_numpy_bptt(kind, steps, batch, inputs, hidden, seed):
    rng = np.random.default_rng(seed)
    layer = make_layer(kind, inputs, hidden, rng)
    x = rng.normal(size=(steps, batch, inputs))
    states, h0 = initial_state(kind, 1, batch, hidden, rng)
    d_output = rng.normal(size=(steps, batch, hidden))
    d_final = random_state(kind, batch, hidden, rng)
    p = {name: layer.state_dict()[f"{name}_l0"] for name in CELL_PARAMS}
    _, _, dx, d_state, grads = reference_bptt(kind, p, x, states[0], d_output, d_final)

    x_t = tr.Tensor(x, requires_grad=True)
    output, state = layer(x_t, h0)
    if kind == "lstm":
        loss = (output * d_output).sum() + (state[0][0] * d_final[0]).sum() + (state[1][0] * d_final[1]).sum()
    else:
        loss = (output * d_output).sum() + (state[0] * d_final).sum()
    loss.backward()

    np.testing.assert_allclose(x_t.grad, dx, rtol=0, atol=1e-11)
    for got, want in zip(parts(h0), parts(d_state)):
        np.testing.assert_allclose(got.grad[0], want, rtol=0, atol=1e-11)
    for name in CELL_PARAMS:
        np.testing.assert_allclose(getattr(layer, f"{name}_l0").grad, grads[name], rtol=0, atol=1e-11)


@pytest.mark.parametrize("kind", KINDS)
def test_two_layer_bidirectional_batch_first_passes_gradcheck(kind):
    rng = np.random.default_rng(2)
    layer = make_layer(kind, 2, 2, rng, num_layers=2, bidirectional=True, batch_first=True)
    x = tr.Tensor(rng.normal(size=(2, 3, 2)), requires_grad=True)
    _, h0 = initial_state(kind, 4, 2, 2, rng)
    state_inputs = list(h0) if kind == "lstm" else [h0]

    def outputs(x, *_):
        output, state = layer(x, h0)
        last = state[1] if kind == "lstm" else state
        return tr.cat([output.reshape(-1), last.reshape(-1)])

    assert tr.gradcheck(outputs, [x] + state_inputs + layer.parameters())


# ----------------------------------------------------------- the structure

def test_parameter_names_and_order_are_pytorchs():
    gru = nn.GRU(3, 4, num_layers=2, bidirectional=True)
    expected = [f"{kind}_l{k}{suffix}" for k in range(2) for suffix in ["", "_reverse"]
                for kind in CELL_PARAMS]
    assert [name for name, _ in gru.named_parameters()] == expected
    assert all(p.name == name for name, p in gru.named_parameters())
    assert gru.weight_ih_l0.shape == (12, 3) and gru.weight_ih_l1.shape == (12, 8)
    assert gru.weight_hh_l1_reverse.shape == (12, 4) and gru.bias_hh_l1.shape == (12,)
    no_bias = nn.LSTM(3, 4, bias=False)
    assert [name for name, _ in no_bias.named_parameters()] == ["weight_ih_l0", "weight_hh_l0"]


def test_scopes_name_layer_direction_and_time_step_and_the_zero_state_is_named():
    lstm = nn.LSTM(2, 3, num_layers=2, bidirectional=True)
    output, (h_n, c_n) = lstm(tr.Tensor(np.ones((4, 1, 2), np.float32)))
    scopes = {}
    for node in graph_nodes(output):
        scopes[node.scope] = True
    steps = [f"lstm/l{k}{suffix}/t={t}" for k in range(2) for suffix in ["", "_reverse"] for t in range(4)]
    assert [s for s in scopes if "/t=" in s and s not in steps] == []
    assert all(s in scopes for s in steps)
    assert output.scope == h_n.scope == "lstm"
    leaves = [n.name for n in graph_nodes(output) if n.op is None and not isinstance(n, nn.Parameter)]
    assert sorted(name for name in leaves if name) == ["c0", "h0"]


@pytest.mark.parametrize("kind", KINDS)
def test_input_projection_is_one_matmul_per_layer_and_direction(kind):
    layer = LAYER_KINDS[kind](2, 3, num_layers=2, bidirectional=True)
    steps = 5
    output, _ = layer(tr.Tensor(np.ones((steps, 2, 2), np.float32)))
    h_matmuls = 2 if kind == "gru_reset_before" else 1
    matmuls = [n for n in graph_nodes(output) if n.op == "linear"]
    assert len(matmuls) == 4 * (1 + h_matmuls * steps)
    gate_rows = 3 * {"lstm": 4, "gru": 3, "gru_reset_before": 3}.get(kind, 1)
    assert len([n for n in matmuls if n.shape == (steps, 2, gate_rows)]) == 4


@pytest.mark.parametrize("kind", ["gru", "gru_reset_before"])
def test_gru_uses_its_hidden_weights_and_biases_as_given_at_every_step(kind):
    """W_ih and b_ih once, in the projection; W_hh and b_hh inside each step (reset_after=False
    splits them there into [U_r; U_z] and U_n), with no bias folded into another."""
    steps = 5
    layer = LAYER_KINDS[kind](2, 3, num_layers=2, bidirectional=True)
    nodes = graph_nodes(layer(tr.Tensor(np.ones((steps, 2, 2), np.float32)))[0])
    for name, weight in layer.named_parameters():
        users = [n for n in nodes if any(parent is weight for parent in n.parents)]
        if name.startswith(("weight_hh", "bias_hh")):
            assert len(users) == steps * (2 if kind == "gru_reset_before" else 1)
            assert all(n.scope.split("/")[-1].startswith("t=") for n in users)
        else:
            assert [n.op for n in users] == ["linear"] and users[0].scope.count("/") == 1


@pytest.mark.parametrize("kind", KINDS)
def test_unbatched_sequence_equals_a_batch_of_one(kind):
    rng = np.random.default_rng(3)
    layer = make_layer(kind, 3, 2, rng, num_layers=2, bidirectional=True, batch_first=True)
    x = rng.normal(size=(4, 3))
    output, state = layer(tr.Tensor(x))
    batched, batched_state = layer(tr.Tensor(x[None]))
    assert output.shape == (4, 4)
    np.testing.assert_allclose(output.data, batched.data[0], rtol=0, atol=1e-15)
    for s, b in zip(parts(state), parts(batched_state)):
        assert s.shape == (4, 2)
        np.testing.assert_allclose(s.data, b.data[:, 0], rtol=0, atol=1e-15)


def test_truncated_bptt_keeps_the_values_and_cuts_the_gradient():
    rng = np.random.default_rng(4)
    lstm = make_layer("lstm", 2, 3, rng)
    x = rng.normal(size=(6, 1, 2))
    full, _ = lstm(tr.Tensor(x))
    first_x, second_x = tr.Tensor(x[:3], requires_grad=True), tr.Tensor(x[3:], requires_grad=True)
    first, state = lstm(first_x)
    second, _ = lstm(second_x, tuple(s.detach() for s in state))
    np.testing.assert_allclose(np.concatenate([first.data, second.data]), full.data, rtol=0, atol=1e-15)
    second.sum().backward()
    assert first_x.grad is None and np.abs(second_x.grad).max() > 0


def test_a_loss_on_c_n_alone_backpropagates_and_unused_paths_count_as_zero():
    rng = np.random.default_rng(5)
    lstm = make_layer("lstm", 2, 2, rng)
    x = tr.Tensor(rng.normal(size=(3, 2, 2)), requires_grad=True)
    _, (h0, c0) = initial_state("lstm", 1, 2, 2, rng)
    assert tr.gradcheck(lambda x, *_: lstm(x, (h0, c0))[1][1], [x, h0, c0] + lstm.parameters())
    assert tr.gradcheck(lambda x, *_: lstm(x, (h0, c0))[1][0], [x, h0, c0] + lstm.parameters())


def test_a_loss_on_one_direction_gives_the_other_zero_gradient():
    rng = np.random.default_rng(6)
    gru = make_layer("gru", 2, 2, rng, bidirectional=True)
    x = tr.Tensor(rng.normal(size=(3, 1, 2)), requires_grad=True)
    output, _ = gru(x)
    output[-1, :, :2].sum().backward()
    for name, p in gru.named_parameters():
        grad = np.zeros_like(p.data) if p.grad is None else p.grad
        assert (np.abs(grad).max() == 0) == name.endswith("_reverse"), name
    assert tr.gradcheck(lambda x, *_: gru(x)[0][-1, :, :2], [x] + gru.parameters())


# ------------------------------------------------------------------ errors

@pytest.mark.parametrize("kind", KINDS)
def test_bad_inputs_are_named(kind):
    layer = LAYER_KINDS[kind](3, 2, num_layers=2)
    name = type(layer).__name__
    with pytest.raises(ValueError, match=rf"{name}: the sequence is empty \(T = 0"):
        layer(tr.Tensor(np.zeros((0, 4, 3), np.float32)))
    with pytest.raises(ValueError, match=r"read as \(T, B, I\), has 5 features but input_size is 3"):
        layer(tr.Tensor(np.zeros((6, 4, 5), np.float32)))
    with pytest.raises(ValueError, match=r"read as \(T, I\), one unbatched sequence \(a batch needs 3-D\)"):
        layer(tr.Tensor(np.zeros((4, 5), np.float32)))
    with pytest.raises(ValueError, match=r"must be 3-D \(T, B, I\), or 2-D \(T, I\) .* got shape \(3,\)"):
        layer(tr.Tensor(np.zeros(3, np.float32)))
    with pytest.raises(ValueError, match=r"got shape \(1, 2, 4, 3\)"):
        layer(tr.Tensor(np.zeros((1, 2, 4, 3), np.float32)))
    with pytest.raises(TypeError, match="input has dtype float64 but the parameters are float32"):
        layer(tr.Tensor(np.zeros((2, 4, 3))))


@pytest.mark.parametrize("kind", KINDS)
def test_wrong_initial_state_shape_is_named(kind):
    layer = LAYER_KINDS[kind](3, 2, num_layers=2, bidirectional=True, batch_first=True)
    x = tr.Tensor(np.zeros((4, 6, 3), np.float32))

    def state(shape):
        h = tr.Tensor(np.zeros(shape, np.float32))
        return (h, h) if kind == "lstm" else h

    with pytest.raises(ValueError, match=r"h0 must have shape \(4, 4, 2\), got \(2, 4, 2\)"):
        layer(x, state((2, 4, 2)))
    with pytest.raises(ValueError, match=r"h0 must have shape \(4, 4, 2\), got \(4, 6, 2\)"):
        layer(x, state((4, 6, 2)))
    with pytest.raises(ValueError, match=r"h0 \(unbatched input\) must have shape \(4, 2\), got \(4, 1, 2\)"):
        layer(tr.Tensor(np.zeros((6, 3), np.float32)), state((4, 1, 2)))


def test_lstm_initial_state_is_a_pair():
    lstm = nn.LSTM(3, 2)
    x = tr.Tensor(np.zeros((5, 1, 3), np.float32))
    h = tr.Tensor(np.zeros((1, 1, 2), np.float32))
    with pytest.raises(ValueError, match=r"LSTM: the initial state must be a pair \(h0, c0\), got a Tensor"):
        lstm(x, h)
    with pytest.raises(ValueError, match=r"c0 must have shape \(1, 1, 2\), got \(1, 1, 3\)"):
        lstm(x, (h, tr.Tensor(np.zeros((1, 1, 3), np.float32))))


def test_bad_constructor_arguments_are_named():
    with pytest.raises(ValueError, match="RNN: nonlinearity must be 'tanh' or 'relu', got 'gelu'"):
        nn.RNN(2, 3, nonlinearity="gelu")
    with pytest.raises(ValueError, match="LSTM: num_layers must be a positive int, got 0"):
        nn.LSTM(2, 3, num_layers=0)
    with pytest.raises(ValueError, match="GRU: hidden_size must be a positive int, got -1"):
        nn.GRU(2, -1)
