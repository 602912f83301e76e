"""Every container is a module with its own generated forward, called from its parent's
(archspec/_codegen.py); activation checkpointing of containers as data."""

from __future__ import annotations

import copy
import pickle
import textwrap
import warnings

import pytest
import torch

from archspec import compile_spec

torch.set_num_threads(1)

TINY_DENSENET = dict(block_config=[2, 3, 2, 2], growth_rate=8, num_init_features=16, bn_size=2, num_classes=10,
                     input_shape=(3, 32, 32))


def compile_text(write_spec, body: str, **kw):
    text = "archspec: 1\nname: tiny\ninput: [3, 8, 8]\n" + textwrap.dedent(body)
    return compile_spec(write_spec(text), **kw)


def tiny_densenet(**kw):
    torch.manual_seed(0)
    return compile_spec("densenet121", **{**TINY_DENSENET, **kw}).double()


def test_a_backbone_is_called_as_torchvision_users_call_it():
    model = tiny_densenet().eval()
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64)
    with torch.no_grad():
        features = model.features(x)
        by_hand = model.classifier(torch.flatten(model.pool(model.relu(features)), 1))
        assert torch.equal(by_hand, model(x))
        block = model.features.denseblock1
        inner = model.features.pool0(model.features.relu0(model.features.norm0(model.features.conv0(x))))
        assert block(inner).shape == (2, 16 + 2 * 8, 8, 8)
    assert "self.features(x)" in model.code.split("def _forward_train")[0]


