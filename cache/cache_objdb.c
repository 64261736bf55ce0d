/*
 * An object's entries in the store's databases (cache_int.h), inside a
 * write transaction that the caller holds: writing an object (its chunks,
 * record, lru entry, tag index entries and Vary rule),
 * deleting one variant or every variant of a key, moving an lru entry,
 * and counting the variants of a key or the objects of a tag.  Callers
 * are the writer thread (cache_writer.c, cache_evict.c, cache_stream.c)
 * and purges (cache_store_purge.c).  Each returns 0 or an LMDB code, and
 * the caller aborts the transaction on an error.
 */
#include "config.h"

#include <errno.h>
#include <lmdb.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cache/cache.h"
#include "cache/cache_int.h"
#include "cache/cache_store_int.h"

/* What cache_objdb_write keeps on its stack, not in a malloc: the sums and
 * tails of bodies of up to this many chunks, tails of up to this many
 * bytes (a small body is all tail). */
#define OBJDB_STACK_CHUNKS 4
#define OBJDB_STACK_TAIL   4096

/* Add an lru entry for <hv> in <bucket>, its key in <lk>; returns 0 or
 * an LMDB code.  The key is (bucket, seq): a new object's is past every
 * other in the current bucket, so it is appended (no search, and full
 * pages), unless a later bucket holds entries (the clock went back). */
static int
lru_add(struct cache_store *s, MDB_txn *txn, const uint8_t hv[CACHE_OBJKEY_LEN],
    uint32_t bucket, uint8_t lk[CACHE_LRUKEY_LEN])
{
	unsigned flags = MDB_APPEND;
	MDB_val k, v;
	int rc;

	for (;;) {
		put_be32(lk, bucket);
		put_be64(lk + 4, ++s->lru_seq);
		k = mval(lk, CACHE_LRUKEY_LEN);
		v = mval(hv, CACHE_OBJKEY_LEN);
		rc = store_mdb_put(s, txn, s->db_lru, &k, &v, flags);
		if (rc != MDB_KEYEXIST)
			return rc;
		if (flags == MDB_APPEND)
			flags = MDB_NOOVERWRITE; /* not the last key */
		/* else lru_seq was lost: skip ahead */
	}
}

/* The record version of the stored record <v>, 0 if it has none. */
static unsigned
rec_version(const MDB_val *v)
{
	return v->mv_size >= CACHE_REC_HDR_LEN + CACHE_LRUKEY_LEN
	    ? get_le16((const uint8_t *)v->mv_data + 4)
	    : 0;
}

/* Count the variants of primary key <key>. */
int
cache_objdb_key_count(struct cache_store *s, MDB_txn *txn,
    const uint8_t key[CACHE_HASH_LEN], uint64_t *n)
{
	uint8_t start[CACHE_OBJKEY_LEN];
	MDB_cursor *cur;
	MDB_val k, v;
	int rc;

	*n = 0;
	rc = mdb_cursor_open(txn, s->db_obj, &cur);
	if (rc != 0)
		return rc;
	cache_record_objkey(start, key, 0);
	k = mval(start, sizeof(start));
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	     rc == 0 && k.mv_size == CACHE_OBJKEY_LEN &&
	     memcmp(k.mv_data, key, CACHE_HASH_LEN) == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT))
		(*n)++;
	mdb_cursor_close(cur);
	return rc == MDB_NOTFOUND || rc == 0 ? 0 : rc;
}

static int
tags_index(struct cache_store *s, MDB_txn *txn, const char *tags, size_t len,
    const uint8_t hv[CACHE_OBJKEY_LEN], int add)
{
	const char *p = tags, *end, *sp;
	MDB_val k, v;
	int rc;

	if (len == 0)
		return 0; /* an object without tags may have no string at all */
	end = tags + len;
	while (p < end) {
		sp = memchr(p, ' ', (size_t)(end - p));
		if (sp == NULL)
			sp = end;
		if (sp > p && (size_t)(sp - p) <= CACHE_TAG_MAX_LEN) {
			k = mval(p, (size_t)(sp - p));
			v = mval(hv, CACHE_OBJKEY_LEN);
			rc = add ? store_mdb_put(s, txn, s->db_tags, &k, &v,
			               MDB_NODUPDATA)
			         : store_mdb_del(s, txn, s->db_tags, &k, &v);
			if (rc != 0 && rc != MDB_KEYEXIST && rc != MDB_NOTFOUND)
				return rc;
		}
		p = sp + 1;
	}
	return 0;
}

/* Remove the tag index entries of the stored record <hv>, if any.  The
 * record is not checksummed here: it is about to go, and a bad length
 * only means no entry is found. */
