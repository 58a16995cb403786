"""The random number generator behind parameter initialisation and sampling."""
import numbers

import numpy as np

_generator = np.random.default_rng()


def manual_seed(seed):
    """Seed parameter initialisation, dropout masks and the sampling helpers, for repeatable runs.

    The one generator is reseeded in place, so whatever holds it (a dropout op
    recorded by ``tr.compile``) draws the new sequence too.
    """
    if not isinstance(seed, numbers.Integral) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"manual_seed: seed must be a non-negative integer, got {seed!r}")
    _generator.bit_generator.state = np.random.default_rng(int(seed)).bit_generator.state


def generator():
    """The current ``numpy.random.Generator``."""
    return _generator
