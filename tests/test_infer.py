"""Stage 4: static shapes, parameter and MAC counts, and shape errors located in the YAML."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from archspec import Limits, SpecErrors, SpecLimitError, SpecShapeError, SpecWarning, load_spec

HEAD = "archspec: 1\nname: t\ninput: [3, 32, 32]\ngraph:\n"


def build(write_spec, body: str, **kw):
    return load_spec(write_spec(HEAD + body), **kw)


@pytest.mark.parametrize("node,shape,params,macs", [
    ("{op: conv2d, out: 8, kernel: 3}", (8, 30, 30), 8 * 27 + 8, 8 * 30 * 30 * 27),
    ("{op: conv2d, out: 8, kernel: 3, stride: 2, padding: 1, bias: false}", (8, 16, 16), 8 * 27, 8 * 16 * 16 * 27),
    ("{op: conv2d, out: 6, kernel: [1, 7], padding: [0, 3], groups: 3}", (6, 32, 32), 6 * 7 + 6, 6 * 32 * 32 * 7),
    ("{op: conv2d, kernel: 3, padding: same, depthwise: true, bias: false}", (3, 32, 32), 27, 3 * 32 * 32 * 9),
    ("{op: conv2d, out: 4, kernel: 3, dilation: 2}", (4, 28, 28), 4 * 27 + 4, 4 * 28 * 28 * 27),
    ("{op: maxpool2d, kernel: 3, stride: 2, ceil_mode: true}", (3, 16, 16), 0, 0),
    ("{op: maxpool2d, kernel: 3, stride: 2}", (3, 15, 15), 0, 0),
    ("{op: avgpool2d, kernel: 2}", (3, 16, 16), 0, 0),
    ("{op: adaptive_avgpool2d, size: [2, 3]}", (3, 2, 3), 0, 0),
    ("{op: batchnorm2d}", (3, 32, 32), 6, 0),
    ("{op: lrn, size: 5}", (3, 32, 32), 0, 0),
    ("{op: flatten}", (3072,), 0, 0),
])
def test_shape_rules(write_spec, node, shape, params, macs):
    g = build(write_spec, f"  n: {node}\n")
    n = g.nodes["n"]
    assert (n.shape, n.n_params, n.macs) == (shape, params, macs)


def test_linear_and_buffers(write_spec):
    g = build(write_spec, "  p: {op: adaptive_avgpool2d}\n  f: {op: flatten}\n  fc: {op: linear, out: 10}\n  bn: {op: identity}\n")
    assert g.nodes["fc"].shape == (10,) and g.nodes["fc"].n_params == 40 and g.nodes["fc"].macs == 30
    g = build(write_spec, "  bn: {op: batchnorm2d}\n")
    assert g.nodes["bn"].n_buffers == 7


def test_deferred_values_use_the_node_input(write_spec):
    g = build(write_spec, '  a: {op: conv2d, out: 10, kernel: 1}\n  b: {op: conv2d, out: "${in_c // 2}", kernel: "${in_h // 16}"}\n')
    assert g.nodes["b"].shape == (5, 31, 31)


def shape_error(write_spec, body: str) -> SpecShapeError:
    with pytest.raises(SpecShapeError) as e:
        build(write_spec, body)
    return e.value


def test_add_channel_mismatch_names_both_operands(write_spec):
    e = shape_error(write_spec, "  res:\n    add:\n      main: {op: conv2d, out: 8, kernel: 1}\n      short: {op: identity}\n")
    assert e.message == "cannot add inputs of different shapes: 'res.main' is 8x32x32, 'res.short' is 3x32x32"
    assert (e.loc.line, e.loc.col) == (5, 3)
    assert [(loc.line, text) for loc, text in e.notes] == [(7, "'res.main' makes 8x32x32"), (8, "'res.short' makes 3x32x32")]


def test_concat_spatial_mismatch(write_spec):
    e = shape_error(write_spec, "  c:\n    concat:\n      a: {op: conv2d, out: 8, kernel: 3, stride: 2}\n      b: {op: identity}\n")
    assert "cannot concatenate inputs with different spatial sizes: 'c.a' is 8x15x15, 'c.b' is 3x32x32" in e.message


@pytest.mark.parametrize("node,message,at", [
    ("{op: conv2d, out: 8, kernel: 50}", "the conv2d kernel spans 50 rows but the padded input height is only 32", "50"),
    ("{op: conv2d, out: 8, kernel: 3, groups: 2}", "groups=2 does not divide the 3 input channels", "2}"),
    ("{op: conv2d, out: 4, kernel: 1, depthwise: true}", "a depthwise conv makes a multiple of its 3 input channels, but out is 4", "4,"),
    ("{op: linear, out: 10}", "linear acts on the last dimension, but its input is an image 3x32x32", "n:"),
    ("{op: maxpool2d, kernel: 2, padding: 2}", "padding 2 is more than half the kernel (2)", "2}"),
    ("{op: conv2d, out: 4, kernel: 3, stride: 2, padding: same}", "padding 'same' needs stride 1", "same"),
])
def test_shape_errors_point_at_the_value(write_spec, node, message, at):
    line = f"  n: {node}"
    e = shape_error(write_spec, line + "\n")
    assert message in e.message
    assert (e.loc.line, e.loc.col) == (5, line.index(at) + 1)
    assert e.notes[-1][1] == "its input is 3x32x32, for a network input of 3x32x32"


def test_independent_errors_are_reported_together(write_spec):
    with pytest.raises(SpecErrors) as e:
        build(write_spec, "  a: {op: conv2d, out: 4, kernel: 99}\n  b: {op: conv2d, out: 4, kernel: 1, groups: 2, from: input}\n"
                          "  c: {op: relu, from: a}\n")
    assert [err.node for err in e.value.errors] == ["a", "b"]  # c depends on a: not reported
    assert str(e.value).endswith("2 errors")


def test_unused_node_warning(write_spec):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        build(write_spec, "  a: {op: relu}\n  dead: {op: relu, from: input}\n  b: {op: relu, from: a}\n")
    found = [w.message for w in caught if isinstance(w.message, SpecWarning)]
    assert len(found) == 1 and found[0].node == "dead" and found[0].loc.line == 6


def _renumbering_warnings(write_spec, text, **kw):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        g = load_spec(write_spec(text), **kw)
    return g, [w.message for w in caught if isinstance(w.message, SpecWarning) and "takes no number" in w.message.message]


RENUMBERED = """archspec: 1
name: t
params: {pool: false}
input: [3, 16, 16]
graph:
  downsample:
    - {op: conv2d, out: 8, kernel: 3}
    - {op: maxpool2d, kernel: 2, when: WHEN}
    - {op: relu}
    - {op: conv2d, out: 8, kernel: 3}