static int
tags_unindex(
    struct cache_store *s, MDB_txn *txn, const uint8_t hv[CACHE_OBJKEY_LEN])
{
	char tags[CACHE_TAGS_CAP];
	const uint8_t *p;
	uint64_t off, tlen;
	MDB_val k, v;
	int rc;

	k = mval(hv, CACHE_OBJKEY_LEN);
	rc = mdb_get(txn, s->db_obj, &k, &v);
	if (rc != 0)
		return rc == MDB_NOTFOUND ? 0 : rc;
	p = v.mv_data;
	if (v.mv_size < CACHE_REC_HDR_LEN)
		return 0;
	tlen = get_le32(p + 100);
	off = (uint64_t)CACHE_REC_HDR_LEN + get_le32(p + 88) +
	    get_le32(p + 92) + get_le32(p + 96);
	if (tlen == 0 || tlen > sizeof(tags) || off + tlen > v.mv_size)
		return 0;
	/* Copied: the deletes below may move the map's pages. */
	memcpy(tags, p + off, (size_t)tlen);
	return tags_index(s, txn, tags, (size_t)tlen, hv, 0);
}

/* Objects stored with <tag>, from the tag index. */
int
cache_objdb_tag_count(struct cache_store *s, MDB_txn *txn, const char *tag,
    size_t len, uint64_t *n)
{
	MDB_cursor *cur;
	MDB_val k, v;
	size_t count = 0;
	int rc;

	*n = 0;
	if (len == 0 || len > CACHE_TAG_MAX_LEN)
		return 0;
	rc = mdb_cursor_open(txn, s->db_tags, &cur);
	if (rc != 0)
		return rc;
	k = mval(tag, len);
	rc = mdb_cursor_get(cur, &k, &v, MDB_SET);
	if (rc == 0)
		rc = mdb_cursor_count(cur, &count);
	mdb_cursor_close(cur);
	*n = count;
	return rc == MDB_NOTFOUND ? 0 : rc;
}

/* Tell the streams writing chunks under <hv> that the key is someone
 * else's now: they must neither write their record nor delete "their"
 * chunks. */
static void
streams_clobber(struct cache_store *s, const uint8_t hv[CACHE_OBJKEY_LEN])
{
	for (struct cache_stream *st = s->streams; st != NULL; st = st->wnext)
		if (memcmp(st->obj->key, hv, CACHE_HASH_LEN) == 0 &&
		    st->obj->variant == get_be64(hv + CACHE_HASH_LEN))
			st->clobbered = 1;
}

/*
 * Delete the object <hv>: record, chunks (whatever is stored under its
 * prefix but the generations <kept> names, which readers still send),
 * lru and lru_pos entries; with <clean_vary>, also the Vary rule if no
 * variant of the key remains.  *existed tells whether a record was there.
 * Returns 0 or an LMDB code.
 */
