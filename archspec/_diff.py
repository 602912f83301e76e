"""What changed between two specs: nodes added, removed or changed (op, output shape,
parameters, op settings), parameter and MAC deltas, and how much of A's ``state_dict``
loads into B unchanged (what a fine-tune of the variant can start from).

Works on inferred graphs only: no weights are built. Runs of similar changes in repeated
structures (``denselayer1`` ... ``denselayer16``) are folded into one line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ._ir import INPUT, Graph
from ._summary import format_count, totals
from .ops import fmt_shape

__all__ = ["Change", "GraphDiff", "diff", "format_diff"]


@dataclass
class Change:
    sign: str  # "+" added, "-" removed, "~" changed
    path: str
    kind: str  # op or block name
    detail: str
    params_delta: int = 0
    count: int = 1


@dataclass
class GraphDiff:
    a: Graph
    b: Graph
    changes: list[Change]
    params: tuple[int, int]
    macs: tuple[int, int]
    keys: tuple[int, int]
    loadable: int
    changed_params: list[tuple[str, object, object]] = field(default_factory=list)


def _entries(g: Graph) -> dict[str, tuple[str, bool]]:
    """Every enabled user-visible path: (op or block/kind, is_container)."""
    out: dict[str, tuple[str, bool]] = {}
    live = set(g.order)

    def walk(children: list[str]) -> None:
        for p in children:
            if p in g.containers:
                c = g.containers[p]
                if c.enabled:
                    out[p] = (c.block or c.kind, True)
                    walk(c.children)
            elif p in live:
                out[p] = (g.nodes[p].op, False)

    walk(g.top)
    return out


def _exists(graph: Graph, ref: str) -> bool:
    ref = ref.split("#", 1)[0]
    return ref == INPUT or ref in graph.nodes or ref in graph.containers or ref in graph.aliases


def _reads(node) -> list[str]:
    """What a node reads as its spec says it (a sibling, a container standing for its output,
    ``input``), relative to its parent: so a block's copies read alike, and a stage that
    grows a block does not rewire the stage after it."""
    prefix = node.parent + "." if node.parent else ""
    names = []
    for ref in node.inputs:
        path = "input" if ref == INPUT else ref.split("#", 1)[0]
        names.append(path[len(prefix):] if prefix and path.startswith(prefix) else path)
    return names


def _subtree_params(g: Graph, path: str) -> int:
    if path in g.nodes and path in g.order:
        return g.nodes[path].n_params
    prefix = (path + ".", path + "#")
    return sum(g.nodes[p].n_params for p in g.order if p.startswith(prefix))


def _shape(g: Graph, path: str):
    return g.containers[path].shape if path in g.containers else g.nodes[path].shape


def _visible(shape, same_size: bool) -> str:
    """A shape as the diff shows it: without the spatial size when the inputs differ in size."""
    if shape is None:
        return "?"
    return fmt_shape(shape if same_size or len(shape) != 3 else shape[:1]) + ("" if same_size or len(shape) != 3 else " channels")


def _settings(node) -> dict:
    return node.concrete.model_dump() if node.concrete is not None else {}


def diff(a: Graph, b: Graph) -> GraphDiff:
    ea, eb = _entries(a), _entries(b)
    changes: list[Change] = []
    same_size = a.input_shape[1:] == b.input_shape[1:]

    def covered(path: str, entries: dict, other: dict) -> bool:
        """Whether an ancestor of ``path`` is itself added/removed (so it is reported)."""
        parts = path.split(".")
        return any(".".join(parts[:i]) in entries and ".".join(parts[:i]) not in other for i in range(1, len(parts)))

    for path, (kind, is_container) in ea.items():
        if path not in eb and not covered(path, ea, eb):
            n = _subtree_params(a, path)
            changes.append(Change("-", path, kind, f"{fmt_shape(_shape(a, path))}, {n:,} parameters", -n))
    for path, (kind, is_container) in eb.items():
        if path not in ea and not covered(path, eb, ea):
            n = _subtree_params(b, path)
            changes.append(Change("+", path, kind, f"{fmt_shape(_shape(b, path))}, {n:,} parameters", n))
    for path, (kind_b, is_container) in eb.items():
        if path not in ea:
            continue
        kind_a, was_container = ea[path]
        if kind_a != kind_b or was_container != is_container:
            na, nb = _subtree_params(a, path), _subtree_params(b, path)
            changes.append(Change("~", path, kind_b, f"{kind_a} -> {kind_b}", nb - na))
            continue
        if is_container:
            continue
        na_, nb_ = a.nodes[path], b.nodes[path]
        sa, sb = _settings(na_), _settings(nb_)
        settings = [f"{key} {_value(sa.get(key))} -> {_value(sb.get(key))}" for key in sa
                    if sa.get(key) != sb.get(key) and key != "inplace"]
        reads_a, reads_b = _reads(na_), _reads(nb_)
        if reads_a != reads_b:  # rewired: it reads other nodes (a node inserted before it, a from changed)
            pairs = list(zip(na_.inputs, nb_.inputs, reads_a, reads_b)) if len(reads_a) == len(reads_b) else []
            # an input that only follows the removal of the node it read is said by that removal
            changed = [(x, y) for old, _, x, y in pairs if x != y and _exists(b, old)]
            if changed or not pairs:
                reads_a, reads_b = zip(*changed) if changed else (reads_a, reads_b)
                settings.append(f"reads {', '.join(reads_a) or 'nothing'} -> {', '.join(reads_b) or 'nothing'}")
        # a node is changed by its own settings or parameters; shapes that merely follow an
        # upstream change are context, not a change of their own
        if not settings and na_.n_params == nb_.n_params:
            continue
        details = []
        ia, ib = (na_.in_shapes[0] if na_.in_shapes else None), (nb_.in_shapes[0] if nb_.in_shapes else None)
        if _visible(ia, same_size) != _visible(ib, same_size):
            details.append(f"input {_visible(ia, same_size)} -> {_visible(ib, same_size)}")
        if _visible(na_.shape, same_size) != _visible(nb_.shape, same_size):
            details.append(f"output {_visible(na_.shape, same_size)} -> {_visible(nb_.shape, same_size)}")
        details += settings
        if na_.n_params != nb_.n_params:
            details.append(f"parameters {na_.n_params:,} -> {nb_.n_params:,}")
        changes.append(Change("~", path, kind_b, "; ".join(details), nb_.n_params - na_.n_params))
    order_b = {p: i for i, p in enumerate(eb)}
    order_a = {p: i for i, p in enumerate(ea)}
    changes.sort(key=lambda c: (order_b.get(c.path, order_a.get(c.path, 0) + 0.5), c.sign))
    keys_a, keys_b = a.state_shapes(), b.state_shapes()
    loadable = sum(1 for k, s in keys_a.items() if keys_b.get(k) == s)
    ta, tb = totals(a), totals(b)
    changed_params = [(k, a.params.get(k), b.params.get(k)) for k in dict.fromkeys([*a.params, *b.params])
                      if a.params.get(k) != b.params.get(k)]
    return GraphDiff(a, b, _fold(changes), (ta.params, tb.params), (ta.macs, tb.macs), (len(keys_a), len(keys_b)), loadable,
                     changed_params)


def _value(v) -> str:
    if v is None:
        return "(none)"
    if isinstance(v, tuple) and len(v) == 2 and v[0] == v[1]:
        return str(v[0])
    if isinstance(v, tuple):
        return "[" + ", ".join(map(str, v)) + "]"
    return str(v).lower() if isinstance(v, bool) else str(v)


_NUM = re.compile(r"\d+")


def _fold(changes: list[Change]) -> list[Change]:
    """Fold changes to numbered siblings (``denselayer1`` ... ``denselayer16``) that differ
    only in one number of their path, and are consecutive in it: one line each, with a
    count. Of the numbers in a path, the one that folds into the fewest lines is used (and
    of those, the one whose folded lines leave the fewest values differing between copies).
    A folded line shows every copy's values: see :func:`_merged`."""
    groups: dict[tuple, list[Change]] = {}
    for c in changes:
        groups.setdefault((c.sign, c.kind, _NUM.sub("#", c.path), _kinds(c.detail) if c.sign == "~" else ""), []).append(c)
    index = {id(c): i for i, c in enumerate(changes)}
    folded: dict[int, Change] = {}
    for group in groups.values():
        numbers = len(_NUM.findall(group[0].path))
        options = [_runs(group, p) for p in range(numbers)] or [[[c] for c in group]]
        for run in min(options, key=lambda runs: (len(runs), sum(len({c.detail for c in run}) > 1 for run in runs))):
            folded[min(index[id(c)] for c in run)] = _folded(run)
    return [folded[i] for i in sorted(folded)]


