/* zcstack's ff_event.h: kqueue as F-Stack exposes it (FreeBSD's struct
 * kevent and filter/flag values). Implemented: EVFILT_READ (data: bytes
 * readable, or a listener's queued connections), EVFILT_WRITE (data: send
 * space); EV_ADD, EV_DELETE, EV_ENABLE, EV_DISABLE, EV_ONESHOT, EV_CLEAR
 * (edge), EV_DISPATCH, EV_RECEIPT; EV_EOF out (fflags = errno of a failed
 * connection), EV_ERROR out (data = errno of a failed change). Other
 * filters: EV_ERROR with EINVAL. */
#ifndef _FSTACK_EVENT_H
#define _FSTACK_EVENT_H

#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#define EVFILT_READ     (-1)
#define EVFILT_WRITE    (-2)
#define EVFILT_AIO      (-3)
#define EVFILT_VNODE    (-4)
#define EVFILT_PROC     (-5)
#define EVFILT_SIGNAL   (-6)
#define EVFILT_TIMER    (-7)
#define EVFILT_FS       (-9)
#define EVFILT_LIO      (-10)
#define EVFILT_USER     (-11)
#define EVFILT_SYSCOUNT 11

struct kevent {
    uintptr_t ident;
    short filter;
    unsigned short flags;
    unsigned int fflags;
    intptr_t data;
    void *udata;
};

#define EV_SET(kevp_, a, b, c, d, e, f) do { \
    struct kevent *ev_p_ = (kevp_);          \
    ev_p_->ident = (a);                      \
    ev_p_->filter = (b);                     \
    ev_p_->flags = (c);                      \
    ev_p_->fflags = (d);                     \
    ev_p_->data = (e);                       \
    ev_p_->udata = (f);                      \
} while (0)

#define EV_ADD      0x0001
#define EV_DELETE   0x0002
#define EV_ENABLE   0x0004
#define EV_DISABLE  0x0008
#define EV_ONESHOT  0x0010
#define EV_CLEAR    0x0020
#define EV_RECEIPT  0x0040
#define EV_DISPATCH 0x0080
#define EV_SYSFLAGS 0xF000
#define EV_DROP     0x1000
#define EV_FLAG1    0x2000
#define EV_EOF      0x8000
#define EV_ERROR    0x4000

#define NOTE_LOWAT  0x0001

#ifdef __cplusplus
}
#endif
#endif
