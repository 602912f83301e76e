"""`.safetensors` checkpoints (the `safetensors` extra): read by `weights=` / `--weights`
with the same report and rename rules as `.pth`, written by `export --format safetensors`.
The network round trips of every export format are in test_export.py."""

from __future__ import annotations

import sys

import pytest
import torch

from archspec import WeightsError, compile_spec
from archspec.cli import main

safetensors_torch = pytest.importorskip("safetensors.torch",
                                        reason="the 'safetensors' extra is not installed (pip install -e \".[safetensors]\")")

SPEC = """archspec: 1
name: small
input: [3, 8, 8]
params: {num_classes: 4}
graph:
  conv: {op: conv2d, out: 6, kernel: 3}
  bn: {op: batchnorm2d}
  pool: {op: adaptive_avgpool2d, size: 1}
  flat: {op: flatten}
  fc: {op: linear, out: $num_classes}
checkpoint_keys:
  - {match: '^classifier\\.', replace: 'fc.'}
"""


def test_export_writes_a_file_that_loads_back_strictly(write_spec, tmp_path, capsys):
    spec = write_spec(SPEC)
    out = tmp_path / "small.safetensors"
    torch.manual_seed(0)
    assert main(["export", str(spec), "--format", "safetensors", "-o", str(out)]) == 0
    assert capsys.readouterr().out == f"wrote {out} (safetensors)\n"
    raw = out.read_bytes()
    assert raw[8:9] == b"{" and b"\x80\x02" not in raw[:16]  # a JSON header, no pickle
    with safetensors_torch.safe_open(str(out), "pt") as f:
        assert f.metadata() == {"format": "pt", "archspec": "small"}
    torch.manual_seed(0)
    reference = compile_spec(spec).eval()
    model = compile_spec(spec, weights=out).eval()
    assert model.load_report.complete
    assert set(safetensors_torch.load_file(str(out))) == set(reference.state_dict())  # BatchNorm counters included
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        assert torch.equal(model(x), reference(x))


def test_the_report_and_the_rename_rules_are_those_of_a_pth(write_spec, tmp_path):
    spec = write_spec(SPEC)
    torch.manual_seed(1)
    state = compile_spec(spec).state_dict()
    state = {("classifier." + k[3:] if k.startswith("fc.") else k): v for k, v in state.items()}
    # no extension that says what it is: the header does
    path = tmp_path / "weights.bin"
    safetensors_torch.save_file(state, str(path))
    model = compile_spec(spec, weights=path)
    assert sorted(model.load_report.renamed) == [("classifier.bias", "fc.bias"), ("classifier.weight", "fc.weight")]
    assert torch.equal(model.fc.weight, state["classifier.weight"])
    with pytest.raises(WeightsError, match=r"fc.weight \(checkpoint 4x6, model 10x6\)"):
        compile_spec(spec, weights=path, num_classes=10)
    partial = compile_spec(spec, weights=path, num_classes=10, strict=False)
    assert sorted(k for k, _, _ in partial.load_report.mismatched) == ["fc.bias", "fc.weight"]
    assert torch.equal(partial.conv.weight, state["conv.weight"])


def test_a_broken_file_and_a_missing_extra_are_clean_errors(write_spec, tmp_path, monkeypatch, capsys):
    spec = write_spec(SPEC)
    good = tmp_path / "good.safetensors"
    safetensors_torch.save_file(compile_spec(spec).state_dict(), str(good))
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(good.read_bytes()[:-10])
    with pytest.raises(WeightsError, match="is not a readable .safetensors file"):
        compile_spec(spec, weights=cut)
    monkeypatch.setitem(sys.modules, "safetensors", None)  # as if the extra were not installed
    monkeypatch.setitem(sys.modules, "safetensors.torch", None)
    with pytest.raises(WeightsError, match=r"reading it needs the 'safetensors' package: install the 'safetensors' extra"):
        compile_spec(spec, weights=good)
    status = main(["export", str(spec), "--format", "safetensors", "-o", str(tmp_path / "x.safetensors")])
    err = capsys.readouterr().err
    assert status != 0 and "the 'safetensors' extra" in err and "Traceback" not in err
    assert not (tmp_path / "x.safetensors").exists()
