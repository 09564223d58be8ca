"""Infrastructure of batches (bulk): who may stop executions, who knows the drop and results buckets, and who
hands outbox rows to the webhooks queue after ending a batch's jobs."""

from __future__ import annotations

import pytest

from tests.infra.synthesis import Synth, as_list, render

pytestmark = pytest.mark.synth

API = "functions.api.handler.lambda_handler"
START = "functions.start_workflow.handler.lambda_handler"
ENDERS = (  # the functions that can end a batch's last job (and so write its report)
    START,
    "functions.reserve_credits.handler.lambda_handler",
    "functions.capture_credits.handler.lambda_handler",
    "functions.release_credits.handler.lambda_handler",
    "functions.notifier.handler.lambda_handler",
    "functions.sweeper.handler.lambda_handler",
    API,
)


def test_only_the_api_stops_executions_and_only_the_job_workflows(synth: Synth) -> None:
    (machine_id, _) = synth.one("AWS::StepFunctions::StateMachine")
    for handler in synth.functions():
        stops = [
            s for s in synth.policy_statements(handler) if "states:StopExecution" in as_list(s["Action"])
        ]
        if handler != API:
            assert stops == [], handler
            continue
        (stop,) = stops
        (resource,) = as_list(stop["Resource"])
        text = render(resource)
        assert ":execution:" in text
        assert f"<<GetAtt:{machine_id}.Name>>:*" in text
    env = synth.functions()[API]["Environment"]["Variables"]
    assert env["STATE_MACHINE_ARN"] == {"Ref": machine_id}


def test_functions_that_end_batch_jobs_know_the_buckets_and_the_webhooks_queue(synth: Synth) -> None:
    functions = synth.functions()
    for handler in ENDERS:
        env = functions[handler]["Environment"]["Variables"]
        assert "RESULTS_BUCKET" in env, handler
        assert "WEBHOOK_QUEUE_URL" in env, handler
    assert "DROP_BUCKET" in functions[START]["Environment"]["Variables"]
    assert "DROP_BUCKET" in functions[API]["Environment"]["Variables"]
