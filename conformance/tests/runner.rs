//! The runner through its library API: the team's scripts pass, and bad
//! input is a FAIL or SKIP with the line number, never a panic or a hang.

use std::path::{Path, PathBuf};

use zcstack_conformance::{run_file, run_source, Outcome, RunOptions};

fn scripts(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).expect("scripts dir") {
        let p = e.expect("entry").path();
        if p.is_dir() {
            scripts(&p, out);
        } else if p.extension().is_some_and(|x| x == "pkt") {
            out.push(p);
        }
    }
}

fn run(src: &str) -> Outcome {
    run_source(src, &RunOptions::default())
}

fn fail_line(o: &Outcome) -> usize {
    match o {
        Outcome::Fail { line, .. } => *line,
        other => panic!("expected a FAIL, got {other:?}"),
    }
}

const HANDSHAKE: &str = "0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0 bind(3, ..., ...) = 0
+0 listen(3, 1) = 0
+0 < S 0:0(0) win 65535 <mss 1460>
+0 > S. 0:0(0) ack 1 <mss 1460>
+.01 < . 1:1(0) ack 1 win 65535
+0 accept(3, ..., ...) = 4
";

/// Every script of the team's suite passes (c, d).
#[test]
fn suite_passes() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts");
    let mut files = Vec::new();
    scripts(&root, &mut files);
    assert!(files.len() >= 9, "found {} scripts", files.len());
    let style = files.iter().filter(|f| f.to_string_lossy().contains("/style/")).count();
    assert!(style >= 3, "three Linux/FreeBSD-style scripts");
    for f in files {
        let o = run_file(&f, &RunOptions::default());
        assert_eq!(o, Outcome::Pass, "{}", f.display());
    }
}

/// A wrong expectation fails at its line, printing both segments decoded.
#[test]
fn mismatch_names_line_and_both_segments() {
    let src = HANDSHAKE.replace("> S. 0:0(0) ack 1", "> S. 0:0(0) ack 7");
    let o = run(&src);
    assert_eq!(fail_line(&o), 5);
    let Outcome::Fail { msg, .. } = o else { unreachable!() };
    assert!(msg.contains("expected > S. 0:0(0) ack 7") && msg.contains("got > S. 0:0(0) ack 1"), "{msg}");
}

/// An expected segment that never comes fails after the tolerance.
#[test]
fn missing_segment_fails() {
    let src = format!("{HANDSHAKE}+0 > F. 1:1(0) ack 1\n");
    assert_eq!(fail_line(&run(&src)), 8);
}

/// A segment sent before the script expects one is reported as unexpected.
#[test]
fn unexpected_segment_fails() {
    let src = format!("{HANDSHAKE}+0 close(4) = 0\n+1 write(4, ..., 1) = -1 EBADF\n");
    let o = run(&src);
    assert_eq!(fail_line(&o), 9);
}

/// Syntax errors, unknown calls and bad segment lines: FAIL with the line.
#[test]
fn bad_input_fails_with_line() {
    assert_eq!(fail_line(&run("0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n+0 bind(3, ...\n")), 2);
    assert_eq!(fail_line(&run("0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n+0 frobnicate(3) = 0\n")), 2);
    assert_eq!(fail_line(&run("0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n+0 < S 0:0 win 9\n")), 2);
    assert_eq!(fail_line(&run("0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n\n+0 < S 0:0(0) wn 9\n")), 3);
    assert_eq!(fail_line(&run("/* a\nb */ 0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n+0 close(9) = 0\n")), 3);
    assert_eq!(fail_line(&run("0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3 garbage\n")), 1);
    assert_eq!(fail_line(&run("#ifdef X\n0 close(3) = 0\n")), 1);
    assert_eq!(fail_line(&run("0 `sysctl -w net.inet.tcp.recvspace=1`\n")), 1);
    assert!(matches!(run("\u{0}\u{1}{{{{"), Outcome::Fail { .. }));
}

