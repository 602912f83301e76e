"""User ops (issue 12): an nn.Module class registered from Python, ops provided by installed
packages through the `archspec.ops` entry points (loaded lazily), and `requires:`.

The op registry is global: every test here leaves it, and the record of loaded entry
points, as it found them."""

from __future__ import annotations

import re
import sys
import textwrap
from typing import Annotated, Literal

import pytest
import torch
from torch import nn

import archspec
from archspec import SpecError, SpecReferenceError, SpecSchemaError, SpecShapeError, compile_spec, load_spec, ops
from archspec._schema import json_schema
from archspec.cli import main
from archspec.ops import Float, ShapeError, _plugins
from reference import ROOT


@pytest.fixture(autouse=True)
def registry():
    before, loaded, modules = dict(ops.REGISTRY), set(_plugins._LOADED), set(sys.modules)
    yield
    for name in set(ops.REGISTRY) - set(before):
        archspec.unregister_op(name)
    assert ops.REGISTRY == before
    _plugins._LOADED.clear()
    _plugins._LOADED.update(loaded)
    for name in set(sys.modules) - modules:
        if name.startswith("fake_archspec_"):
            del sys.modules[name]


class StarReLU(nn.Module):
    """s * relu(x) ** 2 + b, with a learnable scale and bias."""

    def __init__(self, scale: float = 1.0, bias: float = 0.0, learnable: bool = True):
        super().__init__()
        self.scale = nn.Parameter(torch.full((1,), scale), requires_grad=learnable)
        self.bias = nn.Parameter(torch.full((1,), bias), requires_grad=learnable)

    def forward(self, x):
        return self.scale * torch.relu(x) ** 2 + self.bias


class Mixer(nn.Module):
    """A 1x1 conv to `out` channels, with a gate of its own and a table outside the state_dict."""

    def __init__(self, in_channels: int, out: int, mode: Literal["gate", "plain"] = "gate",
                 p: Annotated[float, Float(ge=0, le=1)] = 0.0, act=nn.GELU, inplace: bool = True):
        super().__init__()
        assert not inplace  # archspec passes inplace=False
        self.conv = nn.Conv2d(in_channels, out, 1)
        self.gate = nn.Parameter(torch.randn(out, 1, 1))
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))
        self.register_buffer("table", torch.arange(out, dtype=torch.float32), persistent=False)
        self.mode = mode
        self.act = act()

    def forward(self, x):
        y = self.conv(x)
        return y * self.gate + self.table.view(-1, 1, 1) if self.mode == "gate" else y


SPEC = """\
archspec: 1
name: user
input: [3, 8, 8]
graph:
  conv: {op: conv2d, out: 4, kernel: 3, padding: 1}
  act: {op: star_relu, scale: 0.5, bias: -0.25}
  mix: {op: mixer, out: 6}
  relu: {op: relu}
"""


def _register_both():
    archspec.register_op("star_relu", StarReLU)
    archspec.register_op("mixer")(Mixer)


def test_a_module_class_is_an_op_with_static_tensors_and_its_own_starting_values(write_spec):
    _register_both()
    path = write_spec(SPEC)
    graph = load_spec(path)
    act, mix = graph.nodes["act"], graph.nodes["mix"]
    assert (act.shape, act.tensors, act.n_params, act.macs) == ((4, 8, 8), {"scale": (1,), "bias": (1,)}, 2, 0)
    assert mix.shape == (6, 8, 8)
    assert mix.tensors == {"gate": (6, 1, 1), "conv.weight": (6, 4, 1, 1), "conv.bias": (6,), "steps": ()}
    assert (mix.n_params, mix.n_buffers, mix.macs) == (6 + 24 + 6, 1, 6 * 4 * 64)  # MACs from the meta run
    assert (mix.dtypes, mix.weight_bytes) == ({"steps": "int64"}, 4 * 36 + 8)  # dtypes as the module makes them
    torch.manual_seed(0)
    model = compile_spec(path)
    state = model.state_dict()
    assert {k: tuple(v.shape) for k, v in state.items()} == graph.state_shapes()
    # the tensors start as the constructors make them, drawn in order (conv2d's are torch's)
    torch.manual_seed(0)
    conv, star, mixer = nn.Conv2d(3, 4, 3, padding=1), StarReLU(0.5, -0.25), Mixer(4, 6, inplace=False)
    for prefix, module in (("conv", conv), ("act", star), ("mix", mixer)):
        for key, value in module.state_dict().items():
            assert torch.equal(state[f"{prefix}.{key}"], value), key
    assert torch.equal(model.mix.table, mixer.table)  # outside the state_dict, and filled too
    x = torch.randn(2, 3, 8, 8)
    assert torch.equal(model(x), torch.relu(mixer(star(conv(x)))))
    assert not model.act.scale.is_meta and model.act.scale.requires_grad


