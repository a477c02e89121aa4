//! Readiness: epoll (Linux's `struct epoll_event`, `EPOLLET` as real edge
//! triggering from the engine's `Trigger::Edge` reports, `EPOLLONESHOT`),
//! kqueue (F-Stack's `struct kevent`), `ff_poll` and `ff_select`.
//!
//! A wait with a timeout drives the stack (device, timers) until something
//! is ready, the timeout passes or `ff_stop_run` is called: the timeout is
//! honoured (F-Stack ignores it). Between two waits the engine makes at
//! least one pass (the wait makes it if `ff_run` did not), so a wait that
//! finds something ready at once does not starve the device. A wait looks
//! only at the files with an engine report since the last wait, the
//! registrations reported level-triggered last time and UDP sockets
//! ([`crate::watch`]): O(ready), not O(registered).

use std::ffi::{c_int, c_void};

use libc::{epoll_event, pollfd, timespec};
use rustc_hash::FxHashMap;

use crate::knotes::Knotes;
use crate::state::{entry, with_lib, Kind, Lib, Ready, Res};
use crate::watch::Watch;

const EPOLLIN: u32 = libc::EPOLLIN as u32;
const EPOLLOUT: u32 = libc::EPOLLOUT as u32;
const EPOLLERR: u32 = libc::EPOLLERR as u32;
const EPOLLHUP: u32 = libc::EPOLLHUP as u32;
const EPOLLRDHUP: u32 = libc::EPOLLRDHUP as u32;
const EPOLLET: u32 = libc::EPOLLET as u32;
const EPOLLONESHOT: u32 = libc::EPOLLONESHOT as u32;

/// One epoll registration.
#[derive(Debug, Clone, Copy)]
struct EpReg {
    events: u32,
    data: u64,
    /// Edge counters seen at the last report (`EPOLLET`).
    seen: (u64, u64),
    /// `EPOLLONESHOT` fired: silent until `EPOLL_CTL_MOD`.
    spent: bool,
}

/// An epoll instance: registrations by descriptor and file, as Linux keys
/// them: a registration made through a descriptor since closed (its file
/// kept open by a dup) lives on beside one a new file makes under the same
/// number, and `EPOLL_CTL_MOD`/`DEL` name the file the number names now.
#[derive(Debug, Default)]
pub struct Epoll {
    regs: FxHashMap<(c_int, u64), EpReg>,
    /// Which registrations a wait looks at.
    pub(crate) watch: Watch<c_int>,
}

/// One kqueue filter registration (`ident`, `filter`).
#[derive(Debug, Clone, Copy)]
struct Knote {
    file: u64,
    flags: u16,
    udata: usize,
    enabled: bool,
    seen: u64,
}

/// A kqueue: knotes by (descriptor, filter).
#[derive(Debug, Default)]
pub struct Kqueue {
    notes: Knotes<Knote>,
    /// Which knotes a wait looks at.
    pub(crate) watch: Watch<(c_int, i16)>,
}

/// F-Stack's `struct kevent`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct Kevent {
    /// `uintptr_t ident`.
    pub ident: usize,
    /// `short filter`.
    pub filter: i16,
    /// `u_short flags`.
    pub flags: u16,
    /// `u_int fflags`.
    pub fflags: u32,
    /// `intptr_t data`.
    pub data: isize,
    /// `void *udata`.
    pub udata: *mut c_void,
}

/// `EVFILT_READ`.
pub const EVFILT_READ: i16 = -1;
/// `EVFILT_WRITE`.
pub const EVFILT_WRITE: i16 = -2;
const EV_ADD: u16 = 0x0001;
const EV_DELETE: u16 = 0x0002;
const EV_ENABLE: u16 = 0x0004;
const EV_DISABLE: u16 = 0x0008;
const EV_ONESHOT: u16 = 0x0010;
const EV_CLEAR: u16 = 0x0020;
const EV_RECEIPT: u16 = 0x0040;
const EV_DISPATCH: u16 = 0x0080;
const EV_EOF: u16 = 0x8000;
const EV_ERROR: u16 = 0x4000;

