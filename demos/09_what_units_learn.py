# %% [markdown]
# # Demo 09: what the units of a character LSTM learn, read off one by one
#
# The article is "Recurrent Neural Networks (RNN)" by Gayathri Siva (Medium, 26 May 2021).
#
# The article says recurrent networks "memorize previous inputs". Which
# inputs, and how? Karpathy, Johnson and Fei-Fei (2015) found single cells of
# large character models that count brackets or quotes; LSTMVis (Strobelt et
# al.) matches units against a hypothesis such as "nesting depth". Here the
# same shows on a task small enough to train in about a minute of CPU time:
#
# - a bracket language, nested `( )` and `[ ]` with letters between, nesting
#   depth up to 6, made by a seeded generator;
# - a character LSTM (Embedding -> LSTM -> Linear, demo 05's model) trained to
#   predict the next character;
# - on held-out text, the unit whose cell state c follows the nesting depth
#   best, found by correlation: LSTMVis's hypothesis matching, by hand;
# - `bptt.connectivity` on the closing brackets: which earlier characters
#   does the choice between `)` and `]` listen to? The kind is written only
#   in the opening bracket, however far back (Madsen's "connectivity",
#   Distill 2019); swapping kinds in the text says which one decides it.
#
# Run it as a script, `python demos/09_what_units_learn.py` (it prints
# `depth unit: <k>, correlation with nesting depth <r>`, |r| = 0.87 with the
# seed it ships; the picture goes to out/09_depth_unit.png and the explorer
# page to out/09_explorer.html; `--quick` is a run of seconds that finds a
# much weaker unit), or cell by cell as a notebook.

# %%
import _common as common  # first: it sets numpy's thread count before numpy loads

import numpy as np
from matplotlib.figure import Figure

import tinygrad_rnn as tr
from tinygrad_rnn import bptt
from tinygrad_rnn.rng import generator

# Demo 05's model, vocabulary and loss.
text_generation = common.definitions("05_text_generation")
CharLSTM, Vocabulary = text_generation.CharLSTM, text_generation.Vocabulary

OPENING = "(["
CLOSING = ")]"
LETTERS = "abcd"
MAX_DEPTH = 6

# %% [markdown]
# ## The bracket language
#
# The generator writes one character at a time, keeping a stack of the open
# brackets. At each character it opens a bracket, `(` or `[` at random, with
# probability 1/4 (unless 6 are open), closes the innermost one with
# probability 1/4 (if any is open), and otherwise writes a letter. The depth
# is a random walk between 0 and 6. Nothing can close at depth 0 and nothing
# opens at depth 6, so a model that counts the depth predicts better there;
# to tell `)` from `]` it must remember the kind of the innermost open bracket.

# %%
def bracket_text(length, max_depth=MAX_DEPTH):
    """``length`` characters of the bracket language and the depth after each one, (length,) ints."""
    chars, depths, stack = [], [], []
    rng = generator()
    for u, kind, letter in zip(rng.random(length), rng.integers(0, 2, length),
                               rng.integers(0, len(LETTERS), length)):
        if u < 0.25 and len(stack) < max_depth:
            stack.append(kind)
            chars.append(OPENING[kind])
        elif 0.25 <= u < 0.5 and stack:
            chars.append(CLOSING[stack.pop()])
        else:
            chars.append(LETTERS[letter])
        depths.append(len(stack))
    return "".join(chars), np.array(depths)


def matching_openings(text):
    """For each closing bracket of ``text``: (its position, the position of its opening bracket)."""
    pairs, stack = [], []
    for position, char in enumerate(text):
        if char in OPENING:
            stack.append(position)
        elif char in CLOSING:
            pairs.append((position, stack.pop()))
    return pairs


def windows_from_depth_zero(data, depths, batch, length):
    """``batch`` windows of ``length + 1`` characters, each starting where no bracket is open
    (so that the depth a model counts from the window's start is the true one) -> inputs and
    targets (T, B)."""
    before = np.concatenate([[0], depths[:-1]])       # the depth before each character
    starts = np.flatnonzero(before[:len(data) - length - 1] == 0)
    chosen = generator().choice(starts, batch)
    windows = np.stack([data[s:s + length + 1] for s in chosen], axis=1)
    return windows[:-1], windows[1:]


# %% [markdown]
# ## Settings and data
#
# 200 000 characters to train on (20 000 with `--quick`) and a held-out text
# of 2000, both from the generator; the settings come from the command line
# (see `--help`), and a notebook runs as with `--quick`.

