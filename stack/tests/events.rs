//! Readiness events: level-triggered really is level-triggered, and
//! edge-triggered really is edge-triggered.
mod common;

use common::*;
use zcstack::phy::sim::SimConfig;
use zcstack::{Event, Interest, Token, Trigger};

fn events(p: &mut Pair, on_a: bool) -> Vec<Event> {
    let mut v = Vec::new();
    if on_a {
        p.a.poll_events(&mut v);
    } else {
        p.b.poll_events(&mut v);
    }
    v
}

fn settle(p: &mut Pair) {
    p.run_until(10_000, |_| false);
}

#[test]
fn listener_and_connection_events_level_and_edge() {
    let mut p = Pair::new(SimConfig::default(), 21);
    let l = p.a.tcp_listen(80, 8).unwrap();
    p.a.register(l, Token(1), Interest::READABLE, Trigger::Edge).unwrap();
    assert!(events(&mut p, true).is_empty(), "nothing to accept yet");
    let c = p.b.tcp_connect(sa(A_IP, 80), 0, p.now).unwrap();
    p.b.register(c, Token(9), Interest::READABLE | Interest::WRITABLE, Trigger::Edge).unwrap();
    settle(&mut p);
    // Edge: the listener is reported once for the new connection...
    let ev = events(&mut p, true);
    assert_eq!(ev.len(), 1);
    assert_eq!((ev[0].token, ev[0].readable), (Token(1), true));
    // ...and not again while nobody accepts it.
    assert!(events(&mut p, true).is_empty(), "edge-triggered: no repeat without a change");
    // The client became writable once (established).
    let ev = events(&mut p, false);
    assert!(ev.iter().any(|e| e.token == Token(9) && e.writable), "{ev:?}");
    assert!(events(&mut p, false).is_empty());

    let (s, _) = p.a.tcp_accept(l).unwrap();
    p.a.register(s, Token(2), Interest::READABLE, Trigger::Level).unwrap();
    assert!(events(&mut p, true).is_empty(), "nothing to read yet");
    p.b.tcp_write(c, b"ping").unwrap();
    settle(&mut p);
    // Level: reported on every call while unread.
    for _ in 0..3 {
        let ev = events(&mut p, true);
        assert_eq!(ev.len(), 1);
        assert_eq!((ev[0].token, ev[0].readable), (Token(2), true));
    }
    let mut buf = [0u8; 8];
    assert_eq!(p.a.tcp_read(s, &mut buf), Ok(4));
    assert!(events(&mut p, true).is_empty(), "level-triggered stops once drained");

    // Switch the server socket to edge: one report per arrival, even unread.
    p.a.register(s, Token(3), Interest::READABLE, Trigger::Edge).unwrap();
    assert!(events(&mut p, true).is_empty());
    p.b.tcp_write(c, b"one").unwrap();
    settle(&mut p);
    assert_eq!(events(&mut p, true).len(), 1);
    assert!(events(&mut p, true).is_empty(), "unread data is not reported again");
    p.b.tcp_write(c, b"two").unwrap();
    settle(&mut p);
    assert_eq!(events(&mut p, true).len(), 1, "new data is a new edge");
    assert_eq!(p.a.tcp_read(s, &mut buf), Ok(6));

    // EOF: readable + hup.
    p.b.tcp_shutdown(c).unwrap();
    settle(&mut p);
    let ev = events(&mut p, true);
    assert_eq!(ev.len(), 1);
    assert!(ev[0].readable && ev[0].hup, "{ev:?}");
    // Closing deregisters.
    p.a.tcp_close(s, p.now).unwrap();
    assert!(p.a.deregister(s).is_err());
}