/// Removes descriptor `fd`'s knotes from every kqueue (called on each
/// close of a descriptor, as FreeBSD's `knote_fdclose`: a dup'd descriptor
/// has knotes of its own).
pub fn forget_fd_knotes(lib: &mut Lib, fd: c_int) {
    let mut gone = Vec::new();
    for (set, f) in lib.files.iter_mut() {
        if let Kind::Kqueue(k) = &mut f.kind {
            for (key, n) in k.notes.remove_fd(fd) {
                let file = n.file;
                if k.watch.remove(file, key) {
                    gone.push((set, file));
                }
            }
        }
    }
    for (set, file) in gone {
        lib.unwatch(set, file);
    }
}

/// Removes file `id`'s registrations from every epoll set (called when its
/// last descriptor closes: Linux keeps them while a dup'd descriptor of
/// the file stays open, and keeps reporting them with their `data`).
pub fn forget_file_epoll(lib: &mut Lib, id: u64) {
    let mut gone = Vec::new();
    for (set, f) in lib.files.iter_mut() {
        if let Kind::Epoll(e) = &mut f.kind {
            let fds: Vec<c_int> = e.regs.keys().filter(|(_, f)| *f == id).map(|(fd, _)| *fd).collect();
            for fd in fds {
                e.regs.remove(&(fd, id));
                e.watch.remove(id, fd);
            }
            gone.push(set);
        }
    }
    for set in gone {
        lib.unwatch(set, id);
    }
}

/// Takes the event set behind `fd` out of the table while it is worked on.
fn take(lib: &mut Lib, fd: c_int) -> Res<Kind> {
    let f = lib.file(fd)?;
    match f.kind {
        Kind::Epoll(_) | Kind::Kqueue(_) => Ok(std::mem::replace(&mut f.kind, Kind::Busy)),
        Kind::Busy => Err(libc::EBUSY),
        _ => Err(libc::EINVAL),
    }
}

fn put(lib: &mut Lib, fd: c_int, k: Kind) {
    if let Ok(f) = lib.file(fd) {
        f.kind = k;
    }
}

/// Waits up to `timeout_ms` (negative: no limit, until `ff_stop_run`),
/// driving the stack, until `collect` finds something; returns its count.
///
/// Unless the engine made a pass since the previous wait returned (inside
/// `ff_run` its own pass just did), the wait first makes one (queued output,
/// device, timers), whatever the timeout (0 too: one pass does not block).
/// Without that, a program outside `ff_run` that leaves a level-triggered
/// registration ready (a listener it does not accept from yet, unread data)
/// gets it back at once from every wait while nothing reads the device: a
/// SYN or an ACK it waits for sits in the RX queue for good.
fn wait(lib: &mut Lib, timeout_ms: i64, collect: impl FnMut(&mut Lib) -> Res<usize>) -> Res<usize> {
    if lib.ran {
        lib.pump();
    } else {
        lib.push();
        lib.drive();
    }
    let r = wait_after_pass(lib, timeout_ms, collect);
    lib.ran = false;
    r
}

/// [`wait`] after its first pass: collects, then drives until `collect`
/// finds something or the timeout passes.
fn wait_after_pass(lib: &mut Lib, timeout_ms: i64, mut collect: impl FnMut(&mut Lib) -> Res<usize>) -> Res<usize> {
    let n = collect(lib)?;
    if n > 0 || timeout_ms == 0 {
        return Ok(n);
    }
    let start = std::time::Instant::now();
    loop {
        lib.push();
        lib.drive();
        let n = collect(lib)?;
        if n > 0 || lib.stopping() {
            return Ok(n);
        }
        if timeout_ms > 0 && start.elapsed() >= std::time::Duration::from_millis(timeout_ms as u64) {
            return Ok(0);
        }
    }
}

fn epoll_bits(r: &Ready) -> u32 {
    let mut b = 0;
    if r.rd {
        b |= EPOLLIN;
    }
    if r.wr {
        b |= EPOLLOUT;
    }
    if r.hup {
        b |= EPOLLHUP;
    }
    if r.rdhup {
        b |= EPOLLRDHUP;
    }
    if r.err != 0 {
        b |= EPOLLERR;
    }
    b
}