/// A call that would block forever, and a script that waits for a segment
/// hours away, both end by the bounds, as FAILs with the line.
#[test]
fn waiting_forever_is_bounded() {
    let src = format!("{HANDSHAKE}+0 read(4, ..., 10) = 10\n");
    assert_eq!(fail_line(&run(&src)), 8);
    let src = format!("{HANDSHAKE}+0...100000 read(4, ..., 10) = 10\n");
    let o = run(&src);
    assert_eq!(fail_line(&o), 8);
    let src = format!("{HANDSHAKE}+0 poll([{{fd=4, events=POLLIN, revents=0}}], 1, -1) = 0\n");
    assert_eq!(fail_line(&run(&src)), 8);
    // The step budget is per event: one event that needs more steps than
    // it (100 s of retransmissions) is a FAIL by the limit.
    let tight = RunOptions { max_steps: 5, ..Default::default() };
    let o = run_source(&format!("{HANDSHAKE}+0 write(4, ..., 10) = 10\n+100 close(4) = 0\n"), &tight);
    assert!(matches!(&o, Outcome::Fail { msg, .. } if msg.contains("time limit")), "{o:?}");
}

/// Unsupported inputs are a SKIP with the reason and line.
#[test]
fn unsupported_is_skip() {
    // Every FreeBSD knob zcstack knows is mapped now (blackhole included);
    // changing one once the stack runs is what it cannot do.
    let o = run("0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n+0 `sysctl -w net.inet.tcp.msl=1000`\n");
    assert!(matches!(&o, Outcome::Skip { line: 2, reason } if reason.contains("msl after the stack started")), "{o:?}");
    let o = run(&format!("{HANDSHAKE}+0 %{{ assert tcpi_snd_cwnd == 10 }}%\n"));
    assert!(matches!(&o, Outcome::Skip { line: 8, .. }), "{o:?}");
    let o = run("0 socket(..., SOCK_DGRAM, IPPROTO_UDP) = 3\n");
    assert!(matches!(&o, Outcome::Skip { line: 1, .. }), "{o:?}");
    let o = run(&format!("{HANDSHAKE}+0 > icmp unreachable port_unreachable [1:1(0)]\n"));
    assert!(matches!(&o, Outcome::Skip { line: 8, .. }), "{o:?}");
}

/// Inbound ICMP lines run: an established connection ignores a port
/// unreachable (soft, RFC 5461); a bad ICMP line is a FAIL with its line.
#[test]
fn icmp_lines_run() {
    let o = run(&format!(
        "{HANDSHAKE}+0 < icmp unreachable port_unreachable [1:1(0)]\n+0 %{{ assert tcpi_state == TCP_ESTABLISHED }}%\n"
    ));
    assert_eq!(o, Outcome::Pass);
    let o = run(&format!("{HANDSHAKE}+0 < icmp unreachable frag_needed mtu [1:1(0)]\n"));
    assert!(matches!(&o, Outcome::Fail { line: 8, .. }), "{o:?}");
}

/// `#ifdef` names come from the options; relative and absolute times mix.
#[test]
fn defines_select_branches() {
    let src = format!("{HANDSHAKE}#ifdef ZC\n+0 close(4) = 0\n#else\n+0 close(4) = 1\n#endif\n");
    assert_eq!(run(&src), Outcome::Fail { line: 11, msg: "close: expected = 1 got = 0".into() });
    let with = RunOptions { defines: vec!["ZC".into()], ..Default::default() };
    assert_eq!(run_source(&src, &with), Outcome::Pass);
}

/// --strict compares PSH (the relaxed run ignores it).
#[test]
fn strict_compares_psh() {
    let src = format!("{HANDSHAKE}+0 write(4, ..., 10) = 10\n+0 > . 1:11(10) ack 1\n");
    assert_eq!(run(&src), Outcome::Pass);
    let strict = RunOptions { strict: true, ..Default::default() };
    assert_eq!(fail_line(&run_source(&src, &strict)), 9);
}

/// A virtual minute of TCP time (TIME-WAIT, retransmissions) runs at once.
#[test]
fn minutes_of_tcp_time_run_fast() {
    let started = std::time::Instant::now();
    let src = format!("{HANDSHAKE}+0 write(4, ..., 10) = 10\n+0 > P. 1:11(10) ack 1\n+60 close(4) = 0\n");
    let o = run(&src);
    // Retransmissions of the unacknowledged write happen during the minute.
    assert!(matches!(o, Outcome::Fail { line: 10, .. }), "{o:?}");
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
}

