"""The reference fixtures (tests/fixtures/*.json, copied from shared/reference) and the
deterministic-weights recipe they were measured with."""

from __future__ import annotations

import json
import math
import os
import sys
import sysconfig
import zlib
from pathlib import Path

HERE = Path(__file__).parent
ROOT = HERE.parent
SPECS = ROOT / "specs"
FIXTURES = HERE / "fixtures"

#: spec file -> fixture name
SEEDS = {
    "alexnet.yaml": "alexnet",
    "alexnet-paper.yaml": "alexnet_paper",
    "googlenet.yaml": "googlenet",
    "inception_v3.yaml": "inception_v3",
    "xception.yaml": "xception",
    "densenet121.yaml": "densenet121",
    "densenet161.yaml": "densenet161",
    "densenet169.yaml": "densenet169",
    "densenet201.yaml": "densenet201",
    "densenet264.yaml": "densenet264",
}

#: GMACs of the eval graph at the fixture's input size (shared/reference/README.md)
GMACS = {
    "alexnet": 0.714, "alexnet_paper": 1.135, "googlenet": 1.498, "inception_v3": 5.713, "xception": 8.357,
    "densenet121": 2.834, "densenet161": 7.728, "densenet169": 3.360, "densenet201": 4.291, "densenet264": 5.752,
}


def fixture(name: str) -> dict:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def deterministic_input(size: int):
    import torch

    return torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(0), dtype=torch.float64)


def relative_error(got, ref) -> float:
    return float((got - ref).abs().max() / ref.abs().max())


ZOO_FIXTURES = FIXTURES / "zoo"
#: torchvision's segmentation networks, the dilated trunks and the U-Net's facts
#: (tests/fixtures/segmentation/README.md; generate.py there writes them)
SEGMENTATION_FIXTURES = FIXTURES / "segmentation"


def segmentation_fixture(name: str) -> dict:
    return json.loads((SEGMENTATION_FIXTURES / f"{name}.json").read_text())


def dense_record(t, stride: int) -> dict:
    """What a fixture keeps of a dense output too large to store whole (an [N, C, H, W]
    map): every ``stride``-th value of the flattened tensor (a prime stride, so the samples
    reach every row, column and channel), the largest magnitude, and per sample and
    channel: the sum, the sum of magnitudes, the Euclidean norm and the projection on
    :func:`projection_weights` (which moves by about the norm of any change, wherever it
    is). :func:`dense_error` compares against it."""
    flat = t.detach().flatten()
    return {"shape": list(t.shape), "sample_stride": stride, "sample": flat[::stride].tolist(),
            "max_abs": float(flat.abs().max()), "channel_sums": t.sum(dim=(2, 3)).tolist(),
            "channel_abs_sums": t.abs().sum(dim=(2, 3)).tolist(),
            "channel_norms": t.square().sum(dim=(2, 3)).sqrt().tolist(),
            "channel_projections": (t * projection_weights(*t.shape[2:])).sum(dim=(2, 3)).tolist()}


def projection_weights(h: int, w: int):
    """``torch.randn(h, w)`` from seed 1, float64: the weights of a dense record's projections."""
    import torch

    return torch.randn(h, w, generator=torch.Generator().manual_seed(1), dtype=torch.float64)


def dense_error(got, record: dict) -> float:
    """The largest relative error of ``got`` against a :func:`dense_record`: the samples
    and the largest magnitude relative to the reference's largest magnitude, each channel's
    sum relative to its sum of magnitudes (so cancellation cannot hide a difference), its
    projection relative to its norm, and the sums of magnitudes and the norms relative to
    themselves. Compare it with 1e-9, as the logits."""
    import torch

    assert list(got.shape) == record["shape"], (list(got.shape), record["shape"])
    got = got.detach().to(torch.float64)
    ref = {k: torch.tensor(record[k], dtype=torch.float64)
           for k in ("sample", "channel_sums", "channel_abs_sums", "channel_norms", "channel_projections")}
    scale = record["max_abs"]
    norms, abs_sums = ref["channel_norms"], ref["channel_abs_sums"]
    mine = {"channel_sums": got.sum(dim=(2, 3)), "channel_abs_sums": got.abs().sum(dim=(2, 3)),
            "channel_norms": got.square().sum(dim=(2, 3)).sqrt(),
            "channel_projections": (got * projection_weights(*got.shape[2:])).sum(dim=(2, 3))}
    return max(float((got.flatten()[::record["sample_stride"]] - ref["sample"]).abs().max()) / scale,
               abs(float(got.abs().max()) - scale) / scale,
               float(((mine["channel_sums"] - ref["channel_sums"]).abs() / abs_sums).max()),
               float(((mine["channel_abs_sums"] - abs_sums).abs() / abs_sums).max()),
               float(((mine["channel_norms"] - norms).abs() / norms).max()),
               float(((mine["channel_projections"] - ref["channel_projections"]).abs() / norms).max()))


