"""bptt.record: exact per-step weight shares, state gradients, values, saturation, errors."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

import tinygrad_rnn as tr
from tinygrad_rnn import autograd, bptt, nn
from tinygrad_rnn.nn.cells import rnn_step
from tinygrad_rnn.testing import cell_configs
from graph_walk import graph_nodes
from test_recurrent import KINDS, make_layer, unnamed_lstm_cell


def assert_shares_add_up(rec, param, scope=None):
    """by_step.sum(0) + outside == param.grad (what one backward added), to 1e-12 relative."""
    total = rec.weight_grad_by_step(param, scope=scope).sum(axis=0) + rec.weight_grad_outside(param)
    scale = max(np.abs(param.grad).max(), 1e-300)
    np.testing.assert_allclose(total, param.grad, rtol=1e-12, atol=1e-12 * scale)


def layer_loss(layer, x, rng):
    """A loss on every output of ``layer``, weighted at random so that no gradient is special."""
    output, _ = layer(x)
    return (output * tr.Tensor(rng.normal(size=output.shape))).sum()


@given(kind=st.sampled_from(KINDS), layers=st.integers(1, 2), bidirectional=st.booleans(),
       steps=st.integers(1, 5), batch=st.integers(1, 3),
       sizes=st.tuples(st.integers(1, 4), st.integers(1, 4)),
       seed=st.integers(0, 2 ** 16))
def test_layer_shares_add_up_to_every_parameters_gradient(kind, layers, bidirectional, steps, batch,
                                                          sizes, seed):
    rng = np.random.default_rng(seed)
    layer = make_layer(kind, *sizes, rng, num_layers=layers, bidirectional=bidirectional)
    x = tr.Tensor(rng.normal(size=(steps, batch, sizes[0])))
    with bptt.record() as rec:
        layer_loss(layer, x, rng).backward()
    assert rec.steps == list(range(steps))
    assert len(rec.sequences) == layers * (2 if bidirectional else 1)
    for name, param in layer.named_parameters():
        scope = f"{layer.scope_name}/l{name.split('_l')[1]}"
        assert rec.weight_grad_by_step(param, scope=scope).shape == (steps, *param.shape)
        assert_shares_add_up(rec, param, scope=scope)


def test_the_input_projection_is_outside_the_steps_and_weight_hh_inside():
    rng = np.random.default_rng(0)
    lstm = make_layer("lstm", 2, 3, rng)
    with bptt.record() as rec:
        layer_loss(lstm, tr.Tensor(rng.normal(size=(4, 2, 2))), rng).backward()
    np.testing.assert_array_equal(rec.weight_grad_by_step(lstm.weight_ih_l0), np.zeros((4, 12, 2)))
    np.testing.assert_array_equal(rec.weight_grad_outside(lstm.weight_ih_l0), lstm.weight_ih_l0.grad)
    np.testing.assert_array_equal(rec.weight_grad_outside(lstm.weight_hh_l0), np.zeros((12, 3)))
    # h(-1) = 0, so the first step's share of dL/dW_hh = delta h(-1)^T is exactly zero
    by_step = rec.weight_grad_by_step(lstm.weight_hh_l0)
    assert not by_step[0].any() and by_step[1:].any()


def hand_made_cell(W, U, b):
    """A minimal gated cell: g = sigmoid(x W^T + h U^T + b), h' = g * h + (1 - g) * tanh(x W^T)."""
    def cell(x, h):
        h = tr.Tensor(np.zeros((x.shape[0], U.shape[0]))) if h is None else h
        g = (tr.linear(x, W) + tr.linear(h, U, b)).sigmoid().named("g")
        return (g * h + (1 - g) * tr.linear(x, W).tanh()).named("h")
    return cell


@given(steps=st.integers(1, 6), batch=st.integers(1, 3), input_size=st.integers(1, 4),
       hidden=st.integers(1, 4), seed=st.integers(0, 2 ** 16))
def test_a_hand_made_cells_weights_are_shared_out_over_its_steps(steps, batch, input_size, hidden, seed):
    rng = np.random.default_rng(seed)
    W = tr.Tensor(rng.normal(size=(hidden, input_size)), requires_grad=True, name="W")
    U = tr.Tensor(rng.normal(size=(hidden, hidden)), requires_grad=True, name="U")
    b = tr.Tensor(rng.normal(size=hidden), requires_grad=True, name="b")
    xs = tr.Tensor(rng.normal(size=(steps, batch, input_size)))
    with bptt.record() as rec:
        hs, _ = nn.unroll(hand_made_cell(W, U, b), xs)
        (tr.stack(hs) ** 2).sum().backward()
    assert rec.sequences == [""] and rec.names() == ["g", "h"]
    for param in (W, U, b):
        assert_shares_add_up(rec, param)
        assert not rec.weight_grad_outside(param).any()   # every use is inside a step


