"""Inference: the Backend interface and its engines (ONNX Runtime, PyTorch, TensorRT), the dynamic
batcher, the comparator, validate and predict. Imports torch only inside the torch and TensorRT
backends and validate (whose reference is PyTorch)."""
