/* HTTP hello world with epoll (edge-triggered connections), F-Stack style.
 * Usage: main_epoll -c config.ini */
#include <stdio.h>
#include <string.h>
#include <errno.h>
#include <arpa/inet.h>
#include <sys/ioctl.h>

#include "ff_config.h"
#include "ff_api.h"
#include "ff_epoll.h"
#include "http_common.h"

#define MAX_EVENTS 512

static struct epoll_event ev;
static struct epoll_event events[MAX_EVENTS];
static int epfd;
static int sockfd;
static unsigned long requests;

static int loop(void *arg)
{
    (void)arg;
    int nevents = ff_epoll_wait(epfd, events, MAX_EVENTS, 0);
    for (int i = 0; i < nevents; ++i) {
        int fd = events[i].data.fd;
        if (fd == sockfd) {
            for (;;) {
                int nclientfd = ff_accept(sockfd, NULL, NULL);
                if (nclientfd < 0)
                    break;
                ev.data.fd = nclientfd;
                ev.events = EPOLLIN | EPOLLET | EPOLLRDHUP;
                if (ff_epoll_ctl(epfd, EPOLL_CTL_ADD, nclientfd, &ev) != 0) {
                    printf("ff_epoll_ctl failed:%d, %s\n", errno, strerror(errno));
                    break;
                }
            }
        } else if (events[i].events & (EPOLLERR | EPOLLHUP)) {
            ff_epoll_ctl(epfd, EPOLL_CTL_DEL, fd, NULL);
            ff_close(fd);
        } else if (events[i].events & EPOLLIN) {
            /* Edge-triggered: read until EAGAIN. */
            for (;;) {
                char buf[4096];
                ssize_t n = ff_read(fd, buf, sizeof(buf));
                if (n > 0) {
                    int reqs = count_requests(buf, n);
                    for (int r = 0; r < reqs; r++) {
                        ff_write(fd, html, sizeof(html) - 1);
                        requests++;
                    }
                    continue;
                }
                if (n == 0 || errno != EAGAIN) {
                    ff_epoll_ctl(epfd, EPOLL_CTL_DEL, fd, NULL);
                    ff_close(fd);
                }
                break;
            }
        }
    }
    return 0;
}

int main(int argc, char *argv[])
{
    if (ff_init(argc, argv) < 0)
        return 1;
    sockfd = ff_socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int on = 1;
    ff_setsockopt(sockfd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
    struct sockaddr_in my_addr;
    memset(&my_addr, 0, sizeof(my_addr));
    my_addr.sin_family = AF_INET;
    my_addr.sin_port = htons(80);
    my_addr.sin_addr.s_addr = htonl(INADDR_ANY);
    if (ff_bind(sockfd, (struct linux_sockaddr *)&my_addr, sizeof(my_addr)) < 0 ||
        ff_listen(sockfd, MAX_EVENTS) < 0) {
        printf("bind/listen failed: %s\n", strerror(errno));
        return 1;
    }
    epfd = ff_epoll_create(1);
    ev.data.fd = sockfd;
    ev.events = EPOLLIN;
    ff_epoll_ctl(epfd, EPOLL_CTL_ADD, sockfd, &ev);
    printf("listening on port 80 (epoll)\n");
    fflush(stdout);
    ff_run(loop, NULL);
    printf("REPORT {\"requests\":%lu}\n", requests);
    return 0;
}
