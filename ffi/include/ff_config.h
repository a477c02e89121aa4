/* zcstack's ff_config.h: F-Stack programs include it; zcstack reads the
 * config.ini given to ff_init (-c FILE, -t primary, -p N) itself, so there
 * is no global config structure to include. */
#ifndef _FSTACK_CONFIG_H
#define _FSTACK_CONFIG_H
#define ZCSTACK_FSTACK_API 1
#endif
