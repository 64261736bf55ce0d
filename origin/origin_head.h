/*
 * An origin's response head, read strictly (RFC 9112): the checks both
 * origin clients apply (libcurl's header callback line by line, the native
 * client on the whole head at once), the one-pass parse of the native
 * client, and chunk-size lines.  Pure logic, no allocation, any thread;
 * private to origin/.
 */
#ifndef ORIGIN_HEAD_H
#define ORIGIN_HEAD_H

#include <stddef.h>
#include <stdint.h>

#include "common/cdn.h"

#define ORIGIN_HEAD_MAX (64 * 1024) /* largest response head we take */

/* What the framing of one head says, gathered field line by field line. */
struct origin_head {
	int status;             /* 100..599 */
	int minor;              /* HTTP/1.<minor> */
	int64_t content_length; /* -1: none */
	unsigned te_codings;    /* transfer codings named */
	unsigned te_chunked;    /* how many of them are chunked */
	unsigned te_last_chunked : 1;
	unsigned cl_seen : 1;
	unsigned conn_close : 1;      /* Connection names close */
	unsigned conn_keep_alive : 1; /* Connection names keep-alive */
};

/* Forget the fields of a previous head (an interim response's). */
void origin_head_reset(struct origin_head *h);

/*
 * The checks of one field line p[0..len), without its line end: NULL when
 * it is fine (and <h> notes Content-Length, Transfer-Encoding and
 * Connection), else a static reason for a 502 (obs-fold, no colon, an empty
 * or non-token name, white space before the colon, CR, LF or NUL inside,
 * an invalid or second different Content-Length).
 */
const char *origin_head_field(struct origin_head *h, const char *p, size_t len);

/*
 * RFC 9112 §6.3 on a complete head: NULL, or why its framing is refused
 * (Transfer-Encoding with Content-Length, chunked twice or not last).
 */
const char *origin_head_framing(const struct origin_head *h);

/* How the body of a final response is delimited (RFC 9112 §6.3). */
enum origin_body {
	ORIGIN_BODY_NONE,    /* HEAD, 1xx, 204, 304 */
	ORIGIN_BODY_LENGTH,  /* Content-Length bytes */
	ORIGIN_BODY_CHUNKED, /* chunked is the final coding */
	ORIGIN_BODY_CLOSE,   /* until the server closes */
};
enum origin_body origin_head_body(const struct origin_head *h, int is_head);

/* origin_head_parse() results. */
#define ORIGIN_HEAD_PARTIAL 0 /* the empty line has not come yet */
#define ORIGIN_HEAD_DONE    1
#define ORIGIN_HEAD_BAD     (-1)

/*
 * Parse one response head at the start of buf[0..len), the status line
 * "HTTP/1.<digit> <3 digits>[ <reason>]" and field lines, every line ended
 * by CRLF, then the empty line.  ORIGIN_HEAD_DONE: <h> holds the head's
 * framing, *fields / *fields_len the field lines as received (pointing into
 * <buf>, CRLF-ended, "" when none) and *used the head's bytes.
 * ORIGIN_HEAD_PARTIAL: more bytes are needed (<scan>, in and out, is where
 * the search for the empty line resumes: 0 at first).  ORIGIN_HEAD_BAD:
 * *why says what is wrong, also for a head longer than ORIGIN_HEAD_MAX.
 */
int origin_head_parse(const char *buf, size_t len, size_t *scan,
    struct origin_head *h, const char **fields, size_t *fields_len,
    size_t *used, const char **why);

/* The longest chunk-size line with its extensions and CRLF. */
#define ORIGIN_CHUNK_LINE_MAX 4096

#endif /* ORIGIN_HEAD_H */
