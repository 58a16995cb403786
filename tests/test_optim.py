import math

import numpy as np
import pytest

import tinygrad_rnn as tr
from tinygrad_rnn import nn, optim

STEPS = 6


# --------------------------------------------- the update rules, written out in numpy

def reference_sgd(theta, grads, lr, momentum=0.0, weight_decay=0.0):
    theta, buf = theta.copy(), None
    for g in grads:
        if g is None:
            continue
        g = g + weight_decay * theta
        if momentum:
            buf = g.copy() if buf is None else momentum * buf + g
            g = buf
        theta = theta - lr * g
    return theta


def reference_rmsprop(theta, grads, lr=0.01, alpha=0.99, eps=1e-8, momentum=0.0, weight_decay=0.0):
    theta = theta.copy()
    square_avg, buf = np.zeros_like(theta), np.zeros_like(theta)
    for g in grads:
        if g is None:
            continue
        g = g + weight_decay * theta
        square_avg = alpha * square_avg + (1 - alpha) * g ** 2
        step = g / (np.sqrt(square_avg) + eps)
        if momentum:
            buf = momentum * buf + step
            step = buf
        theta = theta - lr * step
    return theta


def reference_adam(theta, grads, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
    theta = theta.copy()
    m, v, t = np.zeros_like(theta), np.zeros_like(theta), 0
    for g in grads:
        if g is None:
            continue
        t += 1
        g = g + weight_decay * theta
        m = betas[0] * m + (1 - betas[0]) * g
        v = betas[1] * v + (1 - betas[1]) * g ** 2
        m_hat, v_hat = m / (1 - betas[0] ** t), v / (1 - betas[1] ** t)
        theta = theta - lr * m_hat / (np.sqrt(v_hat) + eps)
    return theta


def reference_adagrad(theta, grads, lr=1e-2, lr_decay=0.0, weight_decay=0.0,
                      initial_accumulator_value=0.0, eps=1e-10):
    theta = theta.copy()
    total, t = np.full_like(theta, initial_accumulator_value), 0
    for g in grads:
        if g is None:
            continue
        t += 1
        g = g + weight_decay * theta
        total = total + g ** 2
        theta = theta - lr / (1 + (t - 1) * lr_decay) * g / (np.sqrt(total) + eps)
    return theta


CASES = [
    (optim.SGD, reference_sgd, dict(lr=0.1)),
    (optim.SGD, reference_sgd, dict(lr=0.05, momentum=0.9)),
    (optim.SGD, reference_sgd, dict(lr=0.05, momentum=0.5, weight_decay=0.1)),
    (optim.RMSprop, reference_rmsprop, dict()),
    (optim.RMSprop, reference_rmsprop, dict(lr=0.003, alpha=0.9, eps=1e-6, momentum=0.8)),
    (optim.RMSprop, reference_rmsprop, dict(lr=0.01, weight_decay=0.05)),
    (optim.Adam, reference_adam, dict()),
    (optim.Adam, reference_adam, dict(lr=0.01, betas=(0.5, 0.9), eps=1e-6, weight_decay=0.02)),
    (optim.Adagrad, reference_adagrad, dict()),
    (optim.Adagrad, reference_adagrad, dict(lr=0.1, lr_decay=0.3, eps=1e-3)),
    (optim.Adagrad, reference_adagrad, dict(lr=0.05, weight_decay=0.1, initial_accumulator_value=0.5)),
]
CASE_IDS = [f"{cls.__name__}-{kwargs}" for cls, _, kwargs in CASES]


@pytest.mark.parametrize("cls, reference, kwargs", CASES, ids=CASE_IDS)
def test_trajectory_matches_the_rule_written_in_numpy(cls, reference, kwargs):
    rng = np.random.default_rng(0)
    start = [rng.standard_normal((3, 2)), rng.standard_normal(4)]
    grads = [[rng.standard_normal(s.shape) for _ in range(STEPS)] for s in start]
    grads[1][2] = None  # a step on which the second parameter got no gradient
    params = [nn.Parameter(s.copy()) for s in start]
    opt = cls(params, **kwargs)
    for step in range(STEPS):
        for p, g in zip(params, grads):
            p.grad = None if g[step] is None else g[step].copy()
        opt.step()
    for p, s, g in zip(params, start, grads):
        np.testing.assert_allclose(p.data, reference(s, g, **kwargs), rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("cls, reference, kwargs", CASES, ids=CASE_IDS)
def test_step_updates_in_place_keeps_dtype_and_leaves_grad_alone(cls, reference, kwargs):
    p = nn.Parameter(np.ones(3, dtype=np.float32))
    data = p.data
    p.grad = np.array([0.5, -1.0, 2.0], dtype=np.float32)
    grad = p.grad.copy()
    opt = cls([p], **kwargs)
    opt.step()
    opt.step()
    assert p.data is data and p.dtype == np.float32
    np.testing.assert_array_equal(p.grad, grad)
    assert not np.array_equal(p.data, np.ones(3))
    np.testing.assert_allclose(p.data, reference(np.ones(3), [grad, grad], **kwargs), rtol=1e-5)


def test_training_a_linear_layer_lowers_the_loss():
    tr.manual_seed(0)
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((16, 3)), rng.standard_normal((16, 2))
    for make in [lambda p: optim.SGD(p, lr=0.1, momentum=0.9), lambda p: optim.RMSprop(p),
                 lambda p: optim.Adam(p, lr=0.05), lambda p: optim.Adagrad(p, lr=0.1)]:
        model = nn.Linear(3, 2).to("float64")
        opt = make(model.parameters())
        losses = []
        for _ in range(30):
            opt.zero_grad()
            loss = nn.mse_loss(model(x), y)
            loss.backward()
            opt.step()
            losses.append(loss.item())
        assert losses[-1] < 0.7 * losses[0]


def test_zero_grad_forgets_every_gradient():
    params = [nn.Parameter(np.ones(2)), nn.Parameter(np.ones(3))]
    for p in params:
        p.grad = np.ones_like(p.data)
    optim.SGD(params, lr=0.1).zero_grad()
    assert all(p.grad is None for p in params)


def test_parameters_without_grad_are_not_touched():
    moving, idle = nn.Parameter(np.ones(2)), nn.Parameter(np.ones(2))
    moving.grad = np.ones(2)
    for opt in [optim.SGD([moving, idle], lr=0.1, momentum=0.9, weight_decay=0.1),
                optim.RMSprop([moving, idle]), optim.Adam([moving, idle]), optim.Adagrad([moving, idle])]:
        opt.step()
        np.testing.assert_array_equal(idle.data, np.ones(2))
    assert np.all(moving.data < 1)


def test_adam_on_zero_gradients_stays_finite_and_still():
    p = nn.Parameter(np.array([1.0, -2.0]))
    opt = optim.Adam([p])
    for _ in range(5):
        p.grad = np.zeros(2)
        opt.step()
    np.testing.assert_array_equal(p.data, [1.0, -2.0])
    assert np.isfinite(opt.exp_avg_sqs[0]).all()


def test_lr_can_be_changed_between_steps():
    p = nn.Parameter(np.zeros(1))
    opt = optim.SGD([p], lr=1.0)
    p.grad = np.ones(1)
    opt.step()
    opt.lr = 0.5
    opt.step()
    np.testing.assert_array_equal(p.data, [-1.5])


def some_params():
    return [nn.Parameter(np.zeros(2)), nn.Parameter(np.zeros(3))]


@pytest.mark.parametrize("make, message", [
    (lambda: optim.SGD(some_params(), lr=-0.1), r"SGD: lr must be finite and >= 0, got -0\.1"),
    (lambda: optim.SGD(some_params(), lr=math.nan), "SGD: lr must be finite and >= 0, got nan"),
    (lambda: optim.SGD(some_params(), lr=math.inf), "SGD: lr must be finite"),
    (lambda: optim.SGD(some_params(), lr="0.1"), "SGD: lr must be a real number"),
    (lambda: optim.SGD(some_params(), lr=0.1, momentum=-0.9), "SGD: momentum must be"),
    (lambda: optim.SGD(some_params(), lr=0.1, weight_decay=math.nan), "SGD: weight_decay must be"),
    (lambda: optim.RMSprop(some_params(), alpha=-0.5), "RMSprop: alpha must be"),
    (lambda: optim.RMSprop(some_params(), eps=-1e-8), "RMSprop: eps must be"),
    (lambda: optim.RMSprop(some_params(), momentum=math.nan), "RMSprop: momentum must be"),
    (lambda: optim.Adam(some_params(), lr=math.nan), "Adam: lr must be"),
    (lambda: optim.Adam(some_params(), eps=math.nan), "Adam: eps must be"),
    (lambda: optim.Adam(some_params(), betas=(1.0, 0.999)), r"Adam: betas\[0\] must be in \[0, 1\.0\)"),
    (lambda: optim.Adam(some_params(), betas=(0.9, -0.1)), r"Adam: betas\[1\] must be in \[0, 1\.0\)"),
    (lambda: optim.Adam(some_params(), betas=0.9), "Adam: betas must be a pair"),
    (lambda: optim.Adam([]), "Adam: got an empty list of parameters"),
    (lambda: optim.Adagrad(some_params(), lr=-1.0), "Adagrad: lr must be finite and >= 0, got -1.0"),
    (lambda: optim.Adagrad(some_params(), lr_decay=math.inf), "Adagrad: lr_decay must be finite"),
    (lambda: optim.Adagrad(some_params(), weight_decay=-0.1), "Adagrad: weight_decay must be"),
    (lambda: optim.Adagrad(some_params(), initial_accumulator_value=-1.0),
     r"Adagrad: initial_accumulator_value must be finite and >= 0, got -1\.0"),
    (lambda: optim.Adagrad(some_params(), eps=0), "Adagrad: eps must be > 0"),
    (lambda: optim.Adagrad(some_params(), lr="0.01"), "Adagrad: lr must be a real number"),
    (lambda: optim.SGD(iter([]), lr=0.1), "SGD: got an empty list of parameters"),
])
def test_bad_hyper_parameters_are_named(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_bad_parameter_lists_are_named():
    p = nn.Parameter(np.zeros(2))
    with pytest.raises(ValueError, match=r"params\[2\] \(shape \(2,\)\) is the same parameter as "
                                         r"params\[0\]"):
        optim.Adam([p, nn.Parameter(np.zeros(1)), p])
    with pytest.raises(ValueError, match=r"params\[1\] is a ndarray, not a Parameter"):
        optim.SGD([p, np.zeros(2)], lr=0.1)
    with pytest.raises(ValueError, match=r"params\[0\] \(shape \(2,\)\) is not a trainable leaf"):
        optim.SGD([tr.Tensor(np.zeros(2))], lr=0.1)
    with pytest.raises(ValueError, match=r"params\[0\] \(shape \(2,\)\) is not a trainable leaf"):
        optim.SGD([p * 2], lr=0.1)
    with pytest.raises(ValueError, match="got one Tensor; wrap it in a list"):
        optim.SGD(p, lr=0.1)
    with pytest.raises(ValueError, match=r"model.parameters\(\)\), got Linear"):
        optim.SGD(nn.Linear(2, 2), lr=0.1)


def test_a_plain_leaf_tensor_with_requires_grad_can_be_optimized():
    x = tr.Tensor(np.array([2.0]), requires_grad=True)
    opt = optim.SGD([x], lr=0.25)
    for _ in range(3):
        opt.zero_grad()
        (x * x).sum().backward()
        opt.step()
    np.testing.assert_allclose(x.data, [2.0 * 0.5 ** 3])


# ------------------------------------------------------------- PyTorch parity

TORCH_CASES = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.05, momentum=0.9)),
    ("SGD", dict(lr=0.05, momentum=0.9, weight_decay=0.01)),
    ("RMSprop", dict(lr=0.01)),
    ("RMSprop", dict(lr=0.005, alpha=0.9, eps=1e-6, momentum=0.7)),
    ("RMSprop", dict(lr=0.01, alpha=0.95, weight_decay=0.1)),
    ("Adam", dict(lr=0.01)),
    ("Adam", dict(lr=0.02, betas=(0.8, 0.99), eps=1e-7)),
    ("Adam", dict(lr=0.01, betas=(0.0, 0.5), weight_decay=0.05)),
    ("Adagrad", dict()),
    ("Adagrad", dict(lr=0.1, lr_decay=0.2, eps=1e-6)),
    ("Adagrad", dict(lr=0.05, weight_decay=0.1, initial_accumulator_value=0.3)),
]


