"""The loop body's slots as variables (compile/body.py): which slots become local, which are read
once before the loop, and which stay slots because another step or the code after the loop reads them."""
import numpy as np

from tinygrad_rnn.compile.body import with_locals


def test_a_slot_made_and_released_within_the_step_becomes_a_variable():
    before, body = with_locals(["V[13 + 4 * k] = V[5][1 + k]",
                                "V[14 + 4 * k] = np.tanh(V[13 + 4 * k])",
                                "V[13 + 4 * k] = None",
                                "S[14 + 4 * k] = (V[14 + 4 * k],)"])
    assert body == ["v13 = v5[1 + k]", "V[14 + 4 * k] = np.tanh(v13)", "S[14 + 4 * k] = (V[14 + 4 * k],)"]
    assert before == ["v5 = V[5]"]


def test_a_named_value_keeps_its_name_and_loses_its_slot():
    _, body = with_locals(["V[38 + 20 * k] = r = 1 / (1 + np.exp(-V[37 + 20 * k]))  # r",
                           "S[38 + 20 * k] = (r,)",
                           "V[41 + 20 * k] = r * V[36 + 20 * k]",
                           "V[38 + 20 * k] = V[36 + 20 * k] = None"])
    assert body[0] == "r = 1 / (1 + np.exp(-V[37 + 20 * k]))  # r"
    assert body[-1] == "V[36 + 20 * k] = None"  # not made here: the release stays


def test_slots_that_outlive_the_step_or_are_read_before_they_are_made_stay_slots():
    lines = ["G[40 - 4 * k] = G[40 - 4 * k] + G[42 - 4 * k] @ weight",  # read before it is made
             "G[42 - 4 * k] = None",
             "G[41 - 4 * k] = G[43 - 4 * k]",  # not released in the step: read after it
             "if G[5] is None:",
             "    G[5] = np.empty((4, 3))",  # set in the step: read where it is, not before the loop
             "    G[7 - k] = G[5][0]",  # made only inside an if
             "G[7 - k] = None",
             "G[9 + k][:, 0:2] = g",  # written into before it is made: it was made before the step
             "G[9 + k] = g * 2",
             "G[9 + k] = None",
             "G[40 - 4 * k] = None"]
    before, body = with_locals(lines)
    assert body == lines and before == []


def test_a_weight_and_its_transpose_are_read_once_before_the_loop():
    before, body = with_locals(["V[14 + 4 * k] = V[12 + 4 * k] @ V[8].T + V[9]",
                                "S[14 + 4 * k] = (V[12 + 4 * k], V[8])"])
    assert before == ["v8 = V[8]", "v9 = V[9]", "v8_T = v8.T"]
    assert body == ["V[14 + 4 * k] = V[12 + 4 * k] @ v8_T + v9", "S[14 + 4 * k] = (V[12 + 4 * k], v8)"]


def test_a_new_name_never_takes_one_the_body_uses():
    before, body = with_locals(["v13 = V[2]", "V[13 + k] = v13 * 2", "G[3] = V[13 + k]", "V[13 + k] = None"])
    assert body == ["v13 = v2", "v13_ = v13 * 2", "G[3] = v13_"] and before == ["v2 = V[2]"]


def test_the_rewritten_body_computes_what_the_slots_computed():
    lines = ["V[3 + 2 * k] = V[0][k] * 2", "V[4 + 2 * k] = V[3 + 2 * k] + V[1]",
             "V[3 + 2 * k] = None", "G[k] = V[4 + 2 * k] @ V[1].T"]

    def run(before, body, V, G):
        source = "\n".join(["def run(V, G):", *["    " + line for line in before], "    for k in range(3):",
                            *["        " + line for line in body]])
        scope = {"np": np}
        exec(source, scope)
        scope["run"](V, G)
        return V, G

    rng = np.random.default_rng(0)
    fresh = lambda: ([rng.normal(size=(3, 2, 2)), rng.normal(size=(2, 2))] + [None] * 8, [None] * 3)
    V, G = fresh()
    want = run([], lines, [v for v in V], list(G))
    got = run(*with_locals(lines), [v for v in V], list(G))
    assert [v is None for v in got[0]] == [v is None for v in want[0]]
    assert all(np.array_equal(a, b) for a, b in zip(got[0] + got[1], want[0] + want[1]) if a is not None)
