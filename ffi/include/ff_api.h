/* zcstack's ff_api.h: F-Stack 1.25's C API on zcstack, written for zcstack
 * (declarations follow F-Stack's public signatures).
 *
 * Rules (enforced):
 * - One stack per process, on the thread that called ff_init; every call
 *   from another thread fails with EPERM (and changes nothing). Calls
 *   before ff_init or after ff_run returned: EPERM.
 * - Descriptors are zcstack's own small integers (from 3), not kernel fds.
 * - Nothing blocks: every socket is non-blocking, with or without
 *   SOCK_NONBLOCK; clearing O_NONBLOCK (ff_fcntl F_SETFL) or FIONBIO 0
 *   fails with EINVAL.
 * - IPv4 only: AF_INET6 (Linux 10 or FreeBSD 28) gives EAFNOSUPPORT.
 * - Errors: -1 with errno set to Linux values.
 * - Not implemented (fail with ENOSYS): ff_sysctl, ff_route_ctl,
 *   ff_rtioctl, ff_ngctl, ff_ioctl_freebsd, ff_setsockopt_freebsd,
 *   ff_getsockopt_freebsd, ff_pthread_create, ff_pthread_join,
 *   ff_zc_mbuf_read. ff_regist_pcblddr_fun is ignored; ff_get_traffic
 *   zeroes its buffer.
 */
#ifndef _FSTACK_API_H
#define _FSTACK_API_H

#include <stdint.h>
#include <stdarg.h>
#include <pthread.h>
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/select.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <poll.h>
#include <fcntl.h>
#include <netinet/in.h>

#include "ff_event.h"
#include "ff_errno.h"

