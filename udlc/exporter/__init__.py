"""Export to ONNX, parity-checked in onnxruntime."""
