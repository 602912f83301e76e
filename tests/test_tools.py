"""The tools around a spec: validate, list, diff, checkpoints, feature outputs, the API."""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest
import torch

import archspec
from archspec import SpecReferenceError, WeightsError, compile_spec, load_spec
from archspec.cli import main
from reference import ROOT, SPECS


def run(capsys, *args):
    status = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return status, out, err


# -- validate ----------------------------------------------------------------------------


def test_validate_one_line_per_spec(capsys):
    status, out, err = run(capsys, "validate", *sorted(SPECS.glob("*.yaml")))
    assert status == 0 and err == ""
    lines = out.splitlines()
    assert len(lines) == 10
    assert any(line.endswith("specs/densenet264.yaml: ok (densenet264, 33,337,704 parameters, 5.752 GMACs at 3x224x224)")
               for line in lines)


def test_validate_fails_if_any_spec_is_invalid(capsys):
    bad = ROOT / "tests" / "bad_specs" / "shape-groups.yaml"
    status, out, err = run(capsys, "validate", SPECS / "alexnet.yaml", bad)
    assert status == 2
    assert out.splitlines()[1].endswith("shape-groups.yaml: invalid (1 error)")
    assert "groups=2 does not divide the 3 input channels" in err


def test_validate_imports_no_torch_and_allocates_nothing():
    """load_spec (what `archspec validate` runs) never imports torch, so it cannot allocate a
    weight; how long it takes, against compiling, is measured by bench/speed.py."""
    code = ("import sys\nfrom archspec import load_spec\n"
            f"graph = load_spec({str(SPECS / 'densenet264.yaml')!r})\n"
            "print(sum(n.n_params for n in graph.nodes.values()), 'torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "33337704 False\n"


# -- list --------------------------------------------------------------------------------


def test_list_a_folder_with_a_broken_spec(tmp_path, capsys):
    (tmp_path / "ok.yaml").write_text("archspec: 1\nname: ok\ndescription: a tiny net\ninput: [3, 8, 8]\ngraph:\n  c: {op: conv2d, out: 2, kernel: 3}\n")
    (tmp_path / "bad.yaml").write_text("archspec: 1\nname: bad\ninput: [3, 8, 8]\ngraph:\n  c: {op: conv, out: 2}\n")
    status, out, err = run(capsys, "list", tmp_path)
    assert status == 2
    rows = {line.split()[0]: line for line in out.splitlines()[2:]}
    assert rows["ok.yaml"].split()[1:] == ["a", "tiny", "net", "56", "1,944", "3x8x8"]
    assert rows["bad.yaml"].endswith("invalid: in c: unknown op 'conv' (expected one of the " + str(len(archspec.ops.REGISTRY)) + " op…")  # kept short
    assert err == "1 invalid; 'archspec validate FILE' shows the full diagnostics\n"


# -- diff --------------------------------------------------------------------------------


def test_diff_densenet121_169(capsys):
    status, out, _ = run(capsys, "diff", SPECS / "densenet121.yaml", SPECS / "densenet169.yaml")
    assert status == 0
    assert "params      block_config [6, 12, 24, 16] -> [6, 12, 32, 32]" in out
    assert "parameters  7,978,856 -> 14,149,480 (+6,170,624)" in out
    assert "state_dict  727 -> 1,015 keys; 637 of densenet121's 727 load into densenet169 unchanged" in out
    lines = out.splitlines()
    added3 = next(line for line in lines if line.startswith("+ features.denseblock3.denselayer{25..32}"))
    assert "dense_layer" in added3 and "x8" in added3
    assert any(line.startswith("+ features.denseblock4.denselayer{17..32}") and "x16" in line for line in lines)
    assert any(line.startswith("~ classifier ") and "input 1024 -> 1664" in line for line in lines)


def test_diff_counts_keys_that_load(tmp_path):
    from archspec._diff import diff, format_diff

    a, b = load_spec(SPECS / "googlenet.yaml"), load_spec(SPECS / "googlenet.yaml", num_classes=10)
    d = diff(a, b)
    assert d.loadable == sum(1 for k, s in a.state_shapes().items() if b.state_shapes().get(k) == s) == 358
    assert "state_dict  364 -> 364 keys; 358 of googlenet's 364 load into googlenet unchanged (same key and shape), 6 do not" \
        in format_diff(d)
    # and the count is what load_state_dict really accepts
    full = compile_spec(SPECS / "googlenet.yaml").state_dict()
    target = compile_spec(SPECS / "googlenet.yaml", num_classes=10, device="meta").state_dict()
    assert sum(1 for k, v in full.items() if k in target and target[k].shape == v.shape) == 358


def test_diff_of_identical_specs(capsys):
    status, out, _ = run(capsys, "diff", SPECS / "alexnet.yaml", SPECS / "alexnet.yaml")
    assert out.rstrip().endswith("no node changed")


STAGES = """archspec: 1
name: stages
input: [3, 64, 64]
params: {depths: [1, 1, 1, 1], wide: 8}
blocks:
  unit:
    params: {out: int, stride: 1}
    seq:
      conv: {op: conv2d, out: $out, kernel: 3, stride: $stride, padding: 1}
      relu: {op: relu}
  stage:
    params: {out: int, n: int, stride: 2}
    seq:
      "{i}": {use: unit, out: $out, stride: "${stride if i == 0 else 1}", repeat: $n}
graph:
  layer1: {use: stage, out: 8, n: "${depths[0]}", stride: 1}
  layer2: {use: stage, out: 16, n: "${depths[1]}"}
  layer3: {use: stage, out: 32, n: "${depths[2]}"}
  layer4: {use: stage, out: 64, n: "${depths[3]}"}
  "extra{i}": {op: conv2d, out: "${wide * (i + 1)}", kernel: 1, repeat: 6}
"""


def test_a_folded_diff_line_shows_every_copys_shape(write_spec):
    """`layer{1..4}.1 ... x4` once showed only the first copy's shape and parameters."""
    from archspec._diff import diff, format_diff

    spec = write_spec(STAGES)
    d = diff(load_spec(spec), load_spec(spec, depths=[2, 2, 2, 2]))
    lines = format_diff(d).splitlines()
    assert "+ layer{1..4}.1  unit  8x64x64 / 16x32x32 / 32x16x16 / 64x8x8, 584 / 2,320 / 9,248 / 36,928 parameters x4  " \
           "[+49,080 params]" in lines
    # past four copies, the first copy's value and the last's
    d = diff(load_spec(spec), load_spec(spec, wide=16))
    changed = [line for line in format_diff(d).splitlines() if line.startswith("~ extra")]
    assert changed == ["~ extra0       conv2d  output 8x8x8 -> 16x8x8; out 8 -> 16; parameters 520 -> 1,040  [+520 params]",
                       "~ extra{1..5}  conv2d  input 8x8x8..40x8x8 -> 16x8x8..80x8x8; output 16x8x8..48x8x8 -> 32x8x8..96x8x8; "
                       "out 16..48 -> 32..96; parameters 144..1,968 -> 544..7,776 x5  [+13,600 params]"]


# -- checkpoints -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def googlenet_checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "googlenet.pt"
    torch.manual_seed(1)
    model = compile_spec(SPECS / "googlenet.yaml")
    torch.save({"epoch": 3, "state_dict": model.state_dict()}, path)
    return path, model


def test_weights_load_strictly(googlenet_checkpoint):
    path, reference = googlenet_checkpoint
    model = compile_spec(SPECS / "googlenet.yaml", weights=path)
    assert model.load_report.complete
    for key, value in reference.state_dict().items():
        assert torch.equal(model.state_dict()[key], value)


def test_weights_that_do_not_fit_are_refused_strictly(googlenet_checkpoint):
    path, _ = googlenet_checkpoint
    with pytest.raises(WeightsError) as e:
        compile_spec(SPECS / "googlenet.yaml", weights=path, num_classes=10)
    assert "fc.weight (checkpoint 1000x1024, model 10x1024)" in str(e.value)


def test_weights_non_strict_skip_the_classifier_and_say_so(googlenet_checkpoint, caplog):
    path, reference = googlenet_checkpoint
    with caplog.at_level(logging.WARNING, logger="archspec"):
        model = compile_spec(SPECS / "googlenet.yaml", weights=path, num_classes=10, aux_logits=False, strict=False)
    report = model.load_report
    assert [k for k, _, _ in report.mismatched] == ["fc.weight", "fc.bias"]
    assert len(report.unexpected) == 20 and all(k.startswith("aux") for k in report.unexpected)
    assert report.missing == []
    assert torch.equal(model.conv1.conv.weight, reference.conv1.conv.weight)
    assert "skipped, shape differs (2): fc.weight (checkpoint 1000x1024, model 10x1024)" in caplog.text


def test_checkpoints_without_batchnorm_counters_load_strictly(googlenet_checkpoint, tmp_path):
    """Checkpoints saved before torch had num_batches_tracked (torchvision's DenseNet files)
    load as torch's own load_state_dict loads them: the counters keep their value."""
    path, reference = googlenet_checkpoint
    counters = [k for k in reference.state_dict() if k.endswith("num_batches_tracked")]
    assert len(counters) == 59  # one per conv's batch norm, aux heads included
    old = {k: v for k, v in reference.state_dict().items() if k not in counters}
    torch.save(old, tmp_path / "old.pt")
    model = compile_spec(SPECS / "googlenet.yaml", weights=tmp_path / "old.pt")
    report = model.load_report
    assert report.complete and report.kept == counters and report.missing == []
    assert torch.equal(model.conv1.bn.running_var, reference.conv1.bn.running_var)
    assert "BatchNorm counters not in the checkpoint, kept as they were (59): conv1.bn.num_batches_tracked" in report.format()
    del old["conv1.bn.running_mean"]  # other buffers are still required
    torch.save(old, tmp_path / "no_mean.pt")
    with pytest.raises(WeightsError, match=r"missing from the checkpoint \(1\): conv1.bn.running_mean"):
        compile_spec(SPECS / "googlenet.yaml", weights=tmp_path / "no_mean.pt")


def test_weights_cli(googlenet_checkpoint, capsys, tmp_path):
    path, _ = googlenet_checkpoint
    status, out, _ = run(capsys, "build", SPECS / "googlenet.yaml", "--weights", path, "--depth", "1")
    assert status == 0 and "checkpoint  loaded 364 of the model's 364 tensors" in out
    status, _, err = run(capsys, "build", SPECS / "googlenet.yaml", "--weights", path, "--set", "num_classes=5")
    assert status == 1 and "do not fit the network (strict loading)" in err and "--no-strict" in err
    junk = tmp_path / "junk.pt"
    junk.write_text("not a checkpoint")
    status, _, err = run(capsys, "build", SPECS / "googlenet.yaml", "--weights", junk)
    assert status == 1 and "not a PyTorch checkpoint (a file written by torch.save)" in err
    pickled_module = tmp_path / "module.pt"
    torch.save(torch.nn.Linear(2, 2), pickled_module)
    status, _, err = run(capsys, "build", SPECS / "googlenet.yaml", "--weights", pickled_module)
    assert status == 1 and "it holds Python objects besides tensors" in err
    assert "torch.save(model.state_dict(), path)" in err and "weights_only=False" not in err  # no unsafe advice


def test_torchvision_densenet_files_load_through_the_specs_rename_rule(tmp_path):
    """torchvision's published DenseNet files say `denselayerN.norm.1` for `norm1` and have no
    BatchNorm counters; the base spec's checkpoint_keys rule reads them, strictly."""
    torch.manual_seed(0)
    reference = compile_spec(SPECS / "densenet121.yaml")
    legacy = {}
    for key, value in reference.state_dict().items():
        if not key.endswith("num_batches_tracked"):
            for old in ("norm1", "conv1", "norm2", "conv2"):
                key = key.replace(f".{old}.", f".{old[:-1]}.{old[-1]}.") if ".denselayer" in key else key
            legacy[key] = value
    assert "features.denseblock1.denselayer1.norm.1.weight" in legacy and "features.norm0.weight" in legacy
    torch.save(legacy, tmp_path / "densenet121-legacy.pth")
    model = compile_spec(SPECS / "densenet121.yaml", weights=tmp_path / "densenet121-legacy.pth")
    report = model.load_report
    assert report.complete and len(report.renamed) == 580 and len(report.kept) == 121
    assert report.renamed[0] == ("features.denseblock1.denselayer1.norm.1.weight", "features.denseblock1.denselayer1.norm1.weight")
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(model.eval()(x), reference.eval()(x))
    variant = compile_spec(SPECS / "densenet169.yaml", weights=tmp_path / "densenet121-legacy.pth", strict=False)
    assert variant.load_report.renamed  # variants inherit the rule


def test_checkpoint_key_rules_rename_only_what_the_model_lacks(write_spec, tmp_path):
    path = write_spec("archspec: 1\nname: t\ninput: [3, 8, 8]\ngraph:\n  a: {op: conv2d, out: 2, kernel: 1}\n"
                      "  b: {op: conv2d, out: 2, kernel: 1}\n"
                      "checkpoint_keys:\n  - {match: '^old_(\\w+)', replace: '\\1'}\n  - {match: 'x', replace: 'b'}\n")
    state = {"old_a.weight": torch.ones(2, 3, 1, 1), "a.bias": torch.zeros(2),  # a.bias is the model's own: kept
             "old_a.bias": torch.full((2,), 5.0),  # renaming it would overwrite a.bias: left alone, unexpected
             "x.weight": torch.ones(2, 2, 1, 1), "b.bias": torch.zeros(2)}
    torch.save(state, tmp_path / "c.pt")
    report = compile_spec(path, weights=tmp_path / "c.pt", strict=False).load_report
    assert report.renamed == [("old_a.weight", "a.weight"), ("x.weight", "b.weight")]
    assert report.unexpected == ["old_a.bias"] and report.missing == []


# -- feature outputs ---------------------------------------------------------------------


def test_outputs_by_path_give_a_dict():
    model = compile_spec(SPECS / "densenet121.yaml", outputs=["features.denseblock2", "features.transition2.conv"]).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 64, 64))
    assert list(out) == ["features.denseblock2", "features.transition2.conv"]
    assert out["features.denseblock2"].shape == (1, 512, 8, 8)
    assert out["features.transition2.conv"].shape == (1, 256, 8, 8)
    full = compile_spec(SPECS / "densenet121.yaml")
    full.load_state_dict(model.state_dict())  # the whole tree is kept: checkpoints still load
    assert "classifier" not in model.code  # but the forward stops at the taps
    scripted = torch.jit.script(model)
    assert set(scripted(torch.randn(1, 3, 64, 64))) == set(out)


