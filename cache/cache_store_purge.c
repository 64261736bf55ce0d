/*
 * Purges (cache/cache.h "tags and purges"): applying one, loading the
 * rules that lookups check (the rule table itself is cache_purge.c), and
 * reclaiming the space of objects that hard purges cover.
 *
 * purged (another process on the same environment) applies a purge in
 * one write transaction: the next sequence number goes to meta
 * "purge_seq", each item to purge_log (seq, item) and to purge_rules
 * (kind, name) -> (hard seq, soft seq), and a hard URL purge deletes the
 * URL's objects.  It syncs, then publishes the seq in the
 * shared page (CACHE_PURGE_SEQ_FILE, mapped by every process), then
 * answers.  A lookup compares the page with s->rules_seq (one relaxed
 * load: nothing else while no purge happens) and, when it moved, one
 * thread reads the new log entries into s->rules.  An object is purged if
 * a rule's seq exceeds its purge_gen (the published seq when its fill
 * began); the verdict is cached in the object for the current seq.  The
 * page is only a doorbell: LMDB is the truth, and at open the rules are
 * loaded from purge_rules, so a page lost or reset costs nothing.
 */
#include "config.h"

#include <errno.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cache/cache.h"
#include "cache/cache_bus.h"
#include "cache/cache_int.h"
#include "cache/cache_store_int.h"
#include "common/cdn_log.h"

/* The seq published in the shared page. */
static uint64_t
purge_page_load(struct cache_store *s)
{
	return atomic_load_explicit(s->purge_page, memory_order_acquire);
}

/* Raise the shared page to <seq> (never lower it). */
void
cache_store_purge_publish(struct cache_store *s, uint64_t seq)
{
	uint64_t cur = purge_page_load(s);

	while (cur < seq &&
	    !atomic_compare_exchange_weak_explicit(s->purge_page, &cur, seq,
	        memory_order_release, memory_order_acquire))
		;
}

/* The bus state sits a cache line after the seq, in the same page. */
#define BUS_PAGE_OFFSET 64

_Static_assert(BUS_PAGE_OFFSET + sizeof(struct cache_bus_page) <= 4096,
    "the bus state fits the smallest page");

struct cache_bus_page *
cache_store_bus_page(struct cache_store *s)
{
	MAGIC_CHECK(s, CACHE_STORE_MAGIC);
	return (
	    struct cache_bus_page *)(void *)((char *)(uintptr_t)s->purge_page +
	    BUS_PAGE_OFFSET);
}

static int
purge_seq_get(struct cache_store *s, MDB_txn *txn, uint64_t *seq)
{
	MDB_val k, v;
	int rc;

	k = mval("purge_seq", 9);
	rc = mdb_get(txn, s->db_meta, &k, &v);
	*seq = 0;
	if (rc == MDB_NOTFOUND)
		return 0;
	if (rc == 0 && v.mv_size == 8)
		*seq = get_le64(v.mv_data);
	return rc;
}

/* A purge record's kind byte, read from disk: one cache_rules_add takes. */
static int
purge_kind_known(uint8_t k)
{
	return k == CACHE_PURGE_URL || k == CACHE_PURGE_TAG ||
	    k == CACHE_PURGE_PREFIX;
}

/* At open: every rule, and the seq they are current to.  MDB_CORRUPTED
 * for a rule it cannot read (the store is then damaged). */
int
cache_store_purge_load_rules(struct cache_store *s, MDB_txn *txn)
{
	MDB_cursor *cur;
	MDB_val k, v;
	uint64_t seq;
	int rc;

	rc = purge_seq_get(s, txn, &seq);
	if (rc != 0)
		return rc;
	rc = mdb_cursor_open(txn, s->db_prules, &cur);
	if (rc != 0)
		return rc;
	pthread_rwlock_wrlock(&s->rules_lock);
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		const uint8_t *kp = k.mv_data;

		if (k.mv_size < 1 || v.mv_size != 16 ||
		    k.mv_size - 1 > CACHE_TAGS_CAP)
			continue;
		if (!purge_kind_known(kp[0])) {
			rc = MDB_CORRUPTED; /* a purge we cannot read */
			break;
		}
		cache_rules_add(s->rules, kp[0], kp + 1, k.mv_size - 1,
		    get_le64(v.mv_data), get_le64((uint8_t *)v.mv_data + 8));
	}
	pthread_rwlock_unlock(&s->rules_lock);
	mdb_cursor_close(cur);
	atomic_store_explicit(&s->rules_seq, seq, memory_order_release);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

