/* HTTP hello world with zero-copy writes (ff_zc_mbuf_get/write + ff_write
 * of m.bsd_mbuf), kqueue-driven. Usage: main_zc -c config.ini */
#include <stdio.h>
#include <string.h>
#include <errno.h>
#include <arpa/inet.h>
#include <sys/ioctl.h>

#include "ff_config.h"
#include "ff_api.h"
#include "http_common.h"

#define MAX_EVENTS 512

static struct kevent kevSet;
static struct kevent events[MAX_EVENTS];
static int kq;
static int sockfd;
static unsigned long requests, zc_writes;

/* The response, written into page buffers in two pieces and sent by reference. */
static void respond(int fd)
{
    struct ff_zc_mbuf zc;
    int len = (int)sizeof(html) - 1;
    if (ff_zc_mbuf_get(&zc, len) < 0) {
        ff_write(fd, html, (size_t)len);
        return;
    }
    int half = len / 2;
    if (ff_zc_mbuf_write(&zc, html, half) < 0 || ff_zc_mbuf_write(&zc, html + half, len - half) < 0)
        return;
    ssize_t left = len;
    while (left > 0) {
        ssize_t n = ff_write(fd, zc.bsd_mbuf, (size_t)left);
        if (n <= 0)
            break; /* the tail stays in the chain; a real server would retry on EVFILT_WRITE */
        left -= n;
    }
    zc_writes++;
}

static int loop(void *arg)
{
    (void)arg;
    struct timespec zero = {0, 0};
    int nevents = ff_kevent(kq, NULL, 0, events, MAX_EVENTS, &zero);
    for (int i = 0; i < nevents; ++i) {
        int fd = (int)events[i].ident;
        if (events[i].flags & EV_EOF) {
            ff_close(fd);
        } else if (fd == sockfd) {
            int nfd;
            while ((nfd = ff_accept(sockfd, NULL, NULL)) >= 0) {
                EV_SET(&kevSet, nfd, EVFILT_READ, EV_ADD, 0, 0, NULL);
                ff_kevent(kq, &kevSet, 1, NULL, 0, NULL);
            }
        } else {
            char buf[4096];
            ssize_t n = ff_read(fd, buf, sizeof(buf));
            if (n > 0) {
                int reqs = count_requests(buf, n);
                for (int r = 0; r < reqs; r++) {
                    respond(fd);
                    requests++;
                }
            } else if (n == 0 || errno != EAGAIN) {
                ff_close(fd);
            }
        }
    }
    return 0;
}

int main(int argc, char *argv[])
{
    if (ff_init(argc, argv) < 0)
        return 1;
    sockfd = ff_socket(AF_INET, SOCK_STREAM, 0);
    int on = 1;
    ff_ioctl(sockfd, FIONBIO, &on);
    struct sockaddr_in a;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons(80);
    if (ff_bind(sockfd, (struct linux_sockaddr *)&a, sizeof(a)) < 0 || ff_listen(sockfd, MAX_EVENTS) < 0)
        return 1;
    kq = ff_kqueue();
    EV_SET(&kevSet, sockfd, EVFILT_READ, EV_ADD, 0, MAX_EVENTS, NULL);
    ff_kevent(kq, &kevSet, 1, NULL, 0, NULL);
    printf("listening on port 80 (zero copy)\n");
    fflush(stdout);
    ff_run(loop, NULL);
    printf("REPORT {\"requests\":%lu,\"zc_writes\":%lu}\n", requests, zc_writes);
    return 0;
}
