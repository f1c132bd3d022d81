"""The docs site (docs/, mkdocs.yml) and the README: every spec they show passes `udlc check` (or fails where its
page says), the generated reference is what tools/reference.py writes from the registries today, the README stays a
front door, and `mkdocs build --strict` passes (no broken link or anchor, no page left out of the navigation)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from udlc.errors import SpecErrors
from udlc.tasks import compile_text

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted((ROOT / "docs").rglob("*.md")) + [ROOT / "README.md"]
# A YAML block shown as a deliberate mistake is preceded by this comment, naming the line and column `check` gives.
MISTAKE = re.compile(r"<!-- udlc check fails at (\d+):(\d+) -->\s*$")
BLOCK = re.compile(r"^```yaml\n(.*?)^```", re.M | re.S)


def yaml_blocks() -> list[tuple[str, str, tuple[int, int] | None]]:
    """(where, text, the expected error's line and column or None) of every YAML block of the docs and README."""
    blocks = []
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for match in BLOCK.finditer(text):
            before = text[:match.start()].rstrip("\n").rsplit("\n", 1)[-1]
            mistake = MISTAKE.search(before)
            line = text[:match.start()].count("\n") + 1
            where = f"{page.relative_to(ROOT)}:{line}"
            blocks.append((where, match.group(1), (int(mistake[1]), int(mistake[2])) if mistake else None))
    return blocks


BLOCKS = yaml_blocks()
SPECS = [b for b in BLOCKS if "--8<--" not in b[1] and re.search(r"^udlc:", b[1], re.M)]


def test_the_docs_show_specs_and_a_deliberate_mistake() -> None:
    assert len(SPECS) >= 3 and any(expected for _, _, expected in SPECS)


@pytest.mark.parametrize("where,text,expected", SPECS, ids=[b[0] for b in SPECS])
def test_every_spec_in_the_docs_checks_or_fails_where_it_says(where: str, text: str, expected) -> None:
    try:
        compile_text(text, str(ROOT / "examples" / "docs-block.yaml"))
    except SpecErrors as errors:
        found = [(e.span.line, e.span.col) for e in errors.errors if e.span]
        assert expected is not None, f"{where}: {errors}"
        assert expected in found, f"{where}: expected an error at {expected}, got {errors}"
    else:
        assert expected is None, f"{where}: passes check, but the page says it fails at {expected}"


@pytest.mark.parametrize("where,text,expected", [b for b in BLOCKS if b not in SPECS and "--8<--" not in b[1]],
                         ids=[b[0] for b in BLOCKS if b not in SPECS and "--8<--" not in b[1]])
def test_every_other_yaml_block_is_yaml(where: str, text: str, expected) -> None:
    """The fragments (a layer list, a tune section, a KServe resource) are at least valid YAML."""
    assert yaml.safe_load(text) is not None, where


def test_included_files_exist() -> None:
    for page in PAGES:
        for name in re.findall(r'--8<-- "([^"]+)"', page.read_text(encoding="utf-8")):
            assert (ROOT / name).is_file(), f"{page.name} includes {name}, which is not there"


def generated(tool: str, *args: str, out: Path) -> Path:
    """What tools/<tool> writes, run in a fresh interpreter: the registries as a user's process has them (a test
    in this one may have registered a name of its own)."""
    subprocess.run([sys.executable, str(ROOT / "tools" / tool), *args, str(out)], check=True, capture_output=True)
    return out


def test_the_generated_reference_is_up_to_date(tmp_path: Path) -> None:
    fresh = generated("reference.py", out=tmp_path)
    for page in sorted(fresh.glob("*.md")):
        committed = (ROOT / "docs" / "reference" / page.name).read_text(encoding="utf-8")
        assert committed == page.read_text(encoding="utf-8"), \
            f"docs/reference/{page.name} is stale: run `make docs` (or python tools/reference.py)"


def test_the_network_drawings_are_up_to_date(tmp_path: Path) -> None:
    fresh = generated("figures.py", "--drawings", out=tmp_path)
    assert sorted(fresh.glob("*.svg"))
    for svg in sorted(fresh.glob("*.svg")):
        committed = (ROOT / "docs" / "images" / svg.name).read_text(encoding="utf-8")
        assert committed == svg.read_text(encoding="utf-8"), f"docs/images/{svg.name} is stale: run `make docs`"


def test_the_reference_names_every_registered_layer_and_command() -> None:
    from udlc.cli import main
    from udlc.layers.registry import REGISTRY

    layers = (ROOT / "docs" / "reference" / "layers.md").read_text(encoding="utf-8")
    missing = [name for name in REGISTRY if f"### `{name}`" not in layers]
    assert not missing, missing
    commands = (ROOT / "docs" / "reference" / "cli.md").read_text(encoding="utf-8")
    assert all(f"## `udlc {name}`" in commands for name in main.commands)


def test_the_readme_is_a_front_door() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 250
    for link in re.findall(r"\]\((docs/[^)#]+)", text):
        assert (ROOT / link).is_file(), f"the README links to {link}, which is not there"


def test_mkdocs_builds_the_site_strictly(tmp_path: Path) -> None:
    mkdocs = shutil.which("mkdocs", path=str(Path(sys.executable).parent))
    if mkdocs is None:
        pytest.skip("mkdocs is not installed (pip install 'udlc[docs]')")
    done = subprocess.run([mkdocs, "build", "--strict", "-q", "-d", str(tmp_path / "site")], cwd=ROOT,
                          env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "site" / "reference" / "layers.html").is_file()  # use_directory_urls: false
