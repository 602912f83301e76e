"""specs/segmentation/unet.yaml: milesial/Pytorch-UNet's U-Net, key for key and value for value.

The reference is tests/unet_reference.py (written here from that repository's documented
layout; tests/fixtures/segmentation/unet.json holds its keys and parameter counts). The
outputs are compared in float64 under the fixture recipe's weights at input sizes that are
not multiples of 16, where every max pool drops a row and every up block pads, in eval
and train mode, with transposed-convolution and with bilinear upsampling; the model is
also run at a size other than the one it was compiled for, since its pads and resizes
read the sizes at run time.
"""

from __future__ import annotations

import pytest
import torch

from archspec import compile_spec, load_spec
from archspec._compiler import build_model
from archspec._summary import totals
from reference import SPECS, materialize, relative_error, segmentation_fixture
from unet_reference import UNet

SPEC = SPECS / "segmentation" / "unet.yaml"
VARIANTS = {"transposed": False, "bilinear": True}


def _input(*shape):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_keys_shapes_and_parameters_are_the_references(variant):
    facts = segmentation_fixture("unet")["variants"][variant]
    model = compile_spec(SPEC, bilinear=VARIANTS[variant], device="meta")
    assert [[k, list(v.shape)] for k, v in model.state_dict().items()] == facts["state_dict"]
    assert sum(p.numel() for p in model.parameters()) == facts["parameters"]
    assert totals(load_spec(SPEC, bilinear=VARIANTS[variant])).params == facts["parameters"]  # statically too


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_outputs_equal_the_reference_at_sizes_that_are_not_multiples_of_16(variant):
    bilinear = VARIANTS[variant]
    graph = load_spec(SPEC, bilinear=bilinear, input_shape=(3, 45, 61))
    model = materialize(build_model(graph, device="meta"), graph=graph)
    with torch.device("meta"):
        ref = UNet(3, 2, bilinear)
    ref = materialize(ref)
    ref.load_state_dict(model.state_dict())  # strict: the reference's checkpoint is the spec's
    for size in ((45, 61), (37, 50)):  # compiled at 45x61; 37x50 only at run time
        x = _input(1, 3, *size)
        for train in (False, True):
            model.train(train), ref.train(train)
            with torch.no_grad():
                want = ref(x)
                got = model(x)
            assert got.shape == want.shape == (1, 2, *size)
            assert relative_error(got, want) < 1e-9, (size, train)


def test_trains_traces_and_scripts():
    """forward and backward, torch.fx and TorchScript, on a narrow U-Net (the same graph)."""
    model = compile_spec(SPEC, widths=[4, 8, 8, 16, 16], input_shape=(3, 29, 35)).double()
    x = _input(2, 3, 29, 35)
    out = model(x)
    out.square().mean().backward()
    assert out.shape == (2, 2, 29, 35)
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    model.eval()
    with torch.no_grad():
        want = model(x)
        assert torch.equal(torch.fx.symbolic_trace(model)(x), want)
        assert torch.equal(torch.jit.script(model)(x), want)
        assert torch.equal(torch.jit.script(model)(_input(1, 3, 40, 17)), model(_input(1, 3, 40, 17)))


def test_a_checkpoint_of_the_reference_loads_strictly():
    ref = UNet(3, 2, bilinear=False)
    model = compile_spec(SPEC, weights=ref.state_dict())
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), ref.state_dict().values()))


def test_widths_set_the_depth_and_the_names_follow():
    """One entry of `widths` per level: three levels are two steps down and two up, named as
    milesial's are (down1, down2, up1, up2), each up block reading the one before and its skip."""
    graph = load_spec(SPEC, widths=[16, 32, 64], input_shape=(3, 37, 50))
    top = [graph.nodes[p].display for p in graph.order if "." not in graph.nodes[p].display]
    containers = [c for c in graph.containers if "." not in c]
    assert containers == ["inc", "down1", "down2", "up1", "up2", "outc"]
    assert graph.containers["up1"].inputs == ["down2", "down1"] and graph.containers["up2"].inputs == ["up1", "inc"]
    model = compile_spec(SPEC, widths=[16, 32, 64], input_shape=(3, 37, 50))
    assert model(torch.randn(1, 3, 37, 50)).shape == (1, 2, 37, 50)
    assert not top