/// `readiness` (one lookup, used by poll_events and the C API's waits)
/// agrees with the single queries at every step of a connection's life:
/// connecting, established with data both ways, peer FIN with data unread,
/// our FIN, reset, and a handle that is gone.
#[test]
fn readiness_matches_the_single_queries_through_a_connection_life() {
    fn check(p: &mut Pair, on_a: bool, h: zcstack::SocketHandle, what: &str) {
        let t = if on_a { p.a.tcp() } else { p.b.tcp() };
        match t.readiness(h) {
            Ok(r) => {
                assert_eq!(Ok(r.state), t.state(h), "{what}: state");
                assert_eq!(r.error, t.error(h), "{what}: error");
                assert_eq!(r.readable, t.readable(h), "{what}: readable");
                assert_eq!(r.writable, t.writable(h), "{what}: writable");
                assert_eq!(r.hung_up, t.hung_up(h), "{what}: hung_up");
                assert_eq!(r.peer_closed, t.peer_closed(h), "{what}: peer_closed");
                assert_eq!(Ok(r.recv_queued), t.recv_queued(h), "{what}: recv_queued");
                assert_eq!(Ok(r.send_room), t.send_room(h), "{what}: send_room");
            }
            Err(e) => {
                assert!(t.state(h).is_err(), "{what}: readiness {e:?} but state {:?}", t.state(h));
                assert!(!t.readable(h) && !t.writable(h) && t.hung_up(h), "{what}: a gone handle");
            }
        }
    }
    let mut p = Pair::new(SimConfig::default(), 23);
    let l = p.a.tcp_listen(80, 8).unwrap();
    let c = p.b.tcp_connect(sa(A_IP, 80), 0, p.now).unwrap();
    check(&mut p, false, c, "syn-sent");
    settle(&mut p);
    let (s, _) = p.a.tcp_accept(l).unwrap();
    check(&mut p, true, s, "established, idle");
    check(&mut p, false, c, "client established");
    p.b.tcp_write(c, b"request").unwrap();
    check(&mut p, false, c, "client with data queued");
    settle(&mut p);
    check(&mut p, true, s, "data unread");
    p.b.tcp_close(c, p.now).unwrap();
    settle(&mut p);
    check(&mut p, true, s, "peer FIN, data unread");
    check(&mut p, false, c, "client FIN-WAIT-2");
    let mut buf = [0u8; 16];
    assert_eq!(p.a.tcp_read(s, &mut buf), Ok(7));
    check(&mut p, true, s, "peer FIN, drained");
    p.a.tcp_write(s, b"reply").unwrap();
    p.a.tcp_close(s, p.now).unwrap();
    check(&mut p, true, s, "our FIN queued");
    settle(&mut p);
    check(&mut p, true, s, "closed");
    // A reset connection carries its error.
    let c2 = p.b.tcp_connect(sa(A_IP, 80), 0, p.now).unwrap();
    settle(&mut p);
    let (s2, _) = p.a.tcp_accept(l).unwrap();
    p.a.tcp_abort(s2).unwrap();
    settle(&mut p);
    check(&mut p, false, c2, "reset by the peer");
    check(&mut p, true, s2, "aborted here");
}

/// `poll_events` observes the page array's free count on every call, also
/// when no socket changed: pages come back without a socket event (the
/// application releases zero-copy buffers), and the send room readiness
/// reports must not stay at what it was under pressure.
#[test]
fn poll_events_refreshes_the_free_page_count_without_socket_events() {
    let mut p = Pair::new(SimConfig::default(), 5);
    let l = p.a.tcp_listen(80, 8).unwrap();
    let _c = p.b.tcp_connect(sa(A_IP, 80), 0, p.now).unwrap();
    settle(&mut p);
    let (s, _) = p.a.tcp_accept(l).unwrap();
    p.a.register(s, Token(1), Interest::READABLE | Interest::WRITABLE, Trigger::Edge).unwrap();
    let _ = events(&mut p, true);
    assert!(events(&mut p, true).is_empty(), "nothing changed");
    let idle = p.a.tcp().send_room(s).unwrap();
    let mut held = Vec::new();
    while let Ok(mut b) = p.a.zc_alloc_buffers(16) {
        held.append(&mut b);
    }
    let low = p.a.tcp().send_room(s).unwrap();
    assert!(low < idle, "the pool under pressure limits the send room: {low} vs {idle}");
    p.a.zc_release_buffers(held);
    let _ = events(&mut p, true);
    assert_eq!(p.a.tcp().readiness(s).unwrap().send_room, idle, "send room after the pages came back");
}
