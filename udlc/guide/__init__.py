"""The practitioner's tools over the trainer: doctor (and its probes and data checks), lr-find, tune, report,
baseline and seeds. Each is a user command (udlc.cli.guide); none is part of the training loop."""
