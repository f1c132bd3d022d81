"""`udlc draw`: a network as a diagram, from the typed graph alone (no torch); the report draws it too.

Each node is a box with its name, layer type, output shape and parameter count; a block's or a stage's nodes sit in
a dashed frame named after the call, and past COLLAPSE_PAST boxes each outermost call is drawn as one box instead
(`expand` opens them). Boxes are placed in layers by their longest path from the inputs, so parallel branches sit
side by side and a skip connection is an arc past the boxes it skips. The layout is plain data, written as SVG
by hand (for the report and the docs) or as PNG with matplotlib.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Iterable
from xml.sax.saxutils import escape

from udlc.layers.registry import fmt

if TYPE_CHECKING:
    from udlc.compiler.graph import Graph
    from udlc.compiler.pipeline import Compiled

COLLAPSE_PAST = 40  # boxes in one network's drawing before its blocks are drawn collapsed
BOX_W, LINE_H, PAD, GAP_X, GAP_Y, MARGIN = 230, 14, 6, 28, 26, 24
CHARS = 31  # characters of monospace 11 px text that fit in a box


@dataclass
class Box:
    key: str  # a node's name, an input's name, or a collapsed call's name
    lines: list[str]  # the first is drawn bold
    kind: str  # "input", "node", "block" (a collapsed call) or "output" (a node the network outputs)
    tip: str  # the tooltip: everything known, untruncated
    order: int  # position of its first node in the graph
    groups: tuple[str, ...] = ()  # the expanded calls it sits in, outermost first
    x: float = 0.0
    y: float = 0.0

    @property
    def height(self) -> float:
        return len(self.lines) * LINE_H + 2 * PAD


@dataclass
class Drawing:
    title: str
    boxes: dict[str, Box] = field(default_factory=dict)
    edges: list[tuple[str, str]] = field(default_factory=list)
    # name, x, y, width, height, and where its name is written
    frames: list[tuple[str, float, float, float, float, float]] = field(default_factory=list)
    width: float = 0.0
    height: float = 0.0


def short(text: str) -> str:
    return text if len(text) <= CHARS else text[:CHARS - 1] + "…"


def groups_of(graph: Graph) -> dict[str, tuple[str, ...]]:
    return {name: node.groups for name, node in graph.nodes.items()}


def layout(graph: Graph, title: str, expand: Iterable[str] | str | None = None) -> Drawing:
    """Boxes, edges and frames of one network, placed. `expand`: "all", the names of calls to draw open, or None
    (open everything when the network is small enough)."""
    groups = groups_of(graph)
    if expand is None:
        expand = "all" if len(graph.nodes) + len(graph.inputs) <= COLLAPSE_PAST else ()
    opened = None if expand == "all" else set(expand)

    def visible(name: str) -> tuple[str, tuple[str, ...]]:
        """The box a node is drawn in, and the open calls around it."""
        chain = groups.get(name, ())
        for depth, call in enumerate(chain):
            if opened is not None and call not in opened:
                return call, chain[:depth]
        return name, chain

    d = Drawing(title)
    for i, (name, shape) in enumerate(graph.inputs.items()):
        dtype = graph.dtype_of(name)
        d.boxes[name] = Box(name, [short(f"{name} · input"), short(fmt(shape) + ("" if dtype == "float32" else
                                                                                 f" {dtype}"))],
                            "input", f"input {name}: {fmt(shape)} {dtype}", -len(graph.inputs) + i)
    outputs = {ref.partition(".")[0] for ref in graph.outputs}
    members: dict[str, list] = {}
    for i, (name, node) in enumerate(graph.nodes.items()):
        key, chain = visible(name)
        members.setdefault(key, []).append(node)
        if key == name:
            shape = ", ".join(fmt(s) for s in node.shapes) or "?"
            # Inside a frame the call's prefix is said by the frame: `layer1_0_conv1` is `conv1` there.
            label = name.removeprefix(chain[-1] + "_") if chain else name
            head = node.op if label == node.op else f"{label} · {node.op}"
            lines = [short(head), short(shape)] + ([f"{node.params:,} params"] if node.params else [])
            line = f" (line {node.span.line})" if node.span else ""
            d.boxes[key] = Box(key, lines, "output" if name in outputs else "node",
                               f"{name}: {node.op} → {shape}, {node.params:,} parameters{line}", i, chain)
        elif key not in d.boxes:
            d.boxes[key] = Box(key, [], "block", "", i, chain)
        for ref in node.inputs:
            source = visible(ref.partition(".")[0])[0] if ref.partition(".")[0] in graph.nodes else ref
            if source != key and (source, key) not in d.edges:
                d.edges.append((source, key))
    for key, box in d.boxes.items():
        if box.kind == "block":
            nodes = members[key]
            params = sum(n.params for n in nodes)
            last = nodes[-1]
            shape = ", ".join(fmt(s) for s in last.shapes) or "?"
            box.lines = [short(f"{key} · {len(nodes)} layers"), short(shape)] + ([f"{params:,} params"] * bool(params))
            box.tip = f"{key}: {len(nodes)} layers ({', '.join(n.op for n in nodes[:6])}{', …' * (len(nodes) > 6)}) " \
                      f"→ {shape}, {params:,} parameters (udlc draw --expand {key} opens it)"
    place(d)
    return d


def place(d: Drawing) -> None:
    """Rows by longest path from the inputs; each row centred; frames around the open calls' boxes."""
    rank: dict[str, int] = {}
    preds: dict[str, list[str]] = {}
    for a, b in d.edges:
        preds.setdefault(b, []).append(a)
    for key in sorted(d.boxes, key=lambda k: d.boxes[k].order):
        rank[key] = 1 + max((rank.get(p, 0) for p in preds.get(key, [])), default=-1)
    rows: dict[int, list[Box]] = {}
    for key, r in rank.items():
        rows.setdefault(r, []).append(d.boxes[key])
    widest = max(len(row) for row in rows.values())
    d.width = widest * (BOX_W + GAP_X) - GAP_X + 2 * MARGIN + 2 * BOX_W // 3  # room for arcs on the right
    y = MARGIN + 22  # below the title
    for r in sorted(rows):
        row = sorted(rows[r], key=lambda b: b.order)
        left = MARGIN + (widest - len(row)) * (BOX_W + GAP_X) / 2
        for i, box in enumerate(row):
            box.x, box.y = left + i * (BOX_W + GAP_X), y
        y += max(b.height for b in row) + GAP_Y
    d.height = y - GAP_Y + MARGIN
    spans: dict[str, list[Box]] = {}
    for box in d.boxes.values():
        for call in box.groups:
            spans.setdefault(call, []).append(box)
    for call, boxes in spans.items():
        depth = boxes[0].groups.index(call)
        inset = 4 * (len(boxes[0].groups) - depth)
        x0, y0 = min(b.x for b in boxes) - 6 - inset, min(b.y for b in boxes) - 14 - inset
        x1, y1 = max(b.x + BOX_W for b in boxes) + 6 + inset, max(b.y + b.height for b in boxes) + 4 + inset
        # A frame whose top meets an enclosing frame's puts its name after that frame's, not over it.
        label = x0 + 6
        for name, fx, fy, _, _, flabel in d.frames:
            if abs(fy - y0) < 12:
                label = max(label, flabel + len(name) * 6.2 + 10)
        d.frames.append((call, x0, y0, x1 - x0, y1 - y0, label))


