"""The studio engine as a Lambda function (container image ``Dockerfile.lambda``): the request and the answers of
the container's ``POST /invocations`` (:mod:`modamoda_inference.server`), called synchronously by the state
machine's ``RunStudio`` task for the ghost jobs that need no GPU.

* Event: the request document of :mod:`modamoda_inference.schemas` itself (what the GPU path writes to
  ``inference/input/{job}.json``): ``job_id``, ``mode``, ``image``, ``options``, ``metadata_s3_uri``.
* Success: the image is written where SageMaker's asynchronous endpoint writes its response,
  ``{MODAMODA_OUTPUT_S3_PATH}/{job_id}.out`` with the image's content type, and the metadata document goes to
  ``metadata_s3_uri`` (written by the same service code as in the container). Returns ``{"inference_id",
  "output_location", "content_type", "bytes", "engine", "timings_ms"}``.
* Failure: the error body ``/invocations`` answers is written where the endpoint writes a failure,
  ``{MODAMODA_FAILURE_S3_PATH}/{job_id}-error.out``, and the function fails with that answer as its error message,
  a JSON document ``{"status": <HTTP status>, "error": {"code", "message", "details"?}, "quality": {...} | null}``:
  error type ``InputRejected`` when the engine refused the photo (``no_garment_found``, ``low_confidence``,
  ``person_in_photo``), ``InferenceFailed`` for any other error. The state machine's Catch sends both to
  ``ReleaseCredits``, where ``functions/common/refusals.py`` turns the answer into the job's ending exactly as it
  turns the async endpoint's failure notification into one (``refusals.answer_outcome``).

The image holds no weights, so ``segmenter: "auto"`` means the studio engine's colour model here (the state machine
sends ``learned`` to the GPU endpoint). Environment: ``MODAMODA_OUTPUT_S3_PATH`` and ``MODAMODA_FAILURE_S3_PATH``
(``s3://bucket/prefix``, required), and as in the container ``MODAMODA_MAX_PIXELS``, ``MODAMODA_MAX_INPUT_BYTES``,
``MODAMODA_LOG_LEVEL``.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NoReturn

from modamoda_inference.engines import load_engines, model_dir_from_env
from modamoda_inference.errors import REFUSAL_CODES, ModamodaError
from modamoda_inference.s3io import S3ObjectWriter
from modamoda_inference.schemas import parse_s3_uri
from modamoda_inference.server import META_HEADER, InferenceService, Response, configure_logging, quality_of

logger = logging.getLogger("modamoda_inference.lambda")

OUTPUT_PATH_ENV = "MODAMODA_OUTPUT_S3_PATH"
FAILURE_PATH_ENV = "MODAMODA_FAILURE_S3_PATH"
ENGINES = ("studio",)  # no GPU stack and no weights in this image


class EngineAnswer(Exception):
    """The function's failure: its message is the engine's answer as compact JSON (see the module doc)."""

    def __init__(self, answer: Mapping[str, Any]) -> None:
        super().__init__(json.dumps(answer, separators=(",", ":"), ensure_ascii=True, default=str))
        self.answer = dict(answer)


class InputRejected(EngineAnswer):
    """The engine refused the photo (a refusal code): the job ends rejected, nothing is charged."""


class InferenceFailed(EngineAnswer):
    """Any other error of the engine or of the function (bad request, unreadable input, storage)."""


def answer_of(status: int, body: Mapping[str, Any]) -> dict[str, Any]:
    """``{"status", "error", "quality"}`` from an error response's status and JSON body (``{"error": {...}}``)."""
    error = body.get("error") if isinstance(body.get("error"), Mapping) else None
    error = dict(error) if error else {"code": "internal_error", "message": "the engine gave no error body"}
    return {"status": status, "error": error, "quality": quality_of(error.get("details"))}


def _job_id(event: Any) -> str | None:
    """The request's job id in canonical form, or None when it has none (the request is then refused)."""
    value = event.get("job_id") if isinstance(event, Mapping) else None
    if not isinstance(value, str):
        return None
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return None


def _s3_prefix(name: str, value: str | None) -> str:
    if not value or not value.strip():
        raise ValueError(f"environment variable {name} is required (s3://bucket/prefix)")
    path = value.strip().rstrip("/")
    parse_s3_uri(f"{path}/x")  # a bucket and a key prefix
    return path


@dataclass
class StudioFunction:
    """One invocation: the service's answer, written and returned as the module doc says."""

    service: InferenceService
    output_path: str
    failure_path: str
    writer: S3ObjectWriter = field(default_factory=S3ObjectWriter)

    def __call__(self, event: Any) -> dict[str, Any]:
        job_id = _job_id(event)
        try:
            body = json.dumps(event, separators=(",", ":")).encode()
        except (TypeError, ValueError):
            body = b"null"  # the service refuses it as not a JSON object
        response = self.service.invoke(body, "application/json", inference_id=job_id)
        if response.status == 200:
            return self._deliver(response)
        self._fail(response, job_id)

    def _deliver(self, response: Response) -> dict[str, Any]:
        meta = json.loads(response.headers[META_HEADER])
        job_id = str(meta["job_id"])
        location = f"{self.output_path}/{job_id}.out"
        try:
            self.writer.put(location, response.body, response.content_type)
        except ModamodaError as exc:
            logger.warning("output not written", extra={"fields": {"job_id": job_id, "error": exc.message}})
            raise InferenceFailed(answer_of(exc.http_status, exc.to_dict())) from exc
        return {
            "inference_id": job_id,
            "output_location": location,
            "content_type": response.content_type,
            "bytes": len(response.body),
            "engine": meta["engine"],
            "timings_ms": meta["timings_ms"],
        }

    def _fail(self, response: Response, job_id: str | None) -> NoReturn:
        try:
            body = json.loads(response.body)
        except ValueError:
            body = {}
        answer = answer_of(response.status, body if isinstance(body, Mapping) else {})
        if job_id is not None:
            try:
                self.writer.put(
                    f"{self.failure_path}/{job_id}-error.out", response.body, response.content_type
                )
            except ModamodaError as exc:  # best effort: the answer below is what counts
                logger.warning(
                    "failure body not written", extra={"fields": {"job_id": job_id, "error": str(exc)}}
                )
        if answer["error"].get("code") in REFUSAL_CODES:
            raise InputRejected(answer)
        raise InferenceFailed(answer)


_function: StudioFunction | None = None
_lock = threading.Lock()


def configure(function: StudioFunction | None) -> None:
    """Use ``function`` for the next invocations (the local stack, tests); None: build it from the environment."""
    global _function
    with _lock:
        _function = function


def studio_function() -> StudioFunction:
    """The function of this execution environment, built once (the engine loads at the first invocation)."""
    global _function
    with _lock:
        if _function is None:
            configure_logging()
            output_path = _s3_prefix(OUTPUT_PATH_ENV, os.environ.get(OUTPUT_PATH_ENV))
            failure_path = _s3_prefix(FAILURE_PATH_ENV, os.environ.get(FAILURE_PATH_ENV))
            model_dir = model_dir_from_env()
            engines = load_engines(ENGINES, model_dir)
            if not engines:
                raise RuntimeError("the studio engine did not load")
            _function = StudioFunction(
                InferenceService(engines, model_dir=model_dir), output_path, failure_path
            )
        return _function


def handler(event: Any, context: Any) -> dict[str, Any]:
    """Lambda entry point (``CMD ["modamoda_inference.lambda_handler.handler"]``)."""
    del context
    return studio_function()(event)
