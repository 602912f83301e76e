"""docs/examples/: the training example runs as a user runs it (fewer epochs here)."""

from __future__ import annotations

import runpy
import sys

import pytest
import torch

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


def test_training_a_unet_on_generated_shapes_learns_and_pictures_the_masks(tmp_path, monkeypatch, capsys):
    pytest.importorskip("matplotlib", reason="the 'examples' extra is not installed (pip install -e \".[examples]\")")
    picture = tmp_path / "masks.png"
    monkeypatch.setattr(sys, "argv", ["train_shapes.py", "--epochs", "2", "--images", "128", "--plot", str(picture)])
    iou = runpy.run_path(str(EXAMPLES / "train_shapes.py"), run_name="not_main")["main"]()
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("epoch   1/2 [##############################]   8/8 loss ")  # one bar per epoch in a log
    first, last = (float(line.rsplit(" ", 1)[1]) for line in lines[:2])
    assert last < first  # it learns: the last step's pixel cross-entropy is below the first epoch's last
    reported = float(next(line for line in lines if line.startswith("held-out mean IoU")).split()[3])
    assert reported == round(iou, 4) and 0 < iou <= 1
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and picture.stat().st_size > 5000


def test_the_shapes_come_with_their_masks():
    shapes = runpy.run_path(str(EXAMPLES / "train_shapes.py"), run_name="not_main")
    images, masks = shapes["make_shapes"](16, seed=3)
    assert images.shape == (16, 3, 64, 64) and masks.shape == (16, 64, 64) and masks.dtype.is_floating_point is False
    again, same = shapes["make_shapes"](16, seed=3)
    assert torch.equal(images, again) and torch.equal(masks, same)  # from the seed alone
    assert set(masks.unique().tolist()) == {0, 1, 2, 3}  # background and every kind of shape
    # a shape's pixels carry its colour: inside a mask the image differs from the noise around it
    inside = masks[0] > 0
    assert (images[0][:, inside].mean(1) - images[0][:, ~inside].mean(1)).abs().max() > 0.1
    assert shapes["mean_iou"](masks, masks, 4) == 1.0