# %%
args = common.parse_args(
    description="Demo 09: what the units of a character LSTM learn",
    sizes={"steps": (60, 800), "hidden": (16, 32), "embedding": (8, 8), "window": (50, 200),
           "batch": (16, 32), "lr": (0.02, 0.02), "test_length": (300, 2000)})
tr.manual_seed(args.seed)
train_text, train_depth = bracket_text(200_000 if not args.quick else 20_000)
test_text, test_depth = bracket_text(args.test_length)
vocab = Vocabulary(sorted(set(OPENING + CLOSING + LETTERS)))
data = vocab.encode(train_text)
print(f"training text: {len(train_text):,} characters, e.g. {train_text[:60]!r}")
print(f"nesting depth on held-out text: mean {test_depth.mean():.2f}, max {test_depth.max()}")

# %% [markdown]
# ## Training
#
# Demo 05's model, smaller: an Embedding of 8 numbers per character, an LSTM
# of 32 units and a Linear readout, trained with Adam on the next-character
# cross-entropy through a step traced once by `tr.compile`. Every training
# window starts where no bracket is open, so the depth counted from the
# window's start is the true depth.

# %%
model = CharLSTM(len(vocab.chars), args.embedding, args.hidden)
batch_loss = common.compiled_loss(
    model, text_generation.next_character_loss,
    lambda: windows_from_depth_zero(data, train_depth, args.batch, args.window))
with common.Stopwatch() as clock:
    losses = common.fit(model, batch_loss, args.steps, args.lr, compiled=True)
print(f"{args.steps} steps in {clock.seconds:.0f} s: cross-entropy {np.mean(losses[:10]):.3f} -> "
      f"{np.mean(losses[-10:]):.3f} nats")

# %% [markdown]
# ## The depth unit
#
# `bptt.record` keeps every step's cell state c while the model reads the
# held-out text; the unit whose c correlates best with the nesting depth
# (Pearson's r, either sign) is the depth unit. How much its c changes at
# each kind of character, and its forget gate, say how it counts.

# %%
with bptt.record() as rec:
    model(vocab.encode(test_text)[:, None])
cell = rec.values("c")[:, 0, :]                     # (T, H): every unit's cell state along the text
correlations = np.array([np.corrcoef(cell[:, k], test_depth)[0, 1] for k in range(args.hidden)])
unit = int(np.argmax(np.abs(correlations)))
r = float(correlations[unit])
print(f"depth unit: {unit}, correlation with nesting depth {r:.2f}")
step = np.diff(cell[:, unit], prepend=0.0)          # how much each character changes the unit's c
kinds = {"an opening bracket": OPENING, "a closing bracket": CLOSING, "a letter": LETTERS}
print("its c changes on average by " + ", ".join(
    f"{step[[ch in chars for ch in test_text]].mean():+.2f} at {kind}" for kind, chars in kinds.items())
    + f"; its forget gate f averages {rec.values('f')[:, 0, unit].mean():.2f}")

# %% [markdown]
# ## What a closing bracket listens to
#
# Before a closing bracket the model has to choose between `)` and `]`: the
# difference log p(')') - log p(']') is its choice. `bptt.connectivity`
# gives, exactly, the norm of the gradient of that choice with respect to
# each character read so far (its embedding vector x(s)):
#
#     C[t, s] = || d (log p(')') - log p(']'))(t) / d x(s) ||
#
# one backward pass per closing bracket. The kind of bracket to close is
# written only in the opening bracket, however far back; the letters between
# carry nothing about it, the brackets between do (the model must see that
# each of them was closed).

# %%
CONNECTIVITY_LENGTH = 1000
head = test_text[:CONNECTIVITY_LENGTH]
embedded = model.embedding(vocab.encode(head)[:, None]).data     # (T, 1, E): the characters as vectors
closings = matching_openings(head)
before = np.array([t - 1 for t, _ in closings])                  # the step that predicts each closing


ROUND, SQUARE = vocab.index[")"], vocab.index["]"]


def round_or_square(e):
    """e (T, B, E) embedded characters -> at each step before a closing bracket, (n, B, 1):
    log p(')') - log p(']'), which closing bracket the model expects."""
    output, _ = model.lstm(e)
    logits = model.readout(output)[before]
    return logits[:, :, ROUND:ROUND + 1] - logits[:, :, SQUARE:SQUARE + 1]


