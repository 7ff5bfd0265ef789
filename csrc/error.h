/*
 * Error reporting inside the core: a failure records its message for sdagd_last_error()
 * (thread-local) and returns its status; nothing prints or exits.
 */
#ifndef SDAGD_ERROR_H
#define SDAGD_ERROR_H

#include "sdagd.h"

/* Records a printf-style message for sdagd_last_error() and returns `status`. */
sdagd_status sdagd_fail(sdagd_status status, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

#endif
