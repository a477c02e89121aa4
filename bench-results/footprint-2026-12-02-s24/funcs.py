import sys, collections, subprocess, bisect
MIN = int(sys.argv[1]); binp = sys.argv[2]
cnt = collections.Counter()
for line in open(sys.argv[3]):
    a = int(line[3:].split(',')[0], 16); cnt[a] += 1
hot = [a for a, c in cnt.items() if c >= MIN]
syms = []
for l in subprocess.run(['nm', '-C', '-S', '--defined-only', binp], capture_output=True, text=True).stdout.splitlines():
    p = l.split(None, 3)
    if len(p) == 4 and p[2] in 'tTwW':
        syms.append((int(p[0], 16), int(p[1], 16), p[3]))
syms.sort()
starts = [s[0] for s in syms]
# perfdrive is PIE? lackey addrs include load base; detect offset
base = 0
if min(hot) > 0x100000000 or True:
    # find base: try common PIE bases
    for b in (0, 0x108000, 0x400000, 0x4000000, 0x5555555554000, 0x108000000):
        ok = sum(1 for a in hot if (i := bisect.bisect_right(starts, a - b) - 1) >= 0 and syms[i][0] <= a - b < syms[i][0] + syms[i][1])
        if ok > len(hot)*0.7: base = b; break
print("base", hex(base))
per = collections.defaultdict(set); dyn = collections.Counter(); size = {}
for a in hot:
    i = bisect.bisect_right(starts, a - base) - 1
    name = syms[i][2] if i >= 0 and syms[i][0] <= a - base < syms[i][0] + syms[i][1] else '?'
    per[name].add((a - base) >> 6); dyn[name] += cnt[a]
    if i >= 0: size[name] = (syms[i][0], syms[i][1])
rows = sorted(per.items(), key=lambda kv: -len(kv[1]))
tot = sum(len(v) for v in per.values())
print("total hot lines", tot, "funcs", len(per))
for n, ls in rows[:int(sys.argv[4]) if len(sys.argv) > 4 else 40]:
    st, sz = size.get(n, (0, 0))
    print(f"{len(ls):4d} lines  fn {sz:6d}B @{st:#x} dyn/ex {dyn[n]/1300:7.1f}  {n[:110]}")
