"""A local receiver, a fast delivery policy, and a webhook that is allowed to reach loopback.

Every test here sends only to 127.0.0.1. A webhook is created paused with a public address
it never contacts, allowed private targets by the platform admin, repointed at the
receiver, and only then resumed.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from gateways.webhooks import policy as policies
from gateways.webhooks.policy import DeliveryPolicy
from tests.api.conftest import Api, Caller
from tests.api.conftest import api as api  # the platform fixture, for tests in this folder
from tests.api.conftest import platform_overrides as platform_overrides
from tests.integration.conftest import schema as schema
from tests.integration.conftest import store as store
from tests.webhooks.receiver import Receiver

FAST = DeliveryPolicy(
    timeout=0.5,
    backoff_initial=0.02,
    backoff_cap=0.15,
    max_failures=1000,
    batch_size=50,
    idle_poll=0.2,
)
NEVER_CONTACTED = "https://192.88.99.1/never-contacted"
"""A public address for creating a webhook paused; it is repointed before it is resumed."""
DOCS = Path(__file__).resolve().parents[2] / "docs" / "webhooks.md"


def documented_verifier() -> Callable[[str, str, bytes], bool]:
    """``verify_signature`` exactly as docs/webhooks.md shows it to receivers."""
    blocks = re.findall(r"```python\n(.*?)```", DOCS.read_text(), flags=re.DOTALL)
    source = next(b for b in blocks if "def verify_signature" in b)
    namespace: dict[str, Any] = {}
    exec(compile(source, str(DOCS), "exec"), namespace)
    verify: Callable[[str, str, bytes], bool] = namespace["verify_signature"]
    return verify


@pytest.fixture(autouse=True)
def fast_delivery(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Small backoffs; ``@pytest.mark.webhook_policy(max_failures=3)`` changes fields."""
    marker = request.node.get_closest_marker("webhook_policy")
    chosen = FAST if marker is None else FAST.__class__(**{**_fields(FAST), **marker.kwargs})
    monkeypatch.setattr(policies, "DEFAULT_POLICY", chosen)


def _fields(policy: DeliveryPolicy) -> dict[str, Any]:
    return {name: getattr(policy, name) for name in policy.__struct_fields__}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "webhook_policy(**fields): the dispatcher's policy")


@pytest.fixture
async def receivers() -> AsyncIterator[Callable[[], Any]]:
    made: list[Receiver] = []

    async def make() -> Receiver:
        receiver = Receiver()
        await receiver.up()
        made.append(receiver)
        return receiver

    yield make
    for receiver in made:
        await receiver.close()


async def loopback_webhook(
    api: Api, owner: Caller, url: str, event_types: list[str] | None = None
) -> tuple[str, str]:
    """A webhook of ``owner``'s tenant delivering to ``url`` on loopback: (id, secret)."""
    created = await api.settled(
        await owner.post(
            "/v1/webhooks",
            json={
                "url": NEVER_CONTACTED,
                "event_types": event_types or ["*"],
                "paused": True,
            },
        )
    )
    webhook_id, secret = created["resource_id"], created["secret"]
    await api.settled(
        await api.admin.post(
            f"/v1/admin/webhooks/{webhook_id}/actions/allow-private", json={"allowed": True}
        )
    )
    await api.settled(await owner.patch(f"/v1/webhooks/{webhook_id}", json={"url": url}))
    await api.settled(await owner.post(f"/v1/webhooks/{webhook_id}/actions/resume"))
    return webhook_id, secret


async def eventually(check: Callable[[], Any], timeout: float = 15.0) -> None:
    """Wait until ``check()`` (sync or async) is true."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if loop.time() > deadline:
            raise AssertionError(f"not reached within {timeout}s")
        await asyncio.sleep(0.05)
