"""Layers, recurrent cells and sequence layers, losses and gradient clipping."""
from .module import Module, Parameter

__all__ = ["Module", "Parameter"]
