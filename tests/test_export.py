"""`archspec export`: every format, loaded the way a deployment loads it, against eager.

ONNX needs the `onnx` extra (onnx, onnxscript, onnxruntime); its tests are skipped where
it is not installed. Exporting costs time per node (the ONNX exporter some seconds per
hundred), so the networks are small: GoogLeNet (with its auxiliary heads) at 3x64x64,
DenseNet-121 cut to two layers per dense block at 3x32x32, and a tiny spec with every op.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from contextlib import nullcontext

import pytest
import torch

from archspec import compile_spec, load_spec
from archspec._export import FixedSizeError, MissingExtraError, export_model
from archspec._lower import lower
from archspec._files import write_file
from archspec.cli import main
from reference import SPECS

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")

FORMATS = ["torchscript", "onnx", "exported", "state_dict", "safetensors"]
ONNX_SKIP = "the 'onnx' extra is not installed (pip install -e \".[onnx]\")"

#: every op of the registry, two eval outputs and a training-only head
TINY = """archspec: 1
name: tiny
input: [3, 15, 15]
graph:
  stem: {op: conv2d, out: 8, kernel: 3, padding: 1}
  bn: {op: batchnorm2d}
  act: {op: relu}
  lrn: {op: lrn, size: 3}
  pool: {op: maxpool2d, kernel: 3, stride: 2, ceil_mode: true}
  mix:
    concat:
      a: {op: conv2d, out: 4, kernel: 1}
      b: [{op: avgpool2d, kernel: 3, stride: 1, padding: 1, count_include_pad: false}, {op: conv2d, out: 4, kernel: 1}]
  res:
    add:
      main: [{op: conv2d, out: 8, kernel: 3, padding: 1}, {op: relu}]
      skip: {op: identity}
  ap: {op: avgpool2d, kernel: 2, padding: 1, ceil_mode: true}
  gap: {op: adaptive_avgpool2d, size: 2}
  flat: {op: flatten}
  drop: {op: dropout, p: 0.2}
  fc: {op: linear, out: 5}
  side: {seq: [{op: adaptive_avgpool2d}, {op: flatten}, {op: linear, out: 3}], from: mix}
outputs:
  logits: fc
  feats: gap
  aux: {node: side, training_only: true}
