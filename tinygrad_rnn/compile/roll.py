"""Pass 5: the unrolled tape rolled back into its loop, one step's code run T times.

A traced step over T time steps is T copies of one step's instructions: the
copy for step t+1 is the copy for step t with every slot (and every index
such as x_proj[t]) moved on by the same amount. :func:`roll_loops` finds those
runs of copies and replaces each by one :class:`Loop`, so that the replay is a
prologue, a forward loop, the loss, a backward loop and an epilogue; a loop's
body is written once as Python source (``Loop.source``), whatever T is.

What it checks, never guessing:

- a step is a run of consecutive instructions whose values were made in one
  scope ``t=<k>`` (forward: the output's scope; backward: the scope of the
  node whose gradient it sends, or of a slice's parent when no forward makes
  the slice; a ``Free`` belongs to the instruction before);
- consecutive steps of one sequence (the scope path before ``t=<k>``) are
  copies when their instructions are of the same kinds with equal fields, every
  integer apart (slots, indices, shapes), and each integer changes by the same
  amount from every step to the next (``n_t = n_0 + d t``, checked at every t:
  a zero initial state read at t=0 only leaves step 0 outside the loop), in
  three steps or more (two steps would fit any change);
- fields that are objects (a primitive, a dtype, a constant array, a buffer
  that ``reuse_buffers`` gave) are equal in every step, arrays by identity;
- in backward, the way each share is added (``tape.plan_accumulation``) is the
  same in every step, or the loop replays its steps one by one, as before.

A loop runs exactly the instructions of the unrolled tape in the same order,
so its results are the plain replay's, bit for bit; its body writes the
common primitives (sigmoid, tanh, mul, add, sub, getitem, a two-axis linear)
as the numpy expressions of their forward and backward rather than calls
(``INLINE_FORWARD``, ``INLINE_BACKWARD``), and a value that lives within
one step as a variable rather than a slot (``body.py``). Run it last: the other passes read
instructions that this one hides inside its loops.

Before rolling, it makes the rewrites of ``rewrites.py`` (``REWRITES``): each
step's output written into its row of the stacked sequence, and the gate
sigmoids of one step as one call. Their instructions roll like the others.
"""
import dataclasses
import keyword
import re

import numpy as np

from .. import ops
from ..bptt import step_of
from .body import with_locals
from .passes import ReusingForward, UFUNCS, _with
from .replay import bind, lower, plain, releaser
from .rewrites import (INTO, SAVES, ForwardInto, GateDerivatives, GateGrad, GateSigmoids, SigmoidView,
                       StackGrad, join_gate_sigmoids, sigmoid_blocks, stack_in_place)
from .tape import Backward, Forward, Free, LeafGrad, SliceGrad, plan_accumulation, plan_step

KINDS = (Forward, Backward, SliceGrad, LeafGrad, Free, ReusingForward, SigmoidView, GateSigmoids,
         GateDerivatives, GateGrad, StackGrad)
# The rewrites of rewrites.py, made before the tape is rolled.
REWRITES = (stack_in_place, join_gate_sigmoids)


def roll_loops(tape, rewrites=REWRITES):
    """Pass 5: the ``rewrites``, then every run of three or more copies of a step (see the module
    docstring) as a Loop."""
    for rewrite in rewrites:
        tape = rewrite(tape)
    plan_accumulation(tape)  # the way shares are added is part of what must repeat
    made = [f for f in map(forward_of, tape.forward) if f is not None]
    step_at = {scope: step_of(scope) for scope in {f.scope for f in made}}  # parsed once per scope
    steps = {f.out: step_at[f.scope] for f in made}
    named = {f.out: f.name for f in made if f.name}
    forward = roll(tape.forward, lambda i: steps.get(getattr(forward_of(i), "out", None)), named)
    # a slice whose cut no forward makes any more (rewrites.join_gate_sigmoids): its parent's step
    backward = roll(tape.backward, lambda i: steps.get(getattr(i, "node", None),
                                                       steps.get(getattr(i, "parent", None))), named)
    return _with(tape, forward=forward, backward=backward)


