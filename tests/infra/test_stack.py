"""The synthesised CloudFormation template has the shape of the design: synthesised once, bundling skipped."""

from __future__ import annotations

import json
from typing import Any

import pytest

import infra  # noqa: F401  (quiet jsii's Node version banner before aws_cdk starts it)
from infra.config import STATE_MACHINE_FILE
from infra.migrations import migrations_hash
from infra.pipeline import METADATA_PREFIX_KEY, PARTITION_KEY, TASK_HANDLERS, substitution_key
from tests.infra.synthesis import PLACEHOLDER, Synth, as_list, render

pytestmark = pytest.mark.synth

EXPECTED_HANDLERS = {
    "functions.api.handler.lambda_handler",
    "functions.start_workflow.handler.lambda_handler",
    "functions.validate_input.handler.lambda_handler",
    "functions.reserve_credits.handler.lambda_handler",
    "functions.enqueue_inference.handler.lambda_handler",
    "functions.dispatch_inference.handler.lambda_handler",
    "functions.capture_credits.handler.lambda_handler",
    "functions.release_credits.handler.lambda_handler",
    "functions.notifier.handler.lambda_handler",
    "functions.migrate.handler.lambda_handler",
    "functions.sweeper.handler.lambda_handler",
    "functions.billing.handler.lambda_handler",
    "functions.webhooks.handler.lambda_handler",
}


def test_stack_is_named_after_the_stage(synth: Synth) -> None:
    assert synth.template["Outputs"].keys() >= {
        "WebUrl",
        "ApiUrl",
        "UserPoolId",
        "UserPoolClientId",
        "UserPoolDomain",
        "UploadsBucketName",
        "DropBucketName",
        "ResultsBucketName",
        "StateMachineArn",
        "InferenceEndpointName",
        "StripeSecretArn",
        "AlarmTopicArn",
        "DashboardName",
    }
    (endpoint_id, _) = synth.one("AWS::SageMaker::Endpoint")
    assert synth.template["Outputs"]["InferenceEndpointName"]["Value"] == {
        "Fn::GetAtt": [endpoint_id, "EndpointName"]
    }


# ---- database ----------------------------------------------------------------------------------------------


def test_aurora_serverless_v2_postgres_16_encrypted_with_generated_secret(synth: Synth) -> None:
    (_, cluster) = synth.one("AWS::RDS::DBCluster")
    props = cluster["Properties"]
    assert props["Engine"] == "aurora-postgresql"
    assert str(props["EngineVersion"]).startswith("16.")
    assert props["StorageEncrypted"] is True
    assert props["ServerlessV2ScalingConfiguration"]["MinCapacity"] == 0
    assert props["BackupRetentionPeriod"] >= 1
    (_, writer) = synth.one("AWS::RDS::DBInstance")
    assert writer["Properties"]["DBInstanceClass"] == "db.serverless"
    secrets = {  # the database's generated secrets (the Stripe secret is billing's: tests/infra/test_billing.py)
        lid: s
        for lid, s in synth.of_type("AWS::SecretsManager::Secret").items()
        if "GenerateSecretString" in s["Properties"]
    }
    users = {
        json.loads(s["Properties"]["GenerateSecretString"]["SecretStringTemplate"])["username"]: secret_id
        for secret_id, s in secrets.items()
    }
    assert set(users) == {
        "modamoda_admin",
        "modamoda_app",
    }  # the owner, and the role row-level security binds
    for secret in secrets.values():
        assert (
            json.loads(secret["Properties"]["GenerateSecretString"]["SecretStringTemplate"])["dbname"]
            == "modamoda"
        )
    attached = {
        a["Properties"]["SecretId"]["Ref"]
        for a in synth.of_type("AWS::SecretsManager::SecretTargetAttachment").values()
    }
    assert attached == set(users.values())


def test_migrations_run_through_a_custom_resource_keyed_by_the_sql_files(synth: Synth) -> None:
    (_, resource) = synth.one("Custom::ModamodaMigrations")
    assert resource["Properties"]["MigrationsHash"] == migrations_hash()
    assert len(resource["Properties"]["MigrationsHash"]) == 64


def test_only_the_migrator_holds_the_owner_secret(synth: Synth) -> None:
    with_admin = {
        h for h, p in synth.functions().items() if "DB_ADMIN_SECRET_ARN" in p["Environment"]["Variables"]
    }
    assert with_admin == {"functions.migrate.handler.lambda_handler"}


# ---- Lambda functions --------------------------------------------------------------------------------------


