/*
 * Serving stored objects by coding (edge_variant.c): the variant a client
 * takes, copies decoded on demand, and compressed variants made after a
 * store.  Kept apart from edge_cache.c, which calls in at the lookup
 * (edge_variant_get) and after a store (edge_variant_stored).
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

struct edge;

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
 * Does the request take a response of coding <enc> whose head is <fields>
 * ("Name: v\r\n" lines)?  For the codings the node knows, whether <enc> is
 * among edge_variant_accepted(); for CACHE_ENC_OTHER, whether its
 * Accept-Encoding accepts every coding the Content-Encoding of <fields>
 * lists (cache_accept_enc_takes).
 */
int edge_variant_takes(const struct http_request *req, enum cache_enc enc,
    const char *fields, size_t len);

/*
 * Find the stored coding of (key, vary_key) that suits the request's
 * Accept-Encoding best; failing those, a response in a coding the node
 * does not know (CACHE_ENC_OTHER), stored as it came, if the request
 * takes it.  A coding this node made that is no longer fresh
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
 * will be sent.  An object read from disk holds only its metadata: with
 * <need_all> (a revalidation, stale-while-revalidate) its whole body is
 * read; otherwise one larger than the memory tier keeps (see
 * cache_store_stream_min) is left so, for edge_range_disk to read as it
 * sends, and of a smaller one only the chunks a range covers are read, or
 * the whole body (which the memory tier then keeps).  If reading a range's
 * chunks fails the whole object is read again.  On failure *op is NULL
 * (treat as a miss).
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

/* The same, from what cache_exchange_parse_head noted of the head <hs>
 * and its Cache-Control's no-transform. */
int edge_variant_compressible_head(const struct edge *e,
    const struct cache_head_scan *hs, int no_transform, int64_t content_length);

/* edge_variant_compressible for the stored head and body of <o>, for an
 * object whose origin head was not scanned (a 304 merged into it). */
int edge_variant_recodable(const struct edge *e, const struct cache_obj *o);

/* After <o> was stored: queue its compressed variants if it is an
 * identity response that qualifies.  <recodable>: what
 * edge_variant_compressible_head said of its head (or
 * edge_variant_recodable of it); its body's size is checked here. */
void edge_variant_stored(struct edge *e, struct cache_obj *o, int recodable);

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