def test_forward_hooks_on_blocks_fire():
    model = tiny_densenet().eval()
    seen = []
    for name, m in model.named_modules():
        if name.endswith(("denselayer1", "denselayer2", "denselayer3")) or name.endswith("transition1"):
            m.register_forward_hook(lambda mod, args, out, name=name: seen.append((name, len(args), out.shape[1])))
    model(torch.randn(1, 3, 32, 32, dtype=torch.float64))
    assert ("features.denseblock1.denselayer1", 1, 8) in seen
    # a dense layer takes the features before it and concatenates them itself, as torchvision's
    assert ("features.denseblock2.denselayer3", 3, 8) in seen
    assert ("features.transition1", 1, (16 + 16) // 2) in seen
    assert len(seen) == 2 + 3 + 2 + 2 + 1


def test_blocks_of_one_structure_share_their_code_and_class():
    model = tiny_densenet()
    a, b = model.features.denseblock1.denselayer2, model.features.denseblock3.denselayer2
    assert type(a) is type(b) and a.code == b.code
    assert type(a).__name__ == "DenseLayer" and a._get_name() == "Block[dense_layer]"
    assert "forward of features.denseblock1.denselayer2 and" in model.code


#: every family's smallest spec (and the memory-efficient DenseNet, whose layers are checkpointed)
FAMILIES = ["alexnet", "googlenet", "inception_v3", "xception", "densenet121", "convnext/convnext_tiny",
            "efficientnet/efficientnet_b0", "efficientnet/efficientnet_v2_s", "mnasnet/mnasnet0_5",
            "mobilenet/mobilenet_v3_small", "regnet/regnet_y_400mf", "resnet/resnet18", "resnet/se_resnet50",
            "shufflenet/shufflenet_v2_x0_5", "squeezenet/squeezenet1_0", "swin/swin_t", "swin/swin_v2_t",
            "vgg/vgg11_bn", "vit/vit_b_32"]


@pytest.mark.parametrize("name,kw", [(n, {}) for n in FAMILIES] + [("densenet121", {"memory_efficient": True})],
                         ids=FAMILIES + ["densenet121-memory_efficient"])
def test_sources_generated_once_per_signature_equal_those_generated_one_by_one(name, kw):
    """codegen writes a container's source once per signature (_codegen.container_sources);
    a signature that missed something the code depends on would give a block another's code."""
    from archspec._codegen import container_source, container_sources, scopes
    from archspec._compiler import load_spec
    from archspec._ir import needed

    graph = load_spec(name, **kw)
    found, chains = scopes(graph, needed(graph, training=True), needed(graph, training=False))
    shared = container_sources(graph, found, chains, graph.inplace)
    assert shared == {p: container_source(graph, sc, found, chains, graph.inplace) for p, sc in found.items()}


def test_instances_that_differ_only_in_what_the_code_writes_get_their_own_code(write_spec):
    """The signature of a container holds a functional op's settings (the groups of a
    shuffle), a sum's broadcasting and which values are read outside it: instances of one
    block that differ only there do not share code, and each computes its own result."""
    model = compile_spec(write_spec(textwrap.dedent("""\
        archspec: 1
        name: tiny
        input: [4, 4, 4]
        blocks:
          unit:
            params: {groups: int, size: int}
            seq:
              conv: {op: conv2d, out: 4, kernel: 1}
              pool: {op: adaptive_avgpool2d, size: $size, from: input}
              shuffle: {op: channel_shuffle, groups: $groups, from: conv}
              sum: {op: add, from: [pool, shuffle]}
        graph:
          a: {use: unit, groups: 2, size: 4}
          b: {use: unit, groups: 4, size: 4}
          c: {use: unit, groups: 2, size: 1}
          d: {use: unit, groups: 2, size: 4}
          head: {op: flatten}
        outputs:
          out: head
          inner: d.conv
    """))).eval()
    codes = {n: getattr(model, n).code for n in "abcd"}
    assert len(set(codes.values())) == 4, codes
    x = torch.randn(2, 4, 4, 4)
    with torch.no_grad():
        for n in "abcd":
            block = getattr(model, n)
            y = block(x)
            y = y[0] if n == "d" else y  # d also returns its conv's output, read outside it
            conv = block.conv(x)
            g = 4 if n == "b" else 2
            shuffled = conv.view(2, g, 4 // g, 4, 4).transpose(1, 2).reshape(2, 4, 4, 4)
            torch.testing.assert_close(y, block.pool(x) + shuffled)
            x = y


def test_script_trace_export_pickle_agree():
    model = tiny_densenet().eval()
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64)
    with torch.no_grad():
        want = model(x)
        assert torch.equal(torch.jit.script(model)(x), want)
        traced = torch.fx.symbolic_trace(model)
        assert torch.equal(traced(x), want)
        assert not any(n.op == "call_module" and "denselayer1" == n.target.rsplit(".", 1)[-1] for n in traced.graph.nodes)
        exported = torch.export.export(model, (x,)).module()
        assert torch.allclose(exported(x), want, rtol=0, atol=1e-12)
        for clone in (copy.deepcopy(model), pickle.loads(pickle.dumps(model))):
            assert torch.equal(clone(x), want) and clone.code == model.code
            assert type(clone.features.denseblock1.denselayer2).__name__ == "DenseLayer"


def test_a_side_branch_makes_a_container_return_a_tuple(write_spec):
    model = compile_text(write_spec, """
        graph:
          body:
            seq:
              a: {op: conv2d, out: 4, kernel: 1}
              b: {op: relu}
          head: {op: flatten}
        outputs:
          out: head
          inner: body.a
    """).eval()
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        b, a = model.body(x)  # its output first, then the value read outside it
        assert torch.equal(a, model.body.a(x)) and torch.equal(b, torch.relu(a))
        out, inner = model(x)
        assert torch.equal(out, b.flatten(1)) and torch.equal(inner, a)


def test_a_container_that_computes_nothing_used_says_so(write_spec):
    from archspec import SpecWarning

    with pytest.warns(SpecWarning, match="feeds nothing"):
        model = compile_text(write_spec, """
            graph:
              unused:
                seq:
                  a: {op: conv2d, out: 4, kernel: 1}
              head: {op: flatten, from: input}
        """)
    with pytest.raises(RuntimeError, match="is not called on its own: it computes nothing the network uses"):
        model.unused(torch.randn(1, 3, 8, 8))


def test_eval_calls_a_container_that_holds_a_training_only_output(write_spec):
    """A container eval needs is one call in both modes (its hooks fire, FSDP2 gathers its
    parameters), also where a training-only output reads inside it; eval then computes
    that output's node too and drops it."""
    model = compile_text(write_spec, """
        graph:
          body:
            seq:
              a: {op: conv2d, out: 4, kernel: 1}
              side: {op: sigmoid}
              b: {op: relu, from: a}
          head: {op: flatten}
        outputs:
          out: head
          aux: {node: body.side, training_only: true}
    """)
    eval_code = model.code.split("def _forward_train")[0]
    assert "self.body(x)" in eval_code and "self.body.a(x)" not in eval_code
    calls = []
    model.body.register_forward_hook(lambda module, args, result: calls.append(module.training))
    x = torch.randn(2, 3, 8, 8)
    out, aux = model.train()(x)
    a = model.body.a(x)
    assert torch.allclose(aux, torch.sigmoid(a)) and torch.allclose(out, torch.relu(a).flatten(1))
    assert torch.allclose(model.eval()(x), out)
    assert calls == [True, False]
    assert model._archspec_info.eval_inlined == []


def test_shard_refuses_a_container_eval_does_not_call(write_spec):
    from archspec import shard

    model = tiny_densenet()
    model.features.denseblock2._archspec_eval_inlined = True  # what lower marks (see _codegen's Modes)
    with pytest.raises(ValueError, match="cannot shard features.denseblock2: in eval the model runs its nodes itself"):
        shard(model, ["dense_block"])


def test_an_optimised_model_runs_as_one_function():
    model = compile_spec("densenet121", **TINY_DENSENET, optimize="inference")
    assert model.code.count("def ") == 3  # forward, _forward_eval, _forward_train: no container forwards
    with pytest.raises(RuntimeError, match="optimised for inference runs as one function"):
        model.features(torch.randn(1, 3, 32, 32))


# -- activation checkpointing -----------------------------------------------------------


def _train_step(model, x, y):
    model.train()
    model.zero_grad()
    loss = torch.nn.functional.cross_entropy(model(x), y)
    loss.backward()
    return loss


def test_memory_efficient_densenet_equals_the_plain_one():
    plain, efficient = tiny_densenet(), tiny_densenet(memory_efficient=True)
    assert plain.state_dict().keys() == efficient.state_dict().keys()
    efficient.load_state_dict(plain.state_dict())
    assert "_checkpoint(self, self._body" in efficient.features.denseblock1.denselayer2.code
    assert "_checkpoint" not in plain.code
    torch.manual_seed(1)
    x, y = torch.randn(4, 3, 32, 32, dtype=torch.float64), torch.randint(0, 10, (4,))
    losses = [_train_step(m, x, y) for m in (plain, efficient)]
    assert torch.equal(losses[0], losses[1])
    grads = {n: p.grad for n, p in plain.named_parameters()}
    worst = max(float((p.grad - grads[n]).abs().max() / grads[n].abs().max().clamp_min(1e-300))
                for n, p in efficient.named_parameters())
    assert worst < 1e-10
    # the recomputation does not update the batch norms' statistics a second time
    for (n, a), b in zip(plain.state_dict().items(), efficient.state_dict().values()):
        assert torch.equal(a, b), n
    with torch.no_grad():
        assert torch.equal(plain.eval()(x), efficient.eval()(x))


def test_checkpointing_saves_activations():
    """Checkpointed dense layers keep fewer tensors for the backward pass."""

    def saved_bytes(model):
        total = 0

        def pack(t):
            nonlocal total
            total += t.numel() * t.element_size()
            return t

        x = torch.randn(2, 3, 32, 32, dtype=torch.float64)
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            model.train()(x).sum()
        return total

    plain, efficient = saved_bytes(tiny_densenet()), saved_bytes(tiny_densenet(memory_efficient=True))
    assert efficient < 0.6 * plain


def test_checkpoint_override_by_block_name_or_path(write_spec):
    by_block = tiny_densenet(checkpoint=["transition"])
    assert by_block.features.transition2.code.count("_checkpoint") == 1
    assert "_checkpoint" not in by_block.features.denseblock1.denselayer1.code
    by_path = tiny_densenet(checkpoint="features.denseblock[12]")
    assert "_checkpoint" in by_path.features.denseblock2.code and "_checkpoint" not in by_path.features.denseblock3.code
    with pytest.raises(ValueError, match="names no block or container of densenet121.*did you mean 'dense_layer'"):
        tiny_densenet(checkpoint=["dense_layr"])
    assert by_block.variant(num_classes=3).features.transition1.code.count("_checkpoint") == 1


def test_checkpointed_containers_never_overwrite_their_inputs(write_spec):
    spec = """
        graph:
          stem: {op: conv2d, out: 4, kernel: 1}
          body:
            checkpoint: true
            seq:
              act: {op: relu}
              conv: {op: conv2d, out: 4, kernel: 3, padding: 1}
    """
    plain, checked = compile_text(write_spec, spec.replace("checkpoint: true", "checkpoint: false")), compile_text(write_spec, spec)
    assert plain.body.act.inplace and not checked.body.act.inplace  # the recomputation reads the block's input again
    checked.load_state_dict(plain.state_dict())
    x = torch.randn(2, 3, 8, 8)
    for m in (plain, checked):
        m.train()(x).square().sum().backward()
    for (n, a), b in zip(plain.named_parameters(), checked.parameters()):
        assert torch.allclose(a.grad, b.grad, rtol=1e-6, atol=1e-7), n


def test_checkpoint_on_one_op_is_an_error(write_spec):
    from archspec import SpecError

    with pytest.raises(SpecError, match="'checkpoint' is for a block instance or a seq, concat, add or dense body"):
        compile_text(write_spec, "graph:\n  c: {op: conv2d, out: 4, kernel: 1, checkpoint: true}\n")


def test_a_learnable_tensor_crossing_a_container_boundary_is_expanded_over_the_batch(write_spec):
    """A ``param`` with ``batch: true`` (a class token) is concatenated with activations
    by expanding it over the batch, also where it reaches the concat as a container's
    result."""
    model = compile_spec(write_spec(textwrap.dedent("""\
        archspec: 1
        name: tokens
        input: [4, 8]
        graph:
          proj: {op: linear, out: 6}
          cls:
            seq:
              token: {op: param, shape: [1, 1, 6], batch: true}
          tokens: {op: concat, from: [cls, proj], dim: 1}
          head: {op: linear, out: 3}
    """))).eval()
    x = torch.randn(2, 4, 8)
    with torch.no_grad():
        want = torch.cat([model.cls.token.expand(2, 1, 6), model.proj(x)], 1)
        torch.testing.assert_close(model(x), model.head(want))


def test_torch_compile_runs_a_checkpointed_container(write_spec):
    """torch.compile (aot_eager, so no C compiler is needed) trains a model with a
    checkpointed block: the gradients and batch-norm statistics of the eager plain model."""
    text = textwrap.dedent("""\
        archspec: 1
        name: units
        input: [4, 6, 6]
        params: {ck: false}
        blocks:
          unit:
            seq:
              conv: {op: conv2d, out: 4, kernel: 3, padding: 1}
              bn: {op: batchnorm2d}
              relu: {op: relu}
              sum: {op: add, from: [relu, input]}
        graph:
          stem: {op: conv2d, out: 4, kernel: 1}
          u1: {use: unit, checkpoint: $ck}
          u2: {use: unit}
          pool: {op: adaptive_avgpool2d, size: 1}
          flat: {op: flatten}
          fc: {op: linear, out: 3}
    """)
    torch.manual_seed(0)
    checked = compile_spec(write_spec(text), ck=True).double()
    plain = compile_spec(write_spec(text)).double()
    plain.load_state_dict(checked.state_dict())
    assert "_checkpoint" in checked.u1.code and "_checkpoint" not in plain.u1.code
    x = torch.randn(2, 4, 6, 6, dtype=torch.float64)
    torch.compile(checked.train(), backend="aot_eager")(x).sum().backward()
    plain.train()(x).sum().backward()
    for (name, a), b in zip(checked.named_parameters(), plain.parameters()):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-10, atol=1e-12, msg=name)
    for (name, a), b in zip(checked.state_dict().items(), plain.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=0, msg=name)  # the statistics updated once