/// `int ff_epoll_create(int size)`: `size` is ignored, any value is
/// accepted (as F-Stack, whose own examples pass 0; Linux has ignored it
/// since 2.6.8 apart from refusing `size <= 0`).
#[no_mangle]
pub extern "C" fn ff_epoll_create(_size: c_int) -> c_int {
    entry("ff_epoll_create", -1, || with_lib(|lib| lib.open(Kind::Epoll(Box::default()))))
}

/// `int ff_epoll_ctl(int epfd, int op, int fd, struct epoll_event *event)`:
/// `EPOLL_CTL_ADD` (`EEXIST`), `EPOLL_CTL_MOD`/`DEL` (`ENOENT`); `fd` must
/// be a socket (`EPERM` otherwise, `EINVAL` if it is `epfd`).
///
/// # Safety
/// `event` is valid for ADD and MOD.
#[no_mangle]
pub unsafe extern "C" fn ff_epoll_ctl(epfd: c_int, op: c_int, fd: c_int, event: *mut epoll_event) -> c_int {
    entry("ff_epoll_ctl", -1, || {
        with_lib(|lib| {
            if epfd == fd {
                return Err(libc::EINVAL);
            }
            let set = lib.file_id(epfd)?;
            let file = lib.file_id(fd)?;
            let udp = match lib.files.get(file).map(|f| &f.kind) {
                Some(Kind::Tcp { .. }) => false,
                Some(Kind::Udp { .. }) => true,
                _ => return Err(libc::EPERM),
            };
            let ev = if op == libc::EPOLL_CTL_DEL {
                None
            } else if event.is_null() {
                return Err(libc::EFAULT);
            } else {
                // SAFETY: valid per the caller contract (checked non-null).
                Some(unsafe { event.read_unaligned() })
            };
            let ready = lib.ready(file).map(|r| epoll_bits(&r)).unwrap_or(0);
            let counters = lib.edges(file);
            let mut k = take(lib, epfd)?;
            // Files this set stops watching.
            let mut unwatch = Vec::new();
            let r = (|| {
                let Kind::Epoll(ep) = &mut k else { return Err(libc::EINVAL) };
                let mk = |e: epoll_event| {
                    let events = e.events;
                    // A registration that is ready now reports on the next
                    // wait, edge-triggered or not (as Linux).
                    let seen = if ready & events != 0 {
                        (counters.0.wrapping_sub(1), counters.1.wrapping_sub(1))
                    } else {
                        counters
                    };
                    EpReg { events, data: e.u64, seen, spent: false }
                };
                // Keyed by number and file: a registration left under this
                // number by a descriptor since closed (its file kept open by
                // a dup) is another file's and stays (Linux's ep_find).
                let key = (fd, file);
                match op {
                    libc::EPOLL_CTL_ADD => {
                        if ep.regs.contains_key(&key) {
                            return Err(libc::EEXIST);
                        }
                        ep.regs.insert(key, mk(ev.ok_or(libc::EFAULT)?));
                        ep.watch.add(file, fd, udp);
                    }
                    libc::EPOLL_CTL_MOD => {
                        let r = ep.regs.get_mut(&key).ok_or(libc::ENOENT)?;
                        *r = mk(ev.ok_or(libc::EFAULT)?);
                        ep.watch.add(file, fd, udp);
                    }
                    libc::EPOLL_CTL_DEL => {
                        ep.regs.remove(&key).ok_or(libc::ENOENT)?;
                        if ep.watch.remove(file, fd) {
                            unwatch.push(file);
                        }
                    }
                    _ => return Err(libc::EINVAL),
                }
                Ok(0)
            })();
            put(lib, epfd, k);
            for f in unwatch {
                lib.unwatch(set, f);
            }
            if r.is_ok() && op != libc::EPOLL_CTL_DEL {
                lib.watch_file(set, file);
            }
            r
        })
    })
}

