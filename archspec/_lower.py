"""Stage 5, lower: the inferred IR to a module tree and generated forward code.

What it does:

- builds the module tree: a :class:`Block` for every container, the op's module for
  every node that has one, each at its dotted path (so ``state_dict`` keys are the spec's
  paths, and for the bundled specs torchvision's and timm's);
- decides where in-place ops are safe (``relu``'s ``inplace: auto``, the residual ``add``):
  only where nothing else reads the overwritten tensor (through identity, flatten and
  dropout, which may return their input) and autograd does not need it, never on the
  network input;
- writes two ``torch.fx`` graphs (eval: what the non-training outputs need; train:
  everything), lints them and generates their Python, wrapped in a ``forward`` that picks
  one by ``self.training``;
- applies the spec's ``init:`` rules (:mod:`._initialize`).

What it deliberately does not do: interpret the spec at run time. The forward is
straight-line code over the modules; nothing of the spec is consulted per call.
"""

from __future__ import annotations

import re

import torch  # noqa: F401  (the generated code runs against torch)
from torch import fx, nn

from . import ops
from ._errors import SpecShapeError
from ._infer import needed
from ._ir import INPUT, Graph, Node
from ._module import ArchModule, Block, make_module

__all__ = ["lower", "inplace_plan"]

#: ops whose backward needs their own output: never overwrite what they produce
_OUTPUT_SAVED = {"relu", "lrn"}


def _consumers(graph: Graph) -> dict[str, list[str]]:
    """Who reads each value: node paths, and ``"output <name>"`` for the network's outputs."""
    readers: dict[str, list[str]] = {p: [] for p in graph.order}
    readers[INPUT] = []
    for p in graph.order:
        for s in graph.nodes[p].sources:
            readers[s].append(p)
    for o in graph.outputs:
        readers[o.node].append(f"output {o.name}")
    return readers


def _overwritable(graph: Graph, source: str, readers: dict[str, list[str]], reader: str) -> str | None:
    """Why ``reader`` may not overwrite ``source``, or ``None`` if it may."""
    current, previous = source, reader
    while True:
        if current == INPUT:
            return "its input is (a view of) the network input"
        others = [r for r in readers[current] if r != previous]
        if others:
            other = others[0] if others[0].startswith("output ") else f"'{graph.nodes[others[0]].display}'"
            return f"'{graph.nodes[current].display}' is also read by {other}"
        node = graph.nodes[current]
        op = ops.REGISTRY[node.op]
        if op.alias:
            current, previous = node.sources[0], current
            continue
        if node.op in _OUTPUT_SAVED:
            return f"autograd needs the output of '{node.display}' ({node.op})"
        return None


def inplace_plan(graph: Graph) -> dict[str, int | None]:
    """For each in-place-capable node: the index of the input it may overwrite, or ``None``."""
    readers = _consumers(graph)
    plan: dict[str, int | None] = {}
    for p in graph.order:
        node = graph.nodes[p]
        op = ops.REGISTRY[node.op]
        if not op.inplace:
            continue
        wanted = getattr(node.concrete, "inplace", "auto")
        if wanted is False:
            plan[p] = None
            continue
        choice = None
        reasons = []
        for i, s in enumerate(node.sources):
            reason = _overwritable(graph, s, readers, p)
            if reason is None:
                choice = i
                break
            reasons.append(reason)
        if wanted is True and choice is None:
            raise SpecShapeError(
                f"this {node.op} cannot run in place: {reasons[0]}", node.param_locs.get("inplace", node.loc),
                node=node.display, expected="inplace: auto (in place only where safe) or false",
            )
        plan[p] = choice
    return plan


def _fx_name(node: Node) -> str:
    return re.sub(r"\W", "_", node.display.replace(".", "_")) or "v"