def test_a_container_never_returns_a_view_it_wrote_into(write_spec):
    """A linear over tokens returns a view; an add or activation that ends a block writes a
    new tensor there rather than into that view, so the block does not return a view
    (FSDP2 warns about every sharded block that does); inplace: true still overwrites."""
    def block(inplace: str) -> torch.nn.Module:
        torch.manual_seed(0)
        return compile_spec(write_spec(textwrap.dedent(f"""\
            archspec: 1
            name: tokens
            input: [5, 8]
            blocks:
              mlp_block:
                seq:
                  norm: {{op: layernorm}}
                  fc: {{op: linear, out: 8}}
                  sum: {{op: add, from: [fc, input]}}
              act_block:
                seq:
                  fc: {{op: linear, out: 8}}
                  act: {{op: relu, inplace: {inplace}}}
            graph:
              first: {{op: linear, out: 8}}
              block: {{use: mlp_block}}
              act: {{use: act_block}}
              head: {{op: mean, dims: [1]}}
        """)))

    auto, forced = block("auto"), block("true")
    assert "fc + x" in auto.block.code and "relu_(" not in auto.act.code and "inplace=True" not in repr(auto.act.act)
    assert repr(forced.act.act) == "ReLU(inplace=True)"
    x = torch.randn(2, 5, 8)
    with torch.no_grad():
        assert not auto.block(x)._is_view() and not auto.act(x)._is_view() and forced.act(x)._is_view()
        torch.testing.assert_close(auto.block(x), auto.block.fc(auto.block.norm(x)) + x)
        torch.testing.assert_close(auto(x), forced(x))


