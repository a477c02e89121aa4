/* TCP echo client: sends BYTES of a pseudo-random stream to the echo
 * server, reads them back, and prints the SHA-256 of what it sent and of
 * what came back (they must match). Usage:
 *   echo_client -c config.ini [-t primary -p 0] -- SERVER_IP [PORT [BYTES]] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <sys/time.h>
#include <arpa/inet.h>

#include "ff_config.h"
#include "ff_api.h"
#include "ff_epoll.h"
#include "sha256.h"

#define CHUNK (64 * 1024)
#define LIMIT_S 120

static int epfd, fd, failed;
static unsigned long long total, sent, received;
static uint64_t rng = 0x9e3779b97f4a7c15ULL;
static char out[CHUNK], in[CHUNK];
static size_t out_len, out_off;
static struct sha256 tx_sum, rx_sum;
static struct timeval start;

/* The next CHUNK (or fewer) bytes of the stream (xorshift64*). */
static void refill(void)
{
    unsigned long long left = total - sent;
    out_len = left < CHUNK ? (size_t)left : CHUNK;
    for (size_t i = 0; i < out_len; i++) {
        rng ^= rng >> 12;
        rng ^= rng << 25;
        rng ^= rng >> 27;
        out[i] = (char)((rng * 0x2545f4914f6cdd1dULL) >> 56);
    }
    out_off = 0;
}

static void finish(const char *why)
{
    if (why) {
        printf("echo client failed: %s (errno %d %s)\n", why, errno, strerror(errno));
        failed = 1;
    }
    ff_close(fd);
    ff_stop_run();
}

static int loop(void *arg)
{
    (void)arg;
    struct timeval now;
    ff_gettimeofday(&now, NULL);
    if (now.tv_sec - start.tv_sec > LIMIT_S) {
        finish("time limit");
        return 0;
    }
    struct epoll_event evs[4];
    int n = ff_epoll_wait(epfd, evs, 4, 0);
    for (int i = 0; i < n && !failed; i++) {
        if (evs[i].events & EPOLLERR) {
            finish("connection error");
            return 0;
        }
        if ((evs[i].events & EPOLLOUT) && sent < total) {
            if (out_off == out_len)
                refill();
            ssize_t w = ff_write(fd, out + out_off, out_len - out_off);
            if (w > 0) {
                sha256_update(&tx_sum, out + out_off, (size_t)w);
                out_off += (size_t)w;
                sent += (unsigned long long)w;
                if (sent == total) {
                    struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
                    ff_epoll_ctl(epfd, EPOLL_CTL_MOD, fd, &ev);
                }
            } else if (w < 0 && errno != EAGAIN && errno != ENOTCONN) {
                finish("write");
                return 0;
            }
        }
        if (evs[i].events & (EPOLLIN | EPOLLHUP)) {
            ssize_t r = ff_read(fd, in, sizeof(in));
            if (r > 0) {
                sha256_update(&rx_sum, in, (size_t)r);
                received += (unsigned long long)r;
                if (received == total) {
                    finish(NULL);
                    return 0;
                }
            } else if (r == 0 || errno != EAGAIN) {
                finish("the server closed early");
                return 0;
            }
        }
    }
    return 0;
}

int main(int argc, char *argv[])
{
    int ffargc = argc;
    const char *server = NULL;
    int port = 7;
    total = 8ULL << 20;
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--") == 0) {
            ffargc = i;
            server = i + 1 < argc ? argv[i + 1] : NULL;
            port = i + 2 < argc ? atoi(argv[i + 2]) : 7;
            total = i + 3 < argc ? strtoull(argv[i + 3], NULL, 10) : total;
        }
    if (!server) {
        fprintf(stderr, "usage: echo_client -c config.ini -- SERVER_IP [PORT [BYTES]]\n");
        return 2;
    }
    if (ff_init(ffargc, argv) < 0) {
        fprintf(stderr, "ff_init failed: %s\n", strerror(errno));
        return 1;
    }
    sha256_init(&tx_sum);
    sha256_init(&rx_sum);
    fd = ff_socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, server, &a.sin_addr) != 1) {
        fprintf(stderr, "bad server address %s\n", server);
        return 2;
    }
    if (ff_connect(fd, (struct linux_sockaddr *)&a, sizeof(a)) < 0 && errno != EINPROGRESS) {
        printf("ff_connect failed: %s\n", strerror(errno));
        return 1;
    }
    epfd = ff_epoll_create(4);
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.fd = fd};
    ff_epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
    ff_gettimeofday(&start, NULL);
    ff_run(loop, NULL);
    char txh[65], rxh[65], abc[65];
    sha256_hex(&tx_sum, txh);
    sha256_hex(&rx_sum, rxh);
    struct sha256 t;
    sha256_init(&t);
    sha256_update(&t, "abc", 3);
    sha256_hex(&t, abc);
    printf("ECHO_CLIENT {\"sent\":%llu,\"received\":%llu,\"sha256_sent\":\"%s\",\"sha256_received\":\"%s\","
           "\"sha256_abc\":\"%s\"}\n",
           sent, received, txh, rxh, abc);
    return failed;
}
