"""A reader that never reads, against a release bus on its own Redis: it
subscribes to a topic, then stops reading while a publisher floods it and a
second subscriber reads everything. Prints how long the bus took to drop
the silent reader and its RSS (baseline, peak, one second after).

    pip install websockets
    cargo build --release -p bus
    python3 scripts/attacks/slow_reader.py 500000 200    # 500 KB x 200
    python3 scripts/attacks/slow_reader.py 50000 2000    # 50 KB x 2,000

The integration test bus/tests/bounds.rs performs the same attack in CI.
"""
import asyncio, json, sys, time
import websockets
import os, sys
sys.path.insert(0, os.path.dirname(__file__))
from common import *

async def main(size, count):
    st = Stack()
    try:
        slow = raw_ws(st.port, 'slow', 'w1')
        send_text(slow, json.dumps({'op': 'subscribe', 'topics': ['flood']}))
        async with websockets.connect(st.url + '?agent=fast&workspace=w1', max_size=None) as fast, \
                   websockets.connect(st.url + '?agent=pub&workspace=w1', max_size=None) as pub:
            await fast.recv(); await pub.recv()
            await fast.send(json.dumps({'op': 'subscribe', 'id': 1, 'topics': ['flood']}))
            while json.loads(await fast.recv()).get('op') != 'ok': pass
            await asyncio.sleep(0.5)
            base = st.rss()
            payload = 'z' * size
            start = time.monotonic(); reaped = None; peak = base
            async def sample():
                nonlocal reaped, peak
                while True:
                    peak = max(peak, st.rss())
                    if reaped is None and st.connections() <= 2:
                        reaped = time.monotonic() - start
                    await asyncio.sleep(0.05)
            sampler = asyncio.create_task(sample())
            for i in range(count):
                await pub.send(json.dumps({'op': 'publish', 'id': i, 'topic': 'flood', 'payload': payload}))
                while json.loads(await pub.recv()).get('op') not in ('ok', 'error'): pass
                while True:
                    f = json.loads(await fast.recv())
                    if f.get('op') == 'message': break
            sent_s = time.monotonic() - start
            for _ in range(600):
                if reaped is not None: break
                await asyncio.sleep(0.05)
            await asyncio.sleep(1.0)
            sampler.cancel()
            after = st.rss()
            print(f'size {size} B x {count}: flood took {sent_s:.1f} s; slow reader reaped after {reaped if reaped is None else round(reaped,1)} s; '
                  f'RSS baseline {base/2**20:.1f} MiB, peak {peak/2**20:.1f} MiB (VmHWM {st.hwm()/2**20:.1f}), 1 s after {after/2**20:.1f} MiB')
    finally:
        st.stop()

asyncio.run(main(int(sys.argv[1]), int(sys.argv[2])))
