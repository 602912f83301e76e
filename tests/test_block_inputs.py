"""Blocks that read several inputs (``inputs: [input, skip]``), a U-Net's up block: the
names bound in order at a ``use:``, the body reading them, the generated forward taking
them in the declared order; the mistakes are in tests/bad_specs/block-inputs-*.yaml."""

from __future__ import annotations

import textwrap

import pytest
import torch
from torch import nn

from archspec import compile_spec

torch.set_num_threads(1)

UNET = """\
archspec: 1
name: tiny_unet
input: [3, 16, 24]
blocks:
  down:
    params: {out: int}
    seq:
      pool: {op: maxpool2d, kernel: 2}
      conv: {op: conv2d, out: $out, kernel: 3, padding: 1}
      relu: {op: relu}
  up:
    params: {out: int, half: "${in_c // 2}"}   # in_c: the first input's channels
    inputs: [input, skip]
    seq:
      up: {op: conv2d, out: "${4 * half}", kernel: 1}
      shuffle:                                 # a pixel shuffle by 2: half x 2H x 2W
        - {op: reshape, shape: [$half, 2, 2, "${in_h}", "${in_w}"]}
        - {op: permute, dims: [0, 1, 4, 2, 5, 3]}
        - {op: flatten, start_dim: 4, end_dim: 5}
        - {op: flatten, start_dim: 2, end_dim: 3}
      cat: {op: concat, from: [skip, shuffle]}
      conv: {op: conv2d, out: $out, kernel: 3, padding: 1}
      relu: {op: relu}
graph:
  inc: {op: conv2d, out: 4, kernel: 3, padding: 1}
  down1: {use: down, out: 8}
  down2: {use: down, out: 16}
  down3: {use: down, out: 32}
  up1: {use: up, out: 16, from: [down3, down2]}
  up2: {use: up, out: 8, from: [up1, down1]}
  up3: {use: up, out: 4, from: [up2, inc]}
  outc: {op: conv2d, out: 2, kernel: 1}
"""


class Down(nn.Module):
    def __init__(self, cin: int, out: int) -> None:
        super().__init__()
        self.pool, self.conv, self.relu = nn.MaxPool2d(2), nn.Conv2d(cin, out, 3, padding=1), nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.conv(self.pool(x)))


