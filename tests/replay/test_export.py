"""``export`` for an auditor, and every reading command on the SQLite file it writes."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import stat
from pathlib import Path
from typing import Any

from tests.replay.conftest import History, on, replay, replay_many


def test_export_then_state_at_on_sqlite_equals_the_live_answer(
    history: History, tmp_path: Path
) -> None:
    out = tmp_path / "acme"
    done = replay("export", "--tenant", history.tenant_id, "--out", out, *on(history))
    assert done.code == 0, done.err
    assert sorted(p.name for p in out.iterdir()) == [
        "events.jsonl",
        "events.sqlite",
        "manifest.json",
    ]
    exported = ("--sqlite", out / "events.sqlite")
    moments = (history.between_role_changes, history.after_all)
    runs = replay_many(
        *(("state", history.role_id, "--at", m.isoformat(), *on(history)) for m in moments),
        *(("state", history.role_id, "--at", m.isoformat(), *exported) for m in moments),
        ("history", history.role_id, *exported),
        ("audit", "--format", "jsonl", *exported),
        ("verify", *exported),
        ("export", "--tenant", history.tenant_id, "--out", out, *on(history)),
    )
    live_then, live_now, copy_then, copy_now, copied_history, audit, verify, again = runs
    assert live_then.code == copy_then.code == 0, copy_then.err
    assert copy_then.out == live_then.out
    assert copy_now.out == live_now.out
    assert json.loads(copy_then.out)["state"]["actions"] == ["iam:project:read"]

    assert copied_history.code == 0 and "iam:role:create -> succeeded" in copied_history.out
    tenants = {json.loads(line)["tenant_id"] for line in audit.out.splitlines()}
    assert tenants == {history.tenant_id}  # nothing of the other tenant
    assert verify.code == 0, verify.out + verify.err
    assert "hash chain intact" in verify.out and "manifest.json matches" in verify.out
    assert again.code == 2 and "choose an empty directory" in again.err


def test_manifest_counts_and_hashes_match_the_files(history: History, tmp_path: Path) -> None:
    out = tmp_path / "acme"
    done = replay("export", "--tenant", history.tenant_id, "--out", out, *on(history))
    assert done.code == 0, done.err
    manifest = json.loads((out / "manifest.json").read_text())
    lines = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    with sqlite3.connect(out / "events.sqlite") as db:
        rows = db.execute(
            "SELECT notification_id, tenant_id, chain_hash FROM scloud_events "
            "ORDER BY notification_id"
        ).fetchall()
    assert manifest["events"] == len(lines) == len(rows) > 0
    assert [line["position"] for line in lines] == [row[0] for row in rows]
    assert {row[1] for row in rows} == {history.tenant_id}
    assert manifest["first_position"] == rows[0][0] and manifest["last_position"] == rows[-1][0]
    assert manifest["first_chain_hash"] == rows[0][2].hex() == lines[0]["chain_hash"]
    assert manifest["last_chain_hash"] == rows[-1][2].hex()
    for name in ("events.jsonl", "events.sqlite"):
        digest = hashlib.sha256((out / name).read_bytes()).hexdigest()
        assert manifest["files"][name]["sha256"] == digest
    assert json.loads(lines[0]["metadata"])["tenant_id"] == history.tenant_id


def test_an_altered_export_fails_verify_and_a_tenant_export_is_complete(
    history: History, tmp_path: Path
) -> None:
    out = tmp_path / "acme"
    partial, complete = replay_many(
        ("export", "--tenant", history.tenant_id, "--out", out, *on(history)),
        ("export", "--tenant", history.tenant_id, "--complete-streams", "--out",
         tmp_path / "whole", *on(history)),
    )  # fmt: skip
    assert partial.code == complete.code == 0, partial.err + complete.err
    with sqlite3.connect(out / "events.sqlite") as db:
        position = db.execute(
            "SELECT notification_id FROM scloud_events WHERE originator_id = ? "
            "AND originator_version = 2",
            [history.role_id],
        ).fetchone()[0]
        db.execute(
            "UPDATE scloud_events SET state = CAST('{}' AS BLOB) WHERE notification_id = ?",
            [position],
        )
    ledger = "qta-" + history.tenant_id.removeprefix("tnt-")
    altered, cut, whole = replay_many(
        ("verify", "--sqlite", out / "events.sqlite"),
        ("state", ledger, "--at", "now", "--sqlite", out / "events.sqlite"),
        ("state", ledger, "--at", "now", "--sqlite", tmp_path / "whole" / "events.sqlite"),
    )
    assert altered.code == 1
    assert f"position {position}: {history.role_id} v2 Role.ActionsChanged" in altered.out
    assert "manifest.json MISMATCH" in altered.out and "events.sqlite: SHA-256" in altered.out
    # A tenant owns its creation events (the ledger's too), so its own export is complete.
    assert cut.code == 0 and whole.code == 0, cut.err + whole.err
    assert json.loads(cut.out)["state"] == json.loads(whole.out)["state"]
    assert json.loads(whole.out)["state"]["usage"]["*"]["projects"] == 4


def test_an_export_redacts_secrets_unless_an_auditor_asks_for_a_sealed_one(
    history: History, tmp_path: Path
) -> None:
    plain, sealed = tmp_path / "plain", tmp_path / "sealed"
    runs = replay_many(
        ("export", "--tenant", history.tenant_id, "--out", plain, *on(history)),
        ("export", "--tenant", history.tenant_id, "--sealed", "--out", sealed, *on(history)),
    )
    assert all(run.code == 0 for run in runs), [run.err for run in runs]

    def lines(out: Path) -> dict[str, dict[str, Any]]:
        rows = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
        return {f"{row['originator_id']}@{row['originator_version']}": row for row in rows}

    kept, hidden = lines(sealed), lines(plain)
    assert kept.keys() == hidden.keys()
    secrets = {
        json.loads(kept[f"{history.owner_id}@1"]["state"])["password_hash"],
        json.loads(kept[f"{history.key_id}@1"]["state"])["secret_hash"],
    }
    assert any(s.startswith("$argon2") for s in secrets) and len(secrets) == 2
    for name in ("events.jsonl", "events.sqlite", "manifest.json"):
        written = (plain / name).read_bytes()
        assert not [s for s in secrets if s.encode() in written], f"a secret is in {name}"
    owner = hidden[f"{history.owner_id}@1"]
    assert json.loads(owner["state"])["password_hash"] == "[redacted]"
    assert owner["redacted"] == ["password_hash"]
    assert "redacted" not in kept[f"{history.owner_id}@1"]

    manifests = [json.loads((out / "manifest.json").read_text()) for out in (plain, sealed)]
    assert [m["sealed"] for m in manifests] == [False, True]
    assert manifests[0]["redacted_events"] >= 2 and manifests[1]["redacted_events"] == 0
    assert stat.S_IMODE(sealed.stat().st_mode) == 0o700

    checked_plain, checked_sealed = replay_many(
        ("verify", "--sqlite", plain / "events.sqlite"),
        ("verify", "--sqlite", sealed / "events.sqlite"),
    )
    assert checked_plain.code == checked_sealed.code == 0, checked_plain.out + checked_sealed.out
    note = f"{manifests[0]['redacted_events']} events not checked: their secret fields were"
    assert note in checked_plain.out
    assert "hash chain intact" in checked_sealed.out and "not checked" not in checked_sealed.out
    total = len(kept)
    assert f"hash chain intact: {total} events" in checked_sealed.out
    assert f"hash chain intact: {total - manifests[0]['redacted_events']} events" in (
        checked_plain.out
    )
