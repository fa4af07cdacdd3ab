"""One request's context: its caller, its decoded input, and the conventions of answering."""

from __future__ import annotations

import base64
import hashlib
import logging
from typing import TYPE_CHECKING, Any

import msgspec
from aiohttp import web

from api.problems import REQUEST_ID
from api.services.denials import Denial
from api.services.executor import CommandFailed, Decision, Outcome
from api.times import AS_OF, parse_time
from domain import clock
from domain.errors import DomainError, NotFound, ValidationFailed
from domain.identity.permissions import Principal, decide
from domain.identity.project_scope import outside_projects
from domain.metadata import Actor, ActorKind, CommandContext
from gateways.eventstore.unavailable import store_unavailable
from projections.resources.queries import DOCUMENTS, Document, Page
from projections.runner import wait_for_position

if TYPE_CHECKING:
    from api.bootstrap import Platform
    from api.routing import Endpoint

_json = msgspec.json.Encoder()
log = logging.getLogger(__name__)
MIN_POSITION_HEADER = "X-Scloud-Min-Position"
POSITION_HEADER = "X-Scloud-Position"
READ_YOUR_WRITES_TIMEOUT = 10.0


class NotYetVisible(DomainError):
    code = "not_yet_visible"
    status = 503


def json_response(
    data: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        status=status, body=_json.encode(data), content_type="application/json", headers=headers
    )


