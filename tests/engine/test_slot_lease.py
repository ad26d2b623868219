"""Leased in-flight slots: a limit shared by several holders never exceeded, shared fairly,
given back when idle, and taken back from a holder that stopped reporting."""

from __future__ import annotations

import asyncio
import random

from chainette.engine.slot_lease import LeasedLimiter, LocalSlotSource, SlotTable, fair_shares


def test_fair_shares_water_fills():
    assert fair_shares(10, {"a": 100, "b": 100}) == {"a": 5, "b": 5}
    assert fair_shares(10, {"a": 2, "b": 100}) == {"a": 2, "b": 8}
    assert fair_shares(10, {"a": 0, "b": 3}) == {"a": 0, "b": 3}
    assert sum(fair_shares(7, {"a": 9, "b": 9, "c": 9}).values()) == 7


def test_table_never_grants_above_capacity_and_expires_silent_holders():
    table = SlotTable(ttl=5)
    table.configure("e@x", 10)
    g, _ = table.exchange("e@x", "a", want=8, demand=8, now=0)
    assert g == 8
    g, target = table.exchange("e@x", "b", want=8, demand=8, now=1)
    assert g == 2 and target == 5  # only what is free; b may grow to its fair share
    _, target_a = table.exchange("e@x", "a", demand=8, now=2)
    assert target_a == 5  # a is told to come down to its share
    g, _ = table.exchange("e@x", "b", want=6, demand=8, now=3)
    assert g == 0  # nothing free until a gives back
    table.exchange("e@x", "a", give=3, demand=5, now=4)
    g, _ = table.exchange("e@x", "b", want=6, demand=8, now=4)
    assert g == 3
    assert table.report()["e@x"]["peak"] == 10
    table.exchange("e@x", "b", demand=8, now=8)
    g, _ = table.exchange("e@x", "b", want=5, demand=10, now=10)  # a silent for 6 s: its 5 come back
    assert g == 5 and table.report()["e@x"]["expired"] == 5


def test_two_holders_share_one_limit():
    table = SlotTable()
    table.configure("e@x", 6)
    source = LocalSlotSource(table)
    live = {"now": 0, "peak": 0}

    async def go():
        limiters = [
            LeasedLimiter("e@x", 6, source, holder, heartbeat=0.02, idle_release=0.05) for holder in ("w1", "w2")
        ]
        done = {"w1": 0, "w2": 0}

        async def request(lim):
            await lim.acquire()
            live["now"] += 1
            live["peak"] = max(live["peak"], live["now"])
            try:
                await asyncio.sleep(random.uniform(0.001, 0.01))
            finally:
                live["now"] -= 1
                lim.release()
            done[lim.holder] += 1

        await asyncio.gather(*(request(limiters[i % 2]) for i in range(400)))
        await asyncio.sleep(0.3)  # idle: every slot goes back
        held = [lim.held for lim in limiters]
        exchanges = sum(lim.exchanges for lim in limiters)
        return done, held, exchanges

    done, held, exchanges = asyncio.run(go())
    assert live["peak"] <= 6 and live["peak"] >= 4, live
    assert done == {"w1": 200, "w2": 200}
    assert held == [0, 0] and table.report()["e@x"]["held"] == 0
    assert exchanges < 400  # slots are leased in chunks, not once per request


def test_a_busy_holder_gives_way_to_a_newcomer():
    table = SlotTable()
    table.configure("e@x", 8)
    source = LocalSlotSource(table)

    async def go():
        a = LeasedLimiter("e@x", 8, source, "a", heartbeat=0.02)
        b = LeasedLimiter("e@x", 8, source, "b", heartbeat=0.02)
        stop = asyncio.Event()
        served = {"a": 0, "b": 0}

        async def worker(lim):
            while not stop.is_set():
                await lim.acquire()
                try:
                    await asyncio.sleep(0.005)
                finally:
                    lim.release()
                served[lim.holder] += 1

        tasks = [asyncio.ensure_future(worker(a)) for _ in range(20)]
        await asyncio.sleep(0.2)  # a holds everything
        tasks += [asyncio.ensure_future(worker(b)) for _ in range(20)]
        await asyncio.sleep(0.5)
        stop.set()
        await asyncio.gather(*tasks)
        return served

    served = asyncio.run(go())
    assert served["b"] > served["a"] / 4, served  # b got a real share once it asked
