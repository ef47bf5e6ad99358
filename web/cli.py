"""The `serve` verb: run the web dashboard with uvicorn. Imports nothing heavy at module level."""

from __future__ import annotations

import argparse
import ipaddress
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("serve", help="web dashboard and JSON API (jobs, items, try a photo, /metrics)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8080)
    p.set_defaults(handler=_serve)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _serve(args: argparse.Namespace) -> int:
    from db import DatabaseNotMigrated
    from wgfpgan.config import Settings, mask_url

    settings = Settings.from_env()
    if not settings.api_token and not is_loopback(args.host):
        print(
            f"wgfpgan serve: refusing to bind {args.host} without a token: anyone on the network could submit "
            "and cancel jobs. Set WGFPGAN_API_TOKEN, or bind 127.0.0.1.",
            file=sys.stderr,
        )
        return 2
    import uvicorn

    from web.app import create_app

    try:
        app = create_app(settings)
    except DatabaseNotMigrated as exc:
        print(f"wgfpgan serve: {mask_url(str(exc))}", file=sys.stderr)
        return 2
    print(f"wgfpgan dashboard on http://{args.host}:{args.port}/", file=sys.stderr)
    uvicorn.run(app, host=args.host, port=args.port, log_level="info", access_log=False)
    return 0
