"""Powertools singletons shared by the handlers (structured JSON logs, X-Ray traces, EMF metrics).

The AWS SDK's and the HTTP clients' DEBUG records are wire traces: request and response bodies with passwords,
tokens, API keys and secret values (Cognito ``InitiateAuth``, Secrets Manager ``GetSecretValue``). They are kept at
INFO whatever the root logger's level (Lambda's ``ApplicationLogLevel=DEBUG`` sets it to DEBUG), so turning the
functions' log level up never writes a secret to CloudWatch.
"""

from __future__ import annotations

import logging

from aws_lambda_powertools import Logger, Metrics, Tracer

WIRE_LOGGERS = ("botocore", "boto3", "s3transfer", "urllib3", "requests", "stripe")


def quiet_wire_loggers(names: tuple[str, ...] = WIRE_LOGGERS) -> None:
    """Raise the libraries' loggers to INFO at least (their DEBUG records carry request/response bodies)."""
    for name in names:
        wire = logging.getLogger(name)
        if wire.level < logging.INFO:  # NOTSET (inherit the root's level) or DEBUG
            wire.setLevel(logging.INFO)


quiet_wire_loggers()
logger = Logger(service="modamoda")
tracer = Tracer(service="modamoda")
metrics = Metrics(namespace="Modamoda", service="modamoda")
