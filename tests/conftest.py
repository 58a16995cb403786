import os

import pytest
from hypothesis import HealthCheck, settings

import tinygrad_rnn as tr

settings.register_profile("default", max_examples=25, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("long", max_examples=500, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


@pytest.fixture(autouse=True)
def generator_reseeded():
    """Every test starts from the same state of tinygrad_rnn's one generator.

    Parameters, dropout masks and samples draw from that process-wide generator,
    so without this a test that does not call ``tr.manual_seed`` itself would draw
    what the tests run before it left, and pass or fail with their order.
    """
    tr.manual_seed(0)
