import time, threading, json, subprocess, sys, os, signal, logging
logging.basicConfig(level=logging.WARNING)
import etcd3
T0=time.monotonic()
def log(*a): print(f"[{time.monotonic()-T0:6.2f}]", *a, flush=True)
c = etcd3.client(host='127.0.0.1', port=23790, timeout=2)
c.put('/g/t/a', 'v1'); v, md = c.get('/g/t/a'); log("get", v, md.mod_revision, md.create_revision)
rev0 = c.status().raft_index; hdr_rev = c.get_response('/g/t/a').header.revision; log("header rev", hdr_rev)
lease = c.lease(2); log("lease", lease.id, lease.ttl)
key='/g/t/service/master/holder'
ok, resp = c.transaction(compare=[c.transactions.create(key) == 0],
                         success=[c.transactions.put(key, json.dumps({"host":"db1"}), lease=lease)],
                         failure=[c.transactions.get(key)])
ok2, resp2 = c.transaction(compare=[c.transactions.create(key) == 0],
                         success=[c.transactions.put(key, 'db2')], failure=[c.transactions.get(key)])
log("txn create-if-absent", ok, ok2, "failure branch returns", resp2[0][0][0] if resp2 and resp2[0] else resp2)
log("put_if_not_exists", c.put_if_not_exists(key, 'db3'))
stop=threading.Event()
def ka():
    while not stop.is_set():
        try: r = lease.refresh(); log("refresh ->", [x.TTL for x in r])
        except Exception as e: log("refresh error", type(e).__name__, e)
        stop.wait(0.6)
th=threading.Thread(target=ka, daemon=True); th.start(); time.sleep(5); stop.set(); th.join()
t=time.monotonic()
while c.get(key)[0] is not None: time.sleep(0.05)
log(f"holder gone {time.monotonic()-t:.2f}s after keepalive stopped; remaining_ttl", lease.remaining_ttl)
log("refresh expired ->", [x.TTL for x in lease.refresh()])
c.put('/g/t/ds/db1','ONLINE'); c.delete('/g/t/ds/db1')
it, cancel = c.watch_prefix('/g/t/', start_revision=hdr_rev)
got=[]
def consume():
    for ev in it: got.append(ev); log("event", type(ev).__name__, ev.key, ev.value, ev.mod_revision)
threading.Thread(target=consume, daemon=True).start(); time.sleep(1); log("events from", hdr_rev, len(got)); cancel()
# compaction
for i in range(5): c.put('/g/c/k', str(i))
rev = c.get_response('/g/c/k').header.revision; c.compact(rev, physical=True); log("compacted at", rev)
try:
    itc, cancelc = c.watch('/g/c/k', start_revision=rev-3)
    log("watch on compacted revision returned an iterator (no error)")
    def cc():
        try:
            for ev in itc: log("compacted iter event", ev)
            log("compacted iter ended")
        except Exception as e: log("compacted iterator raised", type(e).__name__, e)
    threading.Thread(target=cc, daemon=True).start()
except Exception as e: log("watch compacted raised", type(e).__name__, e)
resps=[]
wid = None
try:
    wid = c.add_watch_callback('/g/c/k', lambda r: resps.append(r), start_revision=rev-3)
except Exception as e: log("add_watch_callback compacted raised", type(e).__name__, e)
time.sleep(1); log("compacted add_watch_callback got", [type(r).__name__+str(getattr(r,'compacted_revision','')) for r in resps])
# kill/restart
resps=[]; 
def cb(r):
    resps.append(r); log("callback got", type(r).__name__, getattr(r,'events',r))
c.add_watch_prefix_callback('/g/k/', cb)
it, cancel = c.watch_prefix('/g/k/')
done=threading.Event()
def consume2():
    try:
        for ev in it: log("iter event", ev.key, ev.value)
        log("iterator ended")
    except Exception as e: log("iterator raised", type(e).__name__, e)
    done.set()
threading.Thread(target=consume2, daemon=True).start()
time.sleep(0.3); c.put('/g/k/x','before-kill'); time.sleep(0.3)
pid=int(open('/tmp/etcdtest/etcd1.pid').read()); os.kill(pid, signal.SIGKILL); log("killed etcd")
time.sleep(0.3)
try: c.put('/g/k/x','while-down')
except Exception as e: log("put while down:", type(e).__name__, e)
try: log(lease.refresh())
except Exception as e: log("refresh while down:", type(e).__name__, e)
time.sleep(3); log("iterator done?", done.is_set())
log(subprocess.run(['/tmp/etcdtest/start1.sh','/tmp/etcdtest/data1'],capture_output=True,text=True).stdout.strip())
for i in range(20):
    try: c.put('/g/k/x','after-restart'); log("put after restart ok"); break
    except Exception as e: log("put after restart:", type(e).__name__); time.sleep(0.5)
time.sleep(2); log("iterator done?", done.is_set(), "callbacks", len(resps))
try:
    c.add_watch_prefix_callback('/g/k/', cb); log("new watch ok after restart"); c.put('/g/k/x','after-rewatch'); time.sleep(1)
except Exception as e: log("new watch after restart:", type(e).__name__, e)
