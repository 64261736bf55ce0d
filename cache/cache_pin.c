/*
 * Pins: the objects on disk that clients are being sent chunk by chunk
 * (edge_range.c's disk sender), so that eviction and a new copy of the
 * same key and variant leave alone the chunks a reader still needs
 * (docs/coalescing.md, "Readers pin what they send").
 *
 * A reader pins (object key, chunk generation) for as long as it sends,
 * with a copy of the record's chunk checksums and tails, and reads the
 * chunks of that generation whatever the record says meanwhile.  An entry
 * of the table counts the readers of one (key, generation).  The writer
 * thread:
 *  - skips a pinned object when it evicts (cache_evict.c);
 *  - writes a new copy of a key under a generation that no entry holds,
 *    and deletes the old record but not the chunks of a pinned generation
 *    (cache_objdb.c, cache_stream.c);
 *  - deletes those chunks once the last reader has left: that reader
 *    queues W_UNPIN, and the writer deletes the generation's chunks unless
 *    the key's record or a stream of it uses them (cache_pins_drop).  An
 *    entry whose object the writer left alone just goes with its last
 *    reader: no write in the common case.
 * Removals (hard purges, cache_store_remove, a record that failed its
 * checks) ignore pins: the reader finds its chunk gone and the response is
 * cut, as a purge means "stop serving this now".  A pin protects for
 * CACHE_PIN_MAX_MS after its newest reader came, so that a client reading
 * at a trickle cannot hold the space for ever: after that its chunks may
 * go, and its response is cut as before.
 *
 * The race at the start: a reader reads the record, registers, and reads
 * the record again in a new snapshot, which shows every deletion committed
 * before it registered.  A deletion the writer made before the
 * registration in a transaction not committed yet is in <claims> (the keys
 * whose chunks the open write transaction deleted, with the generations it
 * kept), and a registration that finds its key there with its generation
 * not kept fails: the request is then a miss.
 *
 * Locking: p->mtx covers the table, its entries and the claims; only the
 * writer thread adds claims, and clears them when its transaction ends
 * (cache_pins_txn_end).  p->count (entries in the table) is read without
 * the lock: while nothing is pinned, eviction's check and the put of a new
 * key (which nobody can be reading) skip the table.
 */
#include "config.h"

#include <lmdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cache/cache.h"
#include "cache/cache_int.h"
#include "cache/cache_store_int.h"
#include "common/cdn_log.h"

struct pin_entry {
	struct pin_entry *next;
	uint8_t hv[CACHE_OBJKEY_LEN];
	unsigned gen;
	unsigned readers;
	uint64_t since_ms; /* when its newest reader pinned it */
	/* The writer deleted or replaced the object since: its chunks go
	 * with the last reader (W_UNPIN).  Else the entry just goes. */
	int is_superseded;
};

/* What a reader holds (cache/cache.h). */
struct cache_pin {
	uint32_t magic;
#define CACHE_PIN_MAGIC 0x71c5e2a9u
	uint8_t hv[CACHE_OBJKEY_LEN];
	unsigned gen;
	int64_t stored_at;
	uint64_t purge_gen;
	uint64_t body_len;
	uint32_t nchunks;
	uint64_t *sums;    /* nchunks */
	uint16_t *tails;   /* nchunks */
	size_t *tail_offs; /* nchunks: where each tail starts in tailbuf */
	uint8_t *tailbuf;
};

void
cache_pins_init(struct cache_pins *p)
{
	memset(p, 0, sizeof(*p));
	CDN_ASSERT(pthread_mutex_init(&p->mtx, NULL) == 0);
	atomic_init(&p->count, 0);
}

void
cache_pins_fini(struct cache_pins *p)
{
	struct pin_entry *e;

	for (size_t b = 0; b < CACHE_PIN_BUCKETS; b++) {
		while ((e = p->tab[b]) != NULL) {
			p->tab[b] = e->next;
			free(e);
		}
	}
	pthread_mutex_destroy(&p->mtx);
}

static struct pin_entry **
bucket_of(struct cache_pins *p, const uint8_t hv[CACHE_OBJKEY_LEN])
{
	/* The key is a hash already. */
	return &p->tab[hv[0] % CACHE_PIN_BUCKETS];
}

static int
is_kept(const struct pin_entry *e, uint64_t now)
{
	return e->readers > 0 && now - e->since_ms < CACHE_PIN_MAX_MS;
}

