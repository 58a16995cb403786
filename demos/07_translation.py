# %% [markdown]
# # Demo 07: translation with a GRU encoder-decoder: dates in words -> ISO dates
#
# The article is "Recurrent Neural Networks (RNN)" by Gayathri Siva (Medium, 26 May 2021).
#
#     "twenty-seventh of November 2026"  ->  "2026-11-27"
#
# Machine translation is one of the article's applications of recurrent
# networks: a sequence in, a sequence of another length out. The encoder reads
# the source one character at a time and leaves its meaning in its last
# hidden state, the context; the decoder starts from the context and writes
# the target one character at a time, seeing the context again at every step
# (Cho et al. 2014):
#
#     encoder   h(t) = GRU(E_src[src(t)], h(t-1)),                 context = h(last)
#     decoder   s(k) = GRU([E_tgt[out(k-1)], context], s(k-1)),    s(-1) = context
#               p(out(k)) = softmax(B s(k))
#
# Feeding the context at every step, not only as s(-1), is what lets a small
# model learn this in minutes: the decoder need not carry the whole date in
# s(k) while it writes.
#
# Training uses teacher forcing (the decoder is fed the true previous
# character); at test time decoding is greedy (it is fed its own most likely
# previous character). The dates are generated here: ordinal day words, month
# names and years, with a fixed set of held-out dates never seen in training.
#
# Run it as a script, `python demos/07_translation.py [--quick]` (the picture
# goes to out/07_translation.png), or cell by cell as a notebook.

# %%
import calendar

import _common as common  # first: it sets numpy's thread count before numpy loads

import numpy as np

import tinygrad_rnn as tr
from tinygrad_rnn import nn
from tinygrad_rnn.rng import generator

# %% [markdown]
# ## The two languages
#
# Dates from 1950 to 2049, written out in words (the source) and as
# YYYY-MM-DD (the target). Each text becomes a column of character indices.

# %%
UNITS = ["", "first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth"]
TEENS = ["tenth", "eleventh", "twelfth", "thirteenth", "fourteenth", "fifteenth", "sixteenth",
         "seventeenth", "eighteenth", "nineteenth"]
YEARS = range(1950, 2050)
TARGET_LENGTH = len("2026-11-27")
TARGET_CHARS = "0123456789-"
START = len(TARGET_CHARS)      # the decoder's first input: "begin"
PAD = 0                        # source index 0 pads short sources on the left


