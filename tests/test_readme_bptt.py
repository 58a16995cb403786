"""README's "BPTT step by step" section run as written, and the numbers that README states
about vanishing gradients measured again with bptt.record."""
import importlib
import re
import sys
from pathlib import Path

import numpy as np
import pytest

import tinygrad_rnn as tr
from tinygrad_rnn import bptt, nn
from tinygrad_rnn.rng import generator

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
SECTION = README.split("## BPTT step by step: `bptt.record`", 1)[1].split("\n## ", 1)[0]
pytest.importorskip("matplotlib")


def test_the_readme_example_runs_and_prints_the_numbers_the_readme_gives(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code = re.findall(r"```python\n(.*?)```", SECTION, re.S)[0]
    exec(compile(code, "README.md", "exec"), {})
    printed = capsys.readouterr().out
    for value in ("9.7e-11", "2.3e-07", "3.6e-02"):
        assert value in printed and value in SECTION
    for picture in ("bptt_state_grads.png", "bptt_weight_grads.png"):
        assert (tmp_path / picture).read_bytes()[:4] == b"\x89PNG"


def test_the_share_ratios_in_the_readme_are_those_of_make_images(tmp_path):
    sys.path.insert(0, str(ROOT / "scripts"))
    make_images = importlib.import_module("make_images")
    ratios = []
    for layer, rec in make_images.bptt_pictures(str(tmp_path)).values():
        shares = rec.weight_grad_by_step(layer.weight_hh_l0)
        ratios.append(f"{np.linalg.norm(shares[1]) / np.linalg.norm(shares[-1]):.1e}")
    assert ratios == ["1.1e-10", "1.1e-06", "2.7e-02"]
    assert "1.1e-10,\n1.1e-06 and 2.7e-02" in SECTION


def decay_of_the_30_step_picture(kind, forget_bias=0.0):
    """||dL/dh(0)|| / ||dL/dh(29)|| for the layers of grads_30_steps.svg (scripts/make_images.py)."""
    tr.manual_seed(0)
    layer = {"rnn": nn.RNN, "lstm": nn.LSTM}[kind](3, 8)
    layer.bias_ih_l0.data[8:16] += forget_bias if kind == "lstm" else 0.0
    x = tr.Tensor(generator().standard_normal((30, 1, 3)).astype(np.float32), name="x")
    with bptt.record() as rec:
        output, _ = layer(x)
        output[-1].sum().backward()
    norms = rec.grad_norms("h")
    return f"{norms[0] / norms[-1]:.1e}"


def test_the_30_step_pictures_claims_are_the_recordings_numbers():
    assert decay_of_the_30_step_picture("rnn") == "4.3e-12"
    assert decay_of_the_30_step_picture("lstm") == "7.2e-07"
    assert decay_of_the_30_step_picture("lstm", forget_bias=2.0) == "1.5e-02"
    for value in ("4.3e-12", "7.2e-7", "1.5e-2", "6.6e-23", "6.2e-25", "3.4e-4"):
        assert value in README


def test_demo_03s_numbers_in_the_readme_are_those_of_its_full_run():
    sys.path.insert(0, str(ROOT / "demos"))
    vanishing = importlib.import_module("_common").definitions("03_vanishing_exploding")
    args = vanishing.common.parse_args([], "demo 03", sizes={"length": (50, 100), "hidden": (32, 32),
                                                            "batch": (16, 16)})
    recordings = vanishing.record_every_network(args)
    norms = {name: rec.grad_norms("h") for name, (_, rec) in recordings.items()}
    names = ("tanh RNN", "LSTM", "LSTM, forget-gate bias +2")
    assert [f"{norms[name][0] / norms[name][-1]:.1e}" for name in names] == ["6.2e-25", "6.6e-23", "3.4e-04"]