def forward_of(instruction):
    """The Forward (or gate view) that a forward instruction runs (None for one of another kind)."""
    if type(instruction) in (ReusingForward, ForwardInto):
        return instruction.step
    return instruction if isinstance(instruction, (Forward, SigmoidView, GateSigmoids)) else None


def roll(instructions, step_of_instruction, named):
    """``instructions`` with each run of copied steps replaced by one Loop. A loop's body is one
    step, or two when the steps alternate between two things (``reuse_buffers`` hands two
    buffers back and forth, one step to the next). ``named``: slot -> the name of its value."""
    blocks = []  # [(sequence and step, or None), [instructions]]
    for instruction in instructions:
        where = None if isinstance(instruction, Free) else step_of_instruction(instruction)
        if isinstance(instruction, Free) and blocks:
            blocks[-1][1].append(instruction)
        elif blocks and where is not None and blocks[-1][0] == where:
            blocks[-1][1].append(instruction)
        else:
            blocks.append([where, [instruction]])
    flat = [None if where is None else flatten(block) for where, block in blocks]
    result, start, seen = [], 0, {}
    while start < len(blocks):
        count, body = run_length(blocks, flat, start, 1, seen), 1
        if count < 3 and run_length(blocks, flat, start + 1, 1, seen) < 3:
            count, body = run_length(blocks, flat, start, 2, seen) * 2, 2
        if count >= 3 * body:
            sequence, first = blocks[start][0]
            label = f"{sequence or 'steps'}, t={first}..{blocks[start + count - 1][0][1]}"
            numbers = [np.concatenate([flat[j][1] for j in range(k, k + body)])
                       for k in (start, start + body)]  # of the first two bodies
            result.append(Loop([[i for _, block in blocks[k:k + body] for i in block]
                                for k in range(start, start + count, body)], numbers, label, body, named))
        else:
            count = 1
            result += blocks[start][1]
        start += count
    return result


def run_length(blocks, flat, start, body, seen=None):
    """How many groups of ``body`` blocks from ``start``, all steps of one sequence, are copies of
    one step (0 or 1: none). ``flat`` holds each block's (template, numbers). The first group is
    left out of a loop that would include it when the groups after it are copies without it
    (t=0 reading a zero initial state). ``seen`` keeps the counts already found, for the next
    call on the same blocks: {(first block, body, sequence): copies}."""
    seen = {} if seen is None else seen
    def group(k):
        """(template, numbers) of the k-th group, or None past the sequence's steps."""
        first = start + k * body
        wheres = [where for where, _ in blocks[first:first + body]]
        if len(wheres) < body or any(where is None or where[0] != blocks[start][0][0] for where in wheres):
            return None
        if body == 1:
            return flat[first]
        return (sum((flat[j][0] for j in range(first, first + body)), ()),
                np.concatenate([flat[j][1] for j in range(first, first + body)]))

    def copies_from(k):
        if start >= len(blocks) or blocks[start][0] is None:
            return 0
        key = (start + k * body, body, blocks[start][0][0])
        if key not in seen:
            seen[key] = count_copies(k)
        return seen[key]

    def count_copies(k):
        if group(k) is None:
            return 0
        template, numbers = group(k)
        count, step = 1, None
        while (other := group(k + count)) is not None and other[0] == template:
            change = other[1] - numbers
            if step is not None and not np.array_equal(change, step):
                break
            step, numbers, count = change, other[1], count + 1
        return count

    count = copies_from(0)
    return 1 if copies_from(1) > count else count


# ------------------------------------------- instructions as templates and numbers

class Name(str):
    """A name in the generated source (a constant, a function), written as itself."""

    def __repr__(self):
        return str(self)


NUMBER = "<number>"


# The fields that say what an instruction does, per kind (its scope and name only say where).
FIELDS = {kind: tuple(f.name for f in dataclasses.fields(kind) if f.name not in ("scope", "name"))
          for kind in KINDS if dataclasses.is_dataclass(kind)}
INT, PLAIN = {int}, {bool, str, type(None)}


