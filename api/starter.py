"""The first start of ``scloud run``: a usable local cloud without twenty admin calls.

A region and a cluster, the built-in host daemon joined to it with a join token (no
restart), a local image pool holding the starter image, a few flavors, a published price
book and a demo tenant. Everything goes through the platform's own API as its first admin,
each call under an idempotency key of its own, so a first start that died halfway is
finished by the next one and never done twice. What the host daemon needs later (its join
token, which its registration record in the host state directory matches) and the ids a
newcomer uses are kept in ``<state dir>/starter.json``; the demo tenant's password, like the
admin's, is printed once and kept nowhere.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from api.call import MIN_POSITION_HEADER
from gateways.passwords import generate_password
from gateways.starter_image import GuestImage, guest_image

log = logging.getLogger(__name__)

RECORD = "starter.json"
DEMO_EMAIL = "demo@scloud.local"
FLAVORS = (
    ("s1.tiny", 1, 512, 1, 20),
    ("s1.small", 1, 1024, 1, 40),
    ("s1.medium", 2, 2048, 1, 80),
)
"""(name, vCPUs, memory MiB, smallest and largest root disk GiB)."""
PRICES = {"vcpu": "0.01", "memory_gb": "0.005", "disk_gb:standard": "0.0001"}
"""Per hour, in the demo's currency: small enough that a demo balance lasts."""
DEMO_BALANCE_MINOR = 10_000
"""100.00 USD."""
WAIT_SECONDS = 30
REPLAYED = "_replayed"
"""Set in an answer the API gave again for an idempotency key an earlier start used."""


class StarterFailed(Exception):
    """A call of the first start was refused: the platform is not as a first start finds it."""


