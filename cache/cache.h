/*
 * The cache: keys, RFC 9111 policy, cached objects, the memory tier and the
 * persistent LMDB tier with its writer thread.
 *
 * Pure logic (cache_key.c, cache_policy.c, cache_sf.c) takes and returns
 * plain values and may be called from any thread.  The store (cache_store.c)
 * is shared by every worker: reads run on the caller's thread (LMDB read
 * transactions, never kept across a return to the event loop), writes go to
 * one writer thread through a queue, so no event loop waits for a disk
 * write.
 */
#ifndef CACHE_H
#define CACHE_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "common/cdn.h"

/* ================= keys (cache_key.c) ================= */

#define CACHE_HASH_LEN 16 /* bytes of a key hash (XXH3 128-bit) */
/* Most query parameters cache_key_build() sorts (more: CDN_ELIMIT). */
#define CACHE_KEY_MAX_PARAMS 256
/* Most distinct field names in a Vary value (more: CDN_EINVAL). */
#define CACHE_VARY_MAX_FIELDS 64

/* How the query string takes part in the key (per site). */
enum cache_query_mode {
	CACHE_QUERY_KEEP = 0,    /* as sent */
	CACHE_QUERY_SORT,        /* parameters sorted by name, then value */
	CACHE_QUERY_DROP,        /* no query in the key at all */
	CACHE_QUERY_DROP_LISTED, /* drop the listed parameters, keep order */
	CACHE_QUERY_KEEP_LISTED, /* keep only the listed parameters */
};

struct cache_key_rules {
	enum cache_query_mode query_mode;
	/* Parameter names for *_LISTED; a trailing '*' matches a prefix
	 * ("utm_*").  Borrowed: lives as long as the config. */
	const char *const *params;
	unsigned nparams;
	int sort_after_filter; /* *_LISTED modes: also sort what is kept */
	int include_scheme;    /* "https://h/p" and "http://h/p" differ */
};

/*
 * Build the primary cache key of a request as a normalised URL:
 * [scheme "://"] host path ["?" query], with
 *   - host lower-cased, a default port (:80 for http, :443 for https)
 *     dropped, a trailing dot dropped;
 *   - path: percent-encodings of unreserved characters decoded (%41 -> A),
 *     other percent-encodings upper-cased (%2f -> %2F), dot segments
 *     removed (RFC 3986 §5.2.4), an empty path made "/";
 *   - query per <rules>; an empty query after filtering drops the '?'.
 * Writes at most <cap> bytes to <out> (not NUL-terminated) and the length
 * to *outlen.  Returns CDN_OK, CDN_ELIMIT if <cap> is too small (it must
 * also hold the path before dot segments are removed) or a sorted query
 * has more than CACHE_KEY_MAX_PARAMS parameters, or CDN_EINVAL for a
 * malformed percent-encoding, host or port, or a path not starting with
 * '/' (the caller then bypasses the cache).  On error *outlen is untouched
 * and <out> holds garbage.  A NULL <scheme> means "http".
 */
int cache_key_build(const struct cache_key_rules *rules, const char *scheme,
    const char *host, size_t hostlen, const char *path, size_t pathlen,
    const char *query, size_t querylen, int has_query, char *out, size_t cap,
    size_t *outlen) CDN_WUR;

/* 128-bit hash of a key string. */
void cache_key_hash(const char *s, size_t len, uint8_t out[CACHE_HASH_LEN]);

/* A request header field as the Vary logic sees it. */
struct cache_field {
	const char *name;
	size_t name_len;
	const char *value;
	size_t value_len;
};

/*
 * The secondary key of a request under a response's Vary value
 * (RFC 9111 §4.1): for each field name listed in <vary> (case-insensitive,
 * in sorted order, duplicates once), the request's values of that field
 * (all lines joined with ",", OWS around commas removed, absent distinct
 * from empty), hashed to 64 bits.  Returns CDN_OK, or CDN_EINVAL if <vary>
 * contains "*" (such a response never matches: RFC 9111 §4.1) or is
 * malformed (a member that is not a token, or more than
 * CACHE_VARY_MAX_FIELDS distinct names).  An empty <vary> gives *out == 0;
 * a non-empty one never does.
 */
int cache_vary_key(const char *vary, size_t vary_len,
    const struct cache_field *fields, unsigned nfields, uint64_t *out) CDN_WUR;

/* ================= policy (cache_policy.c) ================= */

/* Cache-Control style directives (RFC 9111 §5.2), of one field kind. */
struct cache_cc {
	unsigned is_set : 1; /* at least one directive was seen */
	unsigned no_store : 1;
	unsigned no_cache : 1;        /* unqualified no-cache */
	unsigned no_cache_fields : 1; /* no-cache="f1, f2": store, strip */
	unsigned is_private : 1;      /* unqualified private */
	unsigned private_fields : 1;  /* private="f": store, strip */
	unsigned is_public : 1;
	unsigned must_revalidate : 1;
	unsigned proxy_revalidate : 1;
	unsigned must_understand : 1;
	unsigned no_transform : 1;
	unsigned immutable : 1;
	unsigned only_if_cached : 1; /* request */
	/* -1: directive absent.  Values in seconds, clamped to 2^31 - 1. */
	int64_t max_age;
	int64_t s_maxage;
	int64_t max_stale; /* request; INT64_MAX for a bare max-stale */
	int64_t min_fresh; /* request */
	int64_t stale_while_revalidate;
	int64_t stale_if_error;
};

/* Reset to "nothing seen" (every number -1). */
void cache_cc_init(struct cache_cc *cc);
/*
 * Add the directives of one field value (several fields of the same name
 * are parsed in turn).  Unknown directives are ignored; a malformed one is
 * ignored too, except that a malformed max-age / s-maxage counts as 0
 * ("stale") as RFC 9111 §4.2.1 advises, and that the restrictive ones
 * (no-store, unqualified no-cache and private, must-revalidate, ...) are
 * honoured even when malformed.  A repeated directive keeps its most
 * restrictive value.
 */
void cache_cc_parse(struct cache_cc *cc, const char *value, size_t len);

/*
 * A CDN-Cache-Control value (RFC 9213), an RFC 8941 Dictionary whose
 * members are the response directives of Cache-Control, typed: max-age,
 * s-maxage, stale-while-revalidate and stale-if-error are non-negative
 * Integers; no-store, must-revalidate, proxy-revalidate, public,
 * immutable, must-understand and no-transform are Boolean true; no-cache
 * and private are Boolean true or a String of field names.  Other members
 * (any type) are ignored, and so are parameters.  Several field lines are
 * one value joined by commas (the caller joins them).  Fills a fresh
 * <cc> (cache_cc_init) and returns CDN_OK with cc->is_set when the
 * dictionary has at least one member; CDN_EINVAL when the value is not a
 * valid Dictionary or a directive has a value of another type (RFC 9213
 * §2.1: not consumed): <cc> is then reset, and the field is to be treated
 * as absent.  A repeated key takes its last value (RFC 8941 §4.2.2).
 */