def fields(instruction):
    """The values of an instruction's ``FIELDS``, in order; None for one of another kind."""
    if type(instruction) is ReusingForward:
        return ("reuse", fields(instruction.step), instruction.buffer)
    if type(instruction) is ForwardInto:
        return ("into", fields(instruction.step), instruction.place, instruction.row, instruction.axis)
    names = FIELDS.get(type(instruction))
    return None if names is None else tuple(map(instruction.__getattribute__, names))


def plain_forward(step):
    """The template of a Forward without params, whose numbers are its ins, out and shape."""
    return (Forward, step.fn, len(step.ins), step.keep_saved, len(step.shape), step.dtype, step.wrap)


def flatten(block):
    """(template, numbers) of a block: its fields with every int taken out into ``numbers`` (an
    int64 array), every other object as (its type, itself) when hashable, else by identity (an
    array). Every instruction of a traced step passes here once: the common cases come first."""
    numbers = []

    def walk(value):
        kind = type(value)
        if kind is int:
            numbers.append(value)
            return NUMBER
        if kind is tuple or kind is list:
            kinds = set(map(type, value))
            if kinds == INT:  # slots, a shape
                numbers.extend(value)
                return (kind, len(value))
            return value if kinds <= PLAIN else tuple(map(walk, value))
        if kind is str or kind is bool or value is None:
            return value
        if kind is dict:
            return tuple((key, walk(v)) for key, v in value.items())
        if kind is slice:  # as walk((start, stop, step)) would, without a call per end
            ends = []
            for end in (value.start, value.stop, value.step):
                if type(end) is int:
                    numbers.append(end)
                    ends.append(NUMBER)
                else:
                    ends.append(None if end is None else walk(end))
            return ("slice", tuple(ends))
        if kind is np.ndarray:
            return ("identity", id(value))
        try:
            hash(value)
        except TypeError:
            return ("identity", id(value))
        return (kind, value)

    template = []
    for instruction in block:
        kind = type(instruction)
        if kind is Free:  # the commonest two, quickly: their fields hold slots and shapes only
            numbers += instruction.values + instruction.saved + instruction.grads
            template.append((Free, len(instruction.values), len(instruction.saved), len(instruction.grads)))
        elif kind is Backward:
            numbers.append(instruction.node)
            for route in instruction.routes:
                numbers += route[:2] + route[2]
            template.append((Backward, instruction.fn, instruction.needs, instruction.kinds,
                             tuple(len(shape) for _, _, shape in instruction.routes)))
        elif kind is Forward and not instruction.params and not instruction.bound:
            numbers += instruction.ins + (instruction.out,) + instruction.shape
            template.append(plain_forward(instruction))
        elif kind is Forward and not instruction.bound:  # a getitem: its index walked in its place
            numbers += instruction.ins
            params = walk(instruction.params)
            numbers += (instruction.out,) + instruction.shape
            template.append((plain_forward(instruction), params))
        elif kind is SliceGrad:  # the fields in their order: node, parent, shape, ..., index, host
            numbers += (instruction.node, instruction.parent) + instruction.shape
            template.append((SliceGrad, len(instruction.shape), instruction.dtype, instruction.assign,
                             walk(instruction.index), walk(instruction.host), instruction.kind))
        elif kind is ReusingForward and not instruction.step.params and not instruction.step.bound:
            numbers += instruction.step.ins + (instruction.step.out,) + instruction.step.shape
            template.append((ReusingForward, plain_forward(instruction.step), id(instruction.buffer)))
        elif kind is ForwardInto:  # never with params (rewrites.stack_in_place)
            numbers += instruction.step.ins + (instruction.step.out,) + instruction.step.shape
            numbers += (instruction.place, instruction.row, instruction.axis)
            template.append((ForwardInto, plain_forward(instruction.step)))
        else:
            parts = fields(instruction)
            template.append(("identity", id(instruction)) if parts is None else (kind, walk(parts)))
    try:
        return tuple(template), np.array(numbers, dtype=np.int64)
    except OverflowError:  # a Python int beyond int64 (a seed in a param): compared exactly
        return tuple(template), np.array(numbers, dtype=object)


# ------------------------------------------------------------------- the loop

