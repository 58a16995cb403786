"""The README section "Build an LSTM cell by hand", run as written (inside a test function)."""
import numpy as np

import tinygrad_rnn as tr
from tinygrad_rnn import nn, optim

rng = np.random.default_rng(0)


class MyLSTMCell(nn.Module):
    """The article's LSTM: every gate looks at the concatenation [h_{t-1}, x_t].

        f_t, i_t, o_t = σ(W_{f,i,o} [h_{t-1}, x_t] + b_{f,i,o})
        c~_t = tanh(W_c [h_{t-1}, x_t] + b_c)
        c_t = f_t * c_{t-1} + i_t * c~_t
        h_t = o_t * tanh(c_t)
    """

    def __init__(self, input_size, hidden_size):
        bound = 1 / np.sqrt(hidden_size)
        self.hidden_size = hidden_size
        # The four gates' W stacked in one (4H, H + I) matrix: one matmul per step.
        self.W = nn.Parameter(rng.uniform(-bound, bound, (4 * hidden_size, hidden_size + input_size)),
                              name="W")
        self.b = nn.Parameter(np.zeros(4 * hidden_size), name="b")

    def forward(self, x, state=None):
        if state is None:
            zeros = tr.Tensor(np.zeros((x.shape[0], self.hidden_size)))
            state = (zeros, zeros)
        h, c = state
        gates = tr.cat([h, x], axis=-1) @ self.W.T + self.b     # W [h_{t-1}, x_t] + b
        f, i, c_tilde, o = gates.chunk(4, axis=-1)
        f, i, c_tilde, o = f.sigmoid(), i.sigmoid(), c_tilde.tanh(), o.sigmoid()
        c = f * c + i * c_tilde                                   # the conveyor belt
        h = o * c.tanh()
        return h, c


def test_readme_build_an_lstm_cell_by_hand(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)

    tr.manual_seed(0)
    cell = MyLSTMCell(input_size=1, hidden_size=8)
    readout = nn.Linear(8, 1).to("float64")              # y(t) = B h(t)
    opt = optim.SGD(cell.parameters() + readout.parameters(), lr=0.5)

    # Predict the next value of a sine wave from the values so far.
    wave = np.sin(np.linspace(0, 4 * np.pi, 41))[:, None, None]   # (T + 1, B = 1, I = 1)
    xs, targets = tr.Tensor(wave[:-1]), tr.Tensor(wave[1:])

    def loss_fn():
        hs, _ = nn.unroll(cell, xs)                      # one tr.scope("t=...") per step
        return nn.mse_loss(readout(tr.stack(hs)), targets)

    first = loss_fn().item()
    for step in range(30):
        opt.zero_grad()
        loss = loss_fn()
        loss.backward()                                  # BPTT: backward through the unrolled graph
        opt.step()
    print(f"loss {first:.4f} -> {loss.item():.4f}")

    # The hand-made backward is exact: compare with finite differences over 3 steps.
    assert tr.gradcheck(lambda xs, *params: tr.stack(nn.unroll(cell, xs)[0]),
                        [tr.Tensor(wave[:3])] + cell.parameters())

    tr.save(cell.state_dict(), "my_lstm.npz")
    restored = MyLSTMCell(input_size=1, hidden_size=8)
    restored.load_state_dict(tr.load("my_lstm.npz"))

    assert loss.item() < 0.5 * first
    assert [name for name, _ in cell.named_parameters()] == ["W", "b"]
    for (name, p), q in zip(cell.named_parameters(), restored.parameters()):
        np.testing.assert_array_equal(p.data, q.data, err_msg=name)
    np.testing.assert_array_equal(tr.stack(nn.unroll(restored, xs)[0]).data,
                                  tr.stack(nn.unroll(cell, xs)[0]).data)
