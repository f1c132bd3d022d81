"""`udlc train --init-from FILE --map M` sets the spec's init.from and init.map: a mistake in either is told at the
option the user typed (`--init-from:1:13`, the typed line under it), not at a `--set` they never wrote."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import DIGITS_MLP, assert_clean_failure, write_spec


def test_a_missing_weights_file_points_at_init_from(tmp_path: Path, invoke) -> None:
    spec = write_spec(tmp_path / "s.yaml", DIGITS_MLP)
    err = assert_clean_failure(invoke("train", spec, "--init-from", "nothing-here.safetensors"))
    first, shown, caret = err.splitlines()[:3]
    assert first.startswith("--init-from:1:13: init.from: no weights at "), err
    assert shown.endswith("| --init-from nothing-here.safetensors") and caret.index("^") == shown.index("nothing"), err


def test_an_unknown_mapping_points_at_map(tmp_path: Path, invoke) -> None:
    from safetensors.numpy import save_file
    import numpy as np

    save_file({"w": np.zeros((2, 2), np.float32)}, str(tmp_path / "w.safetensors"))
    spec = write_spec(tmp_path / "s.yaml", DIGITS_MLP)
    err = assert_clean_failure(invoke("train", spec, "--init-from", tmp_path / "w.safetensors", "--map", "nope"))
    assert err.startswith("--map:1:7: init.map: no mapping named 'nope'"), err
    assert "| --map nope" in err


def test_the_same_mistake_through_set_still_points_at_the_set(tmp_path: Path, invoke) -> None:
    spec = write_spec(tmp_path / "s.yaml", DIGITS_MLP)
    err = assert_clean_failure(invoke("train", spec, "--set", "init.from=nothing-here.safetensors"))
    assert err.startswith("--set:1:11: init.from: no weights at "), err
