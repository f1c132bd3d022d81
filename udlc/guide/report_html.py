"""The HTML of `udlc report`: one page, no external file (styles inline, the curves an inline SVG); every
text taken from the run's files is escaped."""

from __future__ import annotations

from html import escape
from typing import Any

from udlc.tasks.served import task_and_target

EPOCH_ROWS = 20  # the epoch table shows the last this many epochs

STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1100px; padding: 0 1em; color: #222; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: 0.2em; margin-top: 1.8em; }
table { border-collapse: collapse; margin: 0.6em 0; } td, th { border: 1px solid #ddd; padding: 2px 8px; }
th { background: #f3f3f3; text-align: left; } td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.total td { font-weight: bold; background: #fafafa; }
pre { background: #f7f7f7; border: 1px solid #e3e3e3; padding: 0.6em; overflow-x: auto; font-size: 12.5px; }
pre span.ln { color: #999; user-select: none; } .note { color: #666; } .verdict { font-size: 1.2em; font-weight: bold; }
.verdict-converged { color: #1a7f37; } .verdict-overfitting, .verdict-unstable, .verdict-not-learning { color: #c62828; }
.verdict-underfitting, .verdict-still-improving, .verdict-too-short { color: #b26a00; }
table.confusion td.diag { background: #e3f4e6; font-weight: bold; } .svg svg { max-width: 100%; height: auto; }
"""


def e(value: Any) -> str:
    return escape(str(value), quote=True)


def number(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return e(value if value is not None else "—")


def table(head: list[str], rows: list[list[Any]], numeric: set[int] = frozenset(), css: str = "",
          total: list[Any] | None = None) -> str:
    """A table; columns in `numeric` align right. Cells are escaped unless given as Markup (a `str` subclass)."""
    def cell(i: int, v: Any, tag: str = "td") -> str:
        align = ' class="num"' if i in numeric else ""
        return f"<{tag}{align}>{v if isinstance(v, Markup) else number(v)}</{tag}>"

    out = [f'<table class="{e(css)}">' if css else "<table>"]
    if any(head):
        out.append("<tr>" + "".join(cell(i, h, "th") for i, h in enumerate(head)) + "</tr>")
    out += ["<tr>" + "".join(cell(i, v) for i, v in enumerate(r)) + "</tr>" for r in rows]
    if total is not None:
        out.append('<tr class="total">' + "".join(cell(i, v) for i, v in enumerate(total)) + "</tr>")
    return "\n".join(out + ["</table>"])


class Markup(str):
    """HTML already escaped or built here."""


def render(report: Any) -> str:
    info = report.info
    name = info.get("name") or report.run.path.parent.name
    parts = [f"<h1>{e(name)}</h1>", f"<p class=\"note\">run {e(report.run.path)}</p>",
             overview(report), diagnosis(report), results(report), curves(report), classification(report),
             networks(report), epochs(report), spec(report), environment(report)]
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>udlc report · {e(name)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
            + "\n".join(parts) + "\n</body>\n</html>\n")


def overview(report: Any) -> str:
    info = report.info
    epochs = info.get("epochs_done")
    if epochs is None:
        epochs = len(report.rows)
    task, target = task_and_target(info)  # a run from before `target` wrote its target kind in `task`
    fields = [("status", info.get("status")), ("task", task), ("target", target), ("started", info.get("started")),
              ("ended", info.get("ended")), ("seconds", info.get("seconds")), ("epochs done", epochs),
              ("best epoch", info.get("best_epoch")), ("seed", info.get("seed")), ("spec file", info.get("spec_file")),
              ("initialized from", info.get("init_from"))]
    rows = [[Markup(f"<b>{e(k)}</b>"), v] for k, v in fields if v is not None]
    note = "" if report.rows else "<p class=\"note\">No epoch has ended yet: this run has no curves or epochs.</p>"
    return "<h2 id=\"run\">Run</h2>\n" + table(["", ""], rows) + note


def diagnosis(report: Any) -> str:
    d = report.diagnosis
    if d is None:
        return f"<h2 id=\"diagnosis\">Diagnosis</h2>\n<p class=\"note\">No diagnosis: {e(report.diagnosis_source)}.</p>"
    verdict = str(d.get("verdict", "?"))
    return ("<h2 id=\"diagnosis\">Diagnosis</h2>\n"
            f"<p class=\"verdict verdict-{e(verdict.replace(' ', '-'))}\">{e(verdict)}</p>\n"
            f"<p><b>evidence:</b> {e(d.get('evidence', ''))}</p>\n<p><b>advice:</b> {e(d.get('advice', ''))}</p>\n"
            f"<p class=\"note\">from {e(report.diagnosis_source)}</p>")


def results(report: Any) -> str:
    if report.results is None:
        return ("<h2 id=\"results\">Test results</h2>\n<p class=\"note\">No results.json: the run did not finish "
                "(or has no test split); `udlc eval RUN` computes them from the final checkpoint.</p>")
    rows = [[k, v] for k, v in report.results.items()]
    return "<h2 id=\"results\">Test results</h2>\n" + table(["metric", "value"], rows, {1}, "results")


def curves(report: Any) -> str:
    body = (f"<div class=\"svg\">{report.curves_svg}</div>" if report.curves_svg
            else f"<p class=\"note\">No curves: {e(report.curves_note)}</p>")
    return "<h2 id=\"curves\">Curves</h2>\n" + body


def classification(report: Any) -> str:
    c = report.classification
    head = "<h2 id=\"classes\">Classes on the test split</h2>\n"
    if c is None:
        return head + f"<p class=\"note\">No confusion matrix: {e(report.classification_note)}.</p>"
    n = len(c.classes)
    rows = []
    for i, cls in enumerate(c.classes):
        cells = [Markup(f"<td class=\"num{' diag' if i == j else ''}\">{c.matrix[i][j]:,}</td>") for j in range(n)]
        rows.append(f"<tr><th>{e(cls)}</th>{''.join(cells)}<td class=\"num\">{sum(c.matrix[i]):,}</td></tr>")
    columns = [sum(c.matrix[i][j] for i in range(n)) for j in range(n)]
    matrix = ("<table class=\"confusion\">\n<tr><th>true \\ predicted</th>"
              + "".join(f"<th class=\"num\">{e(cls)}</th>" for cls in c.classes) + "<th class=\"num\">total</th></tr>\n"
              + "\n".join(rows) + "\n<tr class=\"total\"><td>total</td>"
              + "".join(f"<td class=\"num\">{v:,}</td>" for v in columns) + f"<td class=\"num\">{c.total:,}</td></tr>"
              + "\n</table>")
    scores = table(["class", "precision", "recall", "F1", "support"],
                   [[cls, round(c.precision[i], 4), round(c.recall[i], 4), round(c.f1[i], 4), c.support[i]]
                    for i, cls in enumerate(c.classes)], {1, 2, 3, 4}, "per-class")
    return (head + f"<p>{c.total:,} test samples, predicted with the {e(c.checkpoint)} checkpoint; accuracy "
            f"{c.accuracy:.4f}. Rows are the true classes, columns the predicted ones.</p>\n" + matrix
            + "\n<h3>Per class</h3>\n" + scores)


def networks(report: Any) -> str:
    head = "<h2 id=\"summary\">Networks</h2>\n"
    if not report.networks:
        return head + f"<pre>{e(report.networks_note)}</pre>"
    parts = [head]
    if report.drawing_svg:
        parts.append(f"<div class=\"svg drawing\">{report.drawing_svg}</div>")
    if report.drawing_open_svg:
        parts.append("<details><summary>Every block open</summary>"
                     f"<div class=\"svg drawing\">{report.drawing_open_svg}</div></details>")
    for t in report.networks:
        rows = [[r["layer"], r["type"], r["inputs"], r["shape"], r["params"], r["flops"],
                 Markup(f"<a href=\"#L{r['line']}\">{r['line']}</a>") if isinstance(r["line"], int) else r["line"]]
                for r in t.rows]
        parts.append(f"<h3>{e(t.name)}</h3>\n" + table(
            ["layer", "type", "input from", "output shape", "params", "FLOPs", "spec line"], rows, {4, 5},
            "summary", total=["total", "", "", t.output, t.total_params, t.total_flops, ""]))
        parts.append(f"<p class=\"note\">{t.total_params:,} parameters ({human(t.total_params * 4)}B as float32) · "
                     f"{human(t.total_flops)} FLOPs per sample{' · ' + e(t.note) if t.note else ''}</p>")
    return "\n".join(parts)


def epochs(report: Any) -> str:
    rows = report.rows
    head = "<h2 id=\"epochs\">Epochs</h2>\n"
    if not rows:
        return head + "<p class=\"note\">No epoch has ended yet.</p>"
    shown = rows[-EPOCH_ROWS:]
    note = f"<p class=\"note\">the last {len(shown)} of {len(rows)} epochs</p>" if len(shown) < len(rows) else ""
    names = list(rows[0])
    return head + note + table(names, [[as_number(r.get(k)) for k in names] for r in shown], set(range(len(names))),
                               "epochs")


def as_number(text: str | None) -> Any:
    """A metrics.csv cell as the number it holds (so it prints as other numbers do), else the text."""
    if text in (None, ""):
        return ""
    try:
        value = float(text)
    except ValueError:
        return text
    return int(value) if value.is_integer() and "." not in text and "e" not in text.lower() else value


def spec(report: Any) -> str:
    lines = report.spec_text.splitlines()
    width = len(str(len(lines)))
    body = "\n".join(f'<span class="ln" id="L{i}">{i:>{width}}  </span>{e(line)}' for i, line in enumerate(lines, 1))
    return f"<h2 id=\"spec\">Spec as trained (spec.yaml)</h2>\n<pre class=\"spec\">{body}</pre>"


def environment(report: Any) -> str:
    parts = ["<h2 id=\"environment\">Environment</h2>"]
    for label, values in report.environment.items():
        parts.append(f"<h3>{e(label)}</h3>\n" + table(["", ""], [[Markup(f"<b>{e(k)}</b>"), v]
                                                                for k, v in values.items()]))
    return "\n".join(parts)



def human(n: int) -> str:
    for unit, size in (("G", 10**9), ("M", 10**6), ("K", 10**3)):
        if n >= size:
            return f"{n / size:.2f}{unit}"
    return str(n)
