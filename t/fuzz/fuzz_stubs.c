
/*
 * The one nginx function ngx_http_callhq_json_scan.c calls that is not a
 * macro: ngx_snprintf(), for ngx_http_callhq_json_where().  This stub
 * knows the conversions json_where uses (%ui) and a few more; any other
 * aborts, so that a new format in json_scan.c shows up as a crash rather
 * than as silently wrong output.  Like nginx's, it writes at most max
 * bytes, no terminating NUL, and returns the end of what it wrote.
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include <stdio.h>
#include <stdlib.h>


u_char * ngx_cdecl
ngx_snprintf(u_char *buf, size_t max, const char *fmt, ...)
{
    u_char      *p, *last;
    char         num[NGX_INT64_LEN + 1];
    const char  *s;
    size_t       n;
    va_list      args;

    p = buf;
    last = buf + max;

    va_start(args, fmt);

    while (*fmt && p < last) {
        if (*fmt != '%') {
            *p++ = *fmt++;
            continue;
        }

        fmt++;

        if (fmt[0] == 'u' && fmt[1] == 'i') {
            snprintf(num, sizeof(num), "%lu",
                     (unsigned long) va_arg(args, ngx_uint_t));
            s = num;
            fmt += 2;

        } else if (fmt[0] == 'u' && fmt[1] == 'z') {
            snprintf(num, sizeof(num), "%zu", va_arg(args, size_t));
            s = num;
            fmt += 2;

        } else if (fmt[0] == 's') {
            s = va_arg(args, const char *);
            fmt++;

        } else if (fmt[0] == '%') {
            s = "%";
            fmt++;

        } else {
            fprintf(stderr, "ngx_snprintf stub: unsupported format \"%s\"\n",
                    fmt - 1);
            abort();
        }

        for (n = 0; s[n] && p < last; n++) {
            *p++ = (u_char) s[n];
        }
    }

    va_end(args);

    return p;
}
