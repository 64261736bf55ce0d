/*
 * Range requests (RFC 9110 §14): parsing a Range field against the length
 * of the selected representation.  Pure logic, any thread.
 */
#ifndef HTTP_RANGE_H
#define HTTP_RANGE_H

#include <stddef.h>
#include <stdint.h>

/*
 * Most ranges answered in one multipart response.  A request with more is
 * answered with the whole representation (RFC 9110 §14.2 lets a server
 * ignore a Range field, and many small ranges are a known way to make a
 * server do much work for little: CVE-2011-3192).
 */
#define HTTP_RANGE_MAX 16

/* One satisfiable range, bytes [first, last], inclusive as on the wire. */
struct http_range {
	uint64_t first, last;
};

enum http_range_rc {
	HTTP_RANGE_IGNORE = 0,   /* serve the whole representation (200) */
	HTTP_RANGE_OK,           /* serve the ranges (206) */
	HTTP_RANGE_UNSATISFIABLE /* 416, Content-Range: bytes * / total */
};

/*
 * Parse a Range field value (RFC 9110 §14.1.2) for a representation of
 * <total> bytes.  On HTTP_RANGE_OK, r[0..*n) holds the satisfiable ranges
 * in ascending order with overlapping and adjacent ones merged (§14.2: a
 * server MAY coalesce), at most HTTP_RANGE_MAX; *n is untouched otherwise.
 * HTTP_RANGE_IGNORE for a unit other than "bytes", a malformed value, or
 * more than HTTP_RANGE_MAX ranges before merging; HTTP_RANGE_UNSATISFIABLE
 * when the value is well formed but no range overlaps the representation
 * (a zero-length one included).
 */
enum http_range_rc http_range_parse(const char *value, size_t len,
    uint64_t total, struct http_range r[HTTP_RANGE_MAX], unsigned *n);

#endif /* HTTP_RANGE_H */
