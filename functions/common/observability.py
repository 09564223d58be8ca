"""Powertools singletons shared by the handlers (structured JSON logs, X-Ray traces, EMF metrics)."""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics, Tracer

logger = Logger(service="modamoda")
tracer = Tracer(service="modamoda")
metrics = Metrics(namespace="Modamoda", service="modamoda")
