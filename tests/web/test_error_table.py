"""The PWA's sentence table (web/app/js/errors.js) covers every error code a job can end with and every error code
the API answers, so no person ever sees the fallback for a code the service knows (or the service's own text)."""

from __future__ import annotations

import re
from pathlib import Path

from modamoda_inference import errors as engine_errors

from functions.common import errors, refusals

ERRORS_JS = Path(__file__).resolve().parents[2] / "web" / "app" / "js" / "errors.js"
# Codes a job can end with that are written by the pipeline itself (functions/common/pipeline.py, batches.py).
PIPELINE_CODES = {
    "inference_failed",
    "inference_rejected",
    "inference_timeout",
    "queue_timeout",
    "internal_error",
    "insufficient_credits",
    "batch_cancelled",
}


def table(name: str) -> set[str]:
    text = ERRORS_JS.read_text(encoding="utf-8")
    body = re.search(rf"export const {name} = \{{(.*?)\n\}};", text, re.S)
    assert body, f"{name} not found in errors.js"
    return set(re.findall(r"^\s{2}([a-z_]+):", body.group(1), re.M))


def engine_codes() -> set[str]:
    return {
        cls.code
        for cls in vars(engine_errors).values()
        if isinstance(cls, type)
        and issubclass(cls, Exception)
        and isinstance(getattr(cls, "code", None), str)
    }


def test_every_code_a_job_can_end_with_has_a_sentence() -> None:
    codes = set(errors.INPUT_ERROR_CODES) | set(errors.REFUSAL_CODES) | refusals.CUSTOMER_MESSAGE_CODES
    codes |= PIPELINE_CODES | set(errors.SERVICE_ERROR_CODES)
    missing = codes - table("JOB_ERROR_MESSAGES")
    assert missing == set(), f"errors.js JOB_ERROR_MESSAGES lacks {sorted(missing)}"


def test_every_engine_code_a_customer_can_meet_has_a_sentence() -> None:
    internal = {
        "internal_error",
        "invalid_request",
        "storage_error",
        "payload_too_large",
        "unsupported_media_type",
    }
    missing = (engine_codes() - internal) - table("JOB_ERROR_MESSAGES")
    assert missing == set(), missing


def test_the_sentences_name_no_internals() -> None:
    text = ERRORS_JS.read_text(encoding="utf-8")
    sentences = re.findall(r"^\s{2}[a-z_]+: [`'](.*)[`'],$", text, re.M)
    assert len(sentences) > 40
    for raw in sentences:
        sentence = raw.replace("${NOTHING_CHARGED}", "No credits were charged.")
        assert not re.search(r"Exception|Error\b|SageMaker|Cognito|Lambda|\bS3\b|s3://|/opt/|\{", sentence), (
            sentence
        )
        assert sentence.rstrip().endswith("."), sentence
