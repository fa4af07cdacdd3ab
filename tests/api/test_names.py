"""Names, descriptions and e-mail addresses that spoof: refused with a clear 422, or kept in
their NFKC form; one text type that every body uses (the route table is walked for it)."""

from __future__ import annotations

import re
import sys
import unicodedata
from typing import Any

import jsonschema_rs
import msgspec
import msgspec.inspect as inspect
import pytest

from api.app import endpoints
from api.text import Body, text_field
from domain.errors import ValidationFailed
from domain.text import EMAIL_PATTERN, TEXT_PATTERN, clean, clean_email, refused_in
from tests.api.conftest import Api

HIDDEN = ["\u200b", "\u200d", "\u202e", "\u2066", "\u00ad", "\ufeff", "\x07", "\n", "\u2028"]
"""Zero-width space and joiner, right-to-left override, isolate, soft hyphen, BOM, a control,
a newline, a line separator."""

FREE_FORM = {
    "apikeys.CreateApiKey.actions",
    "config.Mail.smtp_host",
    "config.Mail.username",
    "config.UpdateConfig.quota_defaults",
    "hosts.RegisterHost.labels",
    "hosts.UpdateHost.labels",
    "imagepools.CreateImagePool.location",
    "images.RegisterImage.location",
    "images.RegisterImage.kernel",
    "images.RegisterImage.initrd",
    "images.RegisterImage.os_family",
    "images.RegisterImage.cmdline",
    "images.ImportImage.os_family",
    "images.CreateImage.os_family",
    "images.ImageSourceBody.url",
    "images.ImageSourceBody.path",
    "ippools.CreateIpPool.cidr",
    "ippools.CreateIpPool.gateway",
    "ippools.UpdateIpPool.gateway",
    "ippools.AddressRange.start",
    "ippools.AddressRange.end",
    "instances.ResetPassword.password",
    "quotas.SetQuotas.region",
    "quotas.SetQuotas.limits",
    "regions.CreateRegion.quota_defaults",
    "regions.UpdateRegion.quota_defaults",
    "roles.CreateRole.actions",
    "roles.SetRoleActions.actions",
    "session.Login.email",
    "session.Login.password",
    "tenants.CreateTenant.owner_password",
    "users.CreateUser.password",
    "users.CreateUser.roles",
    "users.SetPermissions.roles",
    "users.ChangePassword.current_password",
    "users.ChangePassword.new_password",
    "users.CreateStaff.password",
    "users.CreateStaff.roles",
    "webhooks.CreateWebhook.url",
    "webhooks.CreateWebhook.event_types",
    "webhooks.UpdateWebhook.url",
    "webhooks.UpdateWebhook.event_types",
}
"""Reviewed: text that is not a name, a description or an address people read (secrets,
URLs, paths, addresses, action patterns, map keys checked by the domain). A login's e-mail is
a lookup: nothing is stored from it."""


# -- the character classes -------------------------------------------------------------


def test_every_invisible_or_reordering_character_of_this_unicode_is_refused() -> None:
    refused = re.compile(TEXT_PATTERN)
    missed = [
        f"U+{code:04X}"
        for code in range(sys.maxunicode + 1)
        if unicodedata.category(chr(code)) in {"Cc", "Cf", "Zl", "Zp"}
        and refused.search(f"a{chr(code)}b")
    ]
    assert missed == [], f"domain.text misses {missed} (a newer Unicode?)"


def test_the_normal_form_of_accepted_text_is_accepted_and_one_address_stays_one() -> None:
    email = re.compile(EMAIL_PATTERN)
    for code in range(0xA0, 0x30000):
        char = chr(code)
        if refused_in(char) is not None:
            continue
        normal = unicodedata.normalize("NFKC", char)
        assert refused_in(normal) is None, f"U+{code:04X}"
        if email.search(f"a{char}b@c.d"):
            assert email.search(f"a{normal}b@c.d"), f"U+{code:04X} breaks an address"


@pytest.mark.parametrize("hidden", HIDDEN)
def test_clean_refuses_hidden_characters_naming_the_field_and_the_character(hidden: str) -> None:
    with pytest.raises(ValidationFailed) as refused:
        clean(f"admin{hidden}", "name")
    assert refused.value.context["field"] == "name"
    assert f"U+{ord(hidden):04X}" in refused.value.detail
    with pytest.raises(ValidationFailed):
        clean_email(f"admin{hidden}@scloud.local", "email")


def test_clean_keeps_the_nfkc_form() -> None:
    assert clean("\uff41\uff44\uff4d\uff49\uff4e", "name") == "admin"  # full-width
    assert clean("\ufb01le", "name") == "file"  # the fi ligature
    assert clean("Cafe\u0301", "name") == "Caf\u00e9"
    assert clean_email("\uff21dmin@scloud.local", "email") == "Admin@scloud.local"
    with pytest.raises(ValidationFailed):
        clean_email("admin\uff20x@scloud.local", "email")  # a second @, once normalised


def test_the_documented_pattern_refuses_what_the_api_refuses() -> None:
    """Clients and fuzzers read the pattern with ECMA regexes (jsonschema-rs here)."""
    for pattern, sample in ((TEXT_PATTERN, "admin{}"), (EMAIL_PATTERN, "admin{}@scloud.local")):
        validator = jsonschema_rs.validator_for({"type": "string", "pattern": pattern})
        assert validator.is_valid(sample.format("\u00e9\U0001f600"))
        for hidden in [*HIDDEN, "\U000e0041", "\U00013430"]:
            assert not validator.is_valid(sample.format(hidden)), repr(hidden)


# -- the route table -------------------------------------------------------------------


