"""Float64 parity with PyTorch: cells and 2-layer bidirectional batch-first sequence layers.

Weights go from PyTorch to us through ``load_state_dict`` unchanged; forward
values and every gradient (parameters, input, initial state) agree to 1e-10.
PyTorch has only the reset_after=True GRU.
"""
import numpy as np
import pytest

import tinygrad_rnn as tr
from tinygrad_rnn import nn

torch = pytest.importorskip("torch")

TOLERANCE = dict(rtol=0, atol=1e-10)


def from_torch(module):
    return {name: value.detach().numpy() for name, value in module.state_dict().items()}


def assert_close(ours, theirs, what):
    np.testing.assert_allclose(ours, theirs.detach().numpy(), err_msg=what, **TOLERANCE)


def pair(array):
    """The same values as a leaf of ours and one of PyTorch's, both requiring grad."""
    return tr.Tensor(array, requires_grad=True), torch.tensor(array, requires_grad=True)


def weighted_sum(tensors, weights):
    """sum_k (tensors[k] * weights[k]).sum(): one scalar loss touching every output."""
    total = 0
    for tensor, weight in zip(tensors, weights):
        total = total + (tensor * weight).sum()
    return total


CELLS = [
    ("rnn_tanh", lambda: nn.RNNCell(3, 4), lambda: torch.nn.RNNCell(3, 4, dtype=torch.float64)),
    ("rnn_relu", lambda: nn.RNNCell(3, 4, nonlinearity="relu"),
     lambda: torch.nn.RNNCell(3, 4, nonlinearity="relu", dtype=torch.float64)),
    ("lstm", lambda: nn.LSTMCell(3, 4), lambda: torch.nn.LSTMCell(3, 4, dtype=torch.float64)),
    ("gru", lambda: nn.GRUCell(3, 4), lambda: torch.nn.GRUCell(3, 4, dtype=torch.float64)),
    ("gru_no_bias", lambda: nn.GRUCell(3, 4, bias=False),
     lambda: torch.nn.GRUCell(3, 4, bias=False, dtype=torch.float64)),
]


@pytest.mark.parametrize("kind, ours, theirs", CELLS, ids=[c[0] for c in CELLS])
def test_cell_matches_pytorch_over_three_steps(kind, ours, theirs):
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    reference = theirs()
    cell = ours().to(np.float64)
    cell.load_state_dict(from_torch(reference))
    xs = [pair(rng.normal(size=(2, 3))) for _ in range(3)]
    states = [pair(rng.normal(size=(2, 4))) for _ in range(2 if kind == "lstm" else 1)]

    state = tuple(s for s, _ in states) if kind == "lstm" else states[0][0]
    torch_state = tuple(s for _, s in states) if kind == "lstm" else states[0][1]
    outputs, torch_outputs = [], []
    for x, torch_x in xs:
        state, torch_state = cell(x, state), reference(torch_x, torch_state)
        outputs.append(state[0] if kind == "lstm" else state)
        torch_outputs.append(torch_state[0] if kind == "lstm" else torch_state)
    weights = rng.normal(size=(3, 2, 4))
    (tr.stack(outputs) * weights).sum().backward()
    (torch.stack(torch_outputs) * torch.tensor(weights)).sum().backward()

    for t, (ours_h, torch_h) in enumerate(zip(outputs, torch_outputs)):
        assert_close(ours_h.data, torch_h, f"h at t={t}")
    for t, (x, torch_x) in enumerate(xs):
        assert_close(x.grad, torch_x.grad, f"dL/dx at t={t}")
    for i, (s, torch_s) in enumerate(states):
        assert_close(s.grad, torch_s.grad, f"dL/d(initial state {i})")
    torch_params = dict(reference.named_parameters())
    for name, p in cell.named_parameters():
        assert_close(p.grad, torch_params[name].grad, f"dL/d{name}")