def test_every_function_is_python312_arm64_traced_with_the_shared_layer(synth: Synth) -> None:
    functions = synth.functions()
    assert set(functions) == EXPECTED_HANDLERS
    (layer_id,) = [
        lid
        for lid in synth.of_type("AWS::Lambda::LayerVersion")
        if lid.startswith("LambdasDependenciesLayer")
    ]
    (ca_layer_id,) = [
        lid for lid in synth.of_type("AWS::Lambda::LayerVersion") if lid.startswith("LambdasDatabaseCaLayer")
    ]
    for lid in (layer_id, ca_layer_id):
        layer = synth.resources[lid]
        assert layer["Properties"]["CompatibleArchitectures"] == ["arm64"]
        assert layer["Properties"]["CompatibleRuntimes"] == ["python3.12"]
    code_keys = set()
    for handler, props in functions.items():
        assert props["Runtime"] == "python3.12", handler
        assert props["Architectures"] == ["arm64"], handler
        assert props["TracingConfig"] == {"Mode": "Active"}, handler
        # every one uses PostgreSQL: the dependencies and the database trust store (no file in both)
        assert sorted(props["Layers"], key=str) == sorted(
            [{"Ref": layer_id}, {"Ref": ca_layer_id}], key=str
        ), handler
        env = props["Environment"]["Variables"]
        assert env["POWERTOOLS_SERVICE_NAME"] == "modamoda", handler
        assert env["POWERTOOLS_METRICS_NAMESPACE"] == "Modamoda", handler
        assert env["LOG_LEVEL"] == "INFO", handler
        assert "DB_SECRET_ARN" in env, handler
        assert "DB_HOST" in env, handler
        assert props["VpcConfig"]["SubnetIds"], handler
        assert props["LoggingConfig"]["LogGroup"], handler
        code_keys.add(props["Code"]["S3Key"])
    assert len(code_keys) == 1, "all functions share one code asset"


def test_code_asset_is_the_functions_package_only(synth: Synth) -> None:
    (key,) = {props["Code"]["S3Key"] for props in synth.functions().values()}
    asset_dir = synth.outdir / f"asset.{key.removesuffix('.zip')}"
    files = {p.relative_to(asset_dir).as_posix() for p in asset_dir.rglob("*") if p.is_file()}
    assert "functions/api/handler.py" in files
    assert "functions/__init__.py" in files
    assert all(f.startswith("functions/") for f in files), sorted(
        f for f in files if not f.startswith("functions/")
    )
    assert not [f for f in files if "__pycache__" in f or f.endswith(".pyc")]
    assert "functions/requirements.txt" not in files


def test_function_environments(synth: Synth) -> None:
    functions = synth.functions()

    def env(handler: str) -> dict[str, Any]:
        return dict(functions[f"functions.{handler}.handler.lambda_handler"]["Environment"]["Variables"])

    api = env("api")
    assert api["UPLOAD_MAX_BYTES"] == "26214400"
    assert api["UPLOAD_URL_TTL_SECONDS"] == "300"
    assert api["RESULT_URL_TTL_SECONDS"] == "900"
    assert api["SIGNUP_GRANT_CREDITS"] == "10"
    assert {"UPLOAD_BUCKET", "RESULTS_BUCKET"} <= api.keys()
    start = env("start_workflow")
    assert start["INFERENCE_TIMEOUT_SECONDS"] == "3600"
    # each job's RunInference wait: its lane's queue-wait bound, then the inference timeout
    assert (start["QUEUE_WAIT_SECONDS"], start["BATCH_QUEUE_WAIT_SECONDS"]) == ("3600", "86400")
    (state_machine_id, _) = synth.one("AWS::StepFunctions::StateMachine")
    assert start["STATE_MACHINE_ARN"] == {"Ref": state_machine_id}
    assert {"UPLOAD_BUCKET", "UPLOAD_MAX_BYTES"} <= env("validate_input").keys()
    dispatch = env("dispatch_inference")
    (endpoint_id, _) = synth.one("AWS::SageMaker::Endpoint")
    assert dispatch["INFERENCE_ENDPOINT_NAME"] == {"Fn::GetAtt": [endpoint_id, "EndpointName"]}
    assert "RESULTS_BUCKET" in dispatch
    # the cap on jobs at the endpoint, from the values the endpoint is deployed with: its most instances (the
    # scalable target's MaxCapacity) x its MaxConcurrentInvocationsPerInstance, + a buffer
    (_, target) = synth.one("AWS::ApplicationAutoScaling::ScalableTarget")
    (_, endpoint_config) = synth.one("AWS::SageMaker::EndpointConfig")
    client = endpoint_config["Properties"]["AsyncInferenceConfig"]["ClientConfig"]
    assert dispatch["INFERENCE_INSTANCES"] == str(target["Properties"]["MaxCapacity"])
    assert dispatch["INFERENCE_CONCURRENCY_PER_INSTANCE"] == str(
        client["MaxConcurrentInvocationsPerInstance"]
    )
    assert dispatch["INFERENCE_DISPATCH_BUFFER"] == "1"
    enqueue = env("enqueue_inference")
    assert "RESULTS_BUCKET" in enqueue
    # the enqueue function and the notifier start the dispatcher
    dispatch_id = synth.function_id("functions.dispatch_inference.handler.lambda_handler")
    for starter in (enqueue, env("notifier")):
        assert starter["DISPATCH_FUNCTION_NAME"] == {"Ref": dispatch_id}
    assert "RESULTS_BUCKET" in env("capture_credits")
    assert "RESULTS_BUCKET" in env("notifier")