/* Read the purge log past s->rules_seq into s->rules.  Under reload_mtx.
 * A record it cannot read marks the store damaged: skipping it would
 * serve what that purge removed. */
static void
rules_load_log(struct cache_store *s)
{
	uint8_t start[12];
	MDB_txn *txn = NULL;
	MDB_cursor *cur = NULL;
	MDB_val k, v;
	uint64_t seq, from;
	int rc;

	if (cache_store_txn_begin(s, MDB_RDONLY, &txn) != 0)
		return;
	rc = purge_seq_get(s, txn, &seq);
	if (rc == 0)
		rc = mdb_cursor_open(txn, s->db_plog, &cur);
	if (rc != 0)
		goto out;
	from = atomic_load_explicit(&s->rules_seq, memory_order_relaxed);
	put_be64(start, from + 1);
	put_be32(start + 8, 0);
	k = mval(start, sizeof(start));
	pthread_rwlock_wrlock(&s->rules_lock);
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		const uint8_t *vp = v.mv_data;
		uint64_t at;

		if (k.mv_size != 12 || v.mv_size < 2)
			continue;
		at = get_be64(k.mv_data);
		if (at > seq)
			break;
		if (!purge_kind_known(vp[0])) {
			rc = MDB_CORRUPTED; /* a purge we cannot read */
			break;
		}
		cache_rules_add(
		    s->rules, vp[0], vp + 2, v.mv_size - 2, vp[1] ? 0 : at, at);
	}
	pthread_rwlock_unlock(&s->rules_lock);
	if (rc == 0 || rc == MDB_NOTFOUND)
		atomic_store_explicit(&s->rules_seq, seq, memory_order_release);
out:
	if (rc != 0 && rc != MDB_NOTFOUND) {
		cache_store_lmdb_check(s, rc);
		CDN_LOG(
		    CDN_LOG_ERR, "cache", "purge log: %s", mdb_strerror(rc));
		atomic_fetch_add_explicit(&s->st_io, 1, memory_order_relaxed);
	}
	if (cur != NULL)
		mdb_cursor_close(cur);
	cache_store_txn_abort(s, &txn);
}

/* Load what cache_store_purge_refresh() saw published, unless another
 * thread did. */
void
cache_store_purge_reload(struct cache_store *s)
{
	pthread_mutex_lock(&s->reload_mtx);
	if (purge_page_load(s) >
	    atomic_load_explicit(&s->rules_seq, memory_order_acquire))
		rules_load_log(s);
	pthread_mutex_unlock(&s->reload_mtx);
}

/* cache_store_purge_verdict() for an object filled before purge <seq>. */
int
cache_store_purge_verdict_slow(
    struct cache_store *s, struct cache_obj *o, uint64_t seq)
{
	int v;

	if (atomic_load_explicit(&o->purge_seen, memory_order_acquire) == seq)
		return atomic_load_explicit(
		    &o->purge_state, memory_order_relaxed);
	pthread_rwlock_rdlock(&s->rules_lock);
	v = cache_rules_match(s->rules, o);
	pthread_rwlock_unlock(&s->rules_lock);
	atomic_store_explicit(&o->purge_state, v, memory_order_relaxed);
	atomic_store_explicit(&o->purge_seen, seq, memory_order_release);
	return v;
}

uint64_t
cache_store_purge_seq(struct cache_store *s)
{
	uint64_t a, b;

	MAGIC_CHECK(s, CACHE_STORE_MAGIC);
	a = purge_page_load(s);
	b = atomic_load_explicit(&s->rules_seq, memory_order_acquire);
	return a > b ? a : b;
}

