/*
 * Range responses (edge_range.c): RFC 9110 §14 (206, multipart/byteranges,
 * 416) and §13.1.5 (If-Range), planned once and sent from a stored object
 * (whole, or only the chunks a range covers, read from disk) or cut from a
 * response still arriving.  Pure planning plus sending through the client's
 * transaction; everything runs on the worker that owns the request.
 */
#ifndef EDGE_RANGE_H
#define EDGE_RANGE_H

#include <stdint.h>

#include "cache/cache.h"
#include "common/cdn_strbuf.h"
#include "http/http_parse.h"
#include "http/http_range.h"

struct cache_store;
struct edge_stream;

/* One piece of a range response body: literal bytes of the plan (part
 * heads, the closing boundary) or representation bytes [off, off + len). */
struct edge_range_seg {
	uint64_t off, len;
	uint32_t lit_off; /* into plan->lit, when is_lit */
	unsigned is_lit : 1;
};

#define EDGE_RANGE_SEGS (2 * HTTP_RANGE_MAX + 1)

/*
 * How to answer a request for a representation of <total> bytes: a
 * function of the Range field and <total> only, so that a sender can run
 * it over a complete stored object or over a body still arriving (it
 * needs each [off, off + len) in ascending order).  Lives on the stack.
 */
struct edge_range_plan {
	uint32_t magic;
#define EDGE_RANGE_PLAN_MAGIC 0x5be8a3c1u
	int status;              /* 200, 206 or 416 */
	uint64_t total;          /* representation length */
	uint64_t content_length; /* of this response's body */
	unsigned multipart : 1;
	/* Fields to add to the representation's: Content-Range, or the
	 * multipart Content-Type (then the stored one is left out). */
	struct cdn_strbuf fields;
	struct cdn_strbuf lit; /* part heads and closing delimiter */
	unsigned nsegs;
	struct edge_range_seg segs[EDGE_RANGE_SEGS];
};

/*
 * Plan the answer to a Range field <range> (NULL: none) for <total>
 * bytes of type <ctype> (for multipart part heads; NULL if none).
 * <allow_multi> 0 answers a multi-range request with the whole
 * representation (used for content-coded variants: a multipart body has
 * no place for their Content-Encoding).  Never fails: on trouble (the
 * head buffers overflow) the plan is a 200.  edge_range_plan_fini() after.
 */
void edge_range_plan_init(struct edge_range_plan *p, const char *range,
    size_t rlen, uint64_t total, const char *ctype, size_t ctlen,
    int allow_multi);
void edge_range_plan_fini(struct edge_range_plan *p);

/*
 * RFC 9110 §13.1.5: does If-Range <v> allow the range for a stored
 * response with head <fields>?  An entity-tag must match its ETag by
 * strong comparison (a weak tag never does); an HTTP-date must equal its
 * Last-Modified exactly.  Anything else (unparsable, no validator): no.
 */
int edge_if_range_ok(
    const char *v, size_t len, const char *fields, size_t fields_len);

/*
 * The plan for answering <req> from the stored <o>: its Range field if
 * the request is a GET, <o> a 200, and If-Range (if any) matches; a
 * multi-range request of a content-coded variant gets the whole.
 */
void edge_range_plan_for(struct edge_range_plan *p,
    const struct http_request *req, const struct cache_obj *o,
    int not_modified);
/* <o>'s stored head adjusted to the plan (Content-Range, multipart type,
 * Accept-Ranges), appended to <f>. */
void edge_range_fields(const struct edge_range_plan *p,
    const struct cache_obj *o, struct cdn_strbuf *f);

/* Where a streaming sender is in a plan. */
struct edge_range_cursor {
	unsigned seg;  /* first segment not fully sent */
	uint64_t sent; /* bytes of segs[seg] sent */
};

/*
 * Feed representation bytes [off, off + len) (in order, no gaps) and
 * emit, through <out>, every response body byte they make available:
 * literal segments as soon as the bytes before them are through.  Bytes
 * outside the plan's segments are skipped.  For the coalesced fill.
 */
void edge_range_feed(const struct edge_range_plan *p,
    struct edge_range_cursor *c, uint64_t off, const void *data, size_t len,
    void (*out)(void *arg, const void *p, size_t n), void *arg);