/// `int ff_epoll_wait(int epfd, struct epoll_event *events, int maxevents,
/// int timeout)`: up to `maxevents` ready registrations; `timeout` in ms is
/// honoured (0 returns at once, -1 waits until something is ready or
/// `ff_stop_run`), the stack running meanwhile (at least one pass per wait
/// unless `ff_run` made one since the last wait).
///
/// # Safety
/// `events` has room for `maxevents` entries.
#[no_mangle]
pub unsafe extern "C" fn ff_epoll_wait(
    epfd: c_int,
    events: *mut epoll_event,
    maxevents: c_int,
    timeout: c_int,
) -> c_int {
    entry("ff_epoll_wait", -1, || {
        with_lib(|lib| {
            let max = usize::try_from(maxevents).ok().filter(|&m| m > 0).ok_or(libc::EINVAL)?;
            if events.is_null() {
                return Err(libc::EFAULT);
            }
            let set = lib.file_id(epfd)?;
            let mut k = take(lib, epfd)?;
            let r = {
                let Kind::Epoll(ep) = &mut k else {
                    put(lib, epfd, k);
                    return Err(libc::EINVAL);
                };
                wait(lib, i64::from(timeout), |lib| {
                    ep.watch.skip_read_rechecks(|f| lib.files.rd_quiet(f));
                    if ep.watch.quiet() && !lib.has_pending(set) {
                        return Ok(0); // nothing reported, nothing to look at again
                    }
                    let mut edged = lib.take_pending(set);
                    let cands = ep.watch.candidates(edged.drain(..));
                    lib.recycle_pending(set, edged);
                    let mut n = 0;
                    'files: for (i, &file) in cands.iter().enumerate() {
                        let Some((rd, wr, quiet)) = lib.candidate(file) else { continue };
                        let counters = (rd, wr);
                        // The watch changes below: its keys copied out.
                        for fd in ep.watch.keys_copy(file) {
                            let Some(reg) = ep.regs.get_mut(&(fd, file)) else { continue };
                            if reg.spent {
                                continue;
                            }
                            if quiet && reg.events & EPOLLOUT == 0 {
                                // Reads only, drained by a read, nothing
                                // reported since: no bit would be set.
                                continue;
                            }
                            if n == max {
                                // The caller's list is full: the rest first next time.
                                ep.watch.first(&cands[i..]);
                                break 'files;
                            }
                            if reg.events & EPOLLET != 0 && counters == reg.seen {
                                continue;
                            }
                            let Some(r) = lib.ready(file) else { continue };
                            let bits = epoll_bits(&r) & (reg.events | EPOLLERR | EPOLLHUP);
                            if bits == 0 {
                                continue;
                            }
                            reg.seen = counters;
                            if reg.events & EPOLLONESHOT != 0 {
                                reg.spent = true;
                            } else if reg.events & EPOLLET == 0 {
                                // Level-triggered: looked at again next wait.
                                if reg.events & EPOLLOUT == 0 {
                                    ep.watch.again_read(file);
                                } else {
                                    ep.watch.again(file);
                                }
                            }
                            // SAFETY: n < max and events has room for max entries.
                            unsafe { events.add(n).write_unaligned(epoll_event { events: bits, u64: reg.data }) };
                            n += 1;
                        }
                    }
                    ep.watch.recycle(cands);
                    Ok(n)
                })
            };
            put(lib, epfd, k);
            r.map(|n| n as c_int)
        })
    })
}

/// `int ff_kqueue(void)`.
#[no_mangle]
pub extern "C" fn ff_kqueue() -> c_int {
    entry("ff_kqueue", -1, || with_lib(|lib| lib.open(Kind::Kqueue(Box::default()))))
}

fn timeout_ms(ts: *const timespec) -> Res<i64> {
    if ts.is_null() {
        return Ok(-1);
    }
    // SAFETY: non-null timespec from the caller.
    let t = unsafe { ts.read_unaligned() };
    if t.tv_sec < 0 || !(0..1_000_000_000).contains(&t.tv_nsec) {
        return Err(libc::EINVAL);
    }
    Ok(t.tv_sec.saturating_mul(1000).saturating_add((t.tv_nsec + 999_999) / 1_000_000))
}

