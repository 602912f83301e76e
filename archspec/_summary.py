"""Summaries of an inferred graph: the per-node table and the totals that ``archspec build``
prints. Needs no torch: everything comes from the IR after *infer*.

MACs count multiply-accumulates of convolutions and linear layers, as torchvision counts
its published figures; the totals are for the eval graph (training-only outputs, such as
auxiliary classifiers, are left out) at the input size the graph was inferred for. Weights
are counted at each tensor's dtype (batch norm's batch count and Swin's position index are
int64); activations are the peak of an eval forward, per sample, in float32
(:func:`archspec._ir.activation_peak`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import math

from ._ir import Graph, needed
from .ops import DEFAULT_DTYPE, fmt_bytes, fmt_shape

__all__ = ["Row", "Totals", "rows", "totals", "format_summary", "format_count"]


@dataclass
class Row:
    path: str
    depth: int
    name: str
    kind: str  # the op, or the block / container kind
    shape: tuple[int, ...] | None
    params: int
    macs: int
    training_only: bool
    container: bool
    unused: bool = False
    checkpoint: bool = False  # a container whose activations are recomputed in training


@dataclass
class Totals:
    params: int
    buffers: int
    eval_params: int
    macs: int
    train_macs: int
    weight_bytes: int  # parameters and buffers, each at its dtype
    by_dtype: dict[str, tuple[int, int]] = field(default_factory=dict)  # dtype -> (parameters, buffer values)


def _subtree_nodes(graph: Graph, path: str) -> list[str]:
    prefix = (path + ".", path + "#")
    return [p for p in graph.order if p.startswith(prefix)]


def rows(graph: Graph, depth: int | None = None) -> list[Row]:
    """One row per enabled node and container, in document order (``depth``: deepest level shown)."""
    eval_nodes = set(needed(graph, training=False))
    train_nodes = set(needed(graph, training=True))
    out: list[Row] = []
    enabled = set(graph.order)

    def walk(children: list[str], level: int) -> None:
        for path in children:
            if path in graph.containers:
                c = graph.containers[path]
                if not c.enabled:
                    continue
                inner = _subtree_nodes(graph, path)
                out.append(Row(path, level, c.name, c.block or c.kind, c.shape,
                               sum(graph.nodes[p].n_params for p in inner), sum(graph.nodes[p].macs for p in inner),
                               bool(inner) and not any(p in eval_nodes for p in inner) and any(p in train_nodes for p in inner),
                               True, not any(p in train_nodes for p in inner), c.checkpoint))
                if depth is None or level + 1 < depth:
                    walk(c.children, level + 1)
                continue
            if path not in enabled:
                continue
            node = graph.nodes[path]
            out.append(Row(path, level, node.name, node.op, node.shape, node.n_params, node.macs,
                           path in train_nodes and path not in eval_nodes, False, path not in train_nodes))

    walk(graph.top, 0)
    return out


def _marks(table: list[Row]) -> list[str]:
    """"(train)" for training-only rows, "(unused)" for rows no output needs, only where
    the parent row does not already say so; "(checkpointed)" for containers whose
    activations are recomputed in the backward pass."""
    marks = []
    stack: list[Row] = []
    for r in table:
        del stack[r.depth:]
        if r.unused and not any(p.unused for p in stack):
            marks.append("  (unused)")
        elif r.training_only and not any(p.training_only for p in stack):
            marks.append("  (train)")
        else:
            marks.append("")
        if r.checkpoint:
            marks[-1] += "  (checkpointed)"
        stack.append(r)
    return marks




def totals(graph: Graph) -> Totals:
    nodes = [graph.nodes[p] for p in graph.order]
    eval_nodes = [graph.nodes[p] for p in needed(graph, training=False)]
    params = sum(n.n_params for n in nodes)
    buffers = sum(n.n_buffers for n in nodes)
    by_dtype: dict[str, list[int]] = {DEFAULT_DTYPE: [0, 0]}
    for n in nodes:
        if not n.dtypes:  # every tensor float32: the node's counts say it all
            by_dtype[DEFAULT_DTYPE][0] += n.n_params
            by_dtype[DEFAULT_DTYPE][1] += n.n_buffers
            continue
        for name, shape in n.tensors.items():
            counts = by_dtype.setdefault(n.dtypes.get(name, DEFAULT_DTYPE), [0, 0])
            counts[1 if name in n.buffers else 0] += math.prod(shape)
    return Totals(
        params=params,
        buffers=buffers,
        eval_params=sum(n.n_params for n in eval_nodes),
        macs=sum(n.macs for n in eval_nodes),
        train_macs=sum(n.macs for n in nodes),
        weight_bytes=sum(n.weight_bytes for n in nodes),
        by_dtype={k: (v[0], v[1]) for k, v in by_dtype.items()},
    )


def format_count(n: int) -> str:
    """``1.498 G`` / ``52.3 M`` / ``9,536 ``: a MAC count for people (with a trailing unit space)."""
    if abs(n) >= 10**9:
        return f"{n / 1e9:.3f} G"
    if abs(n) >= 10**6:
        return f"{n / 1e6:.1f} M"
    return f"{n:,} "


def format_summary(graph: Graph, depth: int | None = None, overrides: dict[str, Any] | None = None) -> str:
    table = rows(graph, depth)
    header = ("node", "op / block", "output", "params", "MACs")
    body = []
    for r, mark in zip(table, _marks(table)):
        name = "  " * r.depth + r.name + mark
        body.append((name, r.kind, fmt_shape(r.shape), f"{r.params:,}" if r.params else "", f"{r.macs:,}" if r.macs else ""))
    widths = [max(len(header[i]), *(len(b[i]) for b in body)) if body else len(header[i]) for i in range(5)]

    def line(cells: tuple[str, ...]) -> str:
        return (f"{cells[0]:<{widths[0]}}  {cells[1]:<{widths[1]}}  {cells[2]:<{widths[2]}}  "
                f"{cells[3]:>{widths[3]}}  {cells[4]:>{widths[4]}}").rstrip()

    t = totals(graph)
    outs_eval = [o for o in graph.outputs if not o.training_only]
    outs_train = [o for o in graph.outputs if o.training_only]

    def out_text(o) -> str:
        shape = graph.input_shape if o.node == "input" else graph.nodes[o.node].shape
        return f"{o.name} {fmt_shape(shape)}"

    lines = [f"{graph.name}: {graph.description}" if graph.description else graph.name,
             f"spec {graph.source}, input {fmt_shape(graph.input_shape)}"
             # the description is the spec's text: say what this build changed of it
             + (", with " + ", ".join(f"{k}={v}" for k, v in overrides.items()) if overrides else ""),
             "",
             line(header), line(tuple("-" * w for w in widths)), *(line(b) for b in body), ""]
    lines.append(f"outputs     {', '.join(out_text(o) for o in outs_eval)}"
                 + (f"; training only: {', '.join(out_text(o) for o in outs_train)}" if outs_train else "")
                 + (" (returned as a dict by name)" if graph.returns_dict else ""))
    lines.append(f"parameters  {t.params:,}" + (f" ({t.eval_params:,} in the eval graph)" if t.eval_params != t.params else ""))
    short = f" ({format_count(t.macs)})" if t.macs >= 10**6 else ""
    lines.append(f"MACs        {t.macs:,}{short} for the eval graph at {fmt_shape(graph.input_shape)}: "
                 "conv and linear" + (f"; train graph {format_count(t.train_macs).strip()}" if t.train_macs != t.macs else ""))
    kinds = [f"{dtype}: " + " + ".join(f"{n:,} {what}" for n, what in zip(counts, ("parameters", "buffer values"))
                                       if n or dtype == DEFAULT_DTYPE)
             for dtype, counts in t.by_dtype.items() if any(counts) or dtype == DEFAULT_DTYPE]
    lines.append(f"weights     {t.weight_bytes / 1e6:.1f} MB ({'; '.join(kinds)})")
    peak = graph.activations  # infer's, at the graph's input
    if peak is not None and peak.at is not None:
        lines.append(f"activations {fmt_bytes(peak.bytes)} per sample at the eval forward's peak, at "
                     f"'{graph.nodes[peak.at].display}' (the float32 outputs held at once)")
    checked = [c for c in graph.containers.values() if c.checkpoint and c.enabled and _subtree_nodes(graph, c.path)]
    if checked:
        kinds: dict[str, int] = {}
        for c in checked:
            kinds[c.block or c.kind] = kinds.get(c.block or c.kind, 0) + 1
        lines.append(f"checkpoint  {len(checked)} container{'s' if len(checked) > 1 else ''} recompute their activations in "
                     "the backward pass (" + ", ".join(f"{k} x{n}" for k, n in kinds.items()) + ")")
    return "\n".join(lines)
