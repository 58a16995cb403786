"""The states' lanes in the unrolled picture: the LSTM's c, the article's conveyor
belt, as one straight line along the top of every step, h below it (the article:
"Recurrent Neural Networks (RNN)" by Gayathri Siva, Medium, 26 May 2021).

:class:`~tinygrad_rnn.viz.graph.Graph` puts each state's path from step to
step on a lane ("lstm/l0:c", "lstm/l0:h"). A sequence with more than one
lane has upper lanes (all but the last made in a step: the LSTM's c) and a
bottom lane (h). dot places the nodes of one rank in an order it chooses to
cut edge crossings, and three things make it keep the upper lanes on top:

- in each step box, each upper lane's nodes sit in a borderless box of their
  own, written before a borderless box holding the rest of the step, so
  that dot starts with the upper lane above;
- an edge from one step box into the next would pass the ranks in between
  outside both boxes, above or below them as the crossings fall. So each
  step has, for each upper lane, an entry point in the rank where the bottom
  lane enters the step and an exit point in the rank where it leaves, both
  inside the lane's box; the state's edge is drawn in pieces through them,
  and the piece from step t's exit to step t+1's entry spans one rank (dot
  leaves a gap of 2 points where two pieces meet: a dot of the line's colour
  and width fills it). In a
  step that no state enters (or leaves), an invisible edge ties the point to
  the lane's first (or last) node;
- crossing minimisation is cut short (``mclimit``, :data:`MCLIMIT`): its
  later passes, chasing a crossing or two among the weights' edges, would
  turn a whole step upside down.
"""

from .graph import sequence_of

MCLIMIT = "0.2"


def lane_order(graph):
    """The states (lanes) in the order their tensors are made in a step: for the LSTM
    c before h, so that c's line is drawn on top."""
    first = {}
    for edge in graph.edges:
        if edge.kind == "recurrent" and edge.source.lane is not None:
            lane = edge.source.lane
            first[lane] = min(first.get(lane, edge.tensor._number), edge.tensor._number)
    return sorted(first, key=first.get)


def _created(node):
    return node.tensor._number


class Lanes:
    """Where the upper lanes' points go and which edges pass through them (``detail="ops"``),
    in a picture :class:`~tinygrad_rnn.viz.model.Model` (or its graph: both have ``detail``,
    ``nodes`` with their lanes and ``edges``).

    ``upper``: the lanes held on top. ``points``: {step: [(point key, lane)]}.
    ``ranks``: lists of keys that share a rank (a step's points and the bottom
    lane's node they sit above). ``ties``: invisible (tail, head) edges.
    ``through(edge)``: the points an edge is drawn through, in order;
    ``carries``: {point key: the edge drawn through it}.
    """

    def __init__(self, graph):
        self.upper, self.points, self.ranks, self.ties = set(), {}, [], []
        self._keys, self._through, self.carries = {}, {}, {}
        if graph.detail != "ops":
            return
        ends, sequence = {}, {}
        for node in graph.nodes.values():
            if node.lane is not None and node.step is not None:
                sequence[node.lane] = sequence_of(node.step)
                first, last = ends.get((node.step, node.lane), (node, node))
                ends[node.step, node.lane] = (min(first, node, key=_created), max(last, node, key=_created))
        in_sequence = {}
        for lane in lane_order(graph):
            if lane in sequence:
                in_sequence.setdefault(sequence[lane], []).append(lane)
        self._bottom = {lane: lanes[-1] for lanes in in_sequence.values() if len(lanes) > 1
                        for lane in lanes[:-1]}
        self.upper = set(self._bottom)
        self._ends = ends
        for edge in graph.edges:
            lane, source, target = edge.source.lane, edge.source, edge.target
            if lane not in self._bottom or target.lane != lane or target.step in (None, source.step):
                continue
            through = [self._point(source.step, 1, lane), self._point(target.step, 0, lane)]
            self._through[id(edge)] = [key for key in through if key is not None]
            self.carries.update((key, edge) for key in self._through[id(edge)])
        for (step, lane), (first, last) in ends.items():
            for side, node in ((0, first), (1, last)):
                if lane in self._bottom and (step, side, lane) not in self._keys:
                    point = self._point(step, side, lane)
                    if point is not None:
                        self.ties.append((point, node.key) if side == 0 else (node.key, point))
        self._rank()

    def _point(self, step, side, lane):
        """The key of ``lane``'s point where the step's bottom lane enters (side 0) or
        leaves (1); None outside steps or where the bottom lane has no node."""
        if step is None or (step, self._bottom[lane]) not in self._ends:
            return None
        key = (step, side, lane)
        if key not in self._keys:
            self._keys[key] = f"a{len(self._keys)}"
            self.points.setdefault(step, []).append((self._keys[key], lane))
        return self._keys[key]

    def _rank(self):
        together = {}
        for (step, side, lane), key in self._keys.items():
            bottom = self._ends[step, self._bottom[lane]][side]
            together.setdefault(bottom.key, []).append(key)
        self.ranks = [keys + [bottom] for bottom, keys in together.items()]

    def through(self, edge):
        return self._through.get(id(edge), ())