/// Applies one change; `Err(errno)` is reported per FreeBSD (an `EV_ERROR`
/// event when there is room, else the call fails).
fn apply(lib: &mut Lib, set: u64, kq: &mut Kqueue, c: &Kevent) -> Res<()> {
    let fd = c_int::try_from(c.ident).map_err(|_| libc::EBADF)?;
    if c.filter != EVFILT_READ && c.filter != EVFILT_WRITE {
        return Err(libc::EINVAL);
    }
    let key = (fd, c.filter);
    if c.flags & EV_DELETE != 0 {
        let n = kq.notes.remove(key).ok_or(libc::ENOENT)?;
        if kq.watch.remove(n.file, key) {
            lib.unwatch(set, n.file);
        }
        return Ok(());
    }
    let file = lib.file_id(fd)?;
    let udp = match lib.files.get(file).map(|f| &f.kind) {
        Some(Kind::Tcp { .. }) => false,
        Some(Kind::Udp { .. }) => true,
        _ => return Err(libc::EINVAL),
    };
    let (rd, wr) = lib.edges(file);
    let counter = if c.filter == EVFILT_READ { rd } else { wr };
    if c.flags & EV_ADD != 0 {
        let n = Knote {
            file,
            flags: c.flags,
            udata: c.udata as usize,
            enabled: c.flags & EV_DISABLE == 0,
            // EV_CLEAR reports what is ready now once, then changes only.
            seen: counter.wrapping_sub(1),
        };
        // The filter and descriptor were checked above: every key has an entry.
        let replaced = kq.notes.insert(key, n).map_err(|_| libc::EINVAL)?;
        if let Some(old) = replaced.map(|o| o.file).filter(|&f| f != file) {
            if kq.watch.remove(old, key) {
                lib.unwatch(set, old);
            }
        }
        kq.watch.add(file, key, udp);
        lib.watch_file(set, file);
        return Ok(());
    }
    let n = kq.notes.get_mut(key).ok_or(libc::ENOENT)?;
    if c.flags & EV_ENABLE != 0 {
        n.enabled = true;
        kq.watch.again(n.file);
    }
    if c.flags & EV_DISABLE != 0 {
        n.enabled = false;
    }
    Ok(())
}

/// The events of a kqueue ready now (up to `max`), via `out`: looks at the
/// candidate files only ([`Watch::candidates`]).
fn kq_collect(lib: &mut Lib, set: u64, kq: &mut Kqueue, max: usize, out: &mut Vec<Kevent>) {
    // Level-triggered readers drained since: nothing to look at again.
    kq.watch.skip_read_rechecks(|f| lib.files.rd_quiet(f));
    if kq.watch.quiet() && !lib.has_pending(set) {
        return; // nothing reported, nothing level-triggered to look at again
    }
    let mut edged = lib.take_pending(set);
    let cands = kq.watch.candidates(edged.drain(..));
    lib.recycle_pending(set, edged);
    let mut gone = Vec::new();
    'files: for (i, &file) in cands.iter().enumerate() {
        let Some((rd, wr, quiet)) = lib.candidate(file) else { continue };
        // The watch changes below: its keys copied out.
        for (fd, filter) in kq.watch.keys_copy(file) {
            if filter == EVFILT_READ && quiet {
                continue; // drained by a read, nothing reported since: not ready
            }
            let Some(n) = kq.notes.get_mut((fd, filter)) else { continue };
            if n.file != file || !n.enabled {
                continue;
            }
            if out.len() >= max {
                // The caller's list is full: the rest first next time.
                kq.watch.first(&cands[i..]);
                break 'files;
            }
            let counter = if filter == EVFILT_READ { rd } else { wr };
            if n.flags & EV_CLEAR != 0 && counter == n.seen {
                continue;
            }
            let Some(r) = lib.ready(file) else { continue };
            let (hit, data) = if filter == EVFILT_READ { (r.rd, r.nread) } else { (r.wr, r.nwrite) };
            let eof = r.rdhup || r.hup || r.err != 0;
            if !hit && !eof {
                continue;
            }
            n.seen = counter;
            let mut flags = n.flags & (EV_ONESHOT | EV_CLEAR | EV_DISPATCH);
            if eof {
                flags |= EV_EOF;
            }
            out.push(Kevent {
                ident: fd as usize,
                filter,
                flags,
                fflags: r.err as u32,
                data: data.min(isize::MAX as usize) as isize,
                udata: n.udata as *mut c_void,
            });
            if n.flags & EV_ONESHOT != 0 {
                gone.push((fd, filter, file));
            } else if n.flags & EV_DISPATCH != 0 {
                n.enabled = false;
            } else if n.flags & EV_CLEAR == 0 {
                // Level-triggered: looked at again next wait.
                if filter == EVFILT_READ {
                    kq.watch.again_read(file);
                } else {
                    kq.watch.again(file);
                }
            }
        }
    }
    kq.watch.recycle(cands);
    for (fd, filter, file) in gone {
        kq.notes.remove((fd, filter));
        if kq.watch.remove(file, (fd, filter)) {
            lib.unwatch(set, file);
        }
    }
}

