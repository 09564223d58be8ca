"""The tenant's account: its name, its webhook and its API keys.

An API key is a Cognito user of the tenant: username ``apikey-<id>@api-keys.modamoda.invalid``, a random password
(the key's secret) that satisfies the pool's password policy, and a ``users`` row that maps its Cognito subject to
the owner's tenant, so ``identity()`` resolves it like a person. The key string is ``mmk_<id>_<secret>``; only
the prefix is stored. Revoking marks the key revoked first (the API then refuses its tokens, even unexpired
ones) and deletes the Cognito user (no new tokens). API keys cannot create or revoke API keys.
"""

from __future__ import annotations

import secrets
import string
import uuid
from typing import Any

from botocore.exceptions import ClientError

from functions.common import credits, db
from functions.common.errors import Conflict, Forbidden, NotFound, TransientError
from functions.common.models import (
    Account,
    ApiKeyCreated,
    ApiKeyList,
    ApiKeyView,
    WebhookCreated,
    WebhookInfo,
)
from functions.common.observability import logger
from functions.common.tenants import Identity

API_KEY_DOMAIN = "api-keys.modamoda.invalid"
API_KEY_PREFIX = "mmk"
WEBHOOK_SECRET_PREFIX = "whsec_"  # noqa: S105 - a label, not a secret
_SYMBOLS = frozenset("-_")  # the symbols token_urlsafe uses; both count as special characters for Cognito
_THROTTLED = frozenset({"TooManyRequestsException", "ThrottlingException", "LimitExceededException"})


# ---- profile --------------------------------------------------------------------------------------------------


def account(who: Identity) -> Account:
    with db.transaction(who.tenant_id) as conn:
        tenant = _tenant(conn, who.tenant_id)
        balance = credits.balance(conn, who.tenant_id)
    webhook = None
    if tenant["webhook_url"]:
        webhook = WebhookInfo(
            url=tenant["webhook_url"],
            secret_hint=secret_hint(tenant["webhook_secret"]),
            updated_at=tenant["webhook_updated_at"],
        )
    return Account(
        user_id=who.user_id,
        email=who.email,
        tenant_id=who.tenant_id,
        tenant_kind=who.tenant_kind,
        tenant_name=tenant["name"],
        balance=balance,
        created_at=tenant["created_at"],
        webhook=webhook,
    )


def rename(who: Identity, name: str) -> Account:
    with db.transaction(who.tenant_id) as conn:
        conn.execute("UPDATE tenants SET name = %s WHERE id = %s", (name, who.tenant_id))
    return account(who)


def _tenant(conn: db.Conn, tenant_id: str) -> dict[str, Any]:
    row = conn.execute("SELECT * FROM tenants WHERE id = %s", (tenant_id,)).fetchone()
    if row is None:
        raise NotFound("account not found")
    return dict(row)


def secret_hint(secret: str) -> str:
    return f"{WEBHOOK_SECRET_PREFIX}…{secret[-4:]}"


# ---- webhook --------------------------------------------------------------------------------------------------


def set_webhook(who: Identity, url: str) -> WebhookCreated:
    """Store the webhook URL with a new signing secret (every call rotates it); the secret is returned once."""
    secret = WEBHOOK_SECRET_PREFIX + secrets.token_urlsafe(32)
    with db.transaction(who.tenant_id) as conn:
        row = conn.execute(
            "UPDATE tenants SET webhook_url = %s, webhook_secret = %s, webhook_updated_at = now()"
            " WHERE id = %s RETURNING webhook_updated_at",
            (url, secret, who.tenant_id),
        ).fetchone()
    if row is None:
        raise NotFound("account not found")
    return WebhookCreated(url=url, secret=secret, updated_at=row["webhook_updated_at"])


def clear_webhook(who: Identity) -> None:
    with db.transaction(who.tenant_id) as conn:
        conn.execute(
            "UPDATE tenants SET webhook_url = NULL, webhook_secret = NULL, webhook_updated_at = now()"
            " WHERE id = %s AND webhook_url IS NOT NULL",
            (who.tenant_id,),
        )


# ---- API keys -------------------------------------------------------------------------------------------------


def api_key_username(key_id: str) -> str:
    return f"apikey-{key_id}@{API_KEY_DOMAIN}"


def new_secret() -> str:
    """A random key secret (240 bits) that meets the user pool's password policy: at least 12 characters with
    upper case, lower case, digits and a symbol."""
    while True:
        secret = secrets.token_urlsafe(30)
        if (
            any(c in string.ascii_uppercase for c in secret)
            and any(c in string.ascii_lowercase for c in secret)
            and any(c in string.digits for c in secret)
            and any(c in _SYMBOLS for c in secret)
        ):
            return secret


def parse_api_key(api_key: str) -> tuple[str, str] | None:
    """``mmk_<id>_<secret>`` → (Cognito username, password); None if it is not a key of this format."""
    prefix, _, rest = api_key.partition("_")
    key_id, _, secret = rest.partition("_")
    try:
        key_id = str(uuid.UUID(key_id))
    except ValueError:
        return None
    if prefix != API_KEY_PREFIX or not secret:
        return None
    return api_key_username(key_id), secret


def _view(row: dict[str, Any]) -> ApiKeyView:
    return ApiKeyView(
        id=str(row["id"]),
        name=row["name"],
        prefix=row["prefix"],
        created_at=row["created_at"],
        revoked_at=row["revoked_at"],
    )