def edge_path(d: Drawing, a: str, b: str) -> list[tuple[float, float]]:
    """A cubic Bézier's four points from a's bottom to b's top; one that skips rows arcs out to the right."""
    s, t = d.boxes[a], d.boxes[b]
    x0, y0, x1, y1 = s.x + BOX_W / 2, s.y + s.height, t.x + BOX_W / 2, t.y
    between = [o for o in d.boxes.values() if y0 < o.y < y1 and abs(o.x - s.x) < BOX_W and o is not t]
    if between and abs(x0 - x1) < BOX_W:
        rows = [o for o in d.boxes.values() if y0 < o.y < y1]  # past every box of the rows it skips
        out = max(o.x + BOX_W for o in [*rows, s, t]) + 18
        return [(s.x + BOX_W, s.y + s.height / 2), (out, s.y + s.height / 2), (out, t.y + t.height / 2),
                (t.x + BOX_W, t.y + t.height / 2)]
    bend = (y1 - y0) / 2
    return [(x0, y0), (x0, y0 + bend), (x1, y1 - bend), (x1, y1)]


def drawings(compiled: Compiled, expand: Iterable[str] | str | None = None,
             network: str | None = None) -> list[Drawing]:
    has_networks(compiled)
    names = [network] if network else list(compiled.graphs)
    several = len(compiled.graphs) > 1
    return [layout(compiled.graphs[n], f"{compiled.spec.name} · {n}" if several else compiled.spec.name, expand)
            for n in names]


