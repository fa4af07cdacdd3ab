"""Lanes: in order per key, keys side by side, never more than the limit at once."""

from __future__ import annotations

import asyncio
import random

from hostd.lanes import Lanes


async def test_items_of_a_key_run_in_order_and_keys_run_side_by_side() -> None:
    done: list[tuple[str, int]] = []
    running = peak = 0

    async def handle(item: tuple[str, int]) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(random.uniform(0, 0.005))
        running -= 1
        done.append(item)

    lanes: Lanes[tuple[str, int]] = Lanes(handle, limit=4)
    for index in range(20):
        for key in "abcdefgh":
            lanes.submit(key, (key, index))
    await lanes.join()
    for key in "abcdefgh":
        assert [index for k, index in done if k == key] == list(range(20))
    assert 1 < peak <= 4
    assert not lanes.busy


async def test_taking_the_waiting_items_leaves_each_head_to_finish() -> None:
    gate = asyncio.Event()
    handled: list[int] = []

    async def handle(item: int) -> None:
        await gate.wait()
        handled.append(item)

    lanes: Lanes[int] = Lanes(handle, limit=1)
    for item in range(5):
        lanes.submit("only", item)
    lanes.submit("other", 10)
    await asyncio.sleep(0)
    assert lanes.take_waiting() == [1, 2, 3, 4]
    gate.set()
    await lanes.join()
    assert sorted(handled) == [0, 10]