int cache_cdn_cc_parse(
    struct cache_cc *cc, const char *value, size_t len) CDN_WUR;

/* The per-site policy the operator configures. */
struct cache_policy_conf {
	int64_t default_ttl_s;      /* for cacheable responses without any
	                             * freshness information; 0: use heuristics */
	int64_t min_ttl_s;          /* floor on explicit lifetimes */
	int64_t max_ttl_s;          /* ceiling on every lifetime */
	unsigned heuristic_percent; /* of (Date - Last-Modified), RFC 9111
	                             * §4.2.2; 10 by default */
	int64_t heuristic_max_s;    /* cap on heuristic lifetimes */
	int share_set_cookie;       /* store responses with Set-Cookie */
	int honor_targeted;         /* CDN-Cache-Control / Surrogate-Control */
};

/* What the policy needs to know of one exchange. */
struct cache_exchange {
	/* request */
	int method_get_or_head; /* GET or HEAD */
	int has_authorization;
	struct cache_cc req_cc;
	int req_pragma_no_cache; /* Pragma: no-cache without Cache-Control */
	/* response */
	int status;
	struct cache_cc cc;     /* Cache-Control */
	struct cache_cc cdn_cc; /* CDN-Cache-Control, then Surrogate-Control */
	int64_t date;           /* -1 if absent or invalid */
	int64_t expires; /* -1 absent; an invalid Expires is a past time */
	int has_expires;
	int64_t last_modified; /* -1 if absent */
	int64_t age;           /* Age header in seconds, -1 if absent */
	int has_set_cookie;
	int vary_star; /* Vary: * */
	/* A transfer coding other than chunked: the body was read until the
	 * origin closed, so its end is not proof of completeness. */
	int transfer_coded;
	/* clock, in seconds since the epoch (RFC 9111 §4.2.3) */
	int64_t request_time;
	int64_t response_time;
};

/*
 * Fill the response-side fields of <x> from an origin response head:
 * <fields> is "Name: value\r\n" lines (no status line).
 */
void cache_exchange_parse_response(
    struct cache_exchange *x, const char *fields, size_t len);

/* What a response head says of its representation, noted in the pass of
 * cache_exchange_parse_head for callers that would walk the fields again.
 * The pointers borrow the fields parsed. */
struct cache_head_scan {
	const char *ctype; /* the first Content-Type value; NULL if none */
	size_t ctype_len;
	const char *vary; /* the first Vary value; NULL if none */
	size_t vary_len;
	int has_coding; /* a Content-Encoding field, even an empty one */
	int coding;     /* as cache_enc_of_fields returns it */
	/* An Age or Cache-Status field, which a stored copy leaves out, may
	 * be among the fields: one was seen, or the walk ended at an empty
	 * line before the end.  0: a copy of the fields needs no filter. */
	int age_or_status;
	/* A field named as one of the tag fields given may be among the
	 * fields: one was seen, or the walk ended at an empty line before
	 * the end.  0: cache_tags_parse of them would find no tag. */
	int may_have_tags;
};

/* A field name with its length, for walks that compare many names. */
struct cache_name {
	const char *p;
	size_t len;
};

/* cache_exchange_parse_response, noting in <hs> what it says of the
 * representation; <tag_fields> (<ntag_fields> of them) are the names
 * cache_tags_parse would be given, for hs->may_have_tags. */
void cache_exchange_parse_head(struct cache_exchange *x, const char *fields,
    size_t len, const struct cache_name *tag_fields, unsigned ntag_fields,
    struct cache_head_scan *hs);

/* The result of deciding whether and how long to store a response. */
struct cache_decision {
	int storable;
	const char *reason;    /* static; why not storable, or how fresh */
	int64_t freshness_s;   /* freshness lifetime (RFC 9111 §4.2.1) */
	int64_t initial_age_s; /* corrected_initial_age (§4.2.3) */
	int64_t swr_s;         /* stale-while-revalidate allowance */
	int64_t sie_s;         /* stale-if-error allowance */
	unsigned must_revalidate : 1; /* no stale ever (incl. s-maxage) */
	unsigned no_cache : 1;        /* store, but validate before each use */
	unsigned heuristic : 1;       /* lifetime came from Last-Modified */
	unsigned derived : 1; /* a coding made here from another variant:
	                       * fresh as its source, never revalidated */
};

/*
 * RFC 9111 §3 and §4.2: may a shared cache store this response, and for
 * how long is it fresh?  Never fails.
 */
void cache_policy_decide(const struct cache_policy_conf *pc,
    const struct cache_exchange *x, struct cache_decision *d);

/* The current age of a stored response (RFC 9111 §4.2.3). */
int64_t cache_current_age(
    int64_t initial_age_s, int64_t response_time, int64_t now);

/* What to do with a stored response for a new request. */
enum cache_use {
	CACHE_USE_FRESH = 0,        /* serve it */
	CACHE_USE_STALE_OK,         /* serve it stale (max-stale allows) */
	CACHE_USE_STALE_REVALIDATE, /* serve it, revalidate in background
	                             * (stale-while-revalidate) */
	CACHE_USE_REVALIDATE,       /* validate with the origin first */
	CACHE_USE_MISS,             /* ignore it (request no-store etc.) */
};

/*
 * RFC 9111 §4 and §5.2.1 at lookup: given the stored decision fields, the
 * current age and the request's directives, how may it be used?
 */
enum cache_use cache_policy_use(const struct cache_decision *stored,
    int64_t current_age_s, const struct cache_cc *req_cc,
    int req_pragma_no_cache);

/* ================= structured fields (cache_sf.c) ================= */

/* What a Dictionary member holds (RFC 8941 §3.2): an Item or an Inner
 * List. */
enum cache_sf_type {
	CACHE_SF_INTEGER = 1,
	CACHE_SF_DECIMAL,
	CACHE_SF_STRING,
	CACHE_SF_TOKEN,
	CACHE_SF_BYTES,
	CACHE_SF_BOOLEAN,
	CACHE_SF_INNER_LIST,
};

/* One member as parsed; its parameters were checked and dropped.  Every
 * pointer borrows the value being parsed. */
struct cache_sf_member {
	const char *key;
	size_t key_len;
	enum cache_sf_type type;
	int64_t num;     /* INTEGER; DECIMAL in thousandths; BOOLEAN 0 or 1 */
	const char *str; /* STRING: inside the quotes, escapes kept; TOKEN;
	                  * BYTES: the base64 text */
	size_t str_len;
};

/* Called per member, in order; anything but CDN_OK stops the parse. */
typedef int (*cache_sf_member_fn)(void *arg, const struct cache_sf_member *m);