preference = round_or_square(tr.Tensor(embedded)).data[:, 0, 0]
right = np.mean((preference > 0) == np.array([head[t] == ")" for t, _ in closings]))
print(f"the model expects the right kind of closing bracket at {right:.0%} of them")
connectivity = bptt.connectivity(round_or_square, embedded)[0]     # (closings, T)

# %% [markdown]
# Each closing bracket's row of C is read against three groups of
# characters, each compared with C at its opening bracket:
#
# - every character before the opening bracket: none of them says which kind
#   to close, so a choice that listens back to its opening hears it more than
#   all of them (the strict reading);
# - only the letters before the opening bracket: they carry nothing at all,
#   neither the kind nor the depth, so they are the background against which
#   the opening must stand out, however far;
# - the letters between the opening and the closing, nearer the prediction:
#   how many times the mean of them the opening is heard.
#
# The brackets before the opening carry no kind either, but they carry the
# nesting: which bracket is innermost depends on every bracket read so far
# (delete one `)` and another opening becomes the one to close).

# %%
def listening(row, text, closing, opening):
    """How one closing bracket's connectivity ``row`` (T,) hears its opening bracket, beside
    the characters read before that bracket: (C at the opening, the largest C of a letter before
    it, the largest C of a bracket before it, the mean C of the letters between the two); 0 where
    there is no such character before it, nan where no letter is between."""
    earlier = row[:opening]
    is_letter = np.array([char in LETTERS for char in text[:opening]], dtype=bool)
    between = [s for s in range(opening + 1, closing) if text[s] in LETTERS]
    return (row[opening], earlier[is_letter].max(initial=0.0), earlier[~is_letter].max(initial=0.0),
            row[between].mean() if between else np.nan)


at_opening, letter_before, bracket_before, letters_between = np.array(
    [listening(row, head, t, o) for row, (t, o) in zip(connectivity, closings)]).T
above_everything = at_opening > np.maximum(letter_before, bracket_before)
above_letters = at_opening > letter_before
distance = np.array([t - o for t, o in closings])
far = distance > 10
print(f"{len(closings)} closing brackets, opened 1 to {distance.max()} characters earlier; "
      f"{far.sum()} more than 10")
print(f"the choice hears its opening bracket more than every character before it at "
      f"{above_everything.mean():.0%} of them ({above_everything[far].mean():.0%} of the far ones)")
print(f"and more than every letter before it at {above_letters.mean():.0%} ({above_letters[far].mean():.0%} "
      f"of the far ones); where something before it is heard more, it is only brackets at "
      f"{np.mean(above_letters[~above_everything]):.0%} of them")
print(f"it hears its opening {np.nanmedian(at_opening / letters_between):.1f} times as much as the mean "
      f"letter between the two, in the median ({np.nanmedian((at_opening / letters_between)[far]):.1f} "
      f"times for the far ones)")

# %% [markdown]
# ## Swapping kinds: what the choice depends on
#
# Connectivity says how much the choice moves when a character's vector
# moves, in any direction: a bracket before the opening can move it by
# changing the depth the model counts. Whether the *kind* of the closing
# bracket comes from its opening bracket alone is a question of cause, and
# the text can answer it directly. For every closing bracket, read the text
# up to it twice more:
#
# - with only its opening bracket's kind swapped (`(` <-> `[`): the right
#   answer swaps, so a choice that listens back to its opening swaps too,
#   however far back that is;
# - with the kind of every other bracket read so far swapped (a pair closed
#   before it swaps both its brackets, so the text stays well nested): the
#   nesting is the same and the right answer is the same, so the choice
#   should stay.

# %%
SWAP_KIND = str.maketrans("()[]", "[]()")


def with_kinds_swapped(text, positions):
    """``text`` with the brackets at ``positions`` of the other kind: ( <-> [ and ) <-> ]."""
    chars = list(text)
    for s in positions:
        chars[s] = chars[s].translate(SWAP_KIND)
    return "".join(chars)


def choices(texts, steps):
    """log p(')') - log p(']') after reading each of ``texts`` (equal lengths, n of them) up to
    its step in ``steps`` (n,) -> (n,): the choices of n readings in one batch."""
    with tr.no_grad():
        logits, _ = model(np.stack([vocab.encode(text) for text in texts], axis=1))
    read = logits.data[steps, np.arange(len(texts))]        # (n, V): each reading's logits at its step
    return read[:, ROUND] - read[:, SQUARE]


