"""Pass: the recurrent bias b_hh added once, into the input projection, rather than at every step.

An RNN or LSTM layer projects its whole input sequence at once,
x_proj = x W_ih^T + b_ih (T, B, G H), and adds to each row of it the step's
h(t-1) W_hh^T + b_hh: T additions of b_hh, each a numpy call over (B, G H)
that broadcasts a row (7 us a step at B = 32, H = 128). The hand-written
step adds b_ih + b_hh into the projection once. :func:`fold_hidden_bias`
does the same where the tape proves it safe:

- the projection is a ``linear`` with a bias whose every reader is a cut of
  its leading axes (a row x_proj[t], or x_proj[:, t] for batch_first), each
  read only by one ``add`` of the same shape, whose other input is a
  ``linear`` h W^T + b read by nothing else, with the same bias b in every
  step;
- then one ``add`` b_ih + b makes the projection's bias, and the steps'
  linears lose theirs.

The backward does not change: a linear's backward sends g to its bias
whatever it added in forward, so the gradients of b_ih and b_hh are what
they were. The sums are those of the engine in another order,
(x W_ih^T + (b_ih + b_hh)) + h W_hh^T rather than
(x W_ih^T + b_ih) + (h W_hh^T + b_hh): equal to 1e-15 relative, not bit for
bit. A GRU's step cuts its row into gates first (its b_hn sits inside
r * (h W_hn^T + b_hn)), so its tape is left as it is.
"""
import dataclasses

from .. import ops
from .tape import Forward, value_readers


def fold_hidden_bias(tape):
    """The pass (see the module docstring). Run it before ``free_after_last_use``, which then
    releases the new bias after the projection and drops nothing else."""
    made = {step.out: step for step in tape.forward if type(step) is Forward}
    readers = value_readers(tape)
    cuts = {}  # projection slot -> [cut Forwards]
    for step in tape.forward:
        if type(step) is Forward and step.fn is ops.GetItem and step.ins[0] in made:
            cuts.setdefault(step.ins[0], []).append(step)
    adds = {}  # cut slot -> the Forward add that reads it
    for step in tape.forward:
        if type(step) is Forward and step.fn is ops.Add:
            for slot in step.ins:
                adds[slot] = step
    leaves = {leaf[0]: (leaf[2], leaf[3]) for leaf in tape.leaves}  # slot -> (shape, dtype)
    forward, slots, changed = list(tape.forward), tape.slots, {}
    for projection, its_cuts in cuts.items():
        steps = folded_steps(made[projection], its_cuts, adds, made, readers, leaves)
        if steps is None:
            continue
        position = forward.index(made[projection])
        bias_ih, bias_hh = made[projection].ins[2], steps[0].ins[2]
        joined = Forward(ops.Add, (bias_ih, bias_hh), {}, slots, False, shape=leaves[bias_ih][0],
                         dtype=made[projection].dtype, scope=made[projection].scope)
        forward.insert(position, joined)
        changed[projection] = dataclasses.replace(made[projection], ins=made[projection].ins[:2] + (slots,))
        changed.update((step.out, dataclasses.replace(step, ins=step.ins[:2])) for step in steps)
        slots += 1
    if not changed:
        return tape
    forward = [changed.get(step.out, step) if type(step) is Forward else step for step in forward]
    return dataclasses.replace(tape, forward=forward, slots=slots)


def folded_steps(projection, cuts, adds, made, readers, leaves):
    """The steps' linears h W^T + b whose bias b can move into ``projection``, or None when one
    of the conditions of the module docstring fails."""
    if projection.fn is not ops.Linear or len(projection.ins) != 3 or len(cuts) != readers[projection.out]:
        return None
    width, steps = projection.shape[-1], []
    for cut in cuts:
        index = cut.params.get("index")
        parts = index if type(index) is tuple else (index,)
        add = adds.get(cut.out)
        leading = len(parts) < len(projection.shape) and all(type(p) in (int, slice) for p in parts)
        if cut.bound or not leading or add is None or readers[cut.out] != 1:
            return None
        other = made.get(add.ins[1] if add.ins[0] == cut.out else add.ins[0])
        if (other is None or other.fn is not ops.Linear or len(other.ins) != 3 or readers[other.out] != 1
                or not add.shape == cut.shape == other.shape or len(set(add.ins)) != 2):
            return None
        steps.append(other)
    biases = {projection.ins[2]} | {step.ins[2] for step in steps}
    if len(biases) != 2 or len({step.ins[2] for step in steps}) != 1:
        return None
    dtypes = {projection.dtype} | {step.dtype for step in steps}
    fits = all(leaves.get(bias, (None, None))[0] == (width,) for bias in biases) and len(dtypes) == 1
    return steps if fits and all(leaves[bias][1] in dtypes for bias in biases) else None
