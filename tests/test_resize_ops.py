"""interpolate and pad, and op parameters that name another node for its shape (``like:``).

Each op is checked against torch.nn.functional in float64 at odd sizes; the static shapes
against what torch makes at run time over a grid of sizes, modes and scales; ``like:``
through blocks, at run-time sizes other than the spec's ``input``, under torch.fx and
TorchScript; and the graph's views of a read that is only for a shape (ordering, ``when``,
the feature-map finder).
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from archspec import SpecReferenceError, SpecShapeError, compile_spec, load_spec

HEAD = "archspec: 1\nname: tiny\ninput: [3, 13, 17]\n"


def compile_text(write_spec, body: str, head: str = HEAD, **kw):
    return compile_spec(write_spec(head + body), **kw)


def x64(*shape: int) -> torch.Tensor:
    return torch.randn(2, *shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)


# -- interpolate ------------------------------------------------------------------------------

INTERPOLATE_CASES = [
    ("size: [20, 9], mode: nearest", dict(size=[20, 9], mode="nearest")),
    ("size: 11, mode: nearest-exact", dict(size=11, mode="nearest-exact")),
    ("scale_factor: 2, mode: bilinear", dict(scale_factor=2.0, mode="bilinear")),
    ("scale_factor: [1.5, 0.7], mode: bilinear, align_corners: true", dict(scale_factor=[1.5, 0.7], mode="bilinear", align_corners=True)),
    ("scale_factor: 1.7, mode: bicubic", dict(scale_factor=1.7, mode="bicubic")),
    ("scale_factor: 1.5, mode: bilinear, recompute_scale_factor: true",
     dict(scale_factor=1.5, mode="bilinear", recompute_scale_factor=True)),
    ("size: [5, 6], mode: bilinear, antialias: true", dict(size=[5, 6], mode="bilinear", antialias=True)),
    ("size: [5, 6], mode: bicubic, antialias: true, align_corners: false",
     dict(size=[5, 6], mode="bicubic", antialias=True, align_corners=False)),
    ("scale_factor: 0.4, mode: area", dict(scale_factor=0.4, mode="area")),
    ("size: [4, 7], mode: area", dict(size=[4, 7], mode="area")),
    ("scale_factor: 3", dict(scale_factor=3.0)),
]


@pytest.mark.parametrize("written,kwargs", INTERPOLATE_CASES, ids=[c[0] for c in INTERPOLATE_CASES])
def test_interpolate_is_torchs_in_float64_at_odd_sizes(write_spec, written, kwargs):
    model = compile_text(write_spec, f"graph:\n  up: {{op: interpolate, {written}}}\n").double().eval()
    x = x64(3, 13, 17)
    want = F.interpolate(x, **kwargs)
    got = model(x)
    assert got.dtype == torch.float64 and torch.equal(got, want)
    assert tuple(want.shape[1:]) == load_spec(write_spec(HEAD + f"graph:\n  up: {{op: interpolate, {written}}}\n")).nodes["up"].shape


def test_interpolate_writes_f_interpolate_into_the_forward_and_holds_nothing(write_spec):
    model = compile_text(write_spec, "graph:\n  up: {op: interpolate, scale_factor: 2, mode: bilinear}\n")
    assert "torch.nn.functional.interpolate(x, scale_factor = [2.0, 2.0], mode = 'bilinear')" in model.code
    assert not list(model.modules())[1:] and not model.state_dict()
    g = load_spec(write_spec(HEAD + "graph:\n  up: {op: interpolate, scale_factor: 2, mode: bilinear}\n"))
    assert g.nodes["up"].macs == 0 and g.nodes["up"].n_params == 0


SCALES = st.one_of(st.sampled_from([0.3, 0.5, 0.7, 1 / 3, 2 / 3, 1.1, 1.3, 1.5, 1.7, 2.0, 2.5, 3.0, 0.999, 1.0001]),
                   st.floats(0.2, 4.0, allow_nan=False))


@settings(max_examples=120, deadline=None, derandomize=True, database=None)  # 2,000 agreed when written
@given(h=st.integers(1, 41), w=st.integers(1, 41), sh=SCALES, sw=SCALES,
       mode=st.sampled_from(["nearest", "nearest-exact", "bilinear", "bicubic", "area"]),
       recompute=st.sampled_from([None, False, True]))
def test_static_output_size_is_torchs_for_a_scale_factor(tmp_path_factory, h, w, sh, sw, mode, recompute):
    """floor(size * scale) as torch computes it, for any size and scale (torch refuses an
    empty output, or makes an empty tensor in area mode: the shape rule refuses it)."""
    path = tmp_path_factory.mktemp("scale") / "s.yaml"
    extra = "" if recompute is None else f", recompute_scale_factor: {str(recompute).lower()}"
    path.write_text(f"archspec: 1\nname: s\ninput: [1, {h}, {w}]\n"
                    f"graph:\n  up: {{op: interpolate, scale_factor: [{sh!r}, {sw!r}], mode: {mode}{extra}}}\n")
    kwargs = {} if recompute is None else {"recompute_scale_factor": recompute}
    try:
        want = tuple(F.interpolate(torch.zeros(1, 1, h, w), scale_factor=(sh, sw), mode=mode, **kwargs).shape[1:])
    except RuntimeError:  # an empty output (area mode makes an empty tensor instead)
        want = (1, 0, 0)
    if min(want) == 0:
        assert math.floor(h * sh) < 1 or math.floor(w * sw) < 1
        with pytest.raises(SpecShapeError, match="an output of at least 1x1"):
            load_spec(path)
        return
    assert load_spec(path).nodes["up"].shape == want


def test_static_size_at_odd_sizes_where_the_product_is_not_exact(write_spec):
    """Sizes where size * scale is just above or below a whole number in double precision."""
    for h, s in [(10, 0.7), (30, 0.1), (3, 1 / 3), (7, 1.3), (13, 2.3), (49, 0.29), (97, 1 / 7)]:
        g = load_spec(write_spec(f"archspec: 1\nname: s\ninput: [1, {h}, 5]\ngraph:\n"
                                 f"  up: {{op: interpolate, scale_factor: [{s!r}, 1], mode: nearest}}\n"))
        assert g.nodes["up"].shape[1] == F.interpolate(torch.zeros(1, 1, h, 5), scale_factor=(s, 1.0)).shape[2] == math.floor(h * s)


@pytest.mark.parametrize("written,message", [
    ("mode: bilinear", "interpolate needs one of 'size', 'scale_factor' or 'like'"),
    ("size: 4, scale_factor: 2", "interpolate has both 'size' and 'scale_factor'"),
    ("scale_factor: 2, align_corners: false", "'align_corners' is only for the interpolating modes, but mode is 'nearest'"),
    ("scale_factor: 2, mode: area, antialias: true", "'antialias' is only for modes bilinear and bicubic"),
    ("size: 4, recompute_scale_factor: true", "'recompute_scale_factor' is only meaningful with 'scale_factor'"),
])
def test_interpolate_refuses_what_torch_refuses(write_spec, written, message):
    """Each of these raises in F.interpolate too; here it is a located error before anything runs."""
    with pytest.raises(SpecShapeError, match=message):
        load_spec(write_spec(HEAD + f"graph:\n  up: {{op: interpolate, {written}}}\n"))


# -- like: ------------------------------------------------------------------------------------

SEG = """archspec: 1
name: seg
input: [3, 64, 64]
graph:
  stem: {op: conv2d, out: 8, kernel: 3, stride: 2, padding: 1}
  act: {op: relu}
  layer1: {op: conv2d, out: 16, kernel: 3, stride: 2, padding: 1}
  act1: {op: relu}
  layer2: {op: conv2d, out: 16, kernel: 3, stride: 2, padding: 1}
  act2: {op: relu}
  classifier: {op: conv2d, out: 5, kernel: 1}
  out: {op: interpolate, like: input, mode: bilinear, align_corners: false}
