/*
 * The object record and the keys of the store's databases (their layout
 * is in cache_int.h): the keys of an object and of its chunks, the XXH3
 * checksums of records and chunks, and encoding and decoding a record.
 * Touches no LMDB environment and no lock: any thread.
 */
#include "config.h"

#include <stdint.h>
#include <string.h>
#include <xxhash.h>

#include "cache/cache.h"
#include "cache/cache_int.h"
#include "cache/cache_store_int.h"

void
cache_record_objkey(uint8_t out[CACHE_OBJKEY_LEN],
    const uint8_t key[CACHE_HASH_LEN], uint64_t variant)
{
	memcpy(out, key, CACHE_HASH_LEN);
	put_be64(out + CACHE_HASH_LEN, variant);
}

void
cache_record_chunkkey(uint8_t out[CACHE_CHUNKKEY_LEN],
    const uint8_t key[CACHE_HASH_LEN], uint64_t variant, unsigned gen,
    uint32_t i)
{
	CDN_ASSERT(gen <= CACHE_CHUNK_GEN_MAX && i < CACHE_CHUNKS_MAX);
	cache_record_objkey(out, key, variant);
	put_be32(
	    out + CACHE_OBJKEY_LEN, (uint32_t)gen << CACHE_CHUNK_GEN_SHIFT | i);
}

/* Checksums are seeded with the key, so a record or chunk found under the
 * wrong key fails its check too. */
uint64_t
cache_record_seed(const uint8_t hv[CACHE_OBJKEY_LEN])
{
	return XXH3_64bits(hv, CACHE_OBJKEY_LEN);
}

/* The record's checksum covers bytes [0, 8) through the seed. */
static uint64_t
rec_sum(const uint8_t *p, size_t len, const uint8_t hv[CACHE_OBJKEY_LEN])
{
	return XXH3_64bits_withSeed(p + CACHE_REC_CSUM_FROM,
	    len - CACHE_REC_CSUM_FROM, cache_record_seed(hv) ^ get_le64(p));
}

uint64_t
cache_record_chunk_sum(uint64_t seed, uint32_t i, const void *p, size_t len)
{
	return XXH3_64bits_withSeed(p, len, seed + i + 1);
}

_Static_assert(CACHE_REC_HDR_LEN == 104, "record header layout");
_Static_assert(
    CACHE_OBJKEY_LEN == 24 && CACHE_CHUNKKEY_LEN == 28, "key layout");

#define REC_F_STORABLE   0x1u
#define REC_F_MUST_REVAL 0x2u
#define REC_F_NO_CACHE   0x4u
#define REC_F_HEURISTIC  0x8u
#define REC_F_DERIVED    0x10u /* a coding made here (cache_decision) */
#define REC_F_ALL        0x1fu
#define REC_GEN_SHIFT    8 /* the chunks' generation: the high byte */

/*
 * LMDB's layout, which only the space a record takes depends on (never
 * its correctness): an overflow value is a page header of 16 bytes and
 * then its bytes, in whole pages; a leaf node of the objects db holds at
 * most ((psize - 16) / 2 & ~1) - 2 bytes, its 8-byte header and key
 * included.
 */
#define LMDB_PAGE_HDR 16
#define LMDB_NODE_HDR 8

size_t
cache_record_len(const struct cache_obj *o, uint32_t nchunks, size_t tails)
{
	return CACHE_REC_HDR_LEN + o->url_len + o->fields_len + o->vary_len +
	    o->tags_len + (size_t)nchunks * (8 + 2) + tails + CACHE_LRUKEY_LEN;
}

/*
 * Bytes of a chunk of <len> bytes that stay out of its bodies value, so
 * that the value fills its overflow pages exactly: all of it when it is
 * shorter than one page's payload.  Less than a page (LMDB's pages are at
 * most 64 KiB), so a u16.
 */
static size_t
tail_of(size_t len, size_t psize)
{
	size_t pages = (len + LMDB_PAGE_HDR) / psize;

	return pages == 0 ? len : len - (pages * psize - LMDB_PAGE_HDR);
}

/* Bytes a record of <len> bytes takes: in a leaf, about 3/2 of itself
 * (leaves are two-thirds full with random keys), else whole pages. */
static size_t
rec_cost(size_t len, size_t psize, size_t leaf_max)
{
	if (len <= leaf_max)
		return len + len / 2;
	return (len + LMDB_PAGE_HDR + psize - 1) / psize * psize;
}