/*
 * Parse <value> as an RFC 8941 Dictionary (§4.2.2), strictly: lower-case
 * keys, SP (not HTAB) around the value and after ";", OWS around commas,
 * no trailing comma, Integers of at most 15 digits, Decimals of at most
 * 12.3, Strings of printable ASCII with only \" and \\ escapes, Tokens,
 * Byte Sequences, Booleans ?0 / ?1, Inner Lists, parameters on everything
 * (checked, then dropped).  <fn> sees each member as it is parsed; a key
 * may come again, and then its last member is the dictionary's (the
 * consumer keeps the last).  An empty value is an empty dictionary.
 * Returns CDN_OK, CDN_EINVAL at the first error (RFC 8941 §4.2: the whole
 * field is then ignored, so the consumer drops what <fn> saw), or what
 * <fn> returned to stop.
 */
int cache_sf_dict_parse(
    const char *value, size_t len, cache_sf_member_fn fn, void *arg) CDN_WUR;

/* ================= objects (cache_obj.c) ================= */

#define CACHE_CHUNK_SIZE (256 * 1024) /* body bytes per chunk */

/*
 * A cached response, immutable once built, shared by reference between
 * workers, the memory tier and the writer thread.  The body is held as
 * chunks of CACHE_CHUNK_SIZE bytes (the last may be shorter), so a large
 * object needs no large contiguous allocation and a range reads only the
 * chunks it needs.
 */
struct cache_obj {
	uint32_t magic;
#define CACHE_OBJ_MAGIC 0x3a91c4e7u
	atomic_uint refcnt;
	uint8_t key[CACHE_HASH_LEN]; /* primary key hash */
	uint64_t variant;            /* Vary secondary key; 0 if none */
	int status;
	struct cache_decision d; /* what the policy decided at store time */
	int64_t response_time;   /* RFC 9111 §4.2.3, seconds */
	int64_t stored_at;       /* seconds */
	uint64_t purge_gen;      /* purge generation at fill start */
	char *tags; /* Surrogate-Key / Cache-Tag tags, space-separated */
	size_t tags_len;
	char *url; /* the normalised key string */
	size_t url_len;
	char *fields; /* response head to replay: "Name: value\r\n" lines,
	               * hop-by-hop fields and Age already removed */
	size_t fields_len;
	char *vary; /* the response's Vary value ("" if none) */
	size_t vary_len;
	uint64_t body_len;
	uint32_t nchunks;
	unsigned char **chunks; /* nchunks pointers; NULL if body not loaded */
	/* A sealed memory file holding the whole body, which chunks[] then
	 * map read-only (cache_obj_seal), or -1.  Its bytes never change
	 * while a descriptor is open or the kernel holds its pages. */
	int body_fd;
	/* Private to cache/ (cache_obj.c, cache_store_read.c): */
	uint32_t chunks_cap;       /* slots allocated in chunks[] */
	unsigned char *chunk_slot; /* chunks[] while it has one slot */
	uint64_t body_want;        /* cache_obj_reserve's hint; 0: none */
	size_t last_chunk_cap;     /* bytes allocated for chunks[nchunks - 1] */
	/* The one chunk is cache_slab_alloc(last_chunk_cap)'s, not malloc's
	 * (a small body appended, cache_obj_append). */
	uint8_t is_body_slab;
	/* The one mutable field of a shared object: the LRU bucket (minutes
	 * since the epoch) of the last access recorded in LMDB, so that
	 * cache_store_touch() enqueues at most once per object and bucket. */
	atomic_uint lru_bucket;
	/* The purge verdict (CACHE_PURGED_*) as of purge seq purge_seen, so
	 * that a hit re-checks the rules only after a purge: written by
	 * whichever thread checks first (same result for the same seq). */
	_Atomic uint64_t purge_seen;
	atomic_int purge_state;
};

/*
 * A new object with one reference; copies <url>, <fields>, <vary>.  The
 * body is appended with cache_obj_append() before the object is shared.
 * Returns NULL if memory runs out (a response simply is not stored).
 */
struct cache_obj *cache_obj_new(const uint8_t key[CACHE_HASH_LEN],
    uint64_t variant, int status, const struct cache_decision *d,
    int64_t response_time, const char *url, size_t url_len, const char *fields,
    size_t fields_len, const char *vary, size_t vary_len);
/* Set the tags (before sharing; see cache_tags_parse).  CDN_ENOMEM. */
int cache_obj_set_tags(
    struct cache_obj *o, const char *tags, size_t len) CDN_WUR;
/* Append body bytes (before sharing).  CDN_ENOMEM if memory runs out. */
int cache_obj_append(struct cache_obj *o, const void *p, size_t len) CDN_WUR;
/*
 * Say, before the first append, that <body_len> bytes will be appended, so
 * that each chunk is allocated at its final size (no growing and copying).
 * A hint: appending more or less is still correct.
 */
void cache_obj_reserve(struct cache_obj *o, uint64_t body_len);
/*
 * Append a chunk the caller malloc'd with <cap> bytes, of which <len> are
 * body; the object owns it from now on (no copy).  Every chunk but the
 * last must hold CACHE_CHUNK_SIZE bytes.  CDN_ENOMEM if memory runs out
 * (the chunk then still belongs to the caller).
 */
int cache_obj_adopt_chunk(
    struct cache_obj *o, unsigned char *chunk, size_t len, size_t cap) CDN_WUR;
struct cache_obj *cache_obj_ref(struct cache_obj *o);
void cache_obj_unref(struct cache_obj **op);
/* Bytes of memory the object holds (for the memory tier's budget). */
size_t cache_obj_footprint(const struct cache_obj *o);
/* A body of at most this many bytes appended with cache_obj_append() is
 * kept in the memory tier's own memory, apart from the malloc heap
 * (cache_slab.c); chunks adopted with cache_obj_adopt_chunk() are not. */
#define CACHE_OBJ_SMALL_MAX (16 * 1024)

/* ================= sealed bodies (cache_objfd.c) ================= */

/* The smallest body moved into a sealed memory file. */
#define CACHE_OBJ_FD_MIN (64 * 1024)

/*
 * Move the body of <o> into a sealed memfd (o->body_fd), mapped read-only
 * behind o->chunks, so that the kernel may send it from the file
 * (sendfile) rather than copy it from user memory; the old chunks are
 * freed.  None of them may be borrowed by anyone (a chunk adopted from a
 * block that others still send from must not be sealed away).  A shared
 * object (more than one reference), a body shorter than CACHE_OBJ_FD_MIN,
 * one not wholly loaded, or one the descriptor budget (a quarter of
 * RLIMIT_NOFILE) or the kernel refuses stays as it is.  Returns 1 if the
 * body is now sealed, else 0.
 */
