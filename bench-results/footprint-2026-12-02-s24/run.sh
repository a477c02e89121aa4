#!/bin/bash
# helloworld (CPU0, vhost) <- httpload (CPU1, virtio-user), 16 conns, D s; sample sched stats
D=${D:-4}; B=/work/main/target/release; S=/tmp/hp/v.sock; rm -f $S
conf() { printf "[dpdk]\nlcore_mask=$2\nno_huge=1\nmemory=512\nfile_prefix=zhp$1\nnb_vdev=1\npkt_tx_delay=0\n$EXTRA[port0]\naddr=$3\nnetmask=255.255.255.0\nbroadcast=10.89.0.255\ngateway=0.0.0.0\n[vdev0]\n$4\n[freebsd.boot]\nmemsz_MB=128\n[tcp]\nmin_rto_us=10000\n" > /tmp/hp/$1.ini; }
conf s 1 10.89.0.2 "driver=net_vhost\npath=$S"
conf c 2 10.89.0.1 "driver=net_virtio_user\npath=$S\nqueue_size=1024"
$B/helloworld --conf /tmp/hp/s.ini --duration $((D+20)) > /tmp/hp/srv.out 2>/tmp/hp/srv.err & SP=$!
trap 'kill $SP 2>/dev/null; wait $SP 2>/dev/null; rm -f $S' EXIT
for i in $(seq 200); do [ -S $S ] && break; sleep 0.05; done
$B/httpload --conf /tmp/hp/c.ini --server 10.89.0.2 -n 16 -d $D > /tmp/hp/cli.out 2>/tmp/hp/cli.err & CP=$!
sleep 1.5
for p in $SP $CP; do for t in /proc/$p/task/*; do echo "$p $(basename $t) $(cat $t/comm) $(cat $t/schedstat) $(grep -E 'ctxt' $t/status | tr '\n' ' ')"; done; done > /tmp/hp/s1
cat /proc/stat | grep '^cpu[01]' > /tmp/hp/c1; grep -E 'LOC|RES|CAL|TLB' /proc/interrupts > /tmp/hp/i1
sleep 2
for p in $SP $CP; do for t in /proc/$p/task/*; do echo "$p $(basename $t) $(cat $t/comm) $(cat $t/schedstat) $(grep -E 'ctxt' $t/status | tr '\n' ' ')"; done; done > /tmp/hp/s2
cat /proc/stat | grep '^cpu[01]' > /tmp/hp/c2; grep -E 'LOC|RES|CAL|TLB' /proc/interrupts > /tmp/hp/i2
wait $CP
grep HTTPLOAD /tmp/hp/cli.out | python3 -c 'import sys,json; r=json.loads(sys.stdin.read()[9:]); print({k:r[k] for k in ("rps","p50_us","p99_us","p999_us") if k in r}, {k:v for k,v in r.items() if "client" in k})'
python3 - <<'PY'
a=[l.split() for l in open('/tmp/hp/s1')]; b={(l[0],l[1]):l for l in (x.split() for x in open('/tmp/hp/s2'))}
for l in a:
    m=b.get((l[0],l[1]))
    if not m: continue
    # fields: pid tid comm run_ns wait_ns slices voluntary_ctxt_switches: N nonvoluntary_ctxt_switches: N
    print(f"{l[2]:>16} tid {l[1]} run {(int(m[3])-int(l[3]))/1e6:8.1f} ms  runq-wait {(int(m[4])-int(l[4]))/1e6:7.2f} ms  vol {int(m[7])-int(l[7])}  invol {int(m[9])-int(l[9])}")
c1=[l.split() for l in open('/tmp/hp/c1')]; c2=[l.split() for l in open('/tmp/hp/c2')]
for x,y in zip(c1,c2):
    d=[int(q)-int(p) for p,q in zip(x[1:],y[1:])]
    print(x[0], "user",d[0],"sys",d[2],"idle",d[3],"irq",d[5],"softirq",d[6],"steal",d[7])
PY
cat /tmp/hp/i1 /tmp/hp/i2
