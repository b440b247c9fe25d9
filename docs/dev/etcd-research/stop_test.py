import asyncio, time, os, signal, sys
import aetcd
T0=time.monotonic()
def log(*a): print(f"[{time.monotonic()-T0:6.2f}]", *a, flush=True)
async def main(opts):
    c = aetcd.Client(host='127.0.0.1', port=23790, timeout=2, options=opts); await c.connect()
    w = await c.watch_prefix(b'/s/')
    async def kc():
        try:
            async for ev in w: log("event", ev.kv.value)
            log("iterator ended")
        except Exception as e: log("watch raised", type(e).__name__, str(e)[:100])
    t = asyncio.create_task(kc()); await asyncio.sleep(0.3); await c.put(b'/s/x', b'1'); await asyncio.sleep(0.3)
    pid=int(open('/tmp/etcdtest/etcd1.pid').read()); os.kill(pid, signal.SIGSTOP); log("SIGSTOP etcd")
    for i in range(16):
        await asyncio.sleep(0.5)
        if t.done(): break
    log("watch task done after SIGSTOP?", t.done())
    try: await c.put(b'/s/x', b'2')
    except Exception as e: log("put while stopped", type(e).__name__)
    os.kill(pid, signal.SIGCONT); log("SIGCONT")
    await asyncio.sleep(0.5); t.cancel()
opts = {} if sys.argv[1]=='none' else {'grpc.keepalive_time_ms': 1000, 'grpc.keepalive_timeout_ms': 1000, 'grpc.keepalive_permit_without_calls': 1, 'grpc.http2.max_pings_without_data': 0}
asyncio.run(main(opts))
