/* pool_internal.h — what single.c and pool.c share. Not public. */
#ifndef MMWS_POOL_INTERNAL_H
#define MMWS_POOL_INTERNAL_H

#include <mmws/pool.h>

/* Runs the loop until pred(arg) holds or timeout_ms passes (-1: no
 * bound). Returns 0, MMWS_ETIMEDOUT, or the loop's error. */
int mmws__drive_until(mmws_loop *loop, int (*pred)(void *), void *arg,
                      int timeout_ms);

#endif /* MMWS_POOL_INTERNAL_H */
