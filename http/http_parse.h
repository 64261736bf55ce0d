/*
 * Strict HTTP/1.1 request parser (RFC 9112), shared by edged's public and
 * admin listeners and by purged.
 *
 * The parser works on one contiguous buffer holding the start of a request
 * and keeps no state between calls: a caller that gets CDN_AGAIN calls again
 * from the start when more bytes have arrived (request heads are small, and
 * the common case is one complete head per read).  Every slice it returns
 * points into the caller's buffer and is valid as long as that buffer is.
 *
 * What enables request smuggling is refused: Content-Length together with
 * Transfer-Encoding, duplicate or malformed Content-Length, obs-fold, bare CR,
 * whitespace before the colon, control characters, bad chunk sizes, and a
 * chunked body's framing lines ending in a bare LF.
 */
#ifndef HTTP_PARSE_H
#define HTTP_PARSE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "common/cdn.h"

struct http_slice {
	const char *p;
	size_t len;
};

struct http_header {
	struct http_slice name;  /* as sent: compare case-insensitively */
	struct http_slice value; /* leading and trailing SP/HTAB removed */
};

enum http_method {
	HTTP_M_OTHER = 0, /* a valid token we have no name for */
	HTTP_M_GET,
	HTTP_M_HEAD,
	HTTP_M_POST,
	HTTP_M_PUT,
	HTTP_M_DELETE,
	HTTP_M_PATCH,
	HTTP_M_OPTIONS,
	HTTP_M_TRACE,
	HTTP_M_CONNECT,
	HTTP_M_PURGE,
};

/* RFC 9112 §3.2 request-target forms. */
enum http_target_form {
	HTTP_TARGET_ORIGIN = 0, /* "/path?query" */
	HTTP_TARGET_ABSOLUTE,   /* "http://host:port/path?query" */
	HTTP_TARGET_AUTHORITY,  /* "host:port" (CONNECT only) */
	HTTP_TARGET_ASTERISK,   /* "*" (OPTIONS only) */
};

struct http_limits {
	size_t max_request_line; /* bytes incl. CRLF; longer: 414 */
	size_t
	    max_header_bytes; /* whole head incl. request line; longer: 431 */
	unsigned max_headers; /* header fields; more: 431 */
};

struct http_request {
	enum http_method method;
	struct http_slice method_str;
	struct http_slice target; /* the request-target exactly as sent */
	enum http_target_form target_form;
	/* absolute-form: scheme and authority; empty otherwise */
	struct http_slice scheme;
	struct http_slice authority;
	/*
	 * From '/' up to '?' (or "*"); never empty.  When the absolute-form
	 * has no path, and for the authority-form, it is a static "/" that
	 * lies outside the caller's buffer.
	 */
	struct http_slice path;
	struct http_slice query; /* after '?', without it; may be empty */
	unsigned has_query : 1;  /* a '?' was present, even if empty */
	int version_minor;       /* HTTP/1.<minor>: 0 or 1 */

	struct http_header *headers; /* caller's array, max_headers long */
	unsigned n_headers;

	/* Derived from the fields while parsing. */
	/*
	 * Host field value; empty if none.  For the absolute-form, RFC 9112
	 * §3.2.2 makes the target's authority, not this, the host to use.
	 */
	struct http_slice host;
	int64_t content_length;       /* -1: no Content-Length field */
	unsigned is_chunked : 1;      /* Transfer-Encoding: chunked */
	unsigned keep_alive : 1;      /* persistence per version + Connection */
	unsigned expect_continue : 1; /* Expect: 100-continue */
	size_t head_len; /* bytes of request line + fields + final CRLF */
};

/*
 * Parse the request head at buf[0..len).  req->headers must point to an
 * array of lim->max_headers entries.
 *
 * Returns CDN_OK when a complete head was parsed (req->head_len bytes of buf
 * were used), CDN_AGAIN when the head is incomplete and no limit is exceeded
 * yet, or CDN_EINVAL with *status set to the status to answer before closing:
 *   400  malformed (syntax, smuggling risks, missing/duplicate Host in 1.1,
 *        Transfer-Encoding in an HTTP/1.0 request, a fragment in the
 *        request-target, the HTTP/2 connection preface "PRI * HTTP/2.0")
 *   414  request line longer than lim->max_request_line
 *   431  head longer than lim->max_header_bytes, or too many fields
 *   501  a transfer coding other than a final "chunked"
 *   505  an HTTP version other than 1.0 and 1.1
 * and *why set to a short static description for the log.
 * Leading empty lines before the request line are skipped (RFC 9112 §2.2)
 * and counted in head_len.  A line may end in CRLF or a bare LF; a bare CR
 * is an error.  On error, req is left in an unspecified state.
 */
