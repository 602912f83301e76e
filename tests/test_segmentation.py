"""specs/segmentation/: torchvision's segmentation models, key for key and value for value.

FCN and DeepLabV3 over ResNet-50/101 and MobileNetV3-Large, and LR-ASPP, each a bundled
spec that nests its family's classification spec as ``backbone`` and adds its heads.
Checked as the zoo is, against the facts of tests/fixtures/segmentation (measured from
torchvision 0.28's model code; see its README): on the meta device the state_dict keys
and shapes, the parameter count and the static GMACs at 520x520 against torchvision's
published ``_ops``; the outputs (a dict of ``out`` and ``aux``, at the input's size) in
float64 under the fixture recipe's weights at 97x113, in eval mode for every model and in
train mode (dropout off) for one per backbone family; forward and backward, torch.fx and
TorchScript, ``optimize="inference"`` and ``features_only`` for a representative per
family. Where torchvision's model code is installed, its own checkpoint loads strictly and
its outputs are compared at another odd size too.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from archspec import compile_spec, load_spec
from archspec._compiler import build_model
from archspec._summary import totals
from reference import NO_TORCHVISION, SPECS, dense_error, materialize, relative_error, segmentation_fixture, torchvision_models

MODELS = ["fcn_resnet50", "fcn_resnet101", "deeplabv3_resnet50", "deeplabv3_resnet101",
          "deeplabv3_mobilenet_v3_large", "lraspp_mobilenet_v3_large"]
TRAIN_MODE = ["fcn_resnet50", "lraspp_mobilenet_v3_large"]  # one per backbone family
SEG = SPECS / "segmentation"


def spec(name: str):
    return SEG / f"{name}.yaml"


def gmacs_agree(ours: float, published: float) -> bool:
    """Within 0.5 % of torchvision's figure, or within its rounding (3 decimals)."""
    return abs(ours - published) <= max(0.005 * published, 0.0005)


def compiled(name: str, size=(97, 113), **params):
    graph = load_spec(spec(name), input_shape=(3, *size), **params)
    return graph, materialize(build_model(graph, device="meta"), graph=graph)


def deterministic_input(shape):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)


def dropout_off(model: nn.Module) -> nn.Module:
    for m in model.modules():
        if isinstance(m, nn.Dropout):
            m.eval()
    return model


@pytest.mark.parametrize("name", MODELS)
def test_keys_shapes_parameters_and_macs(name):
    ref = segmentation_fixture(name)
    model = compile_spec(spec(name), device="meta")
    assert [[k, list(v.shape)] for k, v in model.state_dict().items()] == ref["state_dict"]
    assert sum(p.numel() for p in model.parameters()) == ref["parameters"] == ref["tv_params"]
    graph = load_spec(spec(name))
    assert graph.input_shape == (3, ref["tv_resolution"], ref["tv_resolution"])
    assert totals(graph).params == ref["tv_params"]
    assert gmacs_agree(totals(graph).macs / 1e9, ref["tv_gmacs"]), (totals(graph).macs / 1e9, ref["tv_gmacs"])


@pytest.mark.parametrize("name", MODELS)
def test_eval_outputs_equal_torchvisions(name):
    ref = segmentation_fixture(name)
    _, model = compiled(name)
    with torch.no_grad():
        out = model.eval()(deterministic_input(ref["input_shape"]))
    assert type(out).__name__ == "OrderedDict" and list(out) == ref["output_keys"]
    for key in ref["output_keys"]:
        assert out[key].shape == (2, 21, 97, 113)  # the input's size
        assert dense_error(out[key], ref["outputs"]["eval"][key]) < 1e-9, key


@pytest.mark.parametrize("name", TRAIN_MODE)
def test_train_outputs_equal_torchvisions(name):
    ref = segmentation_fixture(name)
    _, model = compiled(name)
    with torch.no_grad():
        out = dropout_off(model.train())(deterministic_input(ref["input_shape"]))
    assert list(out) == ref["output_keys"]
    for key in ref["output_keys"]:
        assert dense_error(out[key], ref["outputs"]["train"][key]) < 1e-9, key


def test_variants_are_a_few_params():
    """No aux head: the dict has 'out' alone, and the parameters lose the aux head's; another
    class count changes both heads' last convs; a variant of the backbone's params reaches it."""
    facts = segmentation_fixture("deeplabv3_resnet50")
    aux = sum(_numel(shape) for key, shape in facts["state_dict"]  # its parameters (not the batch norm's statistics)
              if key.startswith("aux_classifier.") and key.rpartition(".")[2] in ("weight", "bias"))
    no_aux = compile_spec(spec("deeplabv3_resnet50"), aux_loss=False, device="meta")
    assert sum(p.numel() for p in no_aux.parameters()) == facts["parameters"] - aux
    assert list(no_aux.eval()(torch.empty(1, 3, 65, 66, device="meta"))) == ["out"]
    assert list(no_aux.train()(torch.empty(2, 3, 65, 66, device="meta"))) == ["out"]
    five = compile_spec(spec("fcn_resnet50"), num_classes=5, device="meta")
    assert five.classifier[4].weight.shape == (5, 512, 1, 1) and five.aux_classifier[4].weight.shape == (5, 256, 1, 1)
    stride16 = load_spec(spec("fcn_resnet50"), replace_stride_with_dilation=[False, False, True])
    head = next(stride16.nodes[p] for p in stride16.order if stride16.nodes[p].display == "classifier.0")
    assert head.in_shapes[0] == (2048, 33, 33)  # 520 / 16, rounded up