class Loop:
    """The T copies ``blocks`` of one step's instructions, run as one body T times.

    ``source`` is the body as Python source, a function ``run(V, S, G, L)``
    whose loop counter ``k`` moves every changing number on: ``V[12 + 16 * k]``;
    a value made and released within one run is a variable (``body.py``).
    ``label`` names the sequence and its steps: "lstm/l0, t=1..6"; ``steps``
    counts them (a body may hold two steps, see :func:`roll`).
    """

    def __init__(self, blocks, numbers, label="", body=1, named=None):
        self.blocks, self.label, self.steps = blocks, label, len(blocks) * body
        self.named = named or {}
        self.rolled = True
        first, second = numbers  # of the first two bodies, as flatten gives them
        self.start, self.change = first.tolist(), (second - first).tolist()

    def plan(self, owned):
        """Plan every step's shares; the body is the same code in every step only if they are
        added the same way in every step (else the steps run one by one)."""
        for instruction in (i for block in self.blocks for i in block):
            plan_step(instruction, owned)
        kinds = [[(getattr(i, "kinds", ()), getattr(i, "kind", "")) for i in block] for block in self.blocks]
        self.rolled = all(k == kinds[0] for k in kinds)

    def lower(self, free):
        release = releaser(free)
        if not self.rolled:
            runs = lower([i for block in self.blocks for i in block])
        else:
            source, names = self.source()
            scope = dict(names)
            exec(compile(source, f"<rolled step of {len(self.blocks)}>", "exec"), scope)
            runs = [scope["run"]]

        def run(V, S, G, L):
            for each in runs:
                each(V, S, G, L)
            if release is not None:
                release(V, S, G)
        return run

    def source(self):
        """(the body as source of a function ``run(V, S, G, L)``, the names it uses)."""
        names = {"np": np, "unbroadcast": ops.unbroadcast, "add_into": ops.GetItem.add_into, "bind": bind,
                 "sigmoid_blocks": sigmoid_blocks}
        numbers = iter(zip(self.start, self.change))

        def name(value, prefix):
            for key, known in names.items():
                if known is value and key.startswith(prefix):
                    return Name(key)
            key = f"{prefix}{len(names)}"
            names[key] = value
            return Name(key)

        def render(value):  # the numbers taken in flatten's order, the same types walked
            kind = type(value)
            if kind is int:
                first, change = next(numbers)
                return Name(moving(first, change))
            if kind is tuple or kind is list:
                return kind(map(render, value))
            if kind is dict:
                return {key: render(v) for key, v in value.items()}
            if kind is slice:
                return slice(*render((value.start, value.stop, value.step)))
            if value is None or kind in (bool, str):
                return value
            return name(value, "c")

        body = []
        aliases = {}  # "V[33 + 32 * k]" -> "i": the local variable that holds a named value
        for instruction in self.blocks[0]:
            reused, into = type(instruction) is ReusingForward, type(instruction) is ForwardInto
            values = render(fields(instruction)[1] if reused or into else fields(instruction))
            parts = dict(zip(FIELDS[Forward if reused or into else type(instruction)], values))
            if into:
                parts["place"] = render((instruction.place, instruction.row, instruction.axis))
                code = emit_into(parts, instruction, name)
            else:
                code = emit(parts, instruction, name, name(instruction.buffer, "buffer") if reused else None)
            if type(instruction) is GateDerivatives:
                aliases[f"S[{parts['node']}][0]"] = "d_gates"
            if not isinstance(instruction, Free):
                code = [aliased(line, aliases) for line in code]
            made = forward_of(instruction)
            slot = made.out if made is not None else getattr(instruction, "node", None)
            if slot in self.named:  # the article's quantity: i, f, c~, o, c, h; r, z, n
                what, target = self.named[slot], f"V[{parts['out']}] = " if made is not None else None
                local = variable(what, names)
                if target is not None and local is not None and code[0].startswith(target):
                    code[0] = f"{target}{local} = {code[0][len(target):]}"
                    aliases = {v: name_ for v, name_ in aliases.items() if name_ != local}
                    aliases[target[:-3]] = local
                    code[1:] = [aliased(line, aliases) for line in code[1:]]
                code[0] += f"  # {what}" if made is not None else f"  # backward of {what}"
            body += code
        before, body = with_locals(body)
        lines = ["def run(V, S, G, L):", f'    """{self.label}: {len(self.blocks)} runs of one body."""',
                 *["    " + line for line in before], f"    for k in range({len(self.blocks)}):",
                 *["        " + line for line in body]]
        return "\n".join(lines) + "\n", names


