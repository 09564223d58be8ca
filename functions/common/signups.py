"""New accounts start with a confirmed e-mail address: no tenant and no welcome credits before it.

The public web client allows self sign-up, and every new subject the API sees is provisioned with welcome credits
(``tenants.ensure_user``). That happens only once Cognito marks the user's e-mail address verified (the
``email_verified`` attribute). Access tokens carry no e-mail claims, so the API asks the user pool
(``AdminGetUser`` on ``USER_POOL_ID``, which the Api role may call), and only for a subject it has not provisioned:
a known user, or an API key (mapped to its tenant when created), costs no call. Until the address is confirmed every
route answers ``403 email_not_verified`` with a sentence saying so; the first request after confirming provisions
the account with its welcome credits, exactly once (the provisioning is race-free and idempotent).

A self sign-up is confirmed with the code Cognito mails to the address, which verifies it; what this closes is an
account confirmed without its address (``AdminConfirmSignUp``, a pre-sign-up trigger) getting credits for an address
nobody proved to own. The pool keeps a changed address unverified beside the old one until it is confirmed
(``AttributesRequireVerificationBeforeUpdate``, infra/api.py).
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from functions.common import aws, config
from functions.common.errors import Forbidden, TransientError, Unauthorized

_THROTTLED = frozenset({"TooManyRequestsException", "ThrottlingException", "LimitExceededException"})


class EmailNotVerified(Forbidden):
    code = "email_not_verified"

    def __init__(self, welcome_credits: int) -> None:
        welcome = (
            f" Your {welcome_credits} welcome credits are added on your first visit after confirming."
            if welcome_credits > 0
            else ""
        )
        super().__init__(
            "Please confirm your e-mail address to start: enter the code we sent to it (the sign-in page can send a "
            f"new one).{welcome}"
        )


def username(claims: dict[str, Any]) -> str:
    """The Cognito user name of an access token (``username``; for pools that sign in with the e-mail address it is
    the user's internal id, which ``AdminGetUser`` accepts)."""
    name = claims.get("username") or claims.get("cognito:username") or claims.get("sub")
    return str(name)


def email_verified(cognito: Any, user_pool_id: str, name: str) -> bool:
    """Whether the user pool marks this user's e-mail address verified. A user who no longer exists (deleted while a
    token is still unexpired) is ``Unauthorized``; Cognito's throttling is ``TransientError`` (503, retry)."""
    try:
        user = cognito.admin_get_user(UserPoolId=user_pool_id, Username=name)
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code")
        if code == "UserNotFoundException":
            raise Unauthorized("this user no longer exists") from exc
        if code in _THROTTLED:
            raise TransientError(f"the identity service is busy: {exc}") from exc
        raise
    attributes = {a["Name"]: a.get("Value") for a in user.get("UserAttributes", [])}
    return bool(attributes.get("email")) and str(attributes.get("email_verified", "")).lower() == "true"


def require_verified_email(claims: dict[str, Any], welcome_credits: int) -> None:
    """Raise ``EmailNotVerified`` unless the caller's e-mail address is verified in the user pool."""
    if not email_verified(aws.client("cognito-idp"), config.user_pool_id(), username(claims)):
        raise EmailNotVerified(welcome_credits)