/// Whether kqueue `set` has nothing to look at after the engine's latest
/// reports (pumped here): no file reported since it last looked, none to
/// look at again (level-triggered, just added, UDP) but level-triggered
/// readers a read has drained since. `false` for anything else (not a
/// kqueue, or one being worked on).
fn quiet_kqueue(lib: &mut Lib, set: u64) -> bool {
    lib.pump();
    match lib.files.get(set) {
        Some(f) => {
            f.pending.is_empty()
                && matches!(&f.kind, Kind::Kqueue(kq)
                    if kq.watch.quiet_but_for(|x| lib.files.rd_quiet(x)))
        }
        None => false,
    }
}

/// The body of `ff_kevent`: changes, then up to `nevents` events.
fn kevent_into(
    lib: &mut Lib,
    kqfd: c_int,
    changes: &[Kevent],
    nevents: usize,
    timeout: i64,
    out: &mut Vec<Kevent>,
) -> Res<()> {
    let set = lib.file_id(kqfd)?;
    if changes.is_empty() && nevents > 0 && timeout == 0 && lib.ran && quiet_kqueue(lib, set) {
        // What `wait` would do, for the common poll of a loop callback
        // (`ff_run` just made a pass): nothing reported since the kqueue
        // last looked and nothing to look at again, so no event.
        lib.ran = false;
        return Ok(());
    }
    // FreeBSD: kevent on a descriptor that is not a kqueue is EBADF.
    if !matches!(lib.file(kqfd)?.kind, Kind::Kqueue(_) | Kind::Busy) {
        return Err(libc::EBADF);
    }
    let mut k = take(lib, kqfd)?;
    let r = (|| {
        let Kind::Kqueue(kq) = &mut k else { return Err(libc::EINVAL) };
        for c in changes {
            let res = apply(lib, set, kq, c);
            if res.is_err() || c.flags & EV_RECEIPT != 0 {
                let e = res.err().unwrap_or(0);
                if out.len() >= nevents {
                    return Err(e);
                }
                out.push(Kevent { flags: EV_ERROR, data: e as isize, ..*c });
            }
        }
        if !out.is_empty() || nevents == 0 {
            return Ok(());
        }
        wait(lib, timeout, |lib| {
            kq_collect(lib, set, kq, nevents, out);
            Ok(out.len())
        })?;
        Ok(())
    })();
    put(lib, kqfd, k);
    r
}

/// `int ff_kevent(int kq, const struct kevent *changelist, int nchanges,
/// struct kevent *eventlist, int nevents, const struct timespec *timeout)`:
/// `EVFILT_READ` (`data`: bytes readable, or a listener's queued
/// connections) and `EVFILT_WRITE` (`data`: send space) with `EV_ADD`,
/// `EV_DELETE`, `EV_ENABLE`, `EV_DISABLE`, `EV_ONESHOT`, `EV_CLEAR`,
/// `EV_DISPATCH`, `EV_RECEIPT`; `EV_EOF` (with the error in `fflags`) when
/// the peer closed or the connection failed. `timeout` is honoured (null:
/// wait until something is ready or `ff_stop_run`).
///
/// # Safety
/// `changelist` holds `nchanges` entries; `eventlist` has room for `nevents`.
#[no_mangle]
pub unsafe extern "C" fn ff_kevent(
    kq: c_int,
    changelist: *const Kevent,
    nchanges: c_int,
    eventlist: *mut Kevent,
    nevents: c_int,
    timeout: *const timespec,
) -> c_int {
    entry("ff_kevent", -1, || {
        with_lib(|lib| {
            // SAFETY: forwarded caller contract.
            let (changes, ne) = unsafe { lists(changelist, nchanges, eventlist, nevents) }?;
            let t = timeout_ms(timeout)?;
            // The event list of the last call serves again (no allocation
            // per call in steady state).
            let mut out = std::mem::take(&mut lib.kevents);
            out.clear();
            let r = kevent_into(lib, kq, changes, ne, t, &mut out).map(|()| {
                for (i, e) in out.iter().enumerate() {
                    // SAFETY: i < nevents (kevent_into never returns more).
                    unsafe { eventlist.add(i).write_unaligned(*e) };
                }
                out.len() as c_int
            });
            lib.kevents = out;
            r
        })
    })
}