int cache_obj_seal(struct cache_obj *o);
/* Sealed bodies alive in this process, and their bytes. */
uint64_t cache_obj_sealed_count(void);
uint64_t cache_obj_sealed_bytes(void);
/*
 * Whether <o> is consistent: a live reference, a chunk count that
 * matches the body length (or no body: metadata read for a listing), a
 * head of whole lines.  O(1); for CDN_DASSERT at the store's entry points.
 */
int cache_obj_valid(const struct cache_obj *o);

/* ================= encodings (cache_encode.c, cache_negotiate.c) ======== */

/*
 * The content codings the node stores and serves.  The value is the
 * encoding id kept in the top byte of a stored object's variant id (see
 * cache_variant_id), so it is part of the on-disk key: never renumber.
 */
enum cache_enc {
	CACHE_ENC_IDENTITY = 0,
	CACHE_ENC_GZIP = 1,
	CACHE_ENC_BR = 2,
	/* Any other Content-Encoding (zstd, deflate, a list of codings): the
	 * bytes are opaque, stored and served as they came, never recoded;
	 * who may have them is read from the stored field itself
	 * (cache_accept_enc_takes). */
	CACHE_ENC_OTHER = 3,
};
/* The codings the node negotiates, decodes and makes: the first three. */
#define CACHE_ENC_COUNT 3

/* "identity", "gzip" or "br" (not CACHE_ENC_OTHER). */
const char *cache_enc_name(enum cache_enc enc);
/* The coding named by a Content-Encoding value: CACHE_ENC_IDENTITY, _GZIP
 * or _BR, or -1 when it is one we do not know (deflate, compress, a list
 * of several codings).  An empty value or "identity" is
 * CACHE_ENC_IDENTITY; "x-gzip" is gzip. */
int cache_enc_parse(const char *value, size_t len);
/* The coding of a response head ("Name: value\r\n" lines): as
 * cache_enc_parse of its Content-Encoding, CACHE_ENC_IDENTITY when it has
 * none, and CACHE_ENC_OTHER for a coding we do not know (never -1). */
int cache_enc_of_fields(const char *fields, size_t len);

/*
 * The variant id of a stored object: the Vary secondary key (cache_vary_key)
 * with its top byte replaced by the encoding id, so that the gzip, br and
 * identity variants of one response share its primary key hash and its
 * Vary key, and sort together in LMDB.  Without Vary and for identity it
 * is 0, as before variants existed.
 */
#define CACHE_VARIANT_ENC_SHIFT 56
#define CACHE_VARIANT_VARY_MASK ((UINT64_C(1) << CACHE_VARIANT_ENC_SHIFT) - 1)
static inline uint64_t
cache_variant_id(uint64_t vary_key, enum cache_enc enc)
{
	return (vary_key & CACHE_VARIANT_VARY_MASK) |
	    ((uint64_t)enc << CACHE_VARIANT_ENC_SHIFT);
}
static inline enum cache_enc
cache_variant_enc(uint64_t variant)
{
	return (enum cache_enc)(variant >> CACHE_VARIANT_ENC_SHIFT);
}

/*
 * Accept-Encoding (RFC 9110 §12.5.3), accumulated over every field line of
 * a request.  q-values are kept in thousandths.
 */
struct cache_accept_enc {
	unsigned seen : 1;      /* at least one Accept-Encoding line */
	int q[CACHE_ENC_COUNT]; /* -1: not named */
	int q_star;             /* -1: no "*" */
};
void cache_accept_enc_init(struct cache_accept_enc *ae);
/* Add one field value.  Malformed members (a bad q-value) are skipped. */
void cache_accept_enc_parse(
    struct cache_accept_enc *ae, const char *value, size_t len);
/*
 * The acceptable codings, best first, into <order>; returns how many (0:
 * nothing is acceptable, not even identity).  Higher q wins; on equal q
 * the server prefers br, then gzip, then identity.  Identity is acceptable
 * unless "identity;q=0", or "*;q=0" without an identity member, excludes
 * it.  Without any Accept-Encoding field only identity is offered: RFC
 * 9110 allows any coding then, but clients that send none are the ones
 * least likely to decode one.
 */
unsigned cache_accept_enc_order(
    const struct cache_accept_enc *ae, enum cache_enc order[CACHE_ENC_COUNT]);
/*
 * Does a client take a response whose Content-Encoding is <ce> (codings
 * we do not know, served as they came)?  <ae>[0..n) are the values of its
 * Accept-Encoding lines (n == 0: it sent none).  RFC 9110 §12.5.3: with
 * no Accept-Encoding any coding is acceptable; otherwise each coding <ce>
 * lists must be named with q > 0, or, not named, be covered by "*" with
 * q > 0 (names compare without case; x-gzip is gzip).  A member with a
 * malformed q-value is skipped, as cache_accept_enc_parse does.
 */
int cache_accept_enc_takes(
    const struct cache_field *ae, unsigned n, const char *ce, size_t celen);

/*
 * Output of the coders: called with each piece of encoded or decoded
 * output, in order.  Returns CDN_OK to go on, anything else to stop (the
 * coder then returns that code).
 */
typedef int (*cache_sink_fn)(void *arg, const void *p, size_t len);

/* Limits of a decompression: a compression bomb stops at them. */
struct cache_decode_limits {
	uint64_t max_size;  /* most output bytes */
	unsigned max_ratio; /* most output / input, once output passes
	                     * CACHE_DECODE_RATIO_FLOOR (0: no ratio cap) */
};
#define CACHE_DECODE_RATIO_FLOOR (UINT64_C(1) << 20)

/*
 * Encode <nseg> input segments (one logical body) with <enc> (gzip or br)
 * at <level> (zlib 1-9, brotli 0-11) into <sink>.  Stops with CDN_ELIMIT
 * as soon as the output would exceed <max_out> bytes (pass the input
 * length: a variant that is not smaller is not wanted).  Returns CDN_OK,
 * CDN_ELIMIT, CDN_ENOMEM, or the sink's code.
 */
int cache_encode(enum cache_enc enc, int level, const void *const *segs,
    const size_t *lens, unsigned nseg, uint64_t max_out, cache_sink_fn sink,
    void *arg) CDN_WUR;
/*
 * Decode <nseg> input segments coded with <enc> (gzip, including several
 * concatenated members, or br) into <sink>.  Returns CDN_OK, CDN_ELIMIT
 * when the output passes lim->max_size or lim->max_ratio times the input
 * (a compression bomb: the caller logs it), CDN_EINVAL for malformed or
 * truncated input, CDN_ENOMEM, or the sink's code.  Memory use is bounded
 * by the coders' state and one 64 KiB buffer, whatever the input.
 */
int cache_decode(enum cache_enc enc, const void *const *segs,
    const size_t *lens, unsigned nseg, const struct cache_decode_limits *lim,
    cache_sink_fn sink, void *arg) CDN_WUR;

/* ================= variants (cache_variant.c) ================= */

struct cdn_strbuf;