class Call:
    def __init__(self, request: web.Request, platform: Platform, endpoint: Endpoint) -> None:
        self.request = request
        self.platform = platform
        self.endpoint = endpoint
        self.principal: Principal | None = None
        self.body: Any = None
        self.query: Any = None

    # -- who -------------------------------------------------------------------------

    @property
    def me(self) -> Principal:
        if self.principal is None:
            raise AssertionError("endpoint is public")
        return self.principal

    @property
    def source(self) -> str | None:
        return self.request.remote

    def actor(self) -> Actor:
        principal = self.principal
        if principal is None:
            return Actor(ActorKind.USER, "anonymous")
        if principal.api_key_id is not None:
            return Actor(ActorKind.API_KEY, principal.user_id, via=principal.api_key_id)
        if principal.is_platform:
            return Actor(ActorKind.ADMIN, principal.user_id)
        owner = "owner" in principal.roles
        return Actor(ActorKind.USER if owner else ActorKind.SUB_ACCOUNT, principal.user_id)

    def context(self, tenant_id: str | None) -> CommandContext:
        key = self.request.headers.get("Idempotency-Key")
        command_id = None
        if key:
            if len(key) > 200:
                raise ValidationFailed("Idempotency-Key is longer than 200 characters")
            scope = self.principal.user_id if self.principal else "anonymous"
            command_id = f"{scope}:{key}"
        request_id = self.request[REQUEST_ID]
        return CommandContext(
            actor=self.actor(),
            tenant_id=tenant_id,
            command_id=command_id,
            fingerprint=self._fingerprint(),
            request_id=request_id,
            correlation_id=self.request.headers.get("X-Correlation-Id") or request_id,
            source=self.source,
        )

    def _fingerprint(self) -> bytes:
        digest = hashlib.sha256(f"{self.request.method} {self.request.path_qs}\n".encode())
        if self.body is not None:
            digest.update(_json.encode(self.body))
        return digest.digest()

    # -- deciding --------------------------------------------------------------------

    def check(
        self,
        action: str,
        *,
        tenant_id: str | None,
        project_id: str | None = None,
    ) -> str | None:
        return decide(self.me, action, tenant_id=tenant_id, project_id=project_id)

    async def audit_denial(
        self,
        error: DomainError,
        resource_id: str | None = None,
        *,
        foreign: bool = False,
        tenant_id: str | None = None,
    ) -> None:
        """Queue a denied attempt for the audit log; nothing is written while the caller waits.

        ``tenant_id`` names the tenant aimed at, when it is not the caller's: the owner of a
        ``foreign`` resource (found when the denial is appended if not given), or the tenant
        of a failed sign-in. A foreign one goes to that tenant's log, never to the caller's,
        which must not tell such a resource from a missing one.
        """
        principal = self.principal
        if foreign or principal is None:
            tenant = tenant_id
        else:
            tenant = principal.tenant_id
        request_id = self.request[REQUEST_ID]
        context = CommandContext(
            actor=self.actor(),
            tenant_id=tenant,
            request_id=request_id,
            correlation_id=self.request.headers.get("X-Correlation-Id") or request_id,
            source=self.source,
        )
        self.platform.denials.record(
            Denial(
                context=context,
                action=self.endpoint.action or "auth",
                resource_id=resource_id,
                code=error.code,
                detail=error.detail,
                at=clock.now(),
                find_tenant=foreign and tenant_id is None and resource_id is not None,
            )
        )

    async def execute(
        self, decision: Decision, *, tenant_id: str | None, action: str | None = None
    ) -> Outcome:
        """Run the endpoint's command; a refusal is recorded and raised as its error."""
        context = self.context(tenant_id)
        try:
            outcome = await self.platform.executor.run(
                context,
                action or self.endpoint.action or "command",
                decision,
                source=self.source,
                if_match=self.if_match(),
                target=self.request.match_info.get("id"),
            )
        except CommandFailed as failed:
            failed.error.context.setdefault("operation_id", failed.outcome.operation_id)
            if failed.error.context.pop("other_tenants", False):
                resource_id = failed.error.context.get("resource_id")
                await self.audit_denial(
                    DomainError("another tenant's resource"),
                    resource_id if isinstance(resource_id, str) else None,
                    foreign=True,
                )
            raise failed.error from None
        await self._caught_up(outcome)
        return outcome

    async def _caught_up(self, outcome: Outcome) -> None:
        """Make our identity cache current: the caller may sign in with what it just made.

        The command has committed by now, so a failure here (the store went away in
        between) must not turn its success into an error: the answer stands, and the
        cache's follower applies the events once the store is back.
        """
        try:
            await self.platform.identity.catch_up(self.platform.store, outcome.position)
        except Exception as error:
            if store_unavailable(error):
                log.warning("committed at %d, cache behind: %s", outcome.position, error)
            else:
                log.exception("committed at %d, cache behind", outcome.position)

    def if_match(self) -> int | None:
        given = self.request.headers.get("If-Match")
        if given is None:
            return None
        try:
            return int(given.strip().strip('"').removeprefix("W/").strip('"'))
        except ValueError:
            raise ValidationFailed("If-Match must be an ETag this API gave out") from None

    # -- reading ---------------------------------------------------------------------

    async def read_your_writes(self, projection: str = DOCUMENTS) -> None:
        """Wait (bounded) until ``projection`` includes the position the caller names."""
        given = self.request.query.get("min_position") or self.request.headers.get(
            MIN_POSITION_HEADER
        )
        if not given:
            return
        try:
            position = int(given)
        except ValueError:
            raise ValidationFailed("min_position must be an integer") from None
        await self.reach(projection, position)

    async def reach(self, projection: str, position: int) -> None:
        """Wait (bounded) until ``projection`` has applied ``position``, or answer 503.

        Every finished operation and every lagging read by id may wait here, so waiting
        holds no connection: ``wait_for_position`` shares one listener per process.
        """
        reached = await wait_for_position(
            self.platform.store.pool,
            self.platform.settings.schema,
            projection,
            position,
            READ_YOUR_WRITES_TIMEOUT,
        )
        if not reached:
            raise NotYetVisible(f"position {position} is not yet visible; retry shortly")

    async def current_document(self, resource_id: str) -> Document | None:
        """The resource's document, holding at least its last write in the store.

        Whoever wrote it and whoever reads: a tenant reading an image another tenant has
        just shared, an admin acting on a webhook a tenant has just made. A document
        behind its stream waits (bounded) for the read model, instead of answering 404
        or an old state; a current one costs one indexed lookup more.
        """
        await self.read_your_writes()
        pool = self.platform.store.pool
        found = await self.platform.documents.get(pool, resource_id)
        latest = await self.platform.store.position_of(resource_id)
        if latest and (found is None or found.position < latest):
            await self.reach(DOCUMENTS, latest)
            found = await self.platform.documents.get(pool, resource_id)
        return found

    async def document(self, resource_id: str, kind: str, action: str) -> Document:
        """The caller's own resource, or 404: another tenant's looks like a missing one."""
        found = await self.current_document(resource_id)
        if found is None or found.kind != kind:
            raise NotFound(f"{resource_id} does not exist", resource_id=resource_id)
        reason = self.check(action, tenant_id=found.tenant_id, project_id=found.project_id)
        if reason is None and not self.me.is_platform:
            # One in no project is as far out of a limited sub-account's reach as one in
            # another project: its lists hide both.
            reason = outside_projects(
                self.me.projects, found.kind, found.resource_id, found.project_id
            )
        foreign = not self.me.is_platform and found.tenant_id != self.me.tenant_id
        if reason is None and foreign:
            reason = "the platform's own resource"
        if reason is not None:
            await self.audit_denial(
                DomainError(reason), resource_id, foreign=foreign, tenant_id=found.tenant_id
            )
            raise NotFound(f"{resource_id} does not exist", resource_id=resource_id)
        return found

    # -- answering -------------------------------------------------------------------

    def accepted(self, outcome: Outcome, status: int = 202) -> web.Response:
        body = {
            "operation_id": outcome.operation_id,
            "resource_id": outcome.resource_id,
            "position": outcome.position,
            **outcome.body,
        }
        headers = {
            "Location": f"/v1/operations/{outcome.operation_id}",
            POSITION_HEADER: str(outcome.position),
        }
        if outcome.replayed:
            headers["Idempotent-Replayed"] = "true"
        return json_response(body, status, headers)

    async def one(self, document: Document) -> web.Response:
        """The document; with ``?as_of=TIME``, the resource as it was then (time travel)."""
        as_of = self.request.query.get(AS_OF)
        if as_of is None:
            return json_response(document.view, headers={"ETag": f'"{document.version}"'})
        moment = parse_time(AS_OF, as_of)
        past = await self.platform.repository.as_of(document.resource_id, moment)
        if past is None or not callable(getattr(past, "view", None)):
            raise NotFound(f"{document.resource_id} did not exist at {as_of}")
        return json_response(past.view(), headers={"ETag": f'"{past.version}"'})

    def page(self, page: Page, limit: int) -> web.Response:
        token = encode_page_token(page.next_after) if page.next_after else None
        headers = {}
        if token:
            query = dict(self.request.query)
            query.update(page_token=token, limit=str(limit))
            link = self.request.rel_url.with_query(query)
            headers["Link"] = f'<{link}>; rel="next"'
        body = {"items": [d.view for d in page.items], "next_page_token": token}
        return json_response(body, headers=headers)


def encode_page_token(after: tuple[str, str]) -> str:
    return base64.urlsafe_b64encode(_json.encode(list(after))).rstrip(b"=").decode()


def decode_page_token(token: str | None) -> tuple[str, str] | None:
    if not token:
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        value, resource_id = msgspec.json.decode(raw, type=tuple[str, str])
    except (ValueError, msgspec.DecodeError):
        raise ValidationFailed("page_token is not one this API gave out") from None
    return value, resource_id