def ordinal(day):
    """1 -> "first", 22 -> "twenty-second", 30 -> "thirtieth"."""
    if day < 10:
        return UNITS[day]
    if day < 20:
        return TEENS[day - 10]
    tens = {2: "twenty", 3: "thirty"}[day // 10]
    return tens[:-1] + "ieth" if day % 10 == 0 else f"{tens}-{UNITS[day % 10]}"


def random_dates(count):
    """``count`` random (year, month, day) triples, every valid date equally likely."""
    first = np.datetime64(f"{YEARS.start}-01-01")
    days = (np.datetime64(f"{YEARS.stop}-01-01") - first).astype(int)
    picked = first + generator().integers(0, days, count)
    return [(d.year, d.month, d.day) for d in picked.astype(object)]


def date_count():
    """How many dates there are to guess from: chance level is one over this."""
    return sum(366 if calendar.isleap(year) else 365 for year in YEARS)


def source_text(year, month, day):
    return f"{ordinal(day)} of {calendar.month_name[month]} {year}"


def target_text(year, month, day):
    return f"{year:04d}-{month:02d}-{day:02d}"


SOURCE_CHARS = "·" + "".join(sorted(set(
    "".join(UNITS + TEENS) + "-twentyhi of 0123456789" + "".join(calendar.month_name))))


def encode_sources(dates):
    """Source texts as indices (S, B), left-padded with PAD so every text ends at the last step."""
    texts = [source_text(*d) for d in dates]
    width = max(len(t) for t in texts)
    indices = np.full((width, len(texts)), PAD, dtype=np.int64)
    for column, text in enumerate(texts):
        indices[width - len(text):, column] = [SOURCE_CHARS.index(ch) for ch in text]
    return indices


def encode_targets(dates):
    """Target texts as indices (10, B)."""
    return np.array([[TARGET_CHARS.index(ch) for ch in target_text(*d)] for d in dates]).T


# %% [markdown]
# ## The encoder-decoder
#
# Two GRUs. `encode` runs the first over the whole source and keeps only its
# last hidden state; `decode` runs the second over the target characters
# written so far, the context joined to every input.

# %%
class DateTranslator(nn.Module):
    """GRU encoder, GRU decoder, linear readout over the 11 target characters."""

    def __init__(self, embedding_dim, hidden_size):
        self.source_embedding = nn.Embedding(len(SOURCE_CHARS), embedding_dim)
        self.encoder = nn.GRU(embedding_dim, hidden_size)
        self.target_embedding = nn.Embedding(len(TARGET_CHARS) + 1, embedding_dim)
        self.decoder = nn.GRU(embedding_dim + hidden_size, hidden_size)
        self.readout = nn.Linear(hidden_size, len(TARGET_CHARS))

    def encode(self, sources):
        """sources (S, B) -> context (1, B, H), the encoder's last hidden state."""
        _, context = self.encoder(self.source_embedding(sources))
        return context

    def decode(self, previous, context, state):
        """previous characters (K, B), context and state (1, B, H) -> logits (K, B, 11), new state."""
        inputs = tr.cat([self.target_embedding(previous), tr.cat([context] * len(previous))], axis=-1)
        output, state = self.decoder(inputs, state)
        return self.readout(output), state

    def forward(self, sources, targets):
        """Teacher forcing: logits (10, B, 11) given the true previous target characters."""
        previous = np.concatenate([np.full((1, targets.shape[1]), START), targets[:-1]])
        context = self.encode(sources)
        logits, _ = self.decode(previous, context, context)
        return logits

    def translate(self, sources):
        """Greedy decoding: target indices (10, B), each step fed the previous best guess."""
        with tr.no_grad():
            context = state = self.encode(sources)
            previous = np.full((1, sources.shape[1]), START)
            outputs = []
            for _ in range(TARGET_LENGTH):
                logits, state = self.decode(previous, context, state)
                previous = logits.data.argmax(axis=-1)
                outputs.append(previous[0])
        return np.stack(outputs)


# %% [markdown]
# ## Training under teacher forcing
#
# The loss is the cross-entropy of each target character given the true
# previous ones; backward runs through the decoder's ten steps and then the
# encoder's, so the encoder learns what the decoder needs from the context.

# %%
def training_batch(batch, held_out):
    """Random dates, none of them in ``held_out``."""
    dates = []
    while len(dates) < batch:
        dates += [d for d in random_dates(batch) if d not in held_out]
    return dates[:batch]


def train(model, held_out, args):
    """Adam on the cross-entropy of the target characters, under teacher forcing."""
    def batch_loss():
        dates = training_batch(args.batch, held_out)
        targets = encode_targets(dates)
        logits = model(encode_sources(dates), targets)
        return nn.cross_entropy(logits.reshape(-1, len(TARGET_CHARS)), targets.reshape(-1))

    return common.fit(model, batch_loss, args.steps, args.lr)


def decode_text(indices):
    return "".join(TARGET_CHARS[i] for i in indices)


# %% [markdown]
# ## Train, then translate dates it has never seen
#
# The settings come from the command line (see `--help`); in a notebook the
# demo runs as with `--quick`, and `argv=[...]` in the call below changes
# that.

# %%
args = common.parse_args(description="Demo 07: translation with a GRU encoder-decoder, "
                         "dates in words -> ISO dates",
                         sizes={"steps": (300, 2000), "hidden": (48, 64), "embedding": (16, 16),
                                "batch": (32, 32), "lr": (0.01, 0.01), "test_size": (300, 1000)})
tr.manual_seed(args.seed)
test_dates = sorted(set(random_dates(args.test_size)))
held_out = set(test_dates)
print(f"Dates {YEARS.start}-{YEARS.stop - 1}; e.g. {source_text(*test_dates[0])!r} -> "
      f"{target_text(*test_dates[0])!r}")
print(f"GRU encoder-decoder, H = {args.hidden}; {args.steps} Adam steps of {args.batch} dates, "
      f"teacher forcing; {len(test_dates)} held-out dates, greedy decoding")

model = DateTranslator(args.embedding, args.hidden)
with common.Stopwatch() as clock:
    losses = train(model, held_out, args)
predicted = model.translate(encode_sources(test_dates))
truth = encode_targets(test_dates)
exact_match = float(np.mean((predicted == truth).all(axis=0)))
char_accuracy = float(np.mean(predicted == truth))
chance = 1 / date_count()
print(f"trained in {clock.seconds:.0f} s; cross-entropy {np.mean(losses[:10]):.3f} -> "
      f"{np.mean(losses[-10:]):.3f} nats per character")
print(f"held-out exact match {exact_match:.1%} (chance: 1 in {date_count():,} = {chance:.4%}); "
      f"characters right {char_accuracy:.1%}")
print("\nsome held-out translations:")
for column in range(0, len(test_dates), max(1, len(test_dates) // 8)):
    guess = decode_text(predicted[:, column])
    expected = target_text(*test_dates[column])
    print(f"  {source_text(*test_dates[column]):36} -> {guess}  "
          + ("ok" if guess == expected else f"(truth {expected})"))

# %% [markdown]
# ## What it learned, and what it still gets wrong
#
# Left, the training loss falling. Right, how often each character of the
# held-out translations is right, position by position. The year and the
# month, read last by the encoder, come out right first; the day, which it
# reads first and must carry through the whole source in its state, is the
# last to be learned: the long-term dependency of demo 04 again.

# %%
fig, (curve, positions) = common.figure(ncols=2, height=3.6)
curve.plot(common.smooth(losses, 20), color="tab:blue")
curve.set_xlabel("training step")
curve.set_ylabel("cross-entropy (nats per character)")
curve.set_title("Training loss (moving average of 20)")
positions.bar(range(TARGET_LENGTH), np.mean(predicted == truth, axis=1), color="tab:green")
positions.set_xticks(range(TARGET_LENGTH), list("YYYY-MM-DD"))
positions.set_ylim(0, 1)
positions.set_xlabel("position in the translation")
positions.set_ylabel("fraction right on held-out dates")
positions.set_title(f"Exact match {exact_match:.0%}, characters right {char_accuracy:.0%}")
common.save_figure(fig, "07_translation.png")
