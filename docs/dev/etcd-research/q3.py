import time, os, signal, sys
etcd3 = __import__(sys.argv[1])
T0=time.monotonic()
def log(*a): print(f"[{time.monotonic()-T0:6.2f}]", *a, flush=True)
eps=[etcd3.Endpoint(f'127.0.0.1{i}', 23790, secure=False, time_retry=1) for i in (1,2,3)]
c=etcd3.MultiEndpointEtcd3Client(endpoints=eps, timeout=2, failover=True)
lease=c.lease(5)
c.put('/q/x','1', lease=lease); ep=str(c.endpoint_in_use); log("using", ep)
idx = ep.split('127.0.0.1')[1][0]
os.kill(int(open(f'/tmp/etcdtest/c3/m{idx}.pid').read()), signal.SIGKILL); log("killed member", idx)
for i in range(6):
    t=time.monotonic()
    try: c.put('/q/x', str(i)); list(c.refresh_lease(lease.id)); log(f"put+refresh ok via {c.endpoint_in_use} in {time.monotonic()-t:.3f}s"); break
    except Exception as e: log(f"failed {type(e).__name__} after {time.monotonic()-t:.3f}s")
other = [j for j in '123' if j!=idx][0]
os.kill(int(open(f'/tmp/etcdtest/c3/m{other}.pid').read()), signal.SIGKILL); log("killed member", other, "-> no quorum")
for i in range(3):
    t=time.monotonic()
    try: c.put('/q/x', 'noq'); log("put ok?!")
    except Exception as e: log(f"put without quorum: {type(e).__name__} {e} after {time.monotonic()-t:.3f}s")
    t=time.monotonic()
    try: r=list(c.refresh_lease(lease.id)); log("refresh without quorum returned", [x.TTL for x in r], f"after {time.monotonic()-t:.3f}s")
    except Exception as e: log(f"refresh without quorum: {type(e).__name__} after {time.monotonic()-t:.3f}s")
    t=time.monotonic()
    try: v=c.get('/q/x'); log("linearizable get without quorum", v[0])
    except Exception as e: log(f"get without quorum: {type(e).__name__} after {time.monotonic()-t:.3f}s")
