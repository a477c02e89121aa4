#!/usr/bin/env python3
"""Writes conformance/scripts/matrix/<state>/*.pkt: the segment-arrives matrix.

RFC 9293 3.10.7.4: in a synchronized state an arriving segment goes through
the sequence test first (the four cases of the acceptability table), then the
RST check (RFC 5961 3), the SYN check (RFC 5961 4), the ACK check (RFC 5961
5), then FIN and text. This generator writes one script per (state, segment
kind, sequence position) whose RFC rule is distinct. The receive window is
fixed by `net.inet.tcp.recvspace=2000` and the peer offers no window scale,
so the window is exactly 2000 bytes and its edges are known:

    lout   RCV.NXT - 1           (outside, left)
    ledge  RCV.NXT               (left edge)
    mid    RCV.NXT + 1000        (inside)
    redge  RCV.NXT + 1999        (last sequence number inside)
    rout   RCV.NXT + 2000        (first sequence number outside, right)

Run from the repository root: python3 conformance/gen/matrix.py
The LISTEN, SYN-SENT and SYN-RECEIVED scripts are hand-written.
"""
import os

W = 2000
OUT = os.path.join(os.path.dirname(__file__), "..", "scripts", "matrix")

PRE = """--ip_version=ipv4
 0.00 `sysctl -w net.inet.tcp.recvspace=%d`
+0.00 `sysctl -w net.inet.tcp.delayed_ack=0`
+0.00 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0.00 bind(3, ..., ...) = 0
+0.00 listen(3, 1) = 0
+0.00 < S 0:0(0) win 65535 <mss 1000>
+0.00 > S. 0:0(0) ack 1 win %d <mss 1460>
+0.01 < . 1:1(0) ack 1 win 65535
+0.00 accept(3, ..., ...) = 4
""" % (W, W)

# state: (directory, tcpi name, setup lines after PRE, RCV.NXT, SND.UNA, SND.NXT, how it got here)
STATES = {
    "established": ("TCP_ESTABLISHED", "", 1, 1, 1, "after a passive open"),
    "fin-wait-1": ("TCP_FIN_WAIT1",
                   "+0.00 shutdown(4, SHUT_WR) = 0\n+0.00 > F. 1:1(0) ack 1\n",
                   1, 1, 2, "after shutdown(SHUT_WR); our FIN is not yet acknowledged"),
    "fin-wait-2": ("TCP_FIN_WAIT2",
                   "+0.00 shutdown(4, SHUT_WR) = 0\n+0.00 > F. 1:1(0) ack 1\n+0.01 < . 1:1(0) ack 2 win 65535\n",
                   1, 2, 2, "after shutdown(SHUT_WR) and the ACK of our FIN"),
    "close-wait": ("TCP_CLOSE_WAIT",
                   "+0.00 < F. 1:1(0) ack 1 win 65535\n+0.00 > . 1:1(0) ack 2\n",
                   2, 1, 1, "after the peer's FIN"),
    "closing": ("TCP_CLOSING",
                "+0.00 shutdown(4, SHUT_WR) = 0\n+0.00 > F. 1:1(0) ack 1\n"
                "+0.01 < F. 1:1(0) ack 1 win 65535\n+0.00 > . 2:2(0) ack 2\n",
                2, 1, 2, "after our FIN crossed the peer's FIN (simultaneous close); ours is unacknowledged"),
    "last-ack": ("TCP_LAST_ACK",
                 "+0.00 < F. 1:1(0) ack 1 win 65535\n+0.00 > . 1:1(0) ack 2\n"
                 "+0.00 shutdown(4, SHUT_WR) = 0\n+0.00 > F. 1:1(0) ack 2\n",
                 2, 1, 2, "after the peer's FIN and our shutdown(SHUT_WR); our FIN is unacknowledged"),
    "time-wait": ("TCP_TIME_WAIT",
                  "+0.00 shutdown(4, SHUT_WR) = 0\n+0.00 > F. 1:1(0) ack 1\n"
                  "+0.01 < F. 1:1(0) ack 2 win 65535\n+0.00 > . 2:2(0) ack 2\n",
                  2, 2, 2, "after our shutdown(SHUT_WR), the ACK of our FIN and the peer's FIN"),
}

