"""Layers, dropout, recurrent cells and sequence layers, losses and gradient clipping."""
from .clip import clip_grad_norm_, clip_grad_value_
from .dropout import Dropout, dropout
from .layers import Embedding, Linear
from .losses import cross_entropy, mse_loss
from .module import Module, Parameter

__all__ = ["Module", "Parameter", "Linear", "Embedding", "Dropout", "dropout", "cross_entropy",
           "mse_loss", "clip_grad_norm_", "clip_grad_value_"]
from .cells import GRUCell, LSTMCell, RNNCell
from .recurrent import GRU, LSTM, RNN, unroll
