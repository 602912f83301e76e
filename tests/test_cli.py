"""The command line: `archspec build` output, overrides, -o, and compiler-style errors."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from archspec import ops
from archspec.cli import main
from reference import SPECS, installed_command


ROOT = Path(__file__).resolve().parent.parent


def python(code: str, timeout: float = 60, **kwargs) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter with this checkout's archspec, within ``timeout``
    seconds (a command that loops fails the test instead of hanging it)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]))
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=env,
                          timeout=timeout, **kwargs)


def run(capsys, *args):
    status = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return status, out, err


def test_build_prints_the_table_and_totals(capsys):
    status, out, err = run(capsys, "build", SPECS / "googlenet.yaml")
    assert status == 0 and err == ""
    lines = out.splitlines()
    assert lines[0] == "googlenet: GoogLeNet / Inception v1, torchvision layout, two auxiliary classifiers"
    assert any(line.split()[:4] == ["inception3a", "inception", "256x28x28", "155,872"] for line in lines)
    assert any(line.split()[:3] == ["branch1", "conv", "64x28x28"] for line in lines)  # indented children
    assert "parameters  13,004,888 (6,624,904 in the eval graph)" in out
    assert "MACs        1,498,376,192 (1.498 G) for the eval graph at 3x224x224" in out
    assert "weights     52.1 MB (float32: 13,004,888 parameters + 15,072 buffer values; int64: 59 buffer values)" in out
    assert "activations 7.0 MB per sample at the eval forward's peak, at 'conv1.bn'" in out
    assert "outputs     logits 1000; training only: aux_logits2 1000, aux_logits1 1000" in out


def test_build_counts_each_tensor_at_its_dtype(capsys):
    # Swin's relative position indices are int64: 8 bytes a value, not float32's 4
    status, out, _ = run(capsys, "build", "swin_t")
    assert status == 0
    assert "weights     113.4 MB (float32: 28,288,354 parameters + 0 buffer values; int64: 28,812 buffer values)" in out
    assert "activations 11.4 MB per sample at the eval forward's peak, at 'features.1.0.mlp.1'" in out


def test_build_with_overrides_input_and_depth(capsys, monkeypatch):
    monkeypatch.chdir(SPECS.parent)  # the summary names the spec relative to the working directory
    status, out, _ = run(capsys, "build", SPECS / "densenet121.yaml", "--set", "num_classes=10", "--set", "block_config=[2,2,2,2]",
                         "--input", "3,32,32", "--depth", "1")
    assert status == 0
    assert "classifier  linear              10" in out
    assert "denselayer1" not in out  # depth 1: top level only
    # the description line is the spec's own text; the next says what this build changed
    assert out.splitlines()[1] == "spec specs/densenet121.yaml, input 3x32x32, with num_classes=10, block_config=[2, 2, 2, 2]"


def test_build_output_file(tmp_path, capsys):
    target = tmp_path / "model.pt"
    status, out, _ = run(capsys, "build", SPECS / "alexnet.yaml", "--set", "num_classes=7", "-o", target)
    assert status == 0 and target.exists()
    model = torch.load(target, weights_only=False)
    assert model.eval()(torch.randn(1, 3, 224, 224)).shape == (1, 7)
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]  # no temporary file left behind
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask  # an ordinary file, not mkstemp's owner-only one


def test_a_failed_build_leaves_the_previous_output(tmp_path, capsys, write_spec):
    target = tmp_path / "model.pt"
    target.write_bytes(b"previous")
    bad = write_spec("archspec: 1\nname: t\ninput: [3, 8, 8]\ngraph:\n  c: {op: conv2d, out: 4, kernel: 9}\n")
    status, _, err = run(capsys, "build", bad, "-o", target)
    assert status == 2 and target.read_bytes() == b"previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt", bad.name]


def test_spec_errors_are_printed_like_a_compiler(capsys, write_spec):
    bad = write_spec("archspec: 1\nname: t\ninput: [3, 8, 8]\ngraph:\n  bn: {op: batchnorm, eps: 0.001}\n")
    status, out, err = run(capsys, "build", bad)
    assert status == 2 and out == ""
    lines = err.splitlines()
    assert lines[0] == f"{bad}:5:12: error: in bn: unknown op 'batchnorm' (expected one of the {len(ops.REGISTRY)} ops " \
                       "('archspec ops' lists them))"
    assert lines[1] == "    5 |   bn: {op: batchnorm, eps: 0.001}"
    assert lines[2] == "      |            ^^^^^^^^^"
    assert lines[3] == "  hint: did you mean 'batchnorm2d', 'batchnorm1d' or 'frozen_batchnorm2d'?"
    assert "Traceback" not in err


def test_an_op_that_exists_nowhere_is_not_blamed_on_a_package(capsys, write_spec):
    """'upsamplee' said "an op from a package needs that package installed"; validate and
    'archspec ops NAME' now say the same: no such op, none close, and how to add one."""
    bad = write_spec("archspec: 1\nname: t\ninput: [3, 8, 8]\ngraph:\n  up: {op: upsamplee}\n")
    status, _, err = run(capsys, "validate", bad)
    hint = ("no op has that name or one close to it, built in or from an installed package; to add an op, register "
            "it with archspec.register_op (the manual's User ops page, docs/user-ops.md), or install the package "
            "that has it and name that package under 'requires:'")
    assert status == 2 and f"  hint: {hint}\n" in err
    status, out, err = run(capsys, "ops", "upsamplee")
    assert status == 2 and out == "" and err == f"archspec: error: unknown op 'upsamplee'; {hint}\n"
    status, _, err = run(capsys, "ops", "batchnorm")  # a close name: only the names
    assert status == 2 and err == "archspec: error: unknown op 'batchnorm'; did you mean 'batchnorm2d', 'batchnorm1d' or 'frozen_batchnorm2d'?\n"


@pytest.mark.parametrize("where", ["before", "after"])
def test_debug_shows_the_traceback_and_keeps_the_exit_status(write_spec, capsys, where):
    bad = write_spec("archspec: 1\nname: t\ninput: [3, 8, 8]\ngraph:\n  bn: {op: batchnorm}\n")
    args = ["--debug", "build", bad] if where == "before" else ["build", bad, "--debug"]
    status, _, err = run(capsys, *args)
    assert status == 2
    assert err.startswith("Traceback (most recent call last):")
    assert "SpecSchemaError" in err
    assert err.rstrip().endswith("hint: did you mean 'batchnorm2d', 'batchnorm1d' or 'frozen_batchnorm2d'?")  # the usual message follows
    status, _, err = run(capsys, "build", bad)
    assert status == 2 and "Traceback" not in err


@pytest.mark.parametrize("args,message", [
    (["--set", "oops"], "--set needs KEY=VALUE"),
    (["--input", "3,x,2"], "--input needs C,H,W"),
    (["--limit", "max_bogus=3"], "--limit needs NAME=VALUE"),
])
def test_usage_errors(capsys, args, message):
    status, _, err = run(capsys, "build", SPECS / "alexnet.yaml", *args)
    assert status == 2 and message in err


def test_unknown_parameter_override(capsys):
    status, _, err = run(capsys, "build", SPECS / "alexnet.yaml", "--set", "num_clases=10")
    assert status == 2
    assert "unknown parameter 'num_clases'" in err and "did you mean 'num_classes'?" in err


def test_the_installed_command(tmp_path):
    """The console script `pip install` made, run from another folder."""
    result = subprocess.run([installed_command(), "build", str(SPECS / "googlenet.yaml"), "--depth", "1"],
                            capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "13,004,888" in result.stdout
    assert result.stderr == ""


def test_output_into_a_missing_folder_names_the_file_asked_for(capsys, tmp_path):
    target = tmp_path / "no" / "such" / "a.dot"
    status, _, err = run(capsys, "graph", SPECS / "alexnet.yaml", "-o", target)
    assert status == 1
    assert err == f"archspec: error: cannot write {target}: no such folder\n"  # not the temporary file's name


# -- regressions from review --------------------------------------------------------------
# Defects found in review, each pinned by a test (the spec that showed it, and what must
# happen instead): moved here from tests/test_regressions.py, beside the stage they guard.


@pytest.mark.parametrize("args,error", [
    (["--limit", "max_parameters=inf"], "needs a finite number"),
    (["--set", "block_config.--1=5"], "there is no entry '--1'"),
    (["--set", "block_config.x=5"], "there is no entry 'x'"),
])
def test_cli_arguments_fail_cleanly(capsys, args, error):
    assert main(["validate", str(SPECS / "densenet121.yaml"), *args]) == 2
    assert error in capsys.readouterr().err


# - second review (an adversarial audit of the messages)


@pytest.mark.parametrize("target,message", [("", "cannot write to an empty file name"), (".", "cannot write .: it is a folder")])
def test_outputs_to_a_folder_or_no_name(capsys, target, message):
    assert main(["export", str(SPECS / "alexnet.yaml"), "--format", "state_dict", "-o", target]) == 1
    assert capsys.readouterr().err == f"archspec: error: {message}\n"


# - issue 26


def test_a_warning_from_any_library_is_shown_once_and_the_command_ends():
    """Each warning was shown inside the block that records warnings, so recorded again:
    the list being walked grew until memory ran out (a torch warning: 5.9 GB past 40 s)."""
    done = python("""
        import resource, sys, warnings
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))  # a loop ends in MemoryError, not a full machine
        from archspec import _commands, cli
        from archspec._errors import SpecWarning

        def noisy(args):
            for _ in range(3):
                warnings.warn("a library's warning", UserWarning)
            warnings.warn("another one", RuntimeWarning)
            warnings.warn(SpecWarning("a spec's warning"))
            print("done")
            return 0

        _commands.cmd_schema = noisy
        sys.exit(cli.main(["schema"]))
    """, timeout=30)
    assert (done.returncode, done.stdout) == (0, "done\n"), done.stderr[-2000:]
    assert done.stderr.count("UserWarning: a library's warning") == 1
    assert done.stderr.count("RuntimeWarning: another one") == 1
    assert done.stderr.count("a spec's warning") == 1


def _a_long_spec_that_warns(folder: Path) -> Path:
    """A spec whose summary (600 rows of 220 characters) overfills a pipe (64 kB), and that
    warns (an unused parameter)."""
    spec = folder / "long.yaml"
    spec.write_text("archspec: 1\nname: long\ninput: [4]\nparams:\n  unused: 3\ngraph:\n"
                    + "".join(f"  relu_{i}_{'x' * 200}: {{op: relu}}\n" for i in range(600)))
    return spec


def test_a_reader_that_stops_early_gets_the_warnings_and_a_quiet_exit(tmp_path):
    """`archspec build SPEC | head -1`: the broken-pipe handler closed stderr before the
    warnings were written ('lost sys.stderr', exit 1, the warnings gone)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]))
    spec = _a_long_spec_that_warns(tmp_path)
    child = subprocess.Popen([sys.executable, "-m", "archspec.cli", "build", str(spec)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, env=env, text=True)
    try:
        first = child.stdout.readline()
        child.stdout.close()  # as head does once it has its line
        _, err = child.communicate(timeout=120)
    finally:
        child.kill()
    assert first == "long\n"
    assert child.returncode == 0, err
    assert err.startswith(f"{spec}:5:3: warning: in params.unused: the parameter 'unused' is never used"), err
    assert "lost sys.stderr" not in err and "Traceback" not in err and "BrokenPipeError" not in err


def test_output_dash_is_standard_output_for_the_text_formats(capsys, tmp_path, monkeypatch):
    """`-o -` wrote a file named '-'."""
    monkeypatch.chdir(tmp_path)
    status, out, err = run(capsys, "schema", "-o", "-")
    assert (status, err) == (0, "") and out.startswith("{") and '"$schema"' in out
    status, out, err = run(capsys, "graph", SPECS / "alexnet.yaml", "-o", "-")
    assert (status, err) == (0, "") and out.startswith("digraph") and "wrote" not in out
    status, out, _ = run(capsys, "graph", SPECS / "alexnet.yaml", "-o", "-", "--format", "mermaid")
    assert status == 0 and out.startswith("flowchart")
    status, out, _ = run(capsys, "graph", SPECS / "alexnet.yaml", "-o", "net.txt", "--format", "mermaid")
    assert (status, out) == (0, "wrote net.txt\n") and (tmp_path / "net.txt").read_text().startswith("flowchart")
    assert not (tmp_path / "-").exists()


@pytest.mark.parametrize("args,what", [
    (["build", SPECS / "alexnet.yaml"], "the saved module (torch.save)"),
    (["export", SPECS / "alexnet.yaml", "--format", "state_dict"], "the state_dict export"),
    (["export", SPECS / "alexnet.yaml", "--format", "onnx"], "the onnx export"),
    (["graph", SPECS / "alexnet.yaml", "--format", "png"], "a png drawing"),
])
def test_output_dash_is_refused_for_a_binary_format(capsys, tmp_path, monkeypatch, args, what):
    monkeypatch.chdir(tmp_path)
    status, out, err = run(capsys, *args, "-o", "-")
    assert (status, out) == (2, "")  # refused before the work: no summary printed
    assert err == (f"archspec: error: -o -: {what} is binary and is not written to standard output; "
                   "give a file name ('./-' for a file named '-')\n")
    assert list(tmp_path.iterdir()) == []
