"""Token-by-token decoding over a static KV cache, replayed as a CUDA graph on GPUs.

Decoding Janus-Pro is launch-bound: one 576-token image is ~600 decoder calls
of a few hundred small kernels each, and Python launches them slower than the
GPU runs them. Capturing one decoder call as a CUDA graph and replaying it
removes that overhead, which needs fixed shapes and fixed addresses: a
`StaticCache` of `max_len` positions, input buffers that are refilled in
place, and an explicit 4-D attention mask (left padding plus the positions
written so far), so transformers never has to inspect the mask on the host.
The prompt itself runs eagerly once (its length varies) and is copied in.
The same class runs eagerly on the CPU, with identical math.

With `compile=True` the decoder call is first compiled by TorchInductor (fixed
shapes, so once per decoder size), which fuses the few hundred small kernels
of a call (norms, rotary embeddings, activations, residual adds) into a few
dozen; the graph then replays the fused kernels. That costs a compile of
tens of seconds per decoder size, worth it for benchmarks and long runs.
"""

from __future__ import annotations

import functools
import inspect

import torch
from transformers import StaticCache


@functools.lru_cache(maxsize=None)
def cache_name(model_class: type) -> str:
    """The keyword under which the decoder's forward takes its KV cache, and the output field that returns
    it: transformers 5.24 renamed `past_key_values` to `cache`; 5.20.2, the last release that installs on
    Python 3.10, has the old name."""
    return "cache" if "cache" in inspect.signature(model_class.forward).parameters else "past_key_values"


def bucket(length: int, step: int = 128) -> int:
    """Round cache lengths up so that calls with slightly different prompts share one graph."""
    return -(-length // step) * step


class StaticDecoder:
    """Load `rows` prompts' KV, then advance all of them one token per `step`."""

    def __init__(self, lm, rows: int, max_len: int, use_graph: bool, compile: bool = False):
        self.lm, self.rows, self.max_len = lm, rows, max_len
        dev, dt = lm.device, lm.dtype
        self.cache = StaticCache(config=lm.config, max_cache_len=max_len)
        self.written = torch.zeros(rows, max_len, dtype=torch.bool, device=dev)  # columns a query may attend to
        self.pads = torch.zeros(rows, dtype=torch.long, device=dev)  # left padding per row
        self.index = torch.zeros((), dtype=torch.long, device=dev)  # cache column the next step writes
        self.embeds = torch.zeros(rows, 1, lm.config.hidden_size, dtype=dt, device=dev)
        self.hidden = torch.zeros(rows, lm.config.hidden_size, dtype=dt, device=dev)
        self.neg = torch.finfo(dt).min  # not -inf: a fully padded query row must not turn into NaN
        self.length = 0
        self.use_graph = use_graph
        self.graph: torch.cuda.CUDAGraph | None = None
        self._call = self._forward_one
        if compile:
            # one compiled entry per decoder (rows, length); the default limit of 8 would silently fall back
            torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 64)
            self._call = torch.compile(self._forward_one, dynamic=False, fullgraph=True)

    def _mask(self, keep: torch.Tensor) -> torch.Tensor:
        zero = torch.zeros((), dtype=self.lm.dtype, device=keep.device)
        return torch.where(keep, zero, self.neg)[:, None]

    def load(self, prompt_cache, rows: torch.Tensor, mask: torch.Tensor) -> None:
        """Start from a prompt already run once: row i takes row `rows[i]` of `prompt_cache`
        (a DynamicCache over L positions); `mask` (rows, L) is the rows' padding mask."""
        length = mask.shape[1]
        if mask.shape[0] != self.rows or length >= self.max_len:
            raise ValueError(f"decoder holds {self.rows} rows of {self.max_len} positions, got {tuple(mask.shape)}")
        for static, layer in zip(self.cache.layers, prompt_cache.layers):
            keys, values = layer.keys[rows], layer.values[rows]
            if not static.is_initialized:
                static.lazy_initialization(keys, values)
            static.keys[:, :, :length].copy_(keys)
            static.values[:, :, :length].copy_(values)
            static.cumulative_length.fill_(length)
        self.written.zero_()
        self.written[:, :length] = mask.bool()
        self.pads.copy_((mask == 0).sum(-1))
        self.length = length

    def _forward_one(self) -> None:
        self.written.index_fill_(1, self.index.view(1), True)
        positions = (self.index - self.pads)[:, None]
        out = self.lm(
            inputs_embeds=self.embeds,
            attention_mask=self._mask(self.written)[:, :, None],
            position_ids=positions,
            use_cache=True,
            **{cache_name(type(self.lm)): self.cache},
        )
        self.hidden.copy_(out.last_hidden_state[:, -1])

    def _capture(self) -> None:
        """Record one decoder call; the warm-up calls' writes are undone before real use."""
        length, cumulative = self.length, [layer.cumulative_length.clone() for layer in self.cache.layers]
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(2):  # warm-up outside the graph: lazy inits, cuBLAS workspaces, compilation
                self._call()
        torch.cuda.current_stream().wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self._call()
        for layer, value in zip(self.cache.layers, cumulative):
            layer.cumulative_length.copy_(value)
        self.written[:, length:] = False

    def step(self, embeds: torch.Tensor) -> torch.Tensor:
        """Append one token (embeddings (rows, 1, d)) to every row; returns the last hidden states (rows, d).

        The returned tensor is overwritten by the next step: clone what you keep.
        """
        if self.length >= self.max_len:
            raise ValueError(f"decoder is full ({self.max_len} positions)")
        self.embeds.copy_(embeds)
        self.index.fill_(self.length)
        if self.use_graph:
            if self.graph is None:
                self._capture()
            self.graph.replay()
        else:
            self._call()
        self.length += 1
        return self.hidden
