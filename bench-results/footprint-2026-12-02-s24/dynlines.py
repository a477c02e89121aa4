import sys, collections, subprocess
binp=sys.argv[1]; trace=sys.argv[2]; lo=int(sys.argv[3],16); hi=int(sys.argv[4],16); N=float(sys.argv[5]); depth=int(sys.argv[6]); base=0x108000
cnt=collections.Counter()
for line in open(trace):
    a=int(line[3:].split(',')[0],16)-base
    if lo<=a<hi: cnt[a]+=1
addrs=sorted(a for a,c in cnt.items() if c>=1000)
out=subprocess.run(['addr2line','-a','-e',binp,'-i','-f','-C']+[hex(a) for a in addrs],capture_output=True,text=True).stdout.splitlines()
res=collections.Counter(); cur=None; frames=[]; pend=None
def flush():
    if cur is None: return
    # pick the innermost frame that is in the stack crate (not core/alloc)
    fr=[f for f in frames if '/stack/src/' in f[1] or 'examples' in f[1]]
    key=" < ".join(f[1].split('src/')[-1] + " " + f[0].split('::')[-1][:30] for f in fr[:depth]) if fr else frames[0][1].split('/')[-1]
    res[key]+=cnt[int(cur,16)]/N
for l in out:
    if l.startswith('0x'):
        flush(); cur=l; frames=[]; pend=None
    elif pend is None: pend=l
    else: frames.append((pend,l)); pend=None
flush()
tot=sum(res.values()); print("total/ex %.1f"%tot)
for k,v in res.most_common(int(sys.argv[7])): print("%6.1f %s"%(v,k))