@pytest.mark.parametrize("name, kwargs", TORCH_CASES, ids=[f"{n}-{k}" for n, k in TORCH_CASES])
def test_ten_steps_agree_with_torch_optim_in_float64(name, kwargs):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal((8, 3)), rng.standard_normal((8, 2))
    model = nn.Linear(3, 2).to("float64")
    reference = torch.nn.Linear(3, 2).double()
    model.load_state_dict({k: v.detach().numpy() for k, v in reference.state_dict().items()})
    opt = getattr(optim, name)(model.parameters(), **kwargs)
    reference_opt = getattr(torch.optim, name)(reference.parameters(), **kwargs)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    for _ in range(10):
        opt.zero_grad()
        nn.mse_loss(model(x).tanh(), y).backward()
        opt.step()
        reference_opt.zero_grad()
        torch.nn.functional.mse_loss(reference(xt).tanh(), yt).backward()
        reference_opt.step()
    for key, value in reference.state_dict().items():
        np.testing.assert_allclose(model.state_dict()[key], value.numpy(), rtol=1e-10, atol=1e-12,
                                   err_msg=key)


def diverging_run(make_optimizer, steps=8):
    """A small LSTM regression trained with a far too large learning rate, as a new user might."""
    tr.manual_seed(0)
    lstm, head = nn.LSTM(3, 8), nn.Linear(8, 1)
    params = lstm.parameters() + head.parameters()
    optimizer = make_optimizer(params)
    rng = np.random.default_rng(0)
    x = tr.Tensor(rng.standard_normal((10, 4, 3)), dtype="float32")
    y = tr.Tensor(rng.standard_normal((10, 4, 1)), dtype="float32")
    losses = []
    for _ in range(steps):
        loss = nn.mse_loss(head(lstm(x)[0]), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


DIVERGED = (r"this step left params\[\d+\] \(shape .*\) holding nan or inf.*learning rate far too "
            r"large.*nn.clip_grad_norm_ .*tr.detect_anomaly\(\)")


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_a_learning_rate_far_too_large_warns_once_when_a_parameter_becomes_non_finite(momentum):
    with pytest.warns(RuntimeWarning, match="SGD: " + DIVERGED) as caught:
        losses = diverging_run(lambda ps: optim.SGD(ps, lr=1e4, momentum=momentum))
    assert len(caught) == 1 and caught[0].filename == __file__
    assert math.isnan(losses[-1])


@pytest.mark.parametrize("make_optimizer", [optim.SGD, optim.RMSprop, optim.Adam, optim.Adagrad])
def test_every_optimizer_warns_when_a_step_writes_nan_into_a_parameter(make_optimizer):
    params = [nn.Parameter(np.ones(3)), nn.Parameter(np.ones((2, 2)))]
    optimizer = make_optimizer(params, lr=0.1)
    params[0].grad, params[1].grad = np.ones(3), np.array([[1.0, np.nan], [1.0, 1.0]])
    with pytest.warns(RuntimeWarning, match=r"params\[1\] \(shape \(2, 2\)\)") as caught:
        optimizer.step()
        optimizer.step()
    assert len(caught) == 1 and caught[0].filename == __file__


def test_a_run_that_stays_finite_does_not_warn():
    losses = diverging_run(lambda ps: optim.Adam(ps, lr=1e-2))  # warnings are errors in the tests
    assert all(math.isfinite(loss) for loss in losses) and losses[-1] < losses[0]
