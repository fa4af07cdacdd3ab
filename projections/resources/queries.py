"""Reading resource documents: one by id, or pages of them with filters and a sort.

Pages use keyset pagination on (sort value, resource id): a page boundary is a value,
not an offset, so inserts between page requests never duplicate or skip an item.
"""

from __future__ import annotations

from typing import Any

import asyncpg
import msgspec

from domain.identity.project_scope import PROJECT, narrowed
from gateways.eventstore.schema import checked_schema
from projections.checkpoints import Checkpoints

DOCUMENTS = "resource_documents"
"""The projection that writes the documents (its checkpoint's name)."""


class Document(msgspec.Struct, frozen=True):
    resource_id: str
    kind: str
    tenant_id: str | None
    project_id: str | None
    version: int
    view: dict[str, Any]
    position: int


class Page(msgspec.Struct, frozen=True):
    items: list[Document]
    next_after: tuple[str, str] | None
    """(sort value, resource id) of the last item when more may follow."""


_decode_view = msgspec.json.Decoder(dict[str, Any]).decode


def _document(row: asyncpg.Record) -> Document:
    return Document(row[0], row[1], row[2], row[3], row[4], _decode_view(row[5]), row[6])


class DocumentQueries:
    def __init__(self, schema: str) -> None:
        table = f"{checked_schema(schema)}.resource_documents"
        self._columns = "resource_id, kind, tenant_id, project_id, version, view::text, position"
        self._one = f"SELECT {self._columns} FROM {table} WHERE resource_id = $1"
        self._table = table
        self._checkpoints = Checkpoints(schema)

    async def ids_of_kind(self, pool: asyncpg.Pool, kind: str) -> list[str]:
        rows = await pool.fetch(
            f"SELECT resource_id FROM {self._table} WHERE kind = $1 ORDER BY resource_id", kind
        )
        return [row[0] for row in rows]

    async def ids_of_kind_as_of(self, pool: asyncpg.Pool, kind: str) -> tuple[int, list[str]]:
        """The ids of ``kind``, and a store position they include everything up to.

        The position is read first: the documents only move forward, so the ids read
        after it hold at least what was there at that position.
        """
        position = await self._checkpoints.read(pool, DOCUMENTS)
        return position, await self.ids_of_kind(pool, kind)

    async def get(self, pool: asyncpg.Pool, resource_id: str) -> Document | None:
        row = await pool.fetchrow(self._one, resource_id)
        return None if row is None else _document(row)

    async def page(
        self,
        pool: asyncpg.Pool,
        *,
        kind: str,
        tenant_id: str | None,
        projects: tuple[str, ...] | None = None,
        filters: dict[str, str] | None = None,
        sort: str = "id",
        descending: bool = False,
        limit: int = 50,
        after: tuple[str, str] | None = None,
        include_public: bool = False,
    ) -> Page:
        """``tenant_id`` None lists every tenant's (platform staff only); ``include_public``
        adds the platform's own documents (public images) to a tenant's."""
        args: list[Any] = [kind]
        where = ["kind = $1"]
        if tenant_id is not None:
            args.append(tenant_id)
            owned = f"tenant_id = ${len(args)}"
            where.append(f"({owned} OR tenant_id IS NULL)" if include_public else owned)
        if projects is not None and narrowed(kind):
            args.append(list(projects))
            # A project counts as in itself (see ``domain.identity.project_scope``).
            column = "resource_id" if kind == PROJECT else "project_id"
            where.append(f"{column} = ANY(${len(args)}::text[])")
        for field, value in (filters or {}).items():
            args.extend([field, value])
            where.append(f"view->>${len(args) - 1} = ${len(args)}")
        # The sort key is text so that one keyset comparison fits every field.
        if sort == "id":
            key = "resource_id"
        else:
            args.append(sort)
            key = f"coalesce(view->>${len(args)}, '')"
        direction, compare = ("DESC", "<") if descending else ("ASC", ">")
        if after is not None:
            args.extend(after)
            where.append(f"({key}, resource_id) {compare} (${len(args) - 1}, ${len(args)})")
        args.append(limit + 1)
        sql = (
            f"SELECT {self._columns}, {key} FROM {self._table} WHERE {' AND '.join(where)} "
            f"ORDER BY {key} {direction}, resource_id {direction} LIMIT ${len(args)}"
        )
        rows = await pool.fetch(sql, *args)
        items = [_document(r) for r in rows[:limit]]
        more = len(rows) > limit
        next_after = (rows[limit - 1][7], rows[limit - 1][0]) if more and limit > 0 else None
        return Page(items, next_after)
