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
