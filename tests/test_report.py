"""`udlc report RUN`: one self-contained HTML page about a run. The page is read back as a user would see it
(its tables parsed from the HTML), and the classifier's confusion matrix is checked against what training
wrote: its total is the test split's size and its diagonal share is results.json's test accuracy."""

from __future__ import annotations

import html
import json
import re
import shutil
from pathlib import Path

import pytest

from tests.conftest import assert_clean_failure, edited, train_here, write_spec
from tests.processes import describe


def tables(page: str, css: str) -> list[list[list[str]]]:
    """Every <table class=css> of the page: rows of cell texts (tags stripped, entities decoded)."""
    found = []
    for body in re.findall(rf'<table class="{css}">(.*?)</table>', page, re.S):
        rows = [[html.unescape(re.sub(r"<[^>]+>", "", c)).strip()
                 for c in re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", row, re.S)]
                for row in re.findall(r"<tr[^>]*>(.*?)</tr>", body, re.S)]
        found.append(rows)
    return found


def confusion(page: str) -> list[list[int]]:
    """The confusion matrix's counts (rows true, columns predicted) without the totals."""
    (rows,) = tables(page, "confusion")
    return [[int(c.replace(",", "")) for c in row[1:-1]] for row in rows[1:-1]]


def self_contained(page: str) -> None:
    """No file, style sheet, script or image from elsewhere: links and url() point inside the page."""
    for bad in ("<link", "<script", "<img", "<iframe", "src=", "@import"):
        assert bad not in page, f"the page refers outside itself: {bad!r}"
    targets = re.findall(r"""href=["']([^"']*)""", page) + re.findall(r"url\(([^)]*)\)", page)
    assert targets and all(t.startswith("#") for t in targets), [t for t in targets if not t.startswith("#")]
    assert page.count("<svg") == 2  # inline: the curves, and the networks drawn


@pytest.fixture(scope="module")
def digits_page(digits_run, tmp_path_factory) -> str:
    from udlc.guide.report import write_report

    out = write_report(digits_run.run, tmp_path_factory.mktemp("report") / "digits.html")
    assert not (digits_run.run / "report.html").exists()  # -o was honoured; the shared run is left alone
    return out.read_text(encoding="utf-8")


def test_digits_page_holds_the_run(digits_run, digits_page):
    from udlc.runs import RunFolder

    page = digits_page
    self_contained(page)
    info, results = digits_run.read_json("run.json"), digits_run.read_json("results.json")
    assert f"<h1>{info['name']}</h1>" in page
    assert f"<p class=\"verdict verdict-{info['diagnosis']['verdict'].replace(' ', '-')}\">" in page
    assert html.escape(info["diagnosis"]["advice"]) in page
    (shown,) = tables(page, "results")
    shown = dict(shown[1:])
    for key in ("test_loss", "test_accuracy"):
        assert float(shown[key]) == pytest.approx(results[key], rel=1e-5)
    # every node of every network, with its type and parameters, and its line in the spec shown below
    (summary,) = tables(page, "summary")
    graph = RunFolder.open(digits_run.run).compiled().graphs["model"]
    by_name = {row[0]: row for row in summary[1:]}
    for node in graph.nodes.values():
        row = by_name[node.name]
        assert row[1] == node.op and int(row[4].replace(",", "")) == node.params
        assert f'id="L{node.span.line}"' in page and row[6] == str(node.span.line)
    assert by_name["total"][4] == f"{graph.total_params:,}"
    # the network drawn (udlc draw), its boxes holding every parameter
    drawn = page.split('<div class="svg drawing">', 1)[1].split("</svg>", 1)[0]
    assert sum(int(n.replace(",", "")) for n in re.findall(r">([\d,]+) params</text>", drawn)) == graph.total_params
    # the epoch table has every epoch of metrics.csv; the spec is shown as trained
    (epochs,) = tables(page, "epochs")
    assert len(epochs) - 1 == info["epochs_done"] == 2
    assert "name: tiny-digits" in page
    assert "this report made on" in page and info["versions"]["torch"] in page


def test_digits_confusion_matrix_agrees_with_results(digits_run, digits_page):
    from udlc.runs import RunFolder

    results, classes = digits_run.read_json("results.json"), digits_run.read_json("run.json")["classes"]
    matrix = confusion(digits_page)
    assert len(matrix) == len(classes) == 10 and all(len(r) == 10 for r in matrix)
    compiled = RunFolder.open(digits_run.run).compiled()
    n_test = len(compiled.task.load_data(compiled).x_test)
    total = sum(map(sum, matrix))
    assert total == n_test
    assert sum(matrix[i][i] for i in range(10)) / total == pytest.approx(results["test_accuracy"], abs=1e-9)
    (scores,) = tables(digits_page, "per-class")
    assert [row[0] for row in scores[1:]] == classes
    for i, row in enumerate(scores[1:]):
        recall, support = float(row[2]), int(row[4])
        assert support == sum(matrix[i])
        assert recall == pytest.approx(matrix[i][i] / support, abs=1e-4)
        precision = matrix[i][i] / max(sum(r[i] for r in matrix), 1)
        assert float(row[1]) == pytest.approx(precision, abs=1e-4)


def test_regression_run_has_no_confusion_matrix(sine_run, tmp_path):
    from udlc.guide.report import build_report, write_report

    report = build_report(sine_run.run)
    assert report.classification is None and "not a classifier" in report.classification_note
    page = write_report(sine_run.run, tmp_path / "sine.html").read_text()
    self_contained(page)
    assert '<table class="confusion">' not in page and "No confusion matrix: not a classifier" in page
    assert report.diagnosis is not None and f">{html.escape(report.diagnosis['verdict'])}<" in page
    assert f"{sine_run.read_json('results.json')['test_mae']:.6g}" in page


def test_a_run_with_no_epoch_yet_still_gets_a_report(digits_run, tmp_path):
    """As a run folder looks right after `udlc train` created it: run.json and spec.yaml, nothing else."""
    from udlc.guide.report import write_report

    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(digits_run.run / "spec.yaml", run)
    info = digits_run.read_json("run.json")
    for key in ("diagnosis", "epochs_done", "best_epoch", "ended", "seconds"):
        info.pop(key, None)
    (run / "run.json").write_text(json.dumps({**info, "status": "running"}))
    page = write_report(run).read_text()  # the default place: RUN/report.html
    assert (run / "report.html").is_file()
    assert "No epoch has ended yet" in page and "No results.json" in page
    assert "no checkpoint yet" in page and '<table class="confusion">' not in page
    assert page.count("<svg") == page.count("class=\"udlc-net\"") == 1 and "<link" not in page  # no curves yet
    assert '<table class="summary">' in page  # the networks are known from the spec alone


def test_binary_classifier_counts_a_positive_logit_as_class_one(tmp_path, one_torch_thread):
    """One sigmoid output (bce): the predicted class is logit > 0; the matrix agrees with test_accuracy."""
    from tests.conftest import CSV_HEADER, CSV_SPEC, csv_rows, write_csv
    from udlc.guide.report import write_report

    write_csv(tmp_path / "data.csv", CSV_HEADER, csv_rows())
    spec = write_spec(tmp_path / "bce.yaml", edited(CSV_SPEC, {
        "loss": "bce", "metrics": ["accuracy"], "model.layers": [{"linear": 8}, "relu", {"linear": 1}],
        "train.epochs": 3}))
    run = train_here(spec, tmp_path / "runs")
    page = write_report(run, tmp_path / "bce.html").read_text()
    matrix = confusion(page)
    classes = json.loads((run / "run.json").read_text())["classes"]
    assert len(matrix) == 2 and [r[0] for r in tables(page, "per-class")[0][1:]] == classes
    accuracy = json.loads((run / "results.json").read_text())["test_accuracy"]
    assert (matrix[0][0] + matrix[1][1]) / sum(map(sum, matrix)) == pytest.approx(accuracy, abs=1e-9)


def test_text_classifier_gets_a_confusion_matrix(tmp_path, one_torch_thread):
    """task sequence_classification: padded token batches with their mask; class names from run.json."""
    from tests.test_sequence_classification import write
    from udlc.guide.report import write_report

    run = train_here(write(tmp_path, **{"train.epochs": 2}), tmp_path / "runs")
    page = write_report(run, tmp_path / "text.html").read_text()
    matrix = confusion(page)
    assert [r[0] for r in tables(page, "per-class")[0][1:]] == ["bad", "good"]
    assert sum(map(sum, matrix)) == 40  # 400 texts, a tenth for the test split
    accuracy = json.loads((run / "results.json").read_text())["test_accuracy"]
    assert (matrix[0][0] + matrix[1][1]) / 40 == pytest.approx(accuracy, abs=1e-9)


def test_cli_writes_the_page_and_prints_its_path(digits_run, invoke, tmp_path):
    result = invoke("report", digits_run.run, "-o", "out/page.html")
    assert result.returncode == 0, describe(result)
    assert result.stdout.strip().splitlines()[-1] == str(Path("out/page.html"))
    assert '<table class="confusion">' in (tmp_path / "out" / "page.html").read_text()


def test_cli_refuses_a_folder_that_is_not_a_run(invoke, tmp_path):
    (tmp_path / "empty").mkdir()
    assert "not a udlc run folder" in assert_clean_failure(invoke("report", "empty"))
    assert "no run folder" in assert_clean_failure(invoke("report", "missing"))


def test_output_must_be_html(digits_run, tmp_path):
    from udlc.errors import UdlcError
    from udlc.guide.report import write_report

    with pytest.raises(UdlcError, match=r"\.html"):
        write_report(digits_run.run, tmp_path / "page.png")


def test_every_verdict_has_its_colour() -> None:
    from udlc.guide.report_html import STYLE
    from udlc.runs.diagnosis import VERDICTS

    for verdict in VERDICTS:
        assert f".verdict-{verdict.replace(' ', '-')}" in STYLE, verdict
