"""`archspec graph`: DOT and Mermaid text (clusters, joins, shapes on edges, training-only
parts, --depth collapsing), the files the command writes, and rendering through Graphviz."""

from __future__ import annotations

import re
import shutil
import stat
from collections import Counter

import pytest

from archspec import load_spec
from archspec._draw import DrawError, GraphvizNotFound, _mm, to_dot, to_mermaid, write_graph
from archspec._summary import format_count, rows
from archspec.cli import main
from archspec.ops import fmt_shape
from reference import SPECS


@pytest.fixture(scope="module")
def googlenet():
    return load_spec(SPECS / "googlenet.yaml")


@pytest.fixture(scope="module")
def densenet():
    return load_spec(SPECS / "densenet121.yaml")


@pytest.fixture(scope="module")
def xception():
    return load_spec(SPECS / "xception.yaml")


# -- a small reader of the DOT text archspec writes ----------------------------------------------

_ATTR = r'(\w+)=("(?:[^"\\]|\\.)*"|[^,\];]+)'


def _attrs(text: str) -> dict[str, str]:
    return {k: v[1:-1] if v.startswith('"') else v for k, v in re.findall(_ATTR, text)}


def parse_dot(text: str):
    """nodes: id -> (attrs, enclosing clusters outermost first); clusters: id -> (attrs, parents);
    edges: [(src, dst, attrs)]."""
    nodes, clusters, edges, stack = {}, {}, [], []
    for line in text.splitlines()[1:-1]:
        s = line.strip()
        if m := re.fullmatch(r"subgraph (cluster_\w+) \{", s):
            clusters[m[1]] = ({}, tuple(stack))
            stack.append(m[1])
        elif s == "}":
            stack.pop()
        elif m := re.fullmatch(r"(\w+) -> (\w+) \[(.*)\];", s):
            edges.append((m[1], m[2], _attrs(m[3])))
        elif m := re.fullmatch(r"(\w+) \[(.*)\];", s):
            if m[1] not in ("graph", "node", "edge"):
                assert m[1] not in nodes, f"{m[1]} declared twice"
                nodes[m[1]] = (_attrs(m[2]), tuple(stack))
        elif stack and s.startswith("label="):
            clusters[stack[-1]][0].update(_attrs(s))
        else:
            raise AssertionError(f"unexpected DOT line: {line!r}")
    assert not stack
    return nodes, clusters, edges


def edge(edges, src, dst):
    found = [a for s, d, a in edges if (s, d) == (src, dst)]
    assert len(found) == 1, f"{src} -> {dst}: {len(found)} edges"
    return found[0]


# -- DOT --------------------------------------------------------------------------------------------


def test_googlenet_blocks_are_nested_clusters_with_joins(googlenet):
    nodes, clusters, edges = parse_dot(to_dot(googlenet))
    assert clusters["cluster_c_inception3a"][0]["label"] == "inception3a : inception"
    for b in ("branch1", "branch2", "branch3", "branch4"):
        assert clusters[f"cluster_c_inception3a_{b}"][1] == ("cluster_c_inception3a",)
    assert clusters["cluster_c_inception3a_branch2_1"][0]["label"] == "1 : conv"
    conv = nodes["n_inception3a_branch2_1_conv"]
    assert conv[0]["label"] == r"conv: conv2d 3x3\n128x28x28"
    assert conv[1] == ("cluster_c_inception3a", "cluster_c_inception3a_branch2", "cluster_c_inception3a_branch2_1")
    assert nodes["n_conv1_conv"][0]["label"] == r"conv: conv2d 7x7/2\n64x112x112"
    assert nodes["n_maxpool1"][0]["label"] == r"maxpool1: maxpool2d 3x3/2\n64x56x56"
    # the implicit concat is a small join node inside its block's cluster, fed by the four branches
    join = nodes["n_inception3a__concat"]
    assert (join[0]["label"], join[0]["shape"], join[1]) == ("concat", "circle", ("cluster_c_inception3a",))
    for src, shape in [("branch1_relu", "64x28x28"), ("branch2_1_relu", "128x28x28"), ("branch3_1_relu", "32x28x28"),
                       ("branch4_1_relu", "32x28x28")]:
        assert edge(edges, f"n_inception3a_{src}", "n_inception3a__concat")["label"].strip() == shape


