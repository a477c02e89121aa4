//! Mbuf and mempool behaviour: alloc/free, append/prepend/adj/trim, chains,
//! bulk operations, exhaustion, and pool counts returning to their start.
mod common;

use dpdk_glue::{Error, Mbuf, Mempool, PoolConfig};

fn pool(n: u32) -> Mempool {
    let cfg = PoolConfig { cache: 0, ..PoolConfig::packets(n) };
    Mempool::new(common::eal(), &common::unique("mb"), &cfg).expect("pool")
}

#[test]
fn alloc_append_prepend_adj_trim() {
    common::eal();
    let p = pool(63);
    assert_eq!(p.in_use(), 0);
    {
        let mut m = p.alloc().unwrap();
        assert_eq!((m.pkt_len(), m.data_len(), m.nb_segs()), (0, 0, 1));
        let head0 = m.headroom();
        assert_eq!(head0, 128, "default RTE_PKTMBUF_HEADROOM");
        m.append(5).unwrap().copy_from_slice(b"world");
        m.prepend(6).unwrap().copy_from_slice(b"hello ");
        assert_eq!(m.data(), b"hello world");
        assert_eq!(m.headroom(), head0 - 6);
        m.adj(6).unwrap();
        m.trim(2).unwrap();
        assert_eq!(m.data(), b"wor");
        m.data_mut()[0] = b'W';
        assert_eq!(m.to_vec(), b"Wor");
        // Errors, not panics, past the buffer's edges.
        let room = m.tailroom();
        assert!(matches!(m.append(room + 1), Err(Error::NoRoom { op: "append", .. })));
        assert!(matches!(m.prepend(m.headroom() + 1), Err(Error::NoRoom { op: "prepend", .. })));
        assert!(matches!(m.adj(100), Err(Error::NoRoom { op: "adj", .. })));
        assert!(matches!(m.trim(100), Err(Error::NoRoom { op: "trim", .. })));
        assert_eq!(m.data(), b"Wor", "failed operations leave the mbuf unchanged");
        assert_eq!(p.in_use(), 1);
    }
    assert_eq!(p.in_use(), 0, "drop returns the mbuf");
    assert_eq!(p.available(), 63);
}

#[test]
fn chains_free_every_segment() {
    common::eal();
    let p = pool(127);
    let mut head = p.alloc().unwrap();
    head.extend_from_slice(b"seg0-").unwrap();
    for i in 1..5u8 {
        let mut t = p.alloc().unwrap();
        t.extend_from_slice(&[b's', b'e', b'g', b'0' + i, b'-']).unwrap();
        head.chain(t).unwrap();
    }
    assert_eq!(head.nb_segs(), 5);
    assert_eq!(head.pkt_len(), 25);
    assert_eq!(head.segments().count(), 5);
    assert_eq!(head.to_vec(), b"seg0-seg1-seg2-seg3-seg4-");
    // Appending to a chain writes into the last segment.
    head.extend_from_slice(b"!").unwrap();
    assert_eq!(head.segments().last().unwrap(), b"seg4-!");
    assert_eq!(p.in_use(), 5);
    drop(head);
    assert_eq!(p.in_use(), 0, "dropping a chain frees all its segments");
}

#[test]
fn long_chains_link_and_free() {
    common::eal();
    let p = pool(255);
    let mut head = p.alloc().unwrap();
    let mut ok = 0;
    for _ in 0..100 {
        let t = p.alloc().unwrap();
        match head.chain(t) {
            Ok(()) => ok += 1,
            Err((e, t)) => {
                drop(t);
                panic!("unexpected chain error {e}");
            }
        }
    }
    assert_eq!(ok, 100);
    assert_eq!(head.nb_segs(), 101);
    drop(head);
    assert_eq!(p.in_use(), 0);
}

#[test]
fn bulk_alloc_free_and_exhaustion() {
    common::eal();
    let p = pool(63);
    let mut v = Vec::new();
    p.alloc_bulk(&mut v, 40).unwrap();
    assert_eq!(v.len(), 40);
    assert_eq!(p.in_use(), 40);
    // All-or-nothing: 30 more do not fit, nothing is taken.
    let e = p.alloc_bulk(&mut v, 30).unwrap_err();
    assert!(matches!(e, Error::PoolExhausted { wanted: 30, .. }), "{e}");
    assert_eq!(v.len(), 40);
    assert_eq!(p.in_use(), 40);
    p.alloc_bulk(&mut v, 23).unwrap();
    assert!(matches!(p.alloc(), Err(Error::PoolExhausted { wanted: 1, .. })));
    Mbuf::free_bulk(&mut v);
    assert!(v.is_empty());
    assert_eq!(p.in_use(), 0);
    assert_eq!(p.available(), 63);
}

