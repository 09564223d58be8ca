"""The ``modamoda`` command: argument parsing and output only; the work is in the other modules.

Exit status: 0 done, 1 a failure (an API error, a file that could not be uploaded or downloaded, a batch that did
not complete cleanly), 2 wrong usage, 130 interrupted (Ctrl-C; an upload then resumes where it stopped).
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from modamoda_cli import __version__
from modamoda_cli import watch as watching
from modamoda_cli.api import ApiError, Client, CliError, NotLoggedIn, new_http
from modamoda_cli.auth import AuthError, Cognito, cognito_endpoint, discover
from modamoda_cli.config import Config, ConfigError, config_path, load, save
from modamoda_cli.download import Downloader
from modamoda_cli.ui import Ui, human_bytes
from modamoda_cli.upload import Interrupted, Uploader, UploadOptions, UsageError

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
MODES = ("ghost", "on-model")
PRESETS = ("square", "amazon", "zalando", "shopify", "portrait_4_5")
FORMATS = ("png", "jpeg", "webp", "avif")


class Context:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.path = config_path(args.config)
        self.ui = Ui(quiet=args.quiet, json_output=args.json, progress=False if args.no_progress else None)
        self._config: Config | None = None

    @property
    def config(self) -> Config:
        if self._config is None:
            self._config = load(self.path)
        return self._config

    def save(self, config: Config) -> None:
        save(self.path, config)

    def client(self, parallel: int = 8) -> Client:
        return Client(
            self.config,
            save=self.save,
            api_key=os.environ.get("MODAMODA_API_KEY") or None,
            http=new_http(parallel + 4),
        )


# ---- commands --------------------------------------------------------------------------------------------------


def cmd_login(ctx: Context) -> int:
    args, config, ui = ctx.args, ctx.config, ctx.ui
    if args.web_url:
        found = discover(args.web_url)
        config.web_url = args.web_url.rstrip("/")
        config.api_url, config.client_id = found["api_url"], found["client_id"]
        config.cognito_endpoint = found["cognito_endpoint"]
        config.region, config.user_pool_id = found["region"] or None, found["user_pool_id"] or None
    if args.api_url:
        config.api_url = args.api_url.rstrip("/")
    if args.client_id:
        config.client_id = args.client_id
    if args.region:
        config.region = args.region
        if not args.cognito_endpoint and not args.web_url:
            config.cognito_endpoint = cognito_endpoint(args.region)
    if args.cognito_endpoint:
        config.cognito_endpoint = args.cognito_endpoint
    if not config.api_url or not config.client_id or not (config.cognito_endpoint or config.region):
        raise UsageError(
            "where to sign in is not known yet: pass --web-url <the web app's URL> "
            "(or --api-url, --client-id and --region or --cognito-endpoint)"
        )
    cognito = Cognito(config.cognito_endpoint or cognito_endpoint(str(config.region)), config.client_id)

    api_key = args.api_key
    if api_key == "-":
        api_key = sys.stdin.readline().strip()
    if api_key is None and not args.email and os.environ.get("MODAMODA_API_KEY"):
        api_key = os.environ["MODAMODA_API_KEY"]
    if api_key is not None:
        if not api_key:
            raise UsageError("no API key given")
        session = cognito.sign_in_api_key(api_key)
    else:
        email = args.email or os.environ.get("MODAMODA_EMAIL") or ""
        if not email:
            if not sys.stdin.isatty():
                raise UsageError("pass --email (or --api-key) when not at a terminal")
            email = input("E-mail: ").strip()
        if args.password_stdin:
            password = sys.stdin.readline().rstrip("\r\n")
        elif os.environ.get("MODAMODA_PASSWORD"):
            password = os.environ["MODAMODA_PASSWORD"]
        elif sys.stdin.isatty():
            password = getpass.getpass("Password: ")
        else:
            raise UsageError("no password: use --password-stdin or MODAMODA_PASSWORD when not at a terminal")
        if not email or not password:
            raise UsageError("an e-mail address and a password are needed")
        session = cognito.sign_in(email, password)
    config.session = session
    ctx.save(config)
    who = session.email if session.kind == "password" else f"API key {session.api_key_id}"
    try:
        me = ctx.client().me()
    except ApiError as exc:
        ui.warn(f"signed in, but the API did not answer: {exc}")
        ui.json({"logged_in": True, "kind": session.kind, "email": session.email, "config": str(ctx.path)})
        ui.result(f"Logged in as {who} (settings in {ctx.path})")
        return EXIT_OK
    ui.json({"logged_in": True, "kind": session.kind, "config": str(ctx.path), **me})
    ui.result(
        f"Logged in as {who}: account {me.get('tenant_id')}, {me.get('balance')} credits (settings in {ctx.path})"
    )
    return EXIT_OK


def cmd_logout(ctx: Context) -> int:
    config, ui = ctx.config, ctx.ui
    session = config.session
    if session is None:
        ui.result("Not logged in.")
        ui.json({"logged_in": False})
        return EXIT_OK
    config.session = None
    ctx.save(config)  # forgotten here first: an unreachable service must not keep anyone signed in
    if config.client_id and (config.cognito_endpoint or config.region):
        try:
            Cognito(
                config.cognito_endpoint or cognito_endpoint(str(config.region)), config.client_id, timeout=5
            ).revoke(session)
        except AuthError as exc:
            ui.warn(f"logged out here; the session could not be revoked at the service: {exc.message}")
    ui.json({"logged_in": False})
    ui.result("Logged out.")
    return EXIT_OK


def cmd_whoami(ctx: Context) -> int:
    me = ctx.client().me()
    session = ctx.config.session
    kind = session.kind if session else None
    ctx.ui.json({**me, "kind": kind, "api_url": ctx.config.api_url})
    who = me.get("email") or (session.email if session else "?")
    if kind == "api_key" and session is not None:
        who = f"API key {session.api_key_id}"
    ctx.ui.result(
        f"{who} — account {me.get('tenant_id')} ({me.get('tenant_kind')}), {me.get('balance')} credits, {ctx.config.api_url}"
    )
    return EXIT_OK


def cmd_credits(ctx: Context) -> int:
    balance = ctx.client().credits()
    ctx.ui.json(balance)
    ctx.ui.result(
        f"{balance.get('balance')} credits available, {balance.get('held')} held by jobs in progress"
    )
    return EXIT_OK


def cmd_batches(ctx: Context) -> int:
    client, args = ctx.client(), ctx.args
    if args.limit < 1:
        raise UsageError("--limit must be at least 1")
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        page = client.batches(limit=min(args.limit - len(items), 100), cursor=cursor)
        items += page.get("items") or []
        cursor = page.get("next_cursor")
        if not cursor or len(items) >= args.limit:
            break
    ctx.ui.json({"items": items, "next_cursor": cursor})
    if not items:
        ctx.ui.result("No batches yet: `modamoda upload FOLDER` creates one.")
        return EXIT_OK
    rows = []
    for b in items:
        done, total = watching.done_and_total(b)
        c = watching.counts(b)
        rows.append(
            [
                str(b.get("id")),
                str(b.get("name") or ""),
                str(b.get("status")),
                f"{done}/{total}",
                str(c.get("failed") or 0),
                str(c.get("rejected") or 0),
                str(b.get("credits_spent") if b.get("credits_spent") is not None else ""),
                str(b.get("created_at") or "")[:19].replace("T", " "),
            ]
        )
    ctx.ui.table(rows, ["ID", "NAME", "STATUS", "DONE", "FAILED", "REJECTED", "CREDITS", "CREATED"])
    if cursor:
        ctx.ui.info(f"(more: --limit {args.limit * 2})")
    return EXIT_OK


def _option_value(text: str) -> tuple[str, Any]:
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise UsageError(f"--option takes KEY=VALUE, not {text!r}")
    try:
        value: Any = json.loads(raw)
    except ValueError:
        value = raw
    return key.strip(), value


def batch_defaults(args: argparse.Namespace) -> dict[str, Any] | None:
    options: dict[str, Any] = dict(_option_value(o) for o in args.option or [])
    for name in ("preset", "background", "output_format", "pose_id"):
        value = getattr(args, name)
        if value is not None:
            options[name] = value
    defaults: dict[str, Any] = {}
    if args.mode:
        defaults["mode"] = args.mode
    if options:
        defaults["options"] = options
    if args.priority:
        defaults["priority"] = args.priority
    return defaults or None


def cmd_upload(ctx: Context) -> int:
    args, ui = ctx.args, ctx.ui
    if args.parallel < 1 or args.parallel > 64:
        raise UsageError("--parallel must be between 1 and 64")
    folder = Path(args.folder).expanduser()
    if not folder.is_dir():
        raise UsageError(f"{folder} is not a folder")
    options = UploadOptions(
        batch_id=args.batch,
        name=args.name,
        defaults=batch_defaults(args),
        manifest=Path(args.manifest).expanduser() if args.manifest else None,
        parallel=args.parallel,
        new=args.new,
        seal=not args.no_seal,
    )
    client = ctx.client(args.parallel)
    try:
        summary = Uploader(client, folder, options, ui).run()
    except Interrupted as stop:
        s = stop.summary
        ui.json({**s.to_dict(), "resumable": True})
        ui.warn(
            f"interrupted: {len(s.uploaded) + len(s.already)} file(s) of batch {s.batch_id} are uploaded; "
            "run the same `modamoda upload` command again to send the rest"
        )
        return EXIT_INTERRUPTED
    ui.json(summary.to_dict())
    status = "sealed" if summary.sealed else "open"
    ui.result(
        f"batch {summary.batch_id}: {len(summary.uploaded)} uploaded, {len(summary.already)} uploaded before, "
        f"{len(summary.skipped)} skipped, {len(summary.failed)} failed "
        f"({human_bytes(summary.bytes)} in {summary.seconds:.1f} s); the batch is {status}"
    )
    if summary.failed:
        ui.error(
            f"{len(summary.failed)} file(s) were not uploaded, so the batch stays open: run the same command again "
            "to retry them (remove a file that cannot be sent)"
        )
        return EXIT_FAILED
    if args.watch:
        return _watch(ctx, client, summary.batch_id, interval=args.interval, timeout=None)
    ui.info(f"follow it with: modamoda watch {summary.batch_id}")
    return EXIT_OK


def _watch(ctx: Context, client: Client, batch_id: str, *, interval: float, timeout: float | None) -> int:
    batch = watching.watch(client, batch_id, ctx.ui, interval=interval, timeout=timeout)
    ctx.ui.json(batch)
    ctx.ui.result(watching.summary_line(batch))
    return EXIT_OK if watching.ok(batch) else EXIT_FAILED


def cmd_watch(ctx: Context) -> int:
    args = ctx.args
    client = ctx.client()
    if args.once:
        batch = client.batch(args.batch)
        ctx.ui.json(batch)
        ctx.ui.result(watching.summary_line(batch))
        return EXIT_OK
    return _watch(ctx, client, args.batch, interval=args.interval, timeout=args.timeout)


def cmd_download(ctx: Context) -> int:
    args, ui = ctx.args, ctx.ui
    client = ctx.client(args.parallel)
    if args.wait:
        watching.watch(client, args.batch, ui, interval=args.interval, timeout=args.timeout)
    summary = Downloader(client, args.batch, Path(args.dest).expanduser(), ui, parallel=args.parallel).run(
        report=not args.no_report
    )
    ui.json(summary.to_dict())
    report = f", report: {', '.join(summary.report)}" if summary.report else ""
    ui.result(
        f"batch {args.batch}: {len(summary.downloaded)} downloaded, {len(summary.existing)} already there, "
        f"{len(summary.failed)} failed{report} → {args.dest}"
    )
    return EXIT_FAILED if summary.failed else EXIT_OK


def cmd_cancel(ctx: Context) -> int:
    batch = ctx.client().cancel_batch(ctx.args.batch)
    ctx.ui.json(batch)
    ctx.ui.result(watching.summary_line(batch))
    return EXIT_OK


# ---- parser ----------------------------------------------------------------------------------------------------


def _positive(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be more than 0")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="modamoda",
        description="Modamoda for shops: upload folders of garment photos as batches, follow them, download the "
        "product images and the batch report.",
        epilog="Settings and the session are kept in $MODAMODA_CONFIG, else $XDG_CONFIG_HOME/modamoda/config.json, "
        "else ~/.config/modamoda/config.json (mode 0600). MODAMODA_API_KEY signs in with an API key when there is "
        "no session. Exit status: 0 done, 1 failures, 2 usage, 130 interrupted.",
    )
    parser.add_argument("--version", action="version", version=f"modamoda {__version__}")
    parser.add_argument("--config", metavar="FILE", help="the settings file to use")
    parser.add_argument("--json", action="store_true", help="print results as JSON on stdout")
    parser.add_argument("-q", "--quiet", action="store_true", help="only errors and results")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars, even at a terminal")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(
        name: str, run: Callable[[Context], int], help_text: str, **kwargs: Any
    ) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text, **kwargs)
        sub.set_defaults(run=run)
        return sub

    login = command("login", cmd_login, "sign in with an e-mail address and password, or with an API key")
    login.add_argument(
        "--web-url", help="the web app's address (its /config.json tells where the API and sign-in are)"
    )
    login.add_argument("--email", help="the account's e-mail address (else asked; MODAMODA_EMAIL)")
    login.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from stdin (else asked; MODAMODA_PASSWORD)",
    )
    login.add_argument(
        "--api-key", metavar="KEY", help="an API key mmk_...; '-' reads it from stdin (MODAMODA_API_KEY)"
    )
    login.add_argument("--api-url", help="the API's base URL (instead of --web-url)")
    login.add_argument("--client-id", help="the Cognito app client id (instead of --web-url)")
    login.add_argument("--region", help="the Cognito user pool's AWS region (instead of --web-url)")
    login.add_argument(
        "--cognito-endpoint",
        help="the Cognito endpoint (default https://cognito-idp.<region>.amazonaws.com/)",
    )

    command("logout", cmd_logout, "end the session (revoked at the service) and forget its tokens")
    command("whoami", cmd_whoami, "the signed-in user or API key, the account and its credits")
    command("credits", cmd_credits, "credits available and held by jobs in progress")

    batches = command("batches", cmd_batches, "the account's batches, newest first")
    batches.add_argument("--limit", type=int, default=20, help="how many (default 20)")

    upload = command(
        "upload",
        cmd_upload,
        "upload a folder of photos as a batch (resumable: run it again after an interruption)",
    )
    upload.add_argument("folder", help="the folder (its own files; JPEG, PNG, WebP, TIFF, AVIF, HEIC)")
    upload.add_argument("--batch", metavar="ID", help="add to this batch instead of creating one")
    upload.add_argument("--name", help="the new batch's name (default: the folder's name)")
    upload.add_argument(
        "--manifest",
        metavar="FILE",
        help="manifest.json or .csv (file, sku, mode, pose_id, background, preset, ...); "
        "default: manifest.json/manifest.csv in the folder",
    )
    upload.add_argument("--mode", choices=MODES, help="the batch's default mode (default ghost)")
    upload.add_argument("--preset", choices=PRESETS, help="marketplace preset")
    upload.add_argument("--background", help='"#RRGGBB", "transparent" or "library:<id>"')
    upload.add_argument("--output-format", choices=FORMATS, help="result format")
    upload.add_argument("--pose-id", help="on-model pose from the pose library")
    upload.add_argument("--priority", choices=("normal", "low"), help="job priority")
    upload.add_argument(
        "--option",
        action="append",
        metavar="KEY=VALUE",
        help="any other job option (JSON value or text); repeatable",
    )
    upload.add_argument("--parallel", type=int, default=8, help="uploads at a time (default 8)")
    upload.add_argument(
        "--new", action="store_true", help="ignore the folder's state file: always a new batch"
    )
    upload.add_argument("--no-seal", action="store_true", help="leave the batch open for more files")
    upload.add_argument("--watch", action="store_true", help="then follow the batch until it has finished")
    upload.add_argument("--interval", type=_positive, default=2.0, help=argparse.SUPPRESS)

    watch = command(
        "watch", cmd_watch, "follow a batch until it has finished (exit 1 unless every image succeeded)"
    )
    watch.add_argument("batch", metavar="BATCH", help="the batch id")
    watch.add_argument("--interval", type=_positive, default=2.0, help="seconds between polls (default 2)")
    watch.add_argument("--timeout", type=_positive, help="give up after this many seconds")
    watch.add_argument("--once", action="store_true", help="show the batch's state once and return")

    download = command(
        "download", cmd_download, "download a batch's results and report (files already there are kept)"
    )
    download.add_argument("batch", metavar="BATCH", help="the batch id")
    download.add_argument("dest", metavar="DEST", help="the folder to write to (created if needed)")
    download.add_argument("--wait", action="store_true", help="wait until the batch has finished first")
    download.add_argument("--parallel", type=int, default=4, help="downloads at a time (default 4)")
    download.add_argument("--no-report", action="store_true", help="results only")
    download.add_argument("--interval", type=_positive, default=2.0, help="seconds between polls with --wait")
    download.add_argument("--timeout", type=_positive, help="with --wait: give up after this many seconds")

    cancel = command(
        "cancel", cmd_cancel, "cancel a batch: images not yet processing are stopped, without charge"
    )
    cancel.add_argument("batch", metavar="BATCH", help="the batch id")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error (argparse has printed it)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    ctx = Context(args)
    try:
        code: int = args.run(ctx)
        return code
    except UsageError as exc:
        ctx.ui.error(str(exc))
        return EXIT_USAGE
    except NotLoggedIn as exc:
        ctx.ui.error(str(exc))
        return EXIT_FAILED
    except (CliError, AuthError, ConfigError) as exc:
        ctx.ui.error(exc.message if isinstance(exc, AuthError) else str(exc))
        return EXIT_FAILED
    except KeyboardInterrupt:
        ctx.ui.warn("interrupted")
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
