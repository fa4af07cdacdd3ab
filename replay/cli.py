"""``scloud replay``: audit, time travel, verification, rebuilds and exports of the events.

Every command reads a PostgreSQL store (``--database-url``, ``--schema``; only the events
table is needed, so a restored backup works) or a SQLite file written by ``export``
(``--sqlite FILE``). Only ``rebuild`` and the projection half of ``verify`` write, and only
to PostgreSQL.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import asyncpg

from replay import audit, explain, history, state, statements
from replay.console import Bar, Consoles
from replay.errors import EXIT_CODES, FOUND_PROBLEM, OK, USAGE, ReplayError, Unreachable, Usage
from replay.export import Selection, export
from replay.pgsource import PostgresSource
from replay.rebuild import rebuild
from replay.source import EventSource
from replay.sqlitesource import SqliteSource
from replay.times import parse_time
from replay.verify import verify

EXAMPLES = """\
examples:
  scloud replay audit --tenant tnt-01j… --since 2026-03-01 --format csv > march.csv
  scloud replay history i-01j…
  scloud replay state i-01j… --at 2026-03-04T09:30:00Z
  scloud replay verify
  scloud replay export --tenant tnt-01j… --out ./audit-acme
  scloud replay --sqlite ./audit-acme/events.sqlite state i-01j… --at 2026-03-04T09:30Z
  scloud replay explain-charge chg-3173qrg… --format json

