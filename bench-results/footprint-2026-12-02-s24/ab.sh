#!/bin/bash
# ab.sh A B CASE ROUNDS: alternate A and B, 30 windows of 1000 each per run; print per-round ratio medians
A=$1; B=$2; C=${3:-rr64}; R=${4:-40}; CB=${5:-$C}
for i in $(seq $R); do
  a=$(PERFDRIVE_WINDOWS=30 taskset -c 1 $A $C 30000 2>&1 | tail -1 | awk '{print $2, $4}')
  b=$(PERFDRIVE_WINDOWS=30 taskset -c 1 $B $CB 30000 2>&1 | tail -1 | awk '{print $2, $4}')
  echo "$a $b"
done | python3 -c '
import sys, statistics as s
rows=[list(map(float,l.split())) for l in sys.stdin]
amin=[r[0] for r in rows]; bmin=[r[2] for r in rows]; amed=[r[1] for r in rows]; bmed=[r[3] for r in rows]
print("A min-of-min %.1f med-of-min %.1f med-of-med %.1f" % (min(amin), s.median(amin), s.median(amed)))
print("B min-of-min %.1f med-of-min %.1f med-of-med %.1f" % (min(bmin), s.median(bmin), s.median(bmed)))
print("B/A per-round ratio of mins: median %.3f ; of medians: median %.3f" % (s.median([b/a for a,b in zip(amin,bmin)]), s.median([b/a for a,b in zip(amed,bmed)])))
'
