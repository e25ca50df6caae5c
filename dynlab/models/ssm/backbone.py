r"""A stack of SSM blocks with pre-norm residual connections.

.. math::  x \leftarrow x + \mathrm{block}_i(\mathrm{norm}_i(x)),\ i = 1 \dots n_{\rm layers};
           \qquad y = \mathrm{norm}_{\rm final}(x)

Blocks ("s4d": :class:`~dynlab.models.ssm.s4d.S4DBlock`, "mamba":
:class:`~dynlab.models.ssm.mamba.MambaBlock`) and norms ("rms", "layer") are chosen by
name. Every block has ``forward(x, state) -> (y, state)``, ``step(x_t, state)`` and
``default_state(batch, device, dtype)``; the backbone's state is the tuple of its
blocks' states, so its parallel and recurrent modes agree whenever the blocks' do.
"""
from __future__ import annotations

from numbers import Integral
from typing import Callable

import torch
from torch import Tensor, nn

__all__ = ["SSMBackbone", "BLOCKS", "NORMS"]


def _s4d_block() -> type[nn.Module]:
    from .s4d import S4DBlock  # lazy: a backbone of one kind does not import the other
    return S4DBlock


def _mamba_block() -> type[nn.Module]:
    from .mamba import MambaBlock
    return MambaBlock


BLOCKS: dict[str, Callable[[], type[nn.Module]]] = {"s4d": _s4d_block, "mamba": _mamba_block}
NORMS: dict[str, type[nn.Module]] = {"rms": nn.RMSNorm, "layer": nn.LayerNorm}


class SSMBackbone(nn.Module):
    """Pre-norm residual stack of SSM blocks. Input and output shape (B, L, d_model).

    Args:
        d_model: width. n_layers: number of blocks (>= 1).
        block: "s4d" or "mamba". norm: "rms" or "layer". eps: of the norms.
        dtype, device: of all parameters (also passed to the blocks).
        **block_kwargs: passed to every block, e.g. ``d_state``.

    The state is a tuple with one entry per block (that block's state).
    """

    def __init__(self, d_model: int, n_layers: int, block: str = "mamba", norm: str = "rms",
                 eps: float = 1e-5, dtype: torch.dtype | None = None, device=None, **block_kwargs):
        super().__init__()
        for name, value in (("d_model", d_model), ("n_layers", n_layers)):
            if isinstance(value, bool) or not isinstance(value, Integral) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if block not in BLOCKS:
            raise ValueError(f"unknown block {block!r}; expected one of {sorted(BLOCKS)}")
        if norm not in NORMS:
            raise ValueError(f"unknown norm {norm!r}; expected one of {sorted(NORMS)}")
        self.d_model, self.n_layers = int(d_model), int(n_layers)
        self.block_name, self.norm_name = block, norm
        block_cls, norm_cls = BLOCKS[block](), NORMS[norm]
        factory = dict(dtype=dtype, device=device)
        self.norms = nn.ModuleList(norm_cls(self.d_model, eps=eps, **factory) for _ in range(self.n_layers))
        self.blocks = nn.ModuleList(block_cls(self.d_model, **factory, **block_kwargs)
                                    for _ in range(self.n_layers))
        self.final_norm = norm_cls(self.d_model, eps=eps, **factory)

    def default_state(self, batch: int, device=None, dtype=None) -> tuple:
        """One default state per block."""
        return tuple(block.default_state(batch, device=device, dtype=dtype) for block in self.blocks)

    def _check(self, x: Tensor, dims: int, name: str, layout: str, state) -> None:
        if not isinstance(x, Tensor) or x.dim() != dims or x.shape[-1] != self.d_model:
            shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"{name} must be {layout} with d_model = {self.d_model}, got {shape}")
        if state is not None and (not isinstance(state, (tuple, list)) or len(state) != self.n_layers):
            got = len(state) if isinstance(state, (tuple, list)) else type(state).__name__
            raise ValueError(f"state must be a sequence of {self.n_layers} block states, got {got}")

    def forward(self, x: Tensor, state: tuple | None = None) -> tuple[Tensor, tuple]:
        """x: (B, L, d_model) -> (y (B, L, d_model), state after the last step)."""
        self._check(x, 3, "x", "(B, L, d_model)", state)
        new_state = []
        for i, (norm, block) in enumerate(zip(self.norms, self.blocks)):
            y, block_state = block(norm(x), None if state is None else state[i])
            x = x + y
            new_state.append(block_state)
        return self.final_norm(x), tuple(new_state)

    def step(self, x_t: Tensor, state: tuple) -> tuple[Tensor, tuple]:
        """Recurrent mode. x_t: (B, d_model) -> (y_t (B, d_model), state)."""
        self._check(x_t, 2, "x_t", "(B, d_model)", state)
        if state is None:
            raise ValueError("step needs a state; use default_state(batch)")
        new_state = []
        for norm, block, block_state in zip(self.norms, self.blocks, state):
            y, block_state = block.step(norm(x_t), block_state)
            x_t = x_t + y
            new_state.append(block_state)
        return self.final_norm(x_t), tuple(new_state)

    def extra_repr(self) -> str:
        return f"d_model={self.d_model}, n_layers={self.n_layers}, block={self.block_name!r}, norm={self.norm_name!r}"
