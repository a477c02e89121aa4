/* zcstack's ff_epoll.h: Linux's struct epoll_event and flags. EPOLLET is
 * real edge triggering (reported once per change, even if data is left
 * unread); EPOLLONESHOT disables the registration until EPOLL_CTL_MOD.
 * The timeout of ff_epoll_wait is honoured: the stack keeps running while
 * it waits (0 returns at once; -1 waits until ready or ff_stop_run). */
#ifndef _FF_EPOLL_H
#define _FF_EPOLL_H

#include <sys/epoll.h>

#ifdef __cplusplus
extern "C" {
#endif

int ff_epoll_create(int size);
int ff_epoll_ctl(int epfd, int op, int fd, struct epoll_event *event);
int ff_epoll_wait(int epfd, struct epoll_event *events, int maxevents, int timeout);

#ifdef __cplusplus
}
#endif
#endif