/* Raise the rule of one item to <seq> and log it. */
static int
purge_record(struct cache_store *s, MDB_txn *txn,
    const struct cache_purge_item *it, unsigned idx, uint64_t seq, int soft)
{
	uint8_t kbuf[1 + CACHE_TAGS_CAP], val[16], lk[12];
	uint8_t *lv;
	const void *name = it->kind == CACHE_PURGE_URL ? (const void *)it->key
	                                               : (const void *)it->name;
	size_t len = it->kind == CACHE_PURGE_URL ? CACHE_HASH_LEN : it->len;
	uint64_t hard = 0;
	MDB_val k, v;
	int rc;

	/* An empty prefix is the rule "every key" (a bus gap). */
	if ((len == 0 && it->kind != CACHE_PURGE_PREFIX) ||
	    len > CACHE_TAGS_CAP)
		return EINVAL;
	kbuf[0] = (uint8_t)it->kind;
	memcpy(kbuf + 1, name, len);
	k = mval(kbuf, len + 1);
	rc = mdb_get(txn, s->db_prules, &k, &v);
	/* <seq> is the newest purge: it raises the soft rule, which any
	 * purge implies, so only the hard one is read back. */
	if (rc == 0 && v.mv_size == 16)
		hard = get_le64(v.mv_data);
	else if (rc != 0 && rc != MDB_NOTFOUND)
		return rc;
	if (!soft)
		hard = seq;
	put_le64(val, hard);
	put_le64(val + 8, seq);
	v = mval(val, sizeof(val));
	rc = store_mdb_put(s, txn, s->db_prules, &k, &v, 0);
	if (rc != 0)
		return rc;
	put_be64(lk, seq);
	put_be32(lk + 8, idx);
	k = mval(lk, sizeof(lk));
	v.mv_size = len + 2;
	v.mv_data = NULL;
	rc = store_mdb_put(s, txn, s->db_plog, &k, &v, MDB_RESERVE);
	if (rc != 0)
		return rc;
	lv = v.mv_data;
	lv[0] = (uint8_t)it->kind;
	lv[1] = soft ? 1 : 0;
	memcpy(lv + 2, name, len);
	return 0;
}

/* Apply one purge inside <txn> as purge seq+1 (with <dry>, only count). */
static int
purge_apply_txn(struct cache_store *s, MDB_txn *txn,
    struct cache_purge_item *items, unsigned n, int soft, int dry, uint64_t seq)
{
	int rc;

	for (unsigned i = 0; i < n; i++) {
		struct cache_purge_item *it = &items[i];

		it->matched = CACHE_MATCHED_UNKNOWN;
		if (it->kind == CACHE_PURGE_TAG) {
			rc = cache_objdb_tag_count(
			    s, txn, it->name, it->len, &it->matched);
			if (rc != 0)
				return rc;
		} else if (it->kind == CACHE_PURGE_URL) {
			rc = cache_objdb_key_count(
			    s, txn, it->key, &it->matched);
			if (rc == 0 && !dry && !soft && it->matched > 0)
				rc = cache_objdb_remove_key(s, txn, it->key);
			if (rc != 0)
				return rc;
		}
		if (!dry && (rc = purge_record(s, txn, it, i, seq, soft)) != 0)
			return rc;
	}
	return 0;
}

/* Commit, sync, publish <seq>: a purge is durable before anyone is told. */
static int
purge_commit(struct cache_store *s, MDB_txn **txnp, uint64_t seq)
{
	MDB_val k, v;
	uint8_t sb[8];
	int rc;

	put_le64(sb, seq);
	k = mval("purge_seq", 9);
	v = mval(sb, sizeof(sb));
	rc = store_mdb_put(s, *txnp, s->db_meta, &k, &v, 0);
	if (rc == 0)
		rc = cache_store_txn_commit(s, txnp);
	if (rc == 0)
		rc = mdb_env_sync(s->env, 1);
	if (rc == 0)
		cache_store_purge_publish(s, seq);
	return rc;
}