size_t
cache_record_plan(uint64_t body_len, uint32_t nchunks, size_t base_len,
    size_t psize, uint16_t *tails)
{
	size_t total = 0, leaf_max, clen;
	uint64_t left = body_len;

	for (uint32_t i = 0; i < nchunks; i++) {
		clen =
		    left < CACHE_CHUNK_SIZE ? (size_t)left : CACHE_CHUNK_SIZE;
		left -= clen;
		tails[i] = (uint16_t)tail_of(clen, psize);
		total += tails[i];
	}
	if (nchunks == 0)
		return 0;
	/* A record too large for a leaf takes overflow pages of its own:
	 * then the last chunk's tail stays in it if that costs fewer bytes
	 * than one more page for the chunk's value. */
	leaf_max = ((psize - LMDB_PAGE_HDR) / 2 & ~(size_t)1) - 2 -
	    LMDB_NODE_HDR - CACHE_OBJKEY_LEN;
	if (base_len + total > leaf_max &&
	    rec_cost(base_len + total, psize, leaf_max) > psize +
	            rec_cost(base_len + total - tails[nchunks - 1], psize,
	                leaf_max)) {
		total -= tails[nchunks - 1];
		tails[nchunks - 1] = 0;
	}
	return total;
}

/* Encode <o> into p[0..cache_record_len()), with the chunk checksums
 * <sums>, the tail lengths <tails> and their bytes <tailbuf>, and its lru
 * key <lk>. */
void
cache_record_encode(uint8_t *p, const struct cache_obj *o,
    const uint8_t hv[CACHE_OBJKEY_LEN], unsigned gen, uint32_t nchunks,
    const uint64_t *sums, const uint16_t *tails, const uint8_t *tailbuf,
    const uint8_t lk[CACHE_LRUKEY_LEN])
{
	size_t len, off, total = 0;
	unsigned flags = 0;

	for (uint32_t i = 0; i < nchunks; i++)
		total += tails[i];
	len = cache_record_len(o, nchunks, total);
	if (o->d.storable)
		flags |= REC_F_STORABLE;
	if (o->d.must_revalidate)
		flags |= REC_F_MUST_REVAL;
	if (o->d.no_cache)
		flags |= REC_F_NO_CACHE;
	if (o->d.heuristic)
		flags |= REC_F_HEURISTIC;
	if (o->d.derived)
		flags |= REC_F_DERIVED;
	CDN_ASSERT(gen <= CACHE_CHUNK_GEN_MAX);
	flags |= gen << REC_GEN_SHIFT;
	put_le32(p + 0, CACHE_REC_MAGIC);
	put_le16(p + 4, CACHE_REC_VERSION);
	put_le16(p + 6, (uint16_t)flags);
	put_le32(p + 16, (uint32_t)o->status);
	put_le32(p + 20, nchunks);
	put_le64(p + 24, (uint64_t)o->d.freshness_s);
	put_le64(p + 32, (uint64_t)o->d.initial_age_s);
	put_le64(p + 40, (uint64_t)o->d.swr_s);
	put_le64(p + 48, (uint64_t)o->d.sie_s);
	put_le64(p + 56, (uint64_t)o->response_time);
	put_le64(p + 64, (uint64_t)o->stored_at);
	put_le64(p + 72, o->purge_gen);
	put_le64(p + 80, o->body_len);
	put_le32(p + 88, (uint32_t)o->url_len);
	put_le32(p + 92, (uint32_t)o->fields_len);
	put_le32(p + 96, (uint32_t)o->vary_len);
	put_le32(p + 100, (uint32_t)o->tags_len);
	off = CACHE_REC_HDR_LEN;
	memcpy(p + off, o->url, o->url_len);
	off += o->url_len;
	memcpy(p + off, o->fields, o->fields_len);
	off += o->fields_len;
	memcpy(p + off, o->vary, o->vary_len);
	off += o->vary_len;
	if (o->tags_len > 0)
		memcpy(p + off, o->tags, o->tags_len);
	off += o->tags_len;
	for (uint32_t i = 0; i < nchunks; i++, off += 8)
		put_le64(p + off, sums[i]);
	for (uint32_t i = 0; i < nchunks; i++, off += 2)
		put_le16(p + off, tails[i]);
	if (total > 0)
		memcpy(p + off, tailbuf, total);
	off += total;
	memcpy(p + off, lk, CACHE_LRUKEY_LEN);
	off += CACHE_LRUKEY_LEN;
	CDN_ASSERT(off == len);
	put_le64(p + CACHE_REC_CSUM_AT, rec_sum(p, len - CACHE_LRUKEY_LEN, hv));
}

/*
 * Check and parse a record of version 2, or of version 1 (which kept no
 * tails: every chunk whole in its bodies value).  CDN_OK or
 * CDN_ECORRUPT; *v borrows <p>.
 */
