"""Check the pictures' hover text in a real browser: headless Chromium, one screenshot.

Renders a 3-step LSTM (after backward, shaded by gradient norm) to SVG, puts
the SVG in a page as it would sit in a notebook or a web page, and opens the
page in headless Chromium. A browser draws its native tooltips outside the
page, where no screenshot sees them, so the page's script shows the hover
text of one node (the forget gate f at t=1 by default) in a box beside it:
the very ``<title>`` text the browser pops up on hover, read from the SVG.

    python scripts/screenshot_tooltip.py [--name f] [--out out/tooltip.png]

Needs Graphviz's ``dot`` and Chromium (Debian: ``apt-get install chromium``).
"""
import argparse
import html
import os
import re
import shutil
import subprocess
import sys
import tempfile

import numpy as np

import tinygrad_rnn as tr
from tinygrad_rnn import nn, viz

PAGE = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><style>
body {{ margin: 0; font-family: sans-serif; background: white; }}
#tip {{ position: absolute; white-space: pre; font: 13px sans-serif; background: #ffffe1;
        border: 1px solid #767676; padding: 4px 6px; box-shadow: 2px 2px 4px #999; }}
</style></head><body>
{svg}
<div id="tip"></div>
<script>
// the node whose label starts with "{name} = " in step {step}: show its hover text beside it
const wanted = {label};
for (const node of document.querySelectorAll("g.node")) {{
  const texts = [...node.querySelectorAll("text")].map(t => t.textContent);
  const link = node.querySelector("a");
  const title = link && (link.getAttribute("xlink:title") || link.getAttribute("title"));
  if (texts[0] === wanted && title && title.includes("scope: {scope}")) {{
    const box = node.getBoundingClientRect();
    const tip = document.getElementById("tip");
    tip.textContent = title;
    tip.style.left = (box.right + window.scrollX + 8) + "px";
    tip.style.top = (box.bottom + window.scrollY + 8) + "px";
    node.querySelector("path, polygon").setAttribute("stroke-width", "3");
    break;
  }}
}}
</script></body></html>
"""


def lstm_svg(folder):
    """A seeded 3-step LSTM after backward(retain_grads=True), rendered to SVG; returns its text."""
    tr.manual_seed(0)
    layer = nn.LSTM(3, 4)
    x = tr.Tensor(np.random.default_rng(0).normal(size=(3, 1, 3)).astype(np.float32), name="x")
    output, _ = layer(x)
    loss = output[-1].sum()
    loss.name = "loss"
    loss.backward(retain_grads=True)
    path = viz.render(loss, path=os.path.join(folder, "lstm.svg"), grads=True)
    with open(path, encoding="utf-8") as file:
        return file.read()


def find_chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    sys.exit("screenshot_tooltip: Chromium was not found; install it (Debian: apt-get install chromium)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", default="f", help="the named tensor to hover over (default: f)")
    parser.add_argument("--step", type=int, default=1, help="its time step (default: 1)")
    parser.add_argument("--out", default=os.path.join("out", "tooltip.png"), help="the screenshot to write")
    args = parser.parse_args()
    chromium = find_chromium()
    with tempfile.TemporaryDirectory() as folder:
        svg = lstm_svg(folder)
        svg = svg[svg.index("<svg"):]  # inline: without the XML prolog
        op = {"f": "sigmoid", "i": "sigmoid", "o": "sigmoid", "c~": "tanh", "c": "add", "h": "mul"}
        label = f"{args.name} = {op.get(args.name, '')}".strip()
        page = PAGE.format(svg=svg, name=html.escape(args.name), step=args.step,
                           label=repr(label), scope=f"lstm/l0/t={args.step}")
        page_path = os.path.join(folder, "page.html")
        with open(page_path, "w", encoding="utf-8") as file:
            file.write(page)
        out = os.path.abspath(args.out)
        os.makedirs(os.path.dirname(out), exist_ok=True)
        width, height = (int(float(re.search(rf'{side}="([\d.]+)pt"', svg)[1]) * 4 / 3) + 40
                         for side in ("width", "height"))  # the SVG's size, pt -> px
        subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                        f"--screenshot={out}", f"--window-size={width},{height + 40}",
                        f"file://{page_path}"],
                       check=True, capture_output=True, timeout=120)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
