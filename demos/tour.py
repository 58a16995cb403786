"""The quick tour behind `make demo`: demos 01, 03, 04 and 05 in --quick mode.

Each demo is a script of its own (`python demos/NN_name.py`); this file only
runs the four that tell the story fastest, says what to read in their output
where the numbers alone do not, and says where their pictures are.
"""
import time

import _common as common

# (demo, arguments after --quick, what its output shows)
DEMOS = [
    ("01_rnn_by_hand", [], ""),
    # 120 training steps (--quick's) are too few for RMSprop to learn anything: 500, as in the full run
    ("03_vanishing_exploding", ["--train-steps", "500"],
     "Part 2 in a sentence: plain SGD blows up, while clipping, truncated BPTT and RMSprop each\n"
     "tame the exploding RNN and learn (always predicting 0 would score 1.25, the variance of y).\n"
     "out/03_weight_shares.png (from bptt.record) is the article's \"the weight updates have\n"
     "contributions from each timestamp\": each step's share of dL/dC, fading along time."),
    ("04_long_term", [], ""),
    ("05_text_generation", [], ""),
]


def main():
    start = time.perf_counter()
    for name, extra, note in DEMOS:
        argv = ["--quick", *extra]
        print(f"\n{'=' * 72}\n{name}  (python demos/{name}.py {' '.join(argv)})\n{'=' * 72}")
        common.run(name, argv)
        if note:
            print(f"\n{note}")
    out = common.OUT
    pictures = sorted(p.name for p in out.glob("*") if p.suffix in (".png", ".svg"))
    print(f"\nTour finished in {time.perf_counter() - start:.0f} s. "
          f"Pictures in {out}/:\n  " + "\n  ".join(pictures))
    print("Full runs of every demo: make demos")


if __name__ == "__main__":
    main()