/// A SYN sent to a synchronized connection (RFC 5961 4) keeps the peer's
/// sequence numbering: its challenge ACK reads `ack 1` and later segments
/// keep the literal numbers. A SYN in LISTEN at 7000 is acked `ack 7001`.
#[test]
fn syn_to_synchronized_keeps_numbering() {
    let src = format!(
        "{HANDSHAKE}+0 < S 5000:5000(0) win 65535 <mss 1460>\n+0 > . 1:1(0) ack 1\n\
         +0 < P. 1:11(10) ack 1 win 65535\n* > . 1:1(0) ack 11\n"
    );
    assert_eq!(run(&src), Outcome::Pass);
    let fresh = HANDSHAKE
        .replace("< S 0:0(0)", "< S 7000:7000(0)")
        .replace("> S. 0:0(0) ack 1", "> S. 0:0(0) ack 7001")
        .replace("< . 1:1(0) ack 1", "< . 7001:7001(0) ack 1");
    assert_eq!(run(&fresh), Outcome::Pass);
}

/// The peer's sequence numbers are literal, as packetdrill puts them on the
/// wire: a SYN at 17 carrying 3 bytes is answered `ack 18` (the data of a
/// SYN is not acknowledged without TFO), and the next segment starts at 18.
#[test]
fn peer_numbers_are_literal() {
    let src = "0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0 bind(3, ..., ...) = 0
+0 listen(3, 1) = 0
+0 < S 17:20(3) win 65535 <mss 1460>
+0 > S. 0:0(0) ack 18 <mss 1460>
+.01 < . 18:18(0) ack 1 win 65535
+0 accept(3, ..., ...) = 4
+0 < P. 18:28(10) ack 1 win 65535
+0 read(4, ..., 100) = 10
";
    assert_eq!(run(src), Outcome::Pass);
    // The rebased reading (ack 1) is a mismatch on the SYN-ACK line.
    let rebased = src.replace("ack 18 <mss", "ack 1 <mss");
    assert_eq!(fail_line(&run(&rebased)), 5);
}

/// Closing an fd succeeds after the engine let its connection go (TIME-WAIT
/// replaced by a new connection on the same 4-tuple), and a sysctl line that
/// restores a knob after every socket is closed is ignored, not a SKIP.
#[test]
fn close_after_connection_gone_and_cleanup_sysctl() {
    let src = "`sysctl -w net.inet.tcp.msl=1000`
0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0 bind(3, ..., ...) = 0
+0 listen(3, 2) = 0
+0 < S 0:0(0) win 65535 <mss 1460>
+0 > S. 0:0(0) ack 1 <mss 1460>
+.01 < . 1:1(0) ack 1 win 65535
+0 accept(3, ..., ...) = 4
+0 shutdown(4, SHUT_WR) = 0
+0 > F. 1:1(0) ack 1
+.01 < F. 1:1(0) ack 2 win 65535
+0 > . 2:2(0) ack 2
+3 close(4) = 0
+0 close(3) = 0
+0 `sysctl -w net.inet.tcp.msl=30000`
";
    assert_eq!(run(src), Outcome::Pass);
}

fn fail_msg(o: &Outcome) -> &str {
    match o {
        Outcome::Fail { msg, .. } => msg,
        other => panic!("expected a FAIL, got {other:?}"),
    }
}

/// Review 01/02: values nested 100 000 deep (`[`, `{`, `&`, `sizeof(`) are a
/// FAIL at their line naming the bound, never a stack overflow.
#[test]
fn deep_nesting_fails_with_line() {
    for (open, close) in [("[", "]"), ("{", "}"), ("&", ""), ("sizeof(", ")")] {
        let deep = format!("{}1{}", open.repeat(100_000), close.repeat(100_000));
        let src = format!("0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n+0 close(3) = {deep}\n");
        let o = run(&src);
        assert_eq!(fail_line(&o), 2, "{open}");
        assert!(fail_msg(&o).contains("nesting deeper than"), "{open}: {o:?}");
        let src = format!("0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n+0 setsockopt(3, {deep}) = 0\n");
        assert_eq!(fail_line(&run(&src)), 2, "{open} as an argument");
    }
}

