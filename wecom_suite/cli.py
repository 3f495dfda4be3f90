"""The ``wecom-suite`` command line."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any, Final

from auth_service.service import main as auth_service_main
from gateway.service import main as gateway_main
from notifier.cli import notify_command
from notifier.service import main as notifier_main
from shared.errors import ConfigurationError
from shared.logging import silence_stdout
from shared.settings import exit_on_configuration_error, load_settings
from shared.version import package_version
from simulator.service import main as simulator_main
from token_service.service import main as token_service_main
from wecom_suite.allinone import AllInOneSettings, run_all
from wecom_suite.demo import demo_command
from wecom_suite.listing.command import run_check, run_init
from wecom_suite.listing.report import Lang, default_lang


def _run(_: argparse.Namespace) -> None:
    settings = load_settings(AllInOneSettings)
    _run_async(run_all(settings))


def _gateway(_: argparse.Namespace) -> None:
    gateway_main()


def _simulator(_: argparse.Namespace) -> None:
    simulator_main()


def _token_service(_: argparse.Namespace) -> None:
    token_service_main()


def _auth_service(_: argparse.Namespace) -> None:
    auth_service_main()


def _notifier(_: argparse.Namespace) -> None:
    notifier_main()


def _notify(args: argparse.Namespace) -> None:
    raise SystemExit(notify_command(args.corp, args.user, args.text, wait_s=args.wait))


def _demo(args: argparse.Namespace) -> None:
    raise SystemExit(demo_command(as_json=args.json, timeout_s=args.timeout))


def _add_demo(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    demo = commands.add_parser(
        "demo",
        help="sandbox walkthrough: ticket → token → install → messages → uninstall",
        description="Against a running sandbox (`wecom-suite run`): pushes a suite_ticket, gets "
        "a token, installs the app for a member, sends a member message and an app message, "
        "uninstalls; prints each step as a timeline and exits 0 only if every step happened.",
        epilog="Main settings (environment): HTTP_PORT, SIM_HTTP_PORT, DATA_DIR.",
    )
    demo.add_argument("--json", action="store_true", help="print the timeline as JSON")
    demo.add_argument(
        "--timeout", type=float, default=None, metavar="SECONDS", help="per step (default 20)"
    )
    demo.set_defaults(handler=_demo)


def _add_notify(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    notify = commands.add_parser(
        "notify",
        help="publish one text notification request (on AMQP_URL, else via the gateway's API)",
        description="Publishes one notify.request for a text message to one member; with "
        "--wait, waits for its notify.result and prints it.",
        epilog="Main settings (environment): AMQP_URL (unset: the local gateway's internal API "
        "at HTTP_PORT with INTERNAL_API_KEY), DATA_DIR.",
    )
    notify.add_argument("--corp", required=True, help="the corp id of an installation")
    notify.add_argument("--user", required=True, help="the member's user id")
    notify.add_argument("--text", required=True, help="the message text")
    notify.add_argument(
        "--wait", type=float, default=0.0, metavar="SECONDS", help="wait for the notify.result"
    )
    notify.set_defaults(handler=_notify)


def _lang(args: argparse.Namespace) -> Lang:
    chosen: Lang | None = args.lang
    return chosen or default_lang(os.environ)


def _listing_check(args: argparse.Namespace) -> None:
    raise SystemExit(
        run_check(
            args.file, online=args.online, lang=_lang(args), fmt=args.format, ca_file=args.ca_file
        )
    )


def _listing_init(args: argparse.Namespace) -> None:
    raise SystemExit(run_init(args.path, lang=_lang(args)))


def _add_listing(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    listing = commands.add_parser(
        "listing",
        help="check an app listing before WeCom reviews it",
        description="Checks an app listing (name, texts, images, URLs) against WeCom's listing "
        "rules before it is submitted for review (docs/listing.md).",
    )
    actions = listing.add_subparsers(dest="listing_command", required=True, metavar="ACTION")
    check = actions.add_parser(
        "check",
        help="check a listing file (YAML or JSON)",
        description="Checks a listing file and the images it names; exits non-zero when a rule "
        "is broken. With --online also verifies both callback URLs as WeCom would.",
    )
    check.add_argument("file", type=Path, metavar="FILE")
    check.add_argument(
        "--online", action="store_true", help="also run URL verification on both callback URLs"
    )
    check.add_argument("--format", choices=("text", "json"), default="text")
    check.add_argument(
        "--ca-file",
        type=Path,
        default=None,
        metavar="PEM",
        help="with --online: also trust these certificates (a staging server's private CA)",
    )
    init = actions.add_parser(
        "init",
        help="write a commented listing template",
        description="Writes a commented listing template to fill in (default listing.yaml).",
    )
    init.add_argument("path", type=Path, nargs="?", default=Path("listing.yaml"), metavar="PATH")
    for action in (check, init):
        action.add_argument(
            "--lang", choices=("zh", "en"), default=None, help="default: zh in a Chinese locale"
        )
    check.set_defaults(handler=_listing_check)
    init.set_defaults(handler=_listing_init)


def _run_async(main: Coroutine[Any, Any, None]) -> None:
    try:
        asyncio.run(main)
    except ConfigurationError as exc:
        exit_on_configuration_error(exc.message)
    except KeyboardInterrupt:
        pass


_SIGPIPE_STATUS: Final = 141
_COMMON_SETTINGS: Final = (
    "WECOM_SUITE_ID, WECOM_SUITE_SECRET (unset: sandbox mode), WECOM_TOKEN, "
    "WECOM_ENCODING_AES_KEY, DATA_DIR, DATA_KEY, MONGO_URL (unset: SQLite in DATA_DIR), "
    "LOG_LEVEL, LOG_FORMAT"
)

# name → (one line for the command list, what it does, its main settings, its handler)
_SERVICES: Final[dict[str, tuple[str, str, str, Callable[[argparse.Namespace], None]]]] = {
    "run": (
        "all services in one process (sandbox mode without credentials)",
        "Runs the gateway, token_service, auth_service and the notifier in one process on the "
        "in-process bus (or AMQP_URL), and in sandbox mode the WeCom simulator too. Stop it "
        "with Ctrl-C.",
        f"HTTP_HOST, HTTP_PORT, PUBLIC_BASE_URL, INTERNAL_API_KEY, AMQP_URL, {_COMMON_SETTINGS}",
        _run,
    ),
    "gateway": (
        "the callback gateway alone (needs AMQP_URL)",
        "Serves WeCom's two callback URLs, the install, sign-in and JS-SDK pages and the "
        "internal API; publishes verified events to RabbitMQ.",
        f"AMQP_URL, HTTP_HOST, HTTP_PORT, PUBLIC_BASE_URL, INTERNAL_API_KEY, "
        f"WECOM_RECEIVE_IDS, {_COMMON_SETTINGS}",
        _gateway,
    ),
    "simulator": (
        "the WeCom simulator (API, callbacks, /_sim/ control API)",
        "A stand-in for WeCom's API, OAuth and install pages that pushes callbacks like WeCom; "
        "for tests, demos and benchmarks (docs/simulator.md).",
        "SIM_HTTP_PORT, SIM_COMMAND_URL, SIM_DATA_URL, SIM_TICKET_INTERVAL_S, SIM_TOKEN_TTL_S, "
        "SIM_LIMITS, WECOM_SUITE_ID, WECOM_TOKEN, WECOM_ENCODING_AES_KEY",
        _simulator,
    ),
    "token-service": (
        "token_service alone: suite_ticket, tokens, rpc.tokens (needs AMQP_URL)",
        "Keeps the suite_ticket and issues suite, provider, corp and JS-SDK tokens over "
        "rpc.tokens, one WeCom call per token however many replicas ask.",
        f"AMQP_URL, WECOM_API_BASE, WECOM_PROVIDER_CORPID, WECOM_PROVIDER_SECRET, "
        f"{_COMMON_SETTINGS}",
        _token_service,
    ),
    "auth-service": (
        "auth_service alone: installs, limits, rpc.auth (needs AMQP_URL)",
        "Exchanges auth codes exactly once, keeps installations and the install limits, "
        "emits auth.* events and answers rpc.auth.",
        f"AMQP_URL, INSTALL_LIMIT_CORPS, INSTALL_LIMIT_USERS, INSTALL_LIMIT_TEST_ACCOUNTS, "
        f"TEST_CORP_IDS, {_COMMON_SETTINGS}",
        _auth_service,
    ),
    "notifier": (
        "the notifier alone: notifier.requests → WeCom (needs AMQP_URL)",
        "Sends app messages of every type within WeCom's limits, retries safely and publishes "
        "each outcome as notify.result.",
        f"AMQP_URL, WECOM_API_BASE, {_COMMON_SETTINGS}",
        _notifier,
    ),
}


def _add_services(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    for name, (summary, what, settings, handler) in _SERVICES.items():
        commands.add_parser(
            name,
            help=summary,
            description=what,
            epilog=f"Main settings (environment): {settings}. All of them: docs/configuration.md.",
        ).set_defaults(handler=handler)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wecom-suite",
        description="Self-hosted backend for WeCom third-party web apps.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_services(commands)
    _add_notify(commands)
    _add_listing(commands)
    _add_demo(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of ``wecom-suite``."""
    code: int | str | None = 0
    try:
        args = build_parser().parse_args(argv)
        handler: Callable[[argparse.Namespace], None] = args.handler
        handler(args)
        sys.stdout.flush()
    except SystemExit as exc:
        code = exc.code
        _flush_quietly()
    except BrokenPipeError:
        # Whoever read our output went away before it ended (``… | head``): stop quietly, with
        # the status a command killed by SIGPIPE has (128 + 13), as other tools do.
        silence_stdout()
        code = _SIGPIPE_STATUS
    raise SystemExit(code)


def _flush_quietly() -> None:
    """Flush stdout now rather than at interpreter exit, where a closed pipe would print
    "Exception ignored … BrokenPipeError" after our exit code was decided."""
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        silence_stdout()
