"""``scloud``: one command, a subcommand per process."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Sequence

import msgspec

from api.admin_cli import run_admin
from api.bootstrap import (
    Platform,
    ensure_first_admin,
    first_admin_token,
    open_platform,
    run_api,
    run_worker,
    until_first_failure,
)
from api.starter import Starter, set_up
from domain.inventory.join_token import JoinToken
from gateways.embedded import EmbeddedServiceError, host_libvirtd, platform_services
from gateways.settings import Settings, SettingsError
from hostd.main import run_hostd
from hostd.register import RegistrationRefused

JOIN_BUDGET = 120.0
"""Seconds the built-in host has to join and beat before ``scloud run`` gives up."""


def _stop_on_signals() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


async def _run_all(settings: Settings) -> None:
    """Everything in one process, on embedded PostgreSQL and NATS unless configured.

    With the libvirt driver on ``qemu:///system`` a silent libvirtd is started here too
    (and stopped last, after the host daemon); one that answers is left alone.
    """
    stop = _stop_on_signals()
    async with (
        host_libvirtd(settings),
        platform_services(settings) as (database_url, nats_url),
        open_platform(settings, database_url, nats_url) as platform,
    ):
        email, password = await ensure_first_admin(platform)
        serving: asyncio.Future[str] = asyncio.get_running_loop().create_future()

        def announce(url: str) -> None:
            print(f"SCloudStack is up: API {url}  (health: {url}/healthz)", flush=True)
            if password is not None:
                print(f"First admin: {email}  password: {password}", flush=True)
                print("(shown once; it is stored only as an argon2 hash)", flush=True)
            else:
                print(f"First admin: {email}  (password was shown at first start)", flush=True)
            serving.set_result(url)

        async def host() -> None:
            if not settings.first_start:
                await run_hostd(nats_url, settings.host_id, stop, settings)
                return
            starter = await _first_start(platform, await serving)
            # The built-in host reads the starter image from where make run built it.
            pools = (*settings.host_image_pools, settings.starter_image_dir)
            host_settings = msgspec.structs.replace(settings, host_image_pools=pools)
            await asyncio.gather(
                run_hostd(
                    nats_url, settings.host_id, stop, host_settings, join_token=starter.join_token
                ),
                _announce_when_joined(platform, starter),
            )

        await until_first_failure(
            [run_api(platform, stop, announce), run_worker(platform, stop), host()], stop
        )


async def _first_start(platform: Platform, url: str) -> Starter:
    """The local cloud a newcomer can use at once, made on the first start (and on a start
    after one that died halfway); later starts only find it and print its logins."""
    settings = platform.settings
    starter = Starter.load(settings.state_dir)
    if starter is None:
        token = await first_admin_token(platform)
        starter = await set_up(url, token, settings.state_dir, settings.starter_image_dir)
    return starter


async def _announce_when_joined(platform: Platform, starter: Starter) -> None:
    """The logins, once the built-in host has joined and beats: a create right after them
    finds a host to place on."""
    token_id = starter.join_token.split(".")[1]
    await platform.host_health.start()
    async with asyncio.timeout(JOIN_BUDGET):
        while True:
            token = await platform.repository.get(token_id, JoinToken)
            if token.host_id is not None and platform.host_health.health(token.host_id)[0]:
                break
            await asyncio.sleep(0.2)
    for line in starter.banner():
        print(line, flush=True)


def _external(settings: Settings) -> tuple[str, str]:
    if settings.database_url is None or settings.nats_url is None:
        sys.exit(
            "scloud: this process needs SCLOUD_DATABASE_URL and SCLOUD_NATS_URL; "
            "`scloud run` starts embedded servers instead"
        )
    return settings.database_url, settings.nats_url


async def _run_api(settings: Settings) -> None:
    stop = _stop_on_signals()
    async with open_platform(settings, *_external(settings)) as platform:
        # Replicas race harmlessly: the first admin's command id makes it happen once.
        email, password = await ensure_first_admin(platform)
        if password is not None:
            print(f"First admin: {email}  password: {password}  (shown once)", flush=True)
        await run_api(platform, stop, lambda url: print(f"API listening on {url}", flush=True))


async def _run_worker(settings: Settings) -> None:
    stop = _stop_on_signals()
    async with open_platform(settings, *_external(settings)) as platform:
        await run_worker(platform, stop)


async def _run_hostd(settings: Settings) -> None:
    if settings.nats_url is None:
        sys.exit("scloud hostd: SCLOUD_NATS_URL is required (a host talks only to NATS)")
    try:
        await run_hostd(settings.nats_url, settings.host_id, _stop_on_signals(), settings)
    except RegistrationRefused as refused:
        sys.exit(f"scloud hostd: {refused}")


def main(argv: Sequence[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["replay"]:
        from replay.cli import main as replay_main

        sys.exit(replay_main(args[1:]))
    parser = argparse.ArgumentParser(prog="scloud", description="SCloudStack processes")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="everything in one process (embedded PostgreSQL and NATS)")
    sub.add_parser("api", help="the REST API")
    sub.add_parser("worker", help="projections and the relay to NATS")
    hostd = sub.add_parser("hostd", help="the host daemon of one hypervisor")
    hostd.add_argument(
        "--join-token", help="register with this join token (default: SCLOUD_HOST_JOIN_TOKEN)"
    )
    sub.add_parser("replay", help="audit, verification and rebuilds (scloud replay --help)")
    admin = sub.add_parser("admin", help="recovery on the platform's machine")
    admin_sub = admin.add_subparsers(dest="admin_command", required=True)
    reset = admin_sub.add_parser(
        "reset-password", help="give an account a new password, printed once (audited)"
    )
    reset.add_argument("email")
    parsed = parser.parse_args(args)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        settings = Settings.from_env()
    except SettingsError as error:
        sys.exit(f"scloud: {error}")
    if getattr(parsed, "join_token", None):
        settings = msgspec.structs.replace(settings, host_join_token=parsed.join_token)
    if parsed.command == "admin":
        sys.exit(asyncio.run(run_admin(settings, parsed.admin_command, parsed.email)))
    runners = {"run": _run_all, "api": _run_api, "worker": _run_worker, "hostd": _run_hostd}
    try:
        asyncio.run(runners[parsed.command](settings))
    except EmbeddedServiceError as error:
        sys.exit(f"scloud {parsed.command}: {error}")


if __name__ == "__main__":
    main()
