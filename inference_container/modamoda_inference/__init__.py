"""Modamoda inference container: the SageMaker serving contract and the image engines behind it."""

__version__ = "0.1.0"
