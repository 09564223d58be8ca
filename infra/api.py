"""The public API: a Cognito user pool for the PWA, an HTTP API with a JWT authorizer, the Api Lambda.

Authorization: every route but ``GET /v1/health``, ``GET /v1/public/packs`` (the landing page's prices) and the
Stripe webhook needs a Cognito **access token** of the web client (the authorizer checks issuer, ``client_id`` and
expiry) carrying one of the route's scopes. HTTP API JWT authorizers accept a token that has *any* listed scope:

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

Sign-up: self sign-up confirms the e-mail address with a mailed code, and only a verified address gets an account and
its welcome credits (functions/common/signups.py). Cognito mails the codes and password resets through SES from
``email_from`` when context ``cognito_ses_identity`` names a verified identity (``EmailSendingAccount: DEVELOPER``);
without one (non-prod only) it uses its own sender, whose quota is 50 e-mails a day per account, and the
synthesis warns. An AWS WAF web ACL on the user pool blocks, per IP address, more than ``signup_rate_limit`` requests
in five minutes to the operations that create users or send e-mail without a signed-in user: ``SignUp``,
``ResendConfirmationCode`` and ``ForgotPassword`` in Cognito's API (the ``X-Amz-Target`` header, which AWS WAF sees
for user pool requests) and the managed login's sign-up, resend-code and forgot-password forms.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from email.utils import parseaddr

from aws_cdk import Annotations, ArnFormat, Aws, Duration, RemovalPolicy, Stack
from aws_cdk import aws_apigatewayv2 as apigw
from aws_cdk import aws_apigatewayv2_authorizers as authorizers
from aws_cdk import aws_apigatewayv2_integrations as integrations
from aws_cdk import aws_cognito as cognito
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_wafv2 as wafv2
from constructs import Construct

from infra.lambdas import LambdaPackaging
from infra.nag import acknowledge, acknowledge_wildcard
from infra.storage import (
    ARCHIVES_PREFIX,
    DROP_PREFIX,
    OBJECT_READ,
    OBJECT_WRITE,
    PREVIEWS_PREFIX,
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
PUBLIC_PACKS_PATH = "/v1/public/packs"  # the landing page's prices, before sign-up
UPLOAD_DELETE = ("s3:DeleteObject", "s3:DeleteObjectVersion")
COGNITO_API_KEY_ACTIONS = (
    "cognito-idp:AdminCreateUser",
    "cognito-idp:AdminSetUserPassword",
    "cognito-idp:AdminGetUser",
    "cognito-idp:AdminDeleteUser",
)
# What the sign-up rate limit counts: Cognito API operations that create a user or send an e-mail without a
# signed-in user (the X-Amz-Target header of the JSON protocol: "AWSCognitoIdentityProviderService.<operation>"),
# and the managed login / hosted UI forms that do the same (POSTs to these paths on the user pool's domain).
COGNITO_TARGET_PREFIX = "AWSCognitoIdentityProviderService."
SIGNUP_OPERATIONS = ("SignUp", "ResendConfirmationCode", "ForgotPassword")
SIGNUP_FORM_PATHS = ("/signup", "/resendcode", "/forgotpassword")  # matched lower-cased
SIGNUP_RATE_WINDOW_SECONDS = 300  # AWS WAF allows 60, 120, 300 or 600

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
    email_from: str = "Modamoda <no-reply@modamoda.example>"
    """The sender of Cognito's e-mails when ``ses_identity`` is set (``Name <address>`` or an address)."""
    ses_identity: str | None = None
    """A verified SES identity (``email_from``'s address or its domain) Cognito sends through; None: Cognito's own
    sender (a warning at synthesis)."""
    signup_rate_limit: int = 20
    """Sign-up, resend-code and forgot-password requests per IP address in five minutes before AWS WAF blocks that
    address (10 at least); 0: no web ACL."""


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
        # DELETE /v1/jobs/{id} removes the job's photo (every version) and its result; re-render and retry copy
        # a job's stored photo (the version it processed) to the new job's key (CopyObject reads and writes).
        grant_objects(
            self.function,
            storage.uploads,
            UPLOADS_PREFIX,
            (*OBJECT_READ, *OBJECT_WRITE, *UPLOAD_DELETE),
            why="signs each upload's POST policy for the exact key it chose (uploads/{tenant}/{job}/...), copies "
            "a job's stored photo to a re-render's key and deletes a deleted job's photo, every version",
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
        grant_objects(
            self.function,
            storage.results,
            PREVIEWS_PREFIX,
            ("s3:GetObject", "s3:DeleteObject"),
            why="signs preview links for the caller's own jobs (previews/{tenant}/{job}/...) and deletes a deleted "
            "job's previews",
        )
        # POST /v1/jobs/archive streams the chosen results into a ZIP through a multipart upload (PutObject covers
        # its create, part and complete calls; a failure aborts it) and signs the ZIP's download.
        grant_objects(
            self.function,
            storage.results,
            ARCHIVES_PREFIX,
            ("s3:PutObject", "s3:AbortMultipartUpload", "s3:GetObject"),
            why="writes each download-all ZIP (archives/{tenant}/{uuid}.zip) and signs its download",
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
            (*OBJECT_READ, *OBJECT_WRITE, *UPLOAD_DELETE),
            why="signs each batch upload's POST policy (drop/{tenant}/{batch}/{file}), copies a batch job's photo "
            "to a re-render's key (uploads/) and deletes a deleted batch job's photo, every version",
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
            # A changed address stays unverified beside the old, verified one until its code is entered, so that
            # email_verified always describes the address the account has (signups.py gives credits on it).
            keep_original=cognito.KeepOriginalAttrs(email=True),
            email=self._email(props),
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
            "passwords are long, sign-up is e-mail verified and rate-limited per IP address by AWS WAF, and the API "
            "is throttled",
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
        self.web_acl = self._add_signup_rate_limit(props) if props.signup_rate_limit else None

    def _email(self, props: ApiProps) -> cognito.UserPoolEmail:
        """Cognito's e-mail: through SES from ``email_from`` with a verified identity, else Cognito's own sender."""
        if props.ses_identity is None:
            Annotations.of(self).add_warning_v2(
                "modamoda:cognito-default-email",
                "no verified SES identity (-c cognito_ses_identity=<domain or address>): Cognito sends sign-up "
                "codes and password resets with its own sender (no-reply@verificationemail.com), limited to 50 "
                "e-mails a day per account; verify email_from's domain or address in SES and name it",
            )
            return cognito.UserPoolEmail.with_cognito()
        name, address = parseaddr(props.email_from)
        return cognito.UserPoolEmail.with_ses(
            from_email=address,
            from_name=name or None,
            # the identity's Region: the stack's (a token when the stack is environment-agnostic)
            ses_region=Stack.of(self).region,
            ses_verified_domain=None if "@" in props.ses_identity else props.ses_identity,
        )

    def _add_signup_rate_limit(self, props: ApiProps) -> wafv2.CfnWebACL:
        """A regional web ACL on the user pool: one rate-based rule per IP address over the sign-up operations."""
        lowercase = wafv2.CfnWebACL.TextTransformationProperty(priority=0, type="LOWERCASE")
        none = wafv2.CfnWebACL.TextTransformationProperty(priority=0, type="NONE")

        def header_is(operation: str) -> wafv2.CfnWebACL.StatementProperty:
            return wafv2.CfnWebACL.StatementProperty(
                byte_match_statement=wafv2.CfnWebACL.ByteMatchStatementProperty(
                    field_to_match=wafv2.CfnWebACL.FieldToMatchProperty(
                        single_header={"Name": "x-amz-target"}
                    ),
                    positional_constraint="EXACTLY",
                    search_string=f"{COGNITO_TARGET_PREFIX}{operation}".lower(),
                    text_transformations=[lowercase],
                )
            )

        def form_post(path: str) -> wafv2.CfnWebACL.StatementProperty:
            return wafv2.CfnWebACL.StatementProperty(
                and_statement=wafv2.CfnWebACL.AndStatementProperty(
                    statements=[
                        wafv2.CfnWebACL.StatementProperty(
                            byte_match_statement=wafv2.CfnWebACL.ByteMatchStatementProperty(
                                field_to_match=wafv2.CfnWebACL.FieldToMatchProperty(uri_path={}),
                                positional_constraint="STARTS_WITH",
                                search_string=path,
                                text_transformations=[lowercase],
                            )
                        ),
                        wafv2.CfnWebACL.StatementProperty(
                            byte_match_statement=wafv2.CfnWebACL.ByteMatchStatementProperty(
                                field_to_match=wafv2.CfnWebACL.FieldToMatchProperty(method={}),
                                positional_constraint="EXACTLY",
                                search_string="POST",
                                text_transformations=[none],
                            )
                        ),
                    ]
                )
            )

        metric = f"modamoda-{props.stage}-signup"
        web_acl = wafv2.CfnWebACL(
            self,
            "SignUpWebAcl",
            description="Modamoda: rate limit of sign-ups, resent codes and password resets per IP address",
            scope="REGIONAL",
            default_action=wafv2.CfnWebACL.DefaultActionProperty(allow={}),
            visibility_config=wafv2.CfnWebACL.VisibilityConfigProperty(
                cloud_watch_metrics_enabled=True, metric_name=metric, sampled_requests_enabled=True
            ),
            rules=[
                wafv2.CfnWebACL.RuleProperty(
                    name="SignUpRatePerIp",
                    priority=0,
                    action=wafv2.CfnWebACL.RuleActionProperty(block={}),
                    statement=wafv2.CfnWebACL.StatementProperty(
                        rate_based_statement=wafv2.CfnWebACL.RateBasedStatementProperty(
                            aggregate_key_type="IP",
                            limit=props.signup_rate_limit,
                            evaluation_window_sec=SIGNUP_RATE_WINDOW_SECONDS,
                            scope_down_statement=wafv2.CfnWebACL.StatementProperty(
                                or_statement=wafv2.CfnWebACL.OrStatementProperty(
                                    statements=[
                                        *(header_is(operation) for operation in SIGNUP_OPERATIONS),
                                        *(form_post(path) for path in SIGNUP_FORM_PATHS),
                                    ]
                                )
                            ),
                        )
                    ),
                    visibility_config=wafv2.CfnWebACL.VisibilityConfigProperty(
                        cloud_watch_metrics_enabled=True,
                        metric_name=f"{metric}-rate",
                        sampled_requests_enabled=True,
                    ),
                )
            ],
        )
        wafv2.CfnWebACLAssociation(
            self,
            "SignUpWebAclAssociation",
            resource_arn=self.user_pool.user_pool_arn,
            web_acl_arn=web_acl.attr_arn,
        )
        return web_acl

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
        for route in self.http_api.add_routes(
            path=PUBLIC_PACKS_PATH,
            methods=[apigw.HttpMethod.GET],
            integration=integration,
            authorizer=apigw.HttpNoneAuthorizer(),
        ):
            acknowledge(route, "APIG4", "public price list for the landing page: reads no customer data")
        self.scopes = [API_SCOPE_FULL, *([SIGNIN_SCOPE] if props.accept_signin_scope else [])]
        self.http_api.add_routes(
            path="/v1/{proxy+}",
            methods=API_METHODS,
            integration=integration,
            authorizer=self.authorizer,
            authorization_scopes=self.scopes,
        )
        self.url = self.stage.url
