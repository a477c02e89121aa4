import sys, collections
MIN = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
cnt = collections.Counter()
size = {}
for line in sys.stdin:
    if line.startswith('I '):
        a, s = line[3:].split(',')
        a = int(a, 16)
        cnt[a] += 1
        size[a] = int(s)
hot = [a for a, c in cnt.items() if c >= MIN]
b = sum(size[a] for a in hot)
lines = {a >> 6 for a in hot} | {(a + size[a] - 1) >> 6 for a in hot}
win = {a >> 5 for a in hot} | {(a + size[a] - 1) >> 5 for a in hot}
tot = sum(cnt[a] for a in hot)
print(f"hot instrs {len(hot)} bytes {b} lines64 {len(lines)} win32 {len(win)} dyn {tot}")