@given(config=cell_configs(max_steps=5), seed=st.integers(0, 2 ** 16))
def test_built_in_cells_run_by_unroll_share_all_four_weights_over_the_steps(config, seed):
    rng = np.random.default_rng(seed)
    cell = config.build().to(np.float64)
    xs = tr.Tensor(rng.normal(size=config.input_shape))
    with bptt.record() as rec:
        hs, _ = nn.unroll(cell, xs)
        (tr.stack(hs) * tr.Tensor(rng.normal(size=(config.steps, *config.state_shape)))).sum().backward()
    for param in cell.parameters():
        assert_shares_add_up(rec, param)


def test_each_share_is_the_gradient_of_that_steps_own_copy_of_the_weight():
    """Independent reference: give every step its own leaf copy C_t of C = weight_hh;
    dL/dC_t (checked by finite differences) is step t's share of dL/dC."""
    rng = np.random.default_rng(1)
    cell = nn.RNNCell(2, 3).to(np.float64)
    xs = [tr.Tensor(rng.normal(size=(2, 2))) for _ in range(5)]

    def loss_with_copies(*copies):
        h = tr.Tensor(np.zeros((2, 3)))
        for x, C in zip(xs, copies):
            h = rnn_step(cell.project_input(x), h, C, cell.bias_hh)
        return (h * h).sum()

    copies = [tr.Tensor(cell.weight_hh.data.copy(), requires_grad=True) for _ in xs]
    loss_with_copies(*copies).backward()
    assert tr.gradcheck(loss_with_copies, copies)
    with bptt.record() as rec:
        hs, _ = nn.unroll(cell, xs)
        (hs[-1] * hs[-1]).sum().backward()
    np.testing.assert_allclose(rec.weight_grad_by_step(cell.weight_hh), [C.grad for C in copies],
                               rtol=1e-12, atol=1e-15)


@given(kind=st.sampled_from(["rnn", "lstm", "gru"]), steps=st.integers(1, 5), seed=st.integers(0, 2 ** 16))
def test_grads_of_h_equal_retain_grad_on_every_h(kind, steps, seed):
    rng = np.random.default_rng(seed)
    cell = {"rnn": nn.RNNCell, "lstm": nn.LSTMCell, "gru": nn.GRUCell}[kind](3, 4).to(np.float64)
    xs = tr.Tensor(rng.normal(size=(steps, 2, 3)))
    with bptt.record() as rec:
        hs, _ = nn.unroll(cell, xs)
        for h in hs:
            h.retain_grad()
        (tr.stack(hs) * tr.Tensor(rng.normal(size=(steps, 2, 4)))).sum().backward()
    np.testing.assert_array_equal(rec.grads("h"), [h.grad for h in hs])
    np.testing.assert_array_equal(rec.values("h"), [h.data for h in hs])
    np.testing.assert_allclose(rec.grad_norms("h"), [np.sqrt((h.grad ** 2).sum()) for h in hs], rtol=1e-14)


def test_grads_of_the_gates_of_a_layer_equal_retain_grads_on_the_graph():
    rng = np.random.default_rng(2)
    lstm = make_layer("lstm", 2, 3, rng)
    with bptt.record() as rec:
        output, _ = lstm(tr.Tensor(rng.normal(size=(4, 2, 2))))
        (output ** 2).sum().backward(retain_grads=True)
    forget = sorted((n for n in graph_nodes(output) if n.name == "f"), key=lambda n: n.scope)
    assert [f.scope for f in forget] == [f"lstm/l0/t={t}" for t in range(4)]
    np.testing.assert_array_equal(rec.grads("f"), [f.grad for f in forget])
    np.testing.assert_array_equal(rec.values("f"), [f.data for f in forget])


def test_a_tensor_backward_does_not_reach_has_a_zero_gradient():
    cell = nn.LSTMCell(2, 3).to(np.float64)
    xs = tr.Tensor(np.ones((3, 1, 2)))
    with bptt.record() as rec:
        hs, (h, c) = nn.unroll(cell, xs)
        hs[0].sum().backward()   # only step 0 matters
    grads = rec.grads("c")
    assert grads[0].any() and not grads[1:].any()


