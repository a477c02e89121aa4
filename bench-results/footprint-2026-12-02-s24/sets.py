import sys, collections
MIN = int(sys.argv[1])
cnt = collections.Counter()
for line in sys.stdin:
    if line.startswith('I '):
        a = int(line[3:].split(',')[0], 16)
        cnt[a] += 1
hot = [a for a, c in cnt.items() if c >= MIN]
per_line = collections.Counter(a >> 6 for a in hot)
sets = collections.Counter()
for l, n in per_line.items():
    sets[l & 63] += -(-n // 8)
occ = sorted(sets.values(), reverse=True)
print("entries", sum(occ), "max set", occ[:8], "sets>8:", sum(1 for o in occ if o > 8), "excess", sum(o-8 for o in occ if o > 8))
# L1i: 32K 8-way 64 sets
l1 = collections.Counter(l & 63 for l in per_line)
o2 = sorted(l1.values(), reverse=True)
print("L1i lines max set", o2[:8], "sets>8:", sum(1 for o in o2 if o > 8))
