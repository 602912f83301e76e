"""Diagrams of an inferred graph: Graphviz DOT and Mermaid text, and SVG/PNG rendered by
Graphviz's ``dot``. Needs no torch: everything comes from the IR after *infer*.

What is drawn: the enabled op nodes (name, op with its kernel and stride, output shape),
the joins that ``concat``/``add``/``dense`` containers make (small circles, ``concat`` or
``+``), the network input and every named output. Edges follow what each node reads and
carry the shape of the tensor on them. Containers are nested clusters labelled
``name : block``; with ``depth=N`` only N levels of the module tree are drawn and every
container at level N-1 (top level = 0) becomes one box with its block, output shape and
parameters (``depth`` counts levels as ``archspec build --depth`` does). Parts that only
the train graph computes (auxiliary classifiers, training-only outputs) are dashed and
grey; parts no output needs are dotted.

What is not: no layout of its own (Graphviz or Mermaid lays the diagram out), no weights,
no MACs per node. Rendering SVG/PNG needs Graphviz's ``dot`` on PATH; without it
:class:`GraphvizNotFound` (an ``OSError``, so the command line prints it cleanly) says
how to install it. The text is deterministic: the same graph gives the same diagram.

Big graphs: a whole DenseNet (every dense connection is an edge, 963 in DenseNet-121)
lays out in seconds but is hard to read; ``depth=2`` or ``3`` is the useful view. Mermaid
renders at most 500 edges and 50,000 characters by default; a diagram past that says so
in a comment on its second line.
"""

from __future__ import annotations

import errno
import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from ._files import write_file
from ._ir import INPUT, Graph, Node, needed
from . import ops
from ._summary import format_count
from .ops import fmt_shape

__all__ = ["FORMATS", "DrawError", "GraphvizNotFound", "to_dot", "to_mermaid", "write_graph"]

#: file suffix -> format
FORMATS = {".dot": "dot", ".gv": "dot", ".mmd": "mermaid", ".svg": "svg", ".png": "png"}


class DrawError(OSError):
    """A diagram that cannot be written: unknown format, Graphviz failing. An ``OSError``
    whose ``strerror`` is the whole message, as the command line prints it."""

    def __init__(self, message: str, code: int = errno.EINVAL) -> None:
        super().__init__(code, message)

    def __str__(self) -> str:
        return self.strerror

    def __reduce__(self):
        return (DrawError, (self.strerror, self.errno))


class GraphvizNotFound(DrawError):
    """Graphviz's ``dot`` is not on PATH (needed for .svg and .png only)."""

    def __init__(self) -> None:
        super().__init__("Graphviz's 'dot' is not installed: install it with 'apt-get install graphviz' (Debian/Ubuntu) "
                         "or 'brew install graphviz' (macOS), or write .dot/.mmd instead", errno.ENOENT)

    def __reduce__(self):
        return (GraphvizNotFound, ())


# -- the scene: what is drawn, independent of the format -------------------------------------

#: an op's fill colour, by its ``category`` (which also names its Mermaid class); the other
#: categories (dropout, tensor plumbing, learnable tensors, user ops) are ``other``
_FILL = {"layer": "#dbeafe", "norm": "#fef3c7", "activation": "#dcfce7", "pool": "#fde2e2", "join": "#ffffff",
         "other": "#f3f4f6"}


def _style(op: str) -> str:
    """The class an op is drawn with: its category, where that has a colour of its own."""
    d = ops.get(op)
    return d.category if d is not None and d.category in _FILL else "other"


@dataclass
class _Item:
    id: str
    lines: list[str]
    kind: str  # op, join, block, io
    status: str  # "" (eval graph), "train" (training only), "unused"
    tip: str
    op: str = ""


@dataclass
class _Cluster:
    id: str
    label: str
    status: str
    level: int
    body: list[_Item | _Cluster] = field(default_factory=list)


@dataclass
class _Edge:
    src: str
    dst: str
    labels: list[str]
    status: str


@dataclass
class _Scene:
    title: str
    body: list[_Item | _Cluster]
    edges: list[_Edge]


class _Ids:
    """Safe, unique identifiers for both formats: ``n_inception3a_branch2_1_conv``,
    ``n_inception3a__concat``; a path that would clash gets ``_2``, ``_3``, ... (in order)."""

    def __init__(self) -> None:
        self.used: set[str] = set()

    def __call__(self, prefix: str, path: str) -> str:
        base = prefix + re.sub(r"[^A-Za-z0-9_]", "_", path.replace("#", "__"))
        ident, k = base, 1
        while ident in self.used:
            k += 1
            ident = f"{base}_{k}"
        self.used.add(ident)
        return ident


