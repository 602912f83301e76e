"""Building the module tree on the meta device (issue 10): a built-in op's node whose build
was seen before in the tree gets a copy of that module (``_lower._copy_shell``) instead of
a second run of its constructor. The copy must be what the constructor makes."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from archspec import compile_spec, load_spec, ops
from archspec._compiler import build_model
from archspec._lower import _build_tree, _copy_shell, codegen
from archspec._module import ArchModule, Block
from test_ops import IMAGE, OP_EXAMPLES

CHANNELS_LAST = {"window_attention", "patch_merge"}


def assert_same_module(copy: nn.Module, built: nn.Module, where: str = "") -> None:
    """``copy`` holds what ``built`` (made by the constructor) holds, in objects of its own."""
    assert type(copy) is type(built), where
    assert list(copy.__dict__) == list(built.__dict__), where
    for key, value in built.__dict__.items():
        mine = copy.__dict__[key]
        if key in ("_parameters", "_buffers"):
            assert list(mine) == list(value), (where, key)
            for name, t in value.items():
                m = mine[name]
                if t is None:
                    assert m is None
                    continue
                assert type(m) is type(t) and m.shape == t.shape and m.dtype == t.dtype, (where, name)
                assert m.requires_grad == t.requires_grad and m.is_meta and m is not t, (where, name)
        elif key == "_modules":
            assert list(mine) == list(value), where
            for name, child in value.items():
                assert_same_module(mine[name], child, f"{where}.{name}")
        elif isinstance(value, (dict, list, set)):
            assert mine == value and mine is not value, (where, key)  # equal, not shared
        else:
            assert mine == value or (mine != mine and value != value), (where, key)  # NaN settings compare unequal


def assert_nothing_shared(copy: nn.Module, original: nn.Module) -> None:
    """No tensor, child or mutable container of ``original`` is held by ``copy``."""
    for key, value in original.__dict__.items():
        if isinstance(value, (dict, list, set, torch.Tensor)):
            assert copy.__dict__[key] is not value, key
    for name, t in [*original._parameters.items(), *original._buffers.items()]:
        assert t is None or copy.__dict__["_parameters"].get(name, copy._buffers.get(name)) is not t, name
    for name, child in original._modules.items():
        assert_nothing_shared(copy._modules[name], child)


@pytest.mark.parametrize("name", [n for n in ops.names() if ops.REGISTRY[n].build is not None and not ops.REGISTRY[n].tensor])
def test_a_copied_module_is_what_its_constructor_makes(name, write_spec):
    shape, node = OP_EXAMPLES.get(name, (IMAGE, f"{{op: {name}}}"))
    before = "  q: {op: permute, dims: [0, 2, 3, 1]}\n" if name in CHANNELS_LAST else ""
    read = "q" if before else "input"
    node = node.rstrip("}") + f", from: {read}}}"
    path = write_spec(f"archspec: 1\nname: t\ninput: {shape}\ngraph:\n{before}  a: {node}\n  b: {node}\n"
                      "outputs: {a: a, b: b}\n")
    graph = load_spec(path)
    copied, _ = codegen(graph)
    _build_tree(copied, graph, graph.inplace)
    built, _ = codegen(graph)
    with torch.device("meta"):
        _build_tree(built, graph, graph.inplace, meta=False)
    assert_same_module(copied.b, built.b, "b")
    assert copied.b is not copied.a
    assert_nothing_shared(copied.b, copied.a)


@pytest.mark.parametrize("name", [n for n in ops.names() if ops.REGISTRY[n].shapeless])
def test_a_shapeless_op_builds_the_same_module_for_any_input(name, write_spec):
    op = ops.REGISTRY[name]
    shape, node = OP_EXAMPLES.get(name, (IMAGE, f"{{op: {name}}}"))
    graph = load_spec(write_spec(f"archspec: 1\nname: t\ninput: {shape}\ngraph:\n  n: {node}\n"))
    params = graph.nodes["n"].concrete
    small, large = [tuple(shape)], [tuple(d * 3 for d in shape)]
    for inplace in (False, True):
        with torch.device("meta"):
            a, b = op.build(params, small, inplace), op.build(params, large, inplace)
        assert_same_module(a, b, name)


def test_copies_are_independent_modules(write_spec):
    path = write_spec("archspec: 1\nname: t\ninput: [3, 8, 8]\ngraph:\n"
                      "  a: {op: conv2d, out: 4, kernel: 3}\n  b: {op: conv2d, out: 4, kernel: 3, from: input}\n"
                      "outputs: {a: a, b: b}\n")
    model = compile_spec(path)
    seen = []
    model.b.register_forward_hook(lambda m, i, o: seen.append(m))
    with torch.no_grad():
        model.b.weight.zero_()
    model.b.padding = (2, 2)
    out = model.eval()(torch.randn(1, 3, 8, 8))
    assert seen == [model.b] and model.a._forward_hooks == {}
    assert model.a.padding == (0, 0) and model.a.weight.abs().sum() > 0
    assert out[0].shape == (1, 4, 6, 6)


@pytest.mark.parametrize("name", ["resnet18", "densenet121", "efficientnet_b0", "shufflenet_v2_x0_5", "swin_t", "vit_b_32"])
def test_a_tree_of_copies_is_the_constructors_tree(name):
    graph = load_spec(name)  # the bundled spec
    copied = build_model(graph, device="meta")
    built, sources = codegen(graph)
    with torch.device("meta"):
        _build_tree(built, graph, graph.inplace, meta=False)
    assert repr(copied).replace(type(copied).__name__, "") == repr(built).replace(type(built).__name__, "")
    pairs = list(zip(copied.named_modules(remove_duplicate=False), built.named_modules(remove_duplicate=False)))
    assert [p for (p, _), _ in pairs] == [p for _, (p, _) in pairs]
    for (path, mine), (_, theirs) in pairs:
        if not isinstance(theirs, (ArchModule, Block)):  # the model and its containers are not copied
            assert_same_module(mine, theirs, path)
    state = copied.state_dict()
    assert [(k, t.shape) for k, t in state.items()] == [(k, t.shape) for k, t in built.state_dict().items()]
    assert len({id(t) for t in state.values()}) == len(state)


def test_the_same_seed_draws_the_same_weights_with_copies_as_with_constructors():
    graph = load_spec("mobilenet_v3_small", input_shape=(3, 32, 32))
    torch.manual_seed(5)
    a = build_model(graph).state_dict()
    torch.manual_seed(5)
    b = build_model(graph).state_dict()
    assert all(torch.equal(t, b[k]) for k, t in a.items())
    assert len({id(t) for t in a.values()}) == len(a)


def test_copy_shell_copies_plain_tensor_attributes_and_children():
    outer = nn.Sequential(nn.Linear(3, 4, device="meta"), nn.ReLU())
    outer.extra = torch.empty(2, device="meta")
    new = _copy_shell(outer)
    assert new.extra is not outer.extra and new.extra.shape == (2,)
    assert new[0] is not outer[0] and new[0].weight is not outer[0].weight and new[0].in_features == 3