/*
 * The stored head of a coding of a response, from the head <fields> of
 * another coding of it: Content-Encoding set to <enc> (removed for
 * identity), the ETag made per coding by suffixing its opaque part with
 * "-" and the coding's name ("abc" -> "abc-gzip", W/"abc" -> W/"abc-gzip":
 * strong stays strong, so If-Range keeps working per coding, and no two
 * codings share a validator), Accept-Encoding merged into Vary, and the
 * fields a recoding falsifies (Content-Length, Content-MD5, Repr-Digest)
 * dropped.  Appends to <out>.
 */
void cache_variant_fields(
    const char *fields, size_t len, enum cache_enc enc, struct cdn_strbuf *out);
/*
 * Append Accept-Encoding to the Vary of <fields> (lines "Name: v\r\n")
 * unless it is listed already or Vary is "*"; add "Vary: Accept-Encoding"
 * if there is none.  Appends the result to <out>.
 */
void cache_vary_merge_ae(
    const char *fields, size_t len, struct cdn_strbuf *out);

/*
 * A new object holding <src>'s body recoded to <enc> (exactly one of the
 * two is identity), with the fields of cache_variant_fields(), the same
 * freshness, and d.derived set.  Encoding at <level> stops with
 * CDN_ELIMIT if the result is not smaller than <src>'s body; decoding
 * stops with CDN_ELIMIT at <lim> (a compression bomb).  On CDN_OK *outp
 * holds one reference.  Returns CDN_OK, CDN_ELIMIT, CDN_EINVAL (corrupt
 * coded body) or CDN_ENOMEM.  Runs on the calling thread.
 */
int cache_variant_make(const struct cache_obj *src, enum cache_enc enc,
    int level, const struct cache_decode_limits *lim,
    struct cache_obj **outp) CDN_WUR;

struct cache_store;

struct cache_variant_conf {
	unsigned gzip_level;               /* 1-9; 0: no gzip variants */
	unsigned brotli_level;             /* 1-11; 0: no brotli variants */
	unsigned threads;                  /* compression threads (>= 1) */
	uint64_t queue_bytes;              /* body bytes waiting, at most */
	struct cache_decode_limits decode; /* of decode jobs */
};

/*
 * The compression pool: threads that make the gzip and brotli variants of
 * stored identity responses off the event loops and store those that are
 * smaller.  Shared by every worker; submit may be called from any thread.
 */
struct cache_variants;

struct cache_variants *cache_variants_new(
    struct cache_store *s, const struct cache_variant_conf *c);
/* Finish the job in hand, drop the queued ones, stop, free.  Before
 * cache_store_close().  NULLs *vp. */
void cache_variants_free(struct cache_variants **vp);
/*
 * Queue the making of <o>'s compressed variants (a stored identity
 * response; the pool takes its own reference).  Returns 0 if the queue is
 * full (the response is then served uncompressed; counted).
 */
int cache_variants_submit(struct cache_variants *v, struct cache_obj *o);

/* Where the decoding of a coded response to identity stands. */
enum cache_decode_state {
	CACHE_DECODE_NONE = 0, /* not queued (or done: look it up) */
	CACHE_DECODE_PENDING,  /* queued or running */
	CACHE_DECODE_FAILED,   /* a bomb or a corrupt body: not tried again */
};
/*
 * Queue the decoding of <o> (a stored gzip or br response) to an identity
 * copy, stored when made; a bomb (cache_variant_conf.decode) or a corrupt
 * body is logged, counted and remembered as failed.  Each response is
 * queued once: returns 0 if it is pending or failed already, or the queue
 * is full.
 */
int cache_variants_submit_decode(struct cache_variants *v, struct cache_obj *o);
int cache_variants_decode_state(
    struct cache_variants *v, const struct cache_obj *o);
/* Remember that <o> cannot be decoded within the caps (found inline). */
void cache_variants_decode_failed(
    struct cache_variants *v, const struct cache_obj *o);

struct cache_variant_stats {
	uint64_t queued, dropped;   /* submitted / refused (queue full) */
	uint64_t made, not_smaller; /* variants stored / not kept */
	uint64_t failed;            /* out of memory */
	uint64_t superseded;        /* source removed or replaced meanwhile */
	uint64_t decoded, bombs;    /* decode jobs: stored / stopped at caps */
	uint64_t in_bytes, out_bytes; /* of the variants made */
	uint64_t busy_ns;             /* time spent compressing */
};
void cache_variants_stats(
    struct cache_variants *v, struct cache_variant_stats *st);

/* ========== the store (cache_store*.c, cache_stream.c, cache_mem.c) ===== */

struct cache_store;

struct cache_store_conf {
	const char *dir;           /* the LMDB environment's directory */
	uint64_t disk_bytes;       /* map size: the disk budget */
	uint64_t memory_bytes;     /* memory tier budget */
	uint64_t max_object_bytes; /* larger responses are not stored */
	unsigned high_water_pct;   /* evict above this share of disk_bytes */
	unsigned low_water_pct;    /* down to this */
	int is_preallocated; /* the file reserved whole, written by its map */
};

/*
 * Open (creating if needed) the store in conf->dir and start its writer
 * thread.  Start-up never scans the objects.  Returns NULL after logging
 * if the directory or the environment cannot be opened.
 */
struct cache_store *cache_store_open(const struct cache_store_conf *conf);

/* Why cache_store_open_diag() returned NULL. */
enum cache_open_fail {
	CACHE_OPEN_FAILED = 1, /* not usable here: a read-only file system,
	                        * no permission, not a directory, ... */
	CACHE_OPEN_DAMAGED,    /* damaged (docs/cache-damage.md): move it
	                        * aside (cache_store_move_aside), then retry */
};
#define CACHE_WHY_LEN 160
struct cache_open_err {
	enum cache_open_fail kind;
	char why[CACHE_WHY_LEN]; /* short cause: "read-only file system" */
};

/*
 * As cache_store_open, and on failure fills *err.  Before LMDB reads a
 * data page it checks what it can without one: the marker a crash inside
 * the store left (cache_damage.c), LMDB's meta pages, and the size of
 * data.mdb against the last page its meta page names.  The store holds a
 * shared lock on the directory for its life (see cache_store_move_aside).
 */
struct cache_store *cache_store_open_diag(
    const struct cache_store_conf *conf, struct cache_open_err *err);

/*
 * Move the LMDB files of the damaged cache in <dir> into a new
 * subdirectory "damaged-<UTC time>" (kept for inspection), so that the
 * next cache_store_open starts empty.  Waits up to <wait_ms> for every
 * other process that has the store open (purged) to close it, so that no
 * process keeps writing to the files moved away.  On CDN_OK, <aside>
 * holds the new directory's path; otherwise <why> says what failed
 * (CDN_EIO: cannot write, CDN_AGAIN: still in use).
 */
