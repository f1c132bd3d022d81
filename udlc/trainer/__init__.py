"""Training: the loop and what it calls (checkpoints, schedules, objectives, logging). Imports torch."""
