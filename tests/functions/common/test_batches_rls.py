"""Row-level security of batches (migration 0005): like every tenant table, forced RLS on the app role."""

from __future__ import annotations

import psycopg
import pytest
from psycopg.rows import dict_row

from functions.common import batches, db
from functions.common.models import BatchRequest
from functions.common.tenants import ensure_user


@pytest.fixture
def two_batches(database_url: str) -> dict[str, tuple[str, str]]:
    made = {}
    for name in ("alice", "bob"):
        tenant = ensure_user(name, f"{name}@example.com", 0).tenant_id
        with db.transaction(tenant) as conn:
            made[name] = (tenant, str(batches.create(conn, tenant, name, BatchRequest(name=name))["id"]))
    return made


def test_each_tenant_sees_only_its_batches(two_batches: dict[str, tuple[str, str]]) -> None:
    (alice, alice_batch), (_bob, bob_batch) = two_batches["alice"], two_batches["bob"]
    with db.transaction(None) as conn:
        assert conn.execute("SELECT count(*) AS n FROM batches").fetchone()["n"] == 0
    with db.transaction(alice) as conn:
        assert [str(r["id"]) for r in conn.execute("SELECT id FROM batches").fetchall()] == [alice_batch]
        assert (
            conn.execute(
                "UPDATE batches SET status = 'cancelled' WHERE id = %s RETURNING id", (bob_batch,)
            ).fetchone()
            is None
        )
        with pytest.raises(Exception, match="not found"):
            batches.get(conn, alice, bob_batch)


def test_forged_batches_and_deletes_are_refused(two_batches: dict[str, tuple[str, str]]) -> None:
    alice, _ = two_batches["alice"]
    bob, _ = two_batches["bob"]
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
        with db.transaction(alice) as conn:
            conn.execute(
                "INSERT INTO batches (id, tenant_id, folder, name) VALUES (gen_random_uuid(), %s, 'x', 'x')",
                (bob,),
            )
    with pytest.raises(psycopg.errors.InsufficientPrivilege), db.transaction(alice) as conn:
        conn.execute("DELETE FROM batches")


def test_batches_force_rls_and_the_sweeper_lookup_reveals_only_ids(
    admin_url: str, two_batches: dict[str, tuple[str, str]]
) -> None:
    with psycopg.connect(admin_url, row_factory=dict_row) as admin:
        forced = admin.execute(
            "SELECT relrowsecurity AND relforcerowsecurity AS forced FROM pg_class WHERE relname = 'batches'"
        ).fetchone()
        assert forced == {"forced": True}
        alice, alice_batch = two_batches["alice"]
        admin.execute(
            "UPDATE batches SET finished_at = now(), report = '{}', status = 'completed' WHERE id = %s",
            (alice_batch,),
        )
    rows = db.system_rows("SELECT * FROM app_unwritten_batch_reports(%s)", (10,))
    assert [(str(r["batch_id"]), str(r["tenant_id"])) for r in rows] == [(alice_batch, alice)]
