"""Cognito user-pool sign-in over its JSON protocol (``X-Amz-Target``), the same calls the PWA makes.

Works against ``https://cognito-idp.<region>.amazonaws.com/`` and the local stack's ``<web_url>/local/cognito``.
A person signs in with ``USER_PASSWORD_AUTH``; an API key ``mmk_<id>_<secret>`` is a Cognito user of its tenant
(username ``apikey-<id>@api-keys.modamoda.invalid``, password the secret) and signs in the same way. Sessions are
renewed with ``REFRESH_TOKEN_AUTH`` and ended with ``RevokeToken``.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from typing import Any

import requests

from modamoda_cli.config import Session

TARGET_PREFIX = "AWSCognitoIdentityProviderService."
CONTENT_TYPE = "application/x-amz-json-1.1"
API_KEY_PREFIX = "mmk"
API_KEY_DOMAIN = "api-keys.modamoda.invalid"

FRIENDLY = {
    "NotAuthorizedException": "Incorrect e-mail address or password.",
    "UserNotFoundException": "Incorrect e-mail address or password.",
    "UserNotConfirmedException": "This account is not confirmed yet: confirm it with the code from the e-mail "
    "(in the web app), then sign in again.",
    "PasswordResetRequiredException": "This account needs a new password: reset it in the web app.",
    "TooManyRequestsException": "Too many attempts. Wait a minute and try again.",
    "LimitExceededException": "Too many attempts. Wait a minute and try again.",
}


class AuthError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def cognito_endpoint(region: str) -> str:
    return f"https://cognito-idp.{region}.amazonaws.com/"


def parse_api_key(api_key: str) -> tuple[str, str, str]:
    """``mmk_<id>_<secret>`` → (key id, Cognito username, password)."""
    prefix, _, rest = api_key.strip().partition("_")
    key_id, _, secret = rest.partition("_")
    try:
        key_id = str(uuid.UUID(key_id))
    except ValueError:
        key_id = ""
    if prefix != API_KEY_PREFIX or not key_id or not secret:
        raise AuthError(
            "invalid_api_key", "That is not a Modamoda API key (they look like mmk_<id>_<secret>)."
        )
    return key_id, f"apikey-{key_id}@{API_KEY_DOMAIN}", secret


def jwt_claims(token: str | None) -> dict[str, Any]:
    """The claims of a JWT, unverified (for display only: the API verifies tokens)."""
    if not token:
        return {}
    try:
        payload = token.split(".")[1]
        data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


class Cognito:
    def __init__(
        self, endpoint: str, client_id: str, *, http: requests.Session | None = None, timeout: float = 30.0
    ) -> None:
        self.endpoint, self.client_id, self.timeout = endpoint, client_id, timeout
        self.http = http or requests.Session()

    def call(self, operation: str, body: dict[str, Any]) -> dict[str, Any]:
        try:
            response = self.http.post(
                self.endpoint,
                data=json.dumps(body),
                headers={"Content-Type": CONTENT_TYPE, "X-Amz-Target": TARGET_PREFIX + operation},
                timeout=self.timeout,
            )
        except requests.RequestException as exc:
            raise AuthError(
                "network", f"The sign-in service ({self.endpoint}) cannot be reached: {type(exc).__name__}."
            ) from exc
        try:
            data = response.json()
        except ValueError:
            data = {}
        if not isinstance(data, dict):
            data = {}
        if response.status_code >= 400:
            raw = str(
                data.get("__type") or data.get("code") or response.headers.get("x-amzn-errortype") or ""
            )
            code = raw.split("#")[-1].split(":")[0] or f"HTTP{response.status_code}"
            said = str(data.get("message") or data.get("Message") or "")
            if code == "NotAuthorizedException" and any(
                w in said.lower() for w in ("disabled", "expired", "revoked")
            ):
                message = said
            else:
                message = FRIENDLY.get(code) or said or f"Sign-in failed (HTTP {response.status_code})."
            raise AuthError(code, message)
        return data

    def _initiate(self, flow: str, parameters: dict[str, str]) -> dict[str, Any]:
        data = self.call(
            "InitiateAuth", {"AuthFlow": flow, "ClientId": self.client_id, "AuthParameters": parameters}
        )
        result = data.get("AuthenticationResult")
        if not isinstance(result, dict) or not result.get("AccessToken"):
            challenge = data.get("ChallengeName") or "an unknown challenge"
            raise AuthError(
                str(data.get("ChallengeName") or "challenge"),
                f"This account needs an extra sign-in step ({challenge}) that the command line does not offer; "
                "complete it in the web app first.",
            )
        return result

    @staticmethod
    def _session(result: dict[str, Any], kind: str, previous: Session | None = None, **extra: Any) -> Session:
        id_token = result.get("IdToken") or (previous.id_token if previous else None)
        email = (
            jwt_claims(id_token).get("email")
            or extra.pop("email", None)
            or (previous.email if previous else None)
        )
        extra.pop("email", None)
        return Session(
            kind=kind,
            access_token=str(result["AccessToken"]),
            refresh_token=result.get("RefreshToken") or (previous.refresh_token if previous else None),
            expires_at=time.time() + float(result.get("ExpiresIn") or 3600),
            id_token=id_token,
            email=email,
            api_key_id=extra.pop("api_key_id", None) or (previous.api_key_id if previous else None),
        )

    def sign_in(self, email: str, password: str) -> Session:
        result = self._initiate("USER_PASSWORD_AUTH", {"USERNAME": email, "PASSWORD": password})
        return self._session(result, "password", email=email)

    def sign_in_api_key(self, api_key: str) -> Session:
        key_id, username, secret = parse_api_key(api_key)
        try:
            result = self._initiate("USER_PASSWORD_AUTH", {"USERNAME": username, "PASSWORD": secret})
        except AuthError as exc:
            if exc.code in {"NotAuthorizedException", "UserNotFoundException"}:
                raise AuthError(exc.code, "This API key is not valid (revoked, or mistyped).") from exc
            raise
        return self._session(result, "api_key", email=username, api_key_id=key_id)

    def refresh(self, session: Session) -> Session:
        if not session.refresh_token:
            raise AuthError("no_session", "The session cannot be renewed.")
        result = self._initiate("REFRESH_TOKEN_AUTH", {"REFRESH_TOKEN": session.refresh_token})
        return self._session(result, session.kind, previous=session)

    def revoke(self, session: Session) -> None:
        if session.refresh_token:
            self.call("RevokeToken", {"ClientId": self.client_id, "Token": session.refresh_token})


def discover(web_url: str, *, http: requests.Session | None = None, timeout: float = 30.0) -> dict[str, str]:
    """The web app's ``/config.json`` (what CDK writes for the PWA; the local stack serves the same): the API URL,
    the Cognito app client, its endpoint and region."""
    url = web_url.rstrip("/") + "/config.json"
    try:
        response = (http or requests.Session()).get(
            url, timeout=timeout, headers={"Accept": "application/json"}
        )
    except requests.RequestException as exc:
        raise AuthError("network", f"{url} cannot be reached: {type(exc).__name__}.") from exc
    if response.status_code != 200:
        raise AuthError(
            "no_config", f"{url} answered HTTP {response.status_code}: is this the web app's address?"
        )
    try:
        data = response.json()
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise AuthError("no_config", f"{url} is not JSON: is this the web app's address?")
    missing = [k for k in ("apiUrl", "clientId") if not data.get(k)]
    if not data.get("cognitoEndpoint") and not data.get("region"):
        missing.append("cognitoEndpoint")
    if missing:
        raise AuthError("no_config", f"{url} has no {', '.join(missing)}")
    return {
        "api_url": str(data["apiUrl"]).rstrip("/"),
        "client_id": str(data["clientId"]),
        "cognito_endpoint": str(data.get("cognitoEndpoint") or cognito_endpoint(str(data["region"]))),
        "region": str(data.get("region") or ""),
        "user_pool_id": str(data.get("userPoolId") or ""),
    }