def moving(first, change):
    """The number ``first + change * k`` as it reads best: "12 + 4 * k", "1 + k", "k", "19 - k", "7"."""
    if not change:
        return str(first)
    step = "k" if abs(change) == 1 else f"{abs(change)} * k"
    if not first:
        return step if change > 0 else f"-{step}"
    return f"{first} + {step}" if change > 0 else f"{first} - {step}"


# Primitives whose forward and backward a loop's body writes out as numpy expressions, the
# very ones of ``ops`` (tests/test_compile_roll.py checks them bit for bit), rather than calls:
# a call costs a Python frame and a tuple per primitive, per step. Forward: (value, saved),
# over the inputs {0}, {1}, ... and the params; backward: (the saved tuple's names, the share
# of each input over the gradient {g}). ``linear`` only where its input has two axes.
INLINE_FORWARD = {
    ops.Sigmoid: ("1 / (1 + np.exp(-{0}))", "({out},)"),
    ops.Tanh: ("np.tanh({0})", "({out},)"),
    ops.Mul: ("{0} * {1}", "({0}, {1})"),
    ops.Add: ("{0} + {1}", "()"),
    ops.Sub: ("{0} - {1}", "()"),
    ops.GetItem: ("{0}[{subscript}]", "({0}.shape, {index!r})"),
    ops.Linear: ("{0} @ {1}.T", "({0}, {1})"),
}
INLINE_BACKWARD = {
    ops.Sigmoid: ("out,", ("{g} * out * (1 - out)",)),
    ops.Tanh: ("out,", ("{g} * (1 - out * out)",)),
    ops.Mul: ("a, b", ("{g} * b", "{g} * a")),
    ops.Add: ("", ("{g}", "{g}")),
    ops.Sub: ("", ("{g}", "-{g}")),
    ops.Linear: ("x, weight", ("{g} @ weight", "{g}.T @ x", "{g}")),
}


def inline_forward(instruction):
    """(value, saved) expressions of a Forward written out in a loop, or None for a call."""
    if instruction.fn not in INLINE_FORWARD or instruction.bound or instruction.wrap:
        return None
    if instruction.fn is ops.Linear:
        if len(instruction.shape) != 2:
            return None
        value, saved = INLINE_FORWARD[ops.Linear]
        return (value + " + {2}" if len(instruction.ins) == 3 else value), saved
    return INLINE_FORWARD[instruction.fn]


def inline_backward(instruction):
    """(saved names, shares) of a Backward written out in a loop, or None for a call."""
    if instruction.fn is ops.Linear:  # two axes: its input's share must say so
        if not any(i == 0 and len(shape) == 2 for i, _, shape in instruction.routes):
            return None
    return INLINE_BACKWARD.get(instruction.fn)


def of_its_shape(instruction, i):
    """Whether the i-th share of an inlined Backward has its input's shape whatever the call (no
    sum over broadcast axes): one input, two of one shape, or a two-axis linear's input."""
    shapes = [shape for _, _, shape in instruction.routes]
    if instruction.fn is ops.Linear:
        return i == 0
    return instruction.fn in (ops.Sigmoid, ops.Tanh) or (len(shapes) == 2 and shapes[0] == shapes[1])


# Names the loop's own code uses; a value named one of these keeps its slot.
RESERVED = {"V", "S", "G", "L", "k", "g", "shares", "out", "a", "b", "x", "weight", "value", "saved",
            "buffer", "run", "d_gates"}


def variable(what, names):
    """The Python name for a value named ``what`` ("c~" -> "c_tilde"), or None if it has none."""
    local = re.sub(r"\W", "_", what.replace("~", "_tilde"))
    if not local.isidentifier() or keyword.iskeyword(local) or local in RESERVED or local in names:
        return None
    return local


