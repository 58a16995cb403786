"""Optimizers: SGD, RMSprop, Adam and Adagrad, with PyTorch's update rules.

Each ``step()`` reads every parameter's gradient g = dL/dθ and changes the
parameter θ in place; parameters whose ``.grad`` is None are skipped, and
their running averages are left as they are. In the formulas, t counts the
steps taken, η is ``lr`` and λ is ``weight_decay``.

A step that leaves a parameter holding nan or inf (the updates diverged,
usually from a learning rate far too large) gives one RuntimeWarning per
optimizer: from then on every loss is nan.

    opt = optim.Adam(model.parameters(), lr=1e-3)
    for x, y in batches:
        opt.zero_grad()
        loss = nn.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
"""
import math
import warnings

import numpy as np

from .tensor import Tensor


def _hyper(optimizer, name, value, upper=None):
    """A finite real hyper-parameter >= 0 (and < ``upper`` when given), as a float."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{optimizer}: {name} must be a real number, got {value!r}")
    if not (math.isfinite(value) and value >= 0 and (upper is None or value < upper)):
        interval = f"in [0, {upper})" if upper is not None else "finite and >= 0"
        raise ValueError(f"{optimizer}: {name} must be {interval}, got {value!r}")
    return float(value)


def _epsilon(optimizer, value):
    """ε > 0: with ε = 0 a gradient element that is 0 at every step gives 0 / 0 = NaN."""
    if _hyper(optimizer, "eps", value) == 0:
        raise ValueError(f"{optimizer}: eps must be > 0 (with eps=0 a zero gradient divides 0 by 0 "
                         "and writes NaN into the parameter), got 0")
    return float(value)


class Optimizer:
    """Holds the parameters to update; subclasses define ``step()``."""

    def __init__(self, params):
        name = type(self).__name__
        if isinstance(params, Tensor):
            raise ValueError(f"{name}: params must be an iterable of Parameters, got one Tensor; "
                             "wrap it in a list")
        if not hasattr(params, "__iter__"):
            raise ValueError(f"{name}: params must be an iterable of Parameters (for example "
                             f"model.parameters()), got {type(params).__name__}")
        self.params = list(params)
        if not self.params:
            raise ValueError(f"{name}: got an empty list of parameters, so there is nothing to "
                             "optimize (an iterator such as itertools.chain(...) can be read only "
                             "once: was it already used up?)")
        seen = {}
        for i, p in enumerate(self.params):
            if not isinstance(p, Tensor):
                raise ValueError(f"{name}: params[{i}] is a {type(p).__name__}, not a Parameter")
            if not p.requires_grad or p.op is not None:
                raise ValueError(f"{name}: params[{i}] (shape {p.shape}) is not a trainable leaf: "
                                 "it needs requires_grad=True and must not be computed by an op")
            if id(p) in seen:
                raise ValueError(f"{name}: params[{i}] (shape {p.shape}) is the same parameter as "
                                 f"params[{seen[id(p)]}]; list each parameter once")
            seen[id(p)] = i
        self._warned = False

    def zero_grad(self):
        """Forget every parameter's gradient (``.grad = None``) before the next backward."""
        for p in self.params:
            p.grad = None

    def _warn_if_diverged(self):
        """The RuntimeWarning, once, when a step has left a parameter holding nan or inf."""
        if self._warned:
            return
        for i, p in enumerate(self.params):
            if not np.isfinite(p.data).all():
                self._warned = True
                warnings.warn(
                    f"{type(self).__name__}: this step left params[{i}] (shape {p.shape}) holding "
                    f"nan or inf, so every loss from here is nan; a learning rate far too large "
                    f"(lr={self.lr:g}) does this. nn.clip_grad_norm_ returns the gradient norm "
                    f"before clipping (watch it grow), and tr.detect_anomaly() names the op where "
                    f"the first inf or nan appears", RuntimeWarning, stacklevel=3)
                return

    def _grad(self, p, weight_decay):
        """g, plus λ θ when weight decay is on (a new array: p.grad is never changed)."""
        return p.grad + weight_decay * p.data if weight_decay else p.grad


class SGD(Optimizer):
    """Stochastic gradient descent, with optional momentum and weight decay.

        g_t = ∇θ L + λ θ_{t-1}
        b_t = μ b_{t-1} + g_t        (b_1 = g_1; only when momentum μ > 0)
        θ_t = θ_{t-1} - η b_t        (η g_t without momentum)
    """

    def __init__(self, params, lr, momentum=0.0, weight_decay=0.0):
        super().__init__(params)
        self.lr = _hyper("SGD", "lr", lr)
        self.momentum = _hyper("SGD", "momentum", momentum)
        self.weight_decay = _hyper("SGD", "weight_decay", weight_decay)
        self.buffers = [None] * len(self.params)

    def step(self):
        """One update of every parameter that has a gradient."""
        for i, p in enumerate(self.params):
            if p.grad is None:
                continue
            g = self._grad(p, self.weight_decay)
            if self.momentum:
                if self.buffers[i] is None:
                    self.buffers[i] = np.array(g, dtype=p.dtype)
                else:
                    self.buffers[i] *= self.momentum
                    self.buffers[i] += g
                g = self.buffers[i]
            p.data -= self.lr * g
        self._warn_if_diverged()


