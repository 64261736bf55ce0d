/*
 * Cached objects (cache/cache.h "objects").
 *
 * An object is built by one thread (cache_obj_new, then cache_obj_append)
 * and is immutable once shared: from then on it is reached only through
 * references, by workers, the memory tier and the LMDB writer thread, with
 * no lock.  The reference count is atomic (relaxed increment, acq_rel
 * decrement, so the last holder sees every write made before sharing).
 * The only field written after sharing is lru_bucket, an atomic hint owned
 * by cache_store_touch().
 *
 * The body is an array of chunks of CACHE_CHUNK_SIZE bytes; only the last
 * may be shorter.  While appending, the last chunk grows by doubling from
 * the size of the first append into it (at least CACHE_OBJ_MIN_CHUNK), so a
 * small body costs a small allocation and a body loaded from LMDB one chunk
 * at a time is allocated exactly.
 *
 * The struct with its strings, and an appended body while it is one chunk
 * of at most CACHE_SLAB_MAX bytes, live in the tier's slab (cache_slab.c),
 * not on the malloc heap: they may stay as long as the memory tier keeps
 * the object.  Chunks adopted, or loaded one at a time
 * (cache_store_load_chunks), are malloc's.
 */
#include "config.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cache/cache.h"
#include "cache/cache_int.h"

/* What malloc adds to each allocation, for footprints. */
#define OBJ_MALLOC_OVERHEAD 16

/* Bytes of the allocation holding <o> and its strings. */
static size_t
head_size(const struct cache_obj *o)
{
	return sizeof(*o) + o->url_len + 1 + o->fields_len + 1 + o->vary_len +
	    1;
}

static char *
dup_bytes(const char *p, size_t len)
{
	char *q;

	q = malloc(len + 1);
	if (q == NULL)
		return NULL;
	if (len > 0)
		memcpy(q, p, len);
	q[len] = '\0';
	return q;
}

/* <len> bytes of <p> at <dst>, terminated; returns the byte after. */
static char *
put_str(char *dst, const char *p, size_t len)
{
	if (len > 0)
		memcpy(dst, p, len);
	dst[len] = '\0';
	return dst + len + 1;
}

/*
 * A new object with one reference; copies <url>, <fields>, <vary> (each
 * NUL-terminated in its copy, all three in the object's own allocation: a
 * hit read from LMDB or a fill makes one allocation for them, not four)
 * and *d (d->reason is a static string).
 * stored_at is the wall clock now; purge_gen starts at 0 and the caller
 * may set it before sharing.  Returns NULL if memory runs out.
 */
struct cache_obj *
cache_obj_new(const uint8_t key[CACHE_HASH_LEN], uint64_t variant, int status,
    const struct cache_decision *d, int64_t response_time, const char *url,
    size_t url_len, const char *fields, size_t fields_len, const char *vary,
    size_t vary_len)
{
	struct cache_obj *o;

	CDN_ASSERT(key != NULL && d != NULL);
	CDN_ASSERT(url != NULL || url_len == 0);
	CDN_ASSERT(fields != NULL || fields_len == 0);
	CDN_ASSERT(vary != NULL || vary_len == 0);

	/* One allocation: the three strings follow the struct, as they
	 * live and die with it. */
	o = cache_slab_alloc(
	    sizeof(*o) + url_len + 1 + fields_len + 1 + vary_len + 1);
	if (o == NULL)
		return NULL;
	memset(o, 0, sizeof(*o));
	o->url = (char *)(o + 1);
	o->fields = put_str(o->url, url, url_len);
	o->vary = put_str(o->fields, fields, fields_len);
	put_str(o->vary, vary, vary_len);
	o->magic = CACHE_OBJ_MAGIC;
	atomic_init(&o->refcnt, 1);
	memcpy(o->key, key, CACHE_HASH_LEN);
	o->variant = variant;
	o->status = status;
	o->d = *d;
	o->response_time = response_time;
	o->stored_at = (int64_t)time(NULL);
	o->purge_gen = 0;
	o->url_len = url_len;
	o->fields_len = fields_len;
	o->vary_len = vary_len;
	o->body_len = 0;
	o->nchunks = 0;
	o->chunks = NULL;
	o->chunks_cap = 0;
	o->last_chunk_cap = 0;
	o->is_body_slab = 0;
	o->body_fd = -1;
	atomic_init(&o->lru_bucket, 0);
	atomic_init(&o->purge_seen, 0);
	atomic_init(&o->purge_state, 0);
	o->tags = NULL;
	o->tags_len = 0;
	return o;
}

/* Copy the tag list into <o> (before it is shared). */
int
cache_obj_set_tags(struct cache_obj *o, const char *tags, size_t len)
{
	char *t;

	MAGIC_CHECK(o, CACHE_OBJ_MAGIC);
	CDN_ASSERT(tags != NULL || len == 0);
	t = dup_bytes(tags, len);
	if (t == NULL)
		return CDN_ENOMEM;
	free(o->tags);
	o->tags = t;
	o->tags_len = len;
	return CDN_OK;
}

