/*
 * The memory tier's Vary rules (cache/cache_mem.c): an object without Vary
 * holds its key's "no Vary" in its own entry, taking over the block of the
 * "no Vary" the miss's lookup planted; a rule with Vary clears every such
 * mark, so losing the Vary entry never leaves an older "no Vary" behind;
 * the rule goes with the entry that holds it (eviction, unpin) and a
 * removal's tombstone hides it.  Includes cache_mem.c to reach the shard
 * and evict one entry by hand.
 */
#include "../../cache/cache_mem.c"

#include <stdio.h>

#include "tap.h"

#define BIG_BUDGET   (UINT64_C(1) << 30)
#define SMALL_BUDGET (64 * 1024) /* admits at most 8 KiB */
#define BIG_BODY     (16 * 1024)
#define VARY_CAP     64

static void
key_of(unsigned i, uint8_t key[CACHE_HASH_LEN])
{
	uint64_t h = (i + 1) * UINT64_C(0x9e3779b97f4a7c15);

	memcpy(key, &h, sizeof(h));
	memcpy(key + 8, &h, sizeof(h));
}

static struct cache_obj *
obj_new(unsigned i, uint64_t variant, const char *vary, size_t body_len)
{
	static unsigned char body[BIG_BODY];
	uint8_t key[CACHE_HASH_LEN];
	struct cache_decision d = {0};
	struct cache_obj *o;

	key_of(i, key);
	o = cache_obj_new(key, variant, 200, &d, 0, "/obj/x", 6,
	    "Content-Type: text/plain\r\n", 26, vary, strlen(vary));
	CDN_ASSERT(o != NULL);
	if (body_len > 0)
		CDN_ASSERT(cache_obj_append(o, body, body_len) == CDN_OK);
	return o;
}

/* cache_mem_get_vary's answer for key <i>. */
static int
rule_of(struct cache_mem *m, unsigned i, char *buf)
{
	uint8_t key[CACHE_HASH_LEN];
	uint64_t gen = 0;
	size_t len = 0;
	int rc;

	key_of(i, key);
	rc = cache_mem_get_vary(m, key, buf, VARY_CAP - 1, &len, &gen);
	if (rc == CDN_OK)
		buf[len] = '\0';
	return rc;
}

/* Drop key <i>'s entry of <kind> (and <variant>) as an eviction would. */
static void
evict(struct cache_mem *m, unsigned i, int kind, uint64_t variant)
{
	uint8_t key[CACHE_HASH_LEN];
	struct mem_shard *sh;
	struct mem_entry *e, *grave = NULL;

	key_of(i, key);
	sh = shard_of(m, key);
	pthread_mutex_lock(&sh->mtx);
	e = entry_find(sh, key, kind, variant);
	CDN_ASSERT(e != NULL);
	entry_kill(sh, e, &grave);
	pthread_mutex_unlock(&sh->mtx);
	graveyard_free(grave);
}

static size_t
entries(struct cache_mem *m)
{
	return m->shards[0].nentries;
}

static void
test_rule_in_the_object(void)
{
	struct cache_mem *m = cache_mem_new(BIG_BUDGET, 1);
	uint8_t key[CACHE_HASH_LEN];
	struct cache_obj *o = obj_new(1, 0, "", 0);
	char buf[VARY_CAP];
	uint64_t gen = 0;
	size_t len = 0;

	key_of(1, key);
	is_int(cache_mem_get_vary(m, key, buf, sizeof(buf), &len, &gen),
	    CDN_AGAIN, "a new key: its rule is unknown");
	cache_mem_set_vary(m, key, NULL, 0, gen);
	is_int(entries(m), 1, "LMDB's \"no Vary\" is remembered");
	is_int(cache_mem_put(m, o, 0), 1, "the object is held");
	is_int(entries(m), 1, "one entry for the object and its rule");
	is_int(rule_of(m, 1, buf), CDN_NOTFOUND, "known: no Vary");
	evict(m, 1, MEM_OBJ, 0);
	is_int(entries(m), 0, "nothing left");
	is_int(rule_of(m, 1, buf), CDN_AGAIN,
	    "the rule went with its object: ask LMDB");
	cache_obj_unref(&o);
	cache_mem_free(&m);
}