"""

#: (spec, parameters, input shape, the eval outputs, a prefix of the training-only weights)
NETWORKS = {
    "tiny": (None, {}, (3, 15, 15), ["logits", "feats"], "side."),
    "tiny_dict": (None, {}, (3, 15, 15), ["logits", "feats"], "side."),  # TINY with returns: dict
    "googlenet": (SPECS / "googlenet.yaml", {}, (3, 64, 64), ["logits"], "aux"),
    "densenet": (SPECS / "densenet121.yaml", {"block_config": [2, 2, 2, 2]}, (3, 32, 32), ["output"], None),
}


@pytest.fixture
def network(request, write_spec):
    spec, params, shape, outputs, aux = NETWORKS[request.param]
    text = TINY.replace("graph:", "returns: dict\ngraph:", 1) if request.param == "tiny_dict" else TINY
    return spec or write_spec(text), params, shape, outputs, aux


def file_for(folder, fmt: str):
    """Where to export: in a folder of its own (to see that nothing else is left there);
    torch.export.load wants a name ending in .pt2."""
    folder.mkdir()
    return folder / f"model.{'pt2' if fmt == 'exported' else fmt}"


def needs_onnx(fmt: str) -> None:
    """Skip a format whose optional extra is not installed (CI installs both)."""
    if fmt == "onnx":
        for name in ("onnx", "onnxscript", "onnxruntime"):
            pytest.importorskip(name, reason=ONNX_SKIP)
    if fmt == "safetensors":
        pytest.importorskip("safetensors", reason="the 'safetensors' extra is not installed (pip install -e \".[safetensors]\")")


def lively(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Weights under which the outputs depend on the input (the specs' own init makes
    GoogLeNet's logits nearly constant, which would make any comparison vacuous)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if not t.is_floating_point():
                continue
            if name.endswith("running_var") or (t.dim() == 1 and name.endswith("weight")):
                t.uniform_(0.5, 1.5, generator=gen)
            elif t.dim() > 1:
                t.normal_(0, (2 / t[0].numel()) ** 0.5, generator=gen)
            else:
                t.normal_(0, 0.1, generator=gen)
    return model


def load(fmt: str, path, spec, params, shape):
    """What a deployment would run, as a function of a batch returning a tuple of tensors."""
    if fmt == "torchscript":
        module = torch.jit.load(str(path))
    elif fmt == "exported":
        module = torch.export.load(str(path)).module()
    elif fmt == "state_dict":
        module = compile_spec(spec, params=params, input_shape=shape, init=False)
        module.load_state_dict(torch.load(path, weights_only=True))
        module.eval()
    elif fmt == "safetensors":  # as a user loads it: compile_spec's weights=
        module = compile_spec(spec, params=params, input_shape=shape, weights=path).eval()
    else:
        import onnxruntime

        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return lambda x: tuple(torch.from_numpy(a) for a in session.run(None, {"input": x.numpy()}))

    def run(x):
        with torch.no_grad():
            out = module(x)
        if isinstance(out, dict):  # returns: dict (TorchScript and torch.export give a plain one)
            return tuple(out.values())
        return tuple(out) if isinstance(out, (tuple, list)) else (out,)

    return run


def check_outputs(model, run, shape, batches=(1, 3)) -> None:
    """The deployed model against eager, at batch sizes other than the export's example (2)."""
    model.eval()
    for b in batches:
        x = torch.randn(b, *shape, generator=torch.Generator().manual_seed(b))
        with torch.no_grad():
            want = model(x)
        want = tuple(want.values()) if isinstance(want, dict) else tuple(want) if isinstance(want, tuple) else (want,)
        got = run(x)
        assert len(got) == len(want)
        for g, w in zip(got, want):
            assert g.shape == w.shape
            assert (g - w).abs().max() <= 1e-4 * w.abs().max() + 1e-6, (b, (g - w).abs().max(), w.abs().max())


def weights(fmt: str, path) -> dict[str, torch.Tensor]:
    """The weights in an exported file, by name (ONNX: its initializers, after the exporter's folding)."""
    if fmt == "torchscript":
        return torch.jit.load(str(path)).state_dict()
    if fmt == "exported":
        return dict(torch.export.load(str(path)).state_dict)
    if fmt == "state_dict":
        return torch.load(path, weights_only=True)
    if fmt == "safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    import onnx
    from onnx.numpy_helper import to_array

    return {t.name: torch.from_numpy(to_array(t).copy()) for t in onnx.load(str(path)).graph.initializer}


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("network", list(NETWORKS), indirect=True)
def test_export_model(network, fmt, tmp_path):
    needs_onnx(fmt)
    spec, params, shape, outputs, aux = network
    graph = load_spec(spec, params=params, input_shape=shape)
    model = lively(lower(graph, init=False))
    model.train()
    path = file_for(tmp_path / "out", fmt)
    export_model(model, graph, fmt, str(path), writer=write_file)
    assert model.training and all(m.training for m in model.modules())  # the caller's mode is restored
    assert [p.name for p in path.parent.iterdir()] == [path.name]
    check_outputs(model, load(fmt, path, spec, params, shape), shape)

    names = set(weights(fmt, path))
    if fmt in ("state_dict", "safetensors"):
        assert names == set(model.state_dict())  # every weight: loads strictly into compile_spec
    elif aux:
        assert names and not any(n.startswith(aux) for n in names)  # the eval graph only
        assert any(n.startswith(aux) for n in model.state_dict())  # (the heads are in the spec)
    if fmt == "onnx":
        import onnx

        proto = onnx.load(str(path))
        assert [o.name for o in proto.graph.output] == outputs
        assert [i.name for i in proto.graph.input] == ["input"]
        assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param  # a symbolic batch


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("network", ["tiny"], indirect=True)  # the command's own path; the networks are above
def test_cli_export(network, fmt, tmp_path, capsys):
    needs_onnx(fmt)
    spec, params, shape, _, _ = network
    path = file_for(tmp_path / "out", fmt)
    sets = [a for k, v in params.items() for a in ("--set", f"{k}={v}".replace(" ", ""))]
    torch.manual_seed(0)
    status = main(["export", str(spec), "--format", fmt, "-o", str(path), "--input", ",".join(map(str, shape)), *sets])
    out, err = capsys.readouterr()
    assert status == 0 and out == f"wrote {path} ({fmt})\n"
    assert err == ""  # no deprecation noise from torch.jit or the exporter
    assert [p.name for p in path.parent.iterdir()] == [path.name]
    torch.manual_seed(0)
    model = compile_spec(spec, params=params, input_shape=shape)  # the same weights as the command's
    if fmt != "onnx":
        state = model.state_dict()
        assert all(torch.equal(w, state[k]) for k, w in weights(fmt, path).items())
    check_outputs(model, load(fmt, path, spec, params, shape), shape, batches=(1,))


