"""The exit codes scripts rely on, and the typed errors the command line maps to them once."""

from __future__ import annotations

OK = 0
FOUND_PROBLEM = 1
USAGE = 2
UNREACHABLE = 3

EXIT_CODES = f"""\
exit codes:
  {OK}  success (verify: the chain is intact and every projection matches)
  {FOUND_PROBLEM}  a problem was found: verify saw a difference, or the resource or charge
     is unknown, or did not exist yet at the time asked about
  {USAGE}  bad usage: unknown option, malformed time or charge id, a command this source
     cannot run (rebuild on a SQLite file)
  {UNREACHABLE}  the events cannot be read: database unreachable, no events table in the
     schema, SQLite file missing or not an export
"""


class ReplayError(Exception):
    """An expected failure, told to the user in one line; ``code`` is the exit code."""

    code = FOUND_PROBLEM


class Problem(ReplayError):
    """The question has a negative answer: unknown resource, difference found."""

    code = FOUND_PROBLEM


class Usage(ReplayError):
    """The command cannot run as asked."""

    code = USAGE


class Unreachable(ReplayError):
    """The events cannot be read at all."""

    code = UNREACHABLE
