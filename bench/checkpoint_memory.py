"""Memory of a training step with and without activation checkpointing.

Runs one training step (forward, cross-entropy, backward) of DenseNet-121 at 224x224 in a
fresh process per configuration and reports:

- ``saved MB``: the bytes autograd keeps for the backward pass (every tensor packed by
  ``torch.autograd.graph.saved_tensors_hooks``, each storage counted once);
- ``peak MB``: the process's peak resident memory (``ru_maxrss``) minus what it held after
  building the model and the batch, i.e. what the step itself added at its worst;
- ``step s``: the step's wall time (checkpointing recomputes the layers it drops).

Configurations: the spec plain, the spec with ``memory_efficient=True`` (each dense layer
checkpointed), and, where torchvision's model code is installed, torchvision's
``densenet121(memory_efficient=False/True)`` for comparison.

    python bench/checkpoint_memory.py [--batch 32] [--size 224]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time


def step(kind: str, batch: int, size: int) -> dict:
    import torch

    torch.manual_seed(0)
    if kind.startswith("torchvision"):
        import torchvision.models as tv

        model = tv.densenet121(memory_efficient=kind.endswith("efficient"))
    else:
        from archspec import compile_spec

        model = compile_spec("densenet121", memory_efficient=kind.endswith("efficient"))
    model.train()
    x, y = torch.randn(batch, 3, size, size), torch.randint(0, 1000, (batch,))
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    seen: set[int] = set()
    saved = 0

    def pack(t):
        nonlocal saved
        key = t.untyped_storage().data_ptr()
        if key not in seen:
            seen.add(key)
            saved += t.untyped_storage().nbytes()
        return t

    start = time.perf_counter()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = torch.nn.functional.cross_entropy(model(x), y)
    loss.backward()
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"config": kind, "saved_mb": saved / 2**20, "peak_mb": (peak - base) / 1024, "step_s": seconds}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(step(args.one, args.batch, args.size)))
        return 0
    kinds = ["archspec", "archspec memory_efficient"]
    try:
        import torchvision  # noqa: F401

        kinds += ["torchvision", "torchvision memory_efficient"]
    except ImportError:
        print("(torchvision's model code is not installed: archspec only)")
    print(f"DenseNet-121, one training step, batch {args.batch} at {args.size}x{args.size}, float32, CPU")
    print(f"{'configuration':<30} {'saved MB':>9} {'peak MB':>9} {'step s':>7}")
    for kind in kinds:
        out = subprocess.run([sys.executable, __file__, "--one", kind, "--batch", str(args.batch), "--size", str(args.size)],
                             capture_output=True, text=True, check=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"{kind:<30} {r['saved_mb']:>9.0f} {r['peak_mb']:>9.0f} {r['step_s']:>7.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
