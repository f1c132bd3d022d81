"""The broken-spec corpus: each file in tests/specs/bad/ holds one mistake, which must be reported once, at the
right line and column, in words that say what is wrong and (where there is one) how to fix it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import pytest

from udlc.tasks import compile_spec
from udlc.errors import SpecError, SpecErrors, UdlcError

ROOT = Path(__file__).resolve().parent.parent
BAD = Path(__file__).parent / "specs" / "bad"
GOOD = Path(__file__).parent / "specs" / "good"


class Case(NamedTuple):
    file: str
    line: int
    col: int
    message: str  # a substring of the error's message
    hint: str | None = None  # a substring of its hint


CASES = [
    # ---- loading: bytes, YAML, the guards ----
    Case("empty.yaml", 1, 1, "file is empty", "udlc: 1"),
    Case("comments_only.yaml", 1, 1, "file is empty", "udlc: 1"),
    Case("root_list.yaml", 1, 1, "a spec must be a mapping of sections", "udlc: 1"),
    Case("invalid_utf8.yaml", 2, 10, "byte 0xe9 is not valid UTF-8", "save the file as UTF-8"),
    Case("yaml_syntax_error.yaml", 9, 13, "invalid YAML: mapping values are not allowed"),
    Case("yaml_tab_indent.yaml", 5, 1, "invalid YAML: found character that cannot start any token",
         "indent with spaces, not tabs"),
    Case("yaml_python_tag.yaml", 7, 7, "YAML tag '!!python/object/apply:os.system' is not allowed", "plain data"),
    Case("yaml_merge_key.yaml", 10, 3, "merge keys (`<<`) are not supported"),
    Case("duplicate_yaml_key.yaml", 11, 3, "duplicate key 'epochs' (first at line 9)", "remove one of them"),
    Case("too_deep.yaml", 8, 70, "nesting is deeper than 64 levels"),
    Case("alias_bomb.yaml", 5, 36, "expands to more than 100000 values", "remove repeated aliases"),
    Case("int_too_long.yaml", 3, 7, "is too long to read", "a number of a sensible size"),
    Case("alias_self_reference.yaml", 8, 17, "a YAML alias refers to the node that contains it: '*net' is inside '&net'",
         "write the value out"),
    # ---- sections and their values ----
    Case("spec_version.yaml", 1, 7, "must be one of 1 (got 2)"),
    Case("invalid_name.yaml", 2, 7, "'my network' is not a valid name", "letters, digits and underscores"),
    Case("top_level_key_typo.yaml", 8, 1, "unknown key 'optimiser'", "did you mean 'optimizer'?"),
    Case("missing_loss.yaml", 1, 1, "task supervised needs a `loss`", "e.g. `loss: cross_entropy`"),
    Case("missing_data_source.yaml", 4, 3, "missing required key 'source'", "add `source: ...`"),
    Case("missing_model_input.yaml", 5, 3, "give either `input: [shape]` or `inputs: {name: [shape], ...}`"),
    Case("string_for_int.yaml", 9, 11, "must be an integer (got 'ten')"),
    Case("unknown_data_source.yaml", 4, 11, "unknown data source 'digitz'", "did you mean 'digits'?"),
    Case("missing_data_file.yaml", 4, 11, "data file not found", "relative to the spec file"),
    Case("split_sum.yaml", 5, 10, "sum to 1, got [0.8, 0.2, 0.1]"),
    Case("unknown_augmentation.yaml", 5, 14, "unknown augmentation 'rotat'", "did you mean 'rotate'?"),
    Case("unknown_loss.yaml", 7, 7, "unknown loss 'cross_entropi'", "did you mean 'cross_entropy'?"),
    Case("loss_arg_typo.yaml", 7, 29, "unknown key 'label_smothing'", "did you mean 'label_smoothing'?"),
    Case("loss_arg_out_of_range.yaml", 7, 41, "must be < 1.0 (got 1.5)"),
    Case("unknown_metric.yaml", 8, 21, "unknown metric 'acuracy'", "did you mean 'accuracy'?"),
    Case("unknown_optimizer.yaml", 8, 19, "unknown optimizer 'adamww'", "did you mean 'adamw'?"),
    Case("unknown_schedule.yaml", 9, 9, "unknown schedule 'cosin'", "did you mean 'cosine'?"),
    Case("opset_too_low.yaml", 8, 24, "must be >= 18 (got 17)"),
    # ---- layer entries ----
    Case("layer_type_typo.yaml", 8, 7, "unknown layer 'lienar'", "did you mean 'linear'?"),
    Case("layer_arg_typo.yaml", 7, 33, "unknown key 'kernal_size'", "did you mean 'kernel_size'?"),
    Case("layer_two_keys.yaml", 7, 7, "a layer is a one-key mapping or a bare name", "`linear: 10`"),
    Case("misplaced_id.yaml", 7, 7, "a layer is a one-key mapping or a bare name", "put `id` inside the layer's"),
    Case("main_arg_not_taken.yaml", 8, 13, "'relu' takes no single value", "write `relu` alone"),
    Case("kernel_size_negative.yaml", 7, 46, "must be > 0 (got -1)"),
    Case("kernel_size_zero.yaml", 9, 22, "must be > 0 (got 0)"),
    Case("unknown_init.yaml", 7, 40, "unknown init 'kaimin'", "did you mean 'kaiming'?"),
    Case("reserved_id.yaml", 7, 38, "id 'forward' is reserved", "choose another name"),
    Case("duplicate_id.yaml", 9, 38, "id 'h' is already used", "ids must be unique"),
    Case("unknown_from.yaml", 9, 19, "unknown node 'hiden'", "did you mean 'hidden'?"),
    Case("unknown_output.yaml", 8, 13, "unknown output 'haed'", "did you mean 'head'?"),
    Case("residual_empty.yaml", 7, 7, "a residual needs at least one layer"),
    Case("block_unknown_reference.yaml", 10, 34, "unknown parameter '$chanels'", "did you mean 'channels'"),
    Case("conv2d_kernel_size_negative.yaml", 7, 46, "must be > 0 (got -1)"),
    Case("residual_shape_change.yaml", 7, 7, "turns (1, 8, 8) into (8, 8, 8)", "projection: true"),
    Case("parallel_concat_mismatch.yaml", 7, 7, "gets (4, 8, 8) and (4, 6, 6)"),
    Case("parallel_add_mismatch.yaml", 7, 7, "gets (32,) and (16,)", "concat"),
    Case("yaml_unclosed_brace.yaml", 4, 6, "(while parsing a flow mapping at line 3)"),
    Case("parallel_unknown_merge.yaml", 9, 16, "unknown merge 'mul'", "concat or add"),
    # ---- shapes ----
    Case("linear_after_conv.yaml", 9, 7, "expects input (..., features) but gets (4, 8, 8)", "add 'flatten'"),
    Case("conv2d_flat_input.yaml", 7, 7, "expects input (channels, height, width) but gets (64,)"),
    Case("groupnorm_groups.yaml", 8, 7, "num_groups 4 does not divide the 6 channels of the input (6, 8, 8)"),
    # ---- blocks ----
    Case("unknown_block.yaml", 13, 7, "unknown layer 'conv_nb'", "did you mean 'conv_bn'?"),
    Case("block_param_typo.yaml", 13, 17, "block 'conv_bn' has no parameter 'chanels'", "did you mean 'channels'"),
    Case("block_param_missing.yaml", 14, 7, "block 'conv_bn' needs parameter 'ch'", "add `ch: ...`"),
    Case("block_param_type.yaml", 13, 21, "parameter 'ch' must be an integer (got 'wide')"),
    Case("block_recursive.yaml", 14, 11, "block 'a' uses itself (a → b → a)", "may not call itself"),
    # used at the top level, inside a parallel branch and inside another block (used twice): said once
    Case("block_error_used_thrice.yaml", 9, 73, "must be > 0 (got 0) (in block 'branch' used at lines 12, 14, 16)"),
]

# Not one mistake but several: see test_every_mistake_in_a_file_is_reported.
SEVERAL = "several_mistakes.yaml"


def errors_of(path: Path) -> list[SpecError]:
    """The errors compiling `path` raises: a SpecErrors' list, or a lone SpecError as a list of one."""
    try:
        compile_spec(path)
    except UdlcError as e:
        return e.errors if isinstance(e, SpecErrors) else [e]
    pytest.fail(f"{path.name} compiled without errors")