class Rates(nn.Module):
    """Reads tensor values in its constructor, which the meta device cannot."""

    def __init__(self, in_features: int, depth: int = 3):
        super().__init__()
        self.rates = [r.item() for r in torch.linspace(0, 0.1, depth)]
        self.fc = nn.Linear(in_features, 2 * in_features)

    def forward(self, x):
        return self.fc(x)


def test_a_constructor_that_needs_real_tensors_is_built_on_the_cpu_without_drawing(write_spec):
    archspec.register_op("rates", Rates)
    path = write_spec("archspec: 1\nname: s\ninput: [8]\ngraph: {a: {op: rates}}\n")
    torch.manual_seed(0)
    graph = load_spec(path)
    assert graph.nodes["a"].tensors == {"fc.weight": (16, 8), "fc.bias": (16,)} and graph.nodes["a"].macs == 128
    model = compile_spec(path)  # infer and the meta module tree draw nothing: the seed reaches the filling
    torch.manual_seed(0)
    assert torch.equal(model.a.fc.weight, Rates(8).fc.weight)


def test_in_place_ops_leave_a_user_ops_output_alone(write_spec):
    _register_both()
    graph = load_spec(write_spec(SPEC))
    assert graph.inplace["relu"] is None
    with pytest.raises(SpecShapeError, match=r"cannot run in place: 'mix' is a user op \(mixer\), whose output archspec never"):
        load_spec(write_spec(SPEC.replace("{op: relu}", "{op: relu, inplace: true}")))


def test_parameter_mistakes_are_located_with_did_you_mean(write_spec):
    _register_both()

    def error(node: str) -> SpecError:
        with pytest.raises(SpecError) as info:
            load_spec(write_spec(SPEC.replace("{op: mixer, out: 6}", node)))
        return info.value

    e = error("{op: mixer, out: six}")
    assert isinstance(e, SpecSchemaError) and (e.loc.line, e.loc.col) == (7, 25) and e.node == "mix"
    assert e.message == "'out': found 'six'" and e.expected == "an integer"
    e = error("{op: mixer, out: 6, mode: fancy}")
    assert e.message == "'mode': found 'fancy'" and e.expected == "'gate' or 'plain'"
    assert error("{op: mixer, out: 6, p: 1.5}").expected == "a number >= 0 and <= 1"
    e = error("{op: mixer, outt: 6}")
    assert e.message == "unknown key 'outt' for a mixer node" and e.hint == "did you mean 'out'?"
    assert error("{op: mixer, out: 6, in_channels: 4}").hint.startswith("'in_channels' is never written")
    assert error("{op: mixer, out: 6, act: relu}").message == "unknown key 'act' for a mixer node"  # a callable: fixed
    e = error("{op: mixr, out: 6}")
    assert e.message == "unknown op 'mixr'" and e.hint == "did you mean 'mixer'?" and (e.loc.line, e.loc.col) == (7, 13)
    # an expression that evaluates to a bad value, after resolve
    e = error("{op: mixer, out: '${1.5}'}")
    assert e.message.startswith("'out': found 1.5") and e.node == "mix"