def _structs() -> list[inspect.StructType]:
    found: dict[type, inspect.StructType] = {}
    pending: list[Any] = [inspect.type_info(e.body) for e in endpoints() if e.body is not None]
    while pending:
        info = pending.pop()
        if isinstance(info, inspect.Metadata):
            info = info.type
        if isinstance(info, inspect.StructType):
            if info.cls not in found:
                found[info.cls] = info
                pending.extend(field.type for field in info.fields)
        elif isinstance(info, inspect.UnionType):
            pending.extend(info.types)
        elif isinstance(info, (inspect.ListType, inspect.SetType, inspect.VarTupleType)):
            pending.append(info.item_type)
        elif isinstance(info, inspect.DictType):
            pending.extend((info.key_type, info.value_type))
    return list(found.values())


def _strings(info: Any) -> list[inspect.StrType]:
    if isinstance(info, inspect.Metadata):
        info = info.type
    if isinstance(info, inspect.StrType):
        return [info]
    if isinstance(info, inspect.UnionType):
        return [s for t in info.types for s in _strings(t)]
    if isinstance(info, (inspect.ListType, inspect.SetType, inspect.VarTupleType)):
        return _strings(info.item_type)
    if isinstance(info, inspect.DictType):
        return _strings(info.key_type) + _strings(info.value_type)
    return []


def test_every_body_takes_names_descriptions_and_addresses_as_the_shared_text_type() -> None:
    """A free-form string field must be one of ``api.text``'s types (and its struct a
    ``Body``, which checks them), or be on the reviewed list above."""
    unreviewed, unchecked = [], []
    for struct in _structs():
        where = f"{struct.cls.__module__.rsplit('.', 1)[-1]}.{struct.cls.__name__}"
        for field in struct.fields:
            name = f"{where}.{field.name}"
            if text_field(field.type) is not None:
                if not issubclass(struct.cls, Body):
                    unchecked.append(name)
                continue
            free = [
                s
                for s in _strings(field.type)
                if s.pattern is None or re.search(s.pattern, "a\u200bb")
            ]
            if free and name not in FREE_FORM:
                unreviewed.append(name)
    assert unchecked == [], f"text fields in structs that are not api.text.Body: {unchecked}"
    assert unreviewed == [], (
        f"free-form text that is neither a name type nor reviewed: {unreviewed}"
    )
    assert len(_structs()) > 30


def test_a_decoded_body_holds_the_normal_form_and_refuses_naming_the_field() -> None:
    from api.routes.roles import CreateProject

    body = msgspec.json.decode('{"name": "\uff50"}'.encode(), type=CreateProject)
    assert body.name == "p"
    with pytest.raises(ValidationFailed) as refused:
        msgspec.json.decode(b'{"name": "p", "description": "x\\u202ey"}', type=CreateProject)
    assert refused.value.context["field"] == "description"


# -- over HTTP -------------------------------------------------------------------------


async def problem(response: Any, field: str, char: str) -> None:
    text = await response.text()
    assert response.status == 422, text
    body = await response.json()
    assert body["code"] == "validation_failed" and body["field"] == field, body
    assert f"U+{ord(char):04X}" in body["detail"], body


async def test_a_tenant_owner_email_or_name_with_hidden_characters_is_refused(api: Api) -> None:
    good = {"name": "acme", "owner_email": "owner@acme.example", "owner_password": "x" * 12}
    for field, value, char in (
        ("owner_email", "admin\u200b@scloud.local", "\u200b"),
        ("owner_email", "admin@scloud\u202e.local", "\u202e"),
        ("name", "acme\u2066corp", "\u2066"),
        ("name", "acme\x07", "\x07"),
    ):
        await problem(
            await api.admin.post("/v1/admin/tenants", json={**good, field: value}), field, char
        )
    listed = await (await api.admin.get("/v1/admin/tenants")).json()
    assert [t for t in listed["items"] if t["name"].startswith("acme")] == []


async def test_names_and_descriptions_everywhere_refuse_them_and_keep_the_normal_form(
    api: Api,
) -> None:
    owner = await api.tenant()
    await problem(
        await owner.post("/v1/projects", json={"name": "p", "description": "line\nbreak"}),
        "description",
        "\n",
    )
    await problem(
        await owner.post("/v1/roles", json={"name": "ops\u200d", "actions": []}), "name", "\u200d"
    )
    await problem(await owner.post("/v1/api-keys", json={"name": "ci\ufeff"}), "name", "\ufeff")
    await problem(
        await owner.post(
            "/v1/webhooks", json={"url": "https://93.184.216.34/h", "description": "a\u2028b"}
        ),
        "description",
        "\u2028",
    )
    await problem(
        await api.admin.post("/v1/admin/regions", json={"name": "r1", "display_name": "E\u00adU"}),
        "display_name",
        "\u00ad",
    )

    made = await api.settled(
        await owner.post(
            "/v1/projects", json={"name": "\uff50\uff52\uff4f\uff44", "description": "\ufb01ne"}
        )
    )
    view = await (await owner.get(f"/v1/projects/{made['resource_id']}")).json()
    assert (view["name"], view["description"]) == ("prod", "fine")


async def test_an_address_in_full_width_is_the_ascii_one(api: Api) -> None:
    owner = await api.tenant()
    body = {"email": "\uff42\uff4f\uff42@example.com", "password": "bob-password-1234"}
    await api.settled(await owner.post("/v1/users", json=body))
    bob = await api.login("bob@example.com", "bob-password-1234")
    me = await (await bob.get(f"/v1/users/{bob.user_id}")).json()
    assert me["email"] == "bob@example.com"
    again = await owner.post("/v1/users", json={**body, "email": "bob@example.com"})
    assert again.status in (409, 422), await again.text()
