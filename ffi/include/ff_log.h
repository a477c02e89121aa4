/* zcstack's ff_log.h: F-Stack's log calls, routed into zcstack's tracing
 * output (stderr, filtered by RUST_LOG; target "fstack"). ff_log and
 * ff_vlog format in the caller and hand the text to zcstack_log_str. */
#ifndef _FSTACK_LOG_H
#define _FSTACK_LOG_H

#include <stdint.h>
#include <stdio.h>
#include <stdarg.h>

#ifdef __cplusplus
extern "C" {
#endif

#define FF_LOGTYPE_EAL        0
#define FF_LOGTYPE_MALLOC     1
#define FF_LOGTYPE_RING       2
#define FF_LOGTYPE_MEMPOOL    3
#define FF_LOGTYPE_TIMER      4
#define FF_LOGTYPE_PMD        5
#define FF_LOGTYPE_HASH       6
#define FF_LOGTYPE_LPM        7
#define FF_LOGTYPE_ACL        9
#define FF_LOGTYPE_POWER     10
#define FF_LOGTYPE_METER     11
#define FF_LOGTYPE_SCHED     12
#define FF_LOGTYPE_PORT      13
#define FF_LOGTYPE_TABLE     14
#define FF_LOGTYPE_PIPELINE  15
#define FF_LOGTYPE_MBUF      16
#define FF_LOGTYPE_CRYPTODEV 17
#define FF_LOGTYPE_EFD       18
#define FF_LOGTYPE_EVENTDEV  19
#define FF_LOGTYPE_GSO       20
#define FF_LOGTYPE_USER1     24
#define FF_LOGTYPE_USER2     25
#define FF_LOGTYPE_USER3     26
#define FF_LOGTYPE_USER4     27
#define FF_LOGTYPE_USER5     28
#define FF_LOGTYPE_USER6     29
#define FF_LOGTYPE_USER7     30
#define FF_LOGTYPE_USER8     31
#define FF_LOGTYPE_FIRST_EXT_ID 32

#define FF_LOG_EMERG    1U
#define FF_LOG_ALERT    2U
#define FF_LOG_CRIT     3U
#define FF_LOG_ERR      4U
#define FF_LOG_WARNING  5U
#define FF_LOG_NOTICE   6U
#define FF_LOG_INFO     7U
#define FF_LOG_DEBUG    8U
#define FF_LOG_MAX FF_LOG_DEBUG

#define FF_LOGTYPE_FSTACK_APP     FF_LOGTYPE_USER1
#define FF_LOGTYPE_FSTACK_LIB     FF_LOGTYPE_USER7
#define FF_LOGTYPE_FSTACK_FREEBSD FF_LOGTYPE_USER8

/* zcstack: emits one formatted message (level 1..8, logtype 0..63). */
int zcstack_log_str(uint32_t level, uint32_t logtype, const char *msg);

int ff_log_open_set(void);
/* Logs go to tracing's subscriber: the FILE * is ignored (returns 0). */
int ff_log_reset_stream(void *f);
int ff_openlog_stream(FILE *f);
void ff_log_close(void);
void ff_log_set_global_level(uint32_t level);
int ff_log_set_level(uint32_t logtype, uint32_t level);

static inline int ff_vlog(uint32_t level, uint32_t logtype, const char *format, va_list ap)
{
    char buf[1024];
    vsnprintf(buf, sizeof(buf), format, ap);
    return zcstack_log_str(level, logtype, buf);
}

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static inline int ff_log(uint32_t level, uint32_t logtype, const char *format, ...)
{
    va_list ap;
    int r;
    va_start(ap, format);
    r = ff_vlog(level, logtype, format, ap);
    va_end(ap);
    return r;
}

#ifdef __cplusplus
}
#endif
#endif