int
cache_pins_held(struct cache_store *s, const uint8_t hv[CACHE_OBJKEY_LEN])
{
	struct cache_pins *p = &s->pins;
	uint64_t now;
	int held = 0;

	if (atomic_load_explicit(&p->count, memory_order_acquire) == 0)
		return 0;
	now = cdn_now_ms();
	pthread_mutex_lock(&p->mtx);
	for (struct pin_entry *e = *bucket_of(p, hv); e != NULL; e = e->next)
		if (memcmp(e->hv, hv, CACHE_OBJKEY_LEN) == 0 && is_kept(e, now))
			held = 1;
	pthread_mutex_unlock(&p->mtx);
	return held;
}

int
cache_pins_any(struct cache_store *s)
{
	return atomic_load_explicit(&s->pins.count, memory_order_acquire) > 0;
}

int
cache_pins_claim(struct cache_store *s, const uint8_t hv[CACHE_OBJKEY_LEN],
    uint8_t kept[CACHE_PIN_GEN_BYTES])
{
	struct cache_pins *p = &s->pins;
	uint8_t taken[CACHE_PIN_GEN_BYTES];
	struct pin_claim *c;
	uint64_t now = cdn_now_ms();
	unsigned gen;

	memset(kept, 0, CACHE_PIN_GEN_BYTES);
	memset(taken, 0, sizeof(taken));
	pthread_mutex_lock(&p->mtx);
	for (struct pin_entry *e = *bucket_of(p, hv); e != NULL; e = e->next) {
		if (memcmp(e->hv, hv, CACHE_OBJKEY_LEN) != 0)
			continue;
		taken[e->gen / 8] |= (uint8_t)(1u << e->gen % 8);
		e->is_superseded = 1;
		if (is_kept(e, now))
			kept[e->gen / 8] |= (uint8_t)(1u << e->gen % 8);
	}
	for (gen = 0; gen <= CACHE_CHUNK_GEN_MAX; gen++)
		if (!(taken[gen / 8] & 1u << gen % 8))
			break;
	if (gen > CACHE_CHUNK_GEN_MAX) {
		/* Every generation is someone's: the readers of this key
		 * lose their chunks (and are cut) rather than read others. */
		gen = 0;
		memset(kept, 0, CACHE_PIN_GEN_BYTES);
	}
	if (p->nclaims < CACHE_PIN_CLAIMS) {
		c = &p->claims[p->nclaims++];
		memcpy(c->hv, hv, CACHE_OBJKEY_LEN);
		memcpy(c->kept, kept, CACHE_PIN_GEN_BYTES);
	} else {
		p->is_claims_full = 1; /* no pin until the txn ends */
	}
	pthread_mutex_unlock(&p->mtx);
	return (int)gen;
}

void
cache_pins_txn_end(struct cache_store *s)
{
	struct cache_pins *p = &s->pins;

	pthread_mutex_lock(&p->mtx);
	p->nclaims = 0;
	p->is_claims_full = 0;
	pthread_mutex_unlock(&p->mtx);
}

/* The entry of (hv, gen), or NULL (p->mtx held). */
static struct pin_entry *
entry_find(struct cache_pins *p, const uint8_t hv[CACHE_OBJKEY_LEN],
    unsigned gen, struct pin_entry ***prevp)
{
	struct pin_entry **pp;

	for (pp = bucket_of(p, hv); *pp != NULL; pp = &(*pp)->next) {
		if ((*pp)->gen == gen &&
		    memcmp((*pp)->hv, hv, CACHE_OBJKEY_LEN) == 0) {
			if (prevp != NULL)
				*prevp = pp;
			return *pp;
		}
	}
	return NULL;
}

/* Count one more reader of (hv, gen); 0 if a deletion not yet committed
 * took its chunks. */
static int
entry_add(
    struct cache_pins *p, const uint8_t hv[CACHE_OBJKEY_LEN], unsigned gen)
{
	struct pin_entry *e;
	struct pin_entry **b;
	int ok;

	pthread_mutex_lock(&p->mtx);
	ok = !p->is_claims_full;
	for (size_t i = 0; i < p->nclaims; i++)
		if (memcmp(p->claims[i].hv, hv, CACHE_OBJKEY_LEN) == 0 &&
		    !(p->claims[i].kept[gen / 8] & 1u << gen % 8))
			ok = 0;
	if (ok) {
		e = entry_find(p, hv, gen, NULL);
		if (e == NULL) {
			e = cdn_xcalloc(1, sizeof(*e));
			memcpy(e->hv, hv, CACHE_OBJKEY_LEN);
			e->gen = gen;
			b = bucket_of(p, hv);
			e->next = *b;
			*b = e;
			atomic_fetch_add_explicit(
			    &p->count, 1, memory_order_release);
		}
		e->readers++;
		e->since_ms = cdn_now_ms();
	}
	pthread_mutex_unlock(&p->mtx);
	return ok;
}

