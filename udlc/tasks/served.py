"""What an exported file serves: one entry per served kind, plain data without torch or numpy.

A task says which network outputs it serves and, for each, its kind (`Served.kind`). The kind is what the
file answers — class probabilities, values, a decoder's samples, a token generator — and everything that
follows from it is here: the ONNX file's output names, the metadata keys it writes beside the common ones,
the `udlc` command that reads it and the HTTP route a server mounts it on. Two tables keyed by these names
hold the code, each in its own layer: the exporter's wrappers (udlc.exporter.wrappers, torch) and the
runtime's readers (udlc.runtime.readers, onnxruntime and numpy); each checks at import that it covers every
kind here exactly once.

The ONNX metadata names the kind (`served`); files exported before it did are read through
`served_kind`, the one place that knows the old metadata. Likewise run.json and the metadata record the
task's name in `task` and the target kind (classification or regression) in `target`; before that, a
supervised run wrote the target kind in `task`, which `task_and_target` reads.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from udlc.errors import UdlcError

TARGETS = ("classification", "regression")  # what a supervised task's targets are
TAKES = ("samples", "texts", "graph", "prompt", "draws")  # what a kind's HTTP route reads (ServedKind.takes)


@dataclass(frozen=True)
class ServedKind:
    name: str
    description: str  # what the file answers, as a sentence's object: "class probabilities for samples"
    outputs: tuple[str, ...]  # the ONNX file's first outputs, in order (a cached decoder adds its keys and values)
    verb: str  # the `udlc` command that reads it: predict, generate or sample
    # The metadata keys this kind writes beside the common ones (udlc.exporter.onnx writes those for every file),
    # which its reader needs.
    metadata: tuple[str, ...] = ()
    # Its answers are one class per sample of a test batch: report counts a confusion matrix for it.
    classes_per_sample: bool = False
    # What its friendly HTTP route reads (udlc.runtime.http): "samples" (rows, arrays or a picture), "texts",
    # "graph", "prompt" or "draws"; the server mounts the forms it knows and serves the others over the Open
    # Inference Protocol only.
    takes: str = field(kw_only=True)
    # Its inputs' first axis holds independent samples: `udlc serve` may run concurrent requests as one batch,
    # and each sample's answer is the same whatever it was batched with.
    batches: bool = field(default=False, kw_only=True)

    @property
    def route(self) -> str:
        """Where `udlc serve` answers for a file of this kind, followed by the file's name: the CLI's verb as an
        HTTP path (`/v1/predict/tiny-digits`)."""
        return f"/v1/{self.verb}"


KINDS: dict[str, ServedKind] = {}


def register(kind: ServedKind) -> str:
    if kind.name in KINDS:
        raise ValueError(f"served kind {kind.name!r} registered twice")
    if kind.verb not in ("predict", "generate", "sample"):
        raise ValueError(f"served kind {kind.name!r}: no command `udlc {kind.verb}`")
    if kind.takes not in TAKES:
        raise ValueError(f"served kind {kind.name!r}: its route takes {kind.takes!r}, not one of {TAKES}")
    KINDS[kind.name] = kind
    return kind.name


GENERATIVE = ("network", "latent_shape", "value_range")  # what `udlc sample` draws and how it pictures samples

CLASSES = register(ServedKind("classes", "class probabilities for samples (rows, arrays or pictures)",
                              ("logits", "probabilities"), "predict", classes_per_sample=True, takes="samples",
                              batches=True))
VALUES = register(ServedKind("values", "values in the targets' units for samples (a regression, a reconstruction)",
                             ("prediction",), "predict", takes="samples", batches=True))
LATENTS = register(ServedKind("latents", "an encoder's code for samples", ("latent",), "predict", GENERATIVE,
                               takes="samples", batches=True))
DECODED = register(ServedKind("decoded", "an autoencoder's decoder: a code in, its sample out", ("sample",),
                              "predict", GENERATIVE, takes="samples", batches=True))
SAMPLES = register(ServedKind("samples", "a generative model's samples (a VAE's decoder, a GAN's generator)",
                              ("sample",), "sample", GENERATIVE, takes="draws"))
DENOISER = register(ServedKind("denoiser", "a diffusion model's denoiser, sampled from", ("noise",), "sample",
                               GENERATIVE + ("diffusion",), takes="draws"))
NODE_CLASSES = register(ServedKind("node_classes", "the classes of a graph's nodes, or of each graph in a file",
                                   ("logits", "probabilities"), "predict", takes="graph"))
EDGE_PROBABILITIES = register(ServedKind("edge_probabilities", "node pairs' edge probabilities, from node embeddings",
                                         ("embedding",), "predict", takes="graph"))
TEXT_CLASSES = register(ServedKind("text_classes", "class probabilities for texts", ("logits", "probabilities"),
                                   "predict", ("tokenizer", "text_column", "max_tokens"), classes_per_sample=True,
                                   takes="texts", batches=True))
NEXT_TOKEN = register(ServedKind("next_token", "a language model's next tokens, continuing a prompt", ("logits",),
                                 "generate", ("tokenizer", "context", "vocab_size"), takes="prompt"))
DECODED_TEXT = register(ServedKind("decoded_text", "an encoder–decoder's target text for a source text",
                                   ("logits",), "generate", ("vocabulary", "max_target_length"), takes="prompt"))
TOKEN_LABELS = register(ServedKind("token_labels", "a label for every position of a text", ("logits",), "generate",
                                   ("vocabulary",), takes="prompt"))
FILL_MASK = register(ServedKind("fill_mask", "a masked language model's tokens for the [MASK]s of a text",
                                ("logits", "probabilities"), "generate", ("tokenizer", "context", "mask_token"),
                                takes="prompt"))
MASKS = register(ServedKind("masks", "a class for every pixel of pictures (a segmentation mask)",
                            ("probabilities", "mask"), "predict", takes="samples", batches=True))
PICTURES = register(ServedKind("pictures", "a picture for each picture (super-resolution, denoising)", ("picture",),
                               "predict", ("value_range",), takes="samples", batches=True))

# How files exported before the `served` key said what they serve: by their task's name in `task` (a supervised
# run's target kind there).
_BY_OLD_TASK = {"language_model": NEXT_TOKEN, "seq2seq": DECODED_TEXT, "token_classification": TOKEN_LABELS,
                "sequence_classification": TEXT_CLASSES, "node_classification": NODE_CLASSES,
                "graph_classification": NODE_CLASSES, "link_prediction": EDGE_PROBABILITIES, "diffusion": DENOISER,
                "vae": SAMPLES, "gan": SAMPLES, "classification": CLASSES, "regression": VALUES}


def served_kind(meta: Mapping[str, str], path: str | Path) -> ServedKind:
    """The kind the ONNX file at `path` serves, from its metadata. A file exported before the metadata named
    its kind is known by the keys it had; this is the one place that reads them."""
    name = meta.get("served")
    if name is None:
        if meta.get("network") == "encoder":  # a VAE's or an autoencoder's encoder.onnx
            name = LATENTS
        elif "latent_shape" in meta and meta.get("task") in TARGETS:  # an autoencoder's decoder (model.onnx)
            name = DECODED
        else:
            name = _BY_OLD_TASK.get(meta.get("task", ""))
    if name is None:
        raise UdlcError(f"{path} was not exported by udlc (its metadata does not say what it serves) — export a "
                        "run with `udlc export RUN_FOLDER`")
    if name not in KINDS:
        raise UdlcError(f"{path} serves '{name}', which this udlc does not know ({', '.join(KINDS)}) — it was "
                        "exported by a newer udlc: upgrade, or export the run again with this one")
    return KINDS[name]


def task_and_target(record: Mapping[str, object]) -> tuple[str | None, str | None]:
    """(the task's name, the target kind) of a run.json or an ONNX file's metadata. Before `target` existed a
    supervised run wrote its target kind in `task` and left its task's name unrecorded (None here); the target
    kind is None for the tasks that have none (a language model)."""
    task, target = record.get("task"), record.get("target")
    if "target" not in record and task in TARGETS:
        return None, str(task)
    return (str(task) if task is not None else None), (str(target) if target is not None else None)
