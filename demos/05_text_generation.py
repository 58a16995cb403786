# %% [markdown]
# # Demo 05: a character-level LSTM that learns to write like Python's docstrings
#
# The article is "Recurrent Neural Networks (RNN)" by Gayathri Siva (Medium, 26 May 2021).
#
# Text generation is one of the article's applications of recurrent
# networks. The model reads one character per step and predicts the next:
#
#     e(t) = E[char(t)]                           an Embedding row
#     h(t), c(t) = LSTM(e(t), h(t-1), c(t-1))     the article's gates f, i, c~, o
#     p(next | so far) = softmax(B h(t))          B: a Linear readout
#
# trained with the cross-entropy of the true next character. The default text
# is the standard library's own docstrings, gathered at run time (modules,
# classes and functions of the modules below, in a fixed order); `--text
# FILE` trains on your own (any UTF-8 text file of a few hundred kilobytes,
# such as a book from Project Gutenberg). Sampling draws each character from
# softmax(B h(t) / temperature): low temperatures play safe, high ones invent.
# The model is saved with tr.save (a checkpoint of arrays, no pickle) and
# `--resume PATH` continues from one, with a fresh optimizer. No run writes
# over another's checkpoint or picture unless told to with `--checkpoint`: a
# quick run saves to its own file, a resumed run beside the one it resumed
# from, and the learning curve is named after the checkpoint. `--sample`
# only samples from a checkpoint: no training, no file written.
#
#     python demos/05_text_generation.py                 # out/05_char_lstm.npz
#     python demos/05_text_generation.py --quick         # out/05_char_lstm_quick.npz
#     python demos/05_text_generation.py --resume out/05_char_lstm.npz --steps 500
#                                                        # out/05_char_lstm_resumed.npz
#     python demos/05_text_generation.py --text my_book.txt --checkpoint out/book.npz
#     python demos/05_text_generation.py --sample out/book.npz --prompt "The " \
#         --temperature 0.8 --length 500
#
# The learning curve goes to out/05_char_lstm_learning_curve.png (the
# checkpoint's name, then `_learning_curve.png`), the explorer page of a
# held-out docstring to out/05_char_lstm_explorer.html (the checkpoint's name, then
# `_explorer.html`). Run it as a script, or cell by cell as a notebook.

# %%
import importlib
import inspect
import warnings
from pathlib import Path

import _common as common  # first: it sets numpy's thread count before numpy loads

import numpy as np

import tinygrad_rnn as tr
from tinygrad_rnn import bptt, nn, viz
from tinygrad_rnn.rng import generator

# %% [markdown]
# ## The text

# %%
STDLIB_MODULES = [
    "abc", "argparse", "base64", "bisect", "calendar", "collections", "contextlib", "copy", "csv",
    "dataclasses", "datetime", "decimal", "difflib", "enum", "fractions", "functools", "gzip",
    "heapq", "inspect", "io", "itertools", "json", "logging", "math", "operator", "os", "pathlib",
    "pprint", "queue", "random", "re", "shutil", "statistics", "string", "tempfile", "textwrap",
    "threading", "timeit", "typing", "unittest", "urllib.parse", "uuid", "zipfile",
]
PROMPT = "Return the "
EXPLORED = 160  # characters of the held-out docstring on the explorer page
TEMPERATURES = (0.6, 1.0)


def stdlib_docstrings(module_names=STDLIB_MODULES):
    """The docstrings of the modules, and of their public classes, methods and functions.

    Order: modules as listed, then members by name (dir() is sorted), so the
    text is the same on every run of one Python version.
    """
    docs = []
    # Reading attributes can touch deprecated names; only their docstrings matter here.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for module_name in module_names:
            module = importlib.import_module(module_name)
            docs.append(inspect.getdoc(module))
            for name in dir(module):
                member = getattr(module, name)
                if name.startswith("_") or getattr(member, "__module__", None) != module.__name__:
                    continue
                docs.append(inspect.getdoc(member))
                if inspect.isclass(member):
                    docs += [inspect.getdoc(method) for method_name, method in vars(member).items()
                             if not method_name.startswith("_") and inspect.isfunction(method)]
    return "\n\n".join(doc for doc in docs if doc)


def read_text(path):
    if path is None:
        text = stdlib_docstrings()
        print(f"text: docstrings of {len(STDLIB_MODULES)} standard-library modules, "
              f"{len(text):,} characters")
    else:
        text = Path(path).read_text(encoding="utf-8")
        print(f"text: {path}, {len(text):,} characters")
    return text