def _settings(node: Node) -> str:
    """``7x7/2``, ``dw 3x3``: the kernel and stride of a convolution or a pooling window (of
    an op with a ``kernel`` parameter)."""
    p = node.concrete
    kernel = getattr(p, "kernel", None)
    if not isinstance(kernel, tuple):
        return ""
    text = "x".join(map(str, kernel))
    stride = getattr(p, "stride", None)
    if isinstance(stride, tuple) and stride != (1, 1):
        text += "/" + (str(stride[0]) if stride[0] == stride[1] else "x".join(map(str, stride)))
    if getattr(p, "depthwise", False):
        text = "dw " + text
    elif (getattr(p, "groups", 1) or 1) > 1:
        text += f" g{p.groups}"
    return text


def _scene(graph: Graph, depth: int | None) -> _Scene:
    eval_nodes, train_nodes = set(needed(graph, training=False)), set(needed(graph, training=True))
    limit = None if depth is None else max(depth, 1) - 1  # containers at this level and deeper are boxes
    enabled = set(graph.order)

    def status(paths: list[str]) -> str:
        if any(p in eval_nodes for p in paths):
            return ""
        return "train" if any(p in train_nodes for p in paths) else "unused"

    inner: dict[str, list[str]] = {}  # container -> the enabled nodes under it
    joins: dict[str | None, list[str]] = {}  # container -> its implicit joins
    for p in graph.order:
        node = graph.nodes[p]
        if node.implicit:
            joins.setdefault(node.parent, []).append(p)
        c = node.parent
        while c is not None:
            inner.setdefault(c, []).append(p)
            c = graph.containers[c].parent

    ident = _Ids()
    owner: dict[str, str] = {INPUT: "x_input"}  # node path -> the id of the item that draws it
    items: dict[str, _Item] = {}

    def add(item: _Item, body: list, paths: list[str]) -> None:
        items[item.id] = item
        body.append(item)
        owner.update((p, item.id) for p in paths)

    def op_item(p: str, body: list) -> None:
        node = graph.nodes[p]
        if node.implicit:
            glyph = ops.REGISTRY[node.op].glyph
            add(_Item(ident("n_", p), [glyph or node.op], "join", status([p]), p, node.op), body, [p])
            return
        op = " ".join(filter(None, [node.op, _settings(node)]))
        head = node.name if op == node.name else f"{node.name}: {op}"
        add(_Item(ident("n_", p), [head, fmt_shape(node.shape)], "op", status([p]), p, node.op), body, [p])

    def walk(children: list[str], body: list, level: int) -> None:
        for path in children:
            if path not in graph.containers:
                if path in enabled:
                    op_item(path, body)
                continue
            c = graph.containers[path]
            paths = inner.get(path, [])
            if not c.enabled or not paths:
                continue
            label = f"{c.name} : {c.block or c.kind}"
            if limit is not None and level >= limit:
                params = sum(graph.nodes[p].n_params for p in paths)
                lines = [label, fmt_shape(c.shape)] + ([f"{format_count(params).strip()} params"] if params else [])
                add(_Item(ident("b_", path), lines, "block", status(paths), path), body, paths)
                continue
            cluster = _Cluster(ident("c_", path), label, status(paths), level)
            walk(c.children, cluster.body, level + 1)
            for p in joins.get(path, []):
                op_item(p, cluster.body)
            body.append(cluster)

    body: list[_Item | _Cluster] = []
    add(_Item("x_input", ["input", fmt_shape(graph.input_shape)], "io", "", "the network input"), body, [])
    walk(graph.top, body, 0)
    for p in graph.order:  # anything no container walk reached (joins outside any container)
        if p not in owner:
            op_item(p, body)

    edges: dict[tuple[str, str], _Edge] = {}

    def connect(src: str, dst: str, shape: tuple[int, ...] | None) -> None:
        if src == dst:  # inside one collapsed box
            return
        edge = edges.setdefault((src, dst), _Edge(src, dst, [], items[dst].status))
        if fmt_shape(shape) not in edge.labels:
            edge.labels.append(fmt_shape(shape))

    for p in graph.order:
        for s in graph.nodes[p].sources:
            connect(owner[s], owner[p], graph.input_shape if s == INPUT else graph.nodes[s].shape)
    for o in graph.outputs:
        if o.node is None:
            continue
        shape = graph.input_shape if o.node == INPUT else graph.nodes[o.node].shape
        name = o.name + (" (train)" if o.training_only else "")
        out = _Item(ident("o_", o.name), [name, fmt_shape(shape)], "io", "train" if o.training_only else "", f"output {o.name}")
        add(out, body, [])
        connect(owner[o.node], out.id, shape)
    title = f"{graph.name}: {graph.description}" if graph.description else graph.name
    return _Scene(title, body, list(edges.values()))


