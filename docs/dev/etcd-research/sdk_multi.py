import time, os, signal, subprocess, sys
mod = sys.argv[1]
etcd3 = __import__(mod)
T0=time.monotonic()
def log(*a): print(f"[{time.monotonic()-T0:6.2f}]", *a, flush=True)
eps = [etcd3.Endpoint('127.0.0.1', 23791, secure=False, time_retry=0.5),   # dead endpoint
       etcd3.Endpoint('127.0.0.1', 23790, secure=False, time_retry=0.5)]
c = etcd3.MultiEndpointEtcd3Client(endpoints=eps, timeout=2, failover=True)
for i in range(4):
    try: c.put('/m/x', str(i)); log("put ok via", c.endpoint_in_use); break
    except Exception as e: log("put failed", type(e).__name__, "; retrying")
pid=int(open('/tmp/etcdtest/etcd1.pid').read()); os.kill(pid, signal.SIGKILL); log("killed")
for i in range(2):
    try: c.put('/m/x', 'down')
    except Exception as e: log("put while down", type(e).__name__, e)
    time.sleep(0.6)
log(subprocess.run(['/tmp/etcdtest/start1.sh','/tmp/etcdtest/data1'],capture_output=True,text=True).stdout.strip())
for i in range(10):
    try: c.put('/m/x','after'); log("put after restart ok"); break
    except Exception as e: log("put after restart", type(e).__name__, e); time.sleep(0.6)
