#!/bin/bash
# three members on 127.0.0.11-13, client port 23790, peer port 23800
B=/tmp/etcdtest/c3; rm -rf $B; mkdir -p $B
CL=m1=http://127.0.0.11:23800,m2=http://127.0.0.12:23800,m3=http://127.0.0.13:23800
t0=$(date +%s.%N)
for i in 1 2 3; do
  ip=127.0.0.1$i
  etcd --name m$i --data-dir $B/m$i \
    --listen-client-urls http://$ip:23790 --advertise-client-urls http://$ip:23790 \
    --listen-peer-urls http://$ip:23800 --initial-advertise-peer-urls http://$ip:23800 \
    --initial-cluster $CL --initial-cluster-state new --initial-cluster-token fip-test \
    --heartbeat-interval 100 --election-timeout 1000 \
    --logger zap --log-outputs stderr > $B/m$i.log 2>&1 &
  echo $! > $B/m$i.pid
done
until ETCDCTL_API=3 etcdctl --endpoints 127.0.0.11:23790,127.0.0.12:23790,127.0.0.13:23790 endpoint health >/dev/null 2>&1; do sleep 0.05; done
echo "3-member cluster healthy in $(echo "$(date +%s.%N) - $t0" | bc) s"