static int
purge_fail(struct cache_store *s, MDB_txn **txnp, int rc)
{
	CDN_LOG(CDN_LOG_ERR, "cache", "purge: %s", mdb_strerror(rc));
	atomic_fetch_add_explicit(&s->st_io, 1, memory_order_relaxed);
	cache_store_txn_abort(s, txnp);
	return CDN_EIO;
}

int
cache_store_purge(struct cache_store *s, struct cache_purge_item *items,
    unsigned n, int soft, int dry, uint64_t *seqp)
{
	MDB_txn *txn = NULL;
	uint64_t seq;
	int rc;

	MAGIC_CHECK(s, CACHE_STORE_MAGIC);
	CDN_ASSERT(items != NULL || n == 0);
	rc = cache_store_txn_begin(s, dry ? MDB_RDONLY : 0, &txn);
	if (rc != 0)
		return CDN_EIO;
	rc = purge_seq_get(s, txn, &seq);
	if (rc != 0)
		return purge_fail(s, &txn, rc);
	if (!dry)
		seq++;
	rc = purge_apply_txn(s, txn, items, n, soft, dry, seq);
	if (rc != 0)
		return purge_fail(s, &txn, rc);
	if (dry) {
		cache_store_txn_abort(s, &txn);
		*seqp = seq;
		return CDN_OK;
	}
	rc = purge_commit(s, &txn, seq);
	if (rc != 0)
		return purge_fail(s, &txn, rc);
	*seqp = seq;
	return CDN_OK;
}

int
cache_store_purge_batch(struct cache_store *s, struct cache_purge_op *ops,
    unsigned nops, const char *mark, const void *val, size_t len)
{
	MDB_txn *txn = NULL;
	MDB_val k, v;
	uint64_t seq;
	int rc;

	MAGIC_CHECK(s, CACHE_STORE_MAGIC);
	CDN_ASSERT(ops != NULL || nops == 0);
	CDN_ASSERT(mark != NULL && strlen(mark) > 0 && val != NULL);
	rc = cache_store_txn_begin(s, 0, &txn);
	if (rc != 0)
		return CDN_EIO;
	rc = purge_seq_get(s, txn, &seq);
	if (rc != 0)
		return purge_fail(s, &txn, rc);
	for (unsigned i = 0; i < nops; i++) {
		ops[i].seq = 0;
		if (ops[i].n == 0)
			continue; /* nothing to purge, but still marked */
		seq++;
		rc = purge_apply_txn(
		    s, txn, ops[i].items, ops[i].n, ops[i].soft, 0, seq);
		if (rc != 0)
			return purge_fail(s, &txn, rc);
		ops[i].seq = seq;
	}
	k = mval(mark, strlen(mark));
	v = mval(val, len);
	rc = store_mdb_put(s, txn, s->db_meta, &k, &v, 0);
	if (rc != 0)
		return purge_fail(s, &txn, rc);
	rc = purge_commit(s, &txn, seq);
	if (rc != 0)
		return purge_fail(s, &txn, rc);
	return CDN_OK;
}

int
cache_store_purge_mark(
    struct cache_store *s, const char *mark, void *out, size_t cap, size_t *len)
{
	MDB_txn *txn = NULL;
	MDB_val k, v;
	int rc;

	MAGIC_CHECK(s, CACHE_STORE_MAGIC);
	if (cache_store_txn_begin(s, MDB_RDONLY, &txn) != 0)
		return CDN_EIO;
	k = mval(mark, strlen(mark));
	rc = mdb_get(txn, s->db_meta, &k, &v);
	if (rc == 0 && v.mv_size <= cap) {
		/* v points into the map: copied before the txn ends. */
		memcpy(out, v.mv_data, v.mv_size);
		*len = v.mv_size;
	}
	cache_store_txn_abort(s, &txn);
	if (rc == MDB_NOTFOUND)
		return CDN_NOTFOUND;
	if (rc != 0 || v.mv_size > cap)
		return CDN_EIO;
	return CDN_OK;
}