int
cache_objdb_delete(struct cache_store *s, MDB_txn *txn,
    const uint8_t hv[CACHE_OBJKEY_LEN], int clean_vary, const uint8_t *kept,
    int *existed)
{
	uint8_t lk[CACHE_LRUKEY_LEN], ck[CACHE_CHUNKKEY_LEN];
	MDB_cursor *cur = NULL;
	MDB_val k, v;
	uint64_t left;
	unsigned gen;
	int rc;

	*existed = 0;
	streams_clobber(s, hv);
	rc = tags_unindex(s, txn, hv);
	if (rc != 0)
		return rc;
	/* The lru key: at the record's end, or in lru_pos (version 1). */
	k = mval(hv, CACHE_OBJKEY_LEN);
	rc = mdb_get(txn, s->db_obj, &k, &v);
	if (rc == 0 && rec_version(&v) == CACHE_REC_VERSION) {
		memcpy(lk, (const uint8_t *)v.mv_data + v.mv_size - sizeof(lk),
		    sizeof(lk));
		k = mval(lk, sizeof(lk));
		rc = store_mdb_del(s, txn, s->db_lru, &k, NULL);
	} else if (rc == 0 || rc == MDB_NOTFOUND) {
		rc = mdb_get(txn, s->db_lru_pos, &k, &v);
		if (rc == 0 && v.mv_size == CACHE_LRUKEY_LEN) {
			memcpy(lk, v.mv_data, sizeof(lk));
			k = mval(lk, sizeof(lk));
			rc = store_mdb_del(s, txn, s->db_lru, &k, NULL);
			if (rc != 0 && rc != MDB_NOTFOUND)
				goto out;
			k = mval(hv, CACHE_OBJKEY_LEN);
			rc = store_mdb_del(s, txn, s->db_lru_pos, &k, NULL);
		}
	}
	if (rc != 0 && rc != MDB_NOTFOUND)
		goto out;
	k = mval(hv, CACHE_OBJKEY_LEN);
	rc = store_mdb_del(s, txn, s->db_obj, &k, NULL);
	if (rc != 0 && rc != MDB_NOTFOUND)
		goto out;
	*existed = rc == 0;

	rc = mdb_cursor_open(txn, s->db_body, &cur);
	if (rc != 0)
		goto out;
	memcpy(ck, hv, CACHE_OBJKEY_LEN);
	put_be32(ck + CACHE_OBJKEY_LEN, 0);
	for (;;) {
		k = mval(ck, sizeof(ck));
		rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
		if (rc == MDB_NOTFOUND ||
		    (rc == 0 &&
		        (k.mv_size != CACHE_CHUNKKEY_LEN ||
		            memcmp(k.mv_data, hv, CACHE_OBJKEY_LEN) != 0))) {
			rc = 0;
			break;
		}
		if (rc != 0)
			goto out;
		gen = ((const uint8_t *)k.mv_data)[CACHE_OBJKEY_LEN];
		if (kept != NULL && (kept[gen / 8] & 1u << gen % 8)) {
			if (gen == CACHE_CHUNK_GEN_MAX)
				break; /* rc is 0 */
			put_be32(ck + CACHE_OBJKEY_LEN,
			    (uint32_t)(gen + 1) << CACHE_CHUNK_GEN_SHIFT);
			continue;
		}
		rc = store_mdb_cursor_del(s, cur, 0);
		if (rc != 0)
			goto out;
	}
	if (clean_vary) {
		rc = cache_objdb_key_count(s, txn, hv, &left);
		if (rc != 0)
			goto out;
		if (left == 0) {
			k = mval(hv, CACHE_HASH_LEN);
			rc = store_mdb_del(s, txn, s->db_vary, &k, NULL);
			if (rc == MDB_NOTFOUND)
				rc = 0;
		}
	}
out:
	if (cur != NULL)
		mdb_cursor_close(cur);
	return rc;
}

/* Reserve the record of <o> under <hv> with <flags> (0, or
 * MDB_NOOVERWRITE to learn that one is there) and encode it; the
 * arguments as for cache_objdb_write_record, <lk> its lru key. */
static int
record_put(struct cache_store *s, MDB_txn *txn, const struct cache_obj *o,
    const uint8_t hv[CACHE_OBJKEY_LEN], unsigned gen, uint32_t nchunks,
    const uint64_t *sums, const uint16_t *tails, const uint8_t *tailbuf,
    const uint8_t lk[CACHE_LRUKEY_LEN], unsigned flags)
{
	MDB_val k, v;
	size_t total = 0;
	int rc;

	for (uint32_t i = 0; i < nchunks; i++)
		total += tails[i];
	k = mval(hv, CACHE_OBJKEY_LEN);
	v.mv_size = cache_record_len(o, nchunks, total);
	v.mv_data = NULL;
	rc = store_mdb_put(s, txn, s->db_obj, &k, &v, MDB_RESERVE | flags);
	if (rc != 0)
		return rc;
	/* v.mv_data is valid until the next write in this txn. */
	cache_record_encode(
	    v.mv_data, o, hv, gen, nchunks, sums, tails, tailbuf, lk);
	return 0;
}

