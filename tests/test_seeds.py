"""`udlc train SPEC --seeds N`: N runs, train.seed seed … seed+N-1 on the same split, then each result's mean ± std
over them."""

from __future__ import annotations

import json
import re
import statistics

from tests.conftest import DIGITS_MLP, assert_clean_failure, write_spec
from tests.processes import describe


def test_seeds_trains_one_run_per_seed_and_prints_mean_and_std(tmp_path, invoke):
    spec = {k: v for k, v in DIGITS_MLP.items() if k != "export"} | {"seed": 5}
    write_spec(tmp_path / "spec.yaml", spec)
    result = invoke("train", "spec.yaml", "--seeds", "2", "--set", "train.epochs=1", "--out", "runs")
    assert result.returncode == 0, describe(result)
    runs = sorted((tmp_path / "runs" / "tiny-digits").iterdir())
    assert len(runs) == 2
    infos = [json.loads((r / "run.json").read_text()) for r in runs]
    assert sorted(i["train_seed"] for i in infos) == [5, 6] and [i["seed"] for i in infos] == [5, 5]
    assert all((r / "curves.png").is_file() for r in runs)  # each run as a plain `udlc train` leaves it
    out = result.stdout
    assert "over 2 seeds (mean ± std):" in out, out
    accuracies = [json.loads((r / "results.json").read_text())["test_accuracy"] for r in runs]
    line = next(ln for ln in out.splitlines() if ln.strip().startswith("test_accuracy "))
    mean, std = map(float, re.findall(r"(\d+\.\d+) ± (\d+\.\d+)", line)[0])
    assert mean == round(statistics.fmean(accuracies), 4) and std == round(statistics.stdev(accuracies), 4), line
    assert re.search(r"best val_loss\s+\d+\.\d+ ± \d+\.\d+", out), out


def test_seeds_with_resume_is_refused(tmp_path, invoke):
    err = assert_clean_failure(invoke("train", "--resume", tmp_path, "--seeds", "2"), code=1)
    assert "--seeds" in err


def test_one_seed_is_a_plain_train(tmp_path):
    from udlc.guide.seeds import seed_overrides

    assert seed_overrides(3, 1) == ["train.seed=3"]
    assert seed_overrides(3, 3) == ["train.seed=3", "train.seed=4", "train.seed=5"]