/*
 * Reclaim space after tag and prefix purges: scan up to <max_scan> object
 * records from *pos (a CACHE_OBJKEY_LEN key; all zero to start) and
 * delete, in one write transaction, those a hard purge covers.  *pos
 * moves on; *done is set once the scan reached the end; *deleted counts.
 * A batch that deleted anything is synced, not for its own sake (a
 * reclaim lost in a crash is redone, and lookups never serve what it
 * deletes) but so that the next purge's fsync does not write its pages.
 * CDN_OK or CDN_EIO.
 */
int
cache_store_reclaim(struct cache_store *s, uint8_t pos[CACHE_OBJKEY_LEN],
    unsigned max_scan, uint64_t *deleted, int *done)
{
	uint8_t(*dead)[CACHE_OBJKEY_LEN] = NULL;
	MDB_txn *txn = NULL;
	MDB_cursor *cur = NULL;
	MDB_val k, v;
	struct cache_record_view rv;
	struct cache_obj view;
	uint64_t seq;
	unsigned ndead = 0, n = 0;
	int rc, existed;

	MAGIC_CHECK(s, CACHE_STORE_MAGIC);
	*done = 0;
	cache_store_purge_refresh(s);
	seq = atomic_load_explicit(&s->rules_seq, memory_order_acquire);
	dead = calloc(max_scan, sizeof(*dead));
	if (dead == NULL)
		return CDN_ENOMEM;
	rc = cache_store_txn_begin(s, 0, &txn);
	if (rc != 0) {
		free(dead);
		return CDN_EIO;
	}
	rc = mdb_cursor_open(txn, s->db_obj, &cur);
	if (rc != 0)
		goto out;
	k = mval(pos, CACHE_OBJKEY_LEN);
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	     rc == 0 && n < max_scan;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT), n++) {
		if (k.mv_size != CACHE_OBJKEY_LEN ||
		    cache_record_decode(v.mv_data, v.mv_size, k.mv_data, &rv) !=
		        CDN_OK ||
		    rv.purge_gen >= seq)
			continue;
		/* A view borrowing the map, for the rule check only. */
		memset(&view, 0, sizeof(view));
		view.magic = CACHE_OBJ_MAGIC;
		memcpy(view.key, k.mv_data, CACHE_HASH_LEN);
		view.purge_gen = rv.purge_gen;
		view.url = (char *)(uintptr_t)rv.url;
		view.url_len = rv.url_len;
		view.tags = (char *)(uintptr_t)rv.tags;
		view.tags_len = rv.tags_len;
		pthread_rwlock_rdlock(&s->rules_lock);
		if (cache_rules_match(s->rules, &view) == CACHE_PURGED_HARD)
			memcpy(dead[ndead++], k.mv_data, CACHE_OBJKEY_LEN);
		pthread_rwlock_unlock(&s->rules_lock);
	}
	if (rc == 0 && k.mv_size == CACHE_OBJKEY_LEN)
		memcpy(pos, k.mv_data, CACHE_OBJKEY_LEN); /* the next one */
	else if (rc == MDB_NOTFOUND)
		*done = 1;
	else if (rc == 0)
		*done = 1; /* a key of the wrong size: stop the scan */
	else
		goto out;
	mdb_cursor_close(cur);
	cur = NULL;
	rc = 0;
	for (unsigned i = 0; i < ndead && rc == 0; i++) {
		rc = cache_objdb_delete(s, txn, dead[i], 1, NULL, &existed);
		*deleted += existed ? 1 : 0;
	}
	if (rc == 0)
		rc = cache_store_txn_commit(s, &txn);
	if (rc == 0 && ndead > 0)
		rc = mdb_env_sync(s->env, 1);
out:
	if (cur != NULL)
		mdb_cursor_close(cur);
	cache_store_txn_abort(s, &txn);
	free(dead);
	if (rc != 0) {
		CDN_LOG(CDN_LOG_ERR, "cache", "reclaim: %s", mdb_strerror(rc));
		atomic_fetch_add_explicit(&s->st_io, 1, memory_order_relaxed);
		return CDN_EIO;
	}
	return CDN_OK;
}