# ---- SVG ------------------------------------------------------------------------------------------------

STYLE = """
.udlc-net text { font: 11px "DejaVu Sans Mono", Menlo, Consolas, monospace; fill: #1d2430; }
.udlc-net .title { font: bold 14px sans-serif; }
.udlc-net rect.node { fill: #eef3fb; stroke: #5a7bb5; }
.udlc-net rect.input { fill: #fff6e0; stroke: #c49a2c; }
.udlc-net rect.output { fill: #e6f5ea; stroke: #3f8f55; stroke-width: 2; }
.udlc-net rect.block { fill: #e9e3f5; stroke: #7456a8; stroke-width: 1.5; }
.udlc-net rect.frame { fill: none; stroke: #9aa5b8; stroke-dasharray: 4 3; }
.udlc-net text.frame { fill: #6b7689; font-size: 10px; }
.udlc-net path { fill: none; stroke: #7d8797; stroke-width: 1.2; marker-end: url(#udlc-arrow); }
"""


def to_svg(parts: list[Drawing]) -> str:
    """One SVG, the networks side by side; self-contained (inline style, no fonts or scripts fetched)."""
    width, height = sum(p.width for p in parts), max(p.height for p in parts)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="udlc-net" width="{width:.0f}" height="{height:.0f}" '
           f'viewBox="0 0 {width:.0f} {height:.0f}" role="img">',
           f"<style>{STYLE}</style>",
           '<defs><marker id="udlc-arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
           'orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" style="fill:#7d8797;stroke:none"/>'
           "</marker></defs>"]
    left = 0.0
    for d in parts:
        out.append(f'<g transform="translate({left:.0f},0)">')
        out.append(f'<text class="title" x="{MARGIN}" y="{MARGIN + 4}">{escape(d.title)}</text>')
        for name, x, y, w, h, label in d.frames:
            out.append(f'<rect class="frame" x="{x:.0f}" y="{y:.0f}" width="{w:.0f}" height="{h:.0f}" rx="8"/>'
                       f'<text class="frame" x="{label:.0f}" y="{y + 10:.0f}">{escape(name)}</text>')
        for a, b in d.edges:
            (x0, y0), (x1, y1), (x2, y2), (x3, y3) = edge_path(d, a, b)
            out.append(f'<path d="M {x0:.1f} {y0:.1f} C {x1:.1f} {y1:.1f}, {x2:.1f} {y2:.1f}, {x3:.1f} {y3:.1f}"/>')
        for box in d.boxes.values():
            out.append(f'<g class="box"><title>{escape(box.tip)}</title>'
                       f'<rect class="{box.kind}" x="{box.x:.0f}" y="{box.y:.0f}" width="{BOX_W}" '
                       f'height="{box.height:.0f}" rx="5"/>')
            for i, line in enumerate(box.lines):
                weight = ' font-weight="bold"' if i == 0 else ""
                out.append(f'<text x="{box.x + PAD:.0f}" y="{box.y + PAD + (i + 1) * LINE_H - 3:.0f}"{weight}>'
                           f"{escape(line)}</text>")
            out.append("</g>")
        out.append("</g>")
        left += d.width
    out.append("</svg>")
    return "\n".join(out) + "\n"


# ---- PNG (matplotlib) -------------------------------------------------------------------------------------

COLORS = {"node": ("#eef3fb", "#5a7bb5"), "input": ("#fff6e0", "#c49a2c"), "output": ("#e6f5ea", "#3f8f55"),
          "block": ("#e9e3f5", "#7456a8")}


