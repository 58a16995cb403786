"""The random number generator behind parameter initialisation and sampling."""
import numbers

import numpy as np

_generator = np.random.default_rng()


def manual_seed(seed):
    """Seed parameter initialisation and the sampling helpers, for repeatable runs."""
    global _generator
    if not isinstance(seed, numbers.Integral) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"manual_seed: seed must be a non-negative integer, got {seed!r}")
    _generator = np.random.default_rng(int(seed))


def generator():
    """The current ``numpy.random.Generator``."""
    return _generator
