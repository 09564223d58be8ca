"""The public API: a Cognito user pool for the PWA, an HTTP API with a JWT authorizer, the Api Lambda.

Authorization: every route but ``GET /v1/health`` and the Stripe webhook needs a Cognito **access token** of the
web client (the authorizer checks issuer, ``client_id`` and expiry) carrying one of the route's scopes. HTTP API
JWT authorizers accept a token that has *any* listed scope:

* ``modamoda/api``: the resource server's scope, granted by the hosted sign-in (authorization code + PKCE).
  Tokens the hosted UI issues without it (only ``openid email``) are refused.
* ``aws.cognito.signin.user.admin``: the only scope of tokens from direct sign-in (SRP, ``InitiateAuth``),
  which a first-party PWA with its own sign-in form uses. Accepting it adds no other client: the audience is
  still only the web client. Context ``accept_signin_scope=false`` drops it, so that only hosted-UI tokens
  pass (when the PWA signs in with code + PKCE).

No machine-to-machine (client-credentials) client is created: a shared client would put every shop in one
identity, and per-shop clients are made at run time, which a fixed authorizer audience cannot list. Shops'
machines use API keys instead (``POST /v1/account/api-keys``): each key is a Cognito user of the shop's tenant
that the Api function creates (AdminCreateUser/AdminSetUserPassword on this pool only) and signs in like a person
on the web client (its tokens carry only the sign-in scope, so API keys need ``accept_signin_scope``, the
default); or the per-tenant drop folder.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from aws_cdk import ArnFormat, Aws, Duration, RemovalPolicy, Stack
from aws_cdk import aws_apigatewayv2 as apigw
from aws_cdk import aws_apigatewayv2_authorizers as authorizers
from aws_cdk import aws_apigatewayv2_integrations as integrations
from aws_cdk import aws_cognito as cognito
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from infra.lambdas import LambdaPackaging
from infra.nag import acknowledge, acknowledge_wildcard
from infra.storage import (
    DROP_PREFIX,
    OBJECT_WRITE,
    RESULTS_PREFIX,
    UPLOADS_PREFIX,
    Storage,
    grant_batch_reports,
    grant_objects,
)

RESOURCE_SERVER_ID = "modamoda"
API_SCOPE = "api"
API_SCOPE_FULL = f"{RESOURCE_SERVER_ID}/{API_SCOPE}"
SIGNIN_SCOPE = "aws.cognito.signin.user.admin"
HEALTH_PATH = "/v1/health"
UPLOAD_DELETE = ("s3:DeleteObject", "s3:DeleteObjectVersion")
COGNITO_API_KEY_ACTIONS = (
    "cognito-idp:AdminCreateUser",
    "cognito-idp:AdminSetUserPassword",
    "cognito-idp:AdminGetUser",
    "cognito-idp:AdminDeleteUser",
)
# Every method but OPTIONS: API Gateway answers CORS preflights itself; they must never meet the authorizer.
API_METHODS = [
    apigw.HttpMethod.GET,
    apigw.HttpMethod.POST,
    apigw.HttpMethod.PUT,
    apigw.HttpMethod.PATCH,
    apigw.HttpMethod.DELETE,
    apigw.HttpMethod.HEAD,
]


@dataclass(frozen=True)
class ApiProps:
    storage: Storage
    packaging: LambdaPackaging
    stage: str
    web_origins: Sequence[str]
    removal_policy: RemovalPolicy
    accept_signin_scope: bool = True
    upload_max_bytes: int = 25 * 1024 * 1024
    upload_url_ttl_seconds: int = 300
    result_url_ttl_seconds: int = 900
    signup_grant_credits: int = 10
    throttle_rate_limit: float = 50
    throttle_burst_limit: int = 100
    log_retention: logs.RetentionDays = logs.RetentionDays.ONE_MONTH
    state_machine: sfn.StateMachine | None = None
    """The job workflow: cancelling a batch stops the executions of its files that have not started."""


class Api(Construct):
    def __init__(self, scope: Construct, construct_id: str, props: ApiProps) -> None:
        super().__init__(scope, construct_id)
        self._add_user_pool(props)

        storage = props.storage
        self.function = props.packaging.function(
            self,
            "Api",
            handler="functions.api.handler.lambda_handler",
            environment={
                "UPLOAD_BUCKET": storage.uploads.bucket_name,
                "RESULTS_BUCKET": storage.results.bucket_name,
                "UPLOAD_MAX_BYTES": str(props.upload_max_bytes),
                "UPLOAD_URL_TTL_SECONDS": str(props.upload_url_ttl_seconds),
                "RESULT_URL_TTL_SECONDS": str(props.result_url_ttl_seconds),
                "SIGNUP_GRANT_CREDITS": str(props.signup_grant_credits),
                "DROP_BUCKET": storage.drop.bucket_name,
                "WEB_ORIGINS": ",".join(props.web_origins),  # Checkout may only return to the PWA
                "USER_POOL_ID": self.user_pool.user_pool_id,  # API keys are users of this pool
            },
            timeout=Duration.seconds(29),  # the HTTP API integration limit
        )
        # Pre-signed POST uploads and pre-signed GET downloads are signed with this function's credentials;
        # DELETE /v1/jobs/{id} removes the job's photo (every version) and its result.
        grant_objects(
            self.function,
            storage.uploads,
            UPLOADS_PREFIX,
            (*OBJECT_WRITE, *UPLOAD_DELETE),
            why="signs each upload's POST policy for the exact key it chose (uploads/{tenant}/{job}/...) and "
            "deletes a deleted job's photo, every version",
        )
        self.function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["s3:ListBucketVersions"],
                resources=[storage.uploads.bucket_arn],
                conditions={"StringLike": {"s3:prefix": [f"{UPLOADS_PREFIX}*"]}},
            )
        )
        grant_objects(
            self.function,
            storage.results,
            RESULTS_PREFIX,
            ("s3:GetObject", "s3:DeleteObject"),
            why="signs download URLs for the caller's own results (results/{tenant}/...) and deletes a deleted "
            "job's result",
        )
        self._add_batches(props)
        # API keys are Cognito users of the tenant: created, given their secret, looked up and deleted here.
        self.function.add_to_role_policy(
            iam.PolicyStatement(
                actions=list(COGNITO_API_KEY_ACTIONS), resources=[self.user_pool.user_pool_arn]
            )
        )

        self._add_http_api(props)

    def _add_batches(self, props: ApiProps) -> None:
        """Batches: pre-signed POSTs into drop/{tenant}/{batch}/, the seal's listing of that folder, deleting a
        batch job's photo, the report of a batch that a cancel or seal finished, stopping cancelled executions."""
        storage = props.storage
        grant_objects(
            self.function,
            storage.drop,
            DROP_PREFIX,
            (*OBJECT_WRITE, *UPLOAD_DELETE),
            why="signs each batch upload's POST policy (drop/{tenant}/{batch}/{file}) and deletes a deleted batch "
            "job's photo, every version",
        )
        self.function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["s3:ListBucket", "s3:ListBucketVersions"],
                resources=[storage.drop.bucket_arn],
                conditions={"StringLike": {"s3:prefix": [f"{DROP_PREFIX}*"]}},
            )
        )
        grant_batch_reports(
            self.function,
            storage.results,
            why="writes the report of a batch that a cancel or a seal finished",
        )
        if props.state_machine is not None:
            machine = props.state_machine
            self.function.add_environment("STATE_MACHINE_ARN", machine.state_machine_arn)
            executions = Stack.of(self).format_arn(
                service="states",
                resource="execution",
                resource_name=f"{machine.state_machine_name}:*",
                arn_format=ArnFormat.COLON_RESOURCE_NAME,
            )
            self.function.add_to_role_policy(
                iam.PolicyStatement(actions=["states:StopExecution"], resources=[executions])
            )
            assert self.function.role is not None
            acknowledge_wildcard(
                self.function.role,
                executions,
                "executions of the job state machine only: a cancelled batch stops its files' executions, "
                "whose names are known only per job",
            )

    def _add_user_pool(self, props: ApiProps) -> None:
        self.user_pool = cognito.UserPool(
            self,
            "UserPool",
            sign_in_aliases=cognito.SignInAliases(email=True),
            self_sign_up_enabled=True,
            auto_verify=cognito.AutoVerifiedAttrs(email=True),
            standard_attributes=cognito.StandardAttributes(
                email=cognito.StandardAttribute(required=True, mutable=True)
            ),
            password_policy=cognito.PasswordPolicy(
                min_length=12,
                require_lowercase=True,
                require_uppercase=True,
                require_digits=True,
                require_symbols=True,
                temp_password_validity=Duration.days(3),
            ),
            mfa=cognito.Mfa.OPTIONAL,
            mfa_second_factor=cognito.MfaSecondFactor(otp=True, sms=False),
            account_recovery=cognito.AccountRecovery.EMAIL_ONLY,
            # Essentials: no threat protection (the Plus plan's advanced security costs per user).
            feature_plan=cognito.FeaturePlan.ESSENTIALS,
            deletion_protection=props.removal_policy == RemovalPolicy.RETAIN,
            removal_policy=props.removal_policy,
        )
        acknowledge(
            self.user_pool,
            "COG2",
            "shoppers and shop staff sign up themselves; TOTP MFA is offered (optional) rather than forced",
        )
        acknowledge(
            self.user_pool,
            "COG8",
            "the Essentials plan: the Plus plan's threat protection is billed per monthly active user; "
            "passwords are long, sign-up is e-mail verified and the API is throttled",
        )
        self.api_scope = cognito.ResourceServerScope(
            scope_name=API_SCOPE, scope_description="Use the Modamoda API"
        )
        self.resource_server = self.user_pool.add_resource_server(
            "ResourceServer",
            identifier=RESOURCE_SERVER_ID,
            scopes=[self.api_scope],
        )
        self.client = self.user_pool.add_client(
            "WebClient",
            # A public client (browser PWA): no secret; authorization code with PKCE, or SRP/password sign-in.
            generate_secret=False,
            auth_flows=cognito.AuthFlow(user_password=True, user_srp=True),
            o_auth=cognito.OAuthSettings(
                flows=cognito.OAuthFlows(authorization_code_grant=True),
                scopes=[
                    cognito.OAuthScope.OPENID,
                    cognito.OAuthScope.EMAIL,
                    cognito.OAuthScope.resource_server(self.resource_server, self.api_scope),
                ],
                callback_urls=[url for o in props.web_origins for url in (f"{o}/", f"{o}/auth/callback")],
                logout_urls=[f"{o}/" for o in props.web_origins],
            ),
            supported_identity_providers=[cognito.UserPoolClientIdentityProvider.COGNITO],
            prevent_user_existence_errors=True,
            enable_token_revocation=True,
            access_token_validity=Duration.hours(1),
            id_token_validity=Duration.hours(1),
            refresh_token_validity=Duration.days(30),
        )
        # Hosted sign-in for the authorization-code flow; the prefix is unique per account, region and stage.
        self.domain = self.user_pool.add_domain(
            "Domain",
            cognito_domain=cognito.CognitoDomainOptions(
                domain_prefix=f"modamoda-{props.stage}-{Aws.ACCOUNT_ID}"
            ),
        )

    def _add_http_api(self, props: ApiProps) -> None:
        self.http_api = apigw.HttpApi(
            self,
            "HttpApi",
            description="Modamoda API",
            create_default_stage=False,
            cors_preflight=apigw.CorsPreflightOptions(
                allow_origins=list(props.web_origins),
                allow_methods=[apigw.CorsHttpMethod.ANY],
                allow_headers=["authorization", "content-type", "idempotency-key"],
                max_age=Duration.hours(1),
            ),
        )
        self.access_logs = logs.LogGroup(
            self, "AccessLogs", retention=props.log_retention, removal_policy=props.removal_policy
        )
        self.stage = apigw.HttpStage(
            self,
            "DefaultStage",
            http_api=self.http_api,
            stage_name="$default",
            auto_deploy=True,
            throttle=apigw.ThrottleSettings(
                rate_limit=props.throttle_rate_limit, burst_limit=props.throttle_burst_limit
            ),
        )
        cfn_stage = self.stage.node.default_child
        assert isinstance(cfn_stage, apigw.CfnStage)
        cfn_stage.access_log_settings = apigw.CfnStage.AccessLogSettingsProperty(
            destination_arn=self.access_logs.log_group_arn,
            format=json.dumps(
                {
                    "requestId": "$context.requestId",
                    "ip": "$context.identity.sourceIp",
                    "requestTime": "$context.requestTime",
                    "method": "$context.httpMethod",
                    "routeKey": "$context.routeKey",
                    "status": "$context.status",
                    "protocol": "$context.protocol",
                    "responseLength": "$context.responseLength",
                    "latency": "$context.responseLatency",
                    "integrationError": "$context.integrationErrorMessage",
                    "authorizerError": "$context.authorizer.error",
                    "sub": "$context.authorizer.claims.sub",
                }
            ),
        )

        self.authorizer = authorizers.HttpJwtAuthorizer(
            "JwtAuthorizer",
            self.user_pool.user_pool_provider_url,
            jwt_audience=[self.client.user_pool_client_id],
        )
        integration = integrations.HttpLambdaIntegration("ApiIntegration", self.function)
        for route in self.http_api.add_routes(
            path=HEALTH_PATH,
            methods=[apigw.HttpMethod.GET],
            integration=integration,
            authorizer=apigw.HttpNoneAuthorizer(),
        ):
            acknowledge(route, "APIG4", "liveness probe: answers a constant, reads no data")
        self.scopes = [API_SCOPE_FULL, *([SIGNIN_SCOPE] if props.accept_signin_scope else [])]
        self.http_api.add_routes(
            path="/v1/{proxy+}",
            methods=API_METHODS,
            integration=integration,
            authorizer=self.authorizer,
            authorization_scopes=self.scopes,
        )
        self.url = self.stage.url