def _numel(shape) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def test_the_loss_weighs_the_aux_head_as_torchvisions_reference_training():
    model = compile_spec(spec("lraspp_mobilenet_v3_large"), input_shape=(3, 33, 41))
    fcn = compile_spec(spec("fcn_resnet50"), input_shape=(3, 33, 41), num_classes=3, replace_stride_with_dilation=[False, False, False])
    x, target = torch.randn(2, 3, 33, 41), torch.randint(0, 3, (2, 33, 41))
    criterion = nn.CrossEntropyLoss()
    out = fcn(x)
    assert torch.allclose(fcn.loss(out, target, criterion), criterion(out["out"], target) + 0.5 * criterion(out["aux"], target))
    assert list(model(x)) == ["out"]


@pytest.mark.parametrize("name", ["lraspp_mobilenet_v3_large", "deeplabv3_mobilenet_v3_large", "fcn_resnet50"])
def test_trains_traces_scripts_and_optimizes(name):
    """One per head family, at a small odd input (float32): forward and backward reach every
    weight, torch.fx and TorchScript give the eager outputs (also at a size it was not
    compiled for), and optimize="inference" agrees within 1e-5."""
    small = {} if "mobilenet" in name else {"layers": [1, 1, 1, 1]}
    graph, model = compiled(name, (49, 57), **small)
    model = model.float()
    x = torch.randn(2, 3, 49, 57)
    out = model.train()(x)
    sum(v.square().mean() for v in out.values()).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing, missing[:5]
    model.eval()
    with torch.no_grad():
        want = model(x)
        other = torch.randn(1, 3, 40, 61)
        for run in (torch.fx.symbolic_trace(model), torch.jit.script(model)):
            got = run(x)
            assert list(got) == list(want) and all(torch.equal(got[k], want[k]) for k in want)
            assert run(other)["out"].shape == (1, 21, 40, 61)
        from archspec._optimize import optimize

        fast = optimize(model, graph)(x)
    assert list(fast) == list(want) and all(relative_error(fast[k], want[k]) < 1e-5 for k in want)


def test_features_only_finds_the_backbones_maps():
    """A spec that nests a base as its backbone returns the backbone's maps, whatever its heads
    read (the aux head's layer3, LR-ASPP's block 4, the sizes of like: input): one per
    stride, a dilated stage at the stride of the one before it being one map with it."""
    fcn = compile_spec(spec("fcn_resnet50"), features_only=True, input_shape=(3, 64, 64), device="meta")
    assert fcn.feature_info.module_name() == ["backbone.relu", "backbone.layer1", "backbone"]  # its output: layer4
    assert fcn.feature_info.reduction() == [2, 4, 8] and fcn.feature_info.channels() == [64, 256, 2048]
    assert compile_spec(spec("fcn_resnet50"), features_only=True, aux_loss=False, device="meta").feature_info.module_name() \
        == fcn.feature_info.module_name()
    stride16 = compile_spec(spec("deeplabv3_resnet50"), features_only=True, device="meta",
                            replace_stride_with_dilation=[False, False, True])
    assert stride16.feature_info.module_name() == ["backbone.relu", "backbone.layer1", "backbone.layer2", "backbone"]
    lraspp = compile_spec(spec("lraspp_mobilenet_v3_large"), features_only=True, input_shape=(3, 64, 64), device="meta")
    assert lraspp.feature_info.module_name() == ["backbone.1", "backbone.3", "backbone.6", "backbone"]
    assert lraspp.feature_info.reduction() == [2, 4, 8, 16] and lraspp.feature_info.channels() == [16, 24, 40, 960]
    maps = lraspp(torch.empty(2, 3, 64, 64, device="meta"))
    assert [tuple(m.shape) for m in maps] == [(2, 16, 32, 32), (2, 24, 16, 16), (2, 40, 8, 8), (2, 960, 4, 4)]


@pytest.mark.parametrize("name", ["deeplabv3_mobilenet_v3_large", "lraspp_mobilenet_v3_large"])
def test_against_torchvision(name):
    """torchvision's own model: its state_dict loads strictly (its checkpoints do), and the
    outputs agree at another odd size, in eval and in train mode (dropout off)."""
    tv = torchvision_models()
    if tv is None:
        pytest.skip(NO_TORCHVISION)
    import torchvision.models.segmentation as seg

    kwargs = segmentation_fixture(name)["kwargs"]
    with torch.device("meta"):
        ref = getattr(seg, name)(weights=None, weights_backbone=None, **kwargs)
    ref = materialize(ref)
    ours = compile_spec(spec(name), input_shape=(3, 71, 45)).double()
    ours.load_state_dict(ref.state_dict(), strict=True)
    x = deterministic_input((2, 3, 71, 45))
    for mode in ("eval", "train"):
        getattr(ref, mode)(), getattr(ours, mode)()
        with torch.no_grad():
            want, got = dropout_off(ref)(x), dropout_off(ours)(x)
        assert list(got) == list(want)
        assert all(relative_error(got[k], want[k]) < 1e-9 for k in want), mode
