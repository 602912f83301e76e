"""Training from the spec: auxiliary losses as data (an output's loss_weight, model.loss)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from archspec import compile_spec, load_spec
from archspec._errors import SpecError


def test_googlenet_weights_its_auxiliary_losses_as_its_paper():
    torch.manual_seed(0)
    model = compile_spec("googlenet", input_shape=(3, 96, 96))
    assert model.loss_weights == {"logits": 1.0, "aux_logits2": 0.3, "aux_logits1": 0.3}
    x, y, criterion = torch.randn(2, 3, 96, 96), torch.tensor([1, 7]), nn.CrossEntropyLoss()
    out = model.train()(x)
    expected = criterion(out.logits, y) + 0.3 * criterion(out.aux_logits2, y) + 0.3 * criterion(out.aux_logits1, y)
    assert torch.allclose(model.loss(out, y, criterion), expected)
    model.loss(out, y, criterion).backward()
    assert model.aux1.fc2.weight.grad.abs().sum() > 0  # the heads learn through their weighted loss
    with torch.no_grad():
        logits = model.eval()(x)  # eval: the logits alone
        assert torch.equal(model.loss(logits, y, criterion), criterion(logits, y))


def test_inception_v3_and_a_network_without_heads():
    assert compile_spec("inception_v3", device="meta").loss_weights == {"logits": 1.0, "aux_logits": 0.4}
    model = compile_spec("resnet18", input_shape=(3, 32, 32)).train()
    x, y, criterion = torch.randn(2, 3, 32, 32), torch.tensor([0, 3]), nn.CrossEntropyLoss()
    out = model(x)
    assert model.loss_weights == {"output": 1.0} and torch.equal(model.loss(out, y, criterion), criterion(out, y))


def test_loss_weights_are_spec_values(write_spec):
    spec = write_spec("""archspec: 1
name: two_heads
input: [8]
params: {aux_weight: 0.5}
graph:
  body: {op: linear, out: 4}
  main: {op: linear, out: 3}
  side: {op: linear, out: 3, from: body}
outputs:
  main: main
  side: {node: side, training_only: true, loss_weight: $aux_weight}
""")
    assert compile_spec(spec, device="meta", aux_weight=0.25).loss_weights == {"main": 1.0, "side": 0.25}
    spec.write_text(spec.read_text().replace("$aux_weight", "-1"))
    with pytest.raises(SpecError, match=r"'loss_weight': found -1 \(expected a number >= 0\)") as info:
        load_spec(spec)
    assert info.value.loc.line == 11


# ---------------------------------------------------------------------------------------
# mixed precision: one representative of each family, at a small size

#: (spec, overrides); under -m slow the four whose weights or inputs make them slow here
#: (VGG's and AlexNet's classifiers hold 100 M and 55 M weights)
BF16 = [
    ("resnet18", dict(input_shape=(3, 32, 32))),
    ("densenet121", dict(input_shape=(3, 32, 32), block_config=[1, 1, 1, 1])),
    ("googlenet", dict(input_shape=(3, 64, 64))),  # with its auxiliary heads and their loss weights
    pytest.param("inception_v3", dict(input_shape=(3, 96, 96), aux_logits=False), marks=pytest.mark.slow),
    pytest.param("xception", dict(input_shape=(3, 71, 71)), marks=pytest.mark.slow),
    pytest.param("alexnet", dict(input_shape=(3, 64, 64)), marks=pytest.mark.slow),
    pytest.param("vgg11_bn", dict(input_shape=(3, 32, 32)), marks=pytest.mark.slow),
    ("squeezenet1_1", dict(input_shape=(3, 64, 64))),
    ("mobilenet_v3_small", dict(input_shape=(3, 32, 32))),
    ("mnasnet0_5", dict(input_shape=(3, 32, 32))),
    ("shufflenet_v2_x0_5", dict(input_shape=(3, 32, 32))),
    ("efficientnet_b0", dict(input_shape=(3, 32, 32))),
    ("regnet_y_400mf", dict(input_shape=(3, 32, 32))),
    ("convnext_tiny", dict(input_shape=(3, 32, 32), stages=[[32, 1], [64, 1], [128, 1], [256, 1]])),
    ("vit_b_16", dict(image_size=32, patch_size=8, layers=2, heads=2, hidden=64, mlp=128)),
    ("swin_t", dict(embed_dim=16, depths=[1, 1, 1, 1], heads=[1, 1, 1, 1])),
    ("swin_v2_t", dict(embed_dim=16, depths=[1, 1, 1, 1], heads=[1, 1, 1, 1])),
]


@pytest.mark.parametrize("name,overrides", BF16, ids=lambda v: v if isinstance(v, str) else "small")
def test_a_bfloat16_autocast_training_step_and_eval(name, overrides):
    """A training step under torch.autocast(bfloat16) gives a finite loss and finite
    gradients; eval under autocast agrees with float32 within 5 % of the logits' scale
    (measured: 0.4 % to 2.3 %, Inception v3 the largest)."""
    torch.manual_seed(0)
    model = compile_spec(name, **overrides)
    head = model.get_classifier()
    if not head.weight.abs().sum():  # ViT starts its head at 0
        nn.init.normal_(head.weight, std=0.02)
    x, y = torch.randn(4, *model._archspec_info["input_shape"]), torch.randint(0, 1000, (4,))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = model.train().loss(model(x), y, nn.CrossEntropyLoss())
    loss.backward()
    assert torch.isfinite(loss) and all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    with torch.no_grad():
        full = model.eval()(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = model(x)
    assert low.dtype == torch.bfloat16
    assert float((low.float() - full).abs().max() / full.abs().max()) < 0.05
