"""Typed keys for what the composition root puts on the aiohttp application."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from api.bootstrap import Platform

PLATFORM: web.AppKey[Platform] = web.AppKey("platform")