def aliased(line, aliases):
    """``line`` reading each aliased slot through its variable."""
    for slot, local in aliases.items():
        line = line.replace(slot, local)
    return line


def emit(f, instruction, name, buffer):
    """The source lines of one instruction, its numbers rendered in ``f`` (a dict of its fields)."""
    kind = type(instruction.step if buffer is not None else instruction)
    if kind is Forward and buffer is not None:
        a, b = f["ins"]
        ufunc = name(UFUNCS[instruction.step.fn], f"np_{UFUNCS[instruction.step.fn].__name__}_")
        lines = [f"V[{f['out']}] = {ufunc}(V[{a}], V[{b}], out={buffer})"]
        if f["keep_saved"]:
            lines.append(f"S[{f['out']}] = (V[{a}], V[{b}])" if instruction.step.fn is ops.Mul
                         else f"S[{f['out']}] = ()")
        return lines
    if kind is Forward and inline_forward(instruction) is not None:
        expression, saved = inline_forward(instruction)
        ins = [f"V[{i}]" for i in f["ins"]]
        where = {"subscript": subscript(f["params"]["index"])} if "index" in f["params"] else {}
        lines = [f"V[{f['out']}] = " + expression.format(*ins, **f["params"], **where)]
        if f["keep_saved"]:
            lines.append(f"S[{f['out']}] = " + saved.format(*ins, out=f"V[{f['out']}]", **f["params"]))
        return lines
    if kind is Forward:
        forward = name(plain(instruction.fn.forward), f"{instruction.fn.__name__.lower()}_")
        args = [f"V[{i}]" for i in f["ins"]]
        if f["bound"]:
            args.append(f"**bind({f['params']!r}, {f['bound']!r}, V)")
        else:
            args += [f"{key}={value!r}" for key, value in f["params"].items()]
        call = f"{forward}({', '.join(args)})"
        if f["wrap"]:
            lines = [f"value, saved = {call}", f"V[{f['out']}] = np.asarray(value)"]
            return lines + ([f"S[{f['out']}] = saved"] if f["keep_saved"] else [])
        return [f"V[{f['out']}], S[{f['out']}] = {call}" if f["keep_saved"] else f"V[{f['out']}] = {call}[0]"]
    if kind is Backward and inline_backward(instruction) is not None:
        node, (saved_names, shares) = f["node"], inline_backward(instruction)
        lines = [f"{saved_names} = S[{node}]"] if saved_names else []
        for (i, _, _), (_, parent, shape), how in zip(instruction.routes, f["routes"], f["kinds"]):
            share = shares[i].format(g=f"G[{node}]")
            if not of_its_shape(instruction, i):
                lines += [f"g = {share}", f"if g.shape != {shape!r}:", f"    g = unbroadcast(g, {shape!r})"]
                share = "g"
            lines.append(added(parent, share, how))
        return lines
    if kind is Backward:
        backward = name(plain(instruction.fn.backward), f"{instruction.fn.__name__.lower()}_")
        lines = [f"shares = {backward}(S[{f['node']}], G[{f['node']}], {f['needs']!r})"]
        for (i, parent, shape), how in zip(f["routes"], f["kinds"]):
            lines += [f"g = shares[{i}]", f"if g.shape != {shape!r}:", f"    g = unbroadcast(g, {shape!r})",
                      added(parent, "g", how)]
        return lines
    if kind is SliceGrad:
        return emit_slice(f)
    if kind is GateSigmoids:
        return [f"V[{f['out']}] = sigmoid_blocks(V[{f['a']}], {f['lo']}, {f['hi']}, {f['width']})"] + (
            [f"S[{f['out']}] = (V[{f['out']}],)"] if f["keep_saved"] else [])
    if kind is StackGrad:
        lines = [f"g = G[{f['node']}]"]
        for (row, parent), how in zip(f["rows"], f["kinds"]):
            lines.append(added(parent, f"g[{':, ' * int(f['axis'])}{row}]", how))
        return lines
    if kind is GateDerivatives:  # the loop's GateGrads of the same step read d_gates (Loop.source)
        return [f"gates, = S[{f['node']}]", "d_gates = gates * (1 - gates)", f"S[{f['node']}] = (d_gates,)"]
    if kind is GateGrad:
        return [added(f["parent"], f"G[{f['node']}] * S[{f['block']}][0][{f['j']}]", f["kinds"][0])]
    if kind is SigmoidView:
        return [f"V[{f['out']}] = V[{f['block']}][{f['j']}]"] + (
            [f"S[{f['out']}] = (V[{f['out']}],)"] if f["keep_saved"] else [])
    if kind is LeafGrad:
        return [f"if L[{f['slot']}].grad is None:",
                f"    L[{f['slot']}].grad = np.array(G[{f['slot']}], dtype={f['dtype']!r})",
                "else:", f"    L[{f['slot']}].grad += G[{f['slot']}]"]
    released = [f"{kind}[{s}]" for kind, slots in zip("VSG", (f["values"], f["saved"], f["grads"]))
                for s in slots]
    return [" = ".join(released + ["None"])] if released else []


