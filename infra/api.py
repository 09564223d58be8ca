"""The public API: a Cognito user pool for the PWA, an HTTP API with a JWT authorizer, the Api Lambda."""

from __future__ import annotations

import json
from dataclasses import dataclass

from aws_cdk import Aws, Duration, RemovalPolicy
from aws_cdk import aws_apigatewayv2 as apigw
from aws_cdk import aws_apigatewayv2_authorizers as authorizers
from aws_cdk import aws_apigatewayv2_integrations as integrations
from aws_cdk import aws_cognito as cognito
from aws_cdk import aws_logs as logs
from constructs import Construct

from infra.lambdas import LambdaPackaging
from infra.storage import DROP_PREFIX, RESULTS_PREFIX, UPLOADS_PREFIX, Storage

RESOURCE_SERVER_ID = "modamoda"
API_SCOPE = "api"
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
    web_origin: str
    removal_policy: RemovalPolicy
    upload_max_bytes: int = 25 * 1024 * 1024
    upload_url_ttl_seconds: int = 300
    result_url_ttl_seconds: int = 900
    signup_grant_credits: int = 10
    throttle_rate_limit: float = 50
    throttle_burst_limit: int = 100
    log_retention: logs.RetentionDays = logs.RetentionDays.ONE_MONTH


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
                "WEB_ORIGINS": props.web_origin,  # Checkout may only return to the PWA
            },
            timeout=Duration.seconds(29),  # the HTTP API integration limit
        )
        # Pre-signed POST uploads and pre-signed GET downloads are signed with this function's credentials.
        storage.uploads.grant_put(self.function, f"{UPLOADS_PREFIX}*")
        storage.uploads.grant_put(self.function, f"{DROP_PREFIX}*")
        storage.results.grant_read(self.function, f"{RESULTS_PREFIX}*")

        self._add_http_api(props)

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
        self.api_scope = cognito.ResourceServerScope(
            scope_name=API_SCOPE, scope_description="Use the Modamoda API"
        )
        self.resource_server = self.user_pool.add_resource_server(
            "ResourceServer",
            identifier=RESOURCE_SERVER_ID,
            scopes=[self.api_scope],
        )
        origin = props.web_origin
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
                callback_urls=[f"{origin}/", f"{origin}/auth/callback"],
                logout_urls=[f"{origin}/"],
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
                allow_origins=[props.web_origin],
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
        self.http_api.add_routes(
            path="/v1/health",
            methods=[apigw.HttpMethod.GET],
            integration=integration,
            authorizer=apigw.HttpNoneAuthorizer(),
        )
        # No authorization scopes yet: tokens from USER_PASSWORD_AUTH/SRP sign-in only carry
        # "aws.cognito.signin.user.admin"; require "modamoda/api" once the PWA signs in with code + PKCE.
        self.http_api.add_routes(
            path="/v1/{proxy+}",
            methods=API_METHODS,
            integration=integration,
            authorizer=self.authorizer,
        )
        self.url = self.stage.url