#[test]
fn bulk_alloc_with_resets_fills_and_rolls_back() {
    common::eal();
    let p = pool(15);
    // Dirty every mbuf of the pool (data moved, offload flags, a chain), then
    // free them: alloc_bulk_with must hand them out as alloc_bulk would.
    let mut v = Vec::new();
    p.alloc_bulk(&mut v, 15).unwrap();
    for m in v.iter_mut() {
        m.prepend(20).unwrap();
        m.append(300).unwrap();
        m.set_tx_offload(1 << 52, 14, 20, 20, 1448);
    }
    let tail = v.pop().unwrap();
    v[0].chain(tail).unwrap();
    Mbuf::free_bulk(&mut v);
    assert_eq!(p.in_use(), 0);

    let mut seen = 0;
    p.alloc_bulk_with(&mut v, 15, |m| {
        assert_eq!((m.pkt_len(), m.data_len(), m.nb_segs(), m.headroom(), m.ol_flags()), (0, 0, 1, 128, 0));
        assert_eq!(m.port(), u16::MAX);
        m.extend_from_slice(&[seen; 60])?;
        seen += 1;
        Ok(())
    })
    .unwrap();
    assert_eq!(seen, 15);
    assert_eq!(v.len(), 15);
    for (i, m) in v.iter().enumerate() {
        assert_eq!((m.data(), m.nb_segs()), (&[i as u8; 60][..], 1));
    }
    // All or nothing: the pool is empty, so nothing is taken or called.
    assert!(matches!(p.alloc_bulk_with(&mut v, 1, |_| panic!("no mbuf to init")), Err(Error::PoolExhausted { .. })));
    assert_eq!(v.len(), 15);
    Mbuf::free_bulk(&mut v);

    // An init error returns every mbuf of the call (also those not yet
    // initialised) and leaves what `out` held before.
    let keep = p.alloc().unwrap();
    v.push(keep);
    let mut calls = 0;
    let e = p
        .alloc_bulk_with(&mut v, 8, |m| {
            calls += 1;
            if calls == 3 {
                return Err(Error::NoRoom { op: "test", len: 0, headroom: m.headroom(), tailroom: m.tailroom() });
            }
            Ok(())
        })
        .unwrap_err();
    assert!(matches!(e, Error::NoRoom { op: "test", .. }), "{e}");
    assert_eq!((calls, v.len(), p.in_use()), (3, 1, 1));
    v.clear();
    assert_eq!(p.in_use(), 0);
    assert_eq!(p.available(), 15);
}

#[test]
fn extbuf_header_pool_has_no_data_room() {
    common::eal();
    let h = Mempool::new(common::eal(), &common::unique("hdr"), &PoolConfig::extbuf_headers(63)).unwrap();
    assert_eq!(h.data_room(), 0);
    let mut m = h.alloc().unwrap();
    assert_eq!(m.tailroom(), 0);
    assert!(m.append(1).is_err());
    drop(m);
    assert_eq!(h.in_use(), 0);
}

#[test]
fn bad_pool_names_are_errors() {
    common::eal();
    let long = "x".repeat(40);
    assert!(matches!(Mempool::new(common::eal(), &long, &PoolConfig::packets(63)), Err(Error::TooLong { .. })));
    assert!(matches!(Mempool::new(common::eal(), "a\0b", &PoolConfig::packets(63)), Err(Error::NulInArgument(_))));
    let name = common::unique("dup");
    let _a = Mempool::new(common::eal(), &name, &PoolConfig::packets(63)).unwrap();
    let e = Mempool::new(common::eal(), &name, &PoolConfig::packets(63)).unwrap_err();
    assert!(matches!(e, Error::MempoolCreate { .. }), "{e}");
    assert!(e.to_string().contains("exists"), "errno text is carried: {e}");
}