def _runs(group: list[Change], position: int) -> list[list[Change]]:
    """``group`` split into runs of consecutive numbers at ``position`` (others equal)."""
    def numbers(c: Change) -> list[int]:
        return [int(n) for n in _NUM.findall(c.path)]

    rest = lambda c: tuple(n for i, n in enumerate(numbers(c)) if i != position)  # noqa: E731
    runs: list[list[Change]] = []
    for c in sorted(group, key=lambda c: (rest(c), numbers(c)[position])):
        last = runs[-1][-1] if runs else None
        if last is not None and rest(last) == rest(c) and numbers(c)[position] == numbers(last)[position] + 1:
            runs[-1].append(c)
        else:
            runs.append([c])
    return runs


def _kinds(detail: str) -> str:
    """What kinds of change a detail lists (``input``, ``parameters``, ...), without values."""
    return ";".join(part.split(" ", 1)[0] for part in detail.split("; "))


def _folded(run: list[Change]) -> Change:
    if len(run) == 1:
        return run[0]
    first, last = run[0], run[-1]
    return Change(first.sign, _range(first.path, last.path), first.kind, _merged([c.detail for c in run]),
                  sum(c.params_delta for c in run), len(run))


#: a value in a detail: a count (1,025,000), a shape (64x56x56), a number (0.001, 1e-05)
_VALUE = re.compile(r"(\d+(?:(?:,\d{3})+|(?:x\d+)+)?(?:\.\d+)?(?:e[-+]?\d+)?)")
_LISTED = 4  # up to this many copies, a value that differs is given for each


