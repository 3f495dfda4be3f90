"""The ``wecom-suite`` command line."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from gateway.service import main as gateway_main
from shared.errors import ConfigurationError
from shared.settings import exit_on_configuration_error, load_settings
from wecom_suite.allinone import AllInOneSettings, run_all


def _run(_: argparse.Namespace) -> None:
    settings = load_settings(AllInOneSettings)
    _run_async(run_all(settings))


def _gateway(_: argparse.Namespace) -> None:
    gateway_main()


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
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    handler: Callable[[argparse.Namespace], None] = args.handler
    handler(args)
