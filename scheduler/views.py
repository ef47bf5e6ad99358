"""How jobs and items look on the terminal (rich tables) and as JSON.

Rich drops colour and styling by itself when stdout is not a terminal, and the tables use a plain ASCII
box when piped, so `wgfpgan status 3 | grep failed` reads cleanly.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table

from db import ItemState
from db.models import Item, Job
from db.queries import is_done

STATE_STYLES = {
    "queued": "cyan",
    "running": "yellow",
    "succeeded": "green",
    "failed": "red",
    "cancelled": "dim",
}


def console() -> Console:
    interactive = sys.stdout.isatty()
    return Console(highlight=False, soft_wrap=not interactive, width=None if interactive else 200)


def _box(out: Console) -> box.Box:
    return box.ROUNDED if out.is_terminal else box.ASCII


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S") if moment else "-"


def job_dict(job: Job, counts: dict[str, int]) -> dict[str, Any]:
    return {
        "id": job.id,
        "name": job.name,
        "state": job.state,
        "done": is_done(job, counts),
        "counts": counts,
        "total": sum(counts.values()),
        "source": job.source,
        "dest": job.dest,
        "options": job.options,
        "created_at": job.created_at.isoformat() if job.created_at else None,
        "finished_at": job.finished_at.isoformat() if job.finished_at else None,
    }


def item_dict(item: Item) -> dict[str, Any]:
    return {
        "id": item.id,
        "rel_key": item.rel_key,
        "state": item.state,
        "attempts": item.attempts,
        "error_code": item.error_code,
        "error_message": item.error_message,
        "source_uri": item.source_uri,
        "output_uri": item.output_uri,
        "faces": item.faces,
    }


def print_json(payload: Any) -> None:
    sys.stdout.write(json.dumps(payload, indent=2, default=str) + "\n")


def jobs_table(out: Console, rows: list[tuple[Job, dict[str, int]]]) -> None:
    table = Table(box=_box(out), title="jobs")
    table.add_column("id", justify="right")
    table.add_column("name")
    table.add_column("state")
    table.add_column("total", justify="right")
    for state in ItemState:
        table.add_column(state.value, justify="right", style=STATE_STYLES[state.value])
    table.add_column("created")
    for job, counts in rows:
        table.add_row(
            str(job.id),
            job.name,
            job.state,
            str(sum(counts.values())),
            *(str(counts[state.value]) for state in ItemState),
            _when(job.created_at),
        )
    out.print(table)


def status_view(out: Console, job: Job, counts: dict[str, int]) -> None:
    total = sum(counts.values())
    finished = total - counts["queued"] - counts["running"]
    out.print(f"job {job.id} [bold]{job.name}[/bold]: {job.state}, {finished}/{total} finished")
    out.print(f"  source {job.source}\n  dest   {job.dest}\n  created {_when(job.created_at)}", end="")
    out.print(f", finished {_when(job.finished_at)}" if job.finished_at else "")
    table = Table(box=_box(out))
    table.add_column("state")
    table.add_column("items", justify="right")
    table.add_column("share", justify="right")
    for state in ItemState:
        n = counts[state.value]
        share = f"{100 * n / total:.1f}%" if total else "-"
        table.add_row(f"[{STATE_STYLES[state.value]}]{state.value}[/]", str(n), share)
    out.print(table)


def failed_table(out: Console, items: list[Item]) -> None:
    table = Table(box=_box(out), title="failed items")
    table.add_column("item", justify="right")
    table.add_column("key", overflow="fold")
    table.add_column("code", style="red")
    table.add_column("reason", overflow="fold")
    table.add_column("tries", justify="right")
    for item in items:
        table.add_row(str(item.id), item.rel_key, item.error_code or "", item.error_message or "", str(item.attempts))
    out.print(table)