/// Review 03: times whose sums overflow or lie beyond the runner's range
/// (relative, absolute, window ends, blocking ends, the tolerance) are a
/// FAIL at their line, never an overflow panic.
#[test]
fn huge_times_fail_with_line() {
    let sock = "0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n";
    let cases = [
        "9223372036854 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n+9223372036854 close(3) = 0\n".to_string(),
        format!("{sock}+9223372036854 close(3) = 0\n+9223372036854 close(3) = 0\n"),
        format!("{sock}+9000000000000 close(3) = 0\n"),
        format!("{sock}+0~+9223372036854 > S 0:0(0)\n"),
        format!("{sock}+0...9223372036854 close(3) = 0\n"),
        format!("{sock}-9223372036854 close(3) = 0\n"),
    ];
    for src in &cases {
        let o = run(src);
        let line = fail_line(&o);
        assert!((1..=3).contains(&line), "{src}: {o:?}");
        assert!(fail_msg(&o).contains("time"), "{src}: {o:?}");
    }
    // A huge tolerance is clamped, not added up to an overflow.
    let src = format!("--tolerance_usecs=18446744073709551615\n{HANDSHAKE}+1 close(4) = 0\n+0 > F. 1:1(0) ack 1\n");
    assert_eq!(run(&src), Outcome::Pass);
}

/// The value a write of `len` bytes returns on a fresh connection.
fn write_returns(len: u64) -> i64 {
    let o = run(&format!("{HANDSHAKE}+0 write(4, ..., {len}) = 1\n"));
    let msg = fail_msg(&o);
    msg.rsplit("got = ").next().and_then(|n| n.trim().parse().ok()).unwrap_or_else(|| panic!("{msg}"))
}

/// Review 04/05: lengths of 1e14 never allocate that much. A write returns
/// what was queued (the same as any write larger than the send buffer); a
/// read returns what is available, or EAGAIN / blocks like a small one.
#[test]
fn huge_io_lengths_act_like_linux() {
    let huge = write_returns(100_000_000_000_000);
    assert!(huge > 0 && huge < 100_000_000, "{huge}");
    assert_eq!(huge, write_returns(10_000_000));
    assert_eq!(huge, write_returns(u64::MAX >> 1));
    // Reads: data available, nothing available (non-blocking), peek.
    let src = format!(
        "{HANDSHAKE}+0 fcntl(4, F_SETFL, O_RDWR|O_NONBLOCK) = 0\n\
         +0 read(4, ..., 100000000000000) = -1 EAGAIN\n\
         +0 < P. 1:11(10) ack 1 win 65535\n\
         +0 recv(4, ..., 100000000000000, MSG_PEEK) = 10\n\
         +0 read(4, ..., 100000000000000) = 10\n\
         +0 read(4, ..., 100000000000000) = -1 EAGAIN\n"
    );
    assert_eq!(run(&src), Outcome::Pass);
    // A blocking read of nothing blocks: the wrong EAGAIN is a FAIL at the line.
    assert_eq!(fail_line(&run(&format!("{HANDSHAKE}+0 read(4, ..., 100000000000000) = -1 EAGAIN\n"))), 8);
}

/// Review 06/07: a `>` line hours after the previous event is waited for up
/// to its own time; `*` up to the documented 24 h horizon, then a FAIL.
#[test]
fn outbound_hours_later_is_waited_for() {
    let ka = format!("{HANDSHAKE}+0 setsockopt(4, SOL_SOCKET, SO_KEEPALIVE, [1], 4) = 0\n");
    let probes = "+75 > . 0:0(0) ack 1\n+0 < . 1:1(0) ack 1 win 257\n";
    assert_eq!(run(&format!("{ka}+7200 > . 0:0(0) ack 1\n{probes}")), Outcome::Pass);
    assert_eq!(run(&format!("{ka}* > . 0:0(0) ack 1\n{probes}")), Outcome::Pass);
    // Too early by an hour: the probe comes at 7200 s, not 3 h.
    let o = run(&format!("{ka}+10800 > . 0:0(0) ack 1\n"));
    assert!(fail_msg(&o).contains("too early"), "{o:?}");
    // Nothing ever comes: both end, as FAILs at the line.
    let o = run(&format!("{HANDSHAKE}+36000 > F. 1:1(0) ack 1\n"));
    assert!(fail_line(&o) == 8 && fail_msg(&o).contains("got nothing"), "{o:?}");
    let o = run(&format!("{HANDSHAKE}* > F. 1:1(0) ack 1\n"));
    assert!(fail_line(&o) == 8 && fail_msg(&o).contains("got nothing"), "{o:?}");
}

