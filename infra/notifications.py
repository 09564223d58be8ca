"""Customer notifications: signed webhooks for finished jobs and batches, and the batch e-mail (SES).

The functions that end a job or a batch write an outbox row in the same transaction (``notifications`` table)
and, right after the commit, hand it to ``WebhooksQueue`` (``WEBHOOK_QUEUE_URL``, ``sqs:SendMessage`` on that
queue only); the sweeper re-sends rows whose message never left or was lost. The ``Webhooks`` function consumes
the queue (batches of 5, partial batch failures): it POSTs the signed event to the tenant's URL (public
addresses only, no redirects, a short timeout) or sends the e-mail through SES from ``EMAIL_FROM``, and schedules
a retry by re-enqueueing with ``DelaySeconds`` (exponential backoff, full jitter) until the last attempt marks
the row dead. The event source's maximum concurrency (``webhooks_max_concurrency``) bounds the functions (and
database connections) a burst of deliveries can take. A message the function itself fails five times (the database
unreachable) goes to ``WebhooksDeadLetterQueue``, which is alarmed (``infra/observability.py``).

The function's role: consume and send on its queue, ``ses:SendEmail`` on the sender identity only,
``cognito-idp:ListUsers`` on the user pool (the batch owner's address: access tokens carry none), the
application role's database secret, and its own log group.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from email.utils import parseaddr

from aws_cdk import Duration
from aws_cdk import aws_cognito as cognito
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as event_sources
from aws_cdk import aws_ses as ses
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.lambdas import LambdaPackaging
from infra.pipeline import dead_letter_queue, queue

WEBHOOKS_TIMEOUT = Duration.seconds(
    60
)  # a batch of 5 deliveries with a 5 s HTTP timeout each, and the database
WEBHOOKS_BATCH_SIZE = 5


def sender_address(email_from: str) -> str:
    """``Modamoda <no-reply@example.com>`` → ``no-reply@example.com`` (the SES identity)."""
    address = parseaddr(email_from)[1]
    if "@" not in address:
        raise ValueError(f"email_from must be an e-mail address, got {email_from!r}")
    return address


@dataclass(frozen=True)
class NotificationsProps:
    packaging: LambdaPackaging
    user_pool: cognito.IUserPool
    email_from: str
    producers: Sequence[lambda_.Function] = field(default_factory=tuple)
    """Functions that end jobs or batches: they hand new outbox rows to the queue after their commit."""
    http_timeout_seconds: int = 5
    max_concurrency: int = 2
    """Webhooks instances the queue may run at once (``ScalingConfig.MaximumConcurrency``, 2 to 1000): each holds
    a database connection, and a bulk batch's deliveries wait in the queue instead of fanning out."""


class Notifications(Construct):
    def __init__(self, scope: Construct, construct_id: str, props: NotificationsProps) -> None:
        super().__init__(scope, construct_id)
        address = sender_address(props.email_from)
        self.dead_letter_queue = dead_letter_queue(
            self,
            "WebhooksDeadLetterQueue",
            "webhook and e-mail messages the Webhooks function failed five times (the database unreachable); "
            "the outbox rows stay pending and the sweeper re-sends them",
        )
        self.queue = queue(
            self,
            "WebhooksQueue",
            visibility_timeout=Duration.seconds(WEBHOOKS_TIMEOUT.to_seconds() * 6),
            retention_period=Duration.days(4),
            dead_letter_queue=sqs.DeadLetterQueue(queue=self.dead_letter_queue, max_receive_count=5),
        )
        # The sender. SES sends only once the address (or its domain) is verified: AWS mails a link to it.
        self.identity = ses.EmailIdentity(self, "SenderIdentity", identity=ses.Identity.email(address))

        self.function = props.packaging.function(
            self,
            "Webhooks",
            handler="functions.webhooks.handler.lambda_handler",
            environment={
                "WEBHOOK_QUEUE_URL": self.queue.queue_url,
                "EMAIL_FROM": props.email_from,
                "USER_POOL_ID": props.user_pool.user_pool_id,
                "WEBHOOK_TIMEOUT_SECONDS": str(props.http_timeout_seconds),
            },
            timeout=WEBHOOKS_TIMEOUT,
            memory_size=256,
            description="Signed customer webhooks and batch e-mails (SQS consumer)",
        )
        self.function.add_event_source(
            event_sources.SqsEventSource(
                self.queue,
                batch_size=WEBHOOKS_BATCH_SIZE,
                report_batch_item_failures=True,
                max_concurrency=props.max_concurrency,
            )
        )
        self.queue.grant_send_messages(self.function)  # retries are re-enqueued with a delay
        self.function.add_to_role_policy(
            iam.PolicyStatement(actions=["ses:SendEmail"], resources=[self.identity.email_identity_arn])
        )
        self.function.add_to_role_policy(
            iam.PolicyStatement(actions=["cognito-idp:ListUsers"], resources=[props.user_pool.user_pool_arn])
        )
        for producer in props.producers:
            self.add_producer(producer)

    def add_producer(self, function: lambda_.Function) -> None:
        """Let ``function`` hand outbox rows to the queue after its commit."""
        function.add_environment("WEBHOOK_QUEUE_URL", self.queue.queue_url)
        self.queue.grant_send_messages(function)