/*
 * Hand the planned body of <o> to <out> in order: part heads and the
 * closing delimiter (in_obj 0, the plan's bytes), and representation bytes
 * (in_obj 1, pointers into <o>'s chunks, valid while <o> lives).  Every
 * chunk the plan covers must be loaded: a whole object, or one from
 * cache_store_get_meta() after edge_range_load_chunks() with this plan.
 */
void edge_range_obj_pieces(const struct edge_range_plan *p,
    const struct cache_obj *o,
    void (*out)(void *arg, const unsigned char *p, size_t n, int in_obj),
    void *arg);

/*
 * Read from <s> the chunks of <o> (from cache_store_get_meta()) that plan
 * <p> sends, and no others: none for a 416 or an empty body.  Returns
 * cache_store_load_chunks()'s codes; the chunks read stay on failure.
 */
int edge_range_load_chunks(struct cache_store *s,
    const struct edge_range_plan *p, struct cache_obj *o);

/* Send the planned body of <o> (as edge_range_obj_pieces() requires):
 * chunks by reference (one object reference per piece), part heads
 * copied. */
void edge_range_send_obj(const struct edge_stream *cs,
    const struct edge_range_plan *p, struct cache_obj *o);

/*
 * The planned body of a large object on disk, read one chunk at a time as
 * the client takes it: a bounded number of chunks is in memory per client
 * whatever the object's size, for a whole body, one range or many.  The
 * object is pinned from its first chunk on (cache_store_pin(): eviction
 * and a newer copy leave its chunks alone); each chunk is read with
 * cache_store_pin_read() (its checksum checked: bytes that fail it are
 * never sent) and handed to the stream by reference.  Worker thread
 * only.
 */
struct edge_range_disk;
/*
 * A sender of <*op> (from cache_store_get_meta(), body not loaded; the
 * reference is taken and *op NULLed) planned for <req>, as
 * edge_range_plan_for() plans it.  Reads nothing yet.  Never fails.
 */
struct edge_range_disk *edge_range_disk_new(struct cache_store *s,
    const struct http_request *req, struct cache_obj **op, int not_modified);
/* Its plan (the response's status, length and fields) and its object,
 * borrowed for the sender's life. */
struct edge_range_plan *edge_range_disk_plan(struct edge_range_disk *rd);
const struct cache_obj *edge_range_disk_obj(const struct edge_range_disk *rd);
/*
 * Read the first chunk the plan sends, before the response head goes out,
 * so that an object that cannot be read is still a miss.  CDN_OK (also
 * when the plan sends no stored bytes), or cache_store_pin_read()'s
 * codes: CDN_NOTFOUND (replaced or removed since), CDN_ECORRUPT, CDN_EIO,
 * CDN_ENOMEM.
 */
int edge_range_disk_prime(struct edge_range_disk *rd) CDN_WUR;
/*
 * Send more of the body to <cs> (whose head is out) while the stream is
 * not congested.  CDN_OK: all sent; CDN_AGAIN: call again when the stream
 * is writable; otherwise a chunk could not be read (codes as for prime):
 * what was sent is correct, the rest is not.
 */
int edge_range_disk_send(
    struct edge_range_disk *rd, const struct edge_stream *cs);
void edge_range_disk_free(struct edge_range_disk **rdp);

/*
 * A Range request answered from a whole response arriving from the origin
 * (a miss fetches all of it, to store it).  NULL when the request has no
 * Range (or a HEAD), If-Range does not match the response head <fields>,
 * or the plan is a plain 200; otherwise <out> (the client's head) has been
 * adjusted to the plan.
 */
struct edge_range_stream;
struct edge_range_stream *edge_range_stream_new(const struct http_request *req,
    const char *fields, size_t len, uint64_t total, struct cdn_strbuf *out);
int edge_range_stream_status(const struct edge_range_stream *rs);
uint64_t edge_range_stream_length(const struct edge_range_stream *rs);
/* The next <len> bytes of the representation (the plan's feed). */
void edge_range_stream_feed(struct edge_range_stream *rs, const void *data,
    size_t len, void (*out)(void *arg, const void *p, size_t n), void *arg);
void edge_range_stream_free(struct edge_range_stream **rsp);

#endif /* EDGE_RANGE_H */