def test_edges_carry_the_producers_shape(googlenet):
    nodes, _, edges = parse_dot(to_dot(googlenet))
    for first in ("branch1_conv", "branch2_0_conv", "branch3_0_conv", "branch4_0"):
        assert edge(edges, "n_maxpool2", f"n_inception3a_{first}")["label"].strip() == "192x28x28"
    assert edge(edges, "x_input", "n_conv1_conv")["label"].strip() == "3x224x224"
    assert edge(edges, "n_inception3a__concat", "n_inception3b_branch1_conv")["label"].strip() == "256x28x28"
    assert edge(edges, "n_fc", "o_logits")["label"].strip() == "1000"
    assert nodes["x_input"][0]["label"] == r"input\n3x224x224"
    assert nodes["o_logits"][0]["label"] == r"logits\n1000"


def test_aux_heads_and_their_outputs_are_training_only(googlenet):
    nodes, clusters, edges = parse_dot(to_dot(googlenet))
    assert "dashed" in clusters["cluster_c_aux1"][0]["style"]
    assert "dashed" not in clusters["cluster_c_inception4a"][0]["style"]
    aux = [n for n in nodes if n.startswith(("n_aux1_", "n_aux2_"))]
    assert len(aux) == 2 * 9  # pool, conv (conv, bn, relu), flatten, fc1, relu, dropout, fc2
    assert all("dashed" in nodes[n][0]["style"] for n in aux)
    eval_nodes = [n for n in nodes if n.startswith("n_") and not n.startswith(("n_aux1_", "n_aux2_"))]
    assert eval_nodes and not any("dashed" in nodes[n][0]["style"] for n in eval_nodes)
    assert edge(edges, "n_inception4a__concat", "n_aux1_pool")["style"] == "dashed"
    assert "style" not in edge(edges, "n_inception4a__concat", "n_inception4b_branch1_conv")
    for name, src in [("aux_logits1", "n_aux1_fc2"), ("aux_logits2", "n_aux2_fc2")]:
        out = nodes[f"o_{name}"][0]
        assert out["label"] == rf"{name} (train)\n1000" and "dashed" in out["style"]
        assert edge(edges, src, f"o_{name}")["style"] == "dashed"
    assert "dashed" not in nodes["o_logits"][0]["style"]


def test_without_aux_heads_nothing_is_training_only():
    nodes, clusters, _ = parse_dot(to_dot(load_spec(SPECS / "googlenet.yaml", aux_logits=False)))
    assert not any(n.startswith(("n_aux", "o_aux")) for n in nodes) and "cluster_c_aux1" not in clusters
    assert not any("dashed" in a["style"] for a, _ in nodes.values())


def test_depth_1_collapses_top_level_blocks(googlenet):
    nodes, clusters, edges = parse_dot(to_dot(googlenet, depth=1))
    assert clusters == {}
    box = nodes["b_inception3a"]
    assert box[0]["shape"] == "box3d" and box[0]["label"] == r"inception3a : inception\n256x28x28\n155,872 params"
    assert not any(n.startswith("n_inception3a") for n in nodes)  # no inner node, no join
    assert edge(edges, "n_maxpool2", "b_inception3a")["label"].strip() == "192x28x28"  # four reads, one edge
    assert edge(edges, "b_inception3a", "b_inception3b")["label"].strip() == "256x28x28"
    assert edge(edges, "b_inception4a", "b_aux1")["style"] == "dashed"
    assert "dashed" in nodes["b_aux1"][0]["style"] and "dashed" not in box[0]["style"]
    assert edge(edges, "b_aux1", "o_aux_logits1")["label"].strip() == "1000"
    assert [n for n in nodes if n.startswith("n_")] == ["n_maxpool1", "n_maxpool2", "n_maxpool3", "n_maxpool4", "n_avgpool",
                                                        "n_flatten", "n_dropout", "n_fc"]
    assert all(s != d for s, d, _ in edges)
    assert to_dot(googlenet, depth=0) == to_dot(googlenet, depth=1)  # as `archspec build --depth`


@pytest.mark.parametrize("depth", [1, 2, 3])
def test_boxes_agree_with_the_summary_table(googlenet, depth):
    nodes, _, _ = parse_dot(to_dot(googlenet, depth=depth))
    boxes = {a["tooltip"]: a["label"] for a, _ in nodes.values() if a.get("shape") == "box3d"}
    expected = {r.path: rf"{r.name} : {r.kind}\n{fmt_shape(r.shape)}\n{format_count(r.params).strip()} params"
                for r in rows(googlenet, depth) if r.container and r.depth == depth - 1}
    assert boxes == expected and len(boxes) > 10