int
cache_record_decode(const uint8_t *p, size_t len,
    const uint8_t hv[CACHE_OBJKEY_LEN], struct cache_record_view *v)
{
	uint64_t want, nch, left, clen, total = 0;
	unsigned version;

	if (len < CACHE_REC_HDR_LEN || get_le32(p) != CACHE_REC_MAGIC)
		return CDN_ECORRUPT;
	version = get_le16(p + 4);
	v->lru = NULL;
	if (version == CACHE_REC_VERSION) {
		/* The lru key, which moves, is left out of the checksum. */
		if (len < CACHE_REC_HDR_LEN + CACHE_LRUKEY_LEN)
			return CDN_ECORRUPT;
		len -= CACHE_LRUKEY_LEN;
		v->lru = p + len;
	} else if (version != CACHE_REC_VERSION_1) {
		return CDN_ECORRUPT;
	}
	if (get_le64(p + CACHE_REC_CSUM_AT) != rec_sum(p, len, hv))
		return CDN_ECORRUPT;
	v->flags = get_le16(p + 6) & ((1u << REC_GEN_SHIFT) - 1);
	v->chunk_gen = get_le16(p + 6) >> REC_GEN_SHIFT;
	v->status = (int)get_le32(p + 16);
	v->nchunks = get_le32(p + 20);
	v->freshness_s = (int64_t)get_le64(p + 24);
	v->initial_age_s = (int64_t)get_le64(p + 32);
	v->swr_s = (int64_t)get_le64(p + 40);
	v->sie_s = (int64_t)get_le64(p + 48);
	v->response_time = (int64_t)get_le64(p + 56);
	v->stored_at = (int64_t)get_le64(p + 64);
	v->purge_gen = get_le64(p + 72);
	v->body_len = get_le64(p + 80);
	v->url_len = get_le32(p + 88);
	v->fields_len = get_le32(p + 92);
	v->vary_len = get_le32(p + 96);
	v->tags_len = get_le32(p + 100);
	/* The checksum matched, so these fail only for a writer bug. */
	if ((v->flags & ~REC_F_ALL) != 0 || v->tags_len > CACHE_TAGS_CAP)
		return CDN_ECORRUPT;
	want = (uint64_t)CACHE_REC_HDR_LEN + v->url_len + v->fields_len +
	    v->vary_len + v->tags_len + (uint64_t)v->nchunks * 8;
	nch = v->body_len / CACHE_CHUNK_SIZE +
	    (v->body_len % CACHE_CHUNK_SIZE != 0);
	if (nch != v->nchunks)
		return CDN_ECORRUPT;
	v->url = (const char *)p + CACHE_REC_HDR_LEN;
	v->fields = v->url + v->url_len;
	v->vary = v->fields + v->fields_len;
	v->tags = v->vary + v->vary_len;
	v->sums = (const uint8_t *)v->tags + v->tags_len;
	v->tail_lens = NULL;
	v->tails = NULL;
	if (version == CACHE_REC_VERSION) {
		want += (uint64_t)v->nchunks * 2;
		if (want > len)
			return CDN_ECORRUPT;
		v->tail_lens = v->sums + (size_t)v->nchunks * 8;
		left = v->body_len;
		for (uint32_t i = 0; i < v->nchunks; i++) {
			clen =
			    left < CACHE_CHUNK_SIZE ? left : CACHE_CHUNK_SIZE;
			left -= clen;
			if (get_le16(v->tail_lens + 2 * (size_t)i) > clen)
				return CDN_ECORRUPT;
			total += get_le16(v->tail_lens + 2 * (size_t)i);
		}
		v->tails = v->tail_lens + (size_t)v->nchunks * 2;
		want += total;
	}
	return want == len ? CDN_OK : CDN_ECORRUPT;
}

size_t
cache_record_tail_len(const struct cache_record_view *v, uint32_t i)
{
	return v->tail_lens == NULL ? 0
	                            : get_le16(v->tail_lens + 2 * (size_t)i);
}

const uint8_t *
cache_record_tail(const struct cache_record_view *v, uint32_t i)
{
	size_t off = 0;

	for (uint32_t j = 0; j < i; j++)
		off += cache_record_tail_len(v, j);
	return v->tails + off;
}

/* A new object (without its body) from a decoded record. */
int
cache_record_to_obj(const struct cache_record_view *rv,
    const uint8_t key[CACHE_HASH_LEN], uint64_t variant, struct cache_obj **op)
{
	struct cache_decision d;
	struct cache_obj *o;

	memset(&d, 0, sizeof(d));
	d.storable = (rv->flags & REC_F_STORABLE) != 0;
	d.reason = "stored";
	d.freshness_s = rv->freshness_s;
	d.initial_age_s = rv->initial_age_s;
	d.swr_s = rv->swr_s;
	d.sie_s = rv->sie_s;
	d.must_revalidate = (rv->flags & REC_F_MUST_REVAL) != 0;
	d.no_cache = (rv->flags & REC_F_NO_CACHE) != 0;
	d.heuristic = (rv->flags & REC_F_HEURISTIC) != 0;
	d.derived = (rv->flags & REC_F_DERIVED) != 0;
	o = cache_obj_new(key, variant, rv->status, &d, rv->response_time,
	    rv->url, rv->url_len, rv->fields, rv->fields_len, rv->vary,
	    rv->vary_len);
	if (o == NULL)
		return CDN_ENOMEM;
	o->stored_at = rv->stored_at;
	o->purge_gen = rv->purge_gen;
	if (rv->tags_len > 0 &&
	    cache_obj_set_tags(o, rv->tags, rv->tags_len) != CDN_OK) {
		cache_obj_unref(&o);
		return CDN_ENOMEM;
	}
	*op = o;
	return CDN_OK;
}
