"""Serving exported models with onnxruntime and numpy only: no torch."""
