/*
 * HTTP-date (RFC 9110 §5.6.7).  Pure logic, any thread.
 */
#ifndef HTTP_DATE_H
#define HTTP_DATE_H

#include <stddef.h>
#include <stdint.h>

/* 9999-12-31T23:59:59Z, the last second an HTTP-date can express. */
#define HTTP_DATE_MAX INT64_C(253402300799)

/* Parse an HTTP-date (IMF-fixdate, RFC 850, asctime): seconds since the
 * epoch, in [0, HTTP_DATE_MAX], or -1 if invalid. */
int64_t http_date_parse(const char *s, size_t len);
/* Format <t> as IMF-fixdate into buf (>= 30 bytes, NUL-terminated); times
 * outside what an HTTP-date expresses are clamped to 1970..9999. */
void http_date_format(int64_t t, char *buf, size_t len);

#endif /* HTTP_DATE_H */