int cache_store_move_aside(const char *dir, unsigned wait_ms, char *aside,
    size_t aside_cap, char *why, size_t why_cap) CDN_WUR;
/* Flush queued writes, stop the writer thread, close. */
void cache_store_close(struct cache_store **sp);

/*
 * Find the object for (key, variant): the memory tier first, then LMDB
 * (loading the metadata and every chunk; an object found on disk is
 * promoted to the memory tier if it fits).  On CDN_OK, *objp holds one new
 * reference.  Returns CDN_NOTFOUND on a miss, CDN_ECORRUPT for a record
 * that fails its checks (it is then deleted), CDN_EIO / CDN_ENOMEM.
 * *from_memory tells which tier answered.  An object that a hard purge
 * published before this call covers is a miss (and is removed); one that
 * only a soft purge covers is returned with cache_obj_soft_purged() true.
 */
int cache_store_get(struct cache_store *s, const uint8_t key[CACHE_HASH_LEN],
    uint64_t variant, struct cache_obj **objp, int *from_memory) CDN_WUR;

/*
 * As cache_store_get, but an object that only LMDB holds and that is too
 * large for the memory tier (cache_store_stream_min) comes back with its
 * metadata alone: o->chunks NULL, nchunks and body_len set, not promoted.
 * The caller then reads the chunks it sends as it sends them: ranges with
 * cache_store_load_chunks(), whole bodies through a pin (cache_store_pin).
 * Such an object (o->chunks NULL or partly NULL) is the
 * caller's alone: never store or share it.  A smaller one comes whole, in
 * the same read transaction, and is promoted as cache_store_get's are.
 */
int cache_store_get_meta(struct cache_store *s,
    const uint8_t key[CACHE_HASH_LEN], uint64_t variant,
    struct cache_obj **objp, int *from_memory) CDN_WUR;
/*
 * As cache_store_get_meta, and on CDN_NOTFOUND it also tells whether any
 * other variant of <key> may be found: *none_stored is set to 1 when
 * neither tier holds an object of any variant of the key (one cursor seek
 * in the read transaction that missed), so that a miss need not look up
 * every coding in turn; else to 0.
 */
int cache_store_get_meta_probe(struct cache_store *s,
    const uint8_t key[CACHE_HASH_LEN], uint64_t variant,
    struct cache_obj **objp, int *from_memory, int *none_stored) CDN_WUR;
/*
 * Read chunks [first, last] of an object from cache_store_get_meta() into
 * it, each checked against its stored checksum.  CDN_OK, CDN_NOTFOUND when
 * the stored object changed since (replaced, removed), CDN_ECORRUPT,
 * CDN_EIO, CDN_ENOMEM.
 */
int cache_store_load_chunks(struct cache_store *s, struct cache_obj *o,
    uint32_t first, uint32_t last) CDN_WUR;

/*
 * A reader's hold on the chunks of an object on disk (cache_pin.c), for a
 * body sent one chunk at a time: while it is held, eviction passes the
 * object over, and a new copy of the same key and variant is written
 * beside it rather than over it, so the reader gets the bytes of the copy
 * it began with.  A removal (a hard purge) still takes the chunks.  A pin
 * protects for 10 minutes after the object's newest reader came.
 */
struct cache_pin;
/*
 * Pin <o> (from cache_store_get_meta(), body not loaded) into *pinp; not
 * inside a cache_store_read_hold().  CDN_OK; CDN_NOTFOUND when the stored
 * object is no longer the one <o> describes (then a miss), CDN_ECORRUPT,
 * CDN_EIO, CDN_ENOMEM.
 */
int cache_store_pin(struct cache_store *s, const struct cache_obj *o,
    struct cache_pin **pinp) CDN_WUR;
/*
 * Read chunk <i> of the pinned object into a new malloc'd buffer (*outp,
 * the caller's to free; *lenp bytes), checked against the checksum it was
 * stored with.  CDN_NOTFOUND when the chunk is gone because the object
 * was removed, CDN_ECORRUPT when it is stored and damaged, CDN_EIO,
 * CDN_ENOMEM.  Any thread.
 */
int cache_store_pin_read(struct cache_store *s, const struct cache_pin *pin,
    uint32_t i, unsigned char **outp, size_t *lenp) CDN_WUR;
/* Let go of *pinp (NULL is fine); NULLs it.  The last reader of chunks a
 * newer copy replaced has them deleted. */
void cache_store_unpin(struct cache_store *s, struct cache_pin **pinp);

/*
 * Is <o>, once given to cache_store_put(), still the stored response for
 * its (key, variant)?  1 yes, 0 no (replaced, or its key removed), or
 * CDN_AGAIN when neither tier nor the writer queue knows it (a write or a
 * removal being committed): compare cache_store_removals() then.
 */
int cache_store_is_current(struct cache_store *s, const struct cache_obj *o);
/* How many cache_store_remove() calls this store has had. */
uint64_t cache_store_removals(struct cache_store *s);

/*
 * Make the calling thread's reads of <s> until cache_store_read_release
 * one LMDB read transaction (renewed at the first that reaches LMDB), so
 * that a lookup's Vary rule and variants cost one: a request calls it
 * around cache_store_get_vary and the variant lookups that follow.  The
 * purge rules are brought up to date here rather than in each lookup.
 * Holds may not nest; the thread must release before it returns to its
 * event loop (a read transaction left open would pin the map's pages).
 */
void cache_store_read_hold(struct cache_store *s);
void cache_store_read_release(struct cache_store *s);

/*
 * The Vary rule stored for a primary key: copies the Vary value into
 * buf (up to cap) and its length to *len.  CDN_NOTFOUND if no response
 * for that key has a Vary (then variant 0 is the one to look up);
 * CDN_ELIMIT if the value is longer than <cap> (treat it as a miss: never
 * fall back to variant 0); CDN_EIO.
 */
int cache_store_get_vary(struct cache_store *s,
    const uint8_t key[CACHE_HASH_LEN], char *buf, size_t cap,
    size_t *len) CDN_WUR;
/*
 * As cache_store_get_vary, and on CDN_NOTFOUND it also tells whether the
 * key has anything stored: *none_stored is set to 1 when neither tier
 * holds an object of any variant of it (then no variant lookup can hit,
 * and the vary db is not read: a new key costs one seek of the objects
 * db, not a descent of each db); else to 0.
 */
int cache_store_get_vary_probe(struct cache_store *s,
    const uint8_t key[CACHE_HASH_LEN], char *buf, size_t cap, size_t *len,
    int *none_stored) CDN_WUR;

