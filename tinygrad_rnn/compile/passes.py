"""Passes over a traced tape, each a function ``tape -> tape`` checked against the plain replay."""

DEFAULT_PASSES = ()