int
cache_obj_soft_purged(const struct cache_obj *o)
{
	MAGIC_CHECK(o, CACHE_OBJ_MAGIC);
	return atomic_load_explicit(&o->purge_state, memory_order_acquire) ==
	    CACHE_PURGED_SOFT;
}

/* Make room for one more chunk pointer.  CDN_ENOMEM if memory runs out. */
static int
grow_chunk_array(struct cache_obj *o)
{
	unsigned char **v;
	uint32_t cap;

	if (o->nchunks < o->chunks_cap)
		return CDN_OK;
	if (o->chunks_cap == 0) {
		/* Most bodies are one chunk: its pointer lives in the object.
		 */
		o->chunks = &o->chunk_slot;
		o->chunks_cap = 1;
		return CDN_OK;
	}
	if (o->chunks_cap >= UINT32_MAX / 2)
		return CDN_ENOMEM;
	cap = o->chunks_cap * 2;
	if (o->chunks == &o->chunk_slot) {
		v = malloc((size_t)cap * sizeof(*v));
		if (v != NULL)
			v[0] = o->chunk_slot;
	} else {
		v = realloc(o->chunks, (size_t)cap * sizeof(*v));
	}
	if (v == NULL)
		return CDN_ENOMEM;
	o->chunks = v;
	o->chunks_cap = cap;
	return CDN_OK;
}

/*
 * The last chunk of <o>, of which <used> bytes are written, moved to an
 * allocation of <want> bytes (from the slab while it fits there).  NULL if
 * memory runs out; then the chunk is unchanged.
 */
static unsigned char *
grow_chunk(struct cache_obj *o, size_t used, size_t want)
{
	unsigned char *old = o->chunks[o->nchunks - 1], *c;

	if (!o->is_body_slab)
		return realloc(old, want);
	c = cache_slab_alloc(want);
	if (c == NULL)
		return NULL;
	memcpy(c, old, used);
	cache_slab_free(old, o->last_chunk_cap);
	o->is_body_slab = want <= CACHE_SLAB_MAX;
	return c;
}

/*
 * Append <len> bytes to the body of <o>, which must not be shared yet (the
 * caller holds the only reference).  Returns CDN_OK, or CDN_ENOMEM if
 * memory runs out; then the body is unchanged.
 */
int
cache_obj_append(struct cache_obj *o, const void *p, size_t len)
{
	const unsigned char *src;
	unsigned char *c;
	size_t used, room, n, want, cap;

	MAGIC_CHECK(o, CACHE_OBJ_MAGIC);
	CDN_ASSERT(p != NULL || len == 0);
	CDN_ASSERT(atomic_load_explicit(&o->refcnt, memory_order_relaxed) == 1);
	CDN_ASSERT(o->body_fd < 0);

	if (len > UINT64_MAX - o->body_len)
		return CDN_ENOMEM;
	src = p;
	while (len > 0) {
		used = o->nchunks == 0
		    ? CACHE_CHUNK_SIZE
		    : (size_t)(o->body_len -
		          (uint64_t)(o->nchunks - 1) * CACHE_CHUNK_SIZE);
		if (used == CACHE_CHUNK_SIZE) {
			/* The last chunk is full: start a new one, sized for
			 * what this call brings. */
			if (grow_chunk_array(o) != CDN_OK)
				return CDN_ENOMEM;
			cap = len < CACHE_CHUNK_SIZE ? len : CACHE_CHUNK_SIZE;
			/* A body of known length: the chunk's final size. */
			if (o->body_want > o->body_len &&
			    o->body_want - o->body_len > cap)
				cap = o->body_want - o->body_len <
				        CACHE_CHUNK_SIZE
				    ? (size_t)(o->body_want - o->body_len)
				    : CACHE_CHUNK_SIZE;
			if (cap < CACHE_OBJ_MIN_CHUNK)
				cap = CACHE_OBJ_MIN_CHUNK;
			c = o->nchunks == 0 ? cache_slab_alloc(cap)
			                    : malloc(cap);
			if (c == NULL)
				return CDN_ENOMEM;
			o->is_body_slab =
			    o->nchunks == 0 && cap <= CACHE_SLAB_MAX;
			o->chunks[o->nchunks++] = c;
			o->last_chunk_cap = cap;
			used = 0;
		}
		room = CACHE_CHUNK_SIZE - used;
		n = len < room ? len : room;
		if (used + n > o->last_chunk_cap) {
			want = o->last_chunk_cap * 2;
			if (want < used + n)
				want = used + n;
			if (want > CACHE_CHUNK_SIZE)
				want = CACHE_CHUNK_SIZE;
			c = grow_chunk(o, used, want);
			if (c == NULL)
				return CDN_ENOMEM;
			o->chunks[o->nchunks - 1] = c;
			o->last_chunk_cap = want;
		}
		memcpy(o->chunks[o->nchunks - 1] + used, src, n);
		o->body_len += n;
		src += n;
		len -= n;
	}
	return CDN_OK;
}

