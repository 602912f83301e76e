"""Loading weights: the caller's tensors are read, never written (the model owns its
storage, whatever the device and dtype), and a cast that would change a checkpoint's
values is refused (strict) or skipped and reported (not strict); NaN and infinite values
load, with a :class:`WeightsWarning` and a line of ``load_report``."""

from __future__ import annotations

import warnings

import pytest
import torch

from archspec import WeightsError, WeightsWarning, compile_spec
from archspec._weights import load_weights, read_checkpoint
from archspec.cli import main

SMALL = """archspec: 1
name: tiny
input: [3]
graph:
  fc: {op: linear, out: 2}
  bn: {op: batchnorm1d}
"""


def _trained(model: torch.nn.Module) -> torch.nn.Module:
    """``model`` after a forward in train mode (running statistics) and an SGD step."""
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    out = model(torch.randn(4, 3, dtype=next(model.parameters()).dtype))
    out.square().mean().backward()
    opt.step()
    return model


def _reference(spec, dtype=torch.float32):
    torch.manual_seed(0)
    ref = _trained(compile_spec(spec)).to(dtype).eval()  # a running mean and var that folding changes
    x = torch.randn(2, 3, dtype=dtype)
    with torch.no_grad():
        return ref, x, ref(x).clone()


def _unchanged(ref, state, before, x, expected):
    for key, t in state.items():
        assert torch.equal(t, before[key]), f"the caller's {key} was written"
    for key, t in ref.state_dict().items():
        assert torch.equal(t, before[key]), f"the caller's model's {key} was written"
    with torch.no_grad():
        assert torch.equal(ref(x), expected)


def _shares_nothing(model, state):
    theirs = {t.untyped_storage().data_ptr() for t in state.values()}
    assert not [k for k, t in model.state_dict().items() if t.untyped_storage().data_ptr() in theirs]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_weights_from_a_state_dict_never_write_the_callers_tensors(write_spec, dtype):
    spec = write_spec(SMALL)
    ref, x, expected = _reference(spec, dtype)
    state = ref.state_dict()
    before = {k: v.clone() for k, v in state.items()}
    model = compile_spec(spec, weights=state, device="cpu").to(dtype)
    with torch.no_grad():
        assert torch.equal(model.eval()(x), expected)  # the same values...
    _trained(model)
    folded = compile_spec(spec, weights=state, optimize="inference").to(dtype)  # batch norm folded into fc
    with torch.no_grad():
        torch.testing.assert_close(folded(x), expected, rtol=1e-4, atol=1e-5)
    _unchanged(ref, state, before, x, expected)
    _shares_nothing(model, state)  # ...in storage of its own
    _shares_nothing(folded, state)


def test_variant_and_load_weights_take_a_state_dict_without_sharing_it(write_spec):
    spec = write_spec(SMALL)
    ref, x, expected = _reference(spec)
    state = ref.state_dict()
    before = {k: v.clone() for k, v in state.items()}
    other = ref.variant()  # carries every tensor over from ref
    assert other.load_report.complete and "fc.weight" in other.load_report.loaded
    _trained(other)
    meta = compile_spec(spec, device="meta")
    load_weights(meta, state, device="cpu")  # onto a model on the meta device: placed, not filled
    _trained(meta)
    _unchanged(ref, state, before, x, expected)
    _shares_nothing(other, state)
    _shares_nothing(meta, state)


def _state(spec, **changes):
    state = {k: v.clone() for k, v in compile_spec(spec).state_dict().items()}
    state.update(changes)
    return state


@pytest.mark.parametrize("key, value, why", [
    ("fc.weight", torch.complex(torch.ones(2, 3), torch.full((2, 3), 0.5)), "imaginary part"),
    ("fc.weight", torch.full((2, 3), 1e300, dtype=torch.float64), "overflow float32"),
    ("bn.num_batches_tracked", torch.tensor(3.7), "non-integer value into int64"),
    ("bn.num_batches_tracked", torch.tensor(float("nan")), "non-integer value into int64"),
    ("bn.num_batches_tracked", torch.tensor(1e30), "out of the range of int64"),
])
def test_a_lossy_cast_is_an_error_naming_the_key_or_skipped_and_reported(write_spec, key, value, why):
    spec = write_spec(SMALL)
    state = _state(spec, **{key: value})
    with pytest.raises(WeightsError, match=rf"(?s)would change in the cast to the model's dtype.*{key} \(.*{why}") as e:
        compile_spec(spec, weights=state)
    assert str(e.value).startswith("the weights in a state_dict do not fit") and "tensor(" not in str(e.value)
    model = compile_spec(spec, weights=state, strict=False)
    report = model.load_report
    assert [k for k, _ in report.lossy] == [key] and key not in report.loaded and not report.complete
    assert f"{key} (" in report.format() and "skipped" in report.format()
    kept = model.get_parameter(key) if key.startswith("fc") else model.get_buffer(key)
    assert not kept.is_meta and (key.startswith("fc") or kept.item() == 0)  # left as initialised


