/* Error paths of the C API; prints one PASS/FAIL line per check and
 * "ERRORS passed=N failed=M". Usage: errors -c config.ini */
#include <stdio.h>
#include <string.h>
#include <errno.h>
#include <pthread.h>
#include <arpa/inet.h>
#include <sys/ioctl.h>
#include <netinet/tcp.h>

#include "ff_config.h"
#include "ff_api.h"
#include "ff_epoll.h"
#include "ff_event.h"

static int passed, failed;

static void expect(const char *what, int rc, int want_errno)
{
    int e = errno;
    if (rc == -1 && e == want_errno) {
        printf("PASS %s: -1 errno %d (%s)\n", what, e, strerror(e));
        passed++;
    } else {
        printf("FAIL %s: rc %d errno %d (%s), wanted -1 errno %d (%s)\n", what, rc, e, strerror(e), want_errno,
            strerror(want_errno));
        failed++;
    }
}

static void *other_thread(void *arg)
{
    int *rc = arg;
    rc[0] = ff_socket(AF_INET, SOCK_STREAM, 0);
    rc[1] = errno;
    rc[2] = ff_close(3);
    rc[3] = errno;
    return NULL;
}

static int stop_at_once(void *arg)
{
    (void)arg;
    ff_stop_run();
    return 0;
}

