/* HTTP hello world with kqueue, in the style of F-Stack's example/main.c.
 * Usage: main_kqueue -c config.ini [-t primary -p 0] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <errno.h>
#include <arpa/inet.h>
#include <sys/ioctl.h>

#include "ff_config.h"
#include "ff_api.h"
#include "ff_log.h"
#include "http_common.h"

#define MAX_EVENTS 512

static struct kevent kevSet;
static struct kevent events[MAX_EVENTS];
static int kq;
static int sockfd;
static unsigned long requests;

static int loop(void *arg)
{
    (void)arg;
    struct timespec zero = {0, 0};
    int nevents = ff_kevent(kq, NULL, 0, events, MAX_EVENTS, &zero);
    for (int i = 0; i < nevents; ++i) {
        struct kevent event = events[i];
        int clientfd = (int)event.ident;
        if (event.flags & EV_EOF) {
            ff_close(clientfd);
        } else if (clientfd == sockfd) {
            int available = (int)event.data;
            do {
                int nclientfd = ff_accept(sockfd, NULL, NULL);
                if (nclientfd < 0)
                    break;
                EV_SET(&kevSet, nclientfd, EVFILT_READ, EV_ADD, 0, 0, NULL);
                if (ff_kevent(kq, &kevSet, 1, NULL, 0, NULL) < 0) {
                    printf("ff_kevent error:%d, %s\n", errno, strerror(errno));
                    return -1;
                }
                available--;
            } while (available);
        } else if (event.filter == EVFILT_READ) {
            char buf[4096];
            ssize_t n = ff_read(clientfd, buf, sizeof(buf));
            if (n > 0) {
                int reqs = count_requests(buf, n);
                for (int r = 0; r < reqs; r++) {
                    ff_write(clientfd, html, sizeof(html) - 1);
                    requests++;
                }
            } else if (n == 0 || errno != EAGAIN) {
                ff_close(clientfd);
            }
        }
    }
    return 0;
}

int main(int argc, char *argv[])
{
    if (ff_init(argc, argv) < 0) {
        fprintf(stderr, "ff_init failed: %s\n", strerror(errno));
        return 1;
    }
    sockfd = ff_socket(AF_INET, SOCK_STREAM, 0);
    if (sockfd < 0) {
        printf("ff_socket failed: %s\n", strerror(errno));
        return 1;
    }
    int on = 1;
    ff_ioctl(sockfd, FIONBIO, &on);
    struct sockaddr_in my_addr;
    bzero(&my_addr, sizeof(my_addr));
    my_addr.sin_family = AF_INET;
    my_addr.sin_port = htons(80);
    my_addr.sin_addr.s_addr = htonl(INADDR_ANY);
    if (ff_bind(sockfd, (struct linux_sockaddr *)&my_addr, sizeof(my_addr)) < 0 ||
        ff_listen(sockfd, MAX_EVENTS) < 0) {
        printf("bind/listen failed: %s\n", strerror(errno));
        return 1;
    }
    kq = ff_kqueue();
    EV_SET(&kevSet, sockfd, EVFILT_READ, EV_ADD, 0, MAX_EVENTS, NULL);
    ff_kevent(kq, &kevSet, 1, NULL, 0, NULL);
    ff_log(FF_LOG_INFO, FF_LOGTYPE_FSTACK_APP, "kqueue example listening on port %d", 80);
    printf("listening on port 80 (kqueue)\n");
    fflush(stdout);
    ff_run(loop, NULL);
    printf("REPORT {\"requests\":%lu}\n", requests);
    return 0;
}
