/* TCP echo server with epoll, in F-Stack's style: every byte received is
 * written back; the SHA-256 of the stream it received is printed at exit.
 * Usage: echo_server -c config.ini [-t primary -p 0] [-- PORT] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <arpa/inet.h>

#include "ff_config.h"
#include "ff_api.h"
#include "ff_epoll.h"
#include "sha256.h"

#define MAX_EVENTS 64
#define MAX_FD 1024
#define BUF (256 * 1024)

/* Bytes read but not yet written back, per connection. */
struct conn {
    char *buf;
    size_t len, off;
};

static struct conn conns[MAX_FD];
static int epfd, lfd;
static struct sha256 rx_sum;
static unsigned long long rx_bytes, tx_bytes, accepted;

static void drop(int fd)
{
    ff_epoll_ctl(epfd, EPOLL_CTL_DEL, fd, NULL);
    ff_close(fd);
    free(conns[fd].buf);
    memset(&conns[fd], 0, sizeof(conns[fd]));
}

/* Writes back what is pending; 0 when all is gone, 1 when some waits. */
static int flush_conn(int fd)
{
    struct conn *c = &conns[fd];
    while (c->off < c->len) {
        ssize_t n = ff_write(fd, c->buf + c->off, c->len - c->off);
        if (n < 0) {
            if (errno == EAGAIN)
                return 1;
            drop(fd);
            return -1;
        }
        c->off += (size_t)n;
        tx_bytes += (unsigned long long)n;
    }
    c->off = c->len = 0;
    return 0;
}

static int loop(void *arg)
{
    (void)arg;
    struct epoll_event evs[MAX_EVENTS];
    int n = ff_epoll_wait(epfd, evs, MAX_EVENTS, 0);
    for (int i = 0; i < n; i++) {
        int fd = evs[i].data.fd;
        if (fd == lfd) {
            for (;;) {
                int c = ff_accept(lfd, NULL, NULL);
                if (c < 0)
                    break;
                if (c >= MAX_FD) {
                    ff_close(c);
                    continue;
                }
                conns[c].buf = malloc(BUF);
                struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.fd = c};
                ff_epoll_ctl(epfd, EPOLL_CTL_ADD, c, &ev);
                accepted++;
            }
            continue;
        }
        if (!conns[fd].buf)
            continue;
        /* Read more only once the last read is echoed. */
        int r = flush_conn(fd);
        if (r != 0)
            continue;
        ssize_t got = ff_read(fd, conns[fd].buf, BUF);
        if (got > 0) {
            sha256_update(&rx_sum, conns[fd].buf, (size_t)got);
            rx_bytes += (unsigned long long)got;
            conns[fd].len = (size_t)got;
            flush_conn(fd);
        } else if (got == 0 || errno != EAGAIN) {
            drop(fd);
        }
    }
    return 0;
}

int main(int argc, char *argv[])
{
    int ffargc = argc, port = 7;
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--") == 0) {
            ffargc = i;
            if (i + 1 < argc)
                port = atoi(argv[i + 1]);
        }
    if (ff_init(ffargc, argv) < 0) {
        fprintf(stderr, "ff_init failed: %s\n", strerror(errno));
        return 1;
    }
    sha256_init(&rx_sum);
    lfd = ff_socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_ANY);
    if (lfd < 0 || ff_bind(lfd, (struct linux_sockaddr *)&a, sizeof(a)) < 0 || ff_listen(lfd, 128) < 0) {
        printf("socket/bind/listen failed: %s\n", strerror(errno));
        return 1;
    }
    epfd = ff_epoll_create(MAX_EVENTS);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = lfd};
    ff_epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &ev);
    printf("echo server listening on port %d\n", port);
    fflush(stdout);
    ff_run(loop, NULL);
    char hex[65];
    sha256_hex(&rx_sum, hex);
    printf("ECHO_SERVER {\"accepted\":%llu,\"rx_bytes\":%llu,\"tx_bytes\":%llu,\"sha256\":\"%s\"}\n", accepted,
           rx_bytes, tx_bytes, hex);
    return 0;
}
