"""Run folders and their checkpoints: below the trainer, the exporter and the evaluator, which share them."""

from udlc.runs.folder import RunFolder, udlc_version

__all__ = ["RunFolder", "udlc_version"]