void
cache_obj_reserve(struct cache_obj *o, uint64_t body_len)
{
	MAGIC_CHECK(o, CACHE_OBJ_MAGIC);
	CDN_ASSERT(atomic_load_explicit(&o->refcnt, memory_order_relaxed) == 1);
	CDN_ASSERT(o->body_len == 0 && o->nchunks == 0);
	o->body_want = body_len;
}

int
cache_obj_adopt_chunk(
    struct cache_obj *o, unsigned char *chunk, size_t len, size_t cap)
{
	MAGIC_CHECK(o, CACHE_OBJ_MAGIC);
	CDN_ASSERT(len > 0 && len <= cap && cap <= CACHE_CHUNK_SIZE);
	CDN_ASSERT(o->body_len == (uint64_t)o->nchunks * CACHE_CHUNK_SIZE);
	CDN_ASSERT(atomic_load_explicit(&o->refcnt, memory_order_relaxed) == 1);
	CDN_ASSERT(o->body_fd < 0);
	if (grow_chunk_array(o) != CDN_OK)
		return CDN_ENOMEM;
	o->chunks[o->nchunks++] = chunk;
	o->last_chunk_cap = cap;
	o->body_len += len;
	return CDN_OK;
}

/* One more reference to <o>; the caller gives it back with unref. */
struct cache_obj *
cache_obj_ref(struct cache_obj *o)
{
	unsigned prev;

	MAGIC_CHECK(o, CACHE_OBJ_MAGIC);
	prev = atomic_fetch_add_explicit(&o->refcnt, 1, memory_order_relaxed);
	CDN_ASSERT(prev > 0);
	return o;
}

/* Give back the reference *op and NULL the holder; frees on the last. */
void
cache_obj_unref(struct cache_obj **op)
{
	struct cache_obj *o;
	unsigned prev;

	CDN_ASSERT(op != NULL);
	o = *op;
	*op = NULL; /* the caller's pointer dies here, not later */
	MAGIC_CHECK(o, CACHE_OBJ_MAGIC);
	prev = atomic_fetch_sub_explicit(&o->refcnt, 1, memory_order_acq_rel);
	CDN_ASSERT(prev > 0);
	if (prev > 1)
		return;
	/* A body read in part (cache_store_get_meta) has NULL chunks, or no
	 * chunk array at all; a sealed one maps its file. */
	if (o->body_fd >= 0)
		cache_objfd_release(o);
	else if (o->is_body_slab)
		cache_slab_free(o->chunks[0], o->last_chunk_cap);
	else
		for (uint32_t i = 0; o->chunks != NULL && i < o->nchunks; i++)
			free(o->chunks[i]);
	if (o->chunks != &o->chunk_slot)
		free(o->chunks);
	free(o->tags);
	MAGIC_WIPE(o);
	cache_slab_free(o, head_size(o));
}

/*
 * Bytes of memory <o> holds: the struct, its strings, the chunk array and
 * the chunks as allocated, plus an estimate of malloc's own overhead.
 */
size_t
cache_obj_footprint(const struct cache_obj *o)
{
	size_t n;

	MAGIC_CHECK(o, CACHE_OBJ_MAGIC);
	n = cache_slab_cost(head_size(o));
	if (o->tags != NULL)
		n += o->tags_len + 1 + OBJ_MALLOC_OVERHEAD;
	if (o->chunks_cap > 0 && o->chunks != &o->chunk_slot)
		n += (size_t)o->chunks_cap * sizeof(*o->chunks) +
		    OBJ_MALLOC_OVERHEAD;
	if (o->body_fd >= 0)
		n += cache_objfd_footprint(o);
	else if (o->is_body_slab)
		n += cache_slab_cost(o->last_chunk_cap);
	else if (o->nchunks > 0)
		n += (size_t)(o->nchunks - 1) *
		        (CACHE_CHUNK_SIZE + OBJ_MALLOC_OVERHEAD) +
		    o->last_chunk_cap + OBJ_MALLOC_OVERHEAD;
	return n;
}

int
cache_obj_valid(const struct cache_obj *o)
{
	uint64_t want;

	if (o == NULL || o->magic != CACHE_OBJ_MAGIC ||
	    atomic_load_explicit(&o->refcnt, memory_order_relaxed) == 0)
		return 0;
	want = (o->body_len + CACHE_CHUNK_SIZE - 1) / CACHE_CHUNK_SIZE;
	if (o->nchunks != want && !(o->chunks == NULL && o->nchunks == 0))
		return 0;
	if (o->chunks != NULL && o->chunks_cap < o->nchunks)
		return 0;
	return o->fields_len == 0 ||
	    (o->fields != NULL && o->fields_len >= 2 &&
	        memcmp(o->fields + o->fields_len - 2, "\r\n", 2) == 0);
}