def test_saturation_is_the_fraction_of_values_outside_low_high_counted_by_hand():
    rng = np.random.default_rng(3)
    lstm = make_layer("lstm", 2, 5, rng, scale=2.0)
    with bptt.record() as rec:
        lstm(tr.Tensor(rng.normal(size=(6, 3, 2))))
    f = rec.values("f")
    for low, high in [(0.1, 0.9), (0.3, 0.6)]:
        counted = [sum(1 for v in f[t].ravel() if v < low or v > high) / f[t].size for t in range(6)]
        np.testing.assert_array_equal(rec.saturation("f", low, high), counted)
    assert 0 < rec.saturation("f").max() < 1   # the test exercises both sides of the bounds


# ------------------------------------------------------------------ scopes and errors

def bidirectional_recording():
    rng = np.random.default_rng(4)
    lstm = make_layer("lstm", 2, 3, rng, num_layers=2, bidirectional=True)
    with bptt.record() as rec:
        layer_loss(lstm, tr.Tensor(rng.normal(size=(3, 1, 2))), rng).backward()
    return lstm, rec


def test_scope_is_a_prefix_by_whole_path_parts():
    lstm, rec = bidirectional_recording()
    assert rec.sequences == ["lstm/l0", "lstm/l0_reverse", "lstm/l1", "lstm/l1_reverse"]
    assert rec.values("h", scope="lstm/l1").shape == (3, 1, 3)
    assert not np.array_equal(rec.values("h", scope="lstm/l1"), rec.values("h", scope="lstm/l1_reverse"))
    assert rec.values("h", scope="lstm/l1/t=2").shape == (1, 1, 3)
    assert rec.steps_of("h", scope="lstm/l1/t=2") == [2]
    assert rec.steps_of(lstm.weight_hh_l0) == [0, 1, 2]
    assert rec.weight_grad_by_step(lstm.weight_hh_l1_reverse).shape == (3, 12, 3)


def test_an_ambiguous_name_or_parameter_lists_the_matching_sequences():
    lstm, rec = bidirectional_recording()
    with pytest.raises(ValueError, match=r"'h' is found in 4 recorded sequences: 'lstm/l0', "
                                         r"'lstm/l0_reverse', 'lstm/l1', 'lstm/l1_reverse'; pass scope="):
        rec.grads("h", scope="lstm")
    shared = nn.RNNCell(1, 2)
    xs = tr.Tensor(np.ones((2, 1, 1), np.float32))
    with bptt.record() as twice:
        with tr.scope("encoder"):
            first, h = nn.unroll(shared, xs)
        with tr.scope("decoder"):
            second, _ = nn.unroll(shared, xs, h)
        second[-1].sum().backward()
    with pytest.raises(ValueError, match=r"weight_hh.*found in 2 recorded sequences: 'encoder', 'decoder'"):
        twice.weight_grad_by_step(shared.weight_hh)
    total = sum(twice.weight_grad_by_step(shared.weight_hh, scope=s).sum(0) for s in ("encoder", "decoder"))
    np.testing.assert_allclose(total, shared.weight_hh.grad, rtol=1e-6)


def test_an_unknown_name_scope_or_parameter_lists_what_is_known():
    lstm, rec = bidirectional_recording()
    with pytest.raises(ValueError, match=r"no tensor named 'g'.*known names: 'i', 'f', 'c~', 'o', 'c', 'h'"):
        rec.values("g", scope="lstm/l0")
    with pytest.raises(ValueError, match=r"no recorded step lies within scope 'gru'; recorded "
                                         r"sequences: 'lstm/l0', 'lstm/l0_reverse'"):
        rec.values("h", scope="gru")
    with pytest.raises(ValueError, match=r"the leaf 'other' of shape \(2,\) received no gradient.*"
                                         r"'weight_ih_l0'"):
        rec.weight_grad_by_step(tr.Tensor([1.0, 2.0], requires_grad=True, name="other"))
    with pytest.raises(ValueError, match="low must be below high"):
        rec.saturation("f", low=0.9, high=0.1, scope="lstm/l0")