POS = {
    "lout": (-1, "outside the window on the left (RCV.NXT-1)"),
    "ledge": (0, "at the left edge (RCV.NXT)"),
    "mid": (W // 2, "in the middle of the window (RCV.NXT+%d)" % (W // 2)),
    "redge": (W - 1, "at the right edge (RCV.NXT+RCV.WND-1, the last sequence number inside)"),
    "rout": (W, "outside the window on the right (RCV.NXT+RCV.WND)"),
}

FIN_SEEN = ("close-wait", "closing", "last-ack", "time-wait")
HAS_SOCKET = ("established", "fin-wait-1", "fin-wait-2", "close-wait", "closing")


def ack_line(s, r):
    return "> . %d:%d(0) ack %d" % (s, s, r)


def gone_check(rcv, una):
    """After a reset: the connection is gone, so a segment for it reaches
    the listener, which answers an ACK with <SEQ=SEG.ACK><CTL=RST>."""
    return ("+0.01 < . %d:%d(0) ack %d win 65535\n+0.00 > R %d:%d(0)\n" % (rcv, rcv, una, una, una))


def alive(tcpi):
    return "+0.10 %%{ assert tcpi_state == %s }%%\n" % tcpi


def script(state, kind, pos):
    tcpi, setup, rcv, una, nxt, how = STATES[state]
    off, pdesc = POS[pos]
    seq = rcv + off
    ack_out = ack_line(nxt, rcv)
    body = ""
    rule = ""
    if kind in ("rst", "rstack"):
        seg = ("< R %d:%d(0) win 0" % (seq, seq)) if kind == "rst" else \
              ("< R. %d:%d(0) ack %d win 0" % (seq, seq, una))
        what = "A RST" if kind == "rst" else "A RST+ACK (the ACK bit does not change the rule)"
        if state == "time-wait":
            rule = ("RFC 1337 (TIME-WAIT assassination): a RST in TIME-WAIT is ignored; "
                    "outside the window it fails the sequence test anyway (RFC 9293 3.10.7.4). No answer.")
            body = "+0.00 %s\n+0.10 %%{ assert tcpi_state == TCP_TIME_WAIT }%%\n" % seg
        elif off < 0 or off >= W:
            rule = "RFC 5961 3.2 / RFC 9293 3.10.7.4: a RST outside the window is dropped silently."
            body = "+0.00 %s\n" % seg + alive(tcpi)
        elif off == 0:
            rule = "RFC 5961 3.2 / RFC 9293 3.10.7.4: a RST exactly at RCV.NXT resets the connection."
            body = "+0.00 %s\n" % seg
            if state not in FIN_SEEN:
                body += "+0.00 read(4, ..., 100) = -1 ECONNRESET (Connection reset by peer)\n"
            body += gone_check(rcv, nxt)
        else:
            rule = ("RFC 5961 3.2 / RFC 9293 3.10.7.4: a RST inside the window but not at RCV.NXT "
                    "draws a challenge ACK <SEQ=SND.NXT><ACK=RCV.NXT> and is otherwise dropped.")
            body = "+0.00 %s\n+0.00 %s\n" % (seg, ack_out) + alive(tcpi)
    elif kind in ("syn", "synack"):
        seg = ("< S %d:%d(0) win 65535 <mss 1000>" % (seq, seq)) if kind == "syn" else \
              ("< S. %d:%d(0) ack %d win 65535 <mss 1000>" % (seq, seq, una))
        what = "A SYN" if kind == "syn" else "A SYN+ACK"
        if off < 0 or off >= W:
            rule = ("RFC 9293 3.10.7.4 / RFC 5961 4.2: it fails the sequence test, so an ACK "
                    "<SEQ=SND.NXT><ACK=RCV.NXT> is sent and the segment dropped; the connection stays.")
        else:
            rule = ("RFC 5961 4.2 / RFC 9293 3.10.7.4 (fourth, check the SYN bit): a SYN in a synchronized "
                    "state, whatever its sequence number, draws a challenge ACK; the connection stays.")
        body = "+0.00 %s\n+0.00 %s\n" % (seg, ack_out) + alive(tcpi)
    elif kind == "ack":
        seg = "< . %d:%d(0) ack %d win 65535" % (seq, seq, una)
        what = "An ACK without data (acknowledging SND.UNA, a duplicate)"
        if off < 0 or off >= W:
            rule = ("RFC 9293 3.10.7.4 (first, check the sequence number): an unacceptable segment "
                    "draws an ACK <SEQ=SND.NXT><ACK=RCV.NXT> and is dropped.")
            body = "+0.00 %s\n+0.00 %s\n" % (seg, ack_out) + alive(tcpi)
        else:
            rule = ("RFC 9293 3.10.7.4: a zero-length segment with RCV.NXT =< SEG.SEQ < RCV.NXT+RCV.WND "
                    "is acceptable; a duplicate ACK without data needs no answer.")
            body = "+0.00 %s\n" % seg + alive(tcpi)
    elif kind == "data":
        seg = "< P. %d:%d(1) ack %d win 65535" % (seq, seq + 1, una)
        what = "A segment with one byte of data"
        if state in FIN_SEEN:
            if off < 0 or off >= W:
                rule = ("RFC 9293 3.10.7.4: the byte lies outside the window, so an ACK "
                        "<SEQ=SND.NXT><ACK=RCV.NXT> is sent and the segment dropped.")
                body = "+0.00 %s\n+0.00 %s\n" % (seg, ack_out) + alive(tcpi)
            else:
                rule = ("RFC 9293 3.10.7.4 (seventh, process the segment text): after the peer's FIN "
                        "text 'should not occur' and is ignored; no ACK, RCV.NXT does not move.")
                body = "+0.00 %s\n" % seg + alive(tcpi)
        elif off < 0 or off >= W:
            rule = ("RFC 9293 3.10.7.4: the byte lies outside the window, so an ACK "
                    "<SEQ=SND.NXT><ACK=RCV.NXT> is sent and the byte is dropped (the gap is filled "
                    "afterwards to show the byte was not kept).")
            body = "+0.00 %s\n+0.00 %s\n" % (seg, ack_out)
            if off >= W:
                body += fill(rcv, una, nxt, rcv + W)
            body += alive(tcpi)
        elif off == 0:
            rule = "RFC 9293 3.10.7.4 (seventh): in-order text is accepted and acknowledged (delayed ACK off)."
            body = "+0.00 %s\n+0.00 %s\n" % (seg, ack_line(nxt, rcv + 1)) + alive(tcpi)
        else:
            rule = ("RFC 9293 3.10.7.4 / RFC 5681 4.2: text inside the window beyond RCV.NXT is kept "
                    "out of order and a duplicate ACK is sent at once; filling the gap acknowledges "
                    "the kept byte too.")
            body = "+0.00 %s\n+0.00 %s\n" % (seg, ack_out) + fill(rcv, una, nxt, seq, extra=1) + alive(tcpi)
    elif kind == "fin":
        seg = "< F. %d:%d(0) ack %d win 65535" % (seq, seq, una)
        what = "A FIN+ACK"
        if off < 0 or off >= W:
            rule = ("RFC 9293 3.10.7.4: a FIN outside the window fails the sequence test (a retransmitted "
                    "FIN on the left), so an ACK <SEQ=SND.NXT><ACK=RCV.NXT> is sent.")
            body = "+0.00 %s\n+0.00 %s\n" % (seg, ack_out) + alive(tcpi)
        elif off == 0:
            nxt_state = {"established": "TCP_CLOSE_WAIT", "fin-wait-1": "TCP_CLOSING",
                         "fin-wait-2": "TCP_TIME_WAIT"}[state]
            rule = ("RFC 9293 3.10.7.4 (eighth, check the FIN bit): the FIN is acknowledged and the "
                    "connection moves to %s." % nxt_state)
            body = "+0.00 %s\n+0.00 %s\n" % (seg, ack_line(nxt, rcv + 1)) + alive(nxt_state)
        else:
            rule = ("RFC 9293 3.10.7.4: a FIN beyond RCV.NXT is not processed until the text before it "
                    "arrives ('do not process the FIN if ... SEG.SEQ cannot be validated'); a duplicate "
                    "ACK is sent and the state does not change.")
            body = "+0.00 %s\n+0.00 %s\n" % (seg, ack_out) + alive(tcpi)
    name = "%s-%s.pkt" % (kind, pos)
    head = "// %s: %s %s.\n// %s\n// State: %s (%s); RCV.NXT=%d, RCV.WND=%d, SND.UNA=%d, SND.NXT=%d.\n" % (
        state.upper(), what, pdesc, rule, tcpi, how, rcv, W, una, nxt)
    head = wrap_comment(head)
    return name, head + PRE + setup + body


def fill(rcv, una, nxt, upto, extra=0):
    """Peer sends the bytes [rcv, upto) in segments of at most 1000 bytes;
    the last ACK covers `extra` more bytes already queued out of order."""
    out = ""
    s = rcv
    while s < upto:
        e = min(upto, s + 1000)
        a = e + extra if e == upto else e
        out += "+0.01 < . %d:%d(%d) ack %d win 65535\n+0.00 %s\n" % (s, e, e - s, una, ack_line(nxt, a))
        s = e
    return out


def wrap_comment(text):
    out = []
    for line in text.splitlines():
        body = line[3:]
        cur = "//"
        for word in body.split(" "):
            if len(cur) + 1 + len(word) > 78 and cur != "//":
                out.append(cur)
                cur = "//"
            cur += " " + word
        out.append(cur)
    return "\n".join(out) + "\n"


MATRIX = {
    "established": {"rst": "all", "rstack": "all", "syn": "all", "synack": ["ledge", "rout"],
                    "ack": "all", "data": "all", "fin": "all"},
    "fin-wait-1": {"rst": "all", "rstack": ["mid"], "syn": ["lout", "mid"], "ack": ["lout", "mid", "rout"],
                   "data": "all", "fin": ["lout", "ledge", "mid"]},
    "fin-wait-2": {"rst": "all", "rstack": ["ledge"], "syn": ["ledge", "rout"], "ack": ["lout", "redge", "rout"],
                   "data": "all", "fin": ["ledge", "redge", "rout"]},
    "close-wait": {"rst": "all", "syn": ["lout", "mid"], "ack": ["lout", "mid", "rout"],
                   "data": ["lout", "ledge", "rout"], "fin": ["lout"]},
    "closing": {"rst": "all", "syn": ["mid"], "ack": ["lout", "ledge", "rout"],
                "data": ["ledge", "rout"], "fin": ["lout"]},
    "last-ack": {"rst": "all", "syn": ["ledge"], "ack": ["lout", "mid", "rout"],
                 "data": ["redge", "rout"], "fin": ["lout"]},
    "time-wait": {"rst": ["lout", "ledge", "mid", "rout"], "syn": ["lout"], "ack": ["lout", "ledge", "rout"],
                  "data": ["lout", "rout"], "fin": ["lout"]},
}


def main():
    n = 0
    for state, kinds in MATRIX.items():
        d = os.path.join(OUT, state)
        os.makedirs(d, exist_ok=True)
        for kind, poss in kinds.items():
            if poss == "all":
                poss = list(POS)
            for pos in poss:
                name, text = script(state, kind, pos)
                with open(os.path.join(d, name), "w") as f:
                    f.write(text)
                n += 1
    print("wrote %d scripts" % n)


if __name__ == "__main__":
    main()
