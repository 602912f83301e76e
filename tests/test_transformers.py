"""Tokens and attention: ViT as specs (specs/vit/). test_zoo.py checks every model's keys,
shapes, parameters, MACs and float64 logits against its fixture; here are the checks
of one representative (forward, backward, fx, TorchScript, torchvision's initialisation
and train mode), the language pieces transformers need (tokens, learnable tensors with a
batch dimension, attention, token selection, expressions in the input shape), and the
bundled CIFAR variant."""

from __future__ import annotations

import math
import warnings

import pytest
import torch

from archspec import compile_spec, load_spec
from archspec._errors import SpecError
from archspec._summary import totals
from reference import NO_TORCHVISION, SPECS, assert_modes_equal, assert_optimized_agrees, torchvision_models

VIT = SPECS / "vit"


def write(tmp_path, text: str):
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def vit():
    """ViT-B/16 for 64x64 images (16 patches and the class token): every key as
    vit_b_16's but the position embedding's length."""
    torch.manual_seed(0)
    return compile_spec(VIT / "vit_b_16.yaml", image_size=64)


def test_vit_forward_backward_fx_and_torchscript(vit):
    x = torch.randn(2, 3, 64, 64)
    vit.train()
    head = vit.heads.head.weight
    with torch.no_grad():
        head.normal_(std=0.02)  # torchvision starts the head at 0: nothing upstream would get a gradient
    vit(x).pow(2).mean().backward()
    with torch.no_grad():
        head.zero_()
    missing = [n for n, p in vit.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing
    assert vit.class_token.grad.abs().sum() > 0 and vit.encoder.pos_embedding.grad.abs().sum() > 0
    vit.zero_grad(set_to_none=True)
    vit.eval()
    with torch.no_grad():
        eager = vit(x)
        traced = torch.fx.symbolic_trace(vit)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            scripted = torch.jit.script(vit)(x)
    # attention is one call in the traced graph, as torch's MultiheadAttention is
    assert sum(n.op == "call_function" and "self_attention" in n.name for n in traced.graph.nodes) == 12
    assert torch.equal(traced(x), eager)
    assert torch.allclose(scripted, eager, rtol=1e-5, atol=1e-6)
    assert eager.shape == (2, 1000)


def _std_close(t: torch.Tensor, std: float) -> bool:
    return abs(float(t.detach().double().std()) - std) <= 0.1 * std


def test_vit_default_initialisation_is_torchvision(vit):
    state = vit.state_dict()
    # the patch embedding: truncated normal with std sqrt(1 / fan_in), bias 0
    assert _std_close(state["conv_proj.weight"], math.sqrt(1 / (3 * 16 * 16))) and state["conv_proj.bias"].eq(0).all()
    assert state["class_token"].eq(0).all() and _std_close(state["encoder.pos_embedding"], 0.02)
    for i in (0, 11):
        layer = f"encoder.layers.encoder_layer_{i}"
        # torch's MultiheadAttention: in_proj xavier uniform, out_proj a Linear's default, biases 0
        assert _std_close(state[f"{layer}.self_attention.in_proj_weight"], math.sqrt(2 / (768 + 3 * 768)))
        assert _std_close(state[f"{layer}.self_attention.out_proj.weight"], 1 / math.sqrt(768) / math.sqrt(3))
        assert state[f"{layer}.self_attention.in_proj_bias"].eq(0).all()
        assert state[f"{layer}.self_attention.out_proj.bias"].eq(0).all()
        # the MLP: xavier uniform, biases normal(1e-6)
        for j, (fan_out, fan_in) in ((0, (3072, 768)), (3, (768, 3072))):
            assert _std_close(state[f"{layer}.mlp.{j}.weight"], math.sqrt(2 / (fan_in + fan_out)))
            bias = state[f"{layer}.mlp.{j}.bias"]
            assert 0 < float(bias.abs().max()) < 1e-5
        assert state[f"{layer}.ln_1.weight"].eq(1).all() and state[f"{layer}.ln_1.bias"].eq(0).all()
    assert state["heads.head.weight"].eq(0).all() and state["heads.head.bias"].eq(0).all()


def test_vit_train_mode_equals_torchvision():
    """With torchvision's model code installed, the same seed drops the same activations
    and attention weights: outputs in train mode (dropout 0.1 everywhere) are equal."""
    models = torchvision_models()
    if models is None:
        pytest.skip(NO_TORCHVISION)
    # ViT-B/16's network at a small size (the same code paths, a fraction of the time)
    sizes = dict(image_size=32, patch_size=8, dropout=0.1, attention_dropout=0.1)
    ref = models.vision_transformer.VisionTransformer(num_layers=2, num_heads=4, hidden_dim=64, mlp_dim=128, **sizes).double()
    torch.nn.init.normal_(ref.heads.head.weight, std=0.02)  # torchvision starts it at 0: the outputs would all be 0
    ours = compile_spec(VIT / "vit_b_16.yaml", layers=2, heads=4, hidden=64, mlp=128, **sizes).double()
    x = torch.randn(3, 3, 32, 32, dtype=torch.float64)
    assert_modes_equal(ref, ours, x, seed=5)
    assert not torch.equal(ours.train()(x), ours.eval()(x))  # dropout acted


def test_the_cifar_variant_extends_vit_b_16_in_a_few_lines():
    path = VIT / "vit_cifar.yaml"
    spec_lines = [line for line in path.read_text().splitlines() if line.strip() and not line.lstrip().startswith("#")]
    assert len(spec_lines) <= 16 and "extends: vit_b_16.yaml" in spec_lines
    graph = load_spec(path)
    assert graph.input_shape == (3, 32, 32)
    assert graph.nodes["encoder.pos_embedding"].shape == (8 * 8 + 1, 384)
    assert totals(graph).params == 12_470_026
    model = compile_spec(path).eval()
    torch.nn.init.normal_(model.heads.head.weight, std=0.02)  # 0 from the spec: every output would be 0
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert model(x).shape == (2, 10)
    assert_optimized_agrees(graph, model, x)  # optimize="inference", as on every bundled spec


def test_the_image_size_sets_the_input_and_the_position_embedding():
    graph = load_spec(VIT / "vit_h_14.yaml", image_size=518)
    assert graph.input_shape == (3, 518, 518)
    assert graph.nodes["encoder.pos_embedding"].tensors[""] == (1, 37 * 37 + 1, 1280)
    assert totals(graph).params == 633_470_440  # torchvision's vit_h_14 for its 518x518 weights


# ---------------------------------------------------------------------------------------
# the language pieces


def test_concat_expands_a_class_token_and_select_takes_it(tmp_path):
    path = write(tmp_path, """
archspec: 1
name: tokens
input: [5, 8]
graph:
  class_token: {op: param, shape: [1, 1, 8], batch: true, init: 1.0}
  tokens: {op: concat, from: [class_token, input], dim: 1}
  pos: {op: param, shape: [6, 8], init: 0.5}
  embedded: {op: add, from: [tokens, pos]}
  first: {op: select, dim: 1, at: 0}
""")
    graph = load_spec(path)
    assert graph.nodes["class_token"].shape == (1, 8) and graph.nodes["class_token"].tensors[""] == (1, 1, 8)
    assert graph.nodes["tokens"].shape == (6, 8) and graph.nodes["first"].shape == (8,)
    model = compile_spec(path)
    assert model.state_dict()["class_token"].shape == (1, 1, 8) and model.state_dict()["pos"].shape == (6, 8)
    x = torch.randn(3, 5, 8)
    assert torch.equal(model(x), torch.full((3, 8), 1.5))
    rest = compile_spec(path, outputs=["embedded"])(x)["embedded"]
    assert torch.equal(rest[:, 1:], x + 0.5)
    scripted = torch.jit.script(model)
    assert torch.equal(scripted(x), model(x))


def test_unflatten_and_roll_turn_tokens_into_a_shifted_grid(tmp_path):
    path = write(tmp_path, """
archspec: 1
name: grid
input: [196, 8]
graph:
  grid: {op: unflatten, dim: 1, sizes: [14, -1]}
  shifted: {op: roll, shifts: [-3, -3], dims: [1, 2]}
""")
    graph = load_spec(path)
    assert graph.nodes["grid"].shape == (14, 14, 8) and graph.nodes["shifted"].shape == (14, 14, 8)
    model = compile_spec(path)
    x = torch.randn(2, 196, 8)
    assert torch.equal(model(x), torch.roll(x.unflatten(1, (14, 14)), (-3, -3), (1, 2)))
    assert torch.equal(torch.jit.script(model)(x), model(x))


def test_attention_is_torchs_multihead_attention(tmp_path):
    path = write(tmp_path, """
archspec: 1
name: attend
input: [10, 32]
graph:
  attn: {op: attention, heads: 4}
""")
    graph = load_spec(path)
    node = graph.nodes["attn"]
    assert node.tensors == {"in_proj_weight": (96, 32), "in_proj_bias": (96,), "out_proj.weight": (32, 32), "out_proj.bias": (32,)}
    assert node.macs == 4 * 10 * 32 * 32 + 2 * 10 * 10 * 32  # projections and the two products
    model = compile_spec(path).double().eval()
    ref = torch.nn.MultiheadAttention(32, 4, batch_first=True).double().eval()
    ref.load_state_dict(model.attn.state_dict())
    x = torch.randn(2, 10, 32, dtype=torch.float64)
    with torch.no_grad():
        assert torch.allclose(model(x), ref(x, x, x, need_weights=False)[0], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("text,message", [
    ("input: [16, 64]\ngraph:\n  a: {op: attention, heads: 3}", "3 heads do not divide the width 64 of the tokens (16x64)"),
    ("input: [64]\ngraph:\n  a: {op: attention, heads: 4}", "attention needs tokens (N x D), but its input is flat features 64"),
    ("input: [16, 64]\ngraph:\n  p: {op: param, shape: [64], batch: true}\n  s: {op: concat, from: [p, input], dim: 1}",
     "with 'batch: true' the first entry of the shape is the batch's and must be 1"),
    ("input: [16, 64]\ngraph:\n  p: {op: param, shape: [2, 64]}\n  s: {op: linear, from: p, out: 3}",
     "linear cannot read the learnable tensor 'p'"),
    ("input: [16, 64]\ngraph:\n  s: {op: select, dim: 2, at: -65}", "index -65 is outside dimension 2, of size 64"),
    ("input: [196, 8]\ngraph:\n  s: {op: unflatten, dim: 1, sizes: [15, -1]}",
     "cannot unflatten dimension 1 of 196x8 (196) into [15, -1]"),
    ("input: [14, 14, 8]\ngraph:\n  s: {op: roll, shifts: [3, 3], dims: [1, 4]}", "roll: dimension 4 does not exist"),
    ("input: [3, 30, 30]\ngraph:\n  c: {op: conv2d, out: 8, kernel: 4, stride: 4, exact: true}",
     "do not tile the input height 30: 7 windows cover 28, leaving 2 unused"),
    ("input: [3, $size, $size]\nparams: {size: 0}\ngraph:\n  c: {op: conv2d, out: 8, kernel: 1}",
     "the input's dimension 1 is 0, from '$size'"),
])
def test_located_errors(tmp_path, text, message):
    path = write(tmp_path, "archspec: 1\nname: broken\n" + text + "\n")
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert message in str(info.value)
    assert info.value.loc is not None and info.value.loc.line >= 3


def test_the_input_follows_the_parameters_and_an_explicit_input_wins(tmp_path):
    path = write(tmp_path, """
archspec: 1
name: sized
input: [3, $size, "${size // 2}"]
params: {size: 32}
graph:
  c: {op: conv2d, out: 8, kernel: 1}
""")
    assert load_spec(path).input_shape == (3, 32, 16)
    assert load_spec(path, size=64).input_shape == (3, 64, 32)
    assert load_spec(path, input_shape=(3, 8, 8)).input_shape == (3, 8, 8)