brackets = [s for s, char in enumerate(head) if char in OPENING + CLOSING]
opening_swapped = choices([with_kinds_swapped(head, [o]) for _, o in closings], before)
others_swapped = choices([with_kinds_swapped(head, [s for s in brackets if s < t and s != o])
                          for t, o in closings], before)
flips = np.sign(opening_swapped) != np.sign(preference)
stays = np.sign(others_swapped) == np.sign(preference)
print(f"swapping the kind of its opening bracket alone swaps the choice at {flips.mean():.0%} of the "
      f"closing brackets ({flips[far].mean():.0%} of the far ones, opened up to "
      f"{distance[flips].max()} characters back)")
print(f"swapping the kind of every other bracket before it leaves the choice as it was at "
      f"{stays.mean():.0%} ({stays[far].mean():.0%} of the far ones)")
print(f"the choice moves by a median of {np.median(np.abs(opening_swapped - preference)):.1f} when "
      f"its opening is swapped, {np.median(np.abs(others_swapped - preference)):.1f} when all the "
      f"others are (it is {np.median(np.abs(preference)):.1f} from 0 as read)")

# %% [markdown]
# The full run (seed 0) picks the right kind at all 202 closing brackets of
# the first 1000 held-out characters; 58 of them were opened more than 10
# characters back, up to 213. Swapping the kind of the opening bracket alone
# swaps the choice at every one of them, however far back the opening is;
# swapping the kind of every other bracket read before it leaves the choice
# as it was at all but one, opened 51 characters back, where it moved from
# 5.4 for the right kind to 0.2 for the other, close to even.
# The kind of bracket to close is taken from its opening bracket, and from
# no other.
#
# Connectivity sees more than the kind. It hears the opening bracket more
# than every letter before it at 94% of the closing brackets and at 84% of
# the far ones, but more than every character before it at only 71% (half of
# the far ones): what it hears more is, at 79% of those, brackets alone, the
# enclosing open brackets and the pairs closed before the opening. They carry
# no kind, but they set the depth the model counts, and a vector moved
# towards another character moves that count: the gradient's norm measures
# how much the choice could move, not which character decides it. The last
# few characters weigh most: the opening is heard about as much as the mean
# letter between the two (1.0 times in the median, 1.5 times for the far
# ones). Training twice as long, on windows of 400 or 800 characters, with
# the forget gate opened at the start, with 48 or 64 units, or with closing
# brackets weighted more in the loss, changes this little: the strict
# reading stays between 61% and 73% of all closing brackets.

# %% [markdown]
# ## The picture
#
# Above, the depth unit's cell state along the first held-out characters,
# beside the nesting depth; in the middle, the connectivity of one closing
# bracket to every character before it, its opening bracket marked; below,
# every closing bracket, against how far back its opening bracket is: C at
# the opening over the most-heard letter before the opening (grey) and over
# the most-heard bracket before it (orange). Above the line at 1, the opening
# is heard more than all of them. Last, the choice of every closing bracket
# as read (black), with its opening bracket swapped (red) and with every
# other bracket swapped (grey), signed so that above 0 is the kind that
# closes the opening as read.

# %%
def depth_unit_figure(text, depth, values, unit, r, connectivity, closing, opening, heard, swapped):
    """Four rows: unit ``unit``'s cell state ``values`` (T,) and the depth (T,) over ``text``;
    the connectivity (T,) of the prediction of the closing bracket at ``closing``; ``heard``,
    the arrays (distance, at_opening, letter_before, bracket_before) of every closing bracket;
    ``swapped``, the arrays (distance, right, as_read, opening_swapped, others_swapped) of every
    closing bracket (see :func:`choices_by_distance`)."""
    fig = Figure(figsize=(13, 12.8))
    top, middle, bottom, last = fig.subplots(4, 1)
    steps = np.arange(len(text))
    top.step(steps, depth, where="mid", color="black", label="nesting depth")
    top.set_ylabel("nesting depth")
    twin = top.twinx()
    twin.plot(steps, values, color="tab:red", label=f"cell state c of unit {unit}")
    twin.set_ylabel(f"c of unit {unit}" + (" (axis reversed: r < 0)" if r < 0 else ""), color="tab:red")
    if r < 0:
        twin.invert_yaxis()
    top.set_title(f"The depth unit: c of unit {unit} against the nesting depth on held-out text "
                  f"(r = {r:.2f})")
    shown = steps[:closing]
    colours = ["tab:blue" if s == opening else "tab:gray" for s in shown]
    middle.bar(shown, connectivity[:closing], color=colours)
    middle.set_ylabel("connectivity")
    middle.set_title(f"What the prediction of the '{text[closing]}' at position {closing} listens to: "
                     f"||d (log p(')') - log p(']')) / d x(s)||, its opening bracket (s = {opening}) in blue")
    for ax in (top, middle):
        ax.set_xticks(steps)
        ax.set_xticklabels(list(text), fontfamily="monospace", fontsize=7)
        ax.set_xlim(-0.5, len(text) - 0.5)
    heard_by_distance(bottom, *heard)
    choices_by_distance(last, *swapped)
    fig.tight_layout()
    return fig