def test_depth_2_keeps_blocks_and_collapses_their_children(googlenet):
    nodes, clusters, edges = parse_dot(to_dot(googlenet, depth=2))
    assert set(clusters) == {f"cluster_c_{c}" for c in googlenet.top if c in googlenet.containers}
    assert nodes["n_conv1_conv"][1] == ("cluster_c_conv1",)
    assert nodes["b_inception3a_branch2"][1] == ("cluster_c_inception3a",)
    assert nodes["b_inception3a_branch2"][0]["label"] == r"branch2 : seq\n128x28x28\n129,472 params"
    assert nodes["n_inception3a__concat"][1] == ("cluster_c_inception3a",)
    assert edge(edges, "n_maxpool2", "b_inception3a_branch2")["label"].strip() == "192x28x28"
    assert edge(edges, "b_inception3a_branch2", "n_inception3a__concat")["label"].strip() == "128x28x28"


def test_densenet_depth_2(densenet):
    nodes, clusters, edges = parse_dot(to_dot(densenet, depth=2))
    assert list(clusters) == ["cluster_c_features"]
    blocks = [n for n, (_, where) in nodes.items() if where == ("cluster_c_features",) and n.startswith("b_")]
    assert blocks == ["b_features_denseblock1", "b_features_transition1", "b_features_denseblock2", "b_features_transition2",
                      "b_features_denseblock3", "b_features_transition3", "b_features_denseblock4"]
    assert nodes["b_features_denseblock1"][0]["label"] == r"denseblock1 : dense_block\n256x56x56\n335,040 params"
    assert not any("denselayer" in n for n in nodes)
    assert edge(edges, "n_features_pool0", "b_features_denseblock1")["label"].strip() == "64x56x56"
    assert edge(edges, "b_features_denseblock1", "b_features_transition1")["label"].strip() == "256x56x56"
    assert len(edges) == 17  # a chain: input, 4 ops, 7 boxes, norm5, relu, pool, flatten, classifier, output


def test_densenet_dense_joins(densenet):
    nodes, clusters, edges = parse_dot(to_dot(densenet))
    join = "n_features_denseblock1_denselayer3__in"
    assert nodes[join][0]["label"] == "concat" and nodes[join][1] == ("cluster_c_features", "cluster_c_features_denseblock1")
    into = [(s, a["label"].strip()) for s, d, a in edges if d == join]
    assert into == [("n_features_pool0", "64x56x56"), ("n_features_denseblock1_denselayer1_conv2", "32x56x56"),
                    ("n_features_denseblock1_denselayer2_conv2", "32x56x56")]
    assert edge(edges, join, "n_features_denseblock1_denselayer3_norm1")["label"].strip() == "128x56x56"
    assert clusters["cluster_c_features_denseblock1_denselayer3"][0]["label"] == "denselayer3 : dense_layer"


def test_xception_residual_sums_and_switched_off_nodes(xception):
    nodes, _, edges = parse_dot(to_dot(xception))
    assert nodes["n_block1_sum"][0]["label"] == r"sum: add\n128x74x74"
    assert nodes["n_block1_rep_0_conv1"][0]["label"] == r"conv1: conv2d dw 3x3\n64x147x147"
    assert "n_block1_skip" in nodes and "n_block4_skip" not in nodes  # has_skip is false in the middle flow
    assert edge(edges, "n_block3_sum", "n_block4_sum")["label"].strip() == "728x19x19"  # the identity shortcut
    assert edge(edges, "n_block1_skip", "n_block1_skipbn")["label"].strip() == "128x74x74"


@pytest.mark.parametrize("spec, depth", [("googlenet", None), ("googlenet", 1), ("googlenet", 2), ("densenet121", None),
                                         ("densenet121", 3), ("xception", None), ("xception", 1), ("inception_v3", 2),
                                         ("alexnet-paper", None)])
def test_every_edge_joins_declared_nodes_once(spec, depth, googlenet, densenet, xception):
    graph = {"googlenet": googlenet, "densenet121": densenet, "xception": xception}.get(spec) or load_spec(SPECS / f"{spec}.yaml")
    text = to_dot(graph, depth)
    nodes, _, edges = parse_dot(text)
    assert edges and all(s in nodes and d in nodes for s, d, _ in edges)
    assert not [k for k, n in Counter((s, d) for s, d, _ in edges).items() if n > 1]
    assert all(s != d for s, d, _ in edges)
    assert {d for _, d, _ in edges} >= {n for n in nodes if n.startswith("o_")}
    assert text == to_dot(graph, depth)  # deterministic
    mm = to_mermaid(graph, depth)
    declared = set(re.findall(r"^\s*(\w+)[\[(]", mm, re.M))
    mm_edges = re.findall(r"^\s*(\w+) -\.?->\|\"[^\"]*\"\| (\w+)$", mm, re.M)
    assert declared == set(nodes) and sorted(mm_edges) == sorted((s, d) for s, d, _ in edges)


