"""Shared helpers of the ci/bench-* scripts."""
import contextlib, json, os, shutil, subprocess, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release")
BULK = os.path.join(BIN, "bulk")


def run_pair(mode, write, nbytes, zc_min, tag, mtu=1500, tso=False, bin_dir=None, send_args=()):
    """`bulk` receiver (net_vhost, CPU 0) and sender (net_virtio_user, CPU 1)
    in two processes, both at `mtu`; returns the sender's BULK report with
    the receiver's under "recv". `tso`:
    vhost offers TCP segmentation offload and takes big frames into external
    buffers (tso=1,ext-buffer=1), and the sender sends TSO frames.
    `bin_dir`: where the `bulk` binary is (default: this checkout's
    target/release; ci/bench-regress passes the previous main's).
    `send_args`: more sender options (e.g. `--tx-free-batch 0`)."""
    bulk = os.path.join(bin_dir, "bulk") if bin_dir else BULK
    sock = f"/tmp/zc-bench-{os.getpid()}-{tag}.sock"
    if os.path.exists(sock):
        os.unlink(sock)
    recv = subprocess.Popen(
        [bulk, "--role", "recv", "--no-digest", "--lcores", "0@0", "--ip", "10.88.0.2", "--timeout", "120",
         "--vdev", f"net_vhost0,iface={sock},queues=1" + (",tso=1,ext-buffer=1" if tso else ""),
         "--file-prefix", f"zbr{os.getpid()}{tag}",
         "--mtu", str(mtu)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        t = time.time()
        while not os.path.exists(sock):
            if time.time() - t > 20 or recv.poll() is not None:
                raise RuntimeError("vhost receiver did not come up")
            time.sleep(0.02)
        out = subprocess.run(
            [bulk, "--role", "send", "--lcores", "0@1", "--ip", "10.88.0.1", "--peer", "10.88.0.2",
             "--timeout", "120", "--vdev", f"net_virtio_user0,path={sock},queues=1,queue_size=1024",
             "--mode", mode, "--bytes", str(nbytes), "--write-size", str(write), "--zc-min-write", str(zc_min),
             "--file-prefix", f"zbs{os.getpid()}{tag}", "--mtu", str(mtu)] + (["--tso"] if tso else []) + list(send_args),
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, timeout=180).stdout
        rout, _ = recv.communicate(timeout=60)
    finally:
        if recv.poll() is None:
            recv.kill()
            recv.wait()
        if os.path.exists(sock):
            os.unlink(sock)
    line = next((l[5:] for l in out.splitlines() if l.startswith("BULK ")), None)
    if line is None:
        raise RuntimeError(f"no BULK line from the sender:\n{out}")
    r = json.loads(line)
    if not r.get("ok"):
        raise RuntimeError(f"sender failed: {r}")
    # The receiver's report (its busy cycles per byte: what each mode's
    # frames cost the peer; absent from builds before 2026-11-30's session 11).
    rline = next((l[5:] for l in rout.splitlines() if l.startswith("BULK ")), None)
    r["recv"] = json.loads(rline) if rline else {}
    return r




@contextlib.contextmanager
def fresh_copy(exe):
    """A new copy of executable `exe` for one run (removed afterwards). The
    same machine code read enginebench rr64 0.84-0.91x smoltcp in 20 of 21 runs
    of one file and 1.05-1.09x in most runs of a byte-identical copy
    (bench-results/placement-2026-12-02-s31-zen5.txt). So a file carries a
    draw of something that persists across its runs (cause not found; it
    fits where the file's pages landed in memory), and a fresh copy per
    round redraws it: medians over rounds are then medians over draws."""
    d = tempfile.mkdtemp(prefix="zc-bench-copy-")
    try:
        copy = os.path.join(d, os.path.basename(exe))
        shutil.copy2(exe, copy)
        yield copy
    finally:
        shutil.rmtree(d, ignore_errors=True)