# %% [markdown]
# ## The model
#
# An Embedding turns each character into a vector e(t); the LSTM reads them
# one step at a time, its cell state c carrying what it has read (its forget
# gate f deciding, at every step, how much of c to keep); a Linear readout of
# h(t) gives a score for every character that may come next.

# %%
class CharLSTM(nn.Module):
    """Embedding -> LSTM -> Linear: characters in, next-character logits out."""

    def __init__(self, vocab_size, embedding_dim, hidden_size):
        self.embedding = nn.Embedding(vocab_size, embedding_dim)
        self.lstm = nn.LSTM(embedding_dim, hidden_size)
        self.readout = nn.Linear(hidden_size, vocab_size)

    def forward(self, indices, state=None):
        """indices (T, B) ints -> logits (T, B, V), and the LSTM state (h, c)."""
        output, state = self.lstm(self.embedding(indices), state)
        return self.readout(output), state


class Vocabulary:
    """The characters of a text, sorted, and the maps between them and indices."""

    def __init__(self, chars):
        self.chars = list(chars)
        self.index = {ch: i for i, ch in enumerate(self.chars)}

    def encode(self, text):
        """Text -> int64 indices; characters outside the vocabulary are dropped."""
        return np.array([self.index[ch] for ch in text if ch in self.index], dtype=np.int64)

    def decode(self, indices):
        return "".join(self.chars[i] for i in indices)

    def to_array(self):
        """The characters as code points, so a checkpoint of arrays can carry them."""
        return np.array([ord(ch) for ch in self.chars], dtype=np.int32)


# %% [markdown]
# ## Training, sampling and checkpoints
#
# Each training step takes random windows of the text and asks for the next
# character at every position, so one backward is BPTT through all the
# window's steps. Sampling feeds the model its own output, one character at
# a time, starting from a prompt.

# %%
def random_windows(data, batch, length):
    """``batch`` windows of ``length + 1`` characters at random places -> inputs and targets (T, B)."""
    starts = generator().integers(0, len(data) - length - 1, batch)
    windows = np.stack([data[s:s + length + 1] for s in starts], axis=1)
    return windows[:-1], windows[1:]


def next_character_loss(model, inputs, targets):
    """The cross-entropy of the next character at every position of the windows."""
    logits, _ = model(inputs)
    return nn.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


def train(model, data, args):
    """Adam on the next-character cross-entropy, gradients clipped at norm 1, on a training
    step traced once and replayed (``tr.compile``: every batch has the same shape)."""
    batch_loss = common.compiled_loss(model, next_character_loss,
                                      lambda: random_windows(data, args.batch, args.window))
    return common.fit(model, batch_loss, args.steps, args.lr, compiled=True)


def sample(model, vocab, prompt, length, temperature):
    """Continue ``prompt`` by ``length`` characters, each drawn from softmax(logits / temperature)."""
    unknown = sorted(set(prompt) - set(vocab.chars))
    if not prompt or unknown:
        raise ValueError(f"--prompt {prompt!r}: the model reads only the {len(vocab.chars)} characters "
                         f"of its vocabulary and needs at least one; "
                         f"{'it is empty' if not prompt else f'not in it: {unknown}'}")
    if not temperature > 0:
        raise ValueError(f"--temperature must be positive, got {temperature}")
    with tr.no_grad():
        logits, state = model(vocab.encode(prompt)[:, None])
        chars = []
        for _ in range(length):
            p = (logits[-1, 0] / temperature).softmax().data.astype(np.float64)
            index = int(generator().choice(len(p), p=p / p.sum()))
            chars.append(index)
            logits, state = model(np.array([[index]]), state)
    return prompt + vocab.decode(chars)


def save_checkpoint(model, vocab, path):
    """The model's arrays plus the vocabulary (as code points), via tr.save."""
    tr.save({**model.state_dict(), "vocab": vocab.to_array()}, path)
    print(f"checkpoint: {common.shown(path)}")


def load_checkpoint(path, flag="--resume"):
    """A model and vocabulary rebuilt from a checkpoint written by :func:`save_checkpoint`.

    The sizes come from the arrays' shapes, so the command line need not repeat them.
    """
    if not Path(path).is_file():
        raise FileNotFoundError(f"{flag} {path}: no such checkpoint; a run without --sample "
                                f"trains a model and saves one")
    state = tr.load(path)
    if "vocab" not in state or "embedding.weight" not in state:
        raise ValueError(f"{flag} {path}: not a checkpoint of this demo "
                         f"(it holds {', '.join(state) or 'nothing'})")
    vocab = Vocabulary(chr(code) for code in state.pop("vocab"))
    embedding_dim = state["embedding.weight"].shape[1]
    hidden_size = state["lstm.weight_hh_l0"].shape[1]
    model = CharLSTM(len(vocab.chars), embedding_dim, hidden_size)
    model.load_state_dict(state)
    print(f"model: {common.shown(path)}")
    return model, vocab


