"""Benchmark: compile time of this checkout against another checkout of archspec (A/B).

For a refactor that must not slow compilation down: each side runs in its own process
(``PYTHONPATH`` set to its checkout), rounds interleaved A, B, A, B, ... so that drift of
the machine affects both alike. In each process every spec is compiled once to warm up,
then timed: ``load_spec`` (the stages up to *infer*: load, validate, resolve, infer) and
``compile_spec`` (all of them, weights initialised), each the median of ``--calls``
calls. The table gives each side's median over the rounds and the ratio this / other
(below 1: this checkout is faster). Nothing is compared against stored numbers.

Run from the repository root, with the other side checked out beside it, for example::

    git worktree add /tmp/before c9ddbe6
    python bench/ab_compile.py /tmp/before --only googlenet densenet121 resnet50 --rounds 5

Timings mean something only on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: one network per family of the bundled zoo, small to large
DEFAULT = ["alexnet", "googlenet", "inception_v3", "xception", "densenet121", "resnet50", "mobilenet_v2",
           "efficientnet_b0", "shufflenet_v2_x1_0", "regnet_y_400mf", "convnext_tiny", "vit_b_16", "swin_t"]

# the program each side runs: prints {spec: [load s, compile s]}
_CHILD = r"""
import json, statistics, sys, time, torch
from archspec import compile_spec, load_spec
names, calls = sys.argv[1].split(","), int(sys.argv[2])
out = {}
for name in names:
    compile_spec(name)  # warm-up: imports, caches, the allocator
    loads, compiles = [], []
    for _ in range(calls):
        t = time.perf_counter(); load_spec(name); loads.append(time.perf_counter() - t)
        t = time.perf_counter(); compile_spec(name); compiles.append(time.perf_counter() - t)
    out[name] = [statistics.median(loads), statistics.median(compiles)]
print(json.dumps(out))
"""


def _side(checkout: Path, names: list[str], calls: int) -> dict[str, list[float]]:
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    done = subprocess.run([sys.executable, "-c", _CHILD, ",".join(names), str(calls)], env=env, cwd=checkout,
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout.splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("other", type=Path, help="the other checkout of archspec (its root folder)")
    parser.add_argument("--only", nargs="+", default=DEFAULT, metavar="NAME", help="bundled specs to compile")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds per side (default 5)")
    parser.add_argument("--calls", type=int, default=3, help="timed calls per spec in a round (default 3)")
    parser.add_argument("--json", type=Path, help="also write the table as JSON")
    args = parser.parse_args(argv)
    sides = {"this": ROOT, "other": args.other.resolve()}
    runs: dict[str, list[dict[str, list[float]]]] = {k: [] for k in sides}
    for r in range(args.rounds):
        for key, checkout in (sides.items() if r % 2 == 0 else reversed(sides.items())):
            runs[key].append(_side(checkout, args.only, args.calls))
        print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)
    rows, ratios = [], {"load": [], "compile": []}
    print(f"{'spec':<22}{'load ms':>10}{'other':>10}{'ratio':>8}{'compile ms':>13}{'other':>10}{'ratio':>8}")
    for name in args.only:
        med = {k: [statistics.median(run[name][i] for run in runs[k]) * 1e3 for i in (0, 1)] for k in sides}
        load, comp = med["this"][0] / med["other"][0], med["this"][1] / med["other"][1]
        ratios["load"].append(load)
        ratios["compile"].append(comp)
        rows.append({"spec": name, "load_ms": med["this"][0], "other_load_ms": med["other"][0], "load_ratio": load,
                     "compile_ms": med["this"][1], "other_compile_ms": med["other"][1], "compile_ratio": comp})
        print(f"{name:<22}{med['this'][0]:>10.1f}{med['other'][0]:>10.1f}{load:>8.3f}"
              f"{med['this'][1]:>13.1f}{med['other'][1]:>10.1f}{comp:>8.3f}")
    geo = {k: math.exp(statistics.fmean(math.log(x) for x in v)) for k, v in ratios.items()}
    print(f"{'geometric mean':<22}{'':>20}{geo['load']:>8.3f}{'':>23}{geo['compile']:>8.3f}")
    if args.json:
        args.json.write_text(json.dumps({"other": str(sides["other"]), "rounds": args.rounds, "calls": args.calls,
                                         "rows": rows, "geomean": geo}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
