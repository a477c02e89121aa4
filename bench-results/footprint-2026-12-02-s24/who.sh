snap() { for t in /proc/[0-9]*/task/[0-9]*; do s=$(cat $t/schedstat 2>/dev/null) && echo "${t#/proc/} $(cat $t/comm 2>/dev/null | tr ' ' _) $s"; done; }
(D=5 ./run.sh > /tmp/hp/run.out 2>&1 &) ; sleep 2.5; snap > /tmp/hp/a1; sleep 2; snap > /tmp/hp/a2; sleep 4
python3 - <<'PY'
a={l.split()[0]:l.split() for l in open('/tmp/hp/a1')}
rows=[]
for l in open('/tmp/hp/a2'):
    m=l.split(); x=a.get(m[0])
    if x and len(m)>=5: rows.append(((int(m[2])-int(x[2]))/1e6, (int(m[4])-int(x[4])), m[1], m[0]))
for r in sorted(rows, reverse=True)[:15]: print("%8.2f ms  %5d slices  %s %s" % r)
PY
head -1 /tmp/hp/run.out
