"""Benchmark: archspec's compiled specs against the torchvision / timm models they reproduce.

For every bundled spec (``specs/*.yaml``) that has a library reference, this measures:

* **compile time**: ``archspec.compile_spec(spec)`` against the reference model's public
  constructor (both build and initialise the weights), the median of several calls after
  one warm-up call;
* **forward time**: the reference's ``state_dict`` is loaded into the compiled model with
  ``strict=True``; both run in ``eval()`` mode under ``torch.no_grad()``, float32, on the
  same random batch (default 8) at the spec's input size. The outputs are checked to agree
  (max abs diff), then, after a warm-up, the two models are timed in interleaved rounds
  (archspec, reference, archspec, reference, ...) so that drift of the machine (clock,
  cache, other load) affects both alike; the median per-forward time of each is reported.

Every ratio is archspec / reference, measured in the same run (below 1 means archspec is
faster); the goal for the forward ratio is <= 1.03. Nothing is compared against stored
numbers. ``torch`` uses as many threads as the machine has cores (printed). Timings mean
something only on an otherwise idle machine: for each network the script reports the share
of the CPUs other processes took meanwhile (from ``/proc/stat``) and flags it above 5%.

The reference model code is a development aid, not a dependency of archspec; install it
without touching torch, then run from the repository root::

    bash ../shared/tools/install-reference-models.sh
    PYTHONPATH=../shared/tools/reference-shim python bench/compare.py
    PYTHONPATH=../shared/tools/reference-shim python bench/compare.py --only googlenet densenet121 --repeat 30

Without torchvision the script says so and exits 0; without timm it skips Xception.
By default the number of timing rounds adapts to each network's forward time, so that the
whole run takes a few minutes on two cores; ``--repeat N`` fixes it.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

import archspec

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"

INSTALL_HINT = (
    "install the reference models with `bash ../shared/tools/install-reference-models.sh` and run with "
    "`PYTHONPATH=../shared/tools/reference-shim python bench/compare.py` (from the repository root)"
)

#: forward timing: warm-up (at least this many forwards per model and this many seconds),
#: the time budget and bounds of the adaptive round count
WARMUP_FORWARDS, WARMUP_S = 3, 3.0
FORWARD_BUDGET_S = 30.0  # seconds of timed forwards (both models) per network, by default
MIN_ROUNDS, MAX_ROUNDS = 7, 40
#: compile timing: calls per side after one warm-up call
COMPILE_CALLS = 5
#: other processes' share of the CPUs above which a network's numbers are flagged
BUSY = 0.05


# --------------------------------------------------------------------------- references


@dataclass(frozen=True)
class Network:
    """A bundled spec and how to build its reference: ``library`` and a constructor call."""

    name: str
    library: str | None  # "torchvision", "timm" or None (no reference)
    build: Callable[[object], torch.nn.Module] | None  # takes the imported library module
    note: str = ""

    @property
    def spec(self) -> Path:
        return SPECS / f"{self.name}.yaml"


NETWORKS = [
    Network("alexnet", "torchvision", lambda tv: tv.models.alexnet()),
    Network("alexnet-paper", None, None, "no library reference (the 2012 paper's one-tower AlexNet with LRN)"),
    Network("googlenet", "torchvision", lambda tv: tv.models.googlenet(aux_logits=True, init_weights=True)),
    Network("inception_v3", "torchvision", lambda tv: tv.models.inception_v3(aux_logits=True, init_weights=True)),
    Network("xception", "timm", lambda timm: timm.create_model("legacy_xception")),
    Network("densenet121", "torchvision", lambda tv: tv.models.densenet121()),
    Network("densenet161", "torchvision", lambda tv: tv.models.densenet161()),
    Network("densenet169", "torchvision", lambda tv: tv.models.densenet169()),
    Network("densenet201", "torchvision", lambda tv: tv.models.densenet201()),
    Network(
        "densenet264",
        "torchvision",
        lambda tv: tv.models.densenet.DenseNet(growth_rate=32, block_config=(6, 12, 64, 48), num_init_features=64),
    ),
]


def import_library(name: str) -> tuple[object | None, str]:
    """Import ``torchvision`` (with its models) or ``timm``: the module, or None and why not."""
    try:
        if name == "torchvision":
            import torchvision
            import torchvision.models  # noqa: F401

            return torchvision, ""
        import timm

        return timm, ""
    except ModuleNotFoundError as exc:
        return None, f"{name} is not installed ({exc})."
    except Exception as exc:  # e.g. torchvision's compiled ops without the reference shim
        return None, f"{name} cannot be imported ({type(exc).__name__}: {exc}); is the reference shim on PYTHONPATH?"


# --------------------------------------------------------------------------- timing


def median_call_ms(fn: Callable[[], object], calls: int) -> float:
    """Median wall time of ``fn()`` in milliseconds over ``calls`` calls, after one warm-up."""
    fn()
    times = []
    for _ in range(calls):
        gc.collect()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


class OtherLoad:
    """A context manager: the CPU time other processes took while it was open, as a fraction
    of the whole machine (``fraction``; None where ``/proc/stat`` cannot be read).

    Timings are only comparable on an otherwise idle machine; this says when it was not.
    """

    fraction: float | None = None

    def __enter__(self) -> OtherLoad:
        self._start = self._sample()
        return self

    def __exit__(self, *exc: object) -> None:
        end = self._sample()
        if self._start is None or end is None:
            return
        busy, own, wall = (e - s for e, s in zip(end, self._start))
        if wall > 0:
            self.fraction = max(0.0, busy - own) / (wall * (os.cpu_count() or 1))

    @staticmethod
    def _sample() -> tuple[float, float, float] | None:
        """(machine busy CPU seconds, this process's CPU seconds, wall seconds)."""
        try:
            with open("/proc/stat") as f:
                ticks = [int(v) for v in f.readline().split()[1:9]]
        except (OSError, ValueError):
            return None
        # user nice system idle iowait irq softirq steal: busy is all but idle and iowait
        busy = sum(ticks) - ticks[3] - ticks[4]
        own = os.times()
        return busy / os.sysconf("SC_CLK_TCK"), own.user + own.system, time.perf_counter()


def forward_s(model: torch.nn.Module, x: torch.Tensor) -> float:
    start = time.perf_counter()
    model(x)
    return time.perf_counter() - start


def interleaved_forward_ms(a: torch.nn.Module, b: torch.nn.Module, x: torch.Tensor, rounds: int | None):
    """Time ``a(x)`` and ``b(x)`` alternately: (median ms of a, median ms of b, rounds, paired ratio).

    Warm-up first (the first forwards allocate and pick kernels; this machine also has
    slow spells of a second or two). ``rounds=None`` picks the number of rounds from the
    warm-up forwards' speed so that the timed part takes about ``FORWARD_BUDGET_S``.
    """
    warm, start = [], time.perf_counter()
    while len(warm) < WARMUP_FORWARDS or time.perf_counter() - start < WARMUP_S:
        warm.append(forward_s(a, x) + forward_s(b, x))
    if rounds is None:
        rounds = int(FORWARD_BUDGET_S / min(warm))
        rounds = max(MIN_ROUNDS, min(MAX_ROUNDS, rounds))
    ta, tb = [], []
    gc_was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        for _ in range(rounds):
            ta.append(forward_s(a, x))
            tb.append(forward_s(b, x))
    finally:
        if gc_was_enabled:
            gc.enable()
    paired = statistics.median(p / q for p, q in zip(ta, tb))
    return 1e3 * statistics.median(ta), 1e3 * statistics.median(tb), rounds, paired


# --------------------------------------------------------------------------- one network


@dataclass
class Result:
    name: str
    fwd_archspec_ms: float | None = None
    fwd_reference_ms: float | None = None
    compile_archspec_ms: float | None = None
    ctor_reference_ms: float | None = None
    other_load: float | None = None  # fraction of the CPUs other processes used meanwhile
    skipped: str = ""


def ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a / b


def bench_network(net: Network, lib: object, batch: int, rounds: int | None) -> Result:
    result = Result(net.name)
    build_reference = lambda: net.build(lib)  # noqa: E731
    compile_archspec = lambda: archspec.compile_spec(net.spec)  # noqa: E731

    result.compile_archspec_ms = median_call_ms(compile_archspec, COMPILE_CALLS)
    result.ctor_reference_ms = median_call_ms(build_reference, COMPILE_CALLS)
    print(
        f"  compile   archspec {result.compile_archspec_ms:8.1f} ms   reference {result.ctor_reference_ms:8.1f} ms"
        f"   ratio {ratio(result.compile_archspec_ms, result.ctor_reference_ms):.3f}"
        f"   (median of {COMPILE_CALLS} after 1 warm-up)"
    )

    torch.manual_seed(0)
    reference = build_reference()
    model = compile_archspec()
    try:
        model.load_state_dict(reference.state_dict(), strict=True)
    except RuntimeError as exc:
        result.skipped = "state_dict does not load with strict=True"
        print(f"  skipped: {result.skipped}:\n{exc}")
        return result
    model.float().eval()
    reference.float().eval()

    shape = archspec.load_spec(net.spec).input_shape
    x = torch.randn(batch, *shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out, ref = model(x), reference(x)
        if not isinstance(out, torch.Tensor) or not isinstance(ref, torch.Tensor) or out.shape != ref.shape:
            result.skipped = f"outputs differ in kind or shape: {_describe(out)} vs {_describe(ref)}"
            print(f"  skipped: {result.skipped}")
            return result
        diff = (out - ref).abs().max().item()
        scale = ref.abs().max().item()
        verdict = "ok" if diff <= 1e-4 * max(scale, 1.0) else "MISMATCH"
        print(f"  outputs   {tuple(out.shape)}  max abs diff {diff:.3g} (max |ref| {scale:.3g})  {verdict}")

        fa, fb, n, paired = interleaved_forward_ms(model, reference, x, rounds)
    result.fwd_archspec_ms, result.fwd_reference_ms = fa, fb
    print(
        f"  forward   archspec {fa:8.1f} ms   reference {fb:8.1f} ms   ratio {fa / fb:.3f}"
        f"   (median of {n} interleaved rounds; median paired ratio {paired:.3f})"
    )
    return result


def _describe(value: object) -> str:
    if isinstance(value, torch.Tensor):
        return f"tensor{tuple(value.shape)}"
    return type(value).__name__


# --------------------------------------------------------------------------- report


def summary_table(results: list[Result]) -> str:
    headers = ["network", "fwd ms archspec", "fwd ms ref", "ratio", "compile ms archspec", "ctor ms ref", "ratio", "others"]
    rows = []
    for r in results:
        if r.skipped and r.fwd_archspec_ms is None and r.compile_archspec_ms is None:
            rows.append([r.name, "-", "-", "-", "-", "-", "-", f"({r.skipped})"])
            continue
        fwd = ratio(r.fwd_archspec_ms, r.fwd_reference_ms)
        rows.append([
            r.name,
            _ms(r.fwd_archspec_ms),
            _ms(r.fwd_reference_ms),
            "-" if fwd is None else f"{fwd:.3f}" + (" *" if fwd > 1.03 else ""),
            _ms(r.compile_archspec_ms),
            _ms(r.ctor_reference_ms),
            _ratio(ratio(r.compile_archspec_ms, r.ctor_reference_ms)),
            _load(r.other_load) + (f"  ({r.skipped})" if r.skipped else ""),
        ])
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(headers[:-1])]
    line = lambda cells: "  ".join(  # noqa: E731
        [cells[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(cells[1:-1], widths[1:])] + [cells[-1]]
    )
    out = [line(headers), line(["-" * w for w in widths] + ["-" * len(headers[-1])])]
    out += [line(row) for row in rows]
    return "\n".join(out)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _load(value: float | None) -> str:
    if value is None:
        return "?"
    return f"{100 * value:.0f}%" + (" !" if value > BUSY else "")


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    names = [n.name for n in NETWORKS]
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", metavar="NAME", choices=names, help=f"networks to run (of: {', '.join(names)})")
    parser.add_argument("--repeat", type=int, metavar="N", help="interleaved timing rounds per network (default: adaptive)")
    parser.add_argument("--batch", type=int, default=8, metavar="N", help="batch size (default: 8)")
    args = parser.parse_args(argv)
    if args.repeat is not None and args.repeat < 1:
        parser.error("--repeat must be at least 1")
    if args.batch < 1:
        parser.error("--batch must be at least 1")
    return args


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    selected = [n for n in NETWORKS if args.only is None or n.name in args.only]

    libraries = {}
    for name in sorted({n.library for n in selected if n.library}):
        libraries[name], why = import_library(name)
        if libraries[name] is None:
            print(why)
    if "torchvision" in libraries and libraries["torchvision"] is None:
        print(f"torchvision is missing: the reference models cannot be built, nothing to compare. To compare, {INSTALL_HINT}.")
        return 0

    threads = cpu_count()
    torch.set_num_threads(threads)
    versions = [f"torch {torch.__version__}", f"archspec {archspec.__version__}"]
    versions += [f"{k} {getattr(v, '__version__', '?')}" for k, v in libraries.items() if v is not None]
    print(", ".join(versions))
    print(f"load average {' '.join(f'{v:.2f}' for v in os.getloadavg())} at start")
    print(f"threads: torch.set_num_threads({threads}) -> {torch.get_num_threads()};  batch {args.batch}, float32, eval, no_grad")
    print(f"timing rounds: {args.repeat if args.repeat else f'adaptive ({MIN_ROUNDS}..{MAX_ROUNDS}, about {FORWARD_BUDGET_S:.0f} s per network)'}")

    results = []
    for net in selected:
        print(f"\n== {net.name}  ({net.spec.relative_to(ROOT)})")
        if net.library is None:
            print(f"  skipped: {net.note}")
            results.append(Result(net.name, skipped="no reference"))
            continue
        lib = libraries[net.library]
        if lib is None:
            print(f"  skipped: {net.library} is missing; to include it, {INSTALL_HINT}")
            results.append(Result(net.name, skipped=f"{net.library} missing"))
            continue
        with OtherLoad() as load:
            result = bench_network(net, lib, args.batch, args.repeat)
        result.other_load = load.fraction
        if load.fraction is not None:
            print(f"  other processes used {100 * load.fraction:.0f}% of the CPUs meanwhile")
        results.append(result)
        gc.collect()

    print("\nSummary (ratio = archspec / reference; * marks a forward ratio above 1.03;")
    print("others = CPU share other processes took meanwhile, ! above 5%: rerun on an idle machine)\n")
    print(summary_table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