def zoo_specs() -> dict[str, Path]:
    """Fixture name -> spec, for every spec in a family folder of specs/ with a fixture of
    its name in tests/fixtures/zoo (copied from shared/reference/zoo)."""
    return {p.stem: p for p in sorted(SPECS.glob("*/*.yaml")) if (ZOO_FIXTURES / f"{p.stem}.json").exists()}


def zoo_fixture(name: str) -> dict:
    return json.loads((ZOO_FIXTURES / f"{name}.json").read_text())


def materialize(model, dtype=None, threads: int = 1, graph=None, gain: float = 2.0):
    """Give a module built on the meta device the fixture recipe's weights, allocating each
    tensor once (no default initialisation first): float64 unless ``dtype`` says otherwise.
    Each tensor has its own generator, so ``threads`` can draw them side by side. ``gain``
    scales the weights of layers (see :func:`_recipe`).

    Integer tensors stay as the model makes them (the recipe): with ``graph`` (the model's),
    from their op's default, which computes Swin's ``relative_position_index`` and leaves
    ``num_batches_tracked`` 0; without it, 0."""
    import torch
    from concurrent.futures import ThreadPoolExecutor

    template = model.state_dict()
    made = {}
    if graph is not None:
        from archspec._initialize import init_plan

        made = init_plan(graph, rules=False)

    def one(item):
        key, tensor = item
        if not tensor.is_floating_point():
            value = torch.zeros(tuple(tensor.shape), dtype=tensor.dtype)
            if key in made:
                from archspec._initialize import init_tensor

                init_tensor(value, made[key])
            return key, value
        value = _recipe(key, tuple(tensor.shape), gain)
        return key, value if dtype is None else value.to(dtype)

    with ThreadPoolExecutor(threads) as pool:
        state = dict(pool.map(one, template.items()))
    model.load_state_dict(state, strict=True, assign=True)
    return model


def assert_optimized_agrees(graph, model, x) -> None:
    """``optimize="inference"`` (batch norm folded, channels-last, eval no-ops dropped) on
    ``model`` (compiled from ``graph``, its weights loaded) gives, in float32, the outputs
    of the unoptimised model within 1e-5 relative. Optimises ``model`` in place."""
    import torch

    from archspec._optimize import optimize

    model, x = model.float().eval(), x.float()
    with torch.no_grad():
        expected = model(x)
        fast = optimize(model, graph)
        got = fast(x)
    assert got.dtype == torch.float32 and got.shape == expected.shape
    assert relative_error(got, expected) < 1e-5


def assert_modes_equal(ref, ours, x, seed: int) -> None:
    """``ours`` (a compiled spec) loads ``ref``'s weights strictly and, from the same seed,
    gives ``ref``'s outputs in train mode (the same dropout and stochastic depth draws) and
    in eval mode, within 1e-12."""
    import torch

    ours.load_state_dict(ref.state_dict(), strict=True)
    for mode in ("train", "eval"):
        getattr(ref, mode)(), getattr(ours, mode)()
        torch.manual_seed(seed)
        expected = ref(x)
        torch.manual_seed(seed)
        assert torch.allclose(ours(x), expected, rtol=1e-12, atol=1e-12), mode


def _recipe(key: str, shape: tuple, gain: float = 2.0):
    """One tensor of the fixture recipe (shared/reference/README.md): drawn from a generator
    seeded by the key's crc32, then shaped by the key's kind. A layer's weight has variance
    ``gain / fan_in``: the shared fixtures' 2 (Kaiming's), or 1 for the well-conditioned
    fixtures of :data:`GAIN1_FIXTURES`."""
    import torch

    g = torch.Generator().manual_seed(zlib.crc32(key.encode()))
    r = torch.randn(shape, generator=g, dtype=torch.float64)
    if key.endswith("running_var"):
        return r.abs_().mul_(0.1).add_(1)
    if key.endswith("running_mean"):
        return r.mul_(0.1)
    if len(shape) <= 1 and key.endswith("weight"):
        return r.mul_(0.05).add_(1)
    if len(shape) <= 1:
        return r.mul_(0.05)
    return r.mul_(math.sqrt(gain / math.prod(shape[1:])))