int main(int argc, char *argv[])
{
    char *missing[] = {argv[0], "-c", "/nonexistent/zcstack-missing.ini", NULL};
    expect("ff_init with a missing config file", ff_init(3, missing), EINVAL);
    errno = 0;
    expect("ff_socket before ff_init", ff_socket(AF_INET, SOCK_STREAM, 0), EPERM);
    if (ff_init(argc, argv) != 0) {
        printf("FAIL ff_init with %s: %s\n", argc > 2 ? argv[2] : "(none)", strerror(errno));
        return 1;
    }
    expect("ff_init twice", ff_init(argc, argv), EALREADY);
    char buf[16];
    expect("ff_read of a bad fd", (int)ff_read(12345, buf, sizeof(buf)), EBADF);
    expect("ff_close of a bad fd", ff_close(-1), EBADF);
    expect("ff_socket(AF_INET6)", ff_socket(AF_INET6, SOCK_STREAM, 0), EAFNOSUPPORT);
    expect("ff_socket(AF_INET6_FREEBSD)", ff_socket(AF_INET6_FREEBSD, SOCK_STREAM, 0), EAFNOSUPPORT);
    expect("ff_socket(SOCK_RAW)", ff_socket(AF_INET, SOCK_RAW, 0), EPROTONOSUPPORT);
    expect("ff_socket(unknown type 99)", ff_socket(AF_INET, 99, 0), EINVAL);
    int s = ff_socket(AF_INET, SOCK_STREAM, 0);
    if (s < 0) {
        printf("FAIL ff_socket: %s\n", strerror(errno));
        return 1;
    }
    expect("ff_fcntl(F_SETFL, 0): blocking refused", ff_fcntl(s, F_SETFL, 0), EINVAL);
    int off = 0;
    expect("ff_ioctl(FIONBIO, 0): blocking refused", ff_ioctl(s, FIONBIO, &off), EINVAL);
    struct sockaddr_in6 a6;
    memset(&a6, 0, sizeof(a6));
    a6.sin6_family = AF_INET6;
    expect("ff_bind with an IPv6 address", ff_bind(s, (struct linux_sockaddr *)&a6, sizeof(a6)), EAFNOSUPPORT);
    struct sockaddr_in a;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons(8080);
    expect("ff_bind with a short address", ff_bind(s, (struct linux_sockaddr *)&a, 4), EINVAL);
    expect("ff_bind with a null address", ff_bind(s, NULL, sizeof(a)), EFAULT);
    expect("ff_connect with addrlen (socklen_t)-1", ff_connect(s, (struct linux_sockaddr *)&a, (socklen_t)-1), EINVAL);
    expect("ff_connect with addrlen 129", ff_connect(s, (struct linux_sockaddr *)&a, 129), EINVAL);
    expect("ff_send(MSG_OOB)", (int)ff_send(s, "x", 1, MSG_OOB), EOPNOTSUPP);
    {
        char cbuf[CMSG_SPACE(sizeof(int))];
        memset(cbuf, 0, sizeof(cbuf));
        struct iovec iov = {.iov_base = "x", .iov_len = 1};
        struct msghdr m;
        memset(&m, 0, sizeof(m));
        m.msg_iov = &iov;
        m.msg_iovlen = 1;
        m.msg_control = cbuf;
        m.msg_controllen = sizeof(cbuf);
        struct cmsghdr *c = CMSG_FIRSTHDR(&m);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        expect("ff_sendmsg with control data (SCM_RIGHTS)", (int)ff_sendmsg(s, &m, 0), EINVAL);
    }
    {
        int ty = 0;
        socklen_t huge = (socklen_t)-1;
        expect("ff_getsockopt with optlen (socklen_t)-1", ff_getsockopt(s, SOL_SOCKET, SO_TYPE, &ty, &huge), EINVAL);
        short sty = 0;
        socklen_t two = 2;
        int rc = ff_getsockopt(s, SOL_SOCKET, SO_TYPE, &sty, &two);
        if (rc == 0 && two == 2 && sty == SOCK_STREAM) {
            printf("PASS ff_getsockopt(SO_TYPE) into 2 bytes truncates like Linux\n");
            passed++;
        } else {
            printf("FAIL ff_getsockopt(SO_TYPE) into 2 bytes: rc %d optlen %u value %d (%s)\n", rc, two, sty,
                   strerror(errno));
            failed++;
        }
    }
    {
        struct kevent kev;
        EV_SET(&kev, s, EVFILT_READ, EV_ADD, 0, 0, NULL);
        expect("ff_kevent on a socket fd", ff_kevent(s, &kev, 1, NULL, 0, NULL), EBADF);
    }
    expect("ff_listen before bind", ff_listen(s, 8), EINVAL);
    expect("ff_write on an unconnected socket", (int)ff_write(s, "x", 1), ENOTCONN);
    expect("ff_accept on a non-listener", ff_accept(s, NULL, NULL), EINVAL);
    int v = 1;
    expect("ff_setsockopt unknown option", ff_setsockopt(s, SOL_SOCKET, SO_BROADCAST, &v, sizeof(v)), ENOPROTOOPT);
    expect("ff_setsockopt short value", ff_setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &v, 1), EINVAL);
    expect("ff_epoll_ctl on a non-epoll fd", ff_epoll_ctl(s, EPOLL_CTL_ADD, s, NULL), EINVAL);
    int ep = ff_epoll_create(1);
    expect("ff_epoll_wait with a null list", ff_epoll_wait(ep, NULL, 4, 0), EFAULT);
    expect("ff_epoll_ctl MOD of an unregistered fd", ff_epoll_ctl(ep, EPOLL_CTL_MOD, s, &(struct epoll_event){0}),
        ENOENT);
    struct ff_zc_mbuf zc;
    memset(&zc, 0, sizeof(zc));
    expect("ff_zc_mbuf_get(len 0)", ff_zc_mbuf_get(&zc, 0), EINVAL);
    if (ff_zc_mbuf_get(&zc, 8) == 0)
        expect("ff_zc_mbuf_write past len", ff_zc_mbuf_write(&zc, "0123456789", 10), EINVAL);
    expect("ff_sysctl (ENOSYS)", ff_sysctl(NULL, 0, NULL, NULL, NULL, 0), ENOSYS);
    expect("ff_route_ctl (ENOSYS)", ff_route_ctl(FF_ROUTE_ADD, FF_RTF_HOST, NULL, NULL, NULL), ENOSYS);
    int rc[4] = {0, 0, 0, 0};
    pthread_t t;
    pthread_create(&t, NULL, other_thread, rc);
    pthread_join(t, NULL);
    errno = rc[1];
    expect("ff_socket from another thread", rc[0], EPERM);
    errno = rc[3];
    expect("ff_close from another thread", rc[2], EPERM);
    /* The socket is untouched by the other thread's close. */
    int fl = ff_fcntl(s, F_GETFL);
    if (fl >= 0 && (fl & O_NONBLOCK)) {
        printf("PASS socket still open and non-blocking after the other thread's calls\n");
        passed++;
    } else {
        printf("FAIL socket after the other thread's calls: %d %s\n", fl, strerror(errno));
        failed++;
    }
    ff_run(stop_at_once, NULL);
    expect("ff_socket after ff_run returned", ff_socket(AF_INET, SOCK_STREAM, 0), EPERM);
    printf("ERRORS passed=%d failed=%d\n", passed, failed);
    return failed > 0;
}