/*
 * Store <o> (the caller keeps its own reference): it enters the memory
 * tier at once and is written to LMDB by the writer thread in a batched
 * transaction.  Never blocks on disk.  Returns CDN_OK when the store took
 * it: queued for LMDB (the writer may still drop it if the map stays full,
 * counted in put_drops), or held in memory when too large for the disk;
 * CDN_ELIMIT when it did not (too large, queue full, closing: counted, and
 * at most a memory copy remains); CDN_EIO when it was queued but the disk
 * writes are failing (cache_store_failing()), so it lives in memory only
 * until they succeed again, if at all.
 */
int cache_store_put(struct cache_store *s, struct cache_obj *o);
/*
 * Why the store's disk writes fail ("disk full", "read-only file system",
 * "I/O error"...: a static string), or NULL while they succeed.  Set by
 * the writer thread at a failed write, cleared by the next batch it
 * commits and syncs cleanly.  Any thread; one relaxed load.
 */
const char *cache_store_failing(struct cache_store *s);

/*
 * A body written to LMDB as it arrives (a shared fill of a large object),
 * so that nobody has to keep it whole in memory.  Its chunks go to the
 * writer thread one by one; the object's record is written with the last
 * one, so nothing is visible before the whole body is on disk (a previous
 * object of the same key and variant is deleted with the first chunk).
 * Until then the chunks committed so far can be read back through the
 * stream.  The stream is refcounted: the caller holds one reference, the
 * writer one per queued chunk.
 */
struct cache_stream;

/* Smallest body worth streaming: anything smaller the memory tier would
 * keep whole anyway. */
uint64_t cache_store_stream_min(struct cache_store *s);
/*
 * Start streaming the body of <o> (not shared yet; its metadata only),
 * <body_len> bytes long.  <wake>(arg) is called from the writer thread
 * each time chunks commit or the stream ends (see cache_stream_set_wake).
 * Returns one reference, or NULL if the object may not be stored on disk
 * (too large, not larger than cache_store_stream_min, or closing).
 */
struct cache_stream *cache_store_stream_begin(struct cache_store *s,
    struct cache_obj *o, uint64_t body_len, void (*wake)(void *arg), void *arg);
/* Replace the wake callback (NULL: none); once this returns, the old one
 * is not running and will not be called again. */
void cache_stream_set_wake(
    struct cache_stream *st, void (*wake)(void *arg), void *arg);
/*
 * Queue the next chunk: <len> bytes at <data>, CACHE_CHUNK_SIZE but for
 * the last.  <data> stays the caller's and must live until <release>(arg)
 * is called (from the writer thread, once written or dropped).  With
 * <last>, the object's record follows in the same transaction: then <o>,
 * the object given to begin, gets body_len and nchunks (its chunks stay
 * NULL), and its memory-tier entry and Vary rule are replaced now.
 * Returns CDN_OK, or CDN_EINVAL when the stream has failed or ended
 * (<release> is then called at once).
 */
int cache_stream_chunk(struct cache_stream *st, const void *data, size_t len,
    int last, void (*release)(void *arg), void *arg) CDN_WUR;
/* Chunks [0, n) are committed: readable with cache_stream_read. */
uint32_t cache_stream_committed(struct cache_stream *st);
/* 0 while chunks are still going in, 1 once the object's record has
 * committed, -1 if the stream failed or its object was not stored. */
int cache_stream_state(struct cache_stream *st);
/*
 * A copy of committed chunk <i> (malloc'd, the caller frees it) in *outp
 * and its length in *lenp, checked against the checksum it was written
 * with.  CDN_OK, CDN_NOTFOUND (deleted or replaced since), CDN_EIO,
 * CDN_ENOMEM.
 */
int cache_stream_read(struct cache_stream *st, uint32_t i, unsigned char **outp,
    size_t *lenp) CDN_WUR;
/* Give up a stream whose last chunk was not queued: its chunks are
 * deleted.  Nothing once the last chunk is queued. */
void cache_stream_abort(struct cache_stream *st);
void cache_stream_unref(struct cache_stream **stp);

/* Remove every variant of a primary key from both tiers (queued for LMDB,
 * immediate in memory). */
void cache_store_remove(
    struct cache_store *s, const uint8_t key[CACHE_HASH_LEN]);

/* Note a hit for eviction order (cheap: batched, coarse buckets). */
void cache_store_touch(struct cache_store *s, const struct cache_obj *o);

/* Wait until every write queued before this call has committed (tests,
 * shutdown, and callers that need durability now).  Not on event loops. */
void cache_store_sync(struct cache_store *s);

struct cache_store_stats {
	uint64_t objects; /* in LMDB */
	uint64_t bytes;   /* accounted bytes in LMDB */
	uint64_t mem_objects;
	uint64_t mem_bytes;
	/* Held by the memory tier's slab (cache_slab.c), and given back to
	 * the system so far. */
	uint64_t mem_slab_bytes;
	uint64_t mem_slab_given_back;
	uint64_t puts, put_drops; /* stored / not stored (queue, map full) */
	uint64_t evictions;       /* objects evicted from LMDB */
	uint64_t mem_evictions;
	uint64_t map_full;    /* MDB_MAP_FULL seen */
	uint64_t corrupt;     /* records that failed their checks */
	uint64_t io_errors;   /* other LMDB failures (logged) */
	uint64_t purged_hard; /* lookups that found a hard-purged object */
	uint64_t purged_soft; /* lookups that found a soft-purged one */
	uint64_t purge_seq;   /* newest purge seen */
	uint64_t disk_budget; /* the map size: cache_size, or the file's */
	uint64_t disk_high;   /* eviction keeps bytes under this */
	uint64_t mem_budget;  /* memory_size */
	/* Bodies in sealed files (cache_obj_seal), in the memory tier or
	 * still being sent, and the pages they hold. */
	uint64_t sealed_bodies;
	uint64_t sealed_bytes;
	int damaged; /* LMDB found its file damaged: neither tier is used
	              * until the next start moves the files aside */
};
void cache_store_stats(struct cache_store *s, struct cache_store_stats *st);

/* ================= tags and purges (cache_purge.c) ================= */

#define CACHE_TAG_MAX_LEN 256  /* longer tags are ignored */
#define CACHE_TAGS_MAX    128  /* tags kept per object */
#define CACHE_TAGS_CAP    4096 /* bytes of an object's tag list */

/*
 * The tags of an origin response head (<fields>: "Name: value\r\n"
 * lines): the values of every field named in names[0..nnames) (for
 * example "Surrogate-Key" and "Cache-Tag"), split on spaces, tabs and
 * commas, duplicates once.  Writes them space-separated to out (at most
 * <cap> bytes, not NUL-terminated) and returns the length.  Past
 * CACHE_TAGS_MAX tags or <cap> bytes the rest is left out; a tag longer
 * than CACHE_TAG_MAX_LEN is skipped.  Never fails.
 */
size_t cache_tags_parse(const char *fields, size_t len,
    const char *const *names, unsigned nnames, char *out, size_t cap);