def test_unbatched_cell_matches_pytorch():
    torch.manual_seed(1)
    reference = torch.nn.LSTMCell(3, 2, dtype=torch.float64)
    cell = nn.LSTMCell(3, 2).to(np.float64)
    cell.load_state_dict(from_torch(reference))
    x, torch_x = pair(np.random.default_rng(1).normal(size=3))
    h, c = cell(x)
    torch_h, torch_c = reference(torch_x)
    (h * c).sum().backward()
    (torch_h * torch_c).sum().backward()
    assert h.shape == (2,)
    assert_close(h.data, torch_h, "h")
    assert_close(c.data, torch_c, "c")
    assert_close(x.grad, torch_x.grad, "dL/dx")


LAYERS = [
    ("rnn_tanh", nn.RNN, torch.nn.RNN, {}),
    ("rnn_relu", nn.RNN, torch.nn.RNN, {"nonlinearity": "relu"}),
    ("lstm", nn.LSTM, torch.nn.LSTM, {}),
    ("gru", nn.GRU, torch.nn.GRU, {}),
    ("gru_no_bias", nn.GRU, torch.nn.GRU, {"bias": False}),
]


@pytest.mark.parametrize("kind, ours, theirs, options", LAYERS, ids=[c[0] for c in LAYERS])
def test_two_layer_bidirectional_batch_first_layer_matches_pytorch(kind, ours, theirs, options):
    torch.manual_seed(2)
    rng = np.random.default_rng(2)
    sizes = dict(input_size=3, hidden_size=4, num_layers=2, batch_first=True, bidirectional=True)
    reference = theirs(**sizes, **options, dtype=torch.float64)
    layer = ours(**sizes, **options).to(np.float64)
    layer.load_state_dict(from_torch(reference))
    x, torch_x = pair(rng.normal(size=(2, 5, 3)))
    states = [pair(rng.normal(size=(4, 2, 4))) for _ in range(2 if kind == "lstm" else 1)]
    h0 = tuple(s for s, _ in states) if kind == "lstm" else states[0][0]
    torch_h0 = tuple(s for _, s in states) if kind == "lstm" else states[0][1]

    output, state = layer(x, h0)
    torch_output, torch_state = reference(torch_x, torch_h0)
    finals = state if kind == "lstm" else (state,)
    torch_finals = torch_state if kind == "lstm" else (torch_state,)
    weights = [rng.normal(size=output.shape)] + [rng.normal(size=f.shape) for f in finals]
    weighted_sum([output, *finals], weights).backward()
    weighted_sum([torch_output, *torch_finals], [torch.tensor(w) for w in weights]).backward()

    assert output.shape == (2, 5, 8)
    assert_close(output.data, torch_output, "output")
    for i, (f, torch_f) in enumerate(zip(finals, torch_finals)):
        assert_close(f.data, torch_f, f"final state {i}")
    assert_close(x.grad, torch_x.grad, "dL/dx")
    for i, (s, torch_s) in enumerate(states):
        assert_close(s.grad, torch_s.grad, f"dL/d(initial state {i})")
    torch_params = dict(reference.named_parameters())
    assert [name for name, _ in layer.named_parameters()] == list(torch_params)
    for name, p in layer.named_parameters():
        assert_close(p.grad, torch_params[name].grad, f"dL/d{name}")


def test_unbatched_sequence_matches_pytorch():
    torch.manual_seed(3)
    reference = torch.nn.GRU(3, 2, num_layers=2, bidirectional=True, batch_first=True, dtype=torch.float64)
    gru = nn.GRU(3, 2, num_layers=2, bidirectional=True, batch_first=True).to(np.float64)
    gru.load_state_dict(from_torch(reference))
    x = np.random.default_rng(3).normal(size=(5, 3))
    output, h_n = gru(tr.Tensor(x))
    torch_output, torch_h_n = reference(torch.tensor(x))
    assert output.shape == tuple(torch_output.shape) and h_n.shape == tuple(torch_h_n.shape)
    assert_close(output.data, torch_output, "output")
    assert_close(h_n.data, torch_h_n, "h_n")