"""


def test_like_input_gives_the_input_size_at_other_run_time_sizes(write_spec):
    """Compiled at 3x64x64, run at 3x97x113: the output is 97x113 (the code reads the size
    at run time; the static shape is the spec input's)."""
    path = write_spec(SEG)
    assert load_spec(path).nodes["out"].shape == (5, 64, 64)
    model = compile_spec(path).double().eval()
    x = x64(3, 97, 113)
    got = model(x)
    assert got.shape == (2, 5, 97, 113)
    inner = model.classifier(model.act2(model.layer2(model.act1(model.layer1(model.act(model.stem(x)))))))
    assert torch.equal(got, F.interpolate(inner, size=(97, 113), mode="bilinear", align_corners=False))
    assert "x.size(-2)" in model.code and "x.size(-1)" in model.code


def test_like_input_under_fx_and_torchscript(write_spec):
    model = compile_spec(write_spec(SEG)).eval()
    x = torch.randn(2, 3, 45, 71)
    want = model(x)
    traced = torch.fx.symbolic_trace(model)
    assert torch.equal(traced(x), want)
    scripted = torch.jit.script(model)
    assert torch.equal(scripted(x), want) and scripted(torch.randn(1, 3, 33, 20)).shape == (1, 5, 33, 20)


def test_features_only_ignores_a_read_of_the_input_for_its_shape(write_spec):
    """The head's 'like: input' reads the input only for its size: the backbone's maps are
    still cuts between stages (with the read counted, nothing after the stem was one)."""
    model = compile_spec(write_spec(SEG), features_only=True)
    assert model.feature_info.module_name() == ["act", "act1", "act2"]
    assert model.feature_info.reduction() == [2, 4, 8]
    assert [tuple(f.shape) for f in model(torch.randn(1, 3, 64, 64))] == [(1, 8, 32, 32), (1, 16, 16, 16), (1, 16, 8, 8)]


def test_like_in_a_block_reads_the_blocks_input(write_spec):
    """'like: input' inside a block is the block's input (as 'from: input' is), not the network's."""
    body = """blocks:
  resample:
    seq:
      down: {op: conv2d, out: 4, kernel: 3, stride: 2}
      up: {op: interpolate, like: input, mode: nearest}
  one: {op: interpolate, like: input, mode: bilinear}
graph:
  pool: {op: maxpool2d, kernel: 2}
  block: {use: resample}
  shrink: {op: conv2d, out: 4, kernel: 3, stride: 3}
  back: {use: one}
"""
    path = write_spec(HEAD + body)
    g = load_spec(path)
    assert g.nodes["block.up"].shape == (4, 6, 8) and g.nodes["block.up"].sources == ["block.down", "pool"]
    assert g.nodes["back"].shape == (4, 2, 2) and g.nodes["back"].sources == ["shrink", "shrink"]
    model = compile_spec(path).eval()
    for h, w in [(13, 17), (30, 41)]:
        out = model.block(model.pool(torch.randn(1, 3, h, w)))
        assert out.shape[2:] == (h // 2, w // 2)


def test_like_names_a_sibling_by_expression(write_spec):
    body = """params: {full: true}
graph:
  conv: {op: conv2d, out: 4, kernel: 3, stride: 2}
  mid: {op: conv2d, out: 4, kernel: 3, stride: 2}
  up: {op: interpolate, like: "${'input' if full else 'conv'}"}
"""
    path = write_spec(HEAD + body)
    assert load_spec(path).nodes["up"].shape == (4, 13, 17)
    assert load_spec(path, full=False).nodes["up"].shape == (4, 6, 8)


def test_a_like_read_orders_the_graph(write_spec):
    """A node read only for its shape is computed before the reader, even when written after it."""
    body = """graph:
  small: {op: maxpool2d, kernel: 4}
  up: {op: interpolate, like: side}
  side: {op: conv2d, out: 2, kernel: 3, from: input}
  out: {op: concat, from: [up, side]}
"""
    g = load_spec(write_spec(HEAD + body))
    assert g.order.index("side") < g.order.index("up")
    assert g.nodes["up"].shape == (3, 11, 15) and g.nodes["out"].shape == (5, 11, 15)


def test_a_switched_off_interpolate_stands_for_its_input_not_its_like(write_spec):
    """Switched off by a shape-dependent 'when', the node passes its 'from' input on (the
    node it reads for its shape is not an input it could stand for)."""
    body = """graph:
  conv: {op: conv2d, out: 4, kernel: 3, stride: 2}
  up: {op: interpolate, like: input, when: "${in_h > 100}"}
  head: {op: conv2d, out: 2, kernel: 1}
"""
    g = load_spec(write_spec(HEAD + body))
    assert not g.nodes["up"].enabled and g.nodes["head"].sources == ["conv"] and g.nodes["head"].shape == (2, 6, 8)


def test_like_of_a_node_switched_off_by_its_shape_is_an_error(write_spec):
    body = """graph:
  conv: {op: conv2d, out: 4, kernel: 3, stride: 2}
  extra: {op: conv2d, out: 4, kernel: 1, when: "${in_c > 10}"}
  up: {op: interpolate, like: extra, from: conv}
"""
    with pytest.raises(SpecReferenceError, match="'like' names 'extra', which is switched off") as e:
        load_spec(write_spec(HEAD + body))
    assert (e.value.loc.line, e.value.loc.col, e.value.node) == (7, 31, "up")


def test_a_node_switched_off_with_the_node_it_reads_for_its_shape_is_no_error(write_spec):
    """What the hint says: the same 'when' on both, decided by the shape."""
    body = """graph:
  conv: {op: conv2d, out: 4, kernel: 3, stride: 2}
  extra: {op: conv2d, out: 4, kernel: 1, when: "${in_c > 10}"}
  up: {op: interpolate, like: extra, from: conv, when: "${in_c > 10}"}
  head: {op: conv2d, out: 2, kernel: 1}
"""
    g = load_spec(write_spec(HEAD + body))
    assert not g.nodes["up"].enabled and g.nodes["head"].sources == ["conv"]


def test_optimize_for_inference_keeps_like(write_spec):
    model = compile_spec(write_spec(SEG)).eval()
    fast = compile_spec(write_spec(SEG), optimize="inference", weights=model.state_dict())
    x = torch.randn(1, 3, 37, 51)
    assert torch.allclose(fast(x), model(x), atol=1e-5) and fast(x).shape == (1, 5, 37, 51)


# -- pad ------------------------------------------------------------------------------------

PAD_CASES = [
    ("amounts: 2", dict(pad=[2, 2, 2, 2])),
    ("amounts: [1, 2, 3, 0], value: 1.5", dict(pad=[1, 2, 3, 0], value=1.5)),
    ("amounts: [-1, 2, 0, -3]", dict(pad=[-1, 2, 0, -3])),
    ("amounts: [3, 2, 1, 4], mode: reflect", dict(pad=[3, 2, 1, 4], mode="reflect")),
    ("amounts: [5, 1, 0, 2], mode: replicate", dict(pad=[5, 1, 0, 2], mode="replicate")),
    ("amounts: [13, 17, 13, 1], mode: circular", dict(pad=[13, 17, 13, 1], mode="circular")),
    ('amounts: ["${in_w % 4}", 0, "${in_h // 4}", 1]', dict(pad=[1, 0, 3, 1])),
]


@pytest.mark.parametrize("written,kwargs", PAD_CASES, ids=[c[0] for c in PAD_CASES])
def test_pad_is_torchs_in_float64(write_spec, written, kwargs):
    path = write_spec(HEAD + f"graph:\n  pad: {{op: pad, {written}}}\n")
    model = compile_spec(path).double().eval()
    x = x64(3, 13, 17)
    want = F.pad(x, **kwargs)
    assert torch.equal(model(x), want)
    assert load_spec(path).nodes["pad"].shape == tuple(want.shape[1:])


UNET_UP = """archspec: 1
name: up
input: [3, 57, 43]
graph:
  skip: {op: conv2d, out: 4, kernel: 3, padding: 1}
  down: {op: maxpool2d, kernel: 2}
  deep: {op: conv2d, out: 4, kernel: 3, padding: 1}
  up: {op: interpolate, scale_factor: 2}
  padded: {op: pad, like: skip}
  cat: {op: concat, from: [skip, padded]}
"""


def test_pad_like_is_the_unets_pad_to_its_skip(write_spec):
    """milesial/Pytorch-UNet: diff // 2 before, the rest after; at the spec's size and at
    others (run time), where the upsampled map is 1 or 2 short of its skip."""
    path = write_spec(UNET_UP)
    g = load_spec(path)
    assert g.nodes["up"].shape == (4, 56, 42) and g.nodes["padded"].shape == (4, 57, 43) and g.nodes["cat"].shape == (8, 57, 43)
    model = compile_spec(path).double().eval()
    for h, w in [(57, 43), (97, 113), (64, 64), (31, 30)]:
        x = x64(3, h, w)
        skip = model.skip(x)
        up = F.interpolate(model.deep(model.down(skip)), scale_factor=2.0)
        dy, dx = skip.shape[2] - up.shape[2], skip.shape[3] - up.shape[3]
        want = torch.cat([skip, F.pad(up, [dx // 2, dx - dx // 2, dy // 2, dy - dy // 2])], 1)
        assert torch.equal(model(x), want)
    scripted = torch.jit.script(model)
    traced = torch.fx.symbolic_trace(model)
    x = x64(3, 31, 47)
    assert torch.equal(scripted(x), model(x)) and torch.equal(traced(x), model(x))


@settings(max_examples=100, deadline=None, derandomize=True, database=None)
@given(h=st.integers(1, 12), w=st.integers(1, 12), amounts=st.lists(st.integers(-3, 12), min_size=4, max_size=4),
       mode=st.sampled_from(["constant", "reflect", "replicate", "circular"]))
def test_static_pad_shape_is_torchs_or_a_located_error(tmp_path_factory, h, w, amounts, mode):
    """Where torch pads, the static shape is its; where torch refuses (reflect padding not
    smaller than the input, circular wrapping more than once, a constant crop of more than
    the input), the spec is refused. Negative amounts crop, as torch's do (agreed on 3,000
    draws when written)."""
    path = tmp_path_factory.mktemp("pad") / "p.yaml"
    path.write_text(f"archspec: 1\nname: p\ninput: [2, {h}, {w}]\ngraph:\n  pad: {{op: pad, amounts: {amounts}, mode: {mode}}}\n")
    try:
        want = tuple(F.pad(torch.randn(1, 2, h, w), amounts, mode=mode).shape[1:])
        ok = min(want) > 0
    except (RuntimeError, ValueError):
        ok = False
    if ok:
        assert load_spec(path).nodes["pad"].shape == want
    else:
        with pytest.raises(SpecShapeError):
            load_spec(path)


def test_pad_refuses_a_value_outside_constant_mode(write_spec):
    with pytest.raises(SpecShapeError, match="'value' is for mode constant"):
        load_spec(write_spec(HEAD + "graph:\n  pad: {op: pad, amounts: 1, mode: reflect, value: 2}\n"))
    with pytest.raises(RuntimeError, match="doesn.t take in value"):  # as torch does
        F.pad(torch.zeros(1, 1, 4, 4), [1, 1, 1, 1], mode="reflect", value=2.0)


def test_a_node_read_only_for_its_shape_is_computed_and_held_until_read(write_spec):
    """The read is an edge of the graph: the eval graph computes the node (nothing else
    reads it) and the activation peak holds it until the reader has run."""
    body = """graph:
  wide: {op: conv2d, out: 64, kernel: 1}
  narrow: {op: conv2d, out: 1, kernel: 3, stride: 2, from: input}
  up: {op: interpolate, like: wide}
"""
    from archspec._ir import needed

    g = load_spec(write_spec(HEAD + body))
    assert needed(g, training=False) == ["wide", "narrow", "up"]
    assert ("wide", 64 * 13 * 17 * 4) in g.activations.live and g.activations.at == "up"


def test_the_concat_hint_for_a_skip_at_another_resolution_is_a_fix(write_spec):
    """tests/bad_specs/shape-concat-skip.yaml with what its hint says: pad the transposed
    convolution's map to its skip's size; right at the spec's odd size and at others."""
    body = """archspec: 1
name: up
input: [3, 57, 57]
graph:
  enc: {op: conv2d, out: 4, kernel: 3, padding: 1}
  down: {op: maxpool2d, kernel: 2}
  mid: {op: conv2d, out: 8, kernel: 3, padding: 1}
  up: {op: conv_transpose2d, out: 4, kernel: 2, stride: 2}
  padded: {op: pad, like: enc}
  cat: {op: concat, from: [enc, padded]}
"""
    path = write_spec(body)
    assert load_spec(path).nodes["cat"].shape == (8, 57, 57)
    model = compile_spec(path).eval()
    for h, w in [(57, 57), (97, 113), (16, 17)]:
        assert model(torch.randn(1, 3, h, w)).shape == (1, 8, h, w)