def test_function_permissions(synth: Synth) -> None:
    dispatch = "functions.dispatch_inference.handler.lambda_handler"
    assert "sagemaker:InvokeEndpointAsync" in synth.allowed_actions(dispatch)
    (sagemaker_statement,) = [
        s for s in synth.policy_statements(dispatch) if s["Action"] == "sagemaker:InvokeEndpointAsync"
    ]
    (endpoint_id, _) = synth.one("AWS::SageMaker::Endpoint")
    assert sagemaker_statement["Resource"] == {"Ref": endpoint_id}  # the endpoint's ARN
    # only the dispatcher hands jobs to the endpoint
    for handler in synth.functions():
        if handler != dispatch:
            assert "sagemaker:InvokeEndpointAsync" not in synth.allowed_actions(handler), handler
    # it fails the task tokens of jobs that time out in the queue or at the endpoint
    assert {"states:SendTaskSuccess", "states:SendTaskFailure"} <= synth.allowed_actions(dispatch)
    enqueue = "functions.enqueue_inference.handler.lambda_handler"
    assert "s3:PutObject" in synth.allowed_actions(enqueue)
    dispatch_arn = {"Fn::GetAtt": [synth.function_id(dispatch), "Arn"]}
    for starter in (enqueue, "functions.notifier.handler.lambda_handler"):
        (invoke_statement,) = [
            s for s in synth.policy_statements(starter) if s["Action"] == "lambda:InvokeFunction"
        ]
        assert invoke_statement["Resource"] == dispatch_arn, starter
    notifier = "functions.notifier.handler.lambda_handler"
    assert {"states:SendTaskSuccess", "states:SendTaskFailure"} <= synth.allowed_actions(notifier)
    start = "functions.start_workflow.handler.lambda_handler"
    assert "states:StartExecution" in synth.allowed_actions(start)
    for handler in EXPECTED_HANDLERS:
        assert "secretsmanager:GetSecretValue" in synth.allowed_actions(handler), handler


# ---- workflow ----------------------------------------------------------------------------------------------


def deployed_definition(synth: Synth, props: dict[str, Any]) -> str:
    """The definition Step Functions runs: inline (DefinitionString) or the S3 asset, then substitutions."""
    if "DefinitionString" in props:
        text = render(props["DefinitionString"])
    else:
        key = props["DefinitionS3Location"]["Key"]
        text = (synth.outdir / f"asset.{key}").read_text(encoding="utf-8")
    substitutions = {name: render(value) for name, value in props.get("DefinitionSubstitutions", {}).items()}
    return PLACEHOLDER.sub(lambda m: substitutions.get(m.group(1), m.group(0)), text)


def test_state_machine_is_standard_traced_and_logs_every_transition_without_data(synth: Synth) -> None:
    (_, state_machine) = synth.one("AWS::StepFunctions::StateMachine")
    props = state_machine["Properties"]
    assert props["StateMachineType"] == "STANDARD"
    assert props["TracingConfiguration"] == {"Enabled": True}
    assert props["LoggingConfiguration"]["Level"] == "ALL"
    assert props["LoggingConfiguration"]["IncludeExecutionData"] is False  # task tokens, tenant data


def _deployed_definition_text(synth: Synth) -> tuple[str, dict[str, Any]]:
    (_, state_machine) = synth.one("AWS::StepFunctions::StateMachine")
    props = state_machine["Properties"]
    return deployed_definition(synth, props), props


def test_deployed_definition_is_the_asl_file(synth: Synth) -> None:
    deployed, props = _deployed_definition_text(synth)
    source = STATE_MACHINE_FILE.read_text(encoding="utf-8")
    placeholders = set(PLACEHOLDER.findall(source))
    # Every ${...} in the file is substituted at deploy and nothing else is.
    assert placeholders == set(props["DefinitionSubstitutions"])
    expected_arns = {
        substitution_key(task): f"<<GetAtt:{synth.function_id(handler)}.Arn>>"
        for task, handler in TASK_HANDLERS.items()
    }
    expected_arns[PARTITION_KEY] = "<<Ref:AWS::Partition>>"  # environment-agnostic: the region's partition
    expected_arns[substitution_key("StudioEngine")] = f"<<GetAtt:{synth.studio_function()[0]}.Arn>>"
    results = synth.bucket_ids()["results"]
    expected_arns[METADATA_PREFIX_KEY] = f"s3://<<Ref:{results}>>/inference/metadata/"
    assert placeholders <= expected_arns.keys(), placeholders - expected_arns.keys()
    expected = json.loads(PLACEHOLDER.sub(lambda m: expected_arns[m.group(1)], source))
    assert "${" not in deployed
    assert json.loads(deployed) == expected


def test_deployed_definition_equals_what_the_local_runner_executes(synth: Synth) -> None:
    """The local stack reads the same file and substitutes the same placeholders with its own function names;
    mapping both sides' functions to their handlers gives the same definition, state for state."""
    from local import stack as local_stack
    from local.lambda_runtime import FUNCTIONS, PARTITION, asl_values, function_arn

    assert local_stack.ASL_FILE.resolve() == STATE_MACHINE_FILE.resolve()
    local_values = asl_values(local_stack.RESULTS_BUCKET)
    local_definition = local_stack.substitute(local_stack.ASL_FILE.read_text(encoding="utf-8"), local_values)
    local_by_arn = {function_arn(name): handler for name, handler in FUNCTIONS.items()}

    deployed, props = _deployed_definition_text(synth)
    assert set(props["DefinitionSubstitutions"]) == set(local_values)
    deployed = deployed.replace("arn:<<Ref:AWS::Partition>>:", f"arn:{PARTITION}:")
    deployed = deployed.replace(
        f"s3://<<Ref:{synth.bucket_ids()['results']}>>/", f"s3://{local_stack.RESULTS_BUCKET}/"
    )
    deployed_by_arn = {
        f"<<GetAtt:{fn['LogicalId']}.Arn>>": handler for handler, fn in synth.functions().items()
    }
    studio_id, studio = synth.studio_function()
    assert studio["PackageType"] == "Image"
    deployed_by_arn[f"<<GetAtt:{studio_id}.Arn>>"] = (
        "modamoda_inference.lambda_handler.handler"  # its image's CMD
    )

    def handlers(text: str, by_arn: dict[str, str]) -> Any:
        for arn, handler in by_arn.items():
            text = text.replace(arn, handler)
        return json.loads(text)

    assert handlers(deployed, deployed_by_arn) == handlers(local_definition, local_by_arn)