def test_torchscript_and_exported_load_without_archspec(tmp_path, write_spec):
    spec = write_spec(TINY)
    graph = load_spec(spec)
    model = lively(lower(graph, init=False)).eval()
    x = torch.randn(2, 3, 15, 15)
    with torch.no_grad():
        want = model(x)
    for fmt, name in (("torchscript", "m.pt"), ("exported", "m.pt2")):
        export_model(model, graph, fmt, str(tmp_path / name), writer=write_file)
    torch.save(x, tmp_path / "x.pt")
    code = f"""
import sys, warnings
warnings.simplefilter("ignore")
sys.modules["archspec"] = None  # not importable
import torch
x = torch.load(r"{tmp_path / 'x.pt'}")
a = torch.jit.load(r"{tmp_path / 'm.pt'}")(x)
b = torch.export.load(r"{tmp_path / 'm.pt2'}").module()(x)
assert type(a) is tuple and type(b) is tuple, (type(a), type(b))
torch.save([a, b], r"{tmp_path / 'out.pt'}")
"""
    subprocess.run([sys.executable, "-c", code], check=True, cwd=tmp_path)
    for got in torch.load(tmp_path / "out.pt"):
        assert all(torch.allclose(g, w, rtol=1e-5, atol=1e-6) for g, w in zip(got, want))


@pytest.mark.parametrize("missing", ["onnx", "onnxscript"])
def test_onnx_without_the_extra_is_a_clean_error(missing, monkeypatch, tmp_path, capsys, write_spec):
    monkeypatch.setitem(sys.modules, missing, None)  # import fails as if it were not installed
    spec = write_spec(TINY)
    target = tmp_path / "model.onnx"
    status = main(["export", str(spec), "--format", "onnx", "-o", str(target)])
    _, err = capsys.readouterr()
    assert status == 1
    assert re.fullmatch(r"archspec: error: exporting to ONNX needs the packages onnx and onnxscript \((.*) not installed\); "
                        r"install the 'onnx' extra: pip install -e \"\.\[onnx\]\"\n", err), err
    assert missing in re.search(r"\((.*) not installed", err).group(1).split(", ")
    assert not target.exists()
    graph = load_spec(spec)
    with pytest.raises(MissingExtraError) as e:
        export_model(lower(graph), graph, "onnx", str(target), writer=write_file)
    assert isinstance(e.value, OSError) and str(e.value) == e.value.strerror and 'pip install -e ".[onnx]"' in str(e.value)


def test_unknown_format(write_spec, tmp_path):
    graph = load_spec(write_spec(TINY))
    with pytest.raises(ValueError, match="unknown export format 'tflite' .expected one of: torchscript, onnx, exported, state_dict."):
        export_model(lower(graph), graph, "tflite", str(tmp_path / "m"), writer=write_file)


