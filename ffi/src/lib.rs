//! F-Stack's C API on zcstack: `libzcstack.so` / `libzcstack.a` and the
//! headers in `ffi/include/` (`ff_api.h`, `ff_config.h`, `ff_epoll.h`,
//! `ff_event.h`, `ff_errno.h`, `ff_log.h`).
//!
//! The model is F-Stack's: one process per lcore. `ff_init` loads the
//! config.ini (`-c FILE`, `-t primary`, `-p N`), starts the
//! [`dpdk_glue::Runtime`] of process N on the calling thread, and from then
//! on every `ff_*` call must come from that thread (others get `EPERM`).
//! `ff_run` drives the stack and calls the application's loop function once
//! per pass. Descriptors are zcstack's own small integers, not kernel fds.
//!
//! Safety at the boundary: every exported function runs its body under
//! `catch_unwind` ([`state::entry`]); a panic is logged and becomes `-1` with
//! `errno = EIO`. Pointers from C are checked for null and, where a length
//! comes with them, used only within it.

pub mod errno;
mod events;
mod files;
mod hooks;
mod knotes;
mod log;
mod slot;
mod sock;
mod sockopt;
pub mod state;
mod stubs;
mod watch;
mod zc;
