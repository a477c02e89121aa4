/* zcstack's ff_errno.h: errors are Linux's errno values (<errno.h>).
 * Written for zcstack; names follow F-Stack's public API. */
#ifndef _FSTACK_ERRNO_H
#define _FSTACK_ERRNO_H
#include <errno.h>
#endif