# -- Graphviz DOT --------------------------------------------------------------------------------

_GREY = "#8a8a8a"


def _q(*lines: str) -> str:
    """A DOT double-quoted string (lines joined by DOT's ``\\n``)."""
    return '"' + "\\n".join(t.replace("\\", "\\\\").replace('"', '\\"') for t in lines) + '"'


def _dot_item(item: _Item) -> str:
    attrs = {"label": _q(*item.lines), "tooltip": _q(item.tip)}
    style = ["filled"]
    if item.kind == "join":
        attrs.update(shape="circle", width="0.3", margin="0.02", fontsize="8", fillcolor=_q("#ffffff"))
    elif item.kind == "block":
        attrs.update(shape="box3d", fillcolor=_q("#e0f2fe"), margin=_q("0.12,0.08"))
    elif item.kind == "io":
        attrs.update(shape="oval", fillcolor=_q("#fff7ed"))
    else:
        style.insert(0, "rounded")
        attrs["fillcolor"] = _q(_FILL[_style(item.op)])
    if item.status:
        style.append("dashed" if item.status == "train" else "dotted")
        attrs.update(color=_q(_GREY), fontcolor=_q("#666666"), fillcolor=_q("#f5f5f5"))
    attrs["style"] = _q(",".join(style))
    return f"{item.id} [{', '.join(f'{k}={v}' for k, v in attrs.items())}];"


