#!/usr/bin/python3
"""A hostile TCP client for zcstack's helloworld over net_tap, driven from the
kernel side with raw frames (scapy, AF_PACKET) from an address no kernel
interface owns, so the kernel's own TCP never answers. Reproduces issue 10's
inputs 2-4 and prints one JSON line of what zcstack did; the Rust test
(examples/tests/hostile_tap.rs) asserts on it. Every wait is bounded.

usage: hostile_peer.py SCENARIO IFACE SERVER_IP [SEED [WIDTH]]
  sack       MSS 1460 + SACK, 40 pipelined GETs, ACKs withheld until the RTO
             resends the first segment, then one ACK for it with one SACK block
             ending at snd_max - flight/2 + 1 (starting one MSS past the ACK,
             or WIDTH bytes before its end); then an honest receiver.
  zerowin    MSS 64, window 64: takes 64 bytes, then a zero window for 8 s,
             then reopens (ACK); counts probes and checks the whole response.
  zerowin-lost  as zerowin, but the window-update ACK is lost: only the next
             probe's answer reopens the window.
  badack     GETs whose ACK is snd_nxt + 100000, then 2^30 behind snd_una,
             then a valid GET.
"""
import json
import random
import select
import sys
import time

from scapy.all import ARP, Ether, IP, TCP, Raw, conf  # noqa: E402

conf.verb = 0
OUR_IP = "10.212.0.9"
OUR_MAC = "02:00:00:00:00:99"
PORT = 80
GET = b"GET / HTTP/1.1\r\nHost: zc\r\n\r\n"


class Peer:
    def __init__(self, iface, server_ip, mss, win, sack):
        self.sock = conf.L2socket(iface=iface)
        self.server_ip = server_ip
        self.server_mac = None
        self.sport = random.randint(20000, 60000)
        self.mss, self.win, self.sack = mss, win, sack
        self.seq = random.randint(0, 2**31)
        self.isn_srv = None
        self.frames = []  # (time, tcp) of every segment from the server

    def close(self):
        self.sock.close()

    def send_tcp(self, flags, seq, ack, win=None, payload=b"", options=None):
        pkt = IP(src=OUR_IP, dst=self.server_ip) / TCP(
            sport=self.sport, dport=PORT, flags=flags, seq=seq % 2**32, ack=ack % 2**32,
            window=self.win if win is None else win, options=options or [])
        if payload:
            pkt = pkt / Raw(payload)
        self.sock.send(Ether(src=OUR_MAC, dst=self.server_mac or "ff:ff:ff:ff:ff:ff") / pkt)

    def recv(self, timeout):
        """The next TCP segment from the server within `timeout` s, answering
        ARP for our address on the way; None on timeout."""
        end = time.monotonic() + timeout
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return None
            r, _, _ = select.select([self.sock], [], [], left)
            if not r:
                return None
            p = self.sock.recv()
            if p is None or Ether not in p or p[Ether].src == OUR_MAC:
                continue
            if ARP in p and p[ARP].op == 1 and p[ARP].pdst == OUR_IP:
                self.server_mac = p[ARP].hwsrc
                self.sock.send(Ether(src=OUR_MAC, dst=p[ARP].hwsrc) / ARP(
                    op=2, hwsrc=OUR_MAC, psrc=OUR_IP, hwdst=p[ARP].hwsrc, pdst=p[ARP].psrc))
                continue
            if IP in p and TCP in p and p[IP].src == self.server_ip and p[IP].dst == OUR_IP \
                    and p[TCP].dport == self.sport:
                self.server_mac = p[Ether].src
                self.frames.append((time.monotonic(), p[TCP]))
                return p[TCP]

    def connect(self):
        opts = [("MSS", self.mss)] + ([("SAckOK", b"")] if self.sack else [])
        for _ in range(20):
            self.send_tcp("S", self.seq, 0, options=opts)
            t = self.recv(0.5)
            while t is not None and not (t.flags.S and t.flags.A):
                t = self.recv(0.5)
            if t is not None:
                self.isn_srv = t.seq
                self.seq += 1
                self.rcv_nxt = (t.seq + 1) % 2**32
                self.send_tcp("A", self.seq, self.rcv_nxt)
                return True
        return False


def payload(t):
    return bytes(t[Raw].load) if Raw in t else b""


