"""The fault proxy itself, in front of an echo server and of the session's Redis:
it forwards, delays, black-holes and heals, and resets connections."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from adapters.redis.client import create_redis
from entrypoints.devstack.services import Services
from tests.faults.proxy import FaultProxy, redis_target, through_redis
from tests.redis_cluster import standalone_redis


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(1024):
        writer.write(data)
        await writer.drain()
    writer.close()


@pytest.fixture
async def proxy() -> AsyncIterator[FaultProxy]:
    server = await asyncio.start_server(_echo, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with FaultProxy(lambda: asyncio.open_connection("127.0.0.1", port)) as proxy:
        yield proxy
    server.close()


async def _connect(proxy: FaultProxy) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", proxy.port)


async def _round_trip(
    link: tuple[asyncio.StreamReader, asyncio.StreamWriter], data: bytes, timeout_s: float = 10
) -> bytes:
    reader, writer = link
    writer.write(data)
    await writer.drain()
    return await asyncio.wait_for(reader.readexactly(len(data)), timeout_s)


async def test_it_forwards_both_ways(proxy: FaultProxy) -> None:
    link = await _connect(proxy)
    assert await _round_trip(link, b"hello") == b"hello"
    assert await _round_trip(link, b"x" * 200_000) == b"x" * 200_000


async def test_latency_holds_each_chunk_back(proxy: FaultProxy) -> None:
    link = await _connect(proxy)
    proxy.latency_s = 1
    reader, writer = link
    writer.write(b"slow")
    reading = asyncio.create_task(reader.readexactly(4))
    done, _ = await asyncio.wait({reading}, timeout=0.5)
    assert not done, "the chunk was not held back"
    assert await asyncio.wait_for(reading, 20) == b"slow"


async def test_a_black_hole_answers_nothing_until_healed(proxy: FaultProxy) -> None:
    before = await _connect(proxy)
    proxy.black_hole()
    waiting = asyncio.create_task(_round_trip(before, b"old"))
    late = await _connect(proxy)  # accepted, but never connected through
    joining = asyncio.create_task(_round_trip(late, b"new"))
    done, _ = await asyncio.wait({waiting, joining}, timeout=0.5)
    assert not done, "the black hole let something through"
    proxy.heal()
    assert await waiting == b"old"
    assert await joining == b"new"


async def test_a_partition_cuts_open_connections_for_good(proxy: FaultProxy) -> None:
    before = await _connect(proxy)
    assert await _round_trip(before, b"a") == b"a"
    proxy.partition()
    lost = asyncio.create_task(_round_trip(before, b"lost"))
    late = asyncio.create_task(_round_trip(await _connect(proxy), b"new"))
    done, _ = await asyncio.wait({lost, late}, timeout=0.5)
    assert not done, "the partition let something through"
    proxy.heal()
    assert await late == b"new"  # a new connection gets through once healed
    done, _ = await asyncio.wait({lost}, timeout=0.5)
    assert not done, "a cut connection carried a byte again"
    lost.cancel()


async def test_reset_ends_every_open_connection_and_serves_new_ones(proxy: FaultProxy) -> None:
    links = [await _connect(proxy) for _ in range(3)]
    for link in links:
        assert await _round_trip(link, b"a") == b"a"
    assert proxy.open_connections == 3
    proxy.reset()
    for reader, _ in links:
        with pytest.raises((ConnectionResetError, asyncio.IncompleteReadError)):
            await asyncio.wait_for(reader.readexactly(1), 10)
    assert await _round_trip(await _connect(proxy), b"again") == b"again"


@standalone_redis
async def test_redis_speaks_through_it_and_a_reset_client_reconnects(services: Services) -> None:
    async with FaultProxy(redis_target(services.redis_url)) as proxy:
        client = create_redis(through_redis(proxy.port))
        try:
            assert await client.ping()
            proxy.reset()
            assert await client.ping()  # its retry reconnects
            assert proxy.accepted >= 2
        finally:
            await client.aclose()
