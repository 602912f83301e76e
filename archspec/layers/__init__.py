"""The few ``torch.nn`` modules archspec's ops need that torch itself lacks, by kind:

- :mod:`.common`: :class:`LayerNorm2d` (layer normalisation over the channels of an
  N x C x H x W batch at every position, ConvNeXt's, with ``torch.nn.LayerNorm``'s weights
  and keys), :class:`FrozenBatchNorm2d` (batch normalisation with fixed statistics,
  torchvision's, its four tensors buffers), :class:`StochasticDepth` (drops a residual
  branch per sample, or per batch, in training), and the checks of whether ``torch.fx`` or
  ``torch.compile`` traces the code now;
- :mod:`.attention`: :class:`SelfAttention` (``torch.nn.MultiheadAttention``, its keys and
  initialisation, attending a batch of token sequences to itself, called with one tensor),
  :class:`WindowAttention` and :class:`PatchMerge` (Swin's shifted-window attention, V1 and
  V2, and patch merging, on channels-last N x H x W x C batches);
- :mod:`.fused`: :class:`FusedConv2d`, a model optimised for inference's ``nn.Conv2d``,
  with the activation after it fused and, on the CPU, its weights packed once for oneDNN.

They are ordinary modules: picklable, TorchScript-able and traceable by ``torch.fx``.
Everything is imported from here (``from archspec.layers import FusedConv2d``).
"""

from .attention import (PatchMerge, SelfAttention, WindowAttention, patch_merge, relative_coords_table,
                        relative_position_index, self_attention, window_attention)
from .common import FrozenBatchNorm2d, LayerNorm2d, StochasticDepth, compiling, symbolic_tracing
from .fused import _ONEDNN, POSTOPS, FusedConv2d

__all__ = ["FusedConv2d", "POSTOPS", "LayerNorm2d", "FrozenBatchNorm2d", "StochasticDepth", "SelfAttention", "self_attention",
           "WindowAttention", "PatchMerge", "window_attention", "patch_merge", "relative_position_index",
           "relative_coords_table", "symbolic_tracing", "compiling", "_ONEDNN"]
