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
    (measured: 0.2 % to 2.7 %, Inception v3 the largest)."""
    torch.manual_seed(0)
    model = compile_spec(name, **overrides)
    head = model.get_classifier()
    if not head.weight.abs().sum():  # ViT starts its head at 0
        nn.init.normal_(head.weight, std=0.02)
    x, y = torch.randn(4, *model._archspec_info.input_shape), torch.randint(0, 1000, (4,))
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


# ---------------------------------------------------------------------------------------
# train-mode correctness, every bundled spec

from archspec._bundled import names as bundled_names  # noqa: E402
from archspec._compiler import build_model  # noqa: E402

#: the bundled specs whose training step runs by default: every one under 10 M parameters
#: and the smallest of each other family (31 of 84, about 40 s here); all 84 with -m slow
DEFAULT_TRAIN = {
    "alexnet", "convnext/convnext_tiny", "densenet121", "efficientnet/efficientnet_b0", "efficientnet/efficientnet_b1",
    "efficientnet/efficientnet_b2", "googlenet", "inception_v3", "mnasnet/mnasnet0_5", "mnasnet/mnasnet0_75",
    "mnasnet/mnasnet1_0", "mnasnet/mnasnet1_3", "mobilenet/mobilenet_v2", "mobilenet/mobilenet_v3_large",
    "mobilenet/mobilenet_v3_small", "regnet/regnet_x_1_6gf", "regnet/regnet_x_400mf", "regnet/regnet_x_800mf",
    "regnet/regnet_y_400mf", "regnet/regnet_y_800mf", "resnet/resnet18", "shufflenet/shufflenet_v2_x0_5",
    "shufflenet/shufflenet_v2_x1_0", "shufflenet/shufflenet_v2_x1_5", "shufflenet/shufflenet_v2_x2_0",
    "squeezenet/squeezenet1_0", "squeezenet/squeezenet1_1", "swin/swin_t", "vgg/vgg11", "vit/vit_cifar", "xception",
}


def small_graph(name: str):
    """The spec at 64x64 where its layers take that (a ViT or Swin at the size it is made for)."""
    graph = load_spec(name)
    if "image_size" in graph.params or graph.name.startswith("swin"):
        return graph
    for size in (64, 96, 128, 160):
        try:
            return load_spec(name, input_shape=(3, size, size))
        except SpecError:
            continue
    return graph


def random_start(model: nn.Module, seed: int) -> None:
    """Every weight and bias from one generator, small and nonzero (a head that starts at
    0, as a ViT's, would pass no gradient upstream); dropout and stochastic depth off, so
    that every block runs."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            fan_in = max(1, p[0].numel()) if p.dim() > 1 else 16
            p.uniform_(-1, 1, generator=g).mul_(fan_in ** -0.5)
    for m in model.modules():
        if isinstance(getattr(m, "p", None), float):
            m.p = 0.0


@pytest.mark.parametrize("name", [n if n in DEFAULT_TRAIN else pytest.param(n, marks=pytest.mark.slow)
                                  for n in bundled_names()])
def test_a_training_step_moves_every_parameter_and_batch_statistics_move_only_in_train_mode(name):
    """For every bundled spec: eval forwards leave every buffer as it was; a train-mode
    forward updates the running statistics of every batch norm the train graph runs; and
    one SGD step on its loss (all outputs, with the spec's loss weights) gives every
    parameter a gradient and changes every parameter whose gradient is not nil. (Some are:
    the bias of a batch norm whose output only reaches the loss through a convolution and
    another batch norm in train mode, which subtracts any constant, has a gradient of
    rounding errors.)"""
    torch.manual_seed(0)
    graph = small_graph(name)
    model = build_model(graph, init=False)
    random_start(model, seed=1)
    x, y = torch.randn(2, *graph.input_shape), torch.zeros(2, dtype=torch.long)
    buffers = {k: v.clone() for k, v in model.named_buffers()}
    with torch.no_grad():
        model.eval()(x)
    assert all(torch.equal(v, buffers[k]) for k, v in model.named_buffers())
    before = {k: v.detach().clone() for k, v in model.named_parameters()}
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    out = model.train()(x)
    model.loss(out, y, nn.CrossEntropyLoss()).backward()
    optimizer.step()
    missing = [k for k, p in model.named_parameters() if p.grad is None]
    assert not missing, f"no gradient reached {missing[:5]}"
    # a step moves every parameter whose update float32 can hold (2**-20 of its scale: some
    # gradients are nil, see above, or tiny after a dead ReLU)
    unchanged = [k for k, p in model.named_parameters()
                 if torch.equal(p, before[k]) and float((0.1 * p.grad).abs().max()) > 2 ** -20 * float(before[k].abs().max())]
    assert not unchanged, f"a step left {unchanged[:5]} as they were"
    stats = [k for k, v in model.named_buffers() if k.endswith(("running_mean", "num_batches_tracked"))]
    still = [k for k in stats if torch.equal(dict(model.named_buffers())[k], buffers[k])]
    assert not still, f"train mode left the statistics {still[:5]} as they were"