NESTED_READ = """
    graph:
      backbone:
        seq:
          stem: {op: conv2d, out: 4, kernel: 3, padding: 1}
          layer3:
            seq:
              c: {op: conv2d, out: 4, kernel: 3, padding: 1}
              r: {op: relu}
          layer4: {op: conv2d, out: 6, kernel: 3, padding: 1, stride: 2}
      classifier: {op: conv2d, out: 2, kernel: 1}
      aux_classifier:
        from: backbone.layer3
        seq:
          c: {op: conv2d, out: 2, kernel: 1}
          r: {op: relu}
    outputs:
      out: classifier
      aux: aux_classifier
"""


def test_a_head_reads_a_nested_node_of_the_backbone_by_dotted_path(write_spec):
    """``from: backbone.layer3`` reads the node inside ``backbone``: the backbone is one call
    that returns its output (layer4) and layer3, each computed once; fx and TorchScript agree."""
    torch.manual_seed(0)
    # a name of its own: TorchScript keeps one named-tuple class per name in a process
    model = compile_spec(write_spec("archspec: 1\nname: nested_read\ninput: [3, 8, 8]\n" + textwrap.dedent(NESTED_READ))).eval()
    calls = []
    hooks = [model.backbone.layer3.register_forward_hook(lambda *a: calls.append("layer3")),
             model.backbone.layer4.register_forward_hook(lambda *a: calls.append("layer4"))]
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        out, aux = model(x)
        inner = model.backbone.layer3(model.backbone.stem(x))
        assert torch.equal(aux, model.aux_classifier(inner))
        assert torch.equal(out, model.classifier(model.backbone.layer4(inner)))
        assert out.shape == (2, 2, 4, 4) and aux.shape == (2, 2, 8, 8)
        calls.clear()
        model(x)
        assert calls == ["layer3", "layer4"]  # each once
        for hook in hooks:
            hook.remove()
        traced = torch.fx.symbolic_trace(model)
        targets = [n.target for n in traced.graph.nodes if n.op == "call_module"]
        assert targets.count("backbone.layer3.c") == 1 and targets.count("backbone.layer4") == 1
        assert all(torch.equal(a, b) for a, b in zip(traced(x), (out, aux)))
        assert all(torch.equal(a, b) for a, b in zip(torch.jit.script(model)(x), (out, aux)))
    assert "self.backbone(x)" in model.code and model.code.count("self.backbone(") == 1
    taps = compile_text(write_spec, NESTED_READ, outputs=["backbone.layer3", "aux_classifier"])
    assert set(taps(x)) == {"backbone.layer3", "aux_classifier"}
    features = compile_text(write_spec, NESTED_READ, features_only=True)
    assert [tuple(f.shape) for f in features(x)] == [(2, 4, 8, 8)]


