"""The published schema, the examples, and the torch-free commands."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from udlc.spec.loader import load_file
from udlc.compiler.schema import build_schema
from udlc.tasks import TASKS

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))
# Every spec a clone has, the zoo and pictures included; the zoo's *.map.yaml are weight mappings, not specs.
SHIPPED = sorted(p for p in (ROOT / "examples").rglob("*.yaml") if not p.name.endswith(".map.yaml"))
MAPS = sorted((ROOT / "examples").rglob("*.map.yaml"))


def udlc(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "udlc", *args], capture_output=True, text=True, cwd=ROOT, **kw)


def test_committed_schema_matches_the_models() -> None:
    committed = json.loads((ROOT / "spec" / "udlc.schema.json").read_text())
    assert committed == build_schema(TASKS), "spec/udlc.schema.json is stale: run `make schema`"


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    """The committed schema, itself checked against the JSON Schema meta-schema, as a validator (built once: it
    takes about a second)."""
    schema = json.loads((ROOT / "spec" / "udlc.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def shipped_id(path: Path) -> str:
    return str(path.relative_to(ROOT / "examples"))


@pytest.mark.parametrize("example", SHIPPED, ids=shipped_id)
def test_every_shipped_spec_validates_against_the_schema(example: Path, validator) -> None:
    errors = list(validator.iter_errors(load_file(example).data))
    assert not errors, [e.message[:200] for e in errors]


@pytest.mark.parametrize("example", SHIPPED, ids=shipped_id)
def test_every_shipped_spec_starts_with_the_schema_comment(example: Path) -> None:
    first = example.read_text().splitlines()[0]
    up = "../" * len(example.relative_to(ROOT / "examples").parts)
    assert first == f"# yaml-language-server: $schema={up}spec/udlc.schema.json"


def test_every_shipped_spec_passes_check() -> None:
    """What a fresh clone has: every spec under examples/, in one call (the zoo's stand-in data included), and
    every weight mapping shipped beside the zoo's specs (checked as mappings)."""
    assert MAPS
    result = udlc("check", *(str(p.relative_to(ROOT)) for p in SHIPPED + MAPS))
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("OK ") == len(SHIPPED) + len(MAPS)
    assert result.stdout.count("(weight mapping: ") == len(MAPS)


@pytest.mark.parametrize("bad", [
    {"loss": "crossentropy"},
    {"optimizer": {"type": "adamw", "lr": -1}},
    {"model": {"input": [64], "layers": [{"linear": "ten"}]}},
    {"model": {"input": [64], "layers": [{"residual": {"layers": [], "projection": "yes"}}]}},
    {"model": {"input": [64], "layers": [{"linear": {"out_features": 10, "bogus": 1}}]}},
])
def test_schema_rejects_what_check_rejects(bad: dict) -> None:
    data = load_file(ROOT / "examples" / "digits-mlp.yaml").data
    data.update(bad)
    assert list(jsonschema.Draft202012Validator(build_schema(TASKS)).iter_errors(data))


def test_check_and_help_do_not_import_torch() -> None:
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from udlc.cli import main\n"
        "r = CliRunner().invoke(main, ['--help']); assert r.exit_code == 0, r.output\n"
        "r = CliRunner().invoke(main, ['check', *sys.argv[1:]]); assert r.exit_code == 0, r.output\n"
        "r = CliRunner().invoke(main, ['summary', sys.argv[1]]); assert r.exit_code == 0, r.output\n"
        "r = CliRunner().invoke(main, ['schema']); assert r.exit_code == 0, r.output\n"
        "for cmd in ['check', 'summary', 'train', 'export', 'predict', 'eval', 'schema']:\n"
        "    assert CliRunner().invoke(main, [cmd, '--help']).exit_code == 0\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    out = subprocess.run([sys.executable, "-c", code, *map(str, EXAMPLES)], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr


def test_check_reports_ok_per_file_and_json() -> None:
    out = udlc("check", *map(str, EXAMPLES))
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("OK ") == len(EXAMPLES)
    out = udlc("check", "--format", "json", str(EXAMPLES[0]))
    [result] = json.loads(out.stdout)
    assert result["ok"] is True and result["params"] > 0 and result["output_shapes"]


def test_check_error_exit_code_and_format(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text((ROOT / "examples" / "digits-mlp.yaml").read_text().replace("- linear: 64", "- lienar: 64"))
    out = udlc("check", str(bad))
    assert out.returncode == 2
    assert f"{bad}:17:7: model.layers[3].lienar: unknown layer 'lienar' — did you mean 'linear'?" in out.stderr
    assert "Traceback" not in out.stderr
    [result] = json.loads(udlc("check", "--format", "json", str(bad)).stdout)
    assert result["ok"] is False and result["errors"][0]["line"] == 17 and result["errors"][0]["col"] == 7


def test_summary_lists_layers_and_totals() -> None:
    out = udlc("summary", str(ROOT / "examples" / "digits-cnn.yaml"))
    assert out.returncode == 0, out.stderr
    assert "conv_bn_conv2d" in out.stdout and "(10,)" in out.stdout and "75,114" in out.stdout


def test_schema_command_prints_the_schema() -> None:
    out = udlc("schema")
    assert json.loads(out.stdout) == build_schema(TASKS)


def test_the_schema_lets_a_spec_that_extends_another_leave_out_what_its_base_gives(validator) -> None:
    partial = {"udlc": 1, "extends": "base.yaml", "model": {"params": {"depth": 1.1}}}
    assert not list(validator.iter_errors(partial))
    del partial["extends"]  # without a base, name, data and model.layers are missing
    missing = {e.message for e in validator.iter_errors(partial)}
    assert "'name' is a required property" in missing and "'data' is a required property" in missing

    def messages(errors):  # `model:` is a network or gradient_boosting: the missing layers are inside its anyOf
        for e in errors:
            yield e.message
            yield from messages(e.context)

    assert any("'layers' is a required property" in m for m in messages(validator.iter_errors(partial)))
