"""The platform's global configuration: one aggregate with a fixed id.

Its id is ``cfg-`` and 26 zeros: well formed, and — being the first id any clock could
mint — it says "there before anything", with no lookup and no owner to derive it from.
The values in force at creation travel in the ``Created`` event, so changing a default
in a later release never rewrites the configuration an installation already has.
No secret is stored here: mail names the secret holding its password, never the password.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from typing import Any

from eventsourcing.domain import event

from domain.aggregate import Aggregate
from domain.errors import ValidationFailed
from domain.inventory.host import check_hostname
from domain.inventory.name_claim import check_name
from domain.inventory.quota_defaults import check_quota_defaults, merged
from domain.secrets import secret

GLOBAL_CONFIG_ID = "cfg-" + "0" * 26
MAIL_SECURITY = ("starttls", "tls", "none")
EMAIL_PATTERN = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"
_EMAIL = re.compile(EMAIL_PATTERN)
_CURRENCY = re.compile(r"^[A-Z]{3}$")

DEFAULTS: dict[str, Any] = {
    "recycle_bin_retention_days": 7,
    "default_currency": "USD",
    "freeze_on_arrears": True,
    "arrears_grace_days": 3,
    "smtp_host": None,
    "smtp_port": 587,
    "smtp_security": "starttls",
    "mail_from": None,
    "smtp_username": None,
    "smtp_password_secret": None,
    "password_min_length": 12,
    "token_ttl_hours": 12,
    "lockout_threshold": 5,
    "quota_defaults": {},
}


def _between(field: str, value: int, low: int, high: int) -> int:
    if not low <= value <= high:
        raise ValidationFailed(f"{field} runs from {low} to {high}", field=field)
    return value


def _check_smtp_host(host: str) -> str:
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return check_hostname(host)


class GlobalConfig(Aggregate):
    id_prefix = "cfg"
    secret_fields = secret(
        Created=("smtp_password_secret",), MailSettingsChanged=("password_secret",)
    )

    def __init__(
        self,
        recycle_bin_retention_days: int,
        default_currency: str,
        freeze_on_arrears: bool,
        arrears_grace_days: int,
        smtp_host: str | None,
        smtp_port: int,
        smtp_security: str,
        mail_from: str | None,
        smtp_username: str | None,
        smtp_password_secret: str | None,
        password_min_length: int,
        token_ttl_hours: int,
        lockout_threshold: int,
        quota_defaults: dict[str, int],
    ) -> None:
        self.recycle_bin_retention_days = recycle_bin_retention_days
        self.default_currency = default_currency
        self.freeze_on_arrears = freeze_on_arrears
        self.arrears_grace_days = arrears_grace_days
        self.smtp_host = smtp_host
        self.smtp_port = smtp_port
        self.smtp_security = smtp_security
        self.mail_from = mail_from
        self.smtp_username = smtp_username
        self.smtp_password_secret = smtp_password_secret
        self.password_min_length = password_min_length
        self.token_ttl_hours = token_ttl_hours
        self.lockout_threshold = lockout_threshold
        self.quota_defaults = dict(quota_defaults)

    @classmethod
    def establish(cls) -> GlobalConfig:
        """The configuration as first installed, with today's defaults."""
        return cls._create(cls.Created, id=GLOBAL_CONFIG_ID, **DEFAULTS)

    def view(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "tenant_id": None,
            "recycle_bin": {"retention_days": self.recycle_bin_retention_days},
            "billing": {
                "default_currency": self.default_currency,
                "freeze_on_arrears": self.freeze_on_arrears,
                "grace_days": self.arrears_grace_days,
            },
            "mail": {
                "smtp_host": self.smtp_host,
                "smtp_port": self.smtp_port,
                "security": self.smtp_security,
                "from_address": self.mail_from,
                "username": self.smtp_username,
                "password_secret": self.smtp_password_secret,
            },
            "login_policy": {
                "password_min_length": self.password_min_length,
                "token_ttl_hours": self.token_ttl_hours,
                "lockout_threshold": self.lockout_threshold,
            },
            "quota_defaults": self.quota_defaults,
        }

    def set_recycle_bin_retention(self, days: int) -> None:
        if _between("retention_days", days, 0, 3650) != self.recycle_bin_retention_days:
            self._recycle_bin_retention_changed(days)

    @event("RecycleBinRetentionChanged")
    def _recycle_bin_retention_changed(self, days: int) -> None:
        self.recycle_bin_retention_days = days

    def change_billing(
        self,
        default_currency: str | None = None,
        freeze_on_arrears: bool | None = None,
        grace_days: int | None = None,
    ) -> None:
        """What a new tenant is billed in, and what happens when a balance runs out."""
        currency = self.default_currency if default_currency is None else default_currency
        if not _CURRENCY.fullmatch(currency):
            raise ValidationFailed("default_currency is an ISO 4217 code", field="billing")
        freeze = self.freeze_on_arrears if freeze_on_arrears is None else freeze_on_arrears
        grace = self.arrears_grace_days if grace_days is None else grace_days
        _between("grace_days", grace, 0, 365)
        if (currency, freeze, grace) != (
            self.default_currency,
            self.freeze_on_arrears,
            self.arrears_grace_days,
        ):
            self._billing_changed(currency, freeze, grace)

    @event("BillingSettingsChanged")
    def _billing_changed(
        self, default_currency: str, freeze_on_arrears: bool, grace_days: int
    ) -> None:
        self.default_currency = default_currency
        self.freeze_on_arrears = freeze_on_arrears
        self.arrears_grace_days = grace_days

    def change_mail(
        self,
        smtp_host: str | None = None,
        smtp_port: int | None = None,
        security: str | None = None,
        from_address: str | None = None,
        username: str | None = None,
        password_secret: str | None = None,
    ) -> None:
        """How the platform sends mail; the password stays in the named secret."""
        host = self.smtp_host if smtp_host is None else _check_smtp_host(smtp_host)
        port = _between("smtp_port", self.smtp_port if smtp_port is None else smtp_port, 1, 65535)
        security = self.smtp_security if security is None else security
        if security not in MAIL_SECURITY:
            raise ValidationFailed(f"security is one of {list(MAIL_SECURITY)}", field="mail")
        sender = self.mail_from if from_address is None else from_address
        if sender is not None and (
            len(sender) > 254 or not sender.isprintable() or not _EMAIL.fullmatch(sender)
        ):
            raise ValidationFailed(f"{sender!r} is not an e-mail address", field="mail")
        user = self.smtp_username if username is None else username
        if user is not None and (not 0 < len(user) <= 254 or not user.isprintable()):
            raise ValidationFailed("username: 1-254 printable characters", field="mail")
        secret = self.smtp_password_secret
        if password_secret is not None:
            secret = check_name(password_secret, "password_secret")
        new = (host, port, security, sender, user, secret)
        if new != (
            self.smtp_host,
            self.smtp_port,
            self.smtp_security,
            self.mail_from,
            self.smtp_username,
            self.smtp_password_secret,
        ):
            self._mail_changed(*new)

    @event("MailSettingsChanged")
    def _mail_changed(
        self,
        smtp_host: str | None,
        smtp_port: int,
        security: str,
        from_address: str | None,
        username: str | None,
        password_secret: str | None,
    ) -> None:
        self.smtp_host = smtp_host
        self.smtp_port = smtp_port
        self.smtp_security = security
        self.mail_from = from_address
        self.smtp_username = username
        self.smtp_password_secret = password_secret

    def change_login_policy(
        self,
        password_min_length: int | None = None,
        token_ttl_hours: int | None = None,
        lockout_threshold: int | None = None,
    ) -> None:
        """Sign-in rules; a lockout threshold of 0 never locks an account."""
        length = self.password_min_length if password_min_length is None else password_min_length
        ttl = self.token_ttl_hours if token_ttl_hours is None else token_ttl_hours
        lockout = self.lockout_threshold if lockout_threshold is None else lockout_threshold
        _between("password_min_length", length, 8, 128)
        _between("token_ttl_hours", ttl, 1, 720)
        _between("lockout_threshold", lockout, 0, 100)
        if (length, ttl, lockout) != (
            self.password_min_length,
            self.token_ttl_hours,
            self.lockout_threshold,
        ):
            self._login_policy_changed(length, ttl, lockout)

    @event("LoginPolicyChanged")
    def _login_policy_changed(
        self, password_min_length: int, token_ttl_hours: int, lockout_threshold: int
    ) -> None:
        self.password_min_length = password_min_length
        self.token_ttl_hours = token_ttl_hours
        self.lockout_threshold = lockout_threshold

    def set_quota_defaults(self, limits: Mapping[str, int | None]) -> None:
        """Defaults for the ``*`` scope: every region without its own, and regionless kinds."""
        changes = check_quota_defaults(limits)
        if merged(self.quota_defaults, changes) != self.quota_defaults:
            self._quota_defaults_set(changes)

    @event("QuotaDefaultsSet")
    def _quota_defaults_set(self, limits: dict[str, int | None]) -> None:
        self.quota_defaults = merged(self.quota_defaults, limits)