def off(p, seq):
    """Stream offset of `seq` in the server's data (0 = first byte)."""
    return (seq - p.isn_srv - 1) % 2**32


class Stream:
    """Received server bytes by offset; contiguous prefix and SACK ranges."""

    def __init__(self):
        self.data = {}

    def add(self, o, d):
        for i, b in enumerate(d):
            self.data.setdefault(o + i, b)

    def contiguous(self):
        n = 0
        while n in self.data:
            n += 1
        return n

    def ranges_above(self, start, limit=3):
        out, o = [], start
        top = max(self.data) + 1 if self.data else 0
        while o < top and len(out) < limit:
            while o < top and o not in self.data:
                o += 1
            s = o
            while o in self.data:
                o += 1
            if o > s:
                out.append((s, o))
        return out

    def bytes(self):
        return bytes(self.data[i] for i in range(self.contiguous()))


def response_len(head):
    """Length of one helloworld response from its first bytes, or None."""
    if b"\r\n\r\n" not in head:
        return None
    h = head.split(b"\r\n\r\n")[0].decode(errors="replace")
    for line in h.split("\r\n"):
        if line.lower().startswith("content-length:"):
            return len(h) + 4 + int(line.split(":")[1])
    return None


def sack_scenario(p):
    p.mss, p.sack = 1460, True
    out = {"scenario": "sack"}
    if not p.connect():
        return {**out, "error": "no handshake"}
    p.send_tcp("PA", p.seq, p.rcv_nxt, payload=GET * 40)
    p.seq += len(GET) * 40
    seen = Stream()  # what actually arrived while ACKs were withheld
    first = None
    snd_max = 0
    t0 = time.monotonic()
    # Withhold ACKs until the first segment comes again (the RTO).
    while True:
        if time.monotonic() - t0 > 15:
            return {**out, "error": "no retransmission of the first segment in 15 s"}
        t = p.recv(1.0)
        if t is None or not payload(t):
            continue
        d, o = payload(t), off(p, t.seq)
        if first is not None and o == first[0]:
            break
        seen.add(o, d)
        snd_max = max(snd_max, o + len(d))
        if first is None:
            first = (o, len(d))
    rto_at = time.monotonic()
    one = response_len(seen.bytes())
    if one is None:
        return {**out, "error": "no response header in the first segment"}
    total = 40 * one
    una = first[0] + first[1]
    flight = snd_max - first[0]
    right = snd_max - flight // 2 + 1
    left = min(una + p.mss, right - 1) if len(sys.argv) < 6 else max(una + 1, right - int(sys.argv[5]))
    out.update(first_len=first[1], snd_max=snd_max, flight=flight, sack_left=left, sack_right=right, total=total)
    # The peer "lost" everything but the first segment and the SACKed block.
    st = Stream()
    for i in list(range(0, una)) + list(range(left, right)):
        if i in seen.data:
            st.data[i] = seen.data[i]
    isn = p.isn_srv

    def ack_now():
        c = st.contiguous()
        blocks = st.ranges_above(c)
        opts = []
        if blocks:
            edges = []
            for a, b in blocks:
                edges += [(isn + 1 + a) % 2**32, (isn + 1 + b) % 2**32]
            opts = [("SAck", tuple(edges))]
        p.send_tcp("A", p.seq, isn + 1 + c, options=opts)

    ack_now()
    data_frames = runts = sacked_resent = 0
    t_sack = time.monotonic()
    while time.monotonic() - t_sack < 20 and st.contiguous() < total:
        t = p.recv(0.5)
        if t is None or not payload(t):
            continue
        d, o = payload(t), off(p, t.seq)
        data_frames += 1
        # Resent although wholly SACKed (a segment straddling an edge that
        # is off the segment grid carries unSACKed bytes: sent whole or cut,
        # both are fine).
        if left <= o and o + len(d) <= right:
            sacked_resent += len(d)
        if len(d) < p.mss and o + len(d) != total:
            runts += 1
        st.add(o, d)
        ack_now()
    whole = st.bytes()
    out.update(
        data_frames_after_sack=data_frames,
        runts_after_sack=runts,
        sacked_bytes_resent=sacked_resent,
        contiguous=st.contiguous(),
        responses=whole.count(b"HTTP/1.1 200 OK"),
        seconds_to_complete=round(time.monotonic() - t_sack, 3),
        rto_seconds=round(rto_at - t0, 3),
    )
    return out


