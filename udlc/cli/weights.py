"""`udlc import`: a Hugging Face model folder as a udlc spec and its weight map (udlc.weights.hf_import). Reads
config.json and the weight files' headers only: json and the standard library, no torch; argument parsing only, as
in udlc.cli."""

from __future__ import annotations

from pathlib import Path

import click

from udlc.cli import main
from udlc.errors import UdlcError


@main.command(name="import")
@click.argument("folder", type=click.Path())
@click.option("-o", "--output", type=click.Path(dir_okay=False), required=True,
              help="The spec to write (its weight map goes beside it: SPEC.map.yaml).")
@click.option("--overwrite", is_flag=True, help="Replace the spec and map if they exist.")
def import_(folder: str, output: str, overwrite: bool) -> None:
    """Write a udlc spec for the Hugging Face model in FOLDER (GPT-2, BERT, T5, ViT, LLaMA, Mistral, Qwen2) and
    the map of its tensor names, so that the spec starts from FOLDER's weights (`init:`). Nothing is downloaded:
    FOLDER holds config.json and the weights, as transformers' save_pretrained writes them."""
    from udlc.weights.hf_import import import_folder, map_path

    spec = Path(output)
    mapping = map_path(spec)
    if spec.suffix not in (".yaml", ".yml"):
        raise UdlcError(f"-o {spec}: a spec is a .yaml file — e.g. -o {spec.with_suffix('.yaml').name}")
    taken = [str(p) for p in (spec, mapping) if p.exists()]
    if taken and not overwrite:
        raise UdlcError(f"{' and '.join(taken)} already exist{'s' if len(taken) == 1 else ''} — give --overwrite "
                        "to replace, or another -o")
    imported = import_folder(Path(folder), spec)
    spec.parent.mkdir(parents=True, exist_ok=True)
    spec.write_text(imported.spec)
    mapping.write_text(imported.map)
    for note in imported.notes:
        click.echo(f"note: {note}", err=True)
    click.echo(f"{imported.architecture}: wrote {spec} and {mapping}")
    click.echo(f"next: udlc check {spec}; udlc export {spec} -o model.onnx")
