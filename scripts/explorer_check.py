"""The explorer page in a real browser: its budgets, measured, and the README's screenshots.

    python scripts/explorer_check.py budget              # sizes and times, printed
    python scripts/explorer_check.py screenshots         # docs/images/explorer_*.png

``budget`` builds the issue's case: a 30-step LSTM, tanh RNN and GRU (H = 32,
B = 4) side by side, five snapshots of them over training; it reports the
page's size and the time to write it (layout included), then opens it in
headless Chromium and reports, by the page's own ``performance.now()``, the
time until it is ready and the time one scrubber step takes to redraw.
``screenshots`` writes the pictures of each view that README shows. Needs
Graphviz's dot, Chromium and chromedriver (``sh scripts/install_chromium.sh``)
and selenium.
"""
import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import tinygrad_rnn as tr
from tinygrad_rnn import bptt, nn, optim, viz
from tinygrad_rnn.rng import generator, manual_seed

ROOT = Path(__file__).resolve().parent.parent
LAYERS = {"LSTM": nn.LSTM, "tanh RNN": nn.RNN, "GRU": nn.GRU}


def browser(width=1400, height=1000):
    """A headless Chromium driven by selenium, network off, on a fresh profile."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for argument in ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     f"--window-size={width},{height}", f"--user-data-dir={tempfile.mkdtemp()}",
                     "--proxy-server=http://127.0.0.1:9"):
        options.add_argument(argument)
    return webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)


def snapshots(kinds, steps, hidden, batch, count, seed=0, train_steps=20):
    """[(label, {kind: (loss, rec)})]: each kind recorded ``count`` times, ``train_steps`` steps of
    SGD apart, on one seeded input; the loss is the MSE of h(T-1)'s mean to a seeded target."""
    manual_seed(seed)
    x = tr.Tensor(generator().standard_normal((steps, batch, 3)).astype(np.float32), name="x")
    target = tr.Tensor(generator().standard_normal((batch, 1)).astype(np.float32))
    layers = {}
    for kind in kinds:
        manual_seed(seed + 1)
        layers[kind] = LAYERS[kind](3, hidden)
    found = []
    for k in range(count):
        runs = {}
        for kind, layer in layers.items():
            layer.zero_grad()
            with bptt.record() as rec:
                output, _ = layer(x)
                loss = nn.mse_loss(output[-1].mean(axis=1, keepdims=True), target).named("L")
                loss.backward(retain_grads=True)
            runs[kind] = loss, rec
            sgd = optim.SGD(layer.parameters(), lr=0.5)
            for _ in range(train_steps if k < count - 1 else 0):
                sgd.zero_grad()
                output, _ = layer(x)
                nn.mse_loss(output[-1].mean(axis=1, keepdims=True), target).backward()
                sgd.step()
        found.append((f"after {k * train_steps} SGD steps", runs))
    return found


def budget(args):
    made = snapshots(list(LAYERS), args.steps, args.hidden, args.batch, args.snapshots)
    start = time.perf_counter()
    page = viz.explore(made, detail=args.detail)
    path = page.save(Path(tempfile.mkdtemp()) / "budget.html")
    written = time.perf_counter() - start
    print(f"{len(LAYERS)} runs x {args.snapshots} snapshots, T = {args.steps}, H = {args.hidden}, "
          f"B = {args.batch}, detail={args.detail!r}")
    print(f"  page: {os.path.getsize(path) / 1e6:.2f} MB, written in {written:.2f} s (layout included)")
    for note in dict.fromkeys(page.notes):
        print(f"  note: {note}")
    driver = browser()
    try:
        ready = []
        for _ in range(3):
            driver.get(path.as_uri())
            ready.append(float(driver.find_element("css selector", "body").get_attribute("data-ready-ms")))
        redraws = {}
        for run in LAYERS:
            driver.execute_script("explorer.setRun(arguments[0])", run)
            redraws[run] = driver.execute_script("""
                const out = [], times = [...Array(arguments[0]).keys()];
                for (const [phase, order] of [['forward', times], ['backward', [...times].reverse()]]) {
                  for (const t of order) {
                    const start = performance.now();
                    explorer.setStep(phase, t);
                    document.body.offsetHeight;   // the style and layout the redraw changed
                    out.push(performance.now() - start);
                  }
                }
                return out;""", args.steps)
    finally:
        driver.quit()
    every = ", ".join(f"{r:.0f}" for r in ready)
    print(f"  ready in Chromium: {min(ready):.0f} ms (best of 3; all: {every})")
    for run, times in redraws.items():
        print(f"  one scrubber step, {run}: median {statistics.median(times):.1f} ms, "
              f"max {max(times):.1f} ms over {len(times)} steps")


def screenshots(args):
    folder = ROOT / "docs" / "images"
    compare = snapshots(["tanh RNN", "LSTM", "GRU"], 6, 4, 2, 1)[0][1]
    trained = snapshots(["LSTM"], 12, 8, 2, 2, train_steps=60)
    pages = Path(tempfile.mkdtemp())
    compare_path = viz.explore(compare).save(pages / "compare.html")
    trained_path = viz.explore(trained, detail="rolled").save(pages / "trained.html")
    # the mouse wheel over the graph, as a reader zooms in on the steps around (x, y)
    zoom = ("document.getElementById('graph').dispatchEvent(new WheelEvent('wheel', "
            "{deltaY: -600, clientX: %d, clientY: 330, bubbles: true, cancelable: true}))")
    views = [
        ("explorer_forward.png", compare_path,
         ["explorer.setRun('tanh RNN')", "explorer.setStep('forward', 3)", zoom % 420]),
        ("explorer_backward.png", compare_path,
         ["explorer.setRun('LSTM')", "explorer.setStep('backward', 2)", "explorer.select('c', 3)",
          zoom % 470]),
        ("explorer_time_panels.png", compare_path,
         ["explorer.setRun('GRU')", "explorer.setStep('backward', 0)", "explorer.hover(2)", zoom % 330]),
        ("explorer_snapshots.png", trained_path,
         ["explorer.setSnapshot(1)", "explorer.setStep('backward', 0)", "explorer.select('f', 5)"]),
    ]
    driver = browser(1400, 900)
    try:
        for name, path, script in views:
            driver.get(path.as_uri())
            for line in script:
                driver.execute_script(line)
            driver.save_screenshot(str(folder / name))
            print(f"screenshot: {(folder / name).relative_to(ROOT)}")
    finally:
        driver.quit()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", choices=("budget", "screenshots"))
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--hidden", type=int, default=32)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--snapshots", type=int, default=5)
    parser.add_argument("--detail", choices=("ops", "cells", "rolled"), default="ops")
    args = parser.parse_args(argv)
    (budget if args.what == "budget" else screenshots)(args)


if __name__ == "__main__":
    sys.exit(main())