def test_a_failed_export_leaves_no_file_and_keeps_the_old_one(write_spec, tmp_path, monkeypatch, capsys):
    spec = write_spec(TINY, name="tiny.yaml")
    target = tmp_path / "model.pt2"

    def half_written(program, f, **kwargs):
        with open(f, "wb") if isinstance(f, (str, os.PathLike)) else nullcontext(f) as out:
            out.write(b"partial")
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(torch.export, "save", half_written)  # fails while writing
    assert main(["export", str(spec), "--format", "exported", "-o", str(target)]) == 1
    assert capsys.readouterr().err == "archspec: error: the exported export failed: disk on fire (--debug shows the traceback)\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.yaml"]  # nothing left behind

    target.write_bytes(b"previous")
    assert main(["--debug", "export", str(spec), "--format", "exported", "-o", str(target)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("Traceback") and "RuntimeError: disk on fire" in err  # --debug: the traceback too
    assert target.read_bytes() == b"previous"

    def no_script(module):
        raise RuntimeError("cannot script")

    monkeypatch.setattr(torch.jit, "script", no_script)  # fails before writing
    assert main(["export", str(spec), "--format", "torchscript", "-o", str(target)]) == 1
    assert "the torchscript export failed: cannot script" in capsys.readouterr().err
    assert target.read_bytes() == b"previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt2", "tiny.yaml"]



#: segmentation networks that read their sizes at run time (``like:``), at a small input
DYNAMIC = {
    "unet": (SPECS / "segmentation" / "unet.yaml", {"widths": [4, 8, 16]}, (3, 64, 64)),
    "lraspp": (SPECS / "segmentation" / "lraspp_mobilenet_v3_large.yaml", {}, (3, 64, 64)),
}


@pytest.mark.parametrize("fmt", ["onnx", "exported"])
@pytest.mark.parametrize("name", list(DYNAMIC))
def test_dynamic_size_takes_other_sizes(name, fmt, tmp_path, capsys):
    needs_onnx(fmt)
    spec, params, shape = DYNAMIC[name]
    path = file_for(tmp_path / "out", fmt)
    sets = [a for k, v in params.items() for a in ("--set", f"{k}={v}".replace(" ", ""))]
    torch.manual_seed(0)
    status = main(["export", str(spec), "--format", fmt, "-o", str(path), "--input", ",".join(map(str, shape)),
                   "--dynamic-size", *sets])
    out, err = capsys.readouterr()
    assert status == 0 and out == f"wrote {path} ({fmt})\n"
    assert err == ""  # no notes from the symbolic-shape machinery
    torch.manual_seed(0)
    model = compile_spec(spec, params=params, input_shape=shape).eval()  # the command's weights
    run = load(fmt, path, spec, params, shape)
    for size in ((97, 113), (45, 71)):  # odd, and neither the spec's
        x = torch.randn(1, 3, *size, generator=torch.Generator().manual_seed(size[0]))
        with torch.no_grad():
            want = model(x)
        want = tuple(want.values()) if isinstance(want, dict) else (want,)
        got = run(x)
        assert len(got) == len(want)
        for g, w in zip(got, want):
            assert g.shape == w.shape and w.shape[-2:] == size
            assert (g - w).abs().max() <= 1e-5 * max(1.0, w.abs().max()), (size, (g - w).abs().max())
    if fmt == "onnx":
        import onnx

        dims = onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim
        assert [bool(d.dim_param) for d in dims] == [True, False, True, True]  # N, H and W symbolic; C fixed


FLAT = """archspec: 1
name: flat
input: [3, 8, 8]
graph:
  conv: {op: conv2d, out: 4, kernel: 3, padding: 1}
  flat: {op: flatten}
  fc: {op: linear, out: 5}
"""


@pytest.mark.parametrize("fmt", ["onnx", "exported"])
def test_dynamic_size_refuses_a_fixed_size(fmt, write_spec, tmp_path, capsys):
    needs_onnx(fmt)
    spec = write_spec(FLAT)
    target = tmp_path / "out" / f"model.{fmt}"
    target.parent.mkdir()
    assert main(["export", str(spec), "--format", fmt, "-o", str(target), "--dynamic-size"]) == 1
    out, err = capsys.readouterr()
    assert out == "" and err == ("archspec: error: --dynamic-size: flat's spatial size is fixed at 8 x 8 (its forward needs "
                                 "(4*W*H) == 256); export without --dynamic-size, at the size you deploy (--input)\n")
    assert list(target.parent.iterdir()) == []
    # a ViT: the position embedding fixes the number of patches
    vit = {"layers": 1, "hidden": 16, "heads": 2, "mlp": 16, "image_size": 32}
    graph = load_spec(SPECS / "vit" / "vit_b_16.yaml", params=vit, input_shape=(3, 32, 32))
    with pytest.raises(FixedSizeError, match=r"^--dynamic-size: vit_b_16's spatial size is fixed at 32 x 32 \(its forward "
                                             r"needs .*W // 16.*H // 16.* == 5\); export without --dynamic-size"):
        export_model(lower(graph), graph, fmt, str(target), writer=write_file, dynamic_size=True)
    assert list(target.parent.iterdir()) == []


@pytest.mark.parametrize("fmt", ["torchscript", "state_dict", "safetensors"])
def test_dynamic_size_only_for_onnx_and_exported(fmt, write_spec, tmp_path, capsys):
    spec = write_spec(TINY)
    target = tmp_path / "model.pt"
    assert main(["export", str(spec), "--format", fmt, "-o", str(target), "--dynamic-size"]) == 2
    why = "TorchScript takes any input size already" if fmt == "torchscript" else "weights have no input size"
    assert capsys.readouterr().err == (f"archspec: error: --dynamic-size applies to the onnx and exported formats, not {fmt} "
                                       f"({why})\n")
    graph = load_spec(spec)
    with pytest.raises(FixedSizeError, match=f"not {fmt} "):
        export_model(lower(graph), graph, fmt, str(target), writer=write_file, dynamic_size=True)
    assert not target.exists()


def test_dynamic_size_needs_an_image_input(write_spec, tmp_path):
    graph = load_spec(write_spec("archspec: 1\nname: mlp\ninput: [16]\ngraph:\n  fc: {op: linear, out: 4}\n"))
    with pytest.raises(FixedSizeError, match=r"^--dynamic-size makes an image's height and width dynamic: it needs a "
                                             r"C x H x W input, and mlp's is 16$"):
        export_model(lower(graph), graph, "exported", str(tmp_path / "m.pt2"), writer=write_file, dynamic_size=True)


def test_dynamic_size_leaves_a_size_rule_to_the_program(write_spec, tmp_path):
    """A network that takes even sizes only is exported; torch.export's program checks the rule."""
    spec = write_spec(FLAT.replace("name: flat", "name: even").split("  flat:")[0]
                      + "  res:\n    add:\n      a: [{op: maxpool2d, kernel: 2}, {op: interpolate, scale_factor: 2}]\n"
                      "      b: {op: identity}\n")
    graph = load_spec(spec)
    model = lively(lower(graph, init=False)).eval()
    path = tmp_path / "m.pt2"
    export_model(model, graph, "exported", str(path), writer=write_file, dynamic_size=True)
    program = torch.export.load(str(path)).module()
    x = torch.randn(1, 3, 10, 14)
    with torch.no_grad():
        assert torch.allclose(program(x), model(x), atol=1e-6)
    with pytest.raises(AssertionError, match=r"Guard failed: x.size\(\)\[2\] == 2 \* \(x.size\(\)\[2\] // 2\)"):
        program(torch.randn(1, 3, 9, 14))


def test_dynamic_size_refuses_a_size_made_constant(write_spec, tmp_path, monkeypatch):
    from torch._dynamo.exc import UserError, UserErrorType

    def specialised(*args, **kwargs):  # what torch.export says of a forward that makes H a constant
        raise UserError(UserErrorType.CONSTRAINT_VIOLATION, "Constraints violated (L['x'].size()[2])! \n"
                        "  - You marked L['x'].size()[2] as dynamic but your code specialized it to be a constant (8). "
                        "If you're using mark_dynamic, either remove it or use maybe_mark_dynamic.")

    monkeypatch.setattr(torch.export, "export", specialised)
    graph = load_spec(write_spec(FLAT))
    with pytest.raises(FixedSizeError, match=r"^--dynamic-size: flat's spatial size is fixed at 8 x 8 \(its forward makes "
                                             r"H the constant 8\); export without --dynamic-size"):
        export_model(lower(graph), graph, "exported", str(tmp_path / "m.pt2"), writer=write_file, dynamic_size=True)