def test_shape_rules_and_macs_given_or_found_by_the_meta_run(write_spec):
    archspec.register_op("space_to_depth", nn.PixelUnshuffle)  # torch's class: downscale_factor: int

    def pool_shape(in_shape, p):
        c, h, w = in_shape
        if h % p.k or w % p.k:
            raise ShapeError(f"k={p.k} does not divide the {h}x{w} image", param="k", expected=f"a divisor of {h} and {w}")
        return (c, h // p.k, w // p.k)

    archspec.register_op("blur_pool", lambda k: nn.AvgPool2d(k), params={"k": (int, 2)}, shape=pool_shape,
                         macs=lambda i, o, p: o[0] * o[1] * o[2] * p.k * p.k, doc="Average pooling by k.")

    class ScaleParams(ops.OpParams):
        """Multiplies by a constant."""

        by: Annotated[object, ops.Float(gt=0)] = 2.0

    class Scale(nn.Module):
        def __init__(self, by, in_shape):
            super().__init__()
            self.by, self.in_shape = by, in_shape

        def forward(self, x):
            assert x.shape[1:] == self.in_shape
            return x * self.by

    archspec.register_op("scale", Scale, params=ScaleParams, shape="same")
    assert ops.get("scale").doc == "Multiplies by a constant."
    spec = textwrap.dedent("""\
        archspec: 1
        name: shapes
        input: [3, 8, 8]
        graph:
          down: {op: space_to_depth, downscale_factor: 2}
          blur: {op: blur_pool}
          scale: {op: scale, by: 0.5}
        """)
    graph = load_spec(write_spec(spec))
    assert graph.nodes["down"].shape == (12, 4, 4) and graph.nodes["blur"].shape == (12, 2, 2)
    assert graph.nodes["blur"].macs == 12 * 2 * 2 * 4 and graph.nodes["scale"].shape == (12, 2, 2)
    x = torch.randn(1, 3, 8, 8)
    assert torch.equal(compile_spec(write_spec(spec))(x), nn.functional.avg_pool2d(nn.functional.pixel_unshuffle(x, 2), 2) * 0.5)
    with pytest.raises(SpecSchemaError, match="'by': found 0 .expected a number > 0."):
        load_spec(write_spec(spec.replace("by: 0.5", "by: 0")))
    with pytest.raises(SpecShapeError) as info:  # the shape rule's error, at the value it names
        load_spec(write_spec(spec.replace("{op: blur_pool}", "{op: blur_pool, k: 3}")))
    e = info.value
    assert (e.loc.line, e.loc.col, e.node) == (6, 28, "blur") and e.expected == "a divisor of 4 and 4"
    with pytest.raises(SpecShapeError) as info:  # the meta run fails: located at the node
        load_spec(write_spec(spec.replace("downscale_factor: 2", "downscale_factor: 3")))
    assert info.value.node == "down" and info.value.loc.line == 5
    assert "space_to_depth fails on its input, an image 3x8x8: RuntimeError" in info.value.message
    archspec.register_op("gn", nn.GroupNorm)  # num_channels from the input; device and dtype left alone
    assert load_spec(write_spec(spec.replace("{op: blur_pool}", "{op: gn, num_groups: 4}"))).nodes["blur"].tensors == {
        "weight": (12,), "bias": (12,)}
    with pytest.raises(SpecShapeError) as info:  # the constructor refuses: located at the node, with its arguments
        load_spec(write_spec(spec.replace("{op: blur_pool}", "{op: gn, num_groups: 5}")))
    assert info.value.node == "blur" and re.fullmatch(
        r"gn cannot be built with num_groups=5, eps=1e-05, .*num_channels=12: ValueError: num_channels .*divisible.*",
        info.value.message)
    with pytest.raises(SpecSchemaError, match="missing key 'downscale_factor' for a space_to_depth node"):
        load_spec(write_spec(spec.replace("{op: space_to_depth, downscale_factor: 2}", "{op: space_to_depth}")))


def test_the_schema_and_the_ops_command_show_user_ops(capsys):
    _register_both()
    node = json_schema()["$defs"]["MixerNode"]
    assert node["properties"]["mode"]["anyOf"][0] == {"enum": ["gate", "plain"]}
    assert set(node["required"]) == {"op", "out"} and "in_channels" not in node["properties"]
    assert main(["ops", "mixer"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("mixer (user, one input)\n  a user op registered from Python: test_user_ops.Mixer\n")
    assert "  out: an integer (required)\n" in out and "  from the input: in_channels\n" in out
    assert "not settable from a spec (their types have no spec form): act" in out
    assert main(["ops"]) == 0 and re.search(r"^star_relu +user +s \* relu\(x\)", capsys.readouterr().out, re.M)


def test_registration_mistakes_are_refused_when_registering(write_spec):
    with pytest.raises(ValueError, match="'relu' is a built-in op"):
        archspec.register_op("relu", StarReLU)
    archspec.register_op("star_relu", StarReLU)
    archspec.register_op("star_relu", StarReLU)  # the same class again (a module run twice) is fine
    with pytest.raises(ValueError, match="already registered .registered from Python: test_user_ops.StarReLU.; pass replace"):
        archspec.register_op("star_relu", Mixer)
    archspec.register_op("star_relu", Mixer, replace=True)

    class Bad(nn.Module):
        def __init__(self, fn: callable, repeat: int = 1):
            super().__init__()

    with pytest.raises(TypeError, match="parameter 'fn' of .*Bad has no default and it has no spec form"):
        archspec.register_op("bad", Bad)
    with pytest.raises(TypeError, match="a parameter named 'repeat' would mean two things"):
        archspec.register_op("bad", Bad, params={"repeat": int})
    with pytest.raises(TypeError, match="the default of 'k', 'x', is not an integer"):
        archspec.register_op("bad", lambda k: nn.Identity(), params={"k": (int, "x")})
    with pytest.raises(TypeError, match="takes no keyword argument 'k'"):
        archspec.register_op("bad", nn.ReLU, params={"k": int})
    with pytest.raises(TypeError, match="needs the op's name first"):
        archspec.register_op(StarReLU)

    class Stray(nn.Module):
        def __init__(self):
            super().__init__()
            self.table = torch.zeros(3)

        def forward(self, x):
            return x

    archspec.register_op("stray", Stray)
    with pytest.raises(TypeError, match="keeps a tensor in the plain attribute 'table'.*register_buffer"):
        load_spec(write_spec("archspec: 1\nname: s\ninput: [4]\ngraph: {s: {op: stray}}\n"))


def test_unregistering_invalidates_the_cached_models(write_spec):
    archspec.register_op("star_relu", StarReLU)
    spec = write_spec("archspec: 1\nname: s\ninput: [4]\ngraph: {a: {op: star_relu}}\n")
    assert load_spec(spec).nodes["a"].n_params == 2  # the spec models now cover star_relu
    archspec.unregister_op("star_relu")
    with pytest.raises(SpecSchemaError, match="unknown op 'star_relu'"):
        load_spec(spec)
    with pytest.raises(ValueError, match="built-in"):
        archspec.unregister_op("relu")


# -- packages ---------------------------------------------------------------------------


def _package(root, dist: str, module: str, entry_points: str, code: str, version: str = "1.0"):
    """A package as pip would install it: a module and its .dist-info (with entry points)."""
    root.mkdir(exist_ok=True)
    (root / f"{module}.py").write_text(textwrap.dedent(code))
    info = root / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(f"[archspec.ops]\n{entry_points}\n")


PLUGIN = """\
    import torch
    from torch import nn

    import archspec

    class Mish2(nn.Module):
        \"\"\"x * tanh(softplus(x)), from a package.\"\"\"

        def forward(self, x):
            return x * torch.tanh(nn.functional.softplus(x))

    def register():
        archspec.register_op("mish2", Mish2)
    """


def test_a_packages_ops_load_when_a_spec_first_names_one(tmp_path, monkeypatch, write_spec):
    site = tmp_path / "site"
    _package(site, "fake-archspec-mish", "fake_archspec_mish", "mish2 = fake_archspec_mish:register", PLUGIN)
    monkeypatch.syspath_prepend(str(site))
    load_spec(write_spec("archspec: 1\nname: s\ninput: [4]\ngraph: {a: {op: relu}}\n"))
    assert "fake_archspec_mish" not in sys.modules  # built-in ops only: nothing loaded
    # named by an expression: looked for when it is evaluated
    graph = load_spec(write_spec("archspec: 1\nname: s\ninput: [4]\nparams: {act: mish2}\ngraph: {a: {op: $act}}\n"))
    assert graph.nodes["a"].shape == (4,) and "fake_archspec_mish" in sys.modules
    assert ops.get("mish2").origin == "from package fake-archspec-mish 1.0 (entry point 'mish2')"
    x = torch.randn(2, 4)
    assert torch.allclose(compile_spec(write_spec("archspec: 1\nname: s\ninput: [4]\ngraph: {a: {op: mish2}}\n"))(x),
                          nn.functional.mish(x))


def test_a_misspelt_op_is_looked_for_among_the_packages(tmp_path, monkeypatch, write_spec):
    site = tmp_path / "site"
    _package(site, "fake-archspec-mish", "fake_archspec_mish", "mish2 = fake_archspec_mish:register", PLUGIN)
    monkeypatch.syspath_prepend(str(site))
    with pytest.raises(SpecSchemaError) as info:
        load_spec(write_spec("archspec: 1\nname: s\ninput: [4]\ngraph: {a: {op: mihs2}}\n"))
    assert info.value.hint == "did you mean 'mish2' or 'mish'?"


def test_a_broken_package_is_named(tmp_path, monkeypatch, write_spec):
    site = tmp_path / "site"
    _package(site, "fake-archspec-broken", "fake_archspec_broken", "broken = fake_archspec_broken", "import no_such_module\n")
    monkeypatch.syspath_prepend(str(site))
    spec = write_spec("archspec: 1\nname: s\ninput: [4]\ngraph: {a: {op: broken}}\n")
    with pytest.raises(archspec.PluginError, match=r"the archspec.ops entry point 'broken = fake_archspec_broken' of package "
                                                   r"'fake-archspec-broken' failed: ModuleNotFoundError: No module named 'no_such"):
        load_spec(spec)
    assert main(["ops"]) == 1  # the command line says so, without a traceback


REQUIRES = """\
archspec: 1
name: s
requires: [fake-archspec-mish>=1.0, fake-archspec-absent]
input: [4]
graph:
  a: {op: mish2}
  b: {op: absent_op}
"""


def test_requires_names_the_package_to_install(tmp_path, monkeypatch, write_spec):
    site = tmp_path / "site"
    _package(site, "fake-archspec-mish", "fake_archspec_mish", "m = fake_archspec_mish:register", PLUGIN)
    monkeypatch.syspath_prepend(str(site))
    with pytest.raises(archspec.SpecErrors) as info:
        load_spec(write_spec(REQUIRES))
    missing, unknown = info.value.errors
    assert isinstance(missing, SpecReferenceError) and (missing.loc.line, missing.loc.col) == (3, 37)
    assert missing.message == "this spec needs the package 'fake-archspec-absent', which is not installed"
    assert missing.hint == "install it: pip install fake-archspec-absent"
    assert unknown.message == "unknown op 'absent_op'" and unknown.loc.line == 7
    assert unknown.hint == "it may come from a package this spec requires that is not installed: pip install fake-archspec-absent"
    # mish2's entry point is named 'm': found among the required package's
    assert load_spec(write_spec(REQUIRES.replace(", fake-archspec-absent", "").replace("  b: {op: absent_op}\n", "")))
    with pytest.raises(SpecReferenceError) as info:
        load_spec(write_spec(REQUIRES.replace(">=1.0, fake-archspec-absent", ">=1.2").replace("  b: {op: absent_op}\n", "")))
    assert info.value.message == "this spec needs fake-archspec-mish>=1.2, but fake-archspec-mish 1.0 is installed"
    with pytest.raises(SpecSchemaError) as info:
        load_spec(write_spec(REQUIRES.replace("fake-archspec-absent", "'mish; import os'").replace("  b: {op: absent_op}\n", "")))
    assert info.value.message == "found 'mish; import os'" and info.value.expected.startswith("a package name")


def test_a_variant_requires_its_bases_packages_too(write_spec):
    write_spec("archspec: 1\nname: base\nrequires: [fake-archspec-a]\ninput: [4]\ngraph: {a: {op: relu}}\n", "base.yaml")
    variant = write_spec("archspec: 1\nname: v\nextends: base.yaml\nrequires: [fake-archspec-a, fake-archspec-b]\n")
    with pytest.raises(archspec.SpecErrors) as info:
        load_spec(variant)
    a, b = info.value.errors
    assert (a.loc.file.endswith("base.yaml"), a.loc.line, b.loc.file.endswith(variant.name), b.loc.line) == (True, 3, True, 4)
    assert "'fake-archspec-b'" in b.message


# -- the manual's page (docs/user-ops.md) ------------------------------------------------


def test_the_docs_user_op_example_runs(tmp_path, monkeypatch, capsys, write_spec):
    section = (ROOT / "docs" / "user-ops.md").read_text()
    python, yaml_text = re.findall(r"```python\n(.*?)```", section, re.S)[0], re.findall(r"```yaml\n(.*?)```", section, re.S)
    name = yaml_text[0].splitlines()[0].removeprefix("# ")
    (tmp_path / name).write_text(yaml_text[0])
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "readme_example"}
    exec(compile(python, "docs/user-ops.md", "exec"), namespace)
    printed = capsys.readouterr().out.splitlines()
    assert printed == [comment.strip() for comment in re.findall(r"# (\(64.*|torch\.Size.*)", python)]
    model = namespace["model"]
    x = torch.randn(2, 3, 32, 32)
    star = namespace["StarReLU"](learnable=False)
    manual = model.fc(torch.flatten(model.pool(nn.functional.pixel_unshuffle(star(model.stem(x)), 2)), 1))
    assert torch.equal(model(x), manual)
    assert not model.act.scale.requires_grad
    # the requires: example and its message, as the command line prints it
    spec = yaml_text[1].strip()
    path = write_spec(f"archspec: 1\n{spec.replace('>=1.0', '')}\nname: s\ninput: [4]\ngraph: {{a: {{op: relu}}}}\n", "net.yaml")
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    shown = re.search(r"```text\n(.*?)```", section, re.S)[1].splitlines()
    assert err.splitlines()[0].endswith(shown[0].split(":", 1)[1]) and shown[1] in err