def zerowin_scenario(p, lost_update):
    p.mss, p.win, p.sack = 64, 64, False
    out = {"scenario": "zerowin-lost" if lost_update else "zerowin"}
    if not p.connect():
        return {**out, "error": "no handshake"}
    p.send_tcp("PA", p.seq, p.rcv_nxt, payload=GET)
    p.seq += len(GET)
    st = Stream()
    # Take the first 64 bytes, then advertise a zero window.
    t0 = time.monotonic()
    while time.monotonic() - t0 < 5 and st.contiguous() < 64:
        t = p.recv(0.5)
        if t is not None and payload(t):
            st.add(off(p, t.seq), payload(t)[: max(0, 64 - off(p, t.seq))])
    if st.contiguous() < 64:
        return {**out, "error": "no first 64 bytes"}
    isn = p.isn_srv
    p.send_tcp("A", p.seq, isn + 1 + 64, win=0)
    probes = []
    tz = time.monotonic()
    while time.monotonic() - tz < 8:
        t = p.recv(0.5)
        if t is None:
            continue
        probes.append(round(time.monotonic() - tz, 3))
        p.send_tcp("A", p.seq, isn + 1 + st.contiguous(), win=0)
    out["probe_times"] = probes
    # Reopen: a window update, or (lost) nothing until the next probe.
    if not lost_update:
        p.send_tcp("A", p.seq, isn + 1 + st.contiguous(), win=64)
    tr = time.monotonic()
    length = None
    while time.monotonic() - tr < 15:
        t = p.recv(0.5)
        if t is None:
            continue
        d = payload(t)
        if d:
            o, c = off(p, t.seq), st.contiguous()
            for i, b in enumerate(d):
                if c <= o + i < c + 64:  # inside our 64-byte window
                    st.data.setdefault(o + i, b)
        p.send_tcp("A", p.seq, isn + 1 + st.contiguous(), win=64)
        whole = st.bytes()
        if length is None:
            length = response_len(whole)
        if length is not None and len(whole) >= length:
            break
    whole = st.bytes()
    out.update(received=len(whole), expected=length, seconds_after_reopen=round(time.monotonic() - tr, 3),
               starts_ok=whole.startswith(b"HTTP/1.1 200 OK"))
    return out


def badack_scenario(p):
    out = {"scenario": "badack"}
    if not p.connect():
        return {**out, "error": "no handshake"}
    snd_nxt = p.isn_srv + 1  # the server has sent nothing yet
    results = []
    for name, ack in (("ahead", snd_nxt + 100000), ("behind", snd_nxt - 2**30)):
        p.frames.clear()
        p.send_tcp("PA", p.seq, ack, payload=GET)
        acks = data = 0
        t0 = time.monotonic()
        while time.monotonic() - t0 < 1.5:
            t = p.recv(0.3)
            if t is None:
                continue
            if payload(t):
                data += len(payload(t))
            elif t.flags.A and not t.flags.R:
                acks += 1
        results.append({"ack": name, "acks": acks, "data_bytes": data})
    out["bad"] = results
    # Control: the same GET with a valid ACK is answered. The server's
    # rcv_nxt is p.seq if it dropped the bad GETs.
    p.frames.clear()
    p.send_tcp("PA", p.seq, snd_nxt, payload=GET)
    got = b""
    t0 = time.monotonic()
    while time.monotonic() - t0 < 3 and b"200 OK" not in got:
        t = p.recv(0.3)
        if t is not None and payload(t):
            got += payload(t)
    out["valid_answered"] = b"HTTP/1.1 200 OK" in got
    return out


def main():
    scenario, iface, server = sys.argv[1], sys.argv[2], sys.argv[3]
    random.seed(int(sys.argv[4]) if len(sys.argv) > 4 else 10)
    p = Peer(iface, server, 1460, 65535, True)
    try:
        if scenario == "sack":
            out = sack_scenario(p)
        elif scenario in ("zerowin", "zerowin-lost"):
            out = zerowin_scenario(p, scenario == "zerowin-lost")
        elif scenario == "badack":
            out = badack_scenario(p)
        else:
            out = {"error": "unknown scenario " + scenario}
        # Say goodbye so the server's connection does not linger.
        p.send_tcp("R", p.seq, 0)
    finally:
        p.close()
    print("HOSTILE " + json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