def test_every_task_has_a_timeout_and_bounded_jittered_retries() -> None:
    definition = json.loads(STATE_MACHINE_FILE.read_text(encoding="utf-8"))
    tasks = {name: state for name, state in definition["States"].items() if state["Type"] == "Task"}
    assert tasks
    for name, task in tasks.items():
        assert {"TimeoutSeconds", "TimeoutSecondsPath", "HeartbeatSeconds"} & task.keys(), name
        for retry in task.get("Retry", []):
            assert retry["JitterStrategy"] == "FULL", name
            assert 1 <= retry["MaxAttempts"] <= 10, name
            assert retry["MaxDelaySeconds"] <= 300, name
            assert retry["BackoffRate"] > 1, name
        assert any("States.ALL" in c["ErrorEquals"] for c in task.get("Catch", [])), name


# AWS's recommended retry set for Lambda service errors (Step Functions best practices, "Handle Lambda service
# exceptions"), plus throttling.
LAMBDA_TRANSIENT_ERRORS = {
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.ClientExecutionTimeoutException",
    "Lambda.TooManyRequestsException",
}


def test_every_lambda_task_retries_the_transient_lambda_errors() -> None:
    definition = json.loads(STATE_MACHINE_FILE.read_text(encoding="utf-8"))
    lambda_tasks = {
        name: state
        for name, state in definition["States"].items()
        if state["Type"] == "Task" and ":states:::lambda:invoke" in state["Resource"]
    }
    # every task function, the studio engine's among them; RecordStudioResult calls CaptureCredits again
    assert len(lambda_tasks) == len(TASK_HANDLERS) + 2
    for name, task in lambda_tasks.items():
        retried = {error for retry in task["Retry"] for error in retry["ErrorEquals"]}
        assert "States.ALL" in retried or retried >= LAMBDA_TRANSIENT_ERRORS, (
            name,
            LAMBDA_TRANSIENT_ERRORS - retried,
        )


def test_state_machine_resources_take_the_partition_from_the_stack(synth: Synth, prod_synth: Synth) -> None:
    source = STATE_MACHINE_FILE.read_text(encoding="utf-8")
    assert "arn:aws:" not in source  # cdk.json targets aws-cn too
    resources = [s["Resource"] for s in json.loads(source)["States"].values() if s["Type"] == "Task"]
    assert resources
    assert all(r.startswith("arn:${Partition}:states:::") for r in resources), resources

    deployed, props = _deployed_definition_text(
        synth
    )  # environment-agnostic: the partition is resolved by CFN
    assert props["DefinitionSubstitutions"][PARTITION_KEY] == {"Ref": "AWS::Partition"}
    assert {s["Resource"] for s in json.loads(deployed)["States"].values() if s["Type"] == "Task"} == {
        "arn:<<Ref:AWS::Partition>>:states:::lambda:invoke",
        "arn:<<Ref:AWS::Partition>>:states:::lambda:invoke.waitForTaskToken",
    }
    (_, prod_machine) = prod_synth.one(
        "AWS::StepFunctions::StateMachine"
    )  # eu-west-1: CDK writes the literal
    assert prod_machine["Properties"]["DefinitionSubstitutions"][PARTITION_KEY] == "aws"


def test_a_china_region_stack_substitutes_the_aws_cn_partition() -> None:
    import aws_cdk as cdk

    from infra.config import cdk_json_context
    from infra.pipeline import definition_substitutions

    app = cdk.App(context=cdk_json_context())
    stack = cdk.Stack(app, "China", env=cdk.Environment(account="123456789012", region="cn-north-1"))
    assert definition_substitutions(stack, {}) == {PARTITION_KEY: "aws-cn"}


def test_state_machine_may_invoke_exactly_the_task_functions(synth: Synth) -> None:
    (_, state_machine) = synth.one("AWS::StepFunctions::StateMachine")
    role = state_machine["Properties"]["RoleArn"]["Fn::GetAtt"][0]
    (statement,) = [s for s in synth.role_statements(role) if s["Action"] == "lambda:InvokeFunction"]
    ids = [synth.function_id(h) for h in TASK_HANDLERS.values()] + [synth.studio_function()[0]]
    assert sorted(json.dumps(r) for r in statement["Resource"]) == sorted(
        json.dumps({"Fn::GetAtt": [lid, "Arn"]}) for lid in ids
    )