static void
test_vary_clears_the_marks(void)
{
	struct cache_mem *m = cache_mem_new(BIG_BUDGET, 1);
	struct cache_obj *plain = obj_new(2, 0, "", 0);
	struct cache_obj *varied = obj_new(2, 7, "Accept-Language", 0);
	struct cache_obj *again = obj_new(2, 0, "", 0);
	char buf[VARY_CAP];

	(void)cache_mem_put(m, plain, 0);
	is_int(rule_of(m, 2, buf), CDN_NOTFOUND, "no Vary");
	(void)cache_mem_put(m, varied, 0);
	is_int(rule_of(m, 2, buf), CDN_OK, "the new rule");
	is_str(buf, "Accept-Language", "its value");
	is_int(entries(m), 3, "two objects and a Vary entry");
	evict(m, 2, MEM_VARY, 0);
	is_int(rule_of(m, 2, buf), CDN_AGAIN,
	    "the Vary entry evicted: unknown, not the older \"no Vary\"");
	(void)cache_mem_put(m, again, 0);
	is_int(rule_of(m, 2, buf), CDN_NOTFOUND, "no Vary once more");
	is_int(entries(m), 2, "the two objects, no Vary entry");
	cache_obj_unref(&plain);
	cache_obj_unref(&varied);
	cache_obj_unref(&again);
	cache_mem_free(&m);
}

static void
test_set_vary_keeps_a_held_rule(void)
{
	struct cache_mem *m = cache_mem_new(BIG_BUDGET, 1);
	uint8_t key[CACHE_HASH_LEN];
	struct cache_obj *o = obj_new(3, 0, "", 0);
	char buf[VARY_CAP];

	key_of(3, key);
	(void)cache_mem_put(m, o, 0);
	cache_mem_set_vary(m, key, "Cookie", 6, m->shards[0].gen);
	is_int(rule_of(m, 3, buf), CDN_NOTFOUND,
	    "a rule from LMDB does not replace the object's");
	is_int(entries(m), 1, "and adds no entry");
	cache_obj_unref(&o);
	cache_mem_free(&m);
}

static void
test_pinned_and_too_large(void)
{
	struct cache_mem *m = cache_mem_new(SMALL_BUDGET, 1);
	struct cache_obj *pinned = obj_new(4, 0, "", BIG_BODY);
	struct cache_obj *large = obj_new(5, 0, "", BIG_BODY);
	char buf[VARY_CAP];

	is_int(cache_mem_put(m, pinned, 1), 1, "too large, pinned: held");
	is_int(rule_of(m, 4, buf), CDN_NOTFOUND, "its rule is known");
	cache_mem_unpin(m, pinned);
	is_int(rule_of(m, 4, buf), CDN_AGAIN,
	    "unpinned (LMDB has it now): ask LMDB");
	is_int(cache_mem_put(m, large, 0), 0, "too large, not pinned");
	is_int(rule_of(m, 5, buf), CDN_NOTFOUND,
	    "its rule is remembered in a Vary entry");
	cache_obj_unref(&pinned);
	cache_obj_unref(&large);
	cache_mem_free(&m);
}

static void
test_removal_hides_the_rule(void)
{
	struct cache_mem *m = cache_mem_new(BIG_BUDGET, 1);
	uint8_t key[CACHE_HASH_LEN];
	struct cache_obj *o = obj_new(6, 0, "", 0);
	char buf[VARY_CAP];

	key_of(6, key);
	(void)cache_mem_put(m, o, 0);
	cache_mem_remove(m, key, 1);
	is_int(cache_mem_has_obj(m, key), 0, "removed");
	is_int(rule_of(m, 6, buf), CDN_NOTFOUND, "a removal pending");
	cache_mem_unmark(m, key, 1);
	is_int(rule_of(m, 6, buf), CDN_AGAIN, "committed: ask LMDB");
	cache_obj_unref(&o);
	cache_mem_free(&m);
}

int
main(void)
{
	plan_no_plan();
	test_rule_in_the_object();
	test_vary_clears_the_marks();
	test_set_vary_keeps_a_held_rule();
	test_pinned_and_too_large();
	test_removal_hides_the_rule();
	return done_testing();
}
