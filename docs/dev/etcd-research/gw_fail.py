import time, threading, json, subprocess, sys, os, signal
from etcd3gw.client import Etcd3Client
T0=time.monotonic()
def log(*a): print(f"[{time.monotonic()-T0:6.2f}]", *a, flush=True)
c = Etcd3Client(host='127.0.0.1', port=23790, timeout=2)
# compaction
for i in range(5): c.put('/fip/c/k', str(i))
rev = int(c.status()['header']['revision'])
c.post(c.get_url('/kv/compaction'), json={'revision': rev, 'physical': True})
log("compacted at", rev)
events, cancel = c.watch('/fip/c/k', start_revision=rev-3)
got=[]; done=threading.Event()
def consume():
    try:
        for ev in events: got.append(ev); log("compact-watch event", ev)
        log("compact-watch iterator ended")
    except Exception as e: log("compact-watch raised", type(e).__name__, e)
    done.set()
threading.Thread(target=consume, daemon=True).start()
time.sleep(0.5); c.put('/fip/c/k', 'after')
time.sleep(1.5); log("compacted watch: events", len(got), "iterator finished?", done.is_set())
cancel()
# raw stream to see what the gateway sends for compacted start_revision
import requests
r = requests.post(c.get_url('/watch'), json={'create_request': {'key': 'L2ZpcC9jL2s=', 'start_revision': rev-3}}, stream=True, timeout=(2,2))
try:
    for line in r.iter_lines():
        log("raw compacted stream line:", line[:300]);
except Exception as e: log("raw stream ended", type(e).__name__)
# kill/restart
events, cancel = c.watch_prefix('/fip/k/')
got=[]; done=threading.Event()
def consume2():
    try:
        for ev in events: got.append(ev); log("kill-watch event", ev['kv']['key'], ev['kv'].get('value'))
        log("kill-watch iterator ended")
    except Exception as e: log("kill-watch raised", type(e).__name__, e)
    done.set()
threading.Thread(target=consume2, daemon=True).start()
time.sleep(0.3); c.put('/fip/k/x', 'before-kill'); time.sleep(0.3)
pid = int(open('/tmp/etcdtest/etcd1.pid').read()); os.kill(pid, signal.SIGKILL); log("killed etcd", pid)
time.sleep(0.5)
try: c.put('/fip/k/x', 'while-down')
except Exception as e: log("put while down:", type(e).__name__, str(e)[:120])
time.sleep(3); log("watch consumer finished?", done.is_set())
log(subprocess.run(['/tmp/etcdtest/start1.sh', '/tmp/etcdtest/data1'], capture_output=True, text=True).stdout.strip())
c.put('/fip/k/x', 'after-restart'); time.sleep(3)
log("after restart: events", [e['kv'].get('value') for e in got], "consumer finished?", done.is_set())
cancel()
