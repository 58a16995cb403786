"""The random number generator behind parameter initialisation and sampling."""
import numpy as np

_generator = np.random.default_rng()


def manual_seed(seed):
    """Seed parameter initialisation and the sampling helpers, for repeatable runs."""
    global _generator
    _generator = np.random.default_rng(seed)


def generator():
    """The current ``numpy.random.Generator``."""
    return _generator
