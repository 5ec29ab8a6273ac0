"""What a resume costs (issue 17): on release bus nodes and a private
redis-server, with `--history '*/*=10000'`:

1. one agent 1,000 messages behind: the time from opening its connection
   to having every missed message (welcome, subscribe with resume, the
   reply, 1,000 replayed messages), five times;
2. 1,000 agents resuming at once: they are connected to node A, a
   publisher on node B sends 20 msg/s, node A is killed (kill -9) and
   started again 1 s later; each agent reconnects (every 50 ms until it
   gets in) and resumes. From node A listening again: connection open,
   resume reply, replay received; per agent, from its subscribe to its
   last replayed message; how many recovered.

    pip install websockets
    cargo build --release -p bus
    python3 scripts/measure/resume.py
"""
import asyncio, json, os, signal, subprocess, sys, time
import websockets
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'attacks'))
from common import BUS, free_port

ARGS = ['--history', '*/*=10000', '--max-connections', '5000']

def pct(v, q):
    v = sorted(v); return v[min(len(v) - 1, int(q * len(v)))]

class Cluster:
    def __init__(self):
        self.rport = free_port()
        self.redis = subprocess.Popen(['redis-server', '--port', str(self.rport), '--save', '', '--appendonly', 'no'], stdout=subprocess.DEVNULL)
        while subprocess.run(['redis-cli', '-p', str(self.rport), 'ping'], capture_output=True).stdout.strip() != b'PONG':
            time.sleep(0.05)
        self.ports = {'a': free_port(), 'b': free_port()}
        self.procs = {name: self.start(name) for name in self.ports}
    def start(self, name):
        p = subprocess.Popen([BUS, '--listen', f'127.0.0.1:{self.ports[name]}', '--redis', f'redis://127.0.0.1:{self.rport}/',
                              '--node-id', name, *ARGS], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        while b'listening' not in p.stdout.readline():
            pass
        return p
    def url(self, name):
        return f'ws://127.0.0.1:{self.ports[name]}/ws/connect'
    def stop(self):
        for p in [*self.procs.values(), self.redis]:
            p.kill(); p.wait()

async def request(ws, frame):
    await ws.send(json.dumps(frame))
    while True:
        f = json.loads(await ws.recv())
        if f.get('id') == frame['id'] and f.get('op') in ('ok', 'error'):
            return f

async def one_behind(c):
    url = c.url('a')
    async with websockets.connect(url + '?agent=pub&workspace=w') as pub:
        await pub.recv()
        times = []
        for rep in range(5):
            async with websockets.connect(url + '?agent=sub&workspace=w') as sub:
                await sub.recv()
                await request(sub, {'op': 'subscribe', 'id': 1, 'topics': [f't{rep}']})
                ok = await request(pub, {'op': 'publish', 'id': 2, 'topic': f't{rep}', 'payload': {'i': 0}})
                last = {'offset': ok['offset'], 'epoch': ok['epoch']}
            for i in range(1000):
                await pub.send(json.dumps({'op': 'publish', 'id': 10 + i, 'topic': f't{rep}', 'payload': {'i': i + 1, 'pad': 'x' * 100}}))
            got = 0
            while got < 1000:
                if json.loads(await pub.recv()).get('op') == 'ok':
                    got += 1
            start = time.perf_counter()
            async with websockets.connect(url + '?agent=sub&workspace=w') as sub:
                await sub.recv()
                reply = await request(sub, {'op': 'subscribe', 'id': 1, 'topics': [f't{rep}'], 'resume': {f't{rep}': last}})
                h = reply['history'][f't{rep}']
                assert h['recovered'] and h['replayed'] == 1000, h
                seen = 0
                while seen < 1000:
                    if json.loads(await sub.recv()).get('op') == 'message':
                        seen += 1
                times.append((time.perf_counter() - start) * 1000)
    return times

async def agent(c, i, state, out):
    url = c.url('a') + f'?agent=s{i}&workspace=w'
    last = None
    ws = await websockets.connect(url)
    await ws.recv()
    await request(ws, {'op': 'subscribe', 'id': 1, 'topics': ['news']})
    state['ready'] += 1
    try:
        while True:
            f = json.loads(await ws.recv())
            if f.get('op') == 'message':
                last = {'offset': f['offset'], 'epoch': f['epoch']}
    except websockets.ConnectionClosed:
        pass
    while True:
        try:
            ws = await websockets.connect(url, open_timeout=5)
            break
        except (OSError, websockets.InvalidHandshake, asyncio.TimeoutError):
            await asyncio.sleep(0.05)
    t_open = time.perf_counter()
    await ws.recv()
    frame = {'op': 'subscribe', 'id': 2, 'topics': ['news']}
    if last:
        frame['resume'] = {'news': last}
    t_ask = time.perf_counter()
    reply = await request(ws, frame)
    t_reply = time.perf_counter()
    h = reply.get('history', {}).get('news', {})
    seen = 0
    while seen < h.get('replayed', 0):
        if json.loads(await ws.recv()).get('op') == 'message':
            seen += 1
    out.append(dict(open=t_open, ask=t_ask, reply=t_reply, caught_up=time.perf_counter(),
                    recovered=h.get('recovered'), replayed=seen))
    await ws.close()

async def thousand(c, n=1000):
    state = {'ready': 0}
    out = []
    agents = [asyncio.create_task(agent(c, i, state, out)) for i in range(n)]
    while state['ready'] < n:
        await asyncio.sleep(0.1)
    async with websockets.connect(c.url('b') + '?agent=pub&workspace=w') as pub:
        await pub.recv()
        seq = 0
        async def publish():
            nonlocal seq
            seq += 1
            return await request(pub, {'op': 'publish', 'id': 100 + seq, 'topic': 'news', 'payload': {'i': seq}})
        for _ in range(40):
            await publish(); await asyncio.sleep(0.05)
        c.procs['a'].send_signal(signal.SIGKILL); c.procs['a'].wait()
        killed = time.perf_counter()
        while time.perf_counter() - killed < 1.0:
            await publish(); await asyncio.sleep(0.05)
        c.procs['a'] = await asyncio.to_thread(c.start, 'a')
        listening = time.perf_counter()
        while len(out) < n and time.perf_counter() - listening < 60:
            await publish(); await asyncio.sleep(0.05)
    for t in agents:
        t.cancel()
    ms = lambda key: [(r[key] - listening) * 1000 for r in out]
    spread = lambda v: (pct(v, 0.5), pct(v, 0.99), max(v))
    resume = [(r['caught_up'] - r['ask']) * 1000 for r in out]
    return dict(done=len(out), recovered=sum(1 for r in out if r['recovered']),
                replayed=pct([r['replayed'] for r in out], 0.5), open=spread(ms('open')),
                reply=spread(ms('reply')), caught_up=spread(ms('caught_up')), resume=spread(resume))

async def main():
    c = Cluster()
    try:
        times = await one_behind(c)
        print(f'one agent 1,000 behind, connect -> all replayed (ms), 5 runs: {[round(t, 1) for t in times]}; median {sorted(times)[2]:.1f}')
        cpu0 = time.process_time()
        r = await thousand(c)
        client_cpu = time.process_time() - cpu0
        print(f"1,000 agents after node A came back: {r['done']} resumed, {r['recovered']} recovered, median replayed {r['replayed']}")
        print('  from A listening: connection open p50 %.0f, p99 %.0f, max %.0f ms' % r['open'])
        print('  from A listening: resume reply p50 %.0f, p99 %.0f, max %.0f ms' % r['reply'])
        print('  from A listening: replay received p50 %.0f, p99 %.0f, max %.0f ms' % r['caught_up'])
        print('  per agent, subscribe sent -> replay received: p50 %.0f, p99 %.0f, max %.0f ms' % r['resume'])
        print(f'  (this Python client used {client_cpu:.1f} s of CPU for the whole phase, one core at most)')
    finally:
        c.stop()

asyncio.run(main())