/* Remove the entry of (hv, gen) if it has no reader (p->mtx held). */
static void
entry_forget_locked(
    struct cache_pins *p, const uint8_t hv[CACHE_OBJKEY_LEN], unsigned gen)
{
	struct pin_entry **pp, *e;

	e = entry_find(p, hv, gen, &pp);
	if (e == NULL || e->readers > 0)
		return;
	*pp = e->next;
	free(e);
	atomic_fetch_sub_explicit(&p->count, 1, memory_order_release);
}

void
cache_pins_forget(struct cache_store *s, const uint8_t key[CACHE_HASH_LEN],
    uint64_t variant, unsigned gen)
{
	uint8_t hv[CACHE_OBJKEY_LEN];

	cache_record_objkey(hv, key, variant);
	pthread_mutex_lock(&s->pins.mtx);
	entry_forget_locked(&s->pins, hv, gen);
	pthread_mutex_unlock(&s->pins.mtx);
}

/* One reader of (hv, gen) less.  The last one forgets the entry, or, if
 * the writer deleted or replaced the object meanwhile, queues the deletion
 * of the generation's chunks (the writer forgets the entry then). */
static void
entry_release(
    struct cache_store *s, const uint8_t hv[CACHE_OBJKEY_LEN], unsigned gen)
{
	struct cache_pins *p = &s->pins;
	struct pin_entry *e;
	struct wmsg *m;
	int is_last;

	pthread_mutex_lock(&p->mtx);
	e = entry_find(p, hv, gen, NULL);
	CDN_ASSERT(e != NULL && e->readers > 0);
	is_last = --e->readers == 0 && e->is_superseded;
	if (e->readers == 0 && !e->is_superseded)
		entry_forget_locked(p, hv, gen);
	pthread_mutex_unlock(&p->mtx);
	if (!is_last)
		return;
	m = cache_writer_msg_new(W_UNPIN, hv, get_be64(hv + CACHE_HASH_LEN));
	m->gen = gen;
	if (!cache_writer_enqueue(s, m, 0)) {
		/* Only while closing: the chunks stay until the key goes. */
		cache_writer_msg_free(&m);
		pthread_mutex_lock(&p->mtx);
		entry_forget_locked(p, hv, gen);
		pthread_mutex_unlock(&p->mtx);
	}
}

/* Is chunk generation <gen> the one a stream of <hv> writes? */
static int
is_streamed(
    struct cache_store *s, const uint8_t hv[CACHE_OBJKEY_LEN], unsigned gen)
{
	for (struct cache_stream *st = s->streams; st != NULL; st = st->wnext)
		if (st->gen == gen &&
		    memcmp(st->obj->key, hv, CACHE_HASH_LEN) == 0 &&
		    st->obj->variant == get_be64(hv + CACHE_HASH_LEN))
			return 1;
	return 0;
}

int
cache_pins_drop(struct cache_store *s, MDB_txn *txn, const struct wmsg *m)
{
	uint8_t hv[CACHE_OBJKEY_LEN], ck[CACHE_CHUNKKEY_LEN];
	struct cache_record_view rv;
	struct pin_entry *e;
	MDB_cursor *cur = NULL;
	MDB_val k, v;
	int rc, is_read;

	cache_record_objkey(hv, m->key, m->variant);
	pthread_mutex_lock(&s->pins.mtx);
	e = entry_find(&s->pins, hv, m->gen, NULL);
	is_read = e != NULL && e->readers > 0;
	if (!is_read)
		entry_forget_locked(&s->pins, hv, m->gen);
	pthread_mutex_unlock(&s->pins.mtx);
	if (is_read || is_streamed(s, hv, m->gen))
		return 0; /* a new reader came: it queues this again */
	k = mval(hv, sizeof(hv));
	rc = mdb_get(txn, s->db_obj, &k, &v);
	if (rc != 0 && rc != MDB_NOTFOUND)
		return rc;
	if (rc == 0 &&
	    cache_record_decode(v.mv_data, v.mv_size, hv, &rv) == CDN_OK &&
	    rv.chunk_gen == m->gen)
		return 0; /* not replaced: the stored object's own chunks */
	rc = mdb_cursor_open(txn, s->db_body, &cur);
	if (rc != 0)
		return rc;
	cache_record_chunkkey(ck, m->key, m->variant, m->gen, 0);
	for (;;) {
		k = mval(ck, sizeof(ck));
		rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
		if (rc == MDB_NOTFOUND ||
		    (rc == 0 &&
		        (k.mv_size != CACHE_CHUNKKEY_LEN ||
		            memcmp(k.mv_data, ck, CACHE_OBJKEY_LEN + 1) !=
		                0))) {
			rc = 0;
			break;
		}
		if (rc != 0)
			break;
		rc = store_mdb_cursor_del(s, cur, 0);
		if (rc != 0)
			break;
	}
	mdb_cursor_close(cur);
	return rc;
}

