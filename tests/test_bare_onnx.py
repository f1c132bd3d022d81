"""A model file stands on its own: a program that has only onnxruntime and numpy (here, an interpreter in
which udlc and torch cannot be imported) loads model.onnx, builds the input matrix from raw values with
nothing but the file's metadata, runs it, and gets what `udlc predict` prints: the same classes and
probabilities for a classifier, the same values, in the targets' units, for a regression."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import TrainedRun
from tests.processes import child_env, describe, finish, udlc_argv
from tests.conftest import CSV_HEADER, csv_rows, write_csv

# What a user of onnxruntime writes, in any language: read the metadata, encode a CSV row by its feature
# columns (one-hot 'column=value' ones from the row's category, empty cells from fill_values), or take a
# numeric array as it is; feed the raw values; read the named outputs. No standardization anywhere.
BARE = r"""
import sys
sys.modules["udlc"] = sys.modules["torch"] = None  # importing either now fails: prove we need neither
import csv, json
import numpy as np
import onnxruntime as ort

model, inputs = sys.argv[1], sys.argv[2]
session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
meta = session.get_modelmeta().custom_metadata_map
columns, categories = json.loads(meta["feature_columns"]), json.loads(meta["categories"])
fill = json.loads(meta["fill_values"])
if inputs.endswith(".npy"):
    x = np.load(inputs)
elif columns is None:  # a built-in data set: numeric columns by position, under a header row
    x = np.loadtxt(inputs, delimiter=",", skiprows=1, ndmin=2)
else:
    def value(row, name):
        column, _, category = name.partition("=")
        if column in categories:
            return float(row[column] == category)
        return float(row[name]) if row[name] else fill[name]
    with open(inputs, newline="") as f:
        x = np.array([[value(row, name) for name in columns] for row in csv.DictReader(f)])
(name,) = json.loads(meta["input_names"])
shape = json.loads(meta["input_shapes"])[0]
outputs = json.loads(meta["outputs"])
values = session.run(outputs, {name: x.astype(np.float32).reshape([-1] + shape)})
blocked = []
for module in ("udlc", "torch"):
    try:
        __import__(module)
    except ImportError:
        blocked.append(module)
print(json.dumps({"blocked": blocked, "classes": json.loads(meta["classes"]),
                  **{k: v.tolist() for k, v in zip(outputs, values)}}))
"""


def raw_inputs(case: str, folder: Path) -> Path:
    """Raw values as a user has them: digit pixels 0..16 (npy), sine x values (CSV), the CSV's own rows
    with its target column and empty cells (CSV)."""
    if case == "digits":
        from sklearn.datasets import load_digits

        np.save(folder / "x.npy", load_digits().data[:12])  # float64, as scikit-learn gives them
        return folder / "x.npy"
    if case == "sine":
        (folder / "x.csv").write_text("x\n" + "\n".join(f"{v:g}" for v in np.linspace(-4, 4, 11)) + "\n")
        return folder / "x.csv"
    return write_csv(folder / "x.csv", CSV_HEADER, csv_rows()[:30])


@pytest.mark.parametrize("case", ["digits", "sine", "csv"])
def test_bare_onnxruntime_on_raw_inputs_matches_udlc_predict(case: str, request, tmp_path: Path) -> None:
    run: TrainedRun = request.getfixturevalue({"digits": "digits_run", "sine": "sine_run", "csv": "csv_run"}[case])
    model, inputs = run.run / "model.onnx", raw_inputs(case, tmp_path)
    argv = {"bare": [sys.executable, "-I", "-c", BARE, str(model), str(inputs)],  # -I: no cwd, no PYTHONPATH
            "udlc": udlc_argv("predict", model, inputs)}
    procs = {k: subprocess.Popen(a, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                 env=child_env()) for k, a in argv.items()}
    bare, cli = (finish(procs[k], argv[k]) for k in ("bare", "udlc"))
    assert bare.returncode == 0, describe(bare)
    assert cli.returncode == 0, describe(cli)
    got = json.loads(bare.stdout)
    assert got["blocked"] == ["udlc", "torch"]
    rows = list(csv.DictReader(io.StringIO(cli.stdout)))
    assert len(rows) == {"digits": 12, "sine": 11, "csv": 30}[case]
    if case == "sine":
        values = np.array(got["prediction"]).reshape(-1)
        np.testing.assert_allclose(values, [float(r["y"]) for r in rows], rtol=1e-5, atol=1e-6)
        return
    probs = np.array(got["probabilities"])
    classes = got["classes"]
    assert [classes[i] for i in probs.argmax(axis=1)] == [r["prediction"] for r in rows]
    np.testing.assert_allclose(probs, [[float(r[f"p_{c}"]) for c in classes] for r in rows], atol=1e-6)
    assert len({r["prediction"] for r in rows}) > 1  # rows told apart: matching them means something
