"""The CPU engine's line: chats take the model one at a time, in the order they came, and each
waiting chat hears how many are before it."""

import asyncio

from backends.cpu import ArrivalLine


async def test_chats_are_served_in_arrival_order_and_told_their_place():
    line, served, heard = ArrivalLine(), [], {}
    release = {name: asyncio.Event() for name in "abc"}

    async def chat(name: str):
        async with line.turn() as waits:
            heard[name] = [ahead async for ahead in waits]
            served.append(name)
            await release[name].wait()

    tasks = []
    for name in "abc":
        tasks.append(asyncio.create_task(chat(name)))
        await asyncio.sleep(0)  # each enters the line before the next comes
    await asyncio.sleep(0.01)
    assert served == ["a"]
    release["a"].set()
    await asyncio.sleep(0.01)
    assert served == ["a", "b"]
    release["b"].set(), release["c"].set()
    await asyncio.gather(*tasks)
    assert served == ["a", "b", "c"]
    assert heard == {"a": [], "b": [1], "c": [2, 1]}


async def test_a_chat_that_leaves_the_line_moves_the_others_up():
    line, heard = ArrivalLine(), []
    first_served = asyncio.Event()
    done = asyncio.Event()

    async def first():
        async with line.turn() as waits:
            [_ async for _ in waits]
            first_served.set()
            await done.wait()

    async def gives_up():
        async with line.turn() as waits:
            async for _ in waits:
                return  # Stop pressed while waiting

    async def last():
        async with line.turn() as waits:
            heard.extend([ahead async for ahead in waits])

    serving = asyncio.create_task(first())
    await first_served.wait()
    quitter = asyncio.create_task(gives_up())
    await asyncio.sleep(0)
    waiting = asyncio.create_task(last())
    await quitter
    await asyncio.sleep(0.01)
    done.set()
    await asyncio.gather(serving, waiting)
    assert heard[0] in (1, 2) and heard[-1] == 1