@dataclass
class Starter:
    """What the first start made: kept in the state directory, printed on every start."""

    region_id: str
    cluster_id: str
    flavor_id: str
    image_id: str | None
    join_token: str
    demo_email: str
    demo_password: str | None = None
    """Only in the answer of the start that created the demo tenant; never written down."""

    def save(self, state_dir: Path) -> None:
        state_dir.mkdir(parents=True, exist_ok=True)
        record = {k: v for k, v in self.__dict__.items() if k != "demo_password"}
        path = state_dir / RECORD
        scratch = path.with_suffix(".tmp")
        # The join token lets the built-in host rejoin as itself: readable by root only.
        fd = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(record, out)
        os.replace(scratch, path)

    @classmethod
    def load(cls, state_dir: Path) -> Starter | None:
        try:
            record = json.loads((state_dir / RECORD).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        return cls(**record)

    def banner(self) -> list[str]:
        lines = []
        if self.demo_password is not None:
            lines.append(f"Demo tenant: {self.demo_email}  password: {self.demo_password}")
            lines.append("(shown once; reset it with scloud admin reset-password)")
        else:
            lines.append(f"Demo tenant: {self.demo_email}  (password was shown at first start)")
        image = self.image_id or "none (the starter image could not be built)"
        lines.append(
            f"Local cloud: region {self.region_id}  flavor {self.flavor_id}  image {image}"
        )
        return lines


class _Admin:
    """The first admin's calls to the platform's own API."""

    def __init__(self, session: aiohttp.ClientSession, base: str, token: str) -> None:
        self._session, self._base = session, base
        self._headers = {"Authorization": f"Bearer {token}"}

    async def get(self, path: str) -> Any:
        async with self._session.get(self._base + path, headers=self._headers) as response:
            return await self._answer(response, path)

    async def create(self, path: str, body: dict[str, Any], key: str) -> dict[str, Any]:
        """POST under ``starter:<key>`` and wait for its operation to succeed."""
        headers = {**self._headers, "Idempotency-Key": f"starter:{key}"}
        async with self._session.post(self._base + path, json=body, headers=headers) as response:
            answer: dict[str, Any] = await self._answer(response, path)
            answer[REPLAYED] = response.headers.get("Idempotent-Replayed") == "true"
        operation = await self.get(f"/v1/operations/{answer['operation_id']}?wait={WAIT_SECONDS}")
        if operation["status"] != "succeeded":
            raise StarterFailed(f"POST {path}: {operation['status']}: {operation['error']}")
        # Later calls that read the read models see what this one wrote.
        self._headers[MIN_POSITION_HEADER] = str(answer["position"])
        return answer

    async def _answer(self, response: aiohttp.ClientResponse, path: str) -> Any:
        if response.status >= 300:
            text = await response.text()
            raise StarterFailed(f"{response.method} {path}: {response.status} {text}")
        return await response.json()


async def set_up(base_url: str, admin_token: str, state_dir: Path, image_dir: Path) -> Starter:
    """Make the local cloud (or find the one an earlier first start made) and record it."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
        admin = _Admin(session, base_url, admin_token)
        region = await admin.create("/v1/admin/regions", {"name": "local"}, "region")
        region_id = region["resource_id"]
        cluster = await admin.create(
            "/v1/admin/clusters",
            {
                "region_id": region_id,
                "name": "local",
                "architecture": "x86_64",
                "kind": "compute",
                "cpu_overcommit": 4.0,
            },
            "cluster",
        )
        cluster_id = cluster["resource_id"]
        token = await _join_token(admin, cluster_id, state_dir)
        flavor_ids = [
            (
                await admin.create(
                    "/v1/admin/flavors",
                    {
                        "name": name,
                        "vcpus": vcpus,
                        "memory_mb": memory,
                        "disk": {"min_gb": smallest, "max_gb": largest},
                    },
                    f"flavor:{name}",
                )
            )["resource_id"]
            for name, vcpus, memory, smallest, largest in FLAVORS
        ]
        image_id = await _starter_image(admin, region_id, image_dir)
        book = await admin.create(
            "/v1/admin/price-books",
            {"name": "local", "currency": "USD", "region_id": region_id},
            "price-book",
        )
        await admin.create(
            f"/v1/admin/price-books/{book['resource_id']}/actions/publish",
            {"prices": PRICES},
            "price-book:publish",
        )
        password = generate_password()
        tenant = await admin.create(
            "/v1/admin/tenants",
            {"name": "demo", "owner_email": DEMO_EMAIL, "owner_password": password},
            "demo-tenant",
        )
        # A tenant made by an earlier, unfinished first start: its password went with it.
        replayed = bool(tenant.get(REPLAYED))
        await admin.create(
            f"/v1/admin/tenants/{tenant['resource_id']}/actions/recharge",
            {"amount_minor": DEMO_BALANCE_MINOR, "currency": "USD", "reference": "starter"},
            "demo-tenant:recharge",
        )
        starter = Starter(
            region_id=region_id,
            cluster_id=cluster_id,
            flavor_id=flavor_ids[0],
            image_id=image_id,
            join_token=token,
            demo_email=DEMO_EMAIL,
        )
        starter.save(state_dir)
        starter.demo_password = None if replayed else password
        return starter


async def _join_token(admin: _Admin, cluster_id: str, state_dir: Path) -> str:
    """The built-in host's join token: a replayed issue no longer shows its secret, so an
    earlier start's is taken from its record, or another one is issued."""
    earlier = Starter.load(state_dir)
    if earlier is not None and earlier.cluster_id == cluster_id:
        return earlier.join_token
    path = f"/v1/admin/clusters/{cluster_id}/join-tokens"
    body = {"expires_in_seconds": 3600}
    for attempt in range(3):
        issued = await admin.create(path, body, f"join-token:{attempt}")
        if "join_token" in issued:
            return str(issued["join_token"])
    raise StarterFailed("no join token could be issued for the built-in host")


async def _starter_image(admin: _Admin, region_id: str, image_dir: Path) -> str | None:
    try:
        image: GuestImage = await asyncio.to_thread(guest_image, image_dir)
    except (RuntimeError, OSError) as error:
        log.warning("first start: no starter image (%s); register one yourself", error)
        return None
    pool = await admin.create(
        "/v1/admin/image-pools",
        {
            "region_id": region_id,
            "name": "local",
            "backend": "qcow2",
            "location": str(image.disk.parent),
        },
        "image-pool",
    )
    registered = await admin.create(
        "/v1/admin/images",
        {
            "name": "busybox",
            "pool_id": pool["resource_id"],
            "location": str(image.disk),
            "kernel": str(image.kernel),
            "initrd": str(image.initrd),
            "cmdline": image.cmdline,
            "min_disk_gb": 1,
        },
        "image",
    )
    return str(registered["resource_id"])
