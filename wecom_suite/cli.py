"""The ``wecom-suite`` command line."""

from __future__ import annotations

import argparse
import asyncio
import os
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

from auth_service.service import main as auth_service_main
from gateway.service import main as gateway_main
from notifier.cli import notify_command
from notifier.service import main as notifier_main
from shared.errors import ConfigurationError
from shared.settings import exit_on_configuration_error, load_settings
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
        "demo", help="sandbox walkthrough: ticket → token → install → messages → uninstall"
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
    listing = commands.add_parser("listing", help="check an app listing before WeCom reviews it")
    actions = listing.add_subparsers(dest="listing_command", required=True, metavar="ACTION")
    check = actions.add_parser("check", help="check a listing file (YAML or JSON)")
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
    init = actions.add_parser("init", help="write a commented listing template")
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wecom-suite",
        description="Self-hosted backend for WeCom third-party web apps.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser(
        "run", help="all services in one process (sandbox mode without credentials)"
    ).set_defaults(handler=_run)
    commands.add_parser("gateway", help="the callback gateway alone (needs AMQP_URL)").set_defaults(
        handler=_gateway
    )
    commands.add_parser(
        "simulator", help="the WeCom simulator (API, callbacks, /_sim/ control API)"
    ).set_defaults(handler=_simulator)
    commands.add_parser(
        "token-service",
        help="token_service alone: suite_ticket, tokens, rpc.tokens (needs AMQP_URL)",
    ).set_defaults(handler=_token_service)
    commands.add_parser(
        "auth-service",
        help="auth_service alone: installs, limits, rpc.auth (needs AMQP_URL)",
    ).set_defaults(handler=_auth_service)
    commands.add_parser(
        "notifier", help="the notifier alone: notifier.requests → WeCom (needs AMQP_URL)"
    ).set_defaults(handler=_notifier)
    _add_notify(commands)
    _add_listing(commands)
    _add_demo(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    handler: Callable[[argparse.Namespace], None] = args.handler
    handler(args)