def _graph(graph: Graph, paths: list[str], training: bool, plan: dict[str, int | None]) -> fx.Graph:
    g = fx.Graph()
    values: dict[str, fx.Node] = {INPUT: g.placeholder("x")}
    for p in paths:
        node = graph.nodes[p]
        op = ops.REGISTRY[node.op]
        args = [values[s] for s in node.sources]
        if op.build is not None:
            values[p] = g.call_module(node.path, tuple(args))
        else:
            slot = plan.get(p)
            if slot:  # put the operand we may overwrite first
                args = [args[slot]] + args[:slot] + args[slot + 1:]
            values[p] = op.emit(g, node.concrete, args, _fx_name(node), slot is not None)
    if graph.taps:
        g.output({o.name: values[o.node] for o in graph.outputs})
    else:
        outs = [values[o.node] for o in graph.outputs if training or not o.training_only]
        g.output(outs[0] if len(outs) == 1 else tuple(outs))
    g.lint()
    return g


def _source(graph: Graph, plan: dict[str, int | None]) -> str:
    eval_nodes, train_nodes = needed(graph, training=False), needed(graph, training=True)
    eval_g = _graph(graph, eval_nodes, False, plan)
    eval_src = eval_g.python_code("self").src.replace("def forward(self, x)", "def _forward_eval(self, x)", 1)
    if train_nodes == eval_nodes and not any(o.training_only for o in graph.outputs):
        # no training-only outputs: both modes run the same code
        train_src = "def _forward_train(self, x):\n    return self._forward_eval(x)"
    else:
        train_g = _graph(graph, train_nodes, True, plan)
        train_src = train_g.python_code("self").src.replace("def forward(self, x)", "def _forward_train(self, x)", 1)
    n_train = len(graph.outputs)
    n_eval = sum(1 for o in graph.outputs if not o.training_only)
    train_ret = "self._forward_train(x)" if n_train == 1 or graph.taps else "_TrainOutputs(*self._forward_train(x))"
    eval_lines = ["    return self._forward_eval(x)"] if n_eval == 1 or graph.taps else [
        "    out = self._forward_eval(x)",  # explicit fields: TorchScript has no *args
        "    return _EvalOutputs(" + ", ".join(f"out[{i}]" for i in range(n_eval)) + ")"]
    head = "\n".join([
        f"# generated by archspec from {graph.source}: {graph.name}",
        "def forward(self, x):",
        "    if self.training and not torch.jit.is_scripting():",
        f"        return {train_ret}",
        *eval_lines,
    ])
    return head + "\n\n" + eval_src.strip("\n") + "\n\n\n" + train_src.strip("\n") + "\n"


def _build_tree(model: ArchModule, graph: Graph, plan: dict[str, int | None]) -> None:
    def attach(path: str, module: nn.Module) -> None:
        parent, _, name = path.rpartition(".")
        owner = model.get_submodule(parent) if parent else model
        owner.add_module(name, module)

    def walk(children: list[str]) -> None:
        for path in children:
            if path in graph.containers:
                c = graph.containers[path]
                if not c.enabled:
                    continue
                attach(path, Block(c.kind, c.block))
                walk(c.children)
                continue
            node = graph.nodes.get(path)
            if node is None or not node.enabled or node.concrete is None:
                continue
            op = ops.REGISTRY[node.op]
            if op.build is not None:
                attach(path, op.build(node.concrete, node.in_shapes, plan.get(path) is not None))

    walk(graph.top)


def lower(graph: Graph, init: bool = True, device: torch.device | str | None = None) -> ArchModule:
    """Build the module for an inferred graph (see the module docstring).

    ``device``: where parameters are created (``"meta"`` builds the whole module without
    allocating any memory, for inspection and checks).
    """
    if device is not None:
        with torch.device(device):
            return lower(graph, init=init)
    plan = inplace_plan(graph)
    info = {
        "name": graph.name,
        "type_name": _outputs_type_name(graph.name),
        "outputs": [(o.name, o.training_only) for o in graph.outputs],
        "input_shape": list(graph.input_shape),
        "taps": graph.taps,
        "source": graph.source,
    }
    model = make_module(_source(graph, plan), info)
    _build_tree(model, graph, plan)
    if init:
        from ._initialize import apply_init

        apply_init(model, graph)
    return model


def _outputs_type_name(name: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in re.split(r"[\W_]+", name) if part) + "Outputs"
