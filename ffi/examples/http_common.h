/* Shared by the HTTP examples: the response and a request counter. */
#ifndef ZC_EXAMPLE_HTTP_H
#define ZC_EXAMPLE_HTTP_H
#include <string.h>

static const char html[] =
    "HTTP/1.1 200 OK\r\n"
    "Server: zcstack-ffi\r\n"
    "Content-Type: text/html\r\n"
    "Content-Length: 59\r\n"
    "Connection: keep-alive\r\n"
    "\r\n"
    "<html><body><h1>Hello from C on zcstack!</h1></body></html>";

/* Counts complete requests (blank-line terminated) in buf[0..n). */
static int count_requests(const char *buf, long n)
{
    int c = 0;
    for (long i = 3; i < n; i++)
        if (buf[i - 3] == '\r' && buf[i - 2] == '\n' && buf[i - 1] == '\r' && buf[i] == '\n')
            c++;
    return c;
}
#endif
