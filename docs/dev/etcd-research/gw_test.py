import time, threading, json, subprocess, sys, os, signal
import etcd3gw
from etcd3gw.client import Etcd3Client
T0=time.monotonic()
def log(*a): print(f"[{time.monotonic()-T0:6.2f}]", *a, flush=True)
c = Etcd3Client(host='127.0.0.1', port=23790, timeout=2)
log("api_path", c.api_path)
# put/get
c.put('/fip/t/a', 'v1')
r = c.get('/fip/t/a', metadata=True)
log("get", r)
st = c.status(); rev0 = int(st['header']['revision']); log("status rev", rev0, "version", st.get('version'))
# lease TTL 2 + create-if-absent txn
lease = c.lease(ttl=2); log("lease id", lease.id, "ttl", lease.ttl())
ok1 = c.create('/fip/t/service/master/holder', json.dumps({"host":"db1"}), lease=lease)
ok2 = c.create('/fip/t/service/master/holder', json.dumps({"host":"db2"}))
log("create if absent: first", ok1, "second", ok2)
# raw txn returning the current holder on failure
txn = {'compare':[{'key':etcd3gw.utils._encode('/fip/t/service/master/holder'),'result':'EQUAL','target':'CREATE','create_revision':0}],
       'success':[{'request_put':{'key':etcd3gw.utils._encode('/fip/t/service/master/holder'),'value':etcd3gw.utils._encode('x'),'lease':lease.id}}],
       'failure':[{'request_range':{'key':etcd3gw.utils._encode('/fip/t/service/master/holder')}}]}
res = c.transaction(txn); log("raw txn", json.dumps(res)[:400])
# keepalive for 5s (> TTL)
stop = threading.Event()
def ka():
    while not stop.is_set():
        try: log("refresh ->", lease.refresh())
        except Exception as e: log("refresh error", type(e).__name__, e)
        stop.wait(0.6)
th = threading.Thread(target=ka, daemon=True); th.start()
time.sleep(5)
log("after 5s keepalive, holder:", c.get('/fip/t/service/master/holder'), "ttl", lease.ttl())
stop.set(); th.join()
t_stop = time.monotonic()
while c.get('/fip/t/service/master/holder'):
    time.sleep(0.05)
log(f"holder gone {time.monotonic()-t_stop:.2f}s after last keepalive; lease.ttl() now", lease.ttl())
try: log("refresh expired lease ->", lease.refresh())
except Exception as e: log("refresh expired:", type(e).__name__, e)
# watch from an earlier revision sees earlier changes
c.put('/fip/t/datasource/db1', '{"state":"ONLINE"}')
c.delete('/fip/t/datasource/db1')
events, cancel = c.watch_prefix('/fip/t/', start_revision=rev0)
got=[]
def consume():
    for ev in events:
        got.append(ev); log("event", ev.get('type','(no type => PUT)'), ev['kv']['key'], ev['kv'].get('value'), 'mod_rev', ev['kv'].get('mod_revision'))
wt = threading.Thread(target=consume, daemon=True); wt.start()
time.sleep(1)
log("events seen from start_revision", rev0, ":", len(got))
cancel()
