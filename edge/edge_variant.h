/*
 * Serving stored objects by coding and by range (edge_variant.c,
 * edge_range.c).  Kept apart from edge_cache.c, which calls in at three
 * places: the lookup (edge_variant_get), the hit (edge_range_*), and after
 * a store (edge_variant_stored).
 *
 * Threads: everything runs on the worker that owns the request, except
 * the compression pool (cache_variants) the context owns.
 */
#ifndef EDGE_VARIANT_H
#define EDGE_VARIANT_H

#include <stdint.h>

#include "cache/cache.h"
#include "common/cdn_strbuf.h"
#include "http/http_parse.h"
#include "http/http_range.h"

struct cache_store;
struct edge;
struct http_txn;

/* ---------------- ranges (edge_range.c) ---------------- */

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
void edge_range_send_obj(
    struct http_txn *txn, const struct edge_range_plan *p, struct cache_obj *o);

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

/* ---------------- codings (edge_variant.c) ---------------- */

struct edge_variant_ctx;

/* From the configuration; starts the compression pool.  CDN_EINVAL
 * after logging if a compress_types entry is malformed. */
int edge_variant_init(struct edge *e) CDN_WUR;
void edge_variant_fini(struct edge *e);

/* The codings the request's Accept-Encoding takes, best first, into
 * <order>; returns how many (cache_accept_enc_order()). */
unsigned edge_variant_accepted(
    const struct http_request *req, enum cache_enc order[CACHE_ENC_COUNT]);

/*
 * Find the stored coding of (key, vary_key) that suits the request's
 * Accept-Encoding best.  A coding this node made that is no longer fresh
 * is passed over (its source is the one to revalidate).  When the client
 * takes identity and only a gzip or br copy is stored, an identity copy
 * is decoded now (capped by decompress_max_size and decompress_max_ratio;
 * a bomb is logged and remembered) and stored; a body that decodes to
 * more than 1 MiB is decoded by the compression pool meanwhile.
 * Returns CDN_OK (*objp: one reference), CDN_NOTFOUND, CDN_AGAIN (a miss
 * while the identity copy is being decoded: the origin's response must
 * not replace the coded one if it is coded too, or the copy would never
 * be kept), or CDN_ELIMIT when codings are stored but none is acceptable
 * (the caller answers 406).
 */
int edge_variant_get(struct edge *e, const struct http_request *req,
    const uint8_t key[CACHE_HASH_LEN], uint64_t vary_key,
    struct cache_obj **objp, int *from_memory) CDN_WUR;

/*
 * Make sure <*op> (from edge_variant_get) holds the body bytes the request
 * will be sent: an object read from disk for a Range request holds only
 * its metadata, and then only the chunks the range covers are read (all
 * of them with <need_all>, for a revalidation).  If that fails the whole
 * object is read again.  On failure *op is NULL (treat as a miss).
 */
int edge_variant_load_body(struct edge *e, const struct http_request *req,
    struct cache_obj **op, int need_all) CDN_WUR;

/*
 * Would a response with head <fields> (the origin's, "Name: v\r\n"
 * lines) be given compressed variants?  Its type is in compress_types,
 * it is not content-coded, has no "Cache-Control: no-transform", and
 * <content_length> (-1: unknown) is at least compress_min_size.
 */
int edge_variant_compressible(const struct edge *e, const char *fields,
    size_t len, int64_t content_length);

/*
 * The stored coding of a response head: CACHE_ENC_* from its
 * Content-Encoding, or -1 when it is a coding the node does not store.
 */
int edge_variant_coding(const char *fields, size_t len);

/* After <o> was stored: queue its compressed variants if it is an
 * identity response that qualifies. */
void edge_variant_stored(struct edge *e, struct cache_obj *o);

/*
 * Keys whose responses were too large to store (max_object_size): a
 * Range request for one goes to the origin with its Range field, as the
 * node could not answer it from cache.  A small lossy memo: a forgotten
 * key costs one whole fetch.
 */
void edge_variant_note_large(struct edge *e, const uint8_t key[CACHE_HASH_LEN]);
int edge_variant_is_large(
    const struct edge *e, const uint8_t key[CACHE_HASH_LEN]);

/* Process-wide counters, for /stats and /metrics. */
struct edge_variant_counters {
	uint64_t made;        /* gzip / br variants stored */
	uint64_t not_smaller; /* variants not kept: not smaller */
	uint64_t dropped;     /* compression jobs refused: queue full */
	uint64_t superseded;  /* source removed or replaced while compressing */
	uint64_t decoded;     /* identity copies decoded on demand */
	uint64_t bombs;       /* decodes stopped at the caps */
	uint64_t not_acceptable; /* 406 answers */
	uint64_t partial_reads;  /* ranges served reading only their chunks */
	uint64_t in_bytes, out_bytes; /* of the variants made */
	uint64_t busy_ms;             /* compression time */
};
void edge_variant_counters(
    const struct edge *e, struct edge_variant_counters *c);

#endif /* EDGE_VARIANT_H */
