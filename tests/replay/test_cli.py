"""``scloud replay`` audit, history and state, run as a script would: exit codes and output."""

from __future__ import annotations

import csv
import io
import json

from tests.replay.conftest import SCLOUD_REPLAY, History, on, replay, replay_many


def jsonl(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_help_documents_the_exit_codes() -> None:
    done = replay("--help")
    assert done.code == 0
    for line in ("exit codes:", "0  success", "1  a problem", "2  bad usage", "3  the events"):
        assert line in done.out


def test_audit_filters_by_tenant_action_actor_resource_outcome_and_time(history: History) -> None:
    src = on(history)
    lines = ("--format", "jsonl")
    projects, denied, failed, role, before, after = replay_many(
        ("audit", *src, "--tenant", history.tenant_id, "--action", "iam:project:*", *lines),
        ("audit", *src, "--actor", history.owner_id, "--outcome", "denied", *lines),
        ("audit", *src, "--outcome", "failed", *lines),
        ("audit", *src, "--resource", history.role_id, "--format", "csv"),
        ("audit", *src, "--until", history.before_role.isoformat(), "--action", "iam:role:*"),
        ("audit", *src, "--since", history.before_role.isoformat(), "--action", "iam:role:*",
         *lines),
    )  # fmt: skip
    assert projects.code == 0, projects.err
    rows = jsonl(projects.out)
    assert len(rows) == 4  # p0, p1, p2 and the keyed one; not the other tenant's
    assert {r["tenant_id"] for r in rows} == {history.tenant_id}
    assert {r["outcome"] for r in rows} == {"succeeded"}

    assert [(r["action"], r["error_code"]) for r in jsonl(denied.out)] == [
        ("admin:tenant:read", "forbidden")
    ]
    assert [(r["action"], r["error_code"]) for r in jsonl(failed.out)] == [
        ("admin:tenant:freeze", "invalid_state")
    ]

    table = list(csv.DictReader(io.StringIO(role.out)))
    assert [r["action"] for r in table] == ["iam:role:create", "iam:role:update"]
    assert table[0]["operation_id"] == history.role_created_op
    assert table[0]["request_id"] == "req-role-create"

    assert "iam:role" not in before.out and "0 operations" in before.out
    assert [r["action"] for r in jsonl(after.out)] == ["iam:role:create", "iam:role:update"]


def test_audit_table_through_the_scloud_entry_point(history: History) -> None:
    done = replay("audit", *on(history), "--tenant", history.tenant_id, command=SCLOUD_REPLAY)
    assert done.code == 0, done.err
    assert "iam:role:create" in done.out and "req-role-create" in done.out
    assert "admin:tenant:freeze" not in done.out  # the other tenant's
    assert done.out.splitlines()[-1].endswith("operations")


def test_history_shows_the_operation_request_and_command_of_each_event(history: History) -> None:
    text, as_json = replay_many(
        ("history", history.role_id, *on(history)),
        ("history", history.keyed_project_id, "--format", "json", *on(history)),
    )
    assert text.code == 0, text.err
    assert f"{history.role_id}: 2 events" in text.out
    assert "Role.Created" in text.out and "Role.ActionsChanged" in text.out
    assert "request req-role-create" in text.out
    assert f"operation {history.role_created_op} iam:role:create -> succeeded" in text.out
    assert "iam:role:update -> succeeded" in text.out

    assert as_json.code == 0, as_json.err
    (step,) = json.loads(as_json.out)["steps"]
    assert step["event"] == "Project.Created"
    assert step["command_id"] == f"{history.owner_id}:replay-key-1"
    assert [op["action"] for op in step["operations"]] == ["iam:project:create"]
    # The quota allocation was written by the same command, on another aggregate.
    assert [e["event"] for e in step["same_command"]] == ["QuotaLedger.Allocated"]
    assert step["same_command"][0]["resource_id"].startswith("qta-")


def test_state_at_a_moment_between_two_changes(history: History) -> None:
    role = ("state", history.role_id, *on(history))
    then, now, tenant, by_command_time = replay_many(
        (*role, "--at", history.between_role_changes.isoformat()),
        (*role, "--at", history.after_all.isoformat()),
        ("state", history.other_tenant_id, "--at", "now", *on(history)),
        (*role, "--at", history.between_role_changes.isoformat(), "--clock", "occurred"),
    )
    assert then.code == 0 and now.code == 0, then.err + now.err
    assert json.loads(then.out)["state"]["actions"] == ["iam:project:read"]
    assert json.loads(then.out)["later_events"] == 1
    assert json.loads(now.out)["state"]["actions"] == ["iam:project:read", "iam:role:read"]
    assert json.loads(now.out)["version"] == 2
    assert json.loads(tenant.out)["state"]["status"] == "frozen"
    assert json.loads(by_command_time.out)["state"] == json.loads(then.out)["state"]


def test_unknown_resources_and_moments_before_creation_exit_1(history: History) -> None:
    unknown_history, unknown_state, early = replay_many(
        ("history", "i-doesnotexist", *on(history)),
        ("state", "i-doesnotexist", "--at", "now", *on(history)),
        ("state", history.role_id, "--at", history.before_role.isoformat(), *on(history)),
    )
    for done in (unknown_history, unknown_state):
        assert done.code == 1
        assert "unknown resource 'i-doesnotexist'" in done.err
    assert early.code == 1 and "did not exist yet" in early.err


def test_bad_usage_exits_2_and_unreadable_sources_exit_3(history: History) -> None:
    bad_time, bad_date, no_command, no_source, both, projection, *unreadable = replay_many(
        ("state", history.role_id, "--at", "last tuesday", *on(history)),
        ("audit", "--since", "2026-13-45", *on(history)),
        ("teleport", *on(history)),
        ("audit",),
        ("audit", *on(history), "--sqlite", "x.sqlite"),
        ("rebuild", "no_such_projection", *on(history)),
        ("audit", "--database-url", "postgresql://nobody@127.0.0.1:1/none"),
        ("audit", *on(history, schema="no_such_schema")),
        ("audit", "--sqlite", "/nonexistent/events.sqlite"),
    )
    assert bad_time.code == 2 and "not an ISO 8601 time" in bad_time.err
    assert bad_date.code == 2 and no_command.code == 2
    assert no_source.code == 2 and "--database-url" in no_source.err
    assert both.code == 2 and "not both" in both.err
    assert projection.code == 2 and "known: audit_log" in projection.err

    refused, empty, missing = unreadable
    assert refused.code == 3 and "cannot connect" in refused.err
    assert empty.code == 3 and "no events table no_such_schema.scloud_events" in empty.err
    assert missing.code == 3 and "no such file" in missing.err
