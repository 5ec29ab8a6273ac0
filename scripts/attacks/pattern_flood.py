"""Another workspace's publish -> delivery latency (200 msg/s for 20 s)
with and without an attacker that opens connections across workspaces and
psubscribes until every budget refuses it (200,000 patterns asked for).

    pip install websockets
    cargo build --release -p bus
    python3 scripts/attacks/pattern_flood.py base     # the victim alone
    python3 scripts/attacks/pattern_flood.py flood    # with the attacker

bus/tests/quotas.rs performs the budget attacks in CI.
"""
import asyncio, json, sys, time
import websockets
import os, sys
sys.path.insert(0, os.path.dirname(__file__))
from common import *

def pct(v, q):
    v = sorted(v); return v[min(len(v) - 1, int(q * len(v)))]

async def victim(url, seconds, rate, out):
    async with websockets.connect(url + '?agent=vsub&workspace=victim') as sub, \
               websockets.connect(url + '?agent=vpub&workspace=victim') as pub:
        await sub.recv(); await pub.recv()
        await sub.send(json.dumps({'op': 'subscribe', 'id': 1, 'topics': ['news']}))
        while json.loads(await sub.recv()).get('op') != 'ok': pass
        sent = {}
        async def reader():
            while True:
                f = json.loads(await sub.recv())
                if f.get('op') == 'message':
                    t = f['message']['payload']['t']
                    out.append((time.monotonic() - sent.pop(t)) * 1000)
        r = asyncio.create_task(reader())
        async def drain():
            while True: await pub.recv()
        d = asyncio.create_task(drain())
        start = time.monotonic(); i = 0
        while time.monotonic() - start < seconds:
            due = start + i / rate
            await asyncio.sleep(max(0, due - time.monotonic()))
            sent[i] = due
            await pub.send(json.dumps({'op': 'publish', 'topic': 'news', 'payload': {'t': i}}))
            i += 1
        await asyncio.sleep(1.0)
        r.cancel(); d.cancel()

async def attacker(url, total, per_frame, result):
    """Opens connections and keeps them, each taking patterns until refused;
    stops when a fresh connection is refused at once or after `total` asks."""
    refused = 0; accepted = 0; t0 = time.monotonic(); conns = []; codes = {}
    try:
        while accepted + refused < total:
            ws = await websockets.connect(url + f'?agent=attacker{len(conns)}&workspace=evil{len(conns)//5}')
            await ws.recv(); conns.append(ws)
            took = 0
            while accepted + refused < total:
                pats = [f'p{accepted + refused + j}.*' for j in range(per_frame)]
                await ws.send(json.dumps({'op': 'psubscribe', 'id': 1, 'patterns': pats}))
                while True:
                    f = json.loads(await ws.recv())
                    if f.get('op') in ('ok', 'error'): break
                if f['op'] == 'ok':
                    accepted += per_frame; took += per_frame
                else:
                    refused += per_frame
                    codes[f.get('message')] = codes.get(f.get('message'), 0) + 1
                    break
            if took == 0:
                # Keep asking on this connection until the total, like a flood.
                while accepted + refused < total:
                    await ws.send(json.dumps({'op': 'psubscribe', 'id': 1, 'patterns': [f'q{refused}.*']}))
                    while True:
                        f = json.loads(await ws.recv())
                        if f.get('op') in ('ok', 'error'): break
                    if f['op'] == 'ok': accepted += 1
                    else: refused += per_frame
        result.update(accepted=accepted, refused=refused, seconds=round(time.monotonic() - t0, 1), connections=len(conns), refusals=codes)
        await asyncio.sleep(30)
    finally:
        for ws in conns: await ws.close()

async def main(flood):
    st = Stack()
    try:
        lat = []; result = {}
        tasks = [victim(st.url, 20, 200, lat)]
        if flood:
            tasks.append(attacker(st.url, 200_000, 100, result))
        await asyncio.gather(*tasks, return_exceptions=True)
        print(f'flood={flood} victim: {len(lat)} msgs p50 {pct(lat,.5):.2f} ms p99 {pct(lat,.99):.2f} ms max {max(lat):.2f} ms; attacker {result}; node patterns held {st.rss()}')
    finally:
        st.stop()

asyncio.run(main(sys.argv[1] == 'flood'))