def to_png(parts: list[Drawing], path: Path, dpi: int = 100) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import patches
    from matplotlib import pyplot as plt
    from matplotlib.path import Path as CurvePath

    width, height = sum(p.width for p in parts), max(p.height for p in parts)
    fig = plt.figure(figsize=(width / dpi, height / dpi), dpi=dpi)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, width)
    ax.set_ylim(height, 0)
    ax.axis("off")
    size = 11 * 72 / dpi  # 11 px text, as the SVG's
    left = 0.0
    for d in parts:
        ax.text(left + MARGIN, MARGIN + 4, d.title, fontsize=14 * 72 / dpi, weight="bold", va="baseline")
        for name, x, y, w, h, label in d.frames:
            ax.add_patch(patches.FancyBboxPatch((left + x, y), w, h, boxstyle="round,pad=0,rounding_size=8",
                                                fill=False, edgecolor="#9aa5b8", linestyle=(0, (4, 3))))
            ax.text(left + label, y + 10, name, fontsize=10 * 72 / dpi, color="#6b7689", va="baseline")
        for a, b in d.edges:
            points = [(left + x, y) for x, y in edge_path(d, a, b)]
            curve = CurvePath(points, [CurvePath.MOVETO, CurvePath.CURVE4, CurvePath.CURVE4, CurvePath.CURVE4])
            ax.add_patch(patches.FancyArrowPatch(path=curve, arrowstyle="-|>", mutation_scale=10, color="#7d8797",
                                                 linewidth=1.2))
        for box in d.boxes.values():
            fill, edge = COLORS[box.kind]
            ax.add_patch(patches.FancyBboxPatch((left + box.x, box.y), BOX_W, box.height,
                                                boxstyle="round,pad=0,rounding_size=5", facecolor=fill,
                                                edgecolor=edge, linewidth=2 if box.kind == "output" else 1))
            for i, line in enumerate(box.lines):
                ax.text(left + box.x + PAD, box.y + PAD + (i + 1) * LINE_H - 3, line, fontsize=size,
                        family="monospace", weight="bold" if i == 0 else "normal", va="baseline")
        left += d.width
    fig.savefig(path, dpi=dpi)
    plt.close(fig)


def has_networks(compiled: Compiled) -> None:
    """A UdlcError for a model with no layers to draw (gradient_boosting), saying where its settings are shown."""
    from udlc.errors import UdlcError
    from udlc.spec.model import tree_model

    if tree_model(compiled.spec) is not None:
        raise UdlcError(f"{compiled.spec.name}: model gradient_boosting has no network to draw — `udlc summary "
                        "SPEC` lists its settings, and `udlc report RUN` a trained run's curves and per-class scores")


def check_request(compiled: Compiled, expand: Iterable[str] | str | None, network: str | None, out: Path) -> None:
    """A UdlcError, with what would do, for a network, a call to open or a file suffix the spec does not have."""
    from udlc.errors import UdlcError, did_you_mean, one_of

    has_networks(compiled)
    if network is not None and network not in compiled.graphs:
        hint = did_you_mean(network, compiled.graphs) or one_of(compiled.graphs)
        raise UdlcError(f"no network {network!r} in {compiled.spec.name} — {hint}")
    if out.suffix.lower() not in (".svg", ".png"):
        raise UdlcError(f"cannot draw into {out.name}: write a .svg or a .png file")
    calls = {call for g in compiled.graphs.values() for chain in groups_of(g).values() for call in chain}
    for name in () if expand in (None, "all") else expand:
        if name not in calls:
            hint = did_you_mean(name, calls) or (one_of(sorted(calls)) if calls else "this spec calls no blocks")
            raise UdlcError(f"--expand {name}: no block or stage call of that name — {hint}")


def write(compiled: Compiled, out: Path, expand: Iterable[str] | str | None = None, network: str | None = None) -> Path:
    """Draw the spec's networks into `out` (.svg or .png)."""
    parts = drawings(compiled, expand, network)
    if out.suffix.lower() == ".png":
        to_png(parts, out)
    else:
        out.write_text(to_svg(parts), encoding="utf-8")
    return out