def to_dot(graph: Graph, depth: int | None = None) -> str:
    """The diagram as Graphviz DOT text (render it with ``dot -Tsvg``)."""
    scene = _scene(graph, depth)
    lines = [f"digraph {_q(graph.name)} {{",
             f"  graph [label={_q(scene.title)}, labelloc=t, fontname=Helvetica, fontsize=14, rankdir=TB, "
             "nodesep=0.2, ranksep=0.3];",
             '  node [shape=box, fontname=Helvetica, fontsize=10, height=0.3, margin="0.08,0.03"];',
             '  edge [fontname=Helvetica, fontsize=8, fontcolor="#444444", color="#555555", arrowsize=0.6];']

    def emit(body: list[_Item | _Cluster], indent: str) -> None:
        for part in body:
            if isinstance(part, _Item):
                lines.append(indent + _dot_item(part))
                continue
            fill = "#f4f7fb" if part.level % 2 == 0 else "#e8eef6"
            style = "rounded,dashed" if part.status == "train" else "rounded,dotted" if part.status else "rounded,filled"
            color = _GREY if part.status else "#7c8aa0"
            lines.append(f"{indent}subgraph cluster_{part.id} {{")
            lines.append(f"{indent}  label={_q(part.label)}; style={_q(style)}; fillcolor={_q(fill)}; color={_q(color)}; "
                         f"fontcolor={_q('#666666' if part.status else '#1f2937')}; fontsize=10; labeljust=l;")
            emit(part.body, indent + "  ")
            lines.append(f"{indent}}}")

    emit(scene.body, "  ")
    for e in scene.edges:
        attrs = f"label={_q(' ' + ', '.join(e.labels))}"
        if e.status:
            attrs += f", style={'dashed' if e.status == 'train' else 'dotted'}, color={_q(_GREY)}"
        lines.append(f"  {e.src} -> {e.dst} [{attrs}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


# -- Mermaid ------------------------------------------------------------------------------------

_MERMAID_ESCAPES = {"#": "#35;", '"': "#quot;", "<": "#lt;", ">": "#gt;", "&": "#amp;", "`": "#96;", "|": "#124;",
                    "[": "#91;", "]": "#93;", "(": "#40;", ")": "#41;", "{": "#123;", "}": "#125;"}
_MERMAID_MAX_EDGES, _MERMAID_MAX_TEXT = 500, 50_000  # Mermaid's maxEdges and maxTextSize defaults


def _mm(lines: list[str]) -> str:
    """A quoted Mermaid label: every character Mermaid could read as syntax is an entity."""
    return '"' + "<br/>".join("".join(_MERMAID_ESCAPES.get(ch, ch) for ch in t) for t in lines) + '"'


def to_mermaid(graph: Graph, depth: int | None = None) -> str:
    """The diagram as a Mermaid ``flowchart`` (renders in GitHub and GitLab Markdown)."""
    scene = _scene(graph, depth)
    shapes = {"op": "[{}]", "join": "(({}))", "block": "[[{}]]", "io": "([{}])"}
    lines = ["flowchart TD"]

    def emit(body: list[_Item | _Cluster], indent: str) -> None:
        for part in body:
            if isinstance(part, _Item):
                cls = part.status or ("block" if part.kind == "block" else "io" if part.kind == "io"
                                      else _style(part.op))
                lines.append(f"{indent}{part.id}{shapes[part.kind].format(_mm(part.lines))}:::{cls}")
                continue
            lines.append(f"{indent}subgraph {part.id} [{_mm([part.label])}]")
            emit(part.body, indent + "  ")
            lines.append(f"{indent}end")
            if part.status:
                lines.append(f"{indent}style {part.id} stroke-dasharray:5 5,stroke:{_GREY},color:#666666")

    emit(scene.body, "  ")
    for e in scene.edges:
        arrow = "-.->" if e.status else "-->"
        lines.append(f"  {e.src} {arrow}|{_mm([', '.join(e.labels)])}| {e.dst}")
    for cls, fill in [*_FILL.items(), ("block", "#e0f2fe"), ("io", "#fff7ed")]:
        lines.append(f"  classDef {cls} fill:{fill},stroke:#6b7280")
    lines.append(f"  classDef train fill:#f5f5f5,stroke:{_GREY},color:#666666,stroke-dasharray:5 5")
    lines.append(f"  classDef unused fill:#f5f5f5,stroke:{_GREY},color:#666666,stroke-dasharray:2 2")
    text = "\n".join(lines) + "\n"
    if len(scene.edges) > _MERMAID_MAX_EDGES or len(text) > _MERMAID_MAX_TEXT:
        lines.insert(1, f"  %% {len(scene.edges)} edges, {len(text):,} characters: past Mermaid's default limits "
                        f"({_MERMAID_MAX_EDGES} edges, {_MERMAID_MAX_TEXT:,} characters); draw fewer levels (--depth)")
        text = "\n".join(lines) + "\n"
    return text


# -- files --------------------------------------------------------------------------------------


def _render(dot_text: str, fmt: str) -> bytes:
    """``dot -T<fmt>`` of the DOT text: the rendered file's bytes (written by the caller,
    so that a full disk or an unwritable file is reported as such, not as dot's failure)."""
    exe = shutil.which("dot")
    if exe is None:
        raise GraphvizNotFound()
    try:
        done = subprocess.run([exe, f"-T{fmt}"], input=dot_text.encode("utf-8"), capture_output=True)
    except FileNotFoundError:
        raise GraphvizNotFound() from None
    if done.returncode != 0:
        detail = "; ".join(done.stderr.decode("utf-8", "replace").strip().splitlines()[:3])
        raise DrawError(f"Graphviz's dot failed (exit status {done.returncode})" + (f": {detail}" if detail else ""), errno.EIO)
    return done.stdout


def write_graph(graph: Graph, path: str | Path, depth: int | None = None,
                writer: Callable[[str, Callable[[BinaryIO], None]], None] = write_file, fmt: str | None = None) -> None:
    """Write the diagram of ``graph`` to ``path``, in the format ``fmt`` (one of the values of
    :data:`FORMATS`), by default the one its suffix names.

    ``writer(path, write)`` calls ``write`` with the binary file object to write into; the
    default, :func:`archspec._files.write_file`, writes a temporary file renamed into place
    (see that module for devices, pipes and symlinks). The diagram is made whole (and, for
    .svg/.png, rendered) before anything is written."""
    path = str(path)
    suffix = Path(path).suffix.lower()
    fmt = fmt or FORMATS.get(suffix)
    if fmt not in FORMATS.values():
        found = f"unknown format '{suffix}'" if suffix else "no extension"
        raise DrawError(f"cannot draw {path}: {found} (expected one of: {', '.join(FORMATS)})")
    if fmt == "mermaid":
        data = to_mermaid(graph, depth).encode("utf-8")
    else:
        text = to_dot(graph, depth)
        data = text.encode("utf-8") if fmt == "dot" else _render(text, fmt)
    writer(path, lambda f: f.write(data))