def added(parent, share, how):
    """The line that adds ``share`` into ``G[parent]`` the way ``tape.plan_accumulation`` chose
    (``how``: "set", "new" or "inplace"), as ``replay.ADD`` does it in a closure."""
    return {"set": f"G[{parent}] = {share}", "new": f"G[{parent}] = G[{parent}] + {share}",
            "inplace": f"G[{parent}] += {share}"}[how]


def emit_into(f, instruction, name):
    """A :class:`~.rewrites.ForwardInto`: its ufunc writing into its row of the stacked value."""
    place, row, axis = f["place"]
    ufunc = name(INTO[instruction.step.fn], f"np_{INTO[instruction.step.fn].__name__}_")
    ins = [f"V[{i}]" for i in f["ins"]]
    lines = [f"V[{f['out']}] = {ufunc}({', '.join(ins)}, out=V[{place}][{':, ' * int(axis)}{row}])"]
    if f["keep_saved"]:
        saved = {"nothing": "()", "output": f"(V[{f['out']}],)"}.get(SAVES[instruction.step.fn])
        lines.append(f"S[{f['out']}] = " + (saved or f"({', '.join(ins)})"))
    return lines


def subscript(index):
    """An index as it is written between brackets: (slice(None), slice(0, 3)) -> ":, 0:3"."""
    parts = index if type(index) is tuple else (index,)

    def one(part):
        if type(part) is slice:
            text = ":".join("" if end is None else str(end) for end in (part.start, part.stop))
            return text if part.step is None else f"{text}:{part.step}"
        return "..." if part is Ellipsis else repr(part)

    if not parts:
        return "()"
    return ", ".join(map(one, parts)) + ("," if type(index) is tuple and len(parts) == 1 else "")


def emit_slice(f):
    """A slice's gradient into its parent's, as ``replay._slice_grad`` adds it."""
    node, parent, kind = f["node"], f["parent"], f["kind"]
    lines = [f"g = G[{node}]"]
    if f["assign"]:
        if kind == "empty" and f["host"] is None:
            lines.append(f"G[{parent}] = np.empty({f['shape']!r}, np.result_type({f['dtype']!r}, g.dtype))")
        elif kind == "empty":
            host, shape, dtype, index = f["host"]
            lines += [f"if G[{host}] is None:",
                      f"    G[{host}] = np.empty({shape!r}, np.result_type({dtype!r}, g.dtype))",
                      f"G[{parent}] = G[{host}][{subscript(index)}]"]
        return lines + [f"G[{parent}][{subscript(f['index'])}] = g"]
    if kind == "owned":
        lines.append(f"buffer = G[{parent}]")
    elif kind == "copy":
        lines.append(f"buffer = G[{parent}] = np.array(G[{parent}], "
                     f"dtype=np.result_type(G[{parent}], g.dtype))")
    else:
        lines.append(f"buffer = G[{parent}] = np.zeros({f['shape']!r}, "
                     f"np.result_type({f['dtype']!r}, g.dtype))")
    return lines + [f"add_into(buffer, S[{node}], g)"]
