"""The quick tour behind `make demo`: demos 01, 03, 04 and 05 in --quick mode.

Each demo is a script of its own (`python demos/NN_name.py`); this file only
runs the four that tell the story fastest and says where their pictures are.
"""
import time

import _common as common

DEMOS = ["01_rnn_by_hand", "03_vanishing_exploding", "04_long_term", "05_text_generation"]


def main():
    start = time.perf_counter()
    for name in DEMOS:
        print(f"\n{'=' * 72}\n{name}  (python demos/{name}.py --quick)\n{'=' * 72}")
        common.run(name, ["--quick"])
    out = common.OUT
    pictures = sorted(p.name for p in out.glob("*") if p.suffix in (".png", ".svg"))
    print(f"\nTour finished in {time.perf_counter() - start:.0f} s. "
          f"Pictures in {out}/:\n  " + "\n  ".join(pictures))
    print("Full runs of every demo: make demos")


if __name__ == "__main__":
    main()
