"""Dilation as a parameter of the ResNet and MobileNetV3 family specs, as torchvision's
segmentation models build their backbones: ResNet's ``replace_stride_with_dilation`` and
MobileNetV3's ``dilated``. Against the fixtures of tests/fixtures/segmentation (the facts
measured from torchvision, so CI checks them without it) and, where torchvision's model
code is installed, against it directly for more combinations. The defaults leave every
spec as it was: test_zoo.py and test_seeds.py check those keys, counts and GMACs."""

from __future__ import annotations

import pytest
import torch

from archspec import SpecError, compile_spec, load_spec
from archspec._compiler import build_model
from reference import NO_TORCHVISION, SPECS, materialize, relative_error, segmentation_fixture, torchvision_models

TRUNKS = {  # fixture -> (spec, the params torchvision's builder took)
    "resnet50_dilated": ("resnet/resnet50", {"replace_stride_with_dilation": [False, True, True]}),
    "mobilenet_v3_large_dilated": ("mobilenet/mobilenet_v3_large", {"dilated": True}),
}


def deterministic_input(shape):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)


def compiled(spec: str, size, **params):
    graph = load_spec(SPECS / f"{spec}.yaml", input_shape=(3, *size), **params)
    return graph, materialize(build_model(graph, device="meta"), graph=graph).eval()


@pytest.mark.parametrize("name", sorted(TRUNKS))
def test_a_dilated_trunk_is_torchvisions_key_for_key_and_value_for_value(name):
    ref = segmentation_fixture(name)
    spec, params = TRUNKS[name]
    _, model = compiled(spec, ref["input_shape"][2:], **params)
    assert [[k, list(v.shape)] for k, v in model.state_dict().items()] == ref["state_dict"]
    assert sum(p.numel() for p in model.parameters()) == ref["parameters"]
    with torch.no_grad():
        logits = model(deterministic_input(ref["input_shape"]))
    assert relative_error(logits, torch.tensor(ref["logits"], dtype=torch.float64)) < 1e-9
    # the feature maps' shapes (the input is 97x113: odd, so every rounding shows)
    taps = compile_spec(SPECS / f"{spec}.yaml", input_shape=(3, 97, 113), outputs=list(ref["feature_shapes"]),
                        device="meta", **params)
    maps = taps(torch.empty(ref["input_shape"], device="meta"))
    assert {k: list(v.shape) for k, v in maps.items()} == ref["feature_shapes"]


def test_resnet_dilated_stages_keep_the_resolution_of_the_last_strided_one():
    shapes = segmentation_fixture("resnet50_dilated")["feature_shapes"]
    assert shapes["layer2"][2:] == shapes["layer3"][2:] == shapes["layer4"][2:] == [13, 15]  # 97x113 / 8, rounded up
    # and at 224: layer4 at stride 8 (28x28), its 3x3 convs dilated 2 then 4 as torchvision's
    graph = load_spec("resnet50", replace_stride_with_dilation=[False, True, True])
    nodes = {graph.nodes[p].display: graph.nodes[p] for p in graph.order}
    assert nodes["layer4.2.relu3"].shape == (2048, 28, 28)
    dilations = {k: n.concrete.dilation[0] for k, n in nodes.items() if k.endswith("conv2")}
    assert dilations["layer2.0.conv2"] == dilations["layer3.0.conv2"] == 1  # a stage's first block: the dilation before it
    assert dilations["layer3.1.conv2"] == dilations["layer4.0.conv2"] == 2
    assert dilations["layer4.1.conv2"] == dilations["layer4.2.conv2"] == 4
    assert nodes["layer4.0.conv2"].concrete.padding == (2, 2) and nodes["layer4.0.conv2"].concrete.stride == (1, 1)
    assert nodes["layer3.0.downsample.0"].concrete.stride == (1, 1)  # the 1x1 shortcut still made (the channels change), unstrided


def test_mobilenet_dilated_rows_keep_the_resolution():
    shapes = segmentation_fixture("mobilenet_v3_large_dilated")["feature_shapes"]
    assert shapes["features.12"][2:] == shapes["features.16"][2:] == [7, 8]  # 97x113 / 16, rounded up
    graph = load_spec("mobilenet_v3_large", dilated=True)
    nodes = {graph.nodes[p].display: graph.nodes[p] for p in graph.order}
    depthwise = {k: n.concrete for k, n in nodes.items() if k.endswith("block.1.0")}
    assert [depthwise[f"features.{i}.block.1.0"].dilation for i in (12, 13, 14, 15)] == [(1, 1)] + [(2, 2)] * 3
    assert depthwise["features.13.block.1.0"].stride == (1, 1) and depthwise["features.13.block.1.0"].padding == (4, 4)
    assert nodes["features.16.2"].shape == (960, 14, 14)


def test_the_defaults_change_nothing():
    for spec, params in TRUNKS.values():
        default, dilated_off = load_spec(SPECS / f"{spec}.yaml"), load_spec(
            SPECS / f"{spec}.yaml", **{k: [False] * 3 if isinstance(v, list) else False for k, v in params.items()})
        assert [default.nodes[p].shape for p in default.order] == [dilated_off.nodes[p].shape for p in dilated_off.order]


def test_a_basic_block_refuses_a_dilation_as_torchvision_does():
    with pytest.raises(SpecError) as e:
        compile_spec("resnet18", replace_stride_with_dilation=[False, True, True], device="meta")
    text = str(e.value)
    assert "'dilation' is 2 (expected 1)" in text and "in layer3.1" in text
    assert "resnet50.yaml" in text and "Dilation > 1 not supported" in text  # located, and says why
    compile_spec("resnet18", replace_stride_with_dilation=[False, False, False], device="meta")


@pytest.mark.parametrize("builder,spec,params", [
    ("resnet50", "resnet/resnet50", {"replace_stride_with_dilation": [False, True, True]}),
    ("resnet101", "resnet/resnet101", {"replace_stride_with_dilation": [True, False, True]}),
    ("resnext50_32x4d", "resnet/resnext50_32x4d", {"replace_stride_with_dilation": [True, True, True]}),
    ("mobilenet_v3_large", "mobilenet/mobilenet_v3_large", {"dilated": True}),
    ("mobilenet_v3_small", "mobilenet/mobilenet_v3_small", {"dilated": True}),
])
def test_against_torchvision(builder, spec, params):
    tv = torchvision_models()
    if tv is None:
        pytest.skip(NO_TORCHVISION)
    with torch.device("meta"):
        ref = getattr(tv, builder)(**params)
    ref = materialize(ref).eval()
    _, model = compiled(spec, (97, 113), **params)
    assert {k: v.shape for k, v in model.state_dict().items()} == {k: v.shape for k, v in ref.state_dict().items()}
    x = deterministic_input((2, 3, 97, 113))
    with torch.no_grad():
        assert relative_error(model(x), ref(x)) < 1e-9


def test_torchvision_refuses_the_dilated_basic_block_too():
    tv = torchvision_models()
    if tv is None:
        pytest.skip(NO_TORCHVISION)
    with pytest.raises(NotImplementedError, match="Dilation > 1 not supported"), torch.device("meta"):
        tv.resnet18(replace_stride_with_dilation=[False, True, True])
