"""TensorRT: environment checks, engine building with caches, and the trt backend."""