def test_unknown_output_path_is_an_error_with_a_suggestion():
    with pytest.raises(SpecReferenceError) as e:
        compile_spec(SPECS / "densenet121.yaml", outputs=["features.denseblok2"])
    assert "outputs: 'features.denseblok2' is not a node of densenet121" in str(e.value)
    assert "did you mean 'features.denseblock2'" in e.value.hint
    with pytest.raises(SpecReferenceError) as e:
        compile_spec(SPECS / "googlenet.yaml", outputs=[])
    assert e.value.expected == "one or more node or block paths of googlenet, such as 'conv1'"  # its own, not another spec's


# -- the API -----------------------------------------------------------------------------


def test_public_api():
    assert set(archspec.__all__) == {
        "Container", "Graph", "Limits", "Loc", "Node", "Output", "SpecError", "SpecErrors", "SpecExpressionError",
        "SpecLimitError", "SpecReferenceError", "SpecSchemaError", "SpecShapeError", "SpecSyntaxError", "SpecWarning",
        "WeightsError", "WeightsWarning", "__version__", "compile_spec", "load_spec", "PluginError", "register_op", "shard", "unregister_op",
    }
    exported = {name: getattr(archspec, name) for name in archspec.__all__}  # an AttributeError names one missing
    assert f'\nversion = "{exported["__version__"]}"\n' in (ROOT / "pyproject.toml").read_text()
    for name, value in exported.items():
        if name != "__version__":
            assert callable(value) and value.__module__.split(".")[0] == "archspec", name  # archspec's own, not re-exported
    errors = {name for name, value in exported.items() if isinstance(value, type) and issubclass(value, archspec.SpecError)}
    assert errors == {"SpecError", "SpecErrors", "SpecExpressionError", "SpecLimitError", "SpecReferenceError",
                      "SpecSchemaError", "SpecShapeError", "SpecSyntaxError"}
    assert issubclass(archspec.SpecWarning, UserWarning) and issubclass(archspec.WeightsError, ValueError)
    assert issubclass(archspec.WeightsWarning, UserWarning) and not issubclass(archspec.WeightsWarning, archspec.SpecWarning)
    assert issubclass(archspec.PluginError, RuntimeError)


