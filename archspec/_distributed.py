"""Sharding a compiled spec with FSDP2 by the spec's own blocks: :func:`shard`.

``torch.distributed.fsdp.fully_shard`` shards the parameters of the module it is applied
to and gathers them in that module's pre-forward hook; applied to each block of a network
and then to the root, each block's parameters are gathered only while it runs. A compiled
spec's containers are modules with their own forward (see :mod:`._codegen`), so the
blocks a spec names (``dense_block``, ``inception``, ``encoder_block``) are the natural
units: ``shard(model, ["encoder_block"])``.

A sharded model saves and loads with ``torch.distributed.checkpoint`` under the spec's
keys, so a checkpoint written by any number of ranks loads into a plain
``compile_spec`` model in one process (``dcp.load(model.state_dict(), checkpoint_id=...)``,
then ``model.load_state_dict``).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from typing import Any

from torch import nn

from ._errors import did_you_mean
from ._module import Block

__all__ = ["shard", "blocks_named"]


def blocks_named(model: nn.Module, patterns: str | Sequence[str]) -> list[tuple[str, Block]]:
    """The containers of ``model`` that ``patterns`` name (a block's name, or a container
    path with shell wildcards), in module order; a pattern that names none is an error."""
    patterns = [patterns] if isinstance(patterns, str) else list(patterns)
    containers = [(path, m) for path, m in model.named_modules() if isinstance(m, Block)]
    found: dict[str, Block] = {}
    for pattern in patterns:
        hits = [(path, m) for path, m in containers
                if m._archspec_block == pattern or fnmatch.fnmatchcase(path, pattern)]
        if not hits:
            names = sorted({m._archspec_block for _, m in containers if m._archspec_block})
            hint = did_you_mean(pattern, names + [path for path, _ in containers])
            raise ValueError(f"{pattern!r} names no block or container of this model (blocks: {', '.join(names) or 'none'}; "
                             "or a container path, wildcards allowed)" + (f"; {hint}" if hint else ""))
        found.update(hits)
    return list(found.items())


def shard(model: nn.Module, blocks: str | Sequence[str], **fsdp: Any) -> nn.Module:
    """Apply FSDP2's ``fully_shard`` to every container of ``model`` that ``blocks`` names
    (block names or container paths, as :func:`blocks_named`), innermost first, then to
    ``model`` itself; ``fsdp`` goes to each call (``mesh=``, ``reshard_after_forward=``,
    ``mp_policy=``...). Returns ``model`` (now an ``FSDPModule``). Needs an initialised
    process group; create the optimizer afterwards, from the sharded parameters.

    >>> model = shard(compile_spec("densenet121"), ["dense_block"])   # doctest: +SKIP
    """
    from torch.distributed.fsdp import fully_shard

    chosen = blocks_named(model, blocks)
    inlined = [path for path, block in chosen if block.__dict__.get("_archspec_eval_inlined")]
    if inlined:
        raise ValueError(f"cannot shard {', '.join(inlined)}: in eval the model runs its nodes itself, not as one call "
                         "(it reads a value only training computes), so FSDP2 would not gather its parameters there; "
                         "shard the containers inside it, or its parent")
    for path, block in sorted(chosen, key=lambda item: -item[0].count(".")):  # a block inside another first
        fully_shard(block, **fsdp)
    fully_shard(model, **fsdp)
    return model