def test_a_dotted_path_reads_list_items_by_index_and_a_switched_off_node_stands_for_its_input(write_spec):
    model = compile_text(write_spec, """
        params: {deep: false}
        graph:
          backbone:
            seq:
              features:
                - {op: conv2d, out: 4, kernel: 1}
                - {op: relu}
                - {op: conv2d, out: 5, kernel: 1}
              extra: {op: conv2d, out: 7, kernel: 1, when: $deep}
          a: {op: flatten, from: backbone.features.1}
          b: {op: flatten, from: backbone.extra}
          out: {op: concat, from: [a, b], dim: 1}
    """).eval()
    x = torch.randn(1, 3, 8, 8)
    with torch.no_grad():
        f = model.backbone.features
        want = torch.cat([f[1](f[0](x)).flatten(1), f[2](f[1](f[0](x))).flatten(1)], 1)
        assert torch.equal(model(x), want)  # extra is off: backbone.extra stands for features


def test_containers_reading_each_others_insides_are_refused(write_spec):
    """a reads b's output, b reads a node inside a: a cycle, said with its edges, or, where
    that node comes from a's other input, two calls that cannot be ordered; a dotted path
    into a container written later is refused before that."""
    from archspec import SpecError

    with pytest.raises(SpecError, match=r"'a' and 'b' each read a value computed inside the other") as e:
        compile_text(write_spec, """
            blocks:
              two:
                inputs: [input, skip]
                seq: {z: {op: relu, from: skip}, x: {op: add, from: [input, z]}}
            graph:
              stem: {op: relu}
              a: {use: two, from: [b, stem]}
              b: {from: a.z, seq: {y: {op: relu}}}
              out: {op: relu, from: a}
        """)
    assert [why for _, why in e.value.notes] == ["'a.x' reads 'b.y'", "'b.y' reads 'a.z'"]

    with pytest.raises(SpecError, match=r"the graph has a cycle: a\.z -> b\.y -> b\.w -> a\.z"):
        compile_text(write_spec, """
            graph:
              stem: {op: relu}
              a: {from: b, seq: {z: {op: relu}, x: {op: relu}}}
              b: {from: a.z, seq: {y: {op: relu}, w: {op: relu}}}
        """)
    with pytest.raises(SpecError, match=r"'from' names 'b\.y', inside 'b', which is written after 'a'"):
        compile_text(write_spec, """
            graph:
              a: {from: b.y, seq: {z: {op: relu}, x: {op: relu}}}
              b: {from: a.z, seq: {y: {op: relu}, w: {op: relu}}}
        """)


