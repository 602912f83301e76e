"""The reference fixtures of the dense-prediction networks (tests/fixtures/segmentation):
torchvision's segmentation models, the dilated trunks under them, and the U-Net's facts
(tests/unet_reference.py). What the fixtures hold is checked here, so the specs' tests can
rely on them: the issue's published figures, the comparison's strictness, and, where
torchvision's model code is installed, that they are what it computes today."""

from __future__ import annotations

import json
import sys

import pytest
import torch

from reference import (NO_TORCHVISION, SEGMENTATION_FIXTURES, dense_error, dense_record, segmentation_fixture,
                       torchvision_models)
from unet_reference import UNet

sys.path.insert(0, str(SEGMENTATION_FIXTURES))
import generate  # noqa: E402  (tests/fixtures/segmentation/generate.py: how the fixtures were made)

#: the issue's table: parameters and torchvision's published GMACs at 520x520
PUBLISHED = {
    "fcn_resnet50": (35_322_218, 152.717),
    "fcn_resnet101": (54_314_346, 232.738),
    "deeplabv3_resnet50": (42_004_074, 178.722),
    "deeplabv3_resnet101": (60_996_202, 258.743),
    "deeplabv3_mobilenet_v3_large": (11_029_328, 10.452),
    "lraspp_mobilenet_v3_large": (3_221_538, 2.086),
}


def test_every_fixture_is_listed_and_small():
    names = sorted(p.stem for p in SEGMENTATION_FIXTURES.glob("*.json"))
    assert names == sorted([*PUBLISHED, *generate.TRUNKS, "unet"])
    for name in names:
        assert (SEGMENTATION_FIXTURES / f"{name}.json").stat().st_size < 200_000, name


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_a_segmentation_fixture_holds_the_published_figures_and_both_modes(name):
    ref = segmentation_fixture(name)
    assert (ref["parameters"], ref["tv_gmacs"]) == PUBLISHED[name] and ref["tv_params"] == ref["parameters"]
    assert ref["tv_resolution"] == 520 and ref["input_shape"] == [2, 3, 97, 113]
    keys = ["out", "aux"] if name != "lraspp_mobilenet_v3_large" else ["out"]
    assert ref["output_keys"] == keys  # torchvision's OrderedDict, in its order
    for mode in ("eval", "train"):
        assert list(ref["outputs"][mode]) == keys
        for record in ref["outputs"][mode].values():
            assert record["shape"] == [2, 21, 97, 113]  # the input's size
    assert len({k for k, _ in ref["state_dict"]}) == len(ref["state_dict"])


def test_a_dense_record_catches_a_one_value_change_and_a_one_pixel_shift():
    t = torch.randn(2, 21, 97, 113, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    record = json.loads(json.dumps(dense_record(t, generate.STRIDE)))  # as stored
    assert dense_error(t, record) < 1e-15
    assert dense_error(t * (1 + 1e-12), record) < 1e-9  # a relative error under the rule passes
    changed = t.clone()
    changed[1, 7, 50, 61] += 1e-6 * record["max_abs"]  # one value, off every sample
    assert (((1 * 21 + 7) * 97 + 50) * 113 + 61) % generate.STRIDE != 0
    assert dense_error(changed, record) > 1e-9
    assert dense_error(torch.roll(t, 1, dims=3), record) > 1e-3  # a map off by one pixel
    with pytest.raises(AssertionError):
        dense_error(t[..., :-1], record)


@pytest.mark.parametrize("bilinear", [False, True])
def test_the_unet_reference_is_the_fixtures_layout(bilinear):
    ref = segmentation_fixture("unet")["variants"]["bilinear" if bilinear else "transposed"]
    with torch.device("meta"):
        model = UNet(3, 2, bilinear=bilinear)
    assert [[k, list(v.shape)] for k, v in model.state_dict().items()] == ref["state_dict"]
    assert sum(p.numel() for p in model.parameters()) == ref["parameters"]
    assert ref["parameters"] == (17_263_042 if bilinear else 31_037_698)  # the figure, transposed
    keys = dict(ref["state_dict"])
    assert keys["inc.double_conv.0.weight"] == [64, 3, 3, 3] and "inc.double_conv.0.bias" not in keys
    assert keys["down1.maxpool_conv.1.double_conv.3.weight"] == [128, 128, 3, 3]
    assert keys["outc.conv.weight"] == [2, 64, 1, 1]
    if bilinear:  # no weights in the upsampling; the first conv of up1 halves 1024 to 512 (its mid)
        assert not any(k.startswith("up1.up.") for k in keys) and keys["up1.conv.double_conv.0.weight"] == [512, 1024, 3, 3]
    else:
        assert keys["up1.up.weight"] == [1024, 512, 2, 2] and keys["up1.up.bias"] == [512]


@pytest.mark.parametrize("size", [(97, 113), (64, 64), (33, 50)])
def test_the_unet_reference_gives_a_map_the_input_size(size):
    # every skip is padded to its size first: sizes that are not multiples of 16 work
    model = UNet(3, 2, bilinear=False).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, *size)).shape == (1, 2, *size)


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if "101" in n else n for n in sorted(PUBLISHED)])
def test_the_segmentation_fixtures_are_what_torchvision_computes(name):
    tv = torchvision_models()
    if tv is None:
        pytest.skip(NO_TORCHVISION)
    ref = segmentation_fixture(name)
    model, _ = generate.segmentation_model(name, tv)
    assert [[k, list(v.shape)] for k, v in model.state_dict().items()] == ref["state_dict"]
    assert sum(p.numel() for p in model.parameters()) == ref["parameters"]
    weights = getattr(tv.segmentation, generate.SEGMENTATION[name][0]).DEFAULT
    assert (weights.meta["num_params"], weights.meta["_ops"]) == (ref["tv_params"], ref["tv_gmacs"])
    for mode, outputs in generate.dense_outputs(model).items():
        assert list(outputs) == ref["output_keys"]
        for key, out in outputs.items():
            assert dense_error(out, ref["outputs"][mode][key]) < 1e-9, (mode, key)
