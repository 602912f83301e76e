"""Backbones and classifiers: compile_spec(features_only=True, out_indices=...) with a
statically known feature_info, num_features, get_classifier() and variant()."""

from __future__ import annotations

import pytest
import torch

from archspec import compile_spec, load_spec
from archspec._features import feature_maps

#: one representative of each bundled family: (channels, reductions) of its feature maps,
#: as timm reports them for the same networks where it has them (resnet50, densenet121,
#: mobilenetv3, efficientnet_b0, regnety_004, convnext_tiny, swin_tiny, inception_v3,
#: legacy_xception, vgg11_bn)
FEATURES = {
    "resnet50": ([64, 256, 512, 1024, 2048], [2, 4, 8, 16, 32]),
    "densenet121": ([64, 256, 512, 1024, 1024], [2, 4, 8, 16, 32]),
    "googlenet": ([64, 192, 480, 832, 1024], [2, 4, 8, 16, 32]),
    "inception_v3": ([64, 192, 288, 768, 2048], [2, 4, 8, 16, 32]),
    "xception": ([64, 128, 256, 728, 2048], [2, 4, 8, 16, 32]),
    "alexnet": ([64, 192, 256, 256], [4, 8, 16, 32]),
    "vgg11_bn": ([64, 128, 256, 512, 512, 512], [1, 2, 4, 8, 16, 32]),
    "squeezenet1_1": ([64, 128, 256, 512], [2, 4, 8, 16]),
    "mobilenet_v3_large": ([16, 24, 40, 112, 960], [2, 4, 8, 16, 32]),
    "mnasnet1_0": ([16, 24, 40, 96, 1280], [2, 4, 8, 16, 32]),
    "shufflenet_v2_x1_0": ([24, 24, 116, 232, 1024], [2, 4, 8, 16, 32]),
    "efficientnet_b0": ([16, 24, 40, 112, 1280], [2, 4, 8, 16, 32]),
    "regnet_y_400mf": ([32, 48, 104, 208, 440], [2, 4, 8, 16, 32]),
    "convnext_tiny": ([96, 192, 384, 768], [4, 8, 16, 32]),
    "swin_t": ([96, 192, 384, 768], [4, 8, 16, 32]),
}


@pytest.mark.parametrize("name", sorted(FEATURES))
def test_feature_maps_are_known_statically_and_are_what_the_backbone_returns(name):
    channels, reductions = FEATURES[name]
    model = compile_spec(name, features_only=True, device="meta")  # no memory, no compute
    info = model.feature_info
    assert info.channels() == channels and info.reduction() == reductions
    size = load_spec(name).input_shape[-1]
    outs = model(torch.empty(2, 3, size, size, device="meta"))
    assert isinstance(outs, list) and len(outs) == len(channels)
    for out, c, r, row in zip(outs, channels, reductions, info):
        channels_last = name == "swin_t"  # Swin's maps are H x W x C, as the network computes them
        assert (out.shape[-1] if channels_last else out.shape[1]) == c == row["num_chs"]
        assert out.shape[1 if channels_last else 2] == -(-size // r) or abs(size / out.shape[1 if channels_last else 2] - r) < r / 2


def test_a_backbone_returns_the_networks_own_values_and_loads_its_whole_checkpoint(tmp_path):
    torch.manual_seed(0)
    full = compile_spec("resnet18").eval()
    torch.save(full.state_dict(), tmp_path / "resnet18.pth")
    backbone = compile_spec("resnet18", features_only=True, out_indices=[1, -1], weights=tmp_path / "resnet18.pth").eval()
    assert backbone.feature_info.module_name() == ["layer1", "layer4"]
    assert backbone.load_report.complete  # the whole network's checkpoint, strictly
    assert not any(k.startswith("fc.") for k in backbone.state_dict())  # then the head is dropped
    taps = compile_spec("resnet18", outputs=["layer1", "layer4"], weights=tmp_path / "resnet18.pth").eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        got, want = backbone(x), taps(x)
        assert [tuple(t.shape) for t in got] == [(2, 64, 16, 16), (2, 512, 2, 2)]
        assert torch.equal(got[0], want["layer1"]) and torch.equal(got[1], want["layer4"])
        assert all(torch.equal(a, b) for a, b in zip(torch.jit.script(backbone)(x), got))
        assert all(torch.equal(a, b) for a, b in zip(torch.fx.symbolic_trace(backbone)(x), got))


def test_feature_selection_errors():
    with pytest.raises(ValueError, match=r"out_indices has 5, but resnet18 has 5 feature maps \(0: relu \(64 x 1/2\)"):
        compile_spec("resnet18", features_only=True, out_indices=[5], device="meta")
    with pytest.raises(TypeError, match="out_indices= selects feature maps: it needs features_only=True"):
        compile_spec("resnet18", out_indices=[1], device="meta")
    with pytest.raises(ValueError, match=r"vit_b_16's trunk is not images from 'patches.0' on \(reshape, 768x196\)"):
        feature_maps(load_spec("vit_b_16"))


@pytest.mark.parametrize("name,num_features,classifier", [
    ("resnet50", 2048, "fc"), ("densenet121", 1024, "classifier"), ("vgg16", 4096, "classifier.6"),
    ("squeezenet1_0", 512, "classifier.1"), ("vit_b_16", 768, "heads.head"), ("swin_t", 768, "head"),
    ("googlenet", 1024, "fc"),
])
def test_num_features_and_the_classifier(name, num_features, classifier):
    model = compile_spec(name, device="meta")
    assert model.num_features == num_features
    assert model.get_classifier() is model.get_submodule(classifier)


def test_a_variant_with_another_classifier_keeps_every_weight_that_fits():
    torch.manual_seed(0)
    model = compile_spec("resnet18", input_shape=(3, 32, 32)).double()
    ten = model.variant(num_classes=10)
    report = ten.load_report
    assert [k for k, _, _ in report.mismatched] == ["fc.weight", "fc.bias"] and not report.missing
    assert ten.fc.out_features == 10 and ten.fc.weight.dtype == torch.float64
    own = model.state_dict()
    assert all(torch.equal(v, own[k]) for k, v in ten.state_dict().items() if not k.startswith("fc."))
    assert ten.eval()(torch.randn(1, 3, 32, 32, dtype=torch.float64)).shape == (1, 10)


def test_an_optimised_model_refuses_to_make_a_variant():
    # its batch norms are folded into the convolutions: those weights would load into a
    # network that still applies the batch norms
    fast = compile_spec("resnet18", input_shape=(3, 32, 32), optimize="inference")
    with pytest.raises(RuntimeError, match="optimised for inference"):
        fast.variant(num_classes=10)