/// Review 08: 100 000 cheap lines pass; the step budget bounds one event.
#[test]
fn long_scripts_pass_within_the_budget() {
    let mut src = String::from("0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n");
    for _ in 0..100_000 {
        src.push_str("+0 fcntl(3, F_GETFL) = O_RDWR\n");
    }
    assert_eq!(run(&src), Outcome::Pass);
    let mut bad = src.clone();
    bad.push_str("+0 fcntl(3, F_GETFL) = 77\n");
    assert_eq!(fail_line(&run(&bad)), 100_002);
}

/// Review 11: `--mss=N` is the interface MSS the SYN advertises; a value
/// outside 536..=9176 is a FAIL of the header.
#[test]
fn mss_header_option_applies() {
    let src = "--mss=1000\n0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n\
               +0 fcntl(3, F_SETFL, O_RDWR|O_NONBLOCK) = 0\n+0 connect(3, ..., ...) = -1 EINPROGRESS\n\
               +0 > S 0:0(0) <mss 1000,sackOK,TS val 1 ecr 0,nop,wscale 8>\n";
    assert_eq!(run(src), Outcome::Pass);
    assert_eq!(fail_line(&run(&src.replace("<mss 1000", "<mss 1460"))), 5);
    for bad in ["--mss=10", "--mss=x", "--mss=70000"] {
        assert!(matches!(run(&src.replace("--mss=1000", bad)), Outcome::Fail { line: 0, .. }), "{bad}");
    }
}

/// Review 12/13: LISTEN is a `tcpi_state` (Linux name and 10, FreeBSD name
/// and 1); `assert test, message` is Python's form, the message shown on
/// failure; a closed listener reads CLOSE.
#[test]
fn tcpi_state_listen_and_assert_message() {
    let listen = "0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n+0 bind(3, ..., ...) = 0\n+0 listen(3, 1) = 0\n";
    for ok in ["TCP_LISTEN", "TCPS_LISTEN", "TCP_LISTEN, tcpi_state", "1, 'not listening'"] {
        assert_eq!(run(&format!("{listen}+0 %{{ assert tcpi_state == {ok} }}%\n")), Outcome::Pass, "{ok}");
    }
    let o = run(&format!("{listen}+0 %{{ assert tcpi_state == TCP_ESTABLISHED, tcpi_state }}%\n"));
    assert_eq!(fail_line(&o), 4);
    assert!(fail_msg(&o).contains("got TCP_LISTEN") && fail_msg(&o).contains("tcpi_state"), "{o:?}");
    let o = run(&format!("{listen}+0 close(3) = 0\n+0 %{{ assert tcpi_state == TCP_LISTEN }}%\n"));
    assert!(fail_msg(&o).contains("got TCP_CLOSE"), "{o:?}");
    let o = run(&format!("{HANDSHAKE}+0 %{{ assert tcpi_state == TCP_ESTABLISHED, (\"a, b\", tcpi_state) }}%\n"));
    assert_eq!(o, Outcome::Pass);
    let o = run(&format!("{HANDSHAKE}+0 %{{ assert tcpi_state == TCPS_CLOSE_WAIT, \"msg\" }}%\n"));
    assert!(fail_msg(&o).contains("got TCPS_ESTABLISHED") && fail_msg(&o).contains("msg"), "{o:?}");
}

/// Review 16: a stated `urg N` is compared (against the header field) also
/// without --strict; an unstated one is not.
#[test]
fn urgent_pointer_compared_when_stated() {
    let base =
        format!("{HANDSHAKE}+0 < U. 1:11(10) ack 1 urg 5 win 257\n+.04 > . 1:1(0) ack 11\n+0 write(4, ..., 10) = 10\n");
    let o = run(&format!("{base}+0 > P. 1:11(10) ack 11 urg 99\n"));
    assert!(fail_line(&o) == 11 && fail_msg(&o).contains("urgent pointer"), "{o:?}");
    assert_eq!(run(&format!("{base}+0 > P. 1:11(10) ack 11\n")), Outcome::Pass);
    assert_eq!(run(&format!("{base}+0 > P. 1:11(10) ack 11 urg 0\n")), Outcome::Pass);
}

/// A SKIP line follows the issue's `SKIP path: reason`, the line inside
/// the reason.
#[test]
fn skip_line_format() {
    let o = run("0 socket(..., SOCK_DGRAM, IPPROTO_UDP) = 3\n");
    let line = zcstack_conformance::report::Line { path: "x.pkt", outcome: &o }.to_string();
    assert!(line.starts_with("SKIP x.pkt: ") && line.ends_with("(line 1)"), "{line}");
}
