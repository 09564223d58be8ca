"""Where the CLI keeps its settings and session: one JSON file, readable by its owner only (mode 0600).

The path is ``$MODAMODA_CONFIG`` if set, else ``$XDG_CONFIG_HOME/modamoda/config.json``, else
``~/.config/modamoda/config.json``. It holds the service's addresses (API URL, Cognito endpoint, app client id,
region — from ``<web_url>/config.json`` or given to ``modamoda login``) and the session's tokens; never a password
or an API key.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

FILE_MODE = 0o600
DIR_MODE = 0o700


class ConfigError(Exception):
    """The configuration file cannot be read or written."""


def config_path(explicit: str | os.PathLike[str] | None = None) -> Path:
    if explicit:
        return Path(explicit).expanduser()
    if os.environ.get("MODAMODA_CONFIG"):
        return Path(os.environ["MODAMODA_CONFIG"]).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or ""
    root = Path(base).expanduser() if base and Path(base).is_absolute() else Path.home() / ".config"
    return root / "modamoda" / "config.json"


@dataclass
class Session:
    """Cognito tokens of the signed-in user or API key."""

    kind: str  # "password" | "api_key"
    access_token: str
    refresh_token: str | None
    expires_at: float  # epoch seconds
    id_token: str | None = None
    email: str | None = None
    api_key_id: str | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Session:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass
class Config:
    api_url: str | None = None
    cognito_endpoint: str | None = None
    client_id: str | None = None
    region: str | None = None
    user_pool_id: str | None = None
    web_url: str | None = None
    session: Session | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # keys this version does not know, kept as they were

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Config:
        known = {f.name for f in fields(cls)} - {"session", "extra"}
        session = data.get("session")
        return cls(
            **{k: data[k] for k in known if k in data},
            session=Session.from_dict(session) if isinstance(session, dict) else None,
            extra={k: v for k, v in data.items() if k not in known and k != "session"},
        )

    def to_dict(self) -> dict[str, Any]:
        data = {k: v for k, v in asdict(self).items() if k not in {"extra", "session"}}
        data["session"] = asdict(self.session) if self.session else None
        return {**self.extra, **data}


def load(path: Path) -> Config:
    """The saved configuration; an empty one when the file does not exist."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return Config()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from exc
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"{path} is not valid JSON ({exc}); fix it or delete it and sign in again") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a JSON object; delete it and sign in again")
    return Config.from_dict(data)


def save(path: Path, config: Config) -> None:
    """Write atomically (a private temporary file in the same folder, then rename), mode 0600."""
    path.parent.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".config-", suffix=".tmp", dir=path.parent)  # mkstemp: mode 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(config.to_dict(), handle, indent=2, sort_keys=True)
            handle.write("\n")
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    os.chmod(path, FILE_MODE)
