"""Billing: the Stripe secret, the webhook Lambda and its public route, and Stripe access for the Api Lambda.

The secret is created with placeholders; the operator puts the account's keys in it after the first deploy:
``{"api_key": "sk_live_...", "webhook_secret": "whsec_..."}`` (see README: Billing). Until then both Lambdas
fail fast with a clear ``config_missing`` error (the webhook answers 500, so Stripe keeps retrying).

``POST /v1/billing/stripe/webhook`` has no JWT authorizer: Stripe cannot present a Cognito token; every delivery
is authenticated by its signature instead. API Gateway picks the most specific route, so this exact path wins
over the authorised ``/v1/{proxy+}`` routes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from aws_cdk import Aws, Duration, RemovalPolicy, SecretValue, Stack
from aws_cdk import aws_apigatewayv2 as apigw
from aws_cdk import aws_apigatewayv2_integrations as integrations
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from infra.lambdas import LambdaPackaging
from infra.nag import acknowledge

WEBHOOK_PATH = "/v1/billing/stripe/webhook"
BILLING_HANDLER = "functions.billing.handler.lambda_handler"
SECRET_PLACEHOLDER = {"api_key": "sk_REPLACE_ME", "webhook_secret": "whsec_REPLACE_ME"}
DEPLOYMENT_ENV = "MODAMODA_DEPLOYMENT"


@dataclass(frozen=True)
class BillingProps:
    packaging: LambdaPackaging
    http_api: apigw.HttpApi
    api_function: lambda_.Function  # creates Checkout Sessions: needs the API key
    removal_policy: RemovalPolicy


class Billing(Construct):
    def __init__(self, scope: Construct, construct_id: str, props: BillingProps) -> None:
        super().__init__(scope, construct_id)
        self.secret = secretsmanager.Secret(
            self,
            "StripeSecret",
            description='Stripe keys for Modamoda: {"api_key": "sk_...", "webhook_secret": "whsec_..."}',
            secret_string_value=SecretValue.unsafe_plain_text(json.dumps(SECRET_PLACEHOLDER)),
            removal_policy=props.removal_policy,
        )
        acknowledge(
            self.secret,
            "SMG4",
            "Stripe issues these keys: they are rolled in the Stripe dashboard and then put into this secret "
            "(README: Billing); Secrets Manager cannot rotate them itself",
        )
        # Names this deployment on every Stripe object it creates, so that of several deployments sharing a Stripe
        # account (two stages on one test account) only the one that created an object claims its events.
        self.deployment_id = f"{Aws.ACCOUNT_ID}/{Aws.REGION}/{Stack.of(self).stack_name}"
        self.function = props.packaging.function(
            self,
            "StripeWebhook",
            handler=BILLING_HANDLER,
            environment={"STRIPE_SECRET_ARN": self.secret.secret_arn, DEPLOYMENT_ENV: self.deployment_id},
            timeout=Duration.seconds(29),  # the HTTP API integration limit
        )
        self.secret.grant_read(self.function)

        props.api_function.add_environment("STRIPE_SECRET_ARN", self.secret.secret_arn)
        props.api_function.add_environment(DEPLOYMENT_ENV, self.deployment_id)
        self.secret.grant_read(props.api_function)

        self.routes = props.http_api.add_routes(
            path=WEBHOOK_PATH,
            methods=[apigw.HttpMethod.POST],
            integration=integrations.HttpLambdaIntegration("StripeWebhookIntegration", self.function),
            authorizer=apigw.HttpNoneAuthorizer(),
        )
        for route in self.routes:
            acknowledge(
                route,
                "APIG4",
                "Stripe cannot present a Cognito token; every delivery is authenticated by its Stripe-Signature "
                "(HMAC with the webhook secret, 300 s tolerance) before anything is read or written",
            )