def heard_by_distance(ax, distance, at_opening, letter_before, bracket_before):
    """One point per closing bracket and group, at its distance from its opening bracket (n,):
    how many times the largest C of a letter, or of a bracket, before the opening (n,) each,
    C at the opening (n,) is. Above 1, the opening is heard more than all of that group.
    Both axes are logarithmic; a closing bracket with nothing before its opening is left out."""
    groups = [(letter_before, "over the letter heard most before it", "o", "tab:gray"),
              (bracket_before, "over the bracket heard most before it", "x", "tab:orange")]
    for values, label, marker, colour in groups:
        kept = values > 0
        ax.scatter(distance[kept], at_opening[kept] / values[kept], s=14, marker=marker, color=colour,
                   label=label)
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("distance from the closing bracket back to its opening bracket (characters)")
    ax.set_ylabel("C at the opening bracket / C before it")
    ax.set_title(f"Each of {len(distance)} held-out closing brackets: how many times more its choice "
                 f"hears its opening bracket than what it read before that bracket")
    ax.legend(loc="upper right", fontsize=8)


def choices_by_distance(ax, distance, right, as_read, opening_swapped, others_swapped):
    """One point per closing bracket and reading at its distance from its opening bracket (n,):
    the choice log p(')') - log p(']') (n,) each, signed so that above 0 is the kind that closes
    the opening bracket as read (``right`` (n,) is +1 for ')', -1 for ']')."""
    readings = [(as_read, "as read", "o", "black"),
                (opening_swapped, "its opening bracket's kind swapped", "v", "tab:red"),
                (others_swapped, "every other bracket's kind swapped", "x", "tab:gray")]
    for values, label, marker, colour in readings:
        ax.scatter(distance, right * values, s=14, marker=marker, color=colour, label=label)
    ax.axhline(0.0, color="black", linewidth=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("distance from the closing bracket back to its opening bracket (characters)")
    ax.set_ylabel("choice, + = the kind\nthat closes the opening")
    ax.set_title("The choice between ')' and ']' when the text is read as it is, with its opening "
                 "bracket swapped, and with every other bracket swapped")
    ax.legend(loc="lower right", ncol=3, fontsize=8)


SHOWN = 120
farthest = max((k for k, (t, _) in enumerate(closings) if t < SHOWN), key=lambda k: distance[k])
fig = depth_unit_figure(test_text[:SHOWN], test_depth[:SHOWN], cell[:SHOWN, unit], unit, r,
                        connectivity[farthest], *closings[farthest],
                        heard=(distance, at_opening, letter_before, bracket_before),
                        swapped=(distance, np.array([1 if head[t] == ")" else -1 for t, _ in closings]),
                                 preference, opening_swapped, others_swapped))
common.save_figure(fig, "09_depth_unit.png")


# %% [markdown]
# ## The explorer page
#
# `out/09_explorer.html` shows the first held-out characters as text (demo
# 05's `explorer_page`). It opens with the text coloured by the unit that
# matches the nesting depth best (the units of h, c and each gate are offered
# ranked by |correlation| with the depth, LSTMVis's hypothesis matching).
# Choose "connectivity" and hover a closing bracket: the characters its
# prediction listens to light up, and the model's most probable next
# characters are listed below the text.

# %%
EXPLORED = 121  # characters: the page shows the 120 that a prediction reads
page = text_generation.explorer_page(model, vocab, test_text[:EXPLORED], "09_explorer.html",
                                     annotation=test_depth[:EXPLORED - 1])
