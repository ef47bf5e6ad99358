"""`wgfpgan db upgrade|downgrade|current`: apply the Alembic migrations shipped in db/migrations."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("db", help="manage the status database schema (migrations)")
    verbs = parser.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    up = verbs.add_parser("upgrade", help="apply migrations up to REVISION (default head)")
    up.add_argument("revision", nargs="?", default="head")
    up.set_defaults(handler=_upgrade)
    down = verbs.add_parser("downgrade", help="revert migrations down to REVISION (default base: empty)")
    down.add_argument("revision", nargs="?", default="base")
    down.set_defaults(handler=_downgrade)
    current = verbs.add_parser("current", help="print the schema revision of the database")
    current.set_defaults(handler=_current)


def _url() -> str:
    from wgfpgan.config import Settings

    return Settings.from_env().database_url


def _upgrade(args: argparse.Namespace) -> int:
    from db.migrate import upgrade
    from wgfpgan.config import mask_url

    upgrade(_url(), args.revision)
    print(f"database {mask_url(_url())} upgraded to {args.revision}")
    return 0


def _downgrade(args: argparse.Namespace) -> int:
    from db.migrate import downgrade
    from wgfpgan.config import mask_url

    downgrade(_url(), args.revision)
    print(f"database {mask_url(_url())} downgraded to {args.revision}")
    return 0


def _current(args: argparse.Namespace) -> int:
    from db.engine import Database
    from db.migrations import HEAD_REVISION

    revision = Database(_url()).current_revision()
    print(f"{revision or '(empty)'} (code expects {HEAD_REVISION})")
    return 0