def _object_created_rules(synth: Synth) -> dict[str, dict[str, Any]]:
    """The EventBridge rules on S3 "Object Created", by the bucket role they watch."""
    roles = {lid: role for role, lid in synth.bucket_ids().items()}
    rules = {}
    for rule in synth.of_type("AWS::Events::Rule").values():
        pattern = rule["Properties"].get("EventPattern")
        if pattern:
            (bucket,) = pattern["detail"]["bucket"]["name"]
            rules[roles[bucket["Ref"]]] = rule["Properties"]
    return rules


def test_uploads_and_drops_reach_start_workflow_through_eventbridge_and_sqs(synth: Synth) -> None:
    """Each through its own start queue and event source: a customer's upload never waits behind a bulk drop's
    backlog before its job exists (issue 17: the GPU scheduler can only put first a job that has started)."""
    rules = _object_created_rules(synth)
    assert set(rules) == {"uploads", "drop"}
    queue_ids = {}
    for role, prefix in (("uploads", "uploads/"), ("drop", "drop/")):
        pattern = rules[role]["EventPattern"]
        assert pattern["source"] == ["aws.s3"]
        assert pattern["detail-type"] == ["Object Created"]
        assert pattern["detail"]["object"]["key"] == [{"prefix": prefix}]
        # every way an object is created starts work: a POST upload, a PUT, and a server-side CopyObject (re-render
        # and retry copy a job's stored photo to the new job's key)
        assert "reason" not in pattern["detail"]
        (target,) = rules[role]["Targets"]
        queue_ids[role] = target["Arn"]["Fn::GetAtt"][0]
        dlq = target["DeadLetterConfig"]["Arn"]["Fn::GetAtt"][0]
        assert "EventsDeadLetterQueue" in dlq
        assert target["RetryPolicy"]["MaximumEventAgeInSeconds"] == 86400
    assert queue_ids["uploads"] != queue_ids["drop"]
    start = synth.functions()["functions.start_workflow.handler.lambda_handler"]
    dead_letters = set()
    for queue_id in queue_ids.values():
        queue = synth.resources[queue_id]["Properties"]
        assert queue["RedrivePolicy"]["maxReceiveCount"] == 5
        dead_letters.add(queue["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0])
        assert queue["SqsManagedSseEnabled"] is True
        assert queue["VisibilityTimeout"] >= 6 * start["Timeout"]
        (props,) = [
            m["Properties"]
            for m in synth.of_type("AWS::Lambda::EventSourceMapping").values()
            if m["Properties"]["EventSourceArn"] == {"Fn::GetAtt": [queue_id, "Arn"]}
        ]
        assert props["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
        assert props["BatchSize"] == 10
        assert props["FunctionName"] == {"Ref": start["LogicalId"]}
    (dead_letter,) = dead_letters  # one alarmed dead-letter queue for both
    assert dead_letter.startswith("PipelineStartDeadLetterQueue")


def _sqs_event_sources(synth: Synth) -> list[tuple[str, dict[str, Any]]]:
    """The SQS event source mappings, each with the handler it invokes."""
    by_id = {fn["LogicalId"]: handler for handler, fn in synth.functions().items()}
    return [
        (by_id[m["Properties"]["FunctionName"]["Ref"]], m["Properties"])
        for m in synth.of_type("AWS::Lambda::EventSourceMapping").values()
        if synth.resources[m["Properties"]["EventSourceArn"]["Fn::GetAtt"][0]]["Type"] == "AWS::SQS::Queue"
    ]


@pytest.mark.parametrize(("stage", "start", "webhooks"), [("dev", 2, 2), ("prod", 10, 5)])
def test_sqs_event_sources_have_a_maximum_concurrency(
    stage: str, start: int, webhooks: int, synth: Synth, prod_synth: Synth
) -> None:
    """Lambda's ScalingConfig.MaximumConcurrency (2 to 1000): a bulk drop waits in the queue instead of taking
    every function instance and database connection the account allows; dev (no RDS Proxy) gets the least."""
    sources = _sqs_event_sources(synth if stage == "dev" else prod_synth)
    assert sorted((h, s.get("ScalingConfig")["MaximumConcurrency"]) for h, s in sources) == [
        ("functions.start_workflow.handler.lambda_handler", start),  # the uploads' start queue
        ("functions.start_workflow.handler.lambda_handler", start),  # the drop folder's
        ("functions.webhooks.handler.lambda_handler", webhooks),
    ]


def test_sweeper_failures_land_in_an_alarmed_dead_letter_queue(synth: Synth) -> None:
    """EventBridge invokes the sweeper asynchronously: what it still fails after Lambda's retries, or what waits
    past the next sweep, goes to the events dead-letter queue, which has an alarm."""
    sweeper = synth.function_id("functions.sweeper.handler.lambda_handler")
    (config,) = [
        c["Properties"]
        for c in synth.of_type("AWS::Lambda::EventInvokeConfig").values()
        if c["Properties"]["FunctionName"] == {"Ref": sweeper}
    ]
    assert config["Qualifier"] == "$LATEST"
    assert config["MaximumRetryAttempts"] == 2
    assert config["MaximumEventAgeInSeconds"] == 3600  # dev sweeps hourly
    destination = config["DestinationConfig"]["OnFailure"]["Destination"]
    queue_id = destination["Fn::GetAtt"][0]
    assert synth.resources[queue_id]["Type"] == "AWS::SQS::Queue"
    assert queue_id.startswith("PipelineEventsDeadLetterQueue")
    sends = [
        s
        for s in synth.policy_statements("functions.sweeper.handler.lambda_handler")
        if "sqs:SendMessage" in as_list(s["Action"])
    ]
    assert {"Fn::GetAtt": [queue_id, "Arn"]} in [r for s in sends for r in as_list(s["Resource"])]
    alarmed = [
        a["Properties"]
        for a in synth.of_type("AWS::CloudWatch::Alarm").values()
        if {"Name": "QueueName", "Value": {"Fn::GetAtt": [queue_id, "QueueName"]}}
        in a["Properties"].get("Dimensions", [])
    ]
    assert alarmed, "the events dead-letter queue has no alarm"


def test_every_queue_is_encrypted_and_refuses_plain_http(synth: Synth) -> None:
    queues = synth.of_type("AWS::SQS::Queue")
    # start (uploads), start (drop folder) and webhooks, and the start, notification, events and webhooks
    # dead-letter queues
    assert len(queues) == 7
    statements = [
        (queue["Ref"], s)
        for res in synth.of_type("AWS::SQS::QueuePolicy").values()
        for queue in res["Properties"]["Queues"]
        for s in res["Properties"]["PolicyDocument"]["Statement"]
    ]
    for lid, queue in queues.items():
        assert queue["Properties"]["SqsManagedSseEnabled"] is True, lid
        assert any(
            ref == lid
            and s["Effect"] == "Deny"
            and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
            for ref, s in statements
        ), lid


# ---- inference ---------------------------------------------------------------------------------------------


def test_async_endpoint_writes_to_results_and_notifies_through_sns(synth: Synth) -> None:
    (_, config) = synth.one("AWS::SageMaker::EndpointConfig")
    props = config["Properties"]
    output = props["AsyncInferenceConfig"]["OutputConfig"]
    success = output["NotificationConfig"]["SuccessTopic"]["Ref"]
    error = output["NotificationConfig"]["ErrorTopic"]["Ref"]
    assert success.startswith("InferenceSuccessTopic")
    assert error.startswith("InferenceErrorTopic")
    topics = synth.of_type("AWS::SNS::Topic")
    assert set(topics) - {success, error} == {_alarm_topic(synth)}
    results = synth.bucket_ids()["results"]
    assert render(output["S3OutputPath"]) == f"s3://<<Ref:{results}>>/inference/output/"
    assert render(output["S3FailurePath"]) == f"s3://<<Ref:{results}>>/inference/failure/"
    assert props["AsyncInferenceConfig"]["ClientConfig"]["MaxConcurrentInvocationsPerInstance"] == 1
    (variant,) = props["ProductionVariants"]
    assert variant["VariantName"] == "AllTraffic"
    assert variant["InstanceType"] == "ml.g5.xlarge"
    assert variant["InitialInstanceCount"] == 1
    (_, endpoint) = synth.one("AWS::SageMaker::Endpoint")
    assert endpoint["Properties"]["EndpointName"] == "modamoda-dev-g5-xlarge"  # carries the instance type
    (_, model) = synth.one("AWS::SageMaker::Model")
    image = render(model["Properties"]["PrimaryContainer"]["Image"])
    assert "cdk-hnb659fds-container-assets" in image
    for topic in topics.values():
        assert "KmsMasterKeyId" not in topic["Properties"]
    topic_policies = [
        s
        for p in synth.of_type("AWS::SNS::TopicPolicy").values()
        for s in p["Properties"]["PolicyDocument"]["Statement"]
    ]
    assert sum(s["Effect"] == "Deny" and "aws:SecureTransport" in json.dumps(s) for s in topic_policies) == 3


def _alarm_topic(synth: Synth) -> str:
    (topic,) = [lid for lid in synth.of_type("AWS::SNS::Topic") if lid.startswith("ObservabilityAlarmTopic")]
    return topic


def test_endpoint_scales_to_zero_and_back(synth: Synth) -> None:
    (target_id, target) = synth.one("AWS::ApplicationAutoScaling::ScalableTarget")
    (endpoint_id, _) = synth.one("AWS::SageMaker::Endpoint")
    endpoint_name = {"Fn::GetAtt": [endpoint_id, "EndpointName"]}
    props = target["Properties"]
    assert props["ServiceNamespace"] == "sagemaker"
    assert render(props["ResourceId"]) == f"endpoint/<<GetAtt:{endpoint_id}.EndpointName>>/variant/AllTraffic"
    assert props["ScalableDimension"] == "sagemaker:variant:DesiredInstanceCount"
    assert props["MinCapacity"] == 0
    assert props["MaxCapacity"] == 2

    policies = synth.of_type("AWS::ApplicationAutoScaling::ScalingPolicy")
    assert {res["Properties"]["PolicyType"] for res in policies.values()} == {"StepScaling"}
    assert all(res["Properties"]["ScalingTargetId"] == {"Ref": target_id} for res in policies.values())

    def policy_of(alarm: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        (action,) = alarm["AlarmActions"]
        return action["Ref"], policies[action["Ref"]]["Properties"]["StepScalingPolicyConfiguration"]

    # the whole backlog (the dispatcher's InferenceQueueDepth: queued with us + at the endpoint) sets the count:
    # ceil(depth / 2) instances, 1..MaxCapacity, from zero included
    (depth_alarm,) = [
        a["Properties"]
        for a in synth.of_type("AWS::CloudWatch::Alarm").values()
        if a["Properties"].get("MetricName") == "InferenceQueueDepth"
    ]
    assert depth_alarm["Namespace"] == "Modamoda"
    assert sorted(depth_alarm["Dimensions"], key=lambda d: d["Name"]) == [
        {"Name": "EndpointName", "Value": endpoint_name},
        {"Name": "service", "Value": "modamoda"},
    ]
    assert (depth_alarm["ComparisonOperator"], depth_alarm["Threshold"]) == (
        "GreaterThanOrEqualToThreshold",
        1,
    )
    assert depth_alarm["EvaluationPeriods"] == 1
    _, follow = policy_of(depth_alarm)
    assert follow["AdjustmentType"] == "ExactCapacity"
    assert follow["StepAdjustments"] == [
        {"MetricIntervalLowerBound": 0, "MetricIntervalUpperBound": 2, "ScalingAdjustment": 1},
        {"MetricIntervalLowerBound": 2, "ScalingAdjustment": 2},
    ]
    # nothing queued nor at the endpoint for 15 minutes: zero instances
    (idle_alarm,) = [
        a["Properties"]
        for a in synth.of_type("AWS::CloudWatch::Alarm").values()
        if "Metrics" in a["Properties"]
        and any(
            m.get("Expression") == "FILL(depth, 0) + FILL(backlog, 0)" for m in a["Properties"]["Metrics"]
        )
    ]
    assert (idle_alarm["ComparisonOperator"], idle_alarm["Threshold"]) == ("LessThanOrEqualToThreshold", 0)
    assert idle_alarm["EvaluationPeriods"] == idle_alarm["DatapointsToAlarm"] == 15
    names = {m["MetricStat"]["Metric"]["MetricName"] for m in idle_alarm["Metrics"] if "MetricStat" in m}
    assert names == {"InferenceQueueDepth", "ApproximateBacklogSize"}
    _, to_zero = policy_of(idle_alarm)
    assert (to_zero["AdjustmentType"], to_zero["StepAdjustments"]) == (
        "ExactCapacity",
        [{"MetricIntervalUpperBound": 0, "ScalingAdjustment": 0}],
    )

    alarms = [
        a["Properties"]
        for a in synth.of_type("AWS::CloudWatch::Alarm").values()
        if a["Properties"].get("MetricName") == "HasBacklogWithoutCapacity"
    ]
    assert len(alarms) == 1
    alarm = alarms[0]
    assert alarm["Namespace"] == "AWS/SageMaker"
    assert alarm["Dimensions"] == [{"Name": "EndpointName", "Value": endpoint_name}]
    assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert alarm["Threshold"] == 1
    _, step = policy_of(alarm)
    assert step["StepAdjustments"] == [{"MetricIntervalLowerBound": 0, "ScalingAdjustment": 1}]


def test_notifier_is_subscribed_to_both_topics_with_a_dead_letter_queue(synth: Synth) -> None:
    notifier = synth.function_id("functions.notifier.handler.lambda_handler")
    subscriptions = list(synth.of_type("AWS::SNS::Subscription").values())
    assert {s["Properties"]["TopicArn"]["Ref"] for s in subscriptions} == set(
        synth.of_type("AWS::SNS::Topic")
    ) - {_alarm_topic(synth)}
    for subscription in subscriptions:
        props = subscription["Properties"]
        assert props["Protocol"] == "lambda"
        assert props["Endpoint"] == {"Fn::GetAtt": [notifier, "Arn"]}
        assert "deadLetterTargetArn" in props["RedrivePolicy"]
    permissions = [
        p["Properties"]
        for p in synth.of_type("AWS::Lambda::Permission").values()
        if p["Properties"]["Principal"] == "sns.amazonaws.com"
    ]
    assert len(permissions) == 2
    # SNS invokes asynchronously: what the notifier still fails after Lambda's retries lands in the same queue
    (config,) = [
        c["Properties"]
        for c in synth.of_type("AWS::Lambda::EventInvokeConfig").values()
        if c["Properties"]["FunctionName"] == {"Ref": notifier}
    ]
    assert config["MaximumRetryAttempts"] == 2
    dlq = subscriptions[0]["Properties"]["RedrivePolicy"]["deadLetterTargetArn"]
    assert config["DestinationConfig"]["OnFailure"]["Destination"] == dlq


# ---- API ---------------------------------------------------------------------------------------------------


def test_http_api_uses_a_cognito_jwt_authorizer(synth: Synth) -> None:
    (authorizer_id, authorizer) = synth.one("AWS::ApiGatewayV2::Authorizer")
    props = authorizer["Properties"]
    (pool_id, pool) = synth.one("AWS::Cognito::UserPool")
    (client_id, client) = synth.one("AWS::Cognito::UserPoolClient")
    assert props["AuthorizerType"] == "JWT"
    assert props["JwtConfiguration"]["Issuer"] == {"Fn::GetAtt": [pool_id, "ProviderURL"]}
    assert props["JwtConfiguration"]["Audience"] == [{"Ref": client_id}]

    routes = {
        r["Properties"]["RouteKey"]: r["Properties"]
        for r in synth.of_type("AWS::ApiGatewayV2::Route").values()
    }
    assert routes["GET /v1/health"]["AuthorizationType"] == "NONE"
    protected = {key: route for key, route in routes.items() if key.endswith(" /v1/{proxy+}")}
    assert {key.split()[0] for key in protected} >= {"GET", "POST", "PUT", "DELETE"}
    assert "OPTIONS /v1/{proxy+}" not in routes  # preflights are answered by the API's CORS configuration
    for route in protected.values():
        assert route["AuthorizationType"] == "JWT"
        assert route["AuthorizerId"] == {"Ref": authorizer_id}
        # any one of the scopes: hosted-UI tokens (modamoda/api) or direct sign-in tokens (default: accepted)
        assert route["AuthorizationScopes"] == ["modamoda/api", "aws.cognito.signin.user.admin"]

    (_, api) = synth.one("AWS::ApiGatewayV2::Api")
    (distribution_id, _) = synth.one("AWS::CloudFront::Distribution")
    assert list(map(render, api["Properties"]["CorsConfiguration"]["AllowOrigins"])) == [
        f"https://<<GetAtt:{distribution_id}.DomainName>>",
        "http://localhost:8787",
    ]
    (_, stage) = synth.one("AWS::ApiGatewayV2::Stage")
    assert stage["Properties"]["StageName"] == "$default"
    assert stage["Properties"]["DefaultRouteSettings"]["ThrottlingRateLimit"] > 0
    assert stage["Properties"]["DefaultRouteSettings"]["ThrottlingBurstLimit"] > 0
    assert "DestinationArn" in stage["Properties"]["AccessLogSettings"]

    pool_props = pool["Properties"]
    assert pool_props["UsernameAttributes"] == ["email"]
    assert pool_props["AdminCreateUserConfig"]["AllowAdminCreateUserOnly"] is False
    assert pool_props["MfaConfiguration"] == "OPTIONAL"
    assert pool_props["Policies"]["PasswordPolicy"]["MinimumLength"] >= 12
    client_props = client["Properties"]
    assert client_props["GenerateSecret"] is False
    assert client_props["AllowedOAuthFlows"] == ["code"]
    assert set(client_props["ExplicitAuthFlows"]) >= {"ALLOW_USER_PASSWORD_AUTH", "ALLOW_USER_SRP_AUTH"}
    scopes = set(map(render, client_props["AllowedOAuthScopes"]))
    assert {"openid", "email"} <= scopes
    assert any(scope.endswith("/api") for scope in scopes)


# ---- whole template ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_template_passes_cfn_lint(stage: str, synth: Synth, prod_synth: Synth) -> None:
    from cfnlint.api import ManualArgs, lint

    template = (synth if stage == "dev" else prod_synth).template
    # W3005 (redundant DependsOn) is how CDK orders a function after its role's policy. W3010: in a concrete
    # environment CDK writes the availability zones the CLI looked up for that account (cdk.context.json).
    ignored = ["W3005"] if stage == "dev" else ["W3005", "W3010"]
    matches = lint(
        json.dumps(template), config=ManualArgs(regions=["us-east-1", "eu-west-1"], ignore_checks=ignored)
    )
    assert not matches, "\n".join(f"{m.rule.id} {m.message} at {'/'.join(map(str, m.path))}" for m in matches)


def schedules(synth: Synth) -> dict[str, dict[str, Any]]:
    """The scheduled rules by the handler of the function they start."""
    handlers = {lid: handler for handler, lid in ((h, synth.function_id(h)) for h in synth.functions())}
    found = {}
    for rule in synth.of_type("AWS::Events::Rule").values():
        if "ScheduleExpression" in rule["Properties"]:
            (target,) = rule["Properties"]["Targets"]
            found[handlers[target["Arn"]["Fn::GetAtt"][0]]] = rule["Properties"]
    return found


SWEEPER = "functions.sweeper.handler.lambda_handler"
DISPATCHER = "functions.dispatch_inference.handler.lambda_handler"


def test_prod_sweeps_every_five_minutes_and_dispatches_every_minute(prod_synth: Synth) -> None:
    rules = schedules(prod_synth)
    assert rules.keys() == {SWEEPER, DISPATCHER}
    assert rules[SWEEPER]["ScheduleExpression"] == "rate(5 minutes)"
    assert rules[DISPATCHER]["ScheduleExpression"] == "rate(1 minute)"


def test_expired_holds_are_swept_on_a_schedule(synth: Synth) -> None:
    rules = schedules(synth)
    # dev: hourly, both, so that an idle Aurora cluster can pause (enqueues and results start the dispatcher)
    assert {h: r["ScheduleExpression"] for h, r in rules.items()} == {
        SWEEPER: "rate(1 hour)",
        DISPATCHER: "rate(1 hour)",
    }
    for rule in rules.values():
        (target,) = rule["Targets"]
        assert "EventsDeadLetterQueue" in target["DeadLetterConfig"]["Arn"]["Fn::GetAtt"][0]
        assert target["RetryPolicy"] == {"MaximumEventAgeInSeconds": 300, "MaximumRetryAttempts": 2}