/// # Safety
/// As [`ff_kevent`].
unsafe fn lists<'a>(
    changelist: *const Kevent,
    nchanges: c_int,
    eventlist: *mut Kevent,
    nevents: c_int,
) -> Res<(&'a [Kevent], usize)> {
    let nc = usize::try_from(nchanges).map_err(|_| libc::EINVAL)?;
    let ne = usize::try_from(nevents).map_err(|_| libc::EINVAL)?;
    if (nc > 0 && changelist.is_null()) || (ne > 0 && eventlist.is_null()) {
        return Err(libc::EFAULT);
    }
    // SAFETY: caller contract.
    let changes = if nc == 0 { &[][..] } else { unsafe { std::slice::from_raw_parts(changelist, nc) } };
    Ok((changes, ne))
}

/// `do_each` of [`ff_kevent_do_each`].
pub type DoEach = unsafe extern "C" fn(*mut *mut c_void, *mut Kevent);

/// `int ff_kevent_do_each(int kq, const struct kevent *changelist, int
/// nchanges, void *eventlist, int nevents, const struct timespec *timeout,
/// void (*do_each)(void **, struct kevent *))`: as [`ff_kevent`], but each
/// event is handed to `do_each(&eventlist, &ev)` instead of being stored
/// (the callback may call `ff_*` functions).
///
/// # Safety
/// `changelist` holds `nchanges` entries; `do_each` is valid.
#[no_mangle]
pub unsafe extern "C" fn ff_kevent_do_each(
    kq: c_int,
    changelist: *const Kevent,
    nchanges: c_int,
    eventlist: *mut c_void,
    nevents: c_int,
    timeout: *const timespec,
    do_each: Option<DoEach>,
) -> c_int {
    let mut out = Vec::new();
    let r = entry("ff_kevent_do_each", -1, || {
        with_lib(|lib| {
            let f = do_each.ok_or(libc::EFAULT)?;
            let _ = f;
            // The event list is the callback's business: only changes are read.
            // SAFETY: forwarded caller contract.
            let (changes, ne) = unsafe { lists(changelist, nchanges, std::ptr::null_mut(), 0) }?;
            let ne = ne.max(usize::try_from(nevents).map_err(|_| libc::EINVAL)?);
            let t = timeout_ms(timeout)?;
            kevent_into(lib, kq, changes, ne, t, &mut out)?;
            Ok(out.len() as c_int)
        })
    });
    if r > 0 {
        if let Some(f) = do_each {
            let mut el = eventlist;
            for e in out.iter_mut() {
                // SAFETY: the application's callback with its own list pointer.
                unsafe { f(&mut el, e) };
            }
        }
    }
    r
}