def checkpoint_path(args):
    """``--checkpoint`` if given; else beside a resumed checkpoint with ``_resumed`` added to its
    name; else ``out/05_char_lstm.npz``, or ``out/05_char_lstm_quick.npz`` for ``--quick``."""
    if args.checkpoint:
        return args.checkpoint
    if args.resume:
        resumed = Path(args.resume)
        return str(resumed.with_name(resumed.stem + "_resumed" + resumed.suffix))
    return default_checkpoint(args)


def default_checkpoint(args):
    """``out/05_char_lstm.npz``, or ``out/05_char_lstm_quick.npz`` for ``--quick``."""
    return str(common.out_path("05_char_lstm_quick.npz" if args.quick else "05_char_lstm.npz"))


# %% [markdown]
# ## The text, the vocabulary and the model
#
# The settings come from the command line (see `--help`); in a notebook the
# demo runs as with `--quick`, and `argv=[...]` in the call below changes
# that. The cross-entropy of guessing every character with equal chances,
# ln V, is the level to beat.

# %%
args = common.parse_args(
    description="Demo 05: a character-level LSTM that learns to write like Python's docstrings",
    sizes={"steps": (400, 2000), "hidden": (64, 128), "embedding": (16, 32),
           "window": (32, 64), "batch": (16, 32), "lr": (0.005, 0.003), "length": (120, 300)},
    options=[("--text", dict(help="train on this UTF-8 text file instead of the docstrings")),
             ("--resume", dict(help="continue from a checkpoint written by this demo")),
             ("--checkpoint", dict(help="where to save the model (default out/05_char_lstm.npz; "
                                        "_quick.npz with --quick; beside --resume PATH, "
                                        "with _resumed added to its name)")),
             ("--sample", dict(nargs="?", const="", metavar="CHECKPOINT",
                               help="only sample from a checkpoint (default out/05_char_lstm.npz, "
                                    "_quick.npz with --quick): no training, no file written")),
             ("--prompt", dict(default=PROMPT, help=f"the text samples continue (default {PROMPT!r})")),
             ("--temperature", dict(type=float, help=f"sample at this temperature only "
                                                     f"(default: at each of {TEMPERATURES})"))])
tr.manual_seed(args.seed)
training_flags = [flag for flag in ("--text", "--resume", "--checkpoint") if getattr(args, flag[2:])]
if args.sample is not None and training_flags:
    raise ValueError(f"--sample only samples from a checkpoint; {', '.join(training_flags)} belong "
                     f"to a training run")
if args.sample is not None:
    model, vocab = load_checkpoint(args.sample or default_checkpoint(args), flag="--sample")
else:
    text = read_text(args.text)
    if args.resume:
        model, vocab = load_checkpoint(args.resume)
    else:
        vocab = Vocabulary(sorted(set(text)))
        model = CharLSTM(len(vocab.chars), args.embedding, args.hidden)
    data = vocab.encode(text)
    if len(data) <= args.window + 1:
        raise ValueError(f"the text has {len(data)} usable characters; training windows need "
                         f"more than --window + 1 = {args.window + 1}")
print(f"vocabulary: {len(vocab.chars)} characters; model: {model.embedding!r} -> "
      f"{model.lstm!r} -> {model.readout!r}")
print(f"chance level: cross-entropy ln {len(vocab.chars)} = {np.log(len(vocab.chars)):.2f} nats")

# %% [markdown]
# ## Training
#
# Adam on the next-character cross-entropy, the gradient clipped at norm 1,
# on a training step traced once by `tr.compile` and replayed (the first 10
# losses are checked against the engine's own backward); the model is saved
# at the end. With `--sample` this part and the next are skipped.

# %%
losses = []
if args.sample is None:
    difference = common.eager_and_compiled_differ(
        lambda: CharLSTM(len(vocab.chars), model.embedding.embedding_dim, model.lstm.hidden_size),
        next_character_loss, lambda: random_windows(data, args.batch, args.window), 10, args.lr,
        args.seed)
    print(f"the first 10 losses, eager and compiled: largest relative difference {difference:.1g}")
    with common.Stopwatch() as clock:
        losses = train(model, data, args)
    if losses:
        print(f"{args.steps} steps of {args.batch} x {args.window} characters in {clock.seconds:.0f} s: "
              f"cross-entropy {np.mean(losses[:10]):.3f} -> {np.mean(losses[-10:]):.3f} nats")
    checkpoint = checkpoint_path(args)
    save_checkpoint(model, vocab, checkpoint)