/* ---------------- the reader's side ---------------- */

static void
pin_free(struct cache_pin **pinp)
{
	struct cache_pin *pin = *pinp;

	*pinp = NULL;
	free(pin->sums);
	free(pin->tails);
	free(pin->tail_offs);
	free(pin->tailbuf);
	MAGIC_WIPE(pin);
	free(pin);
}

/* Does the record <rv> describe the object <o> (or the pin's)? */
static int
is_same(const struct cache_record_view *rv, int64_t stored_at,
    uint64_t body_len, uint64_t purge_gen)
{
	return rv->stored_at == stored_at && rv->body_len == body_len &&
	    rv->purge_gen == purge_gen;
}

/* Copy what a reader needs of the record <rv> into <pin>. */
static int
pin_fill(struct cache_pin *pin, const struct cache_record_view *rv)
{
	size_t n = rv->nchunks, off = 0, len;

	pin->gen = rv->chunk_gen;
	pin->nchunks = rv->nchunks;
	pin->sums = malloc(n * sizeof(*pin->sums) + 1);
	pin->tails = malloc(n * sizeof(*pin->tails) + 1);
	pin->tail_offs = malloc(n * sizeof(*pin->tail_offs) + 1);
	if (pin->sums == NULL || pin->tails == NULL || pin->tail_offs == NULL)
		return CDN_ENOMEM;
	for (size_t i = 0; i < n; i++) {
		pin->sums[i] = get_le64(rv->sums + 8 * i);
		pin->tails[i] =
		    (uint16_t)cache_record_tail_len(rv, (uint32_t)i);
		pin->tail_offs[i] = off;
		off += pin->tails[i];
	}
	len = off;
	pin->tailbuf = malloc(len + 1);
	if (pin->tailbuf == NULL)
		return CDN_ENOMEM;
	if (len > 0)
		memcpy(pin->tailbuf, rv->tails, len);
	return CDN_OK;
}

/*
 * Read the record of <pin> in a new snapshot: with <fill>, copy it into
 * the pin; else check that it is still the pinned one.  CDN_OK,
 * CDN_NOTFOUND (gone or another copy), CDN_ECORRUPT, CDN_EIO, CDN_ENOMEM.
 */
static int
pin_record(struct cache_store *s, struct cache_pin *pin, int fill)
{
	struct cache_record_view rv;
	MDB_txn *txn = NULL;
	MDB_val k, v;
	int rc;

	/* Outside a hold (cache_store_pin): a snapshot taken now. */
	if (cache_store_read_begin(s, &txn) != 0)
		return CDN_EIO;
	k = mval(pin->hv, sizeof(pin->hv));
	rc = mdb_get(txn, s->db_obj, &k, &v);
	if (rc == MDB_NOTFOUND) {
		rc = CDN_NOTFOUND;
	} else if (rc != 0) {
		rc = cache_store_read_failed(s, rc);
	} else {
		rc = cache_record_decode(v.mv_data, v.mv_size, pin->hv, &rv);
		if (rc == CDN_OK &&
		    (!is_same(
		         &rv, pin->stored_at, pin->body_len, pin->purge_gen) ||
		        (!fill && rv.chunk_gen != pin->gen)))
			rc = CDN_NOTFOUND;
		if (rc == CDN_OK && fill)
			rc = pin_fill(pin, &rv);
	}
	cache_store_read_end(s, &txn);
	return rc;
}

int
cache_store_pin(
    struct cache_store *s, const struct cache_obj *o, struct cache_pin **pinp)
{
	struct cache_pin *pin;
	int rc;