def _merged(details: list[str]) -> str:
    """One detail for the copies of a folded line, in copy order: a value the copies share
    is shown once; one that differs is listed for each copy (``64x56x56 / 128x28x28``), or,
    past four copies, as the first copy's and the last's (``256x56x56..736x56x56``)."""
    if len(set(details)) == 1:
        return details[0]
    parts = [_VALUE.split(d) for d in details]  # text, value, text, value, ..., text
    if len({len(p) for p in parts}) != 1 or any(p[i] != parts[0][i] for p in parts for i in range(0, len(p), 2)):
        # the details differ in their words too: each copy's, or the first and the last
        return " / ".join(details) if len(details) <= _LISTED else f"{details[0]} .. {details[-1]}"
    out = []
    for i, text in enumerate(parts[0]):
        values = [p[i] for p in parts]
        if i % 2 == 0 or len(set(values)) == 1:
            out.append(text)
        elif len(values) <= _LISTED:
            out.append(" / ".join(values))
        else:
            out.append(f"{values[0]}..{values[-1]}")
    return "".join(out)


def _range(first: str, last: str) -> str:
    """``a.layer1.conv`` and ``a.layer16.conv`` -> ``a.layer{1..16}.conv``."""
    fa, fb = first.split("."), last.split(".")
    if len(fa) != len(fb):
        return f"{first} ... {last}"
    parts = []
    for x, y in zip(fa, fb):
        if x == y:
            parts.append(x)
            continue
        mx, my = _NUM.search(x), _NUM.search(y)
        if mx and my and x[:mx.start()] == y[:my.start()] and x[mx.end():] == y[my.end():]:
            parts.append(f"{x[:mx.start()]}{{{mx.group()}..{my.group()}}}{x[mx.end():]}")
        else:
            parts.append(f"{{{x}..{y}}}")
    return ".".join(parts)


def _outputs(g: Graph) -> str:
    """The outputs as the diff shows them: their names (training-only ones marked) and, for
    ``returns: dict``, that they come as a dict."""
    names = ", ".join(o.name + (" (training only)" if o.training_only else "") for o in g.outputs)
    return names + (" as a dict" if g.returns_dict else "")


def format_diff(d: GraphDiff) -> str:
    a, b = d.a, d.b
    lines = [f"{a.name} ({a.source}) -> {b.name} ({b.source})", ""]
    if d.changed_params:
        lines.append("params      " + "; ".join(f"{k} {_value(x)} -> {_value(y)}" for k, x, y in d.changed_params))
    if a.input_shape != b.input_shape:
        lines.append(f"input       {fmt_shape(a.input_shape)} -> {fmt_shape(b.input_shape)}"
                     + ("" if a.input_shape[1:] == b.input_shape[1:] else
                        " (spatial sizes follow the input: below, shapes show channels only)"))
    if _outputs(a) != _outputs(b):
        lines.append(f"outputs     {_outputs(a)} -> {_outputs(b)}")
    pa, pb = d.params
    lines.append(f"parameters  {pa:,} -> {pb:,} ({pb - pa:+,})")
    ma, mb = d.macs
    lines.append(f"MACs        {format_count(ma).strip()} -> {format_count(mb).strip()} ({'+' if mb >= ma else '-'}"
                 f"{format_count(abs(mb - ma)).strip()}; eval graphs)")
    ka, kb = d.keys
    lines.append(f"state_dict  {ka:,} -> {kb:,} keys; {d.loadable:,} of {a.name}'s {ka:,} load into {b.name} unchanged "
                 f"(same key and shape), {ka - d.loadable:,} do not")
    if not d.changes:
        lines += ["", "no node changed"]
        return "\n".join(lines)
    counts = {s: sum(c.count for c in d.changes if c.sign == s) for s in "+-~"}
    lines += ["", f"nodes: {counts['+']} added (+), {counts['-']} removed (-), {counts['~']} changed (~: settings or "
                  "parameters; nodes whose shapes only follow an upstream change are not listed)"]
    width = max(len(c.path) for c in d.changes)
    kind_width = max(len(c.kind) for c in d.changes)
    for c in d.changes:
        times = f" x{c.count}" if c.count > 1 else ""
        delta = f"  [{c.params_delta:+,} params]" if c.params_delta else ""
        lines.append(f"{c.sign} {c.path:<{width}}  {c.kind:<{kind_width}}  {c.detail}{times}{delta}")
    return "\n".join(lines)