"""


def test_a_list_item_switched_off_warns_where_it_moves_checkpoint_keys(write_spec):
    """A literal 'when: false' moved 'downsample.3' to 'downsample.2' (and its checkpoint keys) without a word."""
    g, found = _renumbering_warnings(write_spec, RENUMBERED.replace("WHEN", "false"))
    assert "downsample.2" in g.nodes and "downsample.3" not in g.nodes  # the rule: items that are on are numbered
    assert len(found) == 1 and found[0].node == "downsample.1" and (found[0].loc.line, found[0].loc.col) == (8, 40)
    assert found[0].message == ("this list item is switched off ('when' is false) and takes no number, so the items "
                                "after it are numbered lower: 'downsample.3', which holds weights, is 'downsample.2' "
                                "(its checkpoint keys move with it)")  # the relu moved too, but holds nothing
    assert "mapping body" in found[0].hint
    # the spec's own parameter decides: its design, quiet (an override to the same value too); an override that
    # turns it off warns
    assert _renumbering_warnings(write_spec, RENUMBERED.replace("WHEN", "$pool"))[1] == []
    assert _renumbering_warnings(write_spec, RENUMBERED.replace("WHEN", "$pool"), params={"pool": False})[1] == []
    pooled = RENUMBERED.replace("WHEN", "$pool").replace("pool: false", "pool: true")
    _, found = _renumbering_warnings(write_spec, pooled, params={"pool": False})
    assert [w.message.split(" and takes")[0] for w in found] == [
        "this list item is switched off ('when' is false with 'pool' set by an override)"]
    # VGG numbers its layers as torchvision does, batch norm or not: an override of batch_norm moves nothing it did not plan
    for batch_norm in (True, False):
        vgg = (Path(__file__).parent.parent / "specs" / "vgg" / "vgg16.yaml").read_text()
        assert _renumbering_warnings(write_spec, vgg, batch_norm=batch_norm)[1] == []
    # nothing that holds weights after it, or a mapping body (names stay): quiet
    weightless = RENUMBERED.replace("WHEN", "false").rsplit("    - {op: conv2d", 1)[0]
    assert _renumbering_warnings(write_spec, weightless)[1] == []
    mapping = "archspec: 1\nname: t\ninput: [3, 16, 16]\ngraph:\n  a: {op: relu, when: false}\n  b: {op: conv2d, out: 8, kernel: 3}\n"
    assert _renumbering_warnings(write_spec, mapping)[1] == []


def test_parameter_limit_refuses_before_allocating(write_spec):
    with pytest.raises(SpecLimitError) as e:
        build(write_spec, "  f: {op: flatten}\n  huge: {op: linear, out: 100000000}\n")
    assert "would have 307,300,000,000 parameters" in str(e.value)
    g = build(write_spec, "  f: {op: flatten}\n  fc: {op: linear, out: 1000}\n", limits=Limits(max_parameters=10**7))
    assert g.nodes["fc"].n_params == 3_073_000
    with pytest.raises(SpecLimitError, match="Limits.max_parameters"):
        build(write_spec, "  f: {op: flatten}\n  fc: {op: linear, out: 1000}\n", limits=Limits(max_parameters=10**6))



def test_buffers_count_at_their_dtype_against_the_byte_limit(write_spec):
    # batch norm's batch count and Swin's position index are int64: 8 bytes a value
    g = build(write_spec, "  bn: {op: batchnorm2d}\n  q: {op: permute, dims: [0, 2, 3, 1]}\n"
                          "  attn: {op: window_attention, heads: 1, window: 4}\n")
    bn, attn = g.nodes["bn"], g.nodes["attn"]
    assert bn.dtypes == {"num_batches_tracked": "int64"} and bn.weight_bytes == 4 * 12 + 8
    assert attn.dtypes == {"relative_position_index": "int64"}
    assert attn.weight_bytes == 4 * attn.n_params + 8 * 16 * 16
    # no parameters at all, but 12 MB of running statistics: refused at the node, before anything exists
    spec = "archspec: 1\nname: t\ninput: [1500000]\ngraph:\n  bn: {op: batchnorm1d, affine: false}\n"
    with pytest.raises(SpecLimitError) as e:
        load_spec(write_spec(spec), limits=Limits(max_weight_bytes=10**7))
    assert "would take 12.0 MB (12,000,008 bytes), over the limit of 10,000,000 (Limits.max_weight_bytes)" in str(e.value)
    assert e.value.node == "bn" and e.value.loc.line == 5
    assert load_spec(write_spec(spec), limits=Limits(max_weight_bytes=2 * 10**7)).nodes["bn"].n_params == 0
    # the 300x300 window: its index is 64.8 GB at int64 (the summary said 32.4, as float32)
    from archspec._summary import totals

    spec = ("archspec: 1\nname: t\ninput: [3, 300, 300]\ngraph:\n  q: {op: permute, dims: [0, 2, 3, 1]}\n"
            "  attn: {op: window_attention, heads: 1, window: 300}\n")
    t = totals(load_spec(write_spec(spec), limits=Limits(max_weight_bytes=10**11)))
    assert (t.weight_bytes, t.by_dtype["int64"]) == (64_801_435_396, (0, 8_100_000_000))


def test_activation_peak_follows_the_eval_order(write_spec):
    from archspec._ir import activation_peak

    # input 3x32x32 (12,288 bytes) stays; conv 8x32x32 (32 KB) and its relu, in place, share
    # memory; the flatten is a view of it; fc2 runs once fc1 has, when conv's output is freed
    g = build(write_spec, "  conv: {op: conv2d, out: 8, kernel: 3, padding: 1}\n  act: {op: relu}\n"
                          "  f: {op: flatten}\n  fc1: {op: linear, out: 100}\n  fc2: {op: linear, out: 10}\n")
    peak = activation_peak(g)
    assert peak.bytes == 12_288 + 32_768 + 400 and peak.at == "fc1"
    assert peak.live == [("conv", 32_768), ("input", 12_288), ("fc1", 400)]
    # without the in-place relu, the conv's output and the relu's are held at once
    g = build(write_spec, "  conv: {op: conv2d, out: 8, kernel: 3, padding: 1}\n  act: {op: relu, inplace: false}\n"
                          "  f: {op: flatten}\n")
    assert (activation_peak(g).bytes, activation_peak(g).at) == (12_288 + 2 * 32_768, "act")


def test_activation_limit_refuses_a_forward_too_large(write_spec):
    spec = "  conv: {op: conv2d, out: 8, kernel: 3, padding: 1}\n  pool: {op: adaptive_avgpool2d, size: 1000}\n"
    with pytest.raises(SpecLimitError) as e:
        build(write_spec, spec, limits=Limits(max_activation_bytes=10**7))
    assert e.value.node == "pool" and e.value.loc.line == 6
    assert "would hold 32.0 MB of activations per sample here (32,045,056 bytes in float32" in str(e.value)
    assert "(Limits.max_activation_bytes)" in str(e.value)
    g = build(write_spec, spec, limits=Limits(max_activation_bytes=10**8))
    assert g.nodes["pool"].shape == (8, 1000, 1000)


# -- regressions from review --------------------------------------------------------------
# Defects found in review, each pinned by a test (the spec that showed it, and what must
# happen instead): moved here from tests/test_regressions.py, beside the stage they guard.

from archspec import SpecReferenceError, SpecSchemaError, compile_spec

H = "archspec: 1\nname: t\ninput: [3, 8, 8]\n"


def spec(write_spec, text, **kw):
    return load_spec(write_spec(H + text), **kw)


def test_cycles_and_long_chains_through_switched_off_nodes(write_spec):
    with pytest.raises(SpecReferenceError, match="cycle through nodes that are switched off"):
        spec(write_spec, "graph:\n  a: {op: relu, when: false, from: b}\n  b: {op: relu, when: false, from: a}\n"
                         "  c: {op: relu, from: a}\n")
    chain = "graph:\n  n0: {op: relu}\n" + "".join(f"  n{i}: {{op: relu, when: false}}\n" for i in range(1, 3000)) + "  end: {op: relu}\n"
    g = spec(write_spec, chain)
    assert g.nodes["end"].sources == ["n0"]


def test_an_output_of_a_node_switched_off_by_shape_is_left_out(write_spec):
    g = spec(write_spec, "graph:\n  conv: {op: conv2d, out: 4, kernel: 1}\n  extra: {op: relu, when: \"${in_c == 3}\"}\n"
                         "outputs: {main: conv, aux: {node: extra, training_only: true}}\n")
    assert [o.name for o in g.outputs] == ["main"]


def test_validate_finds_what_build_would(write_spec):
    with pytest.raises(SpecShapeError, match="cannot run in place"):
        spec(write_spec, "graph:\n  r: {op: relu, inplace: true}\n")
    with pytest.raises(SpecSchemaError, match="kaiming_normal cannot initialise 'bn.weight'"):
        spec(write_spec, "graph:\n  bn: {op: batchnorm2d}\ninit:\n  - {ops: [batchnorm2d], weight: {fn: kaiming_normal}}\n")


# - second review (an adversarial audit of the messages)


@pytest.mark.parametrize("init", [
    "{fn: kaiming_uniform, a: 1e300}", "{fn: normal, std: 1e300}", "{fn: xavier_normal, gain: 1e300}", "1e300",
    "{fn: normal, mean: 3e38, std: 3e38}",
])
def test_init_rules_cannot_make_weights_float32_cannot_hold(write_spec, init):
    path = write_spec(H + f"graph:\n  c: {{op: conv2d, out: 2, kernel: 1}}\ninit:\n  - {{ops: [conv2d], weight: {init}}}\n")
    with pytest.raises(SpecSchemaError, match="float32") as e:
        compile_spec(path)
    assert e.value.node == "init rule 1"