# %% [markdown]
# The cross-entropy falls from the chance level ln V as the model learns
# which characters tend to follow which. The picture is named after the
# checkpoint, so a quick, resumed or `--checkpoint` run draws its own.

# %%
def learning_curve(losses, vocab, checkpoint, text_path):
    """The smoothed training cross-entropy against chance, to out/<checkpoint's name>_learning_curve.png."""
    fig, ax = common.figure()
    ax.plot(common.smooth(losses, 20), label="training cross-entropy (moving average of 20)")
    ax.axhline(np.log(len(vocab.chars)), color="black", linestyle="--",
               label=f"chance: ln {len(vocab.chars)} = {np.log(len(vocab.chars)):.2f}")
    ax.set_xlabel("training step")
    ax.set_ylabel("nats per character")
    ax.set_title("A character-level LSTM learning the docstrings" if text_path is None
                 else f"A character-level LSTM learning {text_path}")
    ax.legend()
    return common.save_figure(fig, Path(checkpoint).stem + "_learning_curve.png")


picture = None if args.sample is not None else learning_curve(losses, vocab, checkpoint, args.text)
picture

# %% [markdown]
# ## Samples
#
# Each sample continues the prompt, one character at a time. At temperature
# 0.6 the model keeps to what it is sure of; at 1.0 it draws from its full
# distribution and invents more, mistakes included. `--prompt`,
# `--temperature` and `--length` change them.

# %%
tr.manual_seed(args.seed)  # samples depend on the model and the seed only
samples = {}
for temperature in TEMPERATURES if args.temperature is None else (args.temperature,):
    samples[temperature] = sample(model, vocab, args.prompt, args.length, temperature)
    print(f"\n--- sample, temperature {temperature} ---\n{samples[temperature]}")


# %% [markdown]
# ## What each prediction listens to: the explorer page
#
# `viz.explore` writes a page that shows a docstring the model never trained
# on (`glob.glob`'s) as text. Hovering a character colours every character
# before it by its connectivity to that prediction (`bptt.connectivity`: the
# norm of the gradient of the most probable next character's logit with
# respect to each embedded character, Madsen's Distill figure) and lists the
# model's most probable next characters there; choosing a unit (h, c or a
# gate) colours the text by its value instead. With `--text FILE` the page
# shows the file's last characters, which the model did train on; with
# `--sample` no page is written.

# %%
def explorer_page(model, vocab, text, name, annotation=None):
    """Write out/<name>: ``model`` reading ``text`` (the characters of ``vocab``; others are
    dropped), each character a token, with every prediction's connectivity to the characters
    before it, its probabilities, and the units ranked by |correlation| with ``annotation``
    (one number per character but the last, the one no prediction reads); returns the path."""
    indices = vocab.encode(text)
    embedded = model.embedding(indices[:-1, None]).data           # (T, 1, E)

    def logits_of(e):
        return model.readout(model.lstm(e)[0])                      # (T, 1, V)

    connectivity = bptt.connectivity(logits_of, embedded)         # (1, T, T): of the argmax
    with bptt.record() as rec:
        logits = logits_of(tr.Tensor(embedded))
        loss = nn.cross_entropy(logits.reshape(-1, len(vocab.chars)), indices[1:])
        loss.backward(retain_grads=True)
    scores = np.exp(logits.data[:, 0] - logits.data[:, 0].max(axis=1, keepdims=True))
    page = viz.explore({"character LSTM": (loss, rec)}, detail="rolled",
                       tokens=list(vocab.decode(indices[:-1])), connectivity=connectivity,
                       predictions=scores / scores.sum(axis=1, keepdims=True), vocab=vocab.chars,
                       annotation=annotation)
    path = page.save(common.out_path(name))
    print(f"explorer page: {common.shown(path)}")
    return path


# held out: a docstring of a module outside STDLIB_MODULES; with --text, the text's end
explored = inspect.getdoc(importlib.import_module("glob").glob) if args.text is None else text[-EXPLORED:]
page = None if args.sample is not None else explorer_page(model, vocab, explored[:EXPLORED],
                                                          Path(checkpoint).stem + "_explorer.html")
