"""Swin's ops, ``window_attention`` and ``patch_merge`` (archspec/ops/window.py), one by one:
equal to torchvision's modules, traceable and scriptable, started as their module starts,
counted as torchvision counts them. The whole networks are checked by test_zoo.py, their
mistakes by tests/bad_specs/shape-window-*.yaml."""

from __future__ import annotations

import math
import warnings

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from archspec import compile_spec, load_spec
from archspec.layers import PatchMerge, WindowAttention, relative_coords_table, relative_position_index
from reference import NO_TORCHVISION, torchvision_models

# (height, width, window, shift): padded maps, a shift dropped along an axis the window
# covers whole, rectangular windows, a window larger than the map (the module allows it)
CASES = [(14, 14, [7, 7], [3, 3]), (9, 11, [4, 3], [2, 1]), (16, 5, [4, 8], [2, 4]), (5, 5, [7, 7], [3, 3])]


@pytest.mark.parametrize("cosine", [False, True], ids=["v1", "v2"])
def test_window_attention_equals_torchvision(cosine):
    models = torchvision_models()
    if models is None:
        pytest.skip(NO_TORCHVISION)
    tv = models.swin_transformer
    torch.manual_seed(0)
    for h, w, window, shift in CASES:
        ref = (tv.ShiftedWindowAttentionV2 if cosine else tv.ShiftedWindowAttention)(12, window, shift, 3).double()
        ours = WindowAttention(12, 3, window, shift, cosine=cosine).double()
        state = ref.state_dict()
        assert list(state) == list(ours.state_dict())  # the same keys, in the same order
        assert torch.equal(ours.relative_position_index, state["relative_position_index"])  # as torchvision computes it
        if cosine:
            assert torch.equal(ours.relative_coords_table, state["relative_coords_table"].float())
        for value in state.values():  # random floats everywhere (also the coordinates table and logit_scale)
            if value.is_floating_point():
                value.copy_(torch.randn_like(value))
        ours.load_state_dict(state)
        x = torch.randn(2, h, w, 12, dtype=torch.float64)
        with torch.no_grad():
            expected = ref(x)
            assert torch.allclose(ours(x), expected, rtol=1e-12, atol=1e-12), (h, w, window, shift)
    x = torch.randn(2, 7, 9, 5)
    assert torch.equal(PatchMerge()(x), tv._patch_merging_pad(x))  # the 2x2 neighbours in torchvision's order


@pytest.mark.parametrize("cosine", [False, True], ids=["v1", "v2"])
def test_window_attention_traces_and_scripts(cosine):
    model = WindowAttention(8, 2, [4, 4], [2, 2], cosine=cosine).eval()
    x = torch.randn(2, 10, 6, 8)
    with torch.no_grad():
        eager = model(x)
        assert torch.equal(torch.fx.symbolic_trace(model)(x), eager)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            assert torch.allclose(torch.jit.script(model)(x), eager, rtol=1e-5, atol=1e-6)
            assert torch.equal(torch.jit.script(PatchMerge())(x), PatchMerge()(x))


def test_the_computed_buffers():
    # the offset of every pair of positions of a 2x3 window, as a row of the 3 x 5 table
    index = relative_position_index([2, 3]).view(6, 6)
    assert index.dtype == torch.int64 and index[0, 0] == index[5, 5] == 7  # no offset: the centre, row 1 * 5 + 2
    assert index[0, 5] == 0 and index[5, 0] == 14  # (-1, -2) and (+1, +2): the corners
    table = relative_coords_table([2, 3])
    assert table.shape == (1, 3, 5, 2) and table.dtype == torch.float32
    assert torch.equal(table[0, 1, 2], torch.zeros(2)) and torch.allclose(table[0, 2, 4], torch.full((2,), math.log2(9) / 3))  # offsets (+1, +2): 8 x 1


SPEC = """archspec: 1
name: tiny
input: [3, 32, 32]
graph:
  embed: {op: conv2d, out: 16, kernel: 4, stride: 4}
  last: {op: permute, dims: [0, 2, 3, 1]}
  attn: {op: window_attention, heads: 2, window: 4, shift: 2, cosine: COSINE}
  merge: {op: patch_merge}
  norm: {op: layernorm}
  reduction: {op: linear, out: 32, bias: false}
"""


@pytest.mark.parametrize("cosine", ["false", "true"], ids=["v1", "v2"])
def test_defaults_are_the_modules_own_start_draw_for_draw(write_spec, cosine):
    path = write_spec(SPEC.replace("COSINE", cosine))
    torch.manual_seed(5)
    state = compile_spec(path).state_dict()
    torch.manual_seed(5)  # the same modules built by their constructors, in the same order
    conv = torch.nn.Conv2d(3, 16, 4, stride=4)
    attn = WindowAttention(16, 2, [4, 4], [2, 2], cosine=cosine == "true")
    norm, reduction = torch.nn.LayerNorm(64), torch.nn.Linear(64, 32, bias=False)
    reference = {f"{name}.{k}": v for name, m in (("embed", conv), ("attn", attn), ("norm", norm), ("reduction", reduction))
                 for k, v in m.state_dict().items()}
    assert list(state) == list(reference)
    for key, tensor in reference.items():
        assert torch.equal(state[key], tensor), key
    if cosine == "true":
        assert state["attn.qkv.bias"][16:32].eq(0).all() and state["attn.qkv.bias"][:16].ne(0).all()


def test_an_init_rule_sets_the_attentions_linear_layers(write_spec):
    path = write_spec(SPEC.replace("COSINE", "true") + "init:\n"
                      "  - {ops: [linear, window_attention], weight: {fn: kaiming_normal, mode: fan_out}, bias: 0.5}\n")
    model = compile_spec(path)
    attn = model.attn
    for layer in (attn.qkv, attn.proj, attn.cpb_mlp[0], attn.cpb_mlp[2], model.reduction):
        assert abs(float(layer.weight.detach().std()) / (2 / layer.weight.shape[0]) ** 0.5 - 1) < 0.2
        assert layer.bias is None or layer.bias.eq(0.5).all()  # V2's zero key bias is a default, not a rule
    assert attn.logit_scale.eq(torch.log(torch.tensor(10.0))).all()  # not a weight: the module's start
    assert torch.equal(attn.relative_position_index, relative_position_index([4, 4]))


@pytest.mark.parametrize("cosine", ["false", "true"], ids=["v1", "v2"])
def test_macs_are_what_torch_counts(write_spec, cosine):
    # the projections and attention's two products over the padded map (8x8 padded to 12x12
    # by a 6x6 window), and V2's position bias MLP: what torch's flop counter counts, halved
    text = SPEC.replace("COSINE", cosine).replace("window: 4, shift: 2", "window: 6, shift: 3").split("  merge:")[0]
    path = write_spec(text)
    graph = load_spec(path)
    model = compile_spec(path).eval()
    x = torch.randn(1, 8, 8, 16)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model.attn(x)
    assert graph.nodes["attn"].macs == counter.get_total_flops() // 2