#: fixtures of the recipe with gain 1, measured here from torchvision's model code
#: (``python tests/reference.py gain1 NAME...`` writes them), for the networks that the
#: shared fixtures' gain 2 makes chaotic: their residual sums grow block after block
#: (efficientnet_v2_l's logits reach 5e7) until float64 rounding itself decides the
#: logits. Measured on one machine, torchvision's own float64 logits moved by 3e-5 to 9e-5
#: (efficientnet_v2_s) between MKL's and ATen's kernel choices (MKL_CBWR,
#: ATEN_CPU_CAPABILITY), against the fixture's 1e-9, and float32 differed from float64 by
#: 49 %. With gain 1 the logits stay below 1 and the same kernel choices move them by at
#: most 1.9e-15 (float32: 2e-7 to 7e-7), so the check holds on any CPU.
GAIN1_FIXTURES = FIXTURES / "zoo-gain1"


def gain1_fixture(name: str) -> dict | None:
    path = GAIN1_FIXTURES / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def _write_gain1_fixtures(names: list[str]) -> None:
    """Measure torchvision's float64 logits under the recipe with gain 1 (its model code
    must be installed: shared/tools/install-reference-models.sh)."""
    import torch

    models = torchvision_models()
    if models is None:
        raise SystemExit(NO_TORCHVISION)
    GAIN1_FIXTURES.mkdir(exist_ok=True)
    for name in names:
        shape = zoo_fixture(name)["input_shape"]
        with torch.device("meta"):
            model = getattr(models, name)()
        model = materialize(model, threads=2, gain=1.0).eval()
        with torch.no_grad():
            logits = model(deterministic_input(shape[-1]))
        version = getattr(sys.modules.get("torchvision"), "__version__", "?")
        record = {"name": name, "source": f"torchvision.models.{name}() (torchvision {version} model code)",
                  "recipe": "tests/reference.py's _recipe with gain 1 (layer weights of variance 1 / fan_in)",
                  "input_shape": shape, "logits": logits.tolist()}
        (GAIN1_FIXTURES / f"{name}.json").write_text(json.dumps(record) + "\n")
        print(name, tuple(logits.shape), float(logits.abs().max()))


def torchvision_models():
    """torchvision's model code, where shared/tools/install-reference-models.sh installed it
    (its compiled ops need not load: the shim of shared/tools/reference-shim, applied here),
    or ``None`` where torchvision is not installed (tests that compare against it skip with
    NO_TORCHVISION); any other error importing it is raised."""
    import importlib
    import sys
    import types

    sys.modules.setdefault("torchvision._meta_registrations", types.ModuleType("torchvision._meta_registrations"))
    try:
        return importlib.import_module("torchvision.models")
    except ModuleNotFoundError as e:  # not installed; one installed that fails to import is a failure, not a skip
        if e.name not in ("torchvision", "torchvision.models"):
            raise
        return None


NO_TORCHVISION = "torchvision's model code is not installed (../shared/tools/install-reference-models.sh)"


def installed_command() -> str:
    """The ``archspec`` console script that ``pip install`` made (in the scripts folder of
    the interpreter running the tests): what a user runs, not ``python -m archspec.cli``."""
    name = "archspec.exe" if os.name == "nt" else "archspec"
    for folder in dict.fromkeys([sysconfig.get_path("scripts"), str(Path(sys.executable).parent)]):
        candidate = Path(folder) / name
        if candidate.is_file():
            return str(candidate)
    raise AssertionError(f"the '{name}' command is not installed beside {sys.executable}: pip install -e .")


if __name__ == "__main__":  # python tests/reference.py gain1 efficientnet_v2_s ...
    if len(sys.argv) < 3 or sys.argv[1] != "gain1":
        raise SystemExit("usage: python tests/reference.py gain1 NAME [NAME ...]")
    _write_gain1_fixtures(sys.argv[2:])
