"""``verify`` and ``rebuild`` through the command line, on clean, tampered and drifted stores."""

from __future__ import annotations

import asyncpg

from replay.catalog import live_projections
from tests.replay.conftest import Clone, History, on, replay, replay_many


async def sql(history: History, statement: str) -> None:
    conn = await asyncpg.connect(history.database_url)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


async def test_verify_succeeds_on_a_clean_store(history: History) -> None:
    done = replay("verify", *on(history))
    assert done.code == 0, done.out + done.err
    assert "hash chain intact" in done.out
    live = live_projections(history.schema)
    for projection in live:
        assert f"projection {projection.name} (" in done.out
    tables = sum(len(p.tables()) for p in live)
    assert done.out.count("identical to a rebuild") == tables  # one line per table


async def test_verify_names_each_altered_or_removed_event(history: History, clone: Clone) -> None:
    schema = await clone()
    role_created = await _position(history, schema, history.role_id, 1)
    await sql(
        history,
        f"UPDATE {schema}.scloud_events SET state = convert_to(replace(convert_from(state, "
        f"'UTF8'), 'viewer', 'admin'), 'UTF8') WHERE notification_id = {role_created}",
    )
    key_revoked = await _position(history, schema, history.key_id, 2)
    await sql(history, f"DELETE FROM {schema}.scloud_events WHERE notification_id = {key_revoked}")

    full, chain_only = replay_many(("verify", *on(history, schema)),
                                   ("verify", "--chain-only", *on(history, schema)))  # fmt: skip
    for done in (full, chain_only):
        assert done.code == 1, done.out + done.err
        assert "hash chain BROKEN: 2 altered or missing events" in done.out
        assert f"position {role_created}: {history.role_id} v1 Role.Created" in done.out
        # The removed event breaks the link of the one after it.
        assert f"events between positions {key_revoked - 1} and {key_revoked + 1}" in done.out
    assert "projections not compared" in full.out


async def test_verify_reports_drifted_projection_rows_and_rebuild_repairs_them(
    history: History, clone: Clone
) -> None:
    schema = await clone()
    await sql(
        history,
        f"UPDATE {schema}.audit_events SET outcome = 'failed' "
        f"WHERE operation_id = '{history.role_created_op}'",
    )
    await sql(
        history, f"DELETE FROM {schema}.resource_index WHERE resource_id = '{history.key_id}'"
    )
    await sql(
        history,
        f"UPDATE {schema}.resource_documents SET view = jsonb_set(view, '{{name}}', '\"root\"') "
        f"WHERE resource_id = '{history.role_id}'",
    )
    drifted = replay("verify", *on(history, schema))
    assert drifted.code == 1, drifted.out + drifted.err
    assert "hash chain intact" in drifted.out
    assert f"audit_log ({schema}.audit_events" in drifted.out
    assert (
        f"{history.role_created_op}: outcome: live 'failed' != rebuilt 'succeeded'" in drifted.out
    )
    assert f"{history.key_id}: only rebuilt" in drifted.out
    assert f"{history.role_id}: view.name: live 'root' != rebuilt 'viewer'" in drifted.out

    projections = ("audit_log", "resource_index", "resource_documents")
    runs = replay_many(*(("rebuild", p, *on(history, schema)) for p in projections))
    for projection, rebuilt in zip(projections, runs, strict=True):
        assert rebuilt.code == 0, rebuilt.err
        assert f"rebuilt {projection}:" in rebuilt.out and "events/s" in rebuilt.out
    assert replay("verify", *on(history, schema)).code == 0


async def _position(history: History, schema: str, resource_id: str, version: int) -> int:
    conn = await asyncpg.connect(history.database_url)
    try:
        return int(
            await conn.fetchval(
                f"SELECT notification_id FROM {schema}.scloud_events "
                "WHERE originator_id = $1 AND originator_version = $2",
                resource_id,
                version,
            )
        )
    finally:
        await conn.close()


async def test_verify_says_how_far_behind_each_projection_is_and_at_head_fails(
    history: History, clone: Clone
) -> None:
    from domain.identity.project import Project
    from domain.metadata import Actor, CommandContext
    from gateways.eventstore.postgres import PostgresEventStore
    from gateways.eventstore.repository import Repository

    schema = await clone()
    seq = f"{schema}.scloud_events_notification_id_seq"  # the clone's own, as the store's
    await sql(
        history,
        f"CREATE SEQUENCE {seq}; "
        f"SELECT setval('{seq}', (SELECT max(notification_id) FROM {schema}.scloud_events)); "
        f"ALTER TABLE {schema}.scloud_events ALTER notification_id SET DEFAULT nextval('{seq}')",
    )
    # Events the projections never saw: a worker that stalled while the API went on.
    store = await PostgresEventStore.open(history.database_url, schema)
    try:
        for n in range(3):
            context = CommandContext(actor=Actor.system("test"), tenant_id=history.tenant_id)
            project = Project(tenant_id=history.tenant_id, name=f"late-{n}", description="")
            await Repository(store).save(context, project)
    finally:
        await store.close()

    strict_args = ("verify", "--at-head", "--wait", "1", *on(history, schema))
    lenient, strict = replay_many(("verify", *on(history, schema)), strict_args)
    assert lenient.code == 0, lenient.out + lenient.err
    assert "3 behind the head" in lenient.out
    assert strict.code == 1, strict.out + strict.err
    for projection in live_projections(schema):
        assert f"projection {projection.name} is 3 events BEHIND the head" in strict.out

    at_head = replay("verify", "--at-head", "--wait", "1", *on(history))
    assert at_head.code == 0, at_head.out + at_head.err
    assert "BEHIND" not in at_head.out and "0 behind the head" in at_head.out