def list_api_keys(who: Identity, limit: int = 200) -> ApiKeyList:
    with db.transaction(who.tenant_id) as conn:
        rows = conn.execute(
            "SELECT * FROM api_keys WHERE tenant_id = %s ORDER BY created_at DESC, id DESC LIMIT %s",
            (who.tenant_id, limit),
        ).fetchall()
    return ApiKeyList(items=[_view(dict(r)) for r in rows])


def _people_only(who: Identity) -> None:
    if who.api_key_id is not None:
        raise Forbidden("API keys cannot manage API keys; sign in as a person to do this")


def _active_keys(conn: db.Conn, tenant_id: str) -> int:
    row = conn.execute(
        "SELECT count(*) AS n FROM api_keys WHERE tenant_id = %s AND revoked_at IS NULL", (tenant_id,)
    ).fetchone()
    return int(row["n"]) if row else 0


def _too_many(limit: int) -> Conflict:
    return Conflict(
        f"an account can have at most {limit} active API keys; revoke one first", code="too_many_api_keys"
    )


def create_api_key(cognito: Any, user_pool_id: str, who: Identity, name: str, limit: int) -> ApiKeyCreated:
    """A new API key of the caller's tenant; its full string is returned only here."""
    _people_only(who)
    with db.transaction(who.tenant_id) as conn:
        if _active_keys(conn, who.tenant_id) >= limit:
            raise _too_many(limit)
    key_id = str(uuid.uuid4())
    secret = new_secret()
    username = api_key_username(key_id)
    api_key = f"{API_KEY_PREFIX}_{key_id}_{secret}"
    prefix = f"{API_KEY_PREFIX}_{key_id[:8]}"
    created = _cognito(
        cognito.admin_create_user,
        UserPoolId=user_pool_id,
        Username=username,
        UserAttributes=[
            {"Name": "email", "Value": username},
            {"Name": "email_verified", "Value": "true"},
        ],
        MessageAction="SUPPRESS",
    )["User"]
    try:
        _cognito(
            cognito.admin_set_user_password,
            UserPoolId=user_pool_id,
            Username=username,
            Password=secret,
            Permanent=True,
        )
        attributes = {a["Name"]: a["Value"] for a in created.get("Attributes", [])}
        sub = attributes.get("sub")
        if not sub:
            found = _cognito(cognito.admin_get_user, UserPoolId=user_pool_id, Username=username)
            sub = {a["Name"]: a["Value"] for a in found.get("UserAttributes", [])}["sub"]

        def record(conn: db.Conn) -> dict[str, Any]:
            conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"api_keys:{who.tenant_id}",))
            if _active_keys(conn, who.tenant_id) >= limit:
                raise _too_many(limit)
            conn.execute(
                "INSERT INTO users (sub, tenant_id, email) VALUES (%s, %s, %s)",
                (sub, who.tenant_id, username),
            )
            row = conn.execute(
                "INSERT INTO api_keys (id, tenant_id, name, prefix, cognito_username, sub)"
                " VALUES (%s, %s, %s, %s, %s, %s) RETURNING *",
                (key_id, who.tenant_id, name, prefix, created.get("Username") or username, sub),
            ).fetchone()
            assert row is not None
            return dict(row)

        row = db.atomic(who.tenant_id, record)
    except BaseException:
        _delete_user(cognito, user_pool_id, username)  # no Cognito user without its key row
        raise
    logger.info("api key created", extra={"api_key_id": key_id, "tenant_id": who.tenant_id})
    return ApiKeyCreated(
        id=key_id, name=row["name"], prefix=prefix, api_key=api_key, created_at=row["created_at"]
    )


def revoke_api_key(cognito: Any, user_pool_id: str, who: Identity, key_id: str) -> None:
    """Revoke a key of the caller's tenant (idempotent); another tenant's key is not found."""
    _people_only(who)
    try:
        key_id = str(uuid.UUID(key_id))
    except ValueError:
        raise NotFound(f"API key {key_id} not found") from None
    with db.transaction(who.tenant_id) as conn:
        row = conn.execute(
            "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, now())"
            " WHERE id = %s AND tenant_id = %s RETURNING cognito_username",
            (key_id, who.tenant_id),
        ).fetchone()
    if row is None:
        raise NotFound(f"API key {key_id} not found")
    _delete_user(cognito, user_pool_id, row["cognito_username"], strict=True)
    logger.info("api key revoked", extra={"api_key_id": key_id, "tenant_id": who.tenant_id})


def _delete_user(cognito: Any, user_pool_id: str, username: str, *, strict: bool = False) -> None:
    try:
        _cognito(cognito.admin_delete_user, UserPoolId=user_pool_id, Username=username)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "UserNotFoundException":
            return
        if strict:
            raise
        logger.exception("could not delete the Cognito user of an API key", extra={"username": username})
    except TransientError:
        if strict:
            raise
        logger.exception("could not delete the Cognito user of an API key", extra={"username": username})


def _cognito(call: Any, **params: Any) -> Any:
    """A Cognito admin call; throttling becomes ``TransientError`` (503, retry)."""
    try:
        return call(**params)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in _THROTTLED:
            raise TransientError(f"the identity service is busy: {exc}") from exc
        raise
