"""The examples' progress bar (train_digits.py, train_shapes.py)."""

from __future__ import annotations

import sys


def progress(epoch: int, epochs: int, step: int, steps: int, loss: float, width: int = 30) -> None:
    """A progress bar redrawn in place on a terminal; one line per epoch in a log."""
    tty = sys.stdout.isatty()
    if not tty and step < steps:
        return
    done = int(width * step / steps)
    sys.stdout.write(f"{chr(13) if tty else ''}epoch {epoch:>3}/{epochs} [{'#' * done}{'.' * (width - done)}] {step:>3}/{steps} loss {loss:.4f}")
    if step == steps:
        sys.stdout.write("\n")
    sys.stdout.flush()