int http_parse_request(const char *buf, size_t len,
    const struct http_limits *lim, struct http_request *req, int *status,
    const char **why) CDN_WUR;

/* The first field named <name> (<len> bytes, case-insensitive), or NULL. */
const struct http_header *http_request_find_n(
    const struct http_request *req, const char *name, size_t len);

/* The value of the first field named <name> (case-insensitive), or NULL.
 * Inline, so that a literal name's strlen() folds to a constant. */
static inline const struct http_header *
http_request_find(const struct http_request *req, const char *name)
{
	return http_request_find_n(req, name, strlen(name));
}

/* Case-insensitive compare of <len> bytes at <p> and <s>. */
int http_mem_eq_ci(const char *p, const char *s, size_t len);

/*
 * Case-insensitive compare of a slice with a NUL-terminated string.
 * Inline: callers pass literals, whose strlen() then folds to a constant,
 * and a field of another length is told apart without a call.
 */
static inline int
http_slice_eq_ci(struct http_slice s, const char *str)
{
	size_t len = strlen(str);

	return s.len == len && http_mem_eq_ci(s.p, str, len);
}

/*
 * Incremental decoder of a chunked body (RFC 9112 §7.1).  Framing (size
 * lines, extensions, CRLFs, the last chunk and trailer fields) is consumed
 * and dropped; data bytes are handed back to the caller.  Every framing
 * line must end in CRLF: unlike the head, where RFC 9112 §2.2 lets a
 * recipient take a bare LF, a body whose lines two parsers could split
 * differently is refused (the chunk line terminator desyncs).
 */
struct http_chunked {
	int state;          /* private */
	uint64_t remaining; /* private: data left in this chunk */
	size_t line_len;    /* private: bytes of the current line */
	size_t trailer_len; /* private: bytes of trailer section */
	size_t max_line;    /* size line + extensions; longer: error */
	size_t max_trailer; /* whole trailer section; longer: error */
};

/*
 * Start a body.  <max_line> counts a size line with its extensions and its
 * CRLF; <max_trailer> counts the trailer field lines with their CRLFs, not
 * the empty line that ends the section (0: no trailer fields allowed).
 */
void http_chunked_init(
    struct http_chunked *c, size_t max_line, size_t max_trailer);

/*
 * Consume from buf[0..len).  On return:
 *   *framing  bytes at the front of buf that were framing: drop them;
 *   *data     bytes of body data immediately after those: deliver them.
 * The caller drops/delivers framing + data bytes and calls again with the
 * rest.  A call returns after at most one run of data.  Returns CDN_OK
 * (with *data == 0) once the last chunk and the trailer section have
 * been consumed (the body is complete; bytes after framing + data belong to
 * the next request), CDN_AGAIN when more input is needed (framing + data
 * may be 0 only if len was too short to make progress), or CDN_EINVAL on
 * bad framing (with *why set), after which the connection must close.
 */
int http_chunked_step(struct http_chunked *c, const char *buf, size_t len,
    size_t *framing, size_t *data, const char **why) CDN_WUR;

/* The method named by p[0..len) (RFC 9110 §9.1, case-sensitive). */
enum http_method http_method_lookup(const char *p, size_t len);

/* Whether p[0..len) is a valid Host value: uri-host [ ":" port ]
 * (RFC 9110 §7.2), as the parser checks a Host field. */
int http_host_valid(const char *p, size_t len);

/* The reason phrase for a status code ("Not Found"), "Unknown" if none. */
const char *http_status_reason(int status);

/* The parser's class of each byte, one bit a class; the tchar bit is
 * read by http_is_tchar. */
extern const uint8_t http_cc_class[256];
#define HTTP_CC_TCHAR 0x01

/* Whether byte <c> is an RFC 9110 §5.6.2 tchar (the bytes of a token).
 * Inline: it runs for every byte of the field names of an origin's head. */
static inline int
http_is_tchar(int c)
{
	return c >= 0 && c < 256 && (http_cc_class[c] & HTTP_CC_TCHAR);
}

#endif /* HTTP_PARSE_H */
