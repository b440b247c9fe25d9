import asyncio, time, json, os, signal, subprocess
import aetcd
T0=time.monotonic()
def log(*a): print(f"[{time.monotonic()-T0:6.2f}]", *a, flush=True)
async def main():
    c = aetcd.Client(host='127.0.0.1', port=23790, timeout=2)
    await c.connect()
    r = await c.put(b'/a/t/a', b'v1'); rev0 = r.header.revision; log("put rev", rev0)
    g = await c.get(b'/a/t/a'); log("get", g.value, g.mod_revision)
    lease = await c.lease(2); log("lease", lease.id, lease.ttl)
    key=b'/a/t/service/master/holder'
    ok, resp = await c.transaction(compare=[c.transactions.create(key) == 0],
        success=[c.transactions.put(key, b'db1', lease=lease)], failure=[c.transactions.get(key)])
    ok2, resp2 = await c.transaction(compare=[c.transactions.create(key) == 0],
        success=[c.transactions.put(key, b'db2')], failure=[c.transactions.get(key)])
    log("txn", ok, ok2)
    for i in range(8):
        r = await lease.refresh(); log("refresh", r); await asyncio.sleep(0.6)
    t=time.monotonic()
    while (await c.get(key)) is not None: await asyncio.sleep(0.05)
    log(f"holder gone {time.monotonic()-t:.2f}s after keepalive stopped")
    try: log("refresh expired ->", await lease.refresh())
    except Exception as e: log("refresh expired raised", type(e).__name__, e)
    await c.put(b'/a/t/ds', b'ONLINE'); await c.delete(b'/a/t/ds')
    w = await c.watch_prefix(b'/a/t/', start_revision=rev0)
    n=0
    async def consume():
        nonlocal n
        async for ev in w: n+=1; log("event", ev.kind, ev.kv.key, ev.kv.value, ev.kv.mod_revision)
    task = asyncio.create_task(consume()); await asyncio.sleep(1); log("events", n); await w.cancel()
    # compaction
    for i in range(5): r = await c.put(b'/a/c/k', str(i).encode())
    await c.compact(r.header.revision, physical=True)
    try:
        w2 = await c.watch(b'/a/c/k', start_revision=r.header.revision-3)
        async def cc():
            try:
                async for ev in w2: log("compacted ev", ev)
                log("compacted iterator ended")
            except Exception as e: log("compacted iterator raised", type(e).__name__, e)
        t2 = asyncio.create_task(cc()); await asyncio.sleep(1); log("compacted task done?", t2.done())
    except Exception as e: log("compacted watch raised", type(e).__name__, e)
    # kill/restart
    w3 = await c.watch_prefix(b'/a/k/')
    async def kc():
        try:
            async for ev in w3: log("kill-watch event", ev.kv.value)
            log("kill-watch iterator ended")
        except Exception as e: log("kill-watch raised", type(e).__name__, e)
    t3 = asyncio.create_task(kc()); await asyncio.sleep(0.3); await c.put(b'/a/k/x', b'before'); await asyncio.sleep(0.3)
    pid=int(open('/tmp/etcdtest/etcd1.pid').read()); os.kill(pid, signal.SIGKILL); log("killed")
    await asyncio.sleep(0.5)
    try: await c.put(b'/a/k/x', b'down')
    except Exception as e: log("put while down", type(e).__name__, e)
    await asyncio.sleep(3); log("kill-watch task done?", t3.done())
    log(subprocess.run(['/tmp/etcdtest/start1.sh','/tmp/etcdtest/data1'],capture_output=True,text=True).stdout.strip())
    try: await c.put(b'/a/k/x', b'after'); log("put after restart ok")
    except Exception as e: log("put after restart", type(e).__name__, e)
    await asyncio.sleep(1); log("kill-watch task done?", t3.done())
    try:
        w4 = await c.watch_prefix(b'/a/k/'); log("new watch after restart ok")
    except Exception as e: log("new watch after restart", type(e).__name__, e)
    await c.close()
asyncio.run(main())
