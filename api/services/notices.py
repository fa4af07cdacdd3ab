"""Security notices: queued with the change they tell of, mailed by the worker afterwards.

A notice is queued only where mail is configured (an SMTP host and a sender address in the
global config) and the account has an address. The sender finds queued notices in the read
model, mails each through the ``Mailer`` port and records ``Sent`` or ``Failed``: delivery
is at least once (a crash between the mail and its record mails it again).
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Protocol

from api.services.executor import CommandExecutor, Decided
from api.services.unit_of_work import UnitOfWork
from domain.errors import DomainError, NotFound
from domain.identity.security_notice import QUEUED, SecurityNotice
from domain.metadata import Actor, CommandContext
from domain.settings.global_config import GLOBAL_CONFIG_ID, GlobalConfig
from gateways.mail import Mail, MailFailed, MailServer, read_secret
from gateways.waiting import every

log = logging.getLogger(__name__)
ACTION = "iam:notice:send"


class Mailer(Protocol):
    async def send(self, server: MailServer, mail: Mail) -> None: ...


def mail_configured(config: GlobalConfig | None) -> bool:
    return config is not None and bool(config.smtp_host) and bool(config.mail_from)


async def queue_notice(
    unit: UnitOfWork,
    to: str | None,
    message: tuple[str, str],
    *,
    user_id: str | None,
    tenant_id: str | None,
) -> None:
    """Queue a notice in this unit of work, if mail is configured and there is an address."""
    if not to or not mail_configured(await unit.find(GLOBAL_CONFIG_ID, GlobalConfig)):
        return
    subject, text = message
    unit.add(SecurityNotice(user_id, tenant_id, to, subject, text))


def mail_server(config: GlobalConfig, state_dir: Path) -> MailServer:
    secret = config.smtp_password_secret
    return MailServer(
        host=config.smtp_host or "",
        port=config.smtp_port,
        security=config.smtp_security,
        sender=config.mail_from or "",
        username=config.smtp_username,
        password=read_secret(state_dir, secret) if secret else None,
    )


class NoticeSender:
    def __init__(
        self, executor: CommandExecutor, schema: str, mailer: Mailer, state_dir: Path
    ) -> None:
        self.executor = executor
        self.schema = schema
        self.mailer = mailer
        self.state_dir = state_dir

    async def queued(self) -> list[str]:
        rows = await self.executor.repository.store.pool.fetch(
            f"SELECT resource_id FROM {self.schema}.resource_documents "  # noqa: S608 - checked
            "WHERE kind = 'ntc' AND view->>'status' = $1 ORDER BY resource_id LIMIT 100",
            QUEUED,
        )
        return [row[0] for row in rows]

    async def send_queued(self) -> None:
        try:
            config = await self.executor.repository.get(GLOBAL_CONFIG_ID, GlobalConfig)
        except NotFound:
            return  # never configured: nothing was queued
        if not mail_configured(config):
            return  # queued notices wait until mail is configured again
        server = mail_server(config, self.state_dir)
        for notice_id in await self.queued():
            await self.send(server, notice_id)

    async def send(self, server: MailServer, notice_id: str) -> None:
        notice = await self.executor.repository.get(notice_id, SecurityNotice)
        if notice.status != QUEUED:
            return
        cause: str | None = None
        try:
            await self.mailer.send(
                server, Mail(to=notice.to, subject=notice.subject, text=notice.text)
            )
        except MailFailed as failed:
            cause = str(failed)
            log.warning("security notice %s not mailed: %s", notice_id, cause)

        async def decide(unit: UnitOfWork) -> Decided:
            current = await unit.get(notice_id, SecurityNotice)
            if current.status == QUEUED:
                current.sent() if cause is None else current.failed(cause)
            return Decided(resource_id=notice_id)

        context = CommandContext(
            actor=Actor.system("notices"),
            tenant_id=notice.tenant_id,
            command_id=f"notice:{notice_id}:{notice.attempts}",
        )
        try:
            await self.executor.run(context, ACTION, decide)
        except DomainError as error:
            log.warning("recording notice %s: %s", notice_id, error)

    async def run(self, stop: asyncio.Event, seconds: float = 1.0) -> None:
        await every(seconds, stop, self.send_queued, "security notices")
