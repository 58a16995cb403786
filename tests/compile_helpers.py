"""Running a loss function eagerly and compiled, side by side, for the compile tests."""
import numpy as np

from tinygrad_rnn.compile import compile

RTOL = 1e-12


def eager_call(fn, args, leaves):
    """fn(*args)[0].backward() with every leaf's gradient cleared first: (outputs, grads)."""
    for leaf in leaves:
        leaf.grad = None
    returned = fn(*args)
    loss = returned[0] if isinstance(returned, tuple) else returned
    loss.backward()
    return _arrays(returned, graph_free=False), [None if leaf.grad is None else leaf.grad.copy() for leaf in leaves]


def compiled_call(step, args, leaves):
    for leaf in leaves:
        leaf.grad = None
    returned = step(*args)
    return _arrays(returned, graph_free=True), [None if leaf.grad is None else leaf.grad.copy() for leaf in leaves]


def _arrays(returned, graph_free):
    if isinstance(returned, (tuple, list)):
        return [a for item in returned for a in _arrays(item, graph_free)]
    assert not graph_free or (not returned.parents and returned.op is None)
    return [returned.data.copy()]


def assert_close(got, want, what):
    assert len(got) == len(want), what
    for i, (a, b) in enumerate(zip(got, want)):
        if b is None:
            assert a is None, f"{what} {i}: expected no gradient"
            continue
        assert a.shape == b.shape and a.dtype == b.dtype, f"{what} {i}: {a.shape} {a.dtype} vs {b.shape} {b.dtype}"
        scale = max(np.abs(b).max(initial=0.0), 1e-300)
        error = np.abs(a - b).max(initial=0.0) / scale
        assert error <= RTOL, f"{what} {i}: relative error {error:.3g}"


def assert_compiled_matches(fn, calls, leaves, passes=None, update=None):
    """Each args in ``calls``, eagerly and compiled, gives the same outputs and leaf gradients.

    ``update(leaves)`` (if given) changes the leaves after every call, so that
    the replay is seen to read them afresh. Returns the compiled step.
    """
    step = compile(fn) if passes is None else compile(fn, passes=passes)
    for args in calls:
        want = eager_call(fn, args, leaves)
        got = compiled_call(step, args, leaves)
        assert_close(got[0], want[0], "output")
        assert_close(got[1], want[1], "gradient of leaf")
        if update is not None:
            update(leaves)
    return step


def sgd_nudge(leaves, lr=0.1):
    for leaf in leaves:
        if leaf.grad is not None:
            leaf.data -= lr * leaf.grad
