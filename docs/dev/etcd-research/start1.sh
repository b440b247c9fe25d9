#!/bin/bash
# start single-member etcd on 127.0.0.1:23790/23800, print seconds to ready
D=${1:-/tmp/etcdtest/data1}
[ "$2" = fresh ] && rm -rf $D
t0=$(date +%s.%N)
etcd --name m1 --data-dir $D \
  --listen-client-urls http://127.0.0.1:23790 --advertise-client-urls http://127.0.0.1:23790 \
  --listen-peer-urls http://127.0.0.1:23800 --initial-advertise-peer-urls http://127.0.0.1:23800 \
  --initial-cluster m1=http://127.0.0.1:23800 --initial-cluster-state new --initial-cluster-token t1 \
  $EXTRA --logger zap --log-outputs stderr > /tmp/etcdtest/etcd1.log 2>&1 &
echo $! > /tmp/etcdtest/etcd1.pid
until curl -fsS http://127.0.0.1:23790/health >/dev/null 2>&1; do sleep 0.02; done
t1=$(date +%s.%N)
echo "ready in $(echo "$t1 - $t0" | bc) s pid $(cat /tmp/etcdtest/etcd1.pid)"