class RMSprop(Optimizer):
    """RMSprop: divide each step by a running root mean square of the gradients.

    The remedy that "adapts the step size" in the article, "Recurrent Neural
    Networks (RNN)" by Gayathri Siva (Medium, 26 May 2021): a weight whose
    gradients are large takes smaller steps, one whose gradients are small
    takes larger ones.

        g_t = ∇θ L + λ θ_{t-1}
        v_t = α v_{t-1} + (1 - α) g_t^2                    (v_0 = 0)
        b_t = μ b_{t-1} + g_t / (sqrt(v_t) + ε)            (b_0 = 0)
        θ_t = θ_{t-1} - η b_t
    """

    def __init__(self, params, lr=0.01, alpha=0.99, eps=1e-8, momentum=0.0, weight_decay=0.0):
        super().__init__(params)
        self.lr = _hyper("RMSprop", "lr", lr)
        self.alpha = _hyper("RMSprop", "alpha", alpha)
        self.eps = _epsilon("RMSprop", eps)
        self.momentum = _hyper("RMSprop", "momentum", momentum)
        self.weight_decay = _hyper("RMSprop", "weight_decay", weight_decay)
        self.square_avgs = [np.zeros_like(p.data) for p in self.params]
        self.buffers = [np.zeros_like(p.data) for p in self.params] if self.momentum else None

    def step(self):
        """One update of every parameter that has a gradient."""
        for i, p in enumerate(self.params):
            if p.grad is None:
                continue
            g = self._grad(p, self.weight_decay)
            v = self.square_avgs[i]
            v *= self.alpha
            v += (1 - self.alpha) * g * g
            scaled = g / (np.sqrt(v) + self.eps)
            if self.momentum:
                self.buffers[i] *= self.momentum
                self.buffers[i] += scaled
                scaled = self.buffers[i]
            p.data -= self.lr * scaled
        self._warn_if_diverged()


class Adam(Optimizer):
    """Adam: momentum on the gradient and RMSprop's step-size adaptation, bias-corrected.

        g_t = ∇θ L + λ θ_{t-1}
        m_t = β1 m_{t-1} + (1 - β1) g_t                    (m_0 = 0)
        v_t = β2 v_{t-1} + (1 - β2) g_t^2                  (v_0 = 0)
        θ_t = θ_{t-1} - η/(1 - β1^t) * m_t / (sqrt(v_t) / sqrt(1 - β2^t) + ε)

    Dividing by 1 - β^t undoes the pull of the zero start; with zero
    gradients m_t = v_t = 0 and the step is 0 / ε = 0. Each parameter counts
    its own t (a parameter that had no gradient did not step).
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(params)
        self.lr = _hyper("Adam", "lr", lr)
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise ValueError(f"Adam: betas must be a pair (beta1, beta2), got {betas!r}")
        self.betas = (_hyper("Adam", "betas[0]", betas[0], upper=1.0),
                      _hyper("Adam", "betas[1]", betas[1], upper=1.0))
        self.eps = _epsilon("Adam", eps)
        self.weight_decay = _hyper("Adam", "weight_decay", weight_decay)
        self.steps = [0] * len(self.params)
        self.exp_avgs = [np.zeros_like(p.data) for p in self.params]
        self.exp_avg_sqs = [np.zeros_like(p.data) for p in self.params]

    def step(self):
        """One update of every parameter that has a gradient."""
        beta1, beta2 = self.betas
        for i, p in enumerate(self.params):
            if p.grad is None:
                continue
            g = self._grad(p, self.weight_decay)
            self.steps[i] += 1
            t = self.steps[i]
            m, v = self.exp_avgs[i], self.exp_avg_sqs[i]
            m *= beta1
            m += (1 - beta1) * g
            v *= beta2
            v += (1 - beta2) * g * g
            denom = np.sqrt(v)
            denom /= math.sqrt(1 - beta2 ** t)
            denom += self.eps
            p.data -= (self.lr / (1 - beta1 ** t)) * m / denom
        self._warn_if_diverged()


class Adagrad(Optimizer):
    """Adagrad, the optimizer of min-char-rnn: each step divided by the root of the sum of
    all the squared gradients so far.

        g_t = ∇θ L + λ θ_{t-1}
        η_t = η / (1 + (t - 1) δ)                          (δ = lr_decay)
        s_t = s_{t-1} + g_t^2                              (s_0 = initial_accumulator_value)
        θ_t = θ_{t-1} - η_t g_t / (sqrt(s_t) + ε)

    A weight whose gradients have been large takes small steps, one whose
    gradients have been small larger ones, and every weight's steps only
    shrink as s grows. min-char-rnn writes sqrt(s_t + 1e-8); PyTorch, followed
    here, adds ε after the root. Each parameter counts its own t.
    """

    def __init__(self, params, lr=1e-2, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0,
                 eps=1e-10):
        super().__init__(params)
        self.lr = _hyper("Adagrad", "lr", lr)
        self.lr_decay = _hyper("Adagrad", "lr_decay", lr_decay)
        self.weight_decay = _hyper("Adagrad", "weight_decay", weight_decay)
        initial = _hyper("Adagrad", "initial_accumulator_value", initial_accumulator_value)
        self.eps = _epsilon("Adagrad", eps)
        self.steps = [0] * len(self.params)
        self.sums = [np.full_like(p.data, initial) for p in self.params]

    def step(self):
        """One update of every parameter that has a gradient."""
        for i, p in enumerate(self.params):
            if p.grad is None:
                continue
            g = self._grad(p, self.weight_decay)
            self.steps[i] += 1
            lr = self.lr / (1 + (self.steps[i] - 1) * self.lr_decay)
            s = self.sums[i]
            s += g * g
            p.data -= lr * (g / (np.sqrt(s) + self.eps))
        self._warn_if_diverged()