def test_a_model_with_memory_checks_its_own_dtype(write_spec):
    spec = write_spec(SMALL)
    model = compile_spec(spec).half()
    state = _state(spec, **{"fc.bias": torch.tensor([70000, 1])})  # an int64 that float32 holds, float16 not
    before = model.fc.bias.clone()
    with pytest.raises(WeightsError, match=r"fc\.bias \(1 value overflows float16"):
        load_weights(model, state)
    assert torch.equal(model.fc.bias, before)
    assert load_weights(model, state, strict=False).lossy[0][0] == "fc.bias" and torch.equal(model.fc.bias, before)


def test_casts_that_lose_nothing_load_and_are_listed(write_spec):
    spec = write_spec(SMALL)
    state = _state(spec, **{"fc.weight": torch.complex(torch.ones(2, 3), torch.zeros(2, 3)),
                            "fc.bias": torch.tensor([3, -2]), "bn.weight": torch.tensor([True, False]),
                            "bn.num_batches_tracked": torch.tensor(5.0, dtype=torch.float64)})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # not even torch's "discards the imaginary part"
        model = compile_spec(spec, weights=state)
    assert model.load_report.complete and not model.load_report.lossy
    assert torch.equal(model.fc.weight, torch.ones(2, 3)) and torch.equal(model.fc.bias, torch.tensor([3.0, -2.0]))
    assert model.bn.num_batches_tracked.item() == 5 and model.bn.num_batches_tracked.dtype == torch.int64
    assert sorted(k for k, _, _ in model.load_report.converted) == ["bn.num_batches_tracked", "bn.weight", "fc.bias",
                                                                    "fc.weight"]
    assert "fc.weight (complex64 -> float32)" in model.load_report.format()


def test_nan_and_inf_load_with_a_warning_and_a_line_of_the_report(write_spec, caplog):
    spec = write_spec(SMALL)
    weight = torch.ones(2, 3)
    weight[0, 0], weight[1, 2] = float("nan"), float("inf")
    state = _state(spec, **{"fc.weight": weight})
    with pytest.warns(WeightsWarning, match=r"fc\.weight \(2 of 6 values: 1 NaN, 1 infinite\)"):
        model = compile_spec(spec, weights=state)  # strict: it loads, for the caller to decide
    assert model.load_report.nonfinite == [("fc.weight", 1, 1, 6)] and model.load_report.complete
    assert "NaN or infinite values" in model.load_report.format()
    assert torch.equal(model.fc.weight.isnan(), weight.isnan())
    assert any(r.name == "archspec" and "NaN or infinite values" in r.getMessage() for r in caplog.records)  # logged too


def test_the_command_line_says_which_key_is_lossy_or_not_finite(write_spec, tmp_path, capsys):
    spec = write_spec(SMALL)
    bad = tmp_path / "complex.pth"
    torch.save(_state(spec, **{"fc.weight": torch.complex(torch.ones(2, 3), torch.ones(2, 3))}), bad)
    assert main(["build", str(spec), "--weights", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "fc.weight (complex64 values into float32: the imaginary part would be lost)" in err and "Traceback" not in err
    nan = tmp_path / "nan.pth"
    torch.save(_state(spec, **{"bn.bias": torch.tensor([float("nan"), 0.0])}), nan)
    assert main(["build", str(spec), "--weights", str(nan)]) == 0
    err = capsys.readouterr().err
    assert "warning: " in err and "bn.bias (1 of 2 values: 1 NaN)" in err and "Traceback" not in err


def test_a_damaged_safetensors_header_is_named_as_such(tmp_path):
    good = tmp_path / "x.safetensors"
    header = b'{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}'
    for length in (2**63, 10**12, 0):
        good.write_bytes(length.to_bytes(8, "little") + header + b"\0\0\0\0")
        with pytest.raises(WeightsError, match=r"is a damaged \.safetensors file: its header length \(\d[\d,]* bytes, in its first 8 bytes\) is (more|less) than"):
            read_checkpoint(good)
    good.write_bytes(b"not json")  # named .safetensors, and neither a safetensors header nor torch's zip or pickle
    with pytest.raises(WeightsError, match=r"is a damaged \.safetensors file: it does not start as one does .*only 8 bytes"):
        read_checkpoint(good)
    torch.save({"w": torch.ones(1)}, good)  # torch's zip under that name is still read as what it is
    assert torch.equal(read_checkpoint(good)["w"], torch.ones(1))
