"""The ``diffusion`` engine's modules: model directory (:mod:`.weights`), conditioning (:mod:`.conditioning`),
pipelines (:mod:`.pipeline`), compositing (:mod:`.compose`), the engine (:mod:`.engine`), and randomly initialised
models of the same architecture for benchmarks and tests (:mod:`.architectures`).

Importing this package does not import torch; loading the engine does.
"""