#ifdef __cplusplus
extern "C" {
#endif

struct linux_sockaddr {
    short sa_family;
    char sa_data[14];
};

#define AF_INET6_LINUX    10
#define PF_INET6_LINUX    AF_INET6_LINUX
#define AF_INET6_FREEBSD  28
#define PF_INET6_FREEBSD  AF_INET6_FREEBSD

typedef int (*loop_func_t)(void *arg);

/* -c/--conf FILE (default config.ini), -t/--proc-type primary|secondary|auto,
 * -p/--proc-id N. 0, or -1: EALREADY (called twice), EINVAL (arguments or
 * config; the reason is printed), ENODEV (DPDK did not start). */
int ff_init(int argc, char * const argv[]);
/* Calls loop(arg) once per pass until ff_stop_run, SIGINT or SIGTERM, then
 * resets open connections and closes the port. */
void ff_run(loop_func_t loop, void *arg);
void ff_stop_run(void);

/* Variadic entry points: thin wrappers over fixed-argument functions. */
int zcstack_fcntl(int fd, int cmd, long arg);
int zcstack_ioctl(int fd, unsigned long request, void *argp);
int zcstack_ioctl_freebsd(int fd, unsigned long request, void *argp);

/* F_GETFL, F_SETFL (O_NONBLOCK must stay set), F_GETFD, F_SETFD. */
static inline int ff_fcntl(int fd, int cmd, ...)
{
    va_list ap;
    long arg;
    va_start(ap, cmd);
    arg = (cmd == F_SETFL || cmd == F_SETFD) ? va_arg(ap, long) : 0;
    va_end(ap);
    return zcstack_fcntl(fd, cmd, arg);
}

/* FIONBIO (int *, non-zero), FIONREAD (int *). Others: ENOTTY. */
static inline int ff_ioctl(int fd, unsigned long request, ...)
{
    va_list ap;
    void *argp;
    va_start(ap, request);
    argp = va_arg(ap, void *);
    va_end(ap);
    return zcstack_ioctl(fd, request, argp);
}

/* ENOSYS. */
static inline int ff_ioctl_freebsd(int fd, unsigned long request, ...)
{
    va_list ap;
    void *argp;
    va_start(ap, request);
    argp = va_arg(ap, void *);
    va_end(ap);
    return zcstack_ioctl_freebsd(fd, request, argp);
}

/* ENOSYS: there are no FreeBSD sysctls ([freebsd.sysctl] is read at start). */
int ff_sysctl(const int *name, unsigned int namelen, void *oldp, size_t *oldlenp,
    const void *newp, size_t newlen);

int ff_socket(int domain, int type, int protocol);
/* SOL_SOCKET: SO_REUSEADDR, SO_KEEPALIVE, SO_LINGER, SO_SNDBUF, SO_RCVBUF,
 * SO_ERROR and SO_TYPE (get); IPPROTO_TCP: TCP_NODELAY, TCP_MAXSEG.
 * Others: ENOPROTOOPT. */
int ff_setsockopt(int s, int level, int optname, const void *optval, socklen_t optlen);
int ff_getsockopt(int s, int level, int optname, void *optval, socklen_t *optlen);

int ff_listen(int s, int backlog);
/* The port is taken at ff_listen/ff_connect (EADDRINUSE there). */
int ff_bind(int s, const struct linux_sockaddr *addr, socklen_t addrlen);
int ff_accept(int s, struct linux_sockaddr *addr, socklen_t *addrlen);
int ff_accept4(int s, struct linux_sockaddr *addr, socklen_t *addrlen, int flags);
/* TCP: -1 EINPROGRESS; then EALREADY, EISCONN, or the failure (ECONNREFUSED ...). */
int ff_connect(int s, const struct linux_sockaddr *name, socklen_t namelen);
int ff_close(int fd);
int ff_shutdown(int s, int how);
int ff_getpeername(int s, struct linux_sockaddr *name, socklen_t *namelen);
int ff_getsockname(int s, struct linux_sockaddr *name, socklen_t *namelen);

ssize_t ff_read(int d, void *buf, size_t nbytes);
ssize_t ff_readv(int fd, const struct iovec *iov, int iovcnt);
/* Returns the bytes that fit in the send queue (-1 EAGAIN if none). With
 * buf = m.bsd_mbuf of a struct ff_zc_mbuf and nbytes = the bytes written
 * into it, the chain is queued without a copy; a partial send returns the
 * count and the chain keeps the unsent tail: call ff_write(fd, m.bsd_mbuf,
 * nbytes - sent) again. */
ssize_t ff_write(int fd, const void *buf, size_t nbytes);
ssize_t ff_writev(int fd, const struct iovec *iov, int iovcnt);
ssize_t ff_send(int s, const void *buf, size_t len, int flags);
ssize_t ff_sendto(int s, const void *buf, size_t len, int flags,
    const struct linux_sockaddr *to, socklen_t tolen);
ssize_t ff_sendmsg(int s, const struct msghdr *msg, int flags);
/* MSG_PEEK honoured. */
ssize_t ff_recv(int s, void *buf, size_t len, int flags);
ssize_t ff_recvfrom(int s, void *buf, size_t len, int flags,
    struct linux_sockaddr *from, socklen_t *fromlen);
ssize_t ff_recvmsg(int s, struct msghdr *msg, int flags);

/* Timeouts are honoured; the stack runs while waiting. */
int ff_select(int nfds, fd_set *readfds, fd_set *writefds, fd_set *exceptfds,
    struct timeval *timeout);
int ff_poll(struct pollfd fds[], nfds_t nfds, int timeout);

int ff_kqueue(void);
/* timeout NULL waits until something is ready (or ff_stop_run). */
int ff_kevent(int kq, const struct kevent *changelist, int nchanges,
    struct kevent *eventlist, int nevents, const struct timespec *timeout);
int ff_kevent_do_each(int kq, const struct kevent *changelist, int nchanges,
    void *eventlist, int nevents, const struct timespec *timeout,
    void (*do_each)(void **, struct kevent *));

/* The system's wall clock. */
int ff_gettimeofday(struct timeval *tv, void *tz);

int ff_dup(int oldfd);
int ff_dup2(int oldfd, int newfd);

/* ENOSYS: one stack per lcore thread. */
int ff_pthread_create(pthread_t *thread, const pthread_attr_t *attr,
    void *(*start_routine)(void *), void *arg);
int ff_pthread_join(pthread_t thread, void **retval);

int ff_fdisused(int fd);
int ff_getmaxfd(void);
/* Not available: zeroes the 32-byte buffer. */
void ff_get_traffic(void *buffer);

enum FF_ROUTE_CTL { FF_ROUTE_ADD, FF_ROUTE_DEL, FF_ROUTE_CHANGE };
enum FF_ROUTE_FLAG { FF_RTF_HOST, FF_RTF_GATEWAY };
/* ENOSYS: one interface, no routing table. */
int ff_route_ctl(enum FF_ROUTE_CTL req, enum FF_ROUTE_FLAG flag,
    struct linux_sockaddr *dst, struct linux_sockaddr *gw,
    struct linux_sockaddr *netmask);

#define FF_DISPATCH_ERROR (-1)
#define FF_DISPATCH_RESPONSE (-2)
/* Sees each received frame (a writable copy with room up to 9234 bytes) on
 * queue 0 of 1: return 0 to hand it to the stack, FF_DISPATCH_ERROR to drop
 * it, FF_DISPATCH_RESPONSE to send the rewritten *len bytes back out; other
 * queue ids are dropped (one queue per process). */
typedef int (*dispatch_func_t)(void *data, uint16_t *len, uint16_t queue_id, uint16_t nb_queues);
void ff_regist_packet_dispatcher(dispatch_func_t func);
/* Copies a whole Ethernet frame (14..9234 bytes) onto this process's port.
 * 0, or -1 with EINVAL (bad length, pointer or port) or ENOBUFS (port full). */
int ff_dpdk_raw_packet_send(void *data, int total, uint16_t port_id);

typedef int (*pcblddr_func_t)(uint16_t family, void *dst_addr, uint16_t dst_port, void *src_addr);
/* Ignored: one local address. */
void ff_regist_pcblddr_fun(pcblddr_func_t func);

/* ENOSYS: FreeBSD option numbers and tools. */
int ff_setsockopt_freebsd(int s, int level, int optname, const void *optval, socklen_t optlen);
int ff_getsockopt_freebsd(int s, int level, int optname, void *optval, socklen_t *optlen);
int ff_rtioctl(int fib, void *data, unsigned *plen, unsigned maxlen);
enum FF_NGCTL_CMD { NGCTL_SOCKET, NGCTL_BIND, NGCTL_CONNECT, NGCTL_SEND, NGCTL_RECV, NGCTL_CLOSE };
int ff_ngctl(int cmd, void *data);

struct ff_zc_mbuf {
    void *bsd_mbuf;     /* the chain (zcstack's handle) */
    void *bsd_mbuf_off; /* same as bsd_mbuf */
    int off;            /* bytes written so far */
    int len;            /* bytes reserved */
};
/* Reserves len bytes of page buffers: 0, or -1 EINVAL / ENOBUFS. */
int ff_zc_mbuf_get(struct ff_zc_mbuf *m, int len);
/* Appends len bytes (repeatable; the total stays <= m->len, else EINVAL). */
int ff_zc_mbuf_write(struct ff_zc_mbuf *m, const char *data, int len);
/* ENOSYS (as in F-Stack). */
int ff_zc_mbuf_read(struct ff_zc_mbuf *m, const char *data, int len);

#ifdef __cplusplus
}
#endif
#endif