class Up(nn.Module):
    """Upsamples ``x`` (a 1x1 conv and a pixel shuffle) and joins the skip: every level has
    its own resolution, so a skip bound to the wrong level would not even run."""

    def __init__(self, cin: int, skip: int, out: int) -> None:
        super().__init__()
        self.up, self.shuffle = nn.Conv2d(cin, 4 * (cin // 2), 1), nn.PixelShuffle(2)
        self.conv, self.relu = nn.Conv2d(skip + cin // 2, out, 3, padding=1), nn.ReLU()

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.relu(self.conv(torch.cat([skip, self.shuffle(self.up(x))], 1)))


class TinyUNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.inc = nn.Conv2d(3, 4, 3, padding=1)
        self.down1, self.down2, self.down3 = Down(4, 8), Down(8, 16), Down(16, 32)
        self.up1, self.up2, self.up3 = Up(32, 16, 16), Up(16, 8, 8), Up(8, 4, 4)
        self.outc = nn.Conv2d(4, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.inc(x)
        x2 = self.down1(x1)
        x3 = self.down2(x2)
        x4 = self.down3(x3)
        return self.outc(self.up3(self.up2(self.up1(x4, x3), x2), x1))


def _tiny(write_spec, input_shape: str, body: str):
    return compile_spec(write_spec(f"archspec: 1\nname: tiny\ninput: {input_shape}\n" + textwrap.dedent(body)))


def _unet(write_spec, text: str = UNET):
    torch.manual_seed(0)
    return compile_spec(write_spec(text)).double().eval()


def test_a_unet_of_blocks_with_a_skip_input_equals_the_hand_written_module(write_spec):
    model = _unet(write_spec)
    ref = TinyUNet().double().eval()
    assert [k for k in model.state_dict()] == [k for k in ref.state_dict()]
    ref.load_state_dict(model.state_dict())
    assert model.up1.up.out_channels == 4 * 16  # 4 x half of down3's 32 channels, not of the skip's 16
    x = torch.randn(2, 3, 16, 24, dtype=torch.float64)
    with torch.no_grad():
        want = ref(x)
        assert torch.equal(model(x), want)
        # a block instance is called as the hand-written one is: its inputs in declared order
        a, skip = torch.randn(1, 16, 4, 6, dtype=torch.float64), torch.randn(1, 8, 8, 12, dtype=torch.float64)
        assert torch.equal(model.up2(a.clone(), skip.clone()), ref.up2(a, skip))
        assert torch.equal(torch.jit.script(model)(x), want)
        assert torch.equal(torch.fx.symbolic_trace(model)(x), want)
    assert "self.up1(down3, down2)" in model.code
    model.train()
    ref.train()
    model(x).square().sum().backward()
    ref(x).square().sum().backward()
    for (name, p), q in zip(model.named_parameters(), ref.parameters()):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-12, atol=1e-12, msg=name)


def test_the_forward_takes_the_declared_inputs_in_order_whatever_the_body_reads_first(write_spec):
    """The body reads the skip first; the forward still takes (input, skip), as declared."""
    text = UNET.replace('      up: {op: conv2d, out: "${4 * half}", kernel: 1}\n',
                        '      gate: {op: sigmoid, from: skip}\n      up: {op: conv2d, out: "${4 * half}", kernel: 1, from: input}\n')
    text = text.replace("from: [skip, shuffle]", "from: [gate, shuffle]")
    model = _unet(write_spec, text)
    assert "self.up1(down3, down2)" in model.code
    a, skip = torch.randn(1, 16, 4, 6, dtype=torch.float64), torch.randn(1, 8, 8, 12, dtype=torch.float64)
    block = model.up2
    with torch.no_grad():
        want = block.relu(block.conv(torch.cat([torch.sigmoid(skip), block.shuffle(block.up(a))], 1)))
        assert torch.equal(block(a, skip), want)
        assert torch.equal(torch.jit.script(block)(a, skip), want)


def test_the_first_input_may_have_another_name_and_input_still_reads_it(write_spec):
    model = _tiny(write_spec, "[4, 6, 6]", """\
        blocks:
          join:
            inputs: [low, high]
            seq:
              a: {op: relu, from: low}
              b: {op: add, from: [input, high, a]}
        graph:
          p: {op: conv2d, out: 4, kernel: 1}
          q: {op: conv2d, out: 4, kernel: 1, from: input}
          j: {use: join, from: [p, q]}
    """).eval()
    x = torch.randn(2, 4, 6, 6)
    with torch.no_grad():
        p, q = model.p(x), model.q(x)
        torch.testing.assert_close(model(x), p + q + torch.relu(p))
        torch.testing.assert_close(model.j(p.clone(), q.clone()), p + q + torch.relu(p))  # its sum may reuse q


def test_a_block_of_one_declared_input_reads_the_node_before_it(write_spec):
    model = _tiny(write_spec, "[4, 6, 6]", """\
        blocks:
          res:
            inputs: [x]
            seq:
              conv: {op: conv2d, out: 4, kernel: 1}
              sum: {op: add, from: [x, conv]}
        graph:
          a: {use: res}
          b: {use: res}
    """).eval()
    x = torch.randn(2, 4, 6, 6)
    with torch.no_grad():
        y = x + model.a.conv(x)
        torch.testing.assert_close(model(x), y + model.b.conv(y))


def test_a_repeated_block_of_two_inputs_reads_the_copy_before_and_its_own_skip(write_spec):
    """Each copy after the first reads the copy before it as its first input and the rest as
    its 'from' names them for its index ('down' + str(...): names made of parts)."""
    model = _tiny(write_spec, "[4, 6, 6]", """\
        blocks:
          mix:
            inputs: [input, skip]
            seq:
              cat: {op: concat, from: [input, skip]}
              conv: {op: conv2d, out: 4, kernel: 1}
        graph:
          "s{i}": {op: conv2d, out: 4, kernel: 1, repeat: 3}
          "m{i}": {use: mix, from: "${['s2', 's' + str(1 - i)]}", repeat: 2}
    """).eval()
    x = torch.randn(2, 4, 6, 6)
    with torch.no_grad():
        s0 = model.s0(x)
        s1 = model.s1(s0)
        s2 = model.s2(s1)
        m0 = model.m0(s2, s1)
        torch.testing.assert_close(model(x), model.m1(m0, s0))


def test_a_block_instance_switched_off_stands_for_its_first_input(write_spec):
    model = _unet(write_spec, UNET.replace("from: [up2, inc]}", "from: [up2, inc], when: false}"))
    assert not hasattr(model, "up3")
    x = torch.randn(1, 3, 16, 24, dtype=torch.float64)
    with torch.no_grad():
        d1 = model.down1(model.inc(x))
        d2 = model.down2(d1)
        assert torch.equal(model(x), model.outc(model.up2(model.up1(model.down3(d2), d2), d1)))


def test_a_checkpointed_block_of_two_inputs_trains_as_the_plain_one(write_spec):
    plain = _unet(write_spec).train()
    marked = _unet(write_spec, UNET.replace("from: [up1, down1]}", "from: [up1, down1], checkpoint: true}")).train()
    marked.load_state_dict(plain.state_dict())
    x = torch.randn(2, 3, 16, 24, dtype=torch.float64)
    plain(x).sum().backward()
    marked(x).sum().backward()
    for (name, p), q in zip(plain.named_parameters(), marked.parameters()):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-12, atol=1e-12, msg=name)


def test_a_derived_default_of_an_op_block_of_several_inputs_sees_the_first_inputs_shape(write_spec):
    """``in_c`` in a block's parameter is its first input's, for an op block too (it read
    the network's input where the instance read several)."""
    model = _tiny(write_spec, "[3, 6, 6]", """\
        blocks:
          cat:
            params: {d: "${1 if in_c == 5 else 2}"}
            op: concat
            dim: $d
        graph:
          a: {op: conv2d, out: 5, kernel: 1}
          b: {op: conv2d, out: 5, kernel: 1, from: input}
          c: {use: cat, from: [a, b]}
    """)
    assert model(torch.randn(1, 3, 6, 6)).shape == (1, 10, 6, 6)  # concatenated on channels: a has 5


def test_the_editor_schema_takes_a_blocks_inputs_and_refuses_a_list_of_none_or_of_one_name_twice():
    jsonschema = pytest.importorskip("jsonschema", reason="the editor schema is checked with jsonschema")
    from archspec._schema import json_schema
    from archspec._load import load_text

    validator = jsonschema.Draft202012Validator(json_schema())
    data = load_text(UNET, "unet.yaml").data
    assert list(validator.iter_errors(data)) == []
    for wrong in ([], ["input", "skip", "skip"], "skip", ["a.b"]):
        data["blocks"]["up"]["inputs"] = wrong
        assert list(validator.iter_errors(data)), wrong


def test_the_drawing_and_the_diff_show_what_an_instance_reads(write_spec, capsys):
    from archspec.cli import main

    path = write_spec(UNET)
    assert main(["graph", str(path), "--depth", "1", "-o", "-"]) == 0
    edges = [line.strip() for line in capsys.readouterr().out.splitlines() if "->" in line]
    assert 'b_down3 -> b_up1 [label=" 32x2x3"];' in edges and 'b_down2 -> b_up1 [label=" 16x4x6"];' in edges
    other = write_spec(UNET.replace("from: [up2, inc]", "from: [up2, input]"))  # the last skip is the image itself
    assert main(["diff", str(path), str(other)]) == 0
    changed = [line.split() for line in capsys.readouterr().out.splitlines() if line.startswith("~")]
    assert changed[0][:2] == ["~", "up3.cat"] and changed[0][-4:] == ["reads", "inc", "->", "input"]
