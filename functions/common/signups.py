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

The same answer carries the person's e-mail address and ``name`` (a ``Profile``): the account stores the address
(``users.email``) and names a new personal tenant after the person, so the account page shows them although the
access token carries neither. A user provisioned before that (its stored e-mail is the Cognito user name, a UUID)
is looked up once more on its next call and corrected (``api_service.identity``); after that, no call.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from functions.common import aws, config
from functions.common.errors import Forbidden, TransientError, Unauthorized
from functions.common.observability import logger

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


@dataclass(frozen=True)
class Profile:
    """What the user pool knows of a person: the e-mail address (None if it has none), whether it is verified, and
    the ``name`` attribute (None when not given)."""

    email: str | None
    email_verified: bool
    name: str | None = None


def profile(cognito: Any, user_pool_id: str, name: str) -> Profile:
    """The user's profile in the user pool (``AdminGetUser``). A user who no longer exists (deleted while a token is
    still unexpired) is ``Unauthorized``; Cognito's throttling is ``TransientError`` (503, retry)."""
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
    email = str(attributes.get("email") or "").strip() or None
    person = str(attributes.get("name") or "").strip() or None
    verified = email is not None and str(attributes.get("email_verified", "")).lower() == "true"
    return Profile(email=email, email_verified=verified, name=person)


def email_verified(cognito: Any, user_pool_id: str, name: str) -> bool:
    """Whether the user pool marks this user's e-mail address verified (errors as ``profile``)."""
    return profile(cognito, user_pool_id, name).email_verified


def require_verified_email(claims: dict[str, Any], welcome_credits: int) -> Profile:
    """The caller's profile; ``EmailNotVerified`` unless its e-mail address is verified in the user pool."""
    found = profile(aws.client("cognito-idp"), config.user_pool_id(), username(claims))
    if not found.email_verified:
        raise EmailNotVerified(welcome_credits)
    return found


def lookup_profile(claims: dict[str, Any]) -> Profile | None:
    """The caller's profile, best effort: None when the user pool cannot tell now (no such user, throttling, no
    pool configured). For correcting what an account shows, never for deciding who may do what."""
    try:
        user_pool_id = config.user_pool_id()
        return profile(aws.client("cognito-idp"), user_pool_id, username(claims))
    except Exception as exc:  # the caller keeps what it has; the next call tries again
        logger.info("user profile not available", extra={"reason": str(exc)[:200]})
        return None


def looks_like_email(value: str | None, *not_these: str) -> bool:
    """Whether a stored address is a real one: not empty, with an ``@``, and none of ``not_these`` (the Cognito
    user name or subject that older accounts stored in its place)."""
    return bool(value) and "@" in str(value) and value not in not_these