def test_a_hand_made_cell_that_names_nothing_is_recorded_through_the_state_unroll_names():
    weight = tr.Tensor(np.random.default_rng(3).normal(size=(12, 4)), requires_grad=True, name="W")
    with bptt.record() as rec:
        hs, _ = nn.unroll(unnamed_lstm_cell(weight), tr.Tensor(np.ones((4, 2, 1))))
        (tr.stack(hs) ** 2).sum().backward()
    assert rec.steps == [0, 1, 2, 3] and rec.names() == ["c", "h"]
    assert rec.grad_norms("c").shape == (4,)
    assert_shares_add_up(rec, weight)


HOW_FOUND = (r"Steps are the scopes t=<k> that nn\.unroll and the sequence layers open.*"
             r"tr\.scope\(f't=\{t\}'\).*nn\.unroll names a state the cell left unnamed.*Tensor\.named")


def test_what_was_not_recorded_is_said_with_how_steps_and_names_are_found():
    weight = tr.Tensor(np.ones((2, 2)), requires_grad=True, name="W")
    with bptt.record() as nothing:   # a loop without scopes records no step
        h = tr.Tensor(np.zeros((1, 2)))
        for _ in range(3):
            h = (h @ weight + 1).tanh()
        h.sum().backward()
    assert nothing.steps == []
    with pytest.raises(ValueError, match=r"no step was recorded; recorded sequences: none\. " + HOW_FOUND):
        nothing.values("h")
    with pytest.raises(ValueError, match=r"no recorded sequence used the leaf 'W' .*: none\. " + HOW_FOUND):
        nothing.weight_grad_by_step(weight)
    cell = nn.RNNCell(1, 2)
    with bptt.record() as rec:
        hs, _ = nn.unroll(cell, tr.Tensor(np.ones((2, 1, 1), np.float32)))
    with pytest.raises(ValueError, match=r"no tensor named 'f' .*known names: 'h'\. " + HOW_FOUND):
        rec.values("f")
    with pytest.raises(ValueError, match=r"no recorded step lies within scope 'lstm'; recorded "
                                         r"sequences: ''\. " + HOW_FOUND):
        rec.values("h", scope="lstm")


def test_gradients_asked_without_a_backward_in_the_block_say_so():
    cell = nn.RNNCell(1, 2)
    with bptt.record() as rec:
        hs, _ = nn.unroll(cell, tr.Tensor(np.ones((2, 1, 1), np.float32)))
    assert rec.values("h").shape == (2, 1, 2)
    with pytest.raises(RuntimeError, match=r"no backward ran inside the record\(\) block"):
        rec.grads("h")
    hs[-1].sum().backward()   # after the block: not recorded
    with pytest.raises(RuntimeError, match="no backward ran"):
        rec.weight_grad_by_step(cell.weight_hh)


def test_a_sequence_run_twice_in_one_block_is_refused_with_the_advice_to_scope_each_run():
    cell = nn.RNNCell(1, 2)
    xs = tr.Tensor(np.ones((2, 1, 1), np.float32))
    with bptt.record() as rec:
        nn.unroll(cell, xs)
        nn.unroll(cell, xs)
    with pytest.raises(ValueError, match=r"2 tensors are named 'h' at t=0: the block ran that "
                                         r"sequence more than once.*tr.scope"):
        rec.values("h")


def test_nothing_is_recorded_outside_the_block_and_the_graph_is_let_go():
    cell = nn.LSTMCell(2, 3)
    xs = tr.Tensor(np.ones((3, 1, 2), np.float32))
    assert autograd.observers == []
    with bptt.record() as rec:
        assert autograd.observers == [rec]
        hs, _ = nn.unroll(cell, xs)
        hs[-1].sum().backward()
    assert autograd.observers == []
    before = rec.weight_grad_by_step(cell.weight_hh).copy()
    with tr.scope("later"):
        hs, _ = nn.unroll(cell, xs)
        hs[-1].sum().backward()
    assert rec.sequences == [""]
    np.testing.assert_array_equal(rec.weight_grad_by_step(cell.weight_hh), before)
    # the recording keeps arrays, and Tensors only as the keys of the leaves' shares
    kept = [v for v in vars(rec).values() if isinstance(v, (list, dict)) and v]
    tensors = [k for d in kept if isinstance(d, dict) for k in d if isinstance(k, tr.Tensor)]
    assert tensors and all(t.op is None for t in tensors)
    assert not any(isinstance(v, tr.Tensor) for d in kept if isinstance(d, list) for v in d)