def test_the_table_covers_the_corpus() -> None:
    assert sorted(p.name for p in BAD.iterdir()) == sorted([c.file for c in CASES] + [SEVERAL])


@pytest.mark.parametrize("case", CASES, ids=[c.file.removesuffix(".yaml") for c in CASES])
def test_bad_spec(case: Case) -> None:
    path = BAD / case.file
    errors = errors_of(path)
    assert len(errors) == 1, "one mistake, one error; got:\n" + "\n".join(e.headline() for e in errors)
    err = errors[0]
    assert isinstance(err, SpecError) and err.span is not None
    assert (err.span.file, err.span.line, err.span.col) == (str(path), case.line, case.col)
    assert case.message in err.message
    if case.hint:
        assert case.hint in (err.hint or "")


def test_every_mistake_in_a_file_is_reported() -> None:
    errors = errors_of(BAD / SEVERAL)
    found = [(e.span.line, e.span.col, e.path) for e in errors]
    assert found == [
        (5, 10, "data.split"),
        (10, 7, "model.layers[1].rleu"),
        (11, 16, "model.layers[2].dropout"),
        (13, 7, "loss"),
        (15, 29, "optimizer.lr"),
        (16, 21, "train.batchsize"),
    ]


def test_lr_in_scientific_notation_is_a_number() -> None:
    spec = compile_spec(GOOD / "lr_scientific.yaml").spec
    assert spec.optimizer.lr == pytest.approx(3e-3)
    assert spec.optimizer.weight_decay == pytest.approx(1e-2)
    assert spec.schedule.min_lr == pytest.approx(1e-5)