times are ISO 8601; without an offset they are UTC.
"""


def _source_options(parser: argparse.ArgumentParser, *, top: bool) -> None:
    # Accepted before and after the command; values after it win (SUPPRESS keeps argparse
    # from resetting the top-level value with the subcommand's default).
    def default(value: object) -> object:
        return value if top else argparse.SUPPRESS

    group = parser.add_argument_group("where the events are")
    group.add_argument(
        "--database-url",
        default=default(None),
        help="PostgreSQL URL of the store (default: $SCLOUD_DATABASE_URL)",
    )
    group.add_argument(
        "--schema",
        default=default(os.environ.get("SCLOUD_SCHEMA", "scloud")),
        help="schema of the events table (default: $SCLOUD_SCHEMA or scloud)",
    )
    group.add_argument(
        "--sqlite",
        type=Path,
        default=default(None),
        metavar="FILE",
        help="an export's events.sqlite",
    )


def build_parser() -> argparse.ArgumentParser:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog="scloud replay",
        description=(__doc__ or "").replace("``", ""),
        epilog=EXIT_CODES + "\n" + EXAMPLES,
        formatter_class=formatter,
    )
    _source_options(parser, top=True)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, summary: str, details: str = "") -> argparse.ArgumentParser:
        found = sub.add_parser(
            name,
            help=summary,
            description=summary + (f"\n\n{details}" if details else ""),
            epilog=EXIT_CODES,
            formatter_class=formatter,
        )
        _source_options(found, top=False)
        return found

    p = command("audit", "who did what, when, and how it ended (one line per operation)")
    p.add_argument("--tenant", help="one tenant's operations")
    p.add_argument("--actor", help="a user id, or the API key they acted through")
    p.add_argument("--action", help="exact, or a pattern such as 'iam:*'")
    p.add_argument("--resource", help="operations on one resource id")
    p.add_argument("--outcome", choices=("succeeded", "failed", "denied", "running"))
    p.add_argument("--since", type=parse_time, help="from this time (inclusive)")
    p.add_argument("--until", type=parse_time, help="up to this time (exclusive)")
    p.add_argument("--format", choices=("table", "jsonl", "csv"), default="table")

    p = command("history", "every event of one resource with its causal chain")
    p.add_argument("resource", metavar="RESOURCE")
    p.add_argument("--format", choices=("text", "json"), default="text")

    p = command(
        "state",
        "a resource as it was at a moment (JSON)",
        "Its events up to TIME are replayed through the platform's own aggregate code; the\n"
        "answer is its view() (what the API shows) or, lacking one, its public attributes.",
    )
    p.add_argument("resource", metavar="RESOURCE")
    p.add_argument("--at", type=parse_time, required=True, metavar="TIME")
    p.add_argument(
        "--clock",
        choices=("recorded", "occurred"),
        default="recorded",
        help="compare TIME with when the store recorded each event (default) or when its "
        "command ran",
    )

    p = command(
        "verify",
        "hash chain, and every live projection against a rebuild",
        "PostgreSQL: every link of the hash chain, then each projection the platform runs\n"
        "rebuilt up to its live checkpoint in a scratch schema (dropped afterwards) and\n"
        "compared row by row with the live tables, in one consistent snapshot.\n"
        "SQLite export: every link (against each event's recorded previous hash) and the\n"
        "file hashes in the manifest.json beside it.",
    )
    p.add_argument("--chain-only", action="store_true", help="skip the projection comparison")
    p.add_argument("--show", type=int, default=5, help="differing rows shown per table")
    p.add_argument(
        "--at-head",
        action="store_true",
        help="fail (exit 1) unless every projection has reached the store's head",
    )
    p.add_argument(
        "--wait",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="with --at-head: how long the projections may take to get there (default 30)",
    )

    p = command("rebuild", "rebuild one projection in place from position 0 (PostgreSQL)")
    p.add_argument("projection", metavar="PROJECTION")

    p = command(
        "export",
        "a tenant's events as JSON lines and SQLite, with a manifest",
        "Writes DIR/events.jsonl (one event a line; state and metadata are the exact stored\n"
        "JSON as text), DIR/events.sqlite (the events table's columns plus previous_hash;\n"
        "readable with --sqlite) and DIR/manifest.json (counts, first and last positions\n"
        "and chain hashes, SHA-256 of both files). Times select on when the store\n"
        "recorded each event. Secret fields (password and key hashes) are redacted and\n"
        "the events they were redacted from listed, unless --sealed.",
    )
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--tenant", help="events carrying this tenant id")
    who.add_argument("--all-tenants", action="store_true", help="every event")
    p.add_argument("--since", type=parse_time, help="recorded at or after this time")
    p.add_argument("--until", type=parse_time, help="recorded before this time")
    p.add_argument(
        "--out", type=Path, required=True, metavar="DIR", help="a new or empty directory"
    )
    p.add_argument(
        "--complete-streams",
        action="store_true",
        help="also the earlier events of each exported resource that lack the tenant id "
        "(its creation by an admin, say), so that every resource can be replayed",
    )
    p.add_argument(
        "--sealed",
        action="store_true",
        help="keep the exact stored bytes, secret fields (password hashes…) included, so "
        "that verify checks every link; the directory is made readable by its owner only",
    )

    p = command(
        "statement",
        "a tenant's monthly statement as CSV (FOCUS columns), JSON or PDF (PostgreSQL)",
        "Reads the live billing read model; with --rebuild the billing projections are first\n"
        "folded from the events into a scratch schema and the statement exported from there.",
    )
    p.add_argument("--tenant", required=True)
    p.add_argument("--period", required=True, type=_period, metavar="YYYY-MM")
    p.add_argument("--format", choices=statements.FORMATS, default="csv")
    p.add_argument("--rebuild", action="store_true", help="from the events, not the read model")
    p.add_argument("--out", type=Path, metavar="FILE", help="write here instead of stdout")

    p = command("explain-charge", "the events that produced a charge, back to its request")
    p.add_argument("charge", metavar="CHARGE_ID")
    p.add_argument("--format", choices=("text", "json"), default="text")
    return parser


@contextlib.asynccontextmanager
async def open_source(args: argparse.Namespace) -> AsyncIterator[EventSource]:
    if args.sqlite is not None and args.database_url is not None:
        raise Usage("give either --database-url or --sqlite, not both")
    source: EventSource
    if args.sqlite is not None:
        source = SqliteSource.open(args.sqlite)
    else:
        source = await PostgresSource.open(_database_url(args), args.schema)
    try:
        yield source
    finally:
        await source.close()


def _database_url(args: argparse.Namespace) -> str:
    url: str | None = args.database_url or os.environ.get("SCLOUD_DATABASE_URL")
    if not url:
        raise Usage("give --database-url (or set SCLOUD_DATABASE_URL) or --sqlite FILE")
    return url


def _period(value: str) -> str:
    if not re.fullmatch(r"[0-9]{4}-(0[1-9]|1[0-2])", value):
        raise argparse.ArgumentTypeError("a period is YYYY-MM")
    return value


async def _statement(args: argparse.Namespace, consoles: Consoles) -> int:
    if args.sqlite is not None:
        raise Usage("statement reads billing tables: it needs --database-url, not --sqlite")
    data = await statements.statement(
        _database_url(args),
        args.schema,
        args.tenant,
        args.period,
        args.format,
        rebuild=args.rebuild,
    )
    if args.out is not None:
        args.out.write_bytes(data)
        consoles.err.print(f"wrote {len(data)} bytes to {args.out}", markup=False)
    else:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    return OK


async def _run(args: argparse.Namespace, consoles: Consoles) -> int:
    if args.command == "statement":
        return await _statement(args, consoles)
    if args.command == "rebuild":
        if args.sqlite is not None:
            raise Usage("rebuild writes projection tables: it needs --database-url, not --sqlite")
        consoles.out.print(
            await rebuild(_database_url(args), args.schema, args.projection, consoles),
            markup=False,
        )
        return OK
    async with open_source(args) as source:
        return await _COMMANDS[args.command](args, source, consoles)


async def _audit(args: argparse.Namespace, source: EventSource, consoles: Consoles) -> int:
    wanted = audit.AuditFilter(
        tenant=args.tenant,
        actor=args.actor,
        action=args.action,
        resource=args.resource,
        outcome=args.outcome,
        since=args.since,
        until=args.until,
    )
    with consoles.progress() as progress:
        bar = Bar(progress, "reading operations", await source.head())
        entries, orphans = await audit.audit_entries(
            source, wanted, on_batch=lambda at, n: bar.at(at, n)
        )
    if orphans:
        consoles.err.print(f"note: {orphans} operations began before this source's first event")
    if args.format == "jsonl":
        audit.write_jsonl(entries)
    elif args.format == "csv":
        audit.write_csv(entries)
    else:
        audit.write_table(entries, consoles)
    return OK


async def _history(args: argparse.Namespace, source: EventSource, consoles: Consoles) -> int:
    with consoles.err.status("following request, command and causation ids"):
        found = await history.resource_history(source, args.resource)
    text = history.render_json(found) if args.format == "json" else history.render_text(found)
    sys.stdout.write(text + "\n")
    return OK


async def _state(args: argparse.Namespace, source: EventSource, consoles: Consoles) -> int:
    found = await state.state_at(source, args.resource, args.at, args.clock)
    sys.stdout.write(state.render(found) + "\n")
    return OK


async def _verify(args: argparse.Namespace, source: EventSource, consoles: Consoles) -> int:
    database_url = None if args.sqlite is not None else _database_url(args)
    ok = await verify(
        source,
        consoles,
        database_url=database_url,
        chain_only=args.chain_only,
        show=args.show,
        at_head=args.at_head,
        wait=args.wait,
    )
    return OK if ok else FOUND_PROBLEM


async def _export(args: argparse.Namespace, source: EventSource, consoles: Consoles) -> int:
    selection = Selection(
        tenant=None if args.all_tenants else args.tenant,
        since=args.since,
        until=args.until,
        complete_streams=args.complete_streams,
        sealed=args.sealed,
    )
    with consoles.progress() as progress:
        bar = Bar(progress, "exporting", await source.head())
        manifest = await export(source, selection, args.out, on_batch=lambda at, n: bar.at(at, n))
    if not manifest["events"]:
        consoles.err.print(f"note: no event matched {selection}", markup=False)
    consoles.out.print(
        f"exported {manifest['events']} events of {manifest['resources']} resources "
        f"(positions {manifest['first_position']}..{manifest['last_position']}) to {args.out}",
        markup=False,
    )
    return OK


async def _explain(args: argparse.Namespace, source: EventSource, consoles: Consoles) -> int:
    with consoles.err.status("looking for charge events"):
        found = await explain.explain_charge(source, args.charge)
    text = explain.render_json(found) if args.format == "json" else explain.render_text(found)
    sys.stdout.write(text + "\n")
    return OK


_COMMANDS = {
    "audit": _audit,
    "history": _history,
    "state": _state,
    "verify": _verify,
    "export": _export,
    "explain-charge": _explain,
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        return USAGE if exit_.code else OK
    consoles = Consoles()
    try:
        return asyncio.run(_run(args, consoles))
    except ReplayError as error:
        consoles.err.print(f"scloud replay {args.command}: {error}", markup=False)
        return error.code
    except BrokenPipeError:  # the reader went away (``| head``): nothing left to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return OK
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
        failure = Unreachable(f"reading the events failed: {type(error).__name__}: {error}")
        consoles.err.print(f"scloud replay {args.command}: {failure}", markup=False)
        return failure.code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
