"""What compressing large payloads in Redis saves (issue 17, item 5): for
16, 64 and 256 KiB JSON messages, with `--compress-over 0` (off) and the
default (4096), on one release bus node and a private redis-server:

- 200 publishes to a topic that keeps history (every message also stored
  in its stream), one subscriber: Redis memory held by the history, Redis
  network bytes in and out, publish -> delivery latency (p50, p99);
- 200 enqueues of the same messages: Redis memory held by the queue.

The JSON looks like an agent's (records with repeating keys and varied
values; seeded, every message different).

    pip install websockets
    cargo build --release -p bus
    python3 scripts/measure/compression.py
"""
import asyncio, json, os, random, sys, time
import websockets
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'attacks'))
from common import Stack

N = 200

def agent_json(size, rng):
    rows, n = [], 0
    while n < size:
        row = {'task': f'task-{rng.randrange(100000)}',
               'status': rng.choice(['queued', 'running', 'done', 'failed']),
               'score': round(rng.random() * 100, 2),
               'owner': f'agent-{rng.randrange(300)}',
               'note': ' '.join(rng.choice(WORDS) for _ in range(rng.randrange(3, 12)))}
        text = json.dumps(row, separators=(',', ':'))
        rows.append(row); n += len(text) + 1
    return {'rows': rows}

WORDS = ('the index build finished with warnings retry later shard queue agent '
         'timeout ok error latency report summary partial result cached stale').split()

def pct(v, q):
    v = sorted(v); return v[min(len(v) - 1, int(q * len(v)))]

async def run(stack, size):
    rng = random.Random(size)
    payloads = [agent_json(size, rng) for _ in range(N)]
    url = stack.url
    async with websockets.connect(url + '?agent=sub&workspace=bench', max_size=None) as sub, \
               websockets.connect(url + '?agent=pub&workspace=bench', max_size=None) as pub:
        await sub.recv(); await pub.recv()
        await sub.send(json.dumps({'op': 'subscribe', 'id': 1, 'topics': ['reports']}))
        while json.loads(await sub.recv()).get('op') != 'ok':
            pass
        mem0, net_in0, net_out0 = stack.info('used_memory'), stack.info('total_net_input_bytes'), stack.info('total_net_output_bytes')
        cpu0, bus0 = stack.redis_cpu(), stack.bus_cpu()
        latencies = []
        for i, p in enumerate(payloads):
            sent = time.perf_counter()
            await pub.send(json.dumps({'op': 'publish', 'id': 10 + i, 'topic': 'reports', 'payload': p}))
            while True:
                f = json.loads(await sub.recv())
                if f.get('op') == 'message':
                    latencies.append((time.perf_counter() - sent) * 1000)
                    break
            while json.loads(await pub.recv()).get('op') != 'ok':
                pass
        history_mem = stack.info('used_memory') - mem0
        net_in = stack.info('total_net_input_bytes') - net_in0
        net_out = stack.info('total_net_output_bytes') - net_out0
        redis_cpu, bus_cpu = stack.redis_cpu() - cpu0, stack.bus_cpu() - bus0
        mem1 = stack.info('used_memory')
        for i, p in enumerate(payloads):
            await pub.send(json.dumps({'op': 'enqueue', 'id': 1000 + i, 'queue': 'jobs', 'payload': p}))
            while json.loads(await pub.recv()).get('op') != 'ok':
                pass
        queue_mem = stack.info('used_memory') - mem1
    json_bytes = sum(len(json.dumps(p, separators=(',', ':'))) for p in payloads)
    return dict(json=json_bytes, history=history_mem, queue=queue_mem, net_in=net_in, net_out=net_out,
                p50=pct(latencies, 0.5), p99=pct(latencies, 0.99), redis_cpu=redis_cpu, bus_cpu=bus_cpu)

def mib(b):
    return f'{b / 2**20:.1f}'

async def main():
    print(f'{N} messages each; memory and network in MiB, latency in ms, CPU in s')
    print('| size | compression | payload JSON | history in Redis | queue in Redis | Redis net in | Redis net out | publish->delivery p50 / p99 | Redis CPU | bus CPU |')
    print('| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |')
    for size in (16 << 10, 64 << 10, 256 << 10):
        for label, args in (('off', ['--compress-over', '0']), ('on', [])):
            stack = Stack('--history', 'bench/reports=1000', *args)
            try:
                r = await run(stack, size)
            finally:
                stack.stop()
            print(f"| {size >> 10} KiB | {label} | {mib(r['json'])} | {mib(r['history'])} | {mib(r['queue'])} | "
                  f"{mib(r['net_in'])} | {mib(r['net_out'])} | {r['p50']:.2f} / {r['p99']:.2f} | "
                  f"{r['redis_cpu']:.2f} | {r['bus_cpu']:.2f} |", flush=True)

asyncio.run(main())