/* What a purge names. */
enum cache_purge_kind {
	CACHE_PURGE_URL = 'u',    /* a primary key hash: every variant */
	CACHE_PURGE_TAG = 't',    /* every object with the tag */
	CACHE_PURGE_PREFIX = 'p', /* every object whose key URL starts so */
};

/* Verdicts of cache_store_get's purge check (cache_obj.purge_state). */
#define CACHE_PURGED_SOFT 1 /* serve only as stale */
#define CACHE_PURGED_HARD 2 /* gone */

#define CACHE_MATCHED_UNKNOWN UINT64_MAX
/* Longest prefix (as a key string): rules are LMDB keys (511 bytes). */
#define CACHE_PREFIX_MAX_LEN 500

struct cache_purge_item {
	enum cache_purge_kind kind;
	const char *name; /* URL: the normalised key string; tag; prefix */
	size_t len;
	uint8_t key[CACHE_HASH_LEN]; /* URL: hash of name */
	uint64_t matched; /* out: objects matched, or CACHE_MATCHED_UNKNOWN */
};

/*
 * Apply a purge of items[0..n) (soft or hard) in one write transaction,
 * synced to disk before returning, then publish its sequence number to
 * every process of the environment (see cache_store_purge.c).  A hard
 * URL purge deletes every variant at once; tags and prefixes become rules
 * checked at lookup.  With <dry>, only counts.  Blocks on the transaction
 * and fsync: for purged, not for edged's event loops.  *seqp gets the
 * purge's sequence number (the current one for a dry run).  CDN_OK,
 * CDN_EIO.
 */
int cache_store_purge(struct cache_store *s, struct cache_purge_item *items,
    unsigned n, int soft, int dry, uint64_t *seqp) CDN_WUR;

/* One purge of a batch (cache_store_purge_batch). */
struct cache_purge_op {
	struct cache_purge_item *items; /* an empty CACHE_PURGE_PREFIX: every
	                                 * key */
	unsigned n;                     /* 0: nothing to apply */
	int soft;
	uint64_t seq; /* out: its sequence number (0 if n was 0) */
};

/*
 * Apply ops[0..nops) in order, each as its own purge (its own sequence
 * number, items' matched counted), and set the meta record <mark> to
 * val[0..len) in the SAME write transaction, synced before returning: the
 * purge bus records the last entry it applied so, and a crash either
 * keeps all of it or none.  CDN_OK or CDN_EIO (nothing applied).
 */
int cache_store_purge_batch(struct cache_store *s, struct cache_purge_op *ops,
    unsigned nops, const char *mark, const void *val, size_t len) CDN_WUR;

/*
 * The meta record <mark> (see cache_store_purge_batch) copied to
 * out[0..cap), its length in *len.  CDN_OK, CDN_NOTFOUND (never set),
 * CDN_EIO (also if longer than <cap>).
 */
int cache_store_purge_mark(struct cache_store *s, const char *mark, void *out,
    size_t cap, size_t *len) CDN_WUR;

/*
 * The current purge sequence number: what a fill records as its
 * purge_gen when it starts.  Cheap (one load from a shared page).
 */
uint64_t cache_store_purge_seq(struct cache_store *s);

struct cache_bus_page;

/*
 * The purge bus's shared state (cache/cache_bus.h), in the same shared
 * page as the purge seq: valid while <s> is open.
 */
struct cache_bus_page *cache_store_bus_page(struct cache_store *s);

/*
 * Reclaim the space of hard-purged objects (purged runs it in the
 * background after tag and prefix purges): scan up to <max_scan> records
 * from the position *pos (CACHE_HASH_LEN + 8 bytes, all zero to start;
 * advanced), delete those a hard purge covers in one write transaction,
 * add them to *deleted, and set *done at the end of the store.  Blocks on
 * LMDB's write lock: not for edged's event loops.  CDN_OK, CDN_EIO,
 * CDN_ENOMEM.
 */
int cache_store_reclaim(struct cache_store *s, uint8_t pos[CACHE_HASH_LEN + 8],
    unsigned max_scan, uint64_t *deleted, int *done) CDN_WUR;

/*
 * Every stored variant of <key>, metadata only (body_len set, nchunks 0,
 * no chunks), for inspection: up to <cap> new references in v[] and their
 * count in *n, each with cache_obj.purge_state computed.  CDN_OK (also
 * for none), CDN_EIO, CDN_ENOMEM (v[0..*n) still the caller's).
 */
int cache_store_variants(struct cache_store *s,
    const uint8_t key[CACHE_HASH_LEN], struct cache_obj **v, unsigned cap,
    unsigned *n) CDN_WUR;

/* Whether <o>, as returned by cache_store_get, was soft-purged: the
 * caller must treat it as stale (it may still serve it stale where
 * stale-while-revalidate or stale-if-error allow). */
int cache_obj_soft_purged(const struct cache_obj *o);

/* ================= sites (cache_site.c) ================= */

struct conf;

/* What the cache does for one site: how it keys, what it stores. */
struct cache_site_rules {
	struct cache_policy_conf policy;
	struct cache_key_rules key; /* params borrowed from the conf */
};

/*
 * Fill <r> from the cache_* values of <c>: a site's effective conf, or the
 * top level.  r->key borrows <c>'s parameter lists.  <c> passed
 * conf_validate_keys() (or conf_validate()).
 */
void cache_site_rules_init(const struct conf *c, struct cache_site_rules *r);

/*
 * The sites of a config, with their rules, found by Host: one per site
 * block in file order, or, without blocks, one implicit site (the top
 * level) that every Host names.  Immutable once built; any thread reads it.
 */
struct cache_sites;

/*
 * Build the table of <c> (borrowed: must outlive the table, which borrows
 * its names and lists).  <c> passed conf_validate_keys() (or
 * conf_validate()).  Aborts only when out of memory.
 */
struct cache_sites *cache_sites_new(const struct conf *c);
void cache_sites_free(struct cache_sites **tp);
unsigned cache_sites_count(const struct cache_sites *t);
/* Site <i> (< count): the rules of c->sites[i], or of the implicit site. */
const struct cache_site_rules *cache_sites_at(
    const struct cache_sites *t, unsigned i);

/*
 * The index of the site for Host <host> (host[:port], any case, a trailing
 * dot allowed): an exact name, else "*." and the host without its first
 * label, else default_site; -1 when none (edged answers 421 and stores
 * nothing).  <host> may be empty (an HTTP/1.0 request without Host): the
 * default.  This is how edged routes every request.
 */
int cache_sites_find(const struct cache_sites *t, const char *host, size_t len);

/*
 * The rules a key for Host <host> is built with: its site's, as
 * cache_sites_find() picks it, else the top level's (no site answers that
 * Host, so no key of it was ever stored).  Never NULL.
 */
const struct cache_site_rules *cache_sites_rules_for(
    const struct cache_sites *t, const char *host, size_t len);

#endif /* CACHE_H */
