"""Benchmark: how long archspec takes to check specs, as ratios measured in one run.

What the tests do not time (timing assertions flake under load), measured here instead:

* **validate / compile**: for every bundled spec, ``load_spec`` (load, validate, resolve,
  infer: what ``archspec validate`` does, no torch) against ``compile_spec`` (the same plus
  building and initialising the module). Validating should cost a small fraction of
  compiling: a few percent for the large networks.
* **diagnostics**: for every broken spec of ``tests/bad_specs/``, the time to its message
  (``archspec build``, as the golden-file test runs it), as a multiple of the median over
  all of them. A case far above the median (flagged past 10x) is a mistake that costs
  archspec much more to report than others: the limits exist so that none does.

Each time is the median of ``--repeat`` runs after one warm-up run. Run from the
repository root::

    python bench/speed.py
    python bench/speed.py --repeat 5 --only densenet121 googlenet
"""

from __future__ import annotations

import argparse
import contextlib
import io
import shlex
import statistics
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from archspec import compile_spec, load_spec  # noqa: E402
from archspec.cli import main  # noqa: E402

FLAG = 10.0


def median_time(fn, repeat: int) -> float:
    fn()  # warm-up: caches, imports
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def validate_vs_compile(repeat: int, only: list[str] | None) -> None:
    print(f"{'spec':<22} {'validate ms':>12} {'compile ms':>12} {'ratio':>7}")
    for spec in sorted((ROOT / "specs").glob("*.yaml")):
        if only and spec.stem not in only:
            continue
        v = median_time(lambda: load_spec(spec), repeat)
        c = median_time(lambda: compile_spec(spec), max(1, repeat // 3))
        print(f"{spec.name:<22} {v * 1e3:>12.1f} {c * 1e3:>12.1f} {v / c:>7.3f}")


def diagnostics(repeat: int) -> None:
    cases = sorted((ROOT / "tests" / "bad_specs").glob("*.yaml"))
    times = {}
    for path in cases:
        first = path.read_text().splitlines()[0] if path.read_text() else ""
        extra = shlex.split(first.split(":", 1)[1]) if first.startswith("# archspec-args:") else []
        argv = ["build", str(path.relative_to(ROOT)), *extra]

        def run(argv=argv):
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()), \
                    warnings.catch_warnings():
                warnings.simplefilter("ignore")
                main(argv)

        times[path.stem] = median_time(run, repeat)
    mid = statistics.median(times.values())
    print(f"\n{len(times)} broken specs; median time to the message {mid * 1e3:.1f} ms; the slowest, as multiples of it:")
    for name, t in sorted(times.items(), key=lambda kv: -kv[1])[:8]:
        print(f"  {name:<40} {t / mid:>6.1f}x{'   <- past ' + str(FLAG) + 'x' if t / mid > FLAG else ''}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeat", type=int, default=3, help="timed runs per measurement (median)")
    p.add_argument("--only", nargs="*", help="bundled specs to time (default: all)")
    return p.parse_args(argv)


if __name__ == "__main__":
    args = parse_args()
    validate_vs_compile(args.repeat, args.only)
    diagnostics(args.repeat)
