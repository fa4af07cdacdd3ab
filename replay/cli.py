"""``scloud replay``: verification and rebuilds over a copy of the events (or the live store).

Exit codes: 0 success, 1 the check found a problem, 2 bad usage, 3 cannot reach the store.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from gateways.eventstore.hashchain import ChainBreak, ChainVerifier
from gateways.eventstore.postgres import PostgresEventStore
from projections.projection import Projection
from projections.resources.index import ResourceIndex
from projections.runner import ProjectionRunner

OK, FOUND_PROBLEM, USAGE, UNREACHABLE = 0, 1, 2, 3


def projections(schema: str) -> dict[str, Projection]:
    return {p.name: p for p in (ResourceIndex(schema),)}


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        console=console,
        transient=True,
    )


async def _verify(store: PostgresEventStore, console: Console) -> int:
    head = await store.last_position()
    verifier = ChainVerifier()
    position = 0
    with _progress(console) as progress:
        task = progress.add_task("verifying hash chain", total=head, rate="")
        while True:
            batch = await store.read_all(after=position, limit=5000)
            if not batch:
                break
            try:
                verifier.feed(batch)
            except ChainBreak as broken:
                console.print(f"[red]FAILED[/red] {broken}")
                return FOUND_PROBLEM
            position = batch[-1].position
            progress.update(task, completed=position)
    console.print(f"hash chain intact: {verifier.checked} events up to position {position}")
    return OK


async def _rebuild(store: PostgresEventStore, name: str, console: Console) -> int:
    known = projections(store.schema)
    if name not in known:
        console.print(f"unknown projection {name!r}; known: {', '.join(sorted(known))}")
        return USAGE
    runner = ProjectionRunner(store, known[name], batch_size=5000)
    await runner.setup()
    head = await store.last_position()
    with _progress(console) as progress:
        task = progress.add_task(f"rebuilding {name}", total=head, rate="")

        def on_progress(_applied: int, position: int) -> None:
            progress.update(task, completed=position)

        applied, seconds = await runner.rebuild(progress=on_progress)
    rate = applied / seconds if seconds > 0 else 0.0
    console.print(f"rebuilt {name}: {applied} events in {seconds:.2f}s ({rate:,.0f} events/s)")
    return OK


async def _main(args: argparse.Namespace, console: Console) -> int:
    try:
        store = await PostgresEventStore.open(args.database_url, args.schema)
    except (OSError, ValueError) as error:
        console.print(f"cannot open the event store: {error}")
        return UNREACHABLE
    try:
        if args.command == "verify":
            return await _verify(store, console)
        return await _rebuild(store, args.projection, console)
    finally:
        await store.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scloud replay", description=__doc__)
    parser.add_argument(
        "--database-url",
        default=os.environ.get("SCLOUD_DATABASE_URL"),
        help="PostgreSQL DSN of the store (default: $SCLOUD_DATABASE_URL)",
    )
    parser.add_argument("--schema", default=os.environ.get("SCLOUD_SCHEMA", "scloud"))
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("verify", help="check the hash chain of every event")
    rebuild = sub.add_parser("rebuild", help="rebuild one projection from position 0")
    rebuild.add_argument("projection")
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        return USAGE if exit_.code else OK
    console = Console(stderr=False)
    if not args.database_url:
        console.print("scloud replay: give --database-url or set SCLOUD_DATABASE_URL")
        return USAGE
    return asyncio.run(_main(args, console))


if __name__ == "__main__":
    sys.exit(main())
