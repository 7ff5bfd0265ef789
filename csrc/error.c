/* Last-error message, one per thread so that networks trained in threads do not clash. */
#include <stdarg.h>
#include <stdio.h>

#include "error.h"

static _Thread_local char last_error[512];

const char *sdagd_last_error(void) { return last_error; }

sdagd_status sdagd_fail(sdagd_status status, const char *fmt, ...) {
    va_list args;
    va_start(args, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, args);
    va_end(args);
    return status;
}