/// `int ff_poll(struct pollfd fds[], nfds_t nfds, int timeout)`: `POLLIN`,
/// `POLLOUT`, `POLLRDHUP`; `POLLERR`, `POLLHUP`, `POLLNVAL` always. At most
/// 65,536 entries (`EINVAL`).
///
/// # Safety
/// `fds` holds `nfds` entries.
#[no_mangle]
pub unsafe extern "C" fn ff_poll(fds: *mut pollfd, nfds: libc::nfds_t, timeout: c_int) -> c_int {
    entry("ff_poll", -1, || {
        with_lib(|lib| {
            let n = usize::try_from(nfds).ok().filter(|&n| n <= 65_536).ok_or(libc::EINVAL)?;
            if n > 0 && fds.is_null() {
                return Err(libc::EFAULT);
            }
            // SAFETY: caller contract.
            let fds = if n == 0 { &mut [][..] } else { unsafe { std::slice::from_raw_parts_mut(fds, n) } };
            wait(lib, i64::from(timeout), |lib| {
                let mut hits = 0;
                for p in fds.iter_mut() {
                    p.revents = 0;
                    if p.fd < 0 {
                        continue;
                    }
                    let Ok(id) = lib.file_id(p.fd) else {
                        p.revents = libc::POLLNVAL;
                        hits += 1;
                        continue;
                    };
                    let Some(r) = lib.ready(id) else { continue };
                    let b = epoll_bits(&r);
                    let want = p.events as u32 | EPOLLERR | EPOLLHUP;
                    p.revents = (b & want) as i16;
                    if p.revents != 0 {
                        hits += 1;
                    }
                }
                Ok(hits)
            })
            .map(|n| n as c_int)
        })
    })
}

/// `int ff_select(int nfds, fd_set *readfds, fd_set *writefds, fd_set
/// *exceptfds, struct timeval *timeout)`: descriptors below `nfds` (at most
/// `FD_SETSIZE`); `exceptfds` reports errors.
///
/// # Safety
/// The sets are null or valid `fd_set`s; `timeout` null or valid.
#[no_mangle]
pub unsafe extern "C" fn ff_select(
    nfds: c_int,
    readfds: *mut libc::fd_set,
    writefds: *mut libc::fd_set,
    exceptfds: *mut libc::fd_set,
    timeout: *mut libc::timeval,
) -> c_int {
    entry("ff_select", -1, || {
        with_lib(|lib| {
            if !(0..=libc::FD_SETSIZE as c_int).contains(&nfds) {
                return Err(libc::EINVAL);
            }
            let t = if timeout.is_null() {
                -1
            } else {
                // SAFETY: valid timeval.
                let tv = unsafe { timeout.read_unaligned() };
                if tv.tv_sec < 0 || tv.tv_usec < 0 {
                    return Err(libc::EINVAL);
                }
                tv.tv_sec.saturating_mul(1000).saturating_add((tv.tv_usec + 999) / 1000)
            };
            // SAFETY: fd_set is plain data.
            let copy = |s: *mut libc::fd_set| (!s.is_null()).then(|| unsafe { s.read_unaligned() });
            let (r0, w0, e0) = (copy(readfds), copy(writefds), copy(exceptfds));
            for fd in 0..nfds {
                // SAFETY: fd < nfds <= FD_SETSIZE.
                let asked =
                    [&r0, &w0, &e0].iter().any(|s| s.as_ref().is_some_and(|s| unsafe { libc::FD_ISSET(fd, s) }));
                if asked && lib.file_id(fd).is_err() {
                    return Err(libc::EBADF);
                }
            }
            let mut outs: [Option<libc::fd_set>; 3] = [r0, w0, e0];
            let n = wait(lib, t, |lib| {
                let mut hits = 0;
                outs = [r0, w0, e0];
                for s in outs.iter_mut().flatten() {
                    // SAFETY: fd_set is plain data.
                    unsafe { libc::FD_ZERO(s) };
                }
                for fd in 0..nfds {
                    let Ok(id) = lib.file_id(fd) else { continue };
                    let Some(r) = lib.ready(id) else { continue };
                    let bits = [r.rd || r.hup, r.wr, r.err != 0];
                    for (i, src) in [&r0, &w0, &e0].iter().enumerate() {
                        // SAFETY: fd < nfds <= FD_SETSIZE.
                        if src.as_ref().is_some_and(|s| unsafe { libc::FD_ISSET(fd, s) }) && bits[i] {
                            if let Some(o) = outs[i].as_mut() {
                                // SAFETY: as above.
                                unsafe { libc::FD_SET(fd, o) };
                                hits += 1;
                            }
                        }
                    }
                }
                Ok(hits)
            })?;
            for (dst, o) in [readfds, writefds, exceptfds].into_iter().zip(outs) {
                if let (false, Some(o)) = (dst.is_null(), o) {
                    // SAFETY: valid fd_set pointer from the caller.
                    unsafe { dst.write_unaligned(o) };
                }
            }
            Ok(n as c_int)
        })
    })
}