def test_labels_and_ids_are_escaped(write_spec):
    spec = write_spec('archspec: 1\nname: quoted-net\ndescription: "a \\"quoted\\" \\\\ net"\ninput: [3, 8, 8]\n'
                      "graph:\n  a: {seq: {b: {op: relu}}}\n  a_b: {op: relu}\n")
    graph = load_spec(spec)
    text = to_dot(graph)
    assert text.startswith('digraph "quoted-net" {')
    assert 'label="quoted-net: a \\"quoted\\" \\\\ net"' in text
    nodes, _, edges = parse_dot(text)
    assert nodes["n_a_b"][0]["tooltip"] == "a.b" and nodes["n_a_b_2"][0]["tooltip"] == "a_b"  # clashing paths, two ids
    assert ("n_a_b", "n_a_b_2") in [(s, d) for s, d, _ in edges]


# -- Mermaid ----------------------------------------------------------------------------------------


def _outside_quotes(text: str) -> str:
    return re.sub(r'"[^"\n]*"', '""', text)


def test_mermaid_flowchart(googlenet):
    mm = to_mermaid(googlenet)
    lines = mm.splitlines()
    assert lines[0] == "flowchart TD"
    assert '  subgraph c_inception3a ["inception3a : inception"]' in lines
    assert sum(line.strip().startswith("subgraph ") for line in lines) == sum(line.strip() == "end" for line in lines) == 97
    assert '    n_inception3a__concat(("concat")):::join' in lines
    assert '      n_inception3a_branch1_conv["conv: conv2d 1x1<br/>64x28x28"]:::layer' in lines
    assert '  n_maxpool2 -->|"192x28x28"| n_inception3a_branch1_conv' in lines
    assert '  n_inception4a__concat -.->|"512x14x14"| n_aux1_pool' in lines
    assert '  o_aux_logits1(["aux_logits1 #40;train#41;<br/>1000"]):::train' in lines
    assert "  style c_aux1 stroke-dasharray:5 5,stroke:#8a8a8a,color:#666666" in lines
    outside = _outside_quotes(mm)
    for a, b in ["[]", "()", "{}"]:
        assert outside.count(a) == outside.count(b), a + b
    labels = re.findall(r'"([^"\n]*)"', mm)
    assert len(labels) > 400 and all(set(label.replace("<br/>", "")).isdisjoint('[](){}<>"|') for label in labels)


def test_mermaid_collapsed_blocks(googlenet):
    mm = to_mermaid(googlenet, depth=1)
    assert "subgraph" not in mm and "n_inception3a" not in mm
    assert '  b_inception3a[["inception3a : inception<br/>256x28x28<br/>155,872 params"]]:::block' in mm.splitlines()
    assert '  n_maxpool2 -->|"192x28x28"| b_inception3a' in mm.splitlines()
    assert "%%" not in mm


def test_mermaid_says_when_it_is_past_mermaids_limits(densenet):
    full = to_mermaid(densenet).splitlines()
    assert full[0] == "flowchart TD" and full[1].startswith("  %% 963 edges,") and "--depth" in full[1]
    assert to_mermaid(densenet, depth=3).splitlines()[1].startswith("  %% 673 edges,")  # dense joins fan in: 651 edges in the 4 blocks
    assert not any(line.lstrip().startswith("%%") for line in to_mermaid(densenet, depth=2).splitlines())


def test_mermaid_escapes_label_syntax():
    assert _mm(['a "b" [c] (d) {e} <f> #g | `h` & i']) == \
        '"a #quot;b#quot; #91;c#93; #40;d#41; #123;e#125; #lt;f#gt; #35;g #124; #96;h#96; #amp; i"'


# -- files and the command line ----------------------------------------------------------------


def run(capsys, *args):
    status = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return status, out, err


