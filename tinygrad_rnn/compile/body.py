"""A rolled loop's body as it is run and read: the slots that live within one step become variables.

``roll.Loop.source`` writes each instruction of one step over the call's
slots, ``V[13 + 4 * k]``: every read and write computes its slot and looks it
up. Most values of a step are made and released within that step (a gate's
pre-activation, a share of a gradient), so they need no slot at all:

- a slot that an unindented line of the body makes (``V[E] = ...``, without
  reading it) before any other mention of it, and that the body releases
  (``V[E] = None``), lives within one run of the body: it becomes a local
  variable, named as the value is where it has the article's name (``r``,
  ``c_tilde``), else after its kind and its slot in the first run (``v13``,
  ``g43``, ``s14``), and its release goes;
- a slot that does not move with ``k`` and that no line of the body binds (a
  weight, a bias) is read once before the loop, and so is its transpose
  where the body reads one.

The lines keep their order and their arithmetic, so the loop's results are
the same, bit for bit. Python reads a local in one instruction and a slot
``V[13 + 4 * k]`` in six.
"""
import re

SLOT = re.compile(r"\b[VGS]\[[^\[\]]+\]")
MOVING = re.compile(r"\bk\b")
WHOLE = re.compile(r"^(?:(?:[VGS]\[[^\[\]]+\]|[A-Za-z_]\w*)(?:, |,$|$))+$")  # slots, variables


def with_locals(body):
    """(the lines to run before the loop, the body's lines) for ``body``: the lines of one run of
    a loop over ``k``, unindented but for the lines inside an ``if`` or ``else``."""
    statements = [parse(line) for line in body]
    # the body's own variables; the names it reads from roll.Loop.source's scope start otherwise
    taken = {t for _, bound, _ in statements for part in bound for t in part if t[1:2] != "["}
    names = {slot: name or fresh(slot_name(slot), taken) for slot, name in step_locals(statements).items()}
    before = []
    for slot in invariant(statements):
        names[slot] = fresh(slot_name(slot), taken)
        before.append(f"{names[slot]} = {slot}")
    lines = [line for line in map(rewritten, body, statements, [names] * len(body)) if line is not None]
    for read in before[:]:
        name = read.split(" = ")[0]
        if any(f"{name}.T" in line for line in lines):
            name_t = fresh(f"{name}_T", taken)
            before.append(f"{name_t} = {name}.T")
            transposed = re.compile(rf"\b{name}\.T\b")
            lines = [transposed.sub(name_t, line) for line in lines]
    return before, lines


def parse(line):
    """(whether ``line`` sits inside an ``if``, the parts left of each " = " that it binds, each a
    tuple of targets, the slots it reads); an augmented ``X += v`` binds X and reads it."""
    inside, text = line.startswith(" "), line.strip()
    if " += " in text:
        target, value = text.split(" += ", 1)
        return inside, [(target,)], SLOT.findall(f"{target} {value}")
    *targets, value = text.split(" = ")  # the generated lines hold " = " nowhere else
    if any(not WHOLE.match(part) for part in targets):  # into a slot's rows (G[E][:, 0:8] = g)
        return inside, [], SLOT.findall(text)
    bound = [tuple(t.strip() for t in part.split(",") if t.strip()) for part in targets]
    return inside, bound, None if value == "None" else SLOT.findall(value)


def step_locals(statements):
    """{slot: the name the body already gives its value, or None} for each slot made and released
    within one run of the body."""
    made, released, mentioned = {}, set(), set()
    for inside, bound, reads in statements:
        slots = [t for part in bound for t in part if t[1:2] == "["]
        if reads is None:  # a release
            released.update(slot for slot in slots if slot in made)
        else:
            if not inside:
                for slot in slots:
                    if slot not in mentioned and slot not in reads:
                        named = len(bound) == 2 and bound[0] == (slot,) and bound[1][0][1:2] != "["
                        made[slot] = bound[1][0] if named else None
            mentioned.update(reads)
        mentioned.update(slots)
    return {slot: name for slot, name in made.items() if slot in released}


def invariant(statements):
    """The slots that do not move with ``k`` and that no line of the body binds, in order."""
    bound = {t for _, parts, _ in statements for part in parts for t in part}
    found = {}
    for _, _, reads in statements:
        for slot in reads or ():
            if slot not in bound and slot not in found and not MOVING.search(slot):
                found[slot] = True
    return list(found)


def slot_name(slot):
    """``V[13 + 4 * k]`` -> ``v13``: the slot's kind and its number in the first run."""
    return slot[0].lower() + (re.match(r"\d*", slot[2:]).group(0) or "0")


def fresh(name, taken):
    """``name``, or it with underscores after it, whichever the body does not use yet."""
    while name in taken:
        name += "_"
    taken.add(name)
    return name


def rewritten(line, statement, names):
    """``line`` with each slot of ``names`` written as its name; the release of a named value goes,
    and so does a line that released only such values (None)."""
    inside, bound, reads = statement
    if reads is None:
        kept = [t for part in bound for t in part if t not in names]
        return f"{' = '.join(kept)} = None" if kept else None
    if len(bound) == 2 and bound[0][0] in names and names[bound[0][0]] == bound[1][0]:
        line = line.replace(f"{bound[0][0]} = ", "", 1)  # "V[E] = r = ...": r is its name
    return SLOT.sub(lambda match: names.get(match.group(0), match.group(0)), line)