# ---- the CLI ------------------------------------------------------------------------------------


def udlc_check(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "udlc", "check", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)


def test_check_prints_each_error_with_its_line_and_a_caret() -> None:
    files = {"unknown_loss.yaml": (7, 7), "duplicate_yaml_key.yaml": (11, 3)}
    result = udlc_check(*(f"tests/specs/bad/{name}" for name in files))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    for name, (line, col) in files.items():
        i = next(i for i, text in enumerate(lines) if text.startswith(f"tests/specs/bad/{name}:{line}:{col}: "))
        gutter = f"{line:>5} | "
        assert lines[i + 1] == gutter + (BAD / name).read_text().splitlines()[line - 1]
        assert lines[i + 2] == " " * (len(gutter) - 2) + "| " + " " * (col - 1) + "^"


def test_check_json_lists_the_errors() -> None:
    result = udlc_check("--format", "json", "tests/specs/bad/unknown_loss.yaml", "tests/specs/bad/invalid_utf8.yaml")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    first, second = json.loads(result.stdout)
    assert first == {
        "file": "tests/specs/bad/unknown_loss.yaml",
        "ok": False,
        "errors": [{"file": "tests/specs/bad/unknown_loss.yaml", "line": 7, "col": 7, "path": "loss",
                    "message": "unknown loss 'cross_entropi'", "hint": "did you mean 'cross_entropy'?"}],
    }
    assert second["ok"] is False
    assert [(e["line"], e["col"]) for e in second["errors"]] == [(2, 10)]