@pytest.mark.parametrize("name, depth", [("g.dot", None), ("g.gv", "2"), ("g.mmd", "1")])
def test_cli_writes_text_diagrams(tmp_path, capsys, googlenet, name, depth):
    target = tmp_path / name
    status, out, err = run(capsys, "graph", SPECS / "googlenet.yaml", "-o", target, *(["--depth", depth] if depth else []))
    assert status == 0 and err == "" and out == f"wrote {target}\n"
    draw = to_mermaid if name.endswith(".mmd") else to_dot
    assert target.read_text() == draw(googlenet, int(depth) if depth else None)
    assert [p.name for p in tmp_path.iterdir()] == [name]  # no temporary file left behind


def test_cli_set_applies_to_the_diagram(tmp_path, capsys):
    target = tmp_path / "g.dot"
    assert run(capsys, "graph", SPECS / "googlenet.yaml", "-o", target, "--set", "num_classes=10", "--depth", "1")[0] == 0
    nodes, _, _ = parse_dot(target.read_text())
    assert nodes["o_logits"][0]["label"] == r"logits\n10"


def test_unknown_extension_is_a_clear_error(tmp_path, capsys, googlenet):
    status, out, err = run(capsys, "graph", SPECS / "googlenet.yaml", "-o", tmp_path / "g.txt")
    assert status == 2 and out == ""  # a usage error, found before the spec is even read
    assert err == f"archspec: error: cannot tell the format of '{tmp_path / 'g.txt'}' from its extension; " \
                  "use one of: .dot, .gv, .mmd, .svg, .png\n"
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(DrawError, match="unknown format '.txt'"):
        write_graph(googlenet, tmp_path / "g.txt")
    with pytest.raises(DrawError, match="no extension"):
        write_graph(googlenet, tmp_path / "graph")


def _fake_dot(folder, script: str):
    path = folder / "dot"
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path


def test_svg_goes_through_dot_with_the_dot_text_on_stdin(tmp_path, monkeypatch, capsys, googlenet):
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    _fake_dot(bin_, 'echo "$@" > "$0.args"\n/bin/cat\n')
    monkeypatch.setenv("PATH", str(bin_))
    target = tmp_path / "g.svg"
    status, out, err = run(capsys, "graph", SPECS / "googlenet.yaml", "-o", target, "--depth", "1")
    assert status == 0 and err == ""
    assert target.read_text() == to_dot(googlenet, depth=1)
    # dot renders to its stdout; archspec writes the file (so that a write failure is reported as such)
    assert (bin_ / "dot.args").read_text().split() == ["-Tsvg"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bin", "g.svg"]


def test_a_failing_dot_is_a_clear_error(tmp_path, monkeypatch, capsys):
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    _fake_dot(bin_, 'echo "Error: <stdin>: syntax error in line 1" >&2\nexit 3\n')
    monkeypatch.setenv("PATH", str(bin_))
    target = tmp_path / "g.png"
    status, out, err = run(capsys, "graph", SPECS / "alexnet.yaml", "-o", target)
    assert status == 1
    assert err == "archspec: error: Graphviz's dot failed (exit status 3): Error: <stdin>: syntax error in line 1\n"
    assert [p.name for p in tmp_path.iterdir()] == ["bin"]


def test_without_graphviz_the_error_says_how_to_install_it(tmp_path, monkeypatch, capsys, googlenet):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    target = tmp_path / "g.svg"
    status, out, err = run(capsys, "graph", SPECS / "googlenet.yaml", "-o", target)
    assert status == 1 and out == ""
    assert err.startswith("archspec: error: Graphviz's 'dot' is not installed: ") and err.count("\n") == 1
    assert "'apt-get install graphviz' (Debian/Ubuntu)" in err and "'brew install graphviz' (macOS)" in err
    assert "write .dot/.mmd instead" in err
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(GraphvizNotFound) as info:
        write_graph(googlenet, tmp_path / "g.png")
    assert isinstance(info.value, OSError)
    assert run(capsys, "graph", SPECS / "googlenet.yaml", "-o", tmp_path / "g.dot")[0] == 0  # text formats need no Graphviz


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed (apt-get install graphviz)")
def test_render_svg_and_png_with_graphviz(tmp_path, capsys):
    svg, png = tmp_path / "g.svg", tmp_path / "g.png"
    assert run(capsys, "graph", SPECS / "googlenet.yaml", "-o", svg, "--depth", "2")[0] == 0
    text = svg.read_text()
    assert "<svg" in text and "inception3a : inception" in text and "192x28x28" in text
    assert "aux_logits1 (train)" in text and 'stroke-dasharray="5,2"' in text  # dashed training-only parts
    assert run(capsys, "graph", SPECS / "googlenet.yaml", "-o", png, "--depth", "1")[0] == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