	MAGIC_CHECK(s, CACHE_STORE_MAGIC);
	MAGIC_CHECK(o, CACHE_OBJ_MAGIC);
	CDN_ASSERT(!cache_store_read_held(s)); /* its snapshot is older */
	if (cache_store_is_damaged(s))
		return CDN_NOTFOUND;
	pin = calloc(1, sizeof(*pin));
	if (pin == NULL)
		return CDN_ENOMEM;
	pin->magic = CACHE_PIN_MAGIC;
	cache_record_objkey(pin->hv, o->key, o->variant);
	pin->stored_at = o->stored_at;
	pin->purge_gen = o->purge_gen;
	pin->body_len = o->body_len;
	rc = pin_record(s, pin, 1);
	if (rc == CDN_OK && pin->nchunks != o->nchunks)
		rc = CDN_NOTFOUND;
	if (rc != CDN_OK)
		goto fail;
	if (!entry_add(&s->pins, pin->hv, pin->gen)) {
		rc = CDN_NOTFOUND;
		goto fail;
	}
	/* Registered: a deletion from now on keeps the chunks, and one
	 * committed before shows in this new snapshot. */
	rc = pin_record(s, pin, 0);
	if (rc != CDN_OK) {
		entry_release(s, pin->hv, pin->gen);
		goto fail;
	}
	*pinp = pin;
	return CDN_OK;
fail:
	if (rc == CDN_ECORRUPT)
		atomic_fetch_add_explicit(
		    &s->st_corrupt, 1, memory_order_relaxed);
	pin_free(&pin);
	return rc;
}

/*
 * Chunk <i> of <pin> in <txn> is missing or fails its checksum: was the
 * object removed or replaced by a copy under the same generation
 * (CDN_NOTFOUND), or is it still stored, and damaged (CDN_ECORRUPT)?
 */
static int
pin_why(struct cache_store *s, MDB_txn *txn, const struct cache_pin *pin)
{
	struct cache_record_view rv;
	MDB_val k, v;

	k = mval(pin->hv, sizeof(pin->hv));
	if (mdb_get(txn, s->db_obj, &k, &v) != 0)
		return CDN_NOTFOUND;
	if (cache_record_decode(v.mv_data, v.mv_size, pin->hv, &rv) != CDN_OK)
		return CDN_ECORRUPT;
	return rv.chunk_gen == pin->gen &&
	        is_same(&rv, pin->stored_at, pin->body_len, pin->purge_gen)
	    ? CDN_ECORRUPT
	    : CDN_NOTFOUND;
}

int
cache_store_pin_read(struct cache_store *s, const struct cache_pin *pin,
    uint32_t i, unsigned char **outp, size_t *lenp)
{
	unsigned char *p;
	MDB_txn *txn = NULL;
	MDB_val v;
	size_t len, part;
	int rc;

	MAGIC_CHECK(s, CACHE_STORE_MAGIC);
	MAGIC_CHECK(pin, CACHE_PIN_MAGIC);
	CDN_ASSERT(i < pin->nchunks);
	len = cache_chunk_len(pin->body_len, i);
	part = len - pin->tails[i];
	p = malloc(len + 1);
	if (p == NULL)
		return CDN_ENOMEM;
	memcpy(p + part, pin->tailbuf + pin->tail_offs[i], pin->tails[i]);
	if (part == 0)
		goto done;
	if (cache_store_read_begin(s, &txn) != 0) {
		free(p);
		return CDN_EIO;
	}
	rc = cache_store_chunk_get(s, txn, pin->hv, pin->gen, i, part,
	    cache_record_seed(pin->hv), pin->sums[i], &v);
	if (rc == MDB_NOTFOUND || rc == CDN_ECORRUPT) {
		rc = pin_why(s, txn, pin);
		if (rc == CDN_ECORRUPT)
			atomic_fetch_add_explicit(
			    &s->st_corrupt, 1, memory_order_relaxed);
		goto fail;
	}
	if (rc != 0) {
		rc = cache_store_read_failed(s, rc);
		goto fail;
	}
	/* v borrows the map until the txn ends: copied. */
	memcpy(p, v.mv_data, part);
	cache_store_read_end(s, &txn);
done:
	*outp = p;
	*lenp = len;
	return CDN_OK;
fail:
	cache_store_read_end(s, &txn);
	free(p);
	return rc;
}

void
cache_store_unpin(struct cache_store *s, struct cache_pin **pinp)
{
	struct cache_pin *pin = *pinp;

	MAGIC_CHECK(s, CACHE_STORE_MAGIC);
	if (pin == NULL)
		return;
	MAGIC_CHECK(pin, CACHE_PIN_MAGIC);
	entry_release(s, pin->hv, pin->gen);
	pin_free(pinp);
}
