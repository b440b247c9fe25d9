import asyncio, time, os, signal, sys
import aetcd
T0=time.monotonic()
def log(*a): print(f"[{time.monotonic()-T0:6.2f}]", *a, flush=True)
async def main():
    opts = {'grpc.keepalive_time_ms': 5000, 'grpc.keepalive_timeout_ms': 2000, 'grpc.keepalive_permit_without_calls': 1}
    c = aetcd.Client(host='127.0.0.1', port=23790, timeout=2, options=opts); await c.connect()
    w = await c.watch_prefix(b'/s/', progress_notify=True)
    async def kc():
        try:
            async for ev in w: log("event", ev)
            log("iterator ended")
        except Exception as e: log("watch raised", type(e).__name__, str(e)[:100])
    t = asyncio.create_task(kc()); await asyncio.sleep(2.5); await c.put(b'/s/x', b'1'); await asyncio.sleep(0.3)
    pid=int(open('/tmp/etcdtest/etcd1.pid').read()); os.kill(pid, signal.SIGSTOP); log("SIGSTOP etcd")
    for i in range(30):
        await asyncio.sleep(0.5)
        if t.done(): break
    log("watch task done after SIGSTOP?", t.done())
    os.kill(pid, signal.SIGCONT); log("SIGCONT"); t.cancel()
asyncio.run(main())