def test_a_nested_base_is_one_node_of_the_variant(tmp_path):
    """extends: {spec: resnet18, nest: backbone}: the backbone's keys are the base's under
    'backbone.', the head reads an inner stage, the base's init applies inside backbone
    only (its convs Kaiming, the head's conv PyTorch's default, as torchvision's heads)."""
    from archspec import load_spec

    (tmp_path / "seg.yaml").write_text(
        "archspec: 1\nextends: {spec: 'archspec:resnet/resnet18', nest: backbone}\nname: seg\ninput: [3, 64, 64]\n"
        "returns: dict\ngraph:\n  backbone: {seq: {avgpool: null, flatten: null, fc: null}}\n"
        "  classifier: {op: conv2d, out: 3, kernel: 1}\n"
        "  aux: {op: conv2d, out: 3, kernel: 1, from: backbone.layer3}\noutputs: {out: classifier, aux: aux}\n")
    plain = load_spec("resnet18").state_shapes()
    shapes = load_spec(tmp_path / "seg.yaml").state_shapes()
    assert {k: v for k, v in shapes.items() if k.startswith("backbone.")} == {
        "backbone." + k: v for k, v in plain.items() if not k.startswith("fc.")}
    torch.manual_seed(0)
    model = compile_spec(tmp_path / "seg.yaml").eval()
    out = model(torch.randn(1, 3, 64, 64))
    assert list(out) == ["out", "aux"] and out["out"].shape == (1, 3, 2, 2) and out["aux"].shape == (1, 3, 4, 4)
    assert model.backbone.conv1.weight.std().item() == pytest.approx((2 / (64 * 49)) ** 0.5, rel=0.05)  # fan_out
    assert model.classifier.bias.abs().max() > 0  # PyTorch's default, not the base's bias 0 rule


def test_a_nested_node_of_a_base_keys_as_torchvisions_segmentation_backbones(tmp_path):
    """nest: {backbone: features}: MobileNetV3's features list alone, keyed backbone.0 ... backbone.16."""
    from archspec import load_spec

    (tmp_path / "v.yaml").write_text(
        "archspec: 1\nextends: {spec: 'archspec:mobilenet/mobilenet_v3_large', nest: {backbone: features}}\n"
        "name: v\ngraph:\n  head: {op: conv2d, out: 3, kernel: 1}\n")
    plain = load_spec("mobilenet_v3_large").state_shapes()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # its classifier's parameters and init rule do not come along to warn
        graph = load_spec(tmp_path / "v.yaml")
    shapes = graph.state_shapes()
    assert {k: v for k, v in shapes.items() if k.startswith("backbone.")} == {
        "backbone." + k[len("features."):]: v for k, v in plain.items() if k.startswith("features.")}
    assert "backbone.16.0.weight" in shapes and shapes["head.weight"] == (3, 960, 1, 1)


def test_like_names_a_nested_node_by_dotted_path_as_from_does(write_spec):
    """The op parameters that name nodes resolve as 'from' does: 'like: backbone.layer3'."""
    from archspec import SpecError

    body = """
        graph:
          backbone:
            seq:
              layer3: {op: conv2d, out: 4, kernel: 3, stride: 2, padding: 1}
              layer4: {op: conv2d, out: 4, kernel: 3, stride: 2, padding: 1}
          up: {op: interpolate, like: backbone.layer3, mode: bilinear}
    """
    model = compile_text(write_spec, body).eval()
    assert model(torch.randn(1, 3, 8, 8)).shape == (1, 4, 4, 4)
    with pytest.raises(SpecError, match=r"'like' names 'backbone\.layr3', but 'backbone' has no node 'layr3'"):
        compile_text(write_spec, body.replace("like: backbone.layer3", "like: backbone.layr3"))
