"""docs/examples/: the training example runs as a user runs it (fewer epochs here)."""

from __future__ import annotations

import runpy
import sys

import pytest

from reference import ROOT

EXAMPLES = ROOT / "docs" / "examples"


def test_training_on_the_digits_learns_and_plots(tmp_path, monkeypatch, capsys):
    pytest.importorskip("sklearn", reason="the 'examples' extra is not installed (pip install -e \".[examples]\")")
    pytest.importorskip("matplotlib", reason="the 'examples' extra is not installed (pip install -e \".[examples]\")")
    plot = tmp_path / "loss.png"
    monkeypatch.setattr(sys, "argv", ["train_digits.py", "--epochs", "2", "--plot", str(plot)])
    runpy.run_path(str(EXAMPLES / "train_digits.py"), run_name="__main__")
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].startswith("epoch   1/2 [##############################]  23/23 loss ")  # one bar per epoch in a log
    accuracy = float(next(line for line in lines if line.startswith("held-out accuracy")).split()[2])
    assert accuracy > 0.8  # chance is 0.1; 15 epochs (the default) reach 0.97 and more
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and plot.stat().st_size > 5000