/* The tag index entries and the Vary rule of the record <o>, <hv>. */
static int
record_links(struct cache_store *s, MDB_txn *txn, const struct cache_obj *o,
    const uint8_t hv[CACHE_OBJKEY_LEN])
{
	MDB_val k, v;
	int rc;

	rc = tags_index(s, txn, o->tags, o->tags_len, hv, 1);
	if (rc != 0)
		return rc;
	k = mval(o->key, CACHE_HASH_LEN);
	if (o->vary_len > 0) {
		v = mval(o->vary, o->vary_len);
		return store_mdb_put(s, txn, s->db_vary, &k, &v, 0);
	}
	rc = store_mdb_del(s, txn, s->db_vary, &k, NULL);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

/* Write the record of <o> (whose bodies values are written under chunk
 * generation <gen>, with checksums <sums>; <tails> and <tailbuf> are what
 * the record keeps of its <nchunks> chunks), its lru entries, tags and
 * Vary rule. */
int
cache_objdb_write_record(struct cache_store *s, MDB_txn *txn,
    const struct cache_obj *o, const uint8_t hv[CACHE_OBJKEY_LEN], unsigned gen,
    uint32_t nchunks, const uint64_t *sums, const uint16_t *tails,
    const uint8_t *tailbuf, uint32_t bucket)
{
	uint8_t lk[CACHE_LRUKEY_LEN];
	int rc;

	rc = lru_add(s, txn, hv, bucket, lk);
	if (rc != 0)
		return rc;
	rc = record_put(
	    s, txn, o, hv, gen, nchunks, sums, tails, tailbuf, lk, 0);
	if (rc != 0)
		return rc;
	return record_links(s, txn, o, hv);
}

/* Bytes of chunk <i> of <o> that go in the bodies db: the chunk less the
 * tail its record keeps (tails[i], cache_record_plan). */
static size_t
chunk_part(const struct cache_obj *o, const uint16_t *tails, uint32_t i)
{
	return cache_chunk_len(o->body_len, i) - tails[i];
}

/*
 * Write <o> with its chunks, lru entries and Vary rule.  The record goes
 * first, with MDB_NOOVERWRITE: only when one is there is the old object
 * deleted (record, lru entry, tags, every chunk under the key but those
 * readers still send: the new chunks go under a generation no reader
 * holds, cache_pin.c), so a new key costs no lookup of its own.  Without a
 * record, chunks may still be under the key: orphans of a stream that died
 * before its record (kill -9).  None is ever read as this object's: a record
 * reads chunk i only where it keeps less than the whole chunk (part > 0), and
 * each such chunk is written here, in the record's transaction, under the same
 * checksum.  The others stay until the record goes, whose delete sweeps
 * every chunk under the key (test_stream_orphans.py).
 */
int
cache_objdb_write(
    struct cache_store *s, MDB_txn *txn, struct cache_obj *o, uint32_t bucket)
{
	uint8_t hv[CACHE_OBJKEY_LEN], ck[CACHE_CHUNKKEY_LEN];
	uint8_t lk[CACHE_LRUKEY_LEN], kept[CACHE_PIN_GEN_BYTES];
	uint64_t sums_stack[OBJDB_STACK_CHUNKS], *sums, seed;
	uint16_t tails_stack[OBJDB_STACK_CHUNKS], *tails;
	uint8_t tail_stack[OBJDB_STACK_TAIL], *tailbuf;
	MDB_val k, v;
	size_t part, total, off = 0;
	unsigned gen;
	int rc, existed, is_claimed;

	cache_record_objkey(hv, o->key, o->variant);
	CDN_ASSERT(o->nchunks < CACHE_CHUNKS_MAX); /* max_disk_object */
	if (o->nchunks <= OBJDB_STACK_CHUNKS) {
		sums = sums_stack;
		tails = tails_stack;
	} else {
		sums = malloc(
		    (size_t)o->nchunks * (sizeof(*sums) + sizeof(*tails)));
		if (sums == NULL)
			return ENOMEM;
		tails = (uint16_t *)(sums + o->nchunks);
	}
	total = cache_record_plan(o->body_len, o->nchunks,
	    cache_record_len(o, o->nchunks, 0), s->psize, tails);
	tailbuf = total <= sizeof(tail_stack) ? tail_stack : malloc(total);
	if (tailbuf == NULL) {
		if (sums != sums_stack)
			free(sums);
		return ENOMEM;
	}
	seed = cache_record_seed(hv);
	for (uint32_t i = 0; i < o->nchunks; i++) {
		part = chunk_part(o, tails, i);
		memcpy(tailbuf + off, o->chunks[i] + part, tails[i]);
		off += tails[i];
		sums[i] = cache_record_chunk_sum(seed, i, o->chunks[i], part);
	}
	streams_clobber(s, hv);
	/* Without any pin, a new key needs no claim: nobody can read what
	 * is not stored.  Else the claim picks the generation first. */
	is_claimed = cache_pins_any(s);
	gen = is_claimed ? (unsigned)cache_pins_claim(s, hv, kept) : 0;
	rc = lru_add(s, txn, hv, bucket, lk);
	if (rc != 0)
		goto out;
	rc = record_put(s, txn, o, hv, gen, o->nchunks, sums, tails, tailbuf,
	    lk, MDB_NOOVERWRITE);
	if (rc == MDB_KEYEXIST) {
		if (!is_claimed)
			gen = (unsigned)cache_pins_claim(s, hv, kept);
		rc = cache_objdb_delete(s, txn, hv, 0, kept, &existed);
		if (rc == 0)
			rc = record_put(s, txn, o, hv, gen, o->nchunks, sums,
			    tails, tailbuf, lk, 0);
	}
	if (rc != 0)
		goto out;
	for (uint32_t i = 0; i < o->nchunks; i++) {
		part = chunk_part(o, tails, i);
		if (part == 0)
			continue;
		cache_record_chunkkey(ck, o->key, o->variant, gen, i);
		k = mval(ck, sizeof(ck));
		v = mval(o->chunks[i], part);
		rc = store_mdb_put(s, txn, s->db_body, &k, &v, 0);
		if (rc != 0)
			goto out;
	}
	rc = record_links(s, txn, o, hv);
out:
	if (tailbuf != tail_stack)
		free(tailbuf);
	if (sums != sums_stack)
		free(sums);
	return rc;
}

/* Delete every variant and the Vary rule of a primary key. */
int
cache_objdb_remove_key(
    struct cache_store *s, MDB_txn *txn, const uint8_t key[CACHE_HASH_LEN])
{
	uint8_t start[CACHE_OBJKEY_LEN], hv[CACHE_OBJKEY_LEN];
	MDB_cursor *cur;
	MDB_val k, v;
	int rc, existed;

	rc = mdb_cursor_open(txn, s->db_obj, &cur);
	if (rc != 0)
		return rc;
	cache_record_objkey(start, key, 0);
	for (;;) {
		k = mval(start, sizeof(start));
		rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
		if (rc == MDB_NOTFOUND ||
		    (rc == 0 &&
		        (k.mv_size != CACHE_OBJKEY_LEN ||
		            memcmp(k.mv_data, key, CACHE_HASH_LEN) != 0))) {
			rc = 0;
			break;
		}
		if (rc != 0)
			break;
		memcpy(hv, k.mv_data, sizeof(hv));
		rc = cache_objdb_delete(s, txn, hv, 0, NULL, &existed);
		if (rc != 0)
			break;
	}
	mdb_cursor_close(cur);
	if (rc != 0)
		return rc;
	k = mval(key, CACHE_HASH_LEN);
	rc = store_mdb_del(s, txn, s->db_vary, &k, NULL);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

/* Move the lru entry of <hv> to <bucket> if it is older. */
int
cache_objdb_touch(struct cache_store *s, MDB_txn *txn,
    const uint8_t hv[CACHE_OBJKEY_LEN], uint32_t bucket)
{
	uint8_t lk[CACHE_LRUKEY_LEN], *rec;
	MDB_val k, v;
	int rc;

	k = mval(hv, CACHE_OBJKEY_LEN);
	rc = mdb_get(txn, s->db_obj, &k, &v);
	if (rc != 0)
		return rc == MDB_NOTFOUND ? 0 : rc; /* only an object moves */
	if (rec_version(&v) == CACHE_REC_VERSION) {
		if (get_be32((const uint8_t *)v.mv_data + v.mv_size -
		        CACHE_LRUKEY_LEN) >= bucket)
			return 0;
		/* Copied: the writes below may move the map's pages. */
		rec = malloc(v.mv_size);
		if (rec == NULL)
			return ENOMEM;
		memcpy(rec, v.mv_data, v.mv_size);
		v.mv_data = rec;
		k = mval(rec + v.mv_size - CACHE_LRUKEY_LEN, CACHE_LRUKEY_LEN);
		rc = store_mdb_del(s, txn, s->db_lru, &k, NULL);
		if (rc == 0 || rc == MDB_NOTFOUND)
			rc = lru_add(s, txn, hv, bucket,
			    rec + v.mv_size - CACHE_LRUKEY_LEN);
		k = mval(hv, CACHE_OBJKEY_LEN);
		if (rc == 0)
			rc = store_mdb_put(s, txn, s->db_obj, &k, &v, 0);
		free(rec);
		return rc;
	}
	/* A version 1 record: its lru key is in lru_pos. */
	rc = mdb_get(txn, s->db_lru_pos, &k, &v);
	if (rc == 0 && v.mv_size == CACHE_LRUKEY_LEN) {
		if (get_be32(v.mv_data) >= bucket)
			return 0;
		memcpy(lk, v.mv_data, sizeof(lk));
		k = mval(lk, sizeof(lk));
		rc = store_mdb_del(s, txn, s->db_lru, &k, NULL);
	}
	if (rc != 0 && rc != MDB_NOTFOUND)
		return rc;
	rc = lru_add(s, txn, hv, bucket, lk);
	if (rc != 0)
		return rc;
	k = mval(hv, CACHE_OBJKEY_LEN);
	v = mval(lk, sizeof(lk));
	return store_mdb_put(s, txn, s->db_lru_pos, &k, &v, 0);
}