# -- regressions from review --------------------------------------------------------------
# Defects found in review, each pinned by a test (the spec that showed it, and what must
# happen instead): moved here from tests/test_regressions.py, beside the stage they guard.

import math


def test_weights_edge_cases(tmp_path):
    bad = tmp_path / "bad.pt"
    torch.save({1: torch.zeros(2)}, bad)
    with pytest.raises(WeightsError, match="mapping of names to tensors"):
        compile_spec(SPECS / "alexnet.yaml", weights=bad, strict=False)
    good = tmp_path / "good.pt"
    torch.save(compile_spec(SPECS / "densenet121.yaml", init=False, block_config=[1, 1, 1, 1]).state_dict(), good)
    with pytest.raises(WeightsError, match="meta"):
        compile_spec(SPECS / "densenet121.yaml", weights=good, device="meta", block_config=[1, 1, 1, 1])


def test_diff_folds_only_consecutive_numbers():
    from archspec._diff import diff

    d = diff(load_spec(SPECS / "densenet121.yaml"), load_spec(SPECS / "densenet161.yaml"))
    paths = [c.path for c in d.changes]
    assert "features.denseblock1.denselayer{1..6}.conv1" in paths
    assert not any("norm{0..5}" in p for p in paths)
    assert math.isclose(sum(c.params_delta for c in d.changes), 28_681_000 - 7_978_856)


def test_summary_and_diff_say_the_outputs_come_as_a_dict(tmp_path, capsys):
    base = "archspec: 1\nname: seg\ninput: [3, 8, 8]\ngraph:\n  conv: {op: conv2d, out: 2, kernel: 1}\noutputs: {out: conv}\n"
    (tmp_path / "a.yaml").write_text(base)
    (tmp_path / "b.yaml").write_text(base.replace("graph:", "returns: dict\ngraph:"))
    status, out, _ = run(capsys, "build", tmp_path / "b.yaml")
    assert status == 0 and "outputs     out 2x8x8 (returned as a dict by name)" in out
    status, out, _ = run(capsys, "build", tmp_path / "a.yaml")
    assert "outputs     out 2x8x8\n" in out
    status, out, _ = run(capsys, "diff", tmp_path / "a.yaml", tmp_path / "b.yaml")
    assert "outputs     out -> out as a dict" in out
