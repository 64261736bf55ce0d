/*
 * The in-flight table (edge/edge_inflight.h): shared fetches and
 * hit-for-miss markers by cache key.
 */
#include "config.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "common/cdn.h"
#include "edge/edge_inflight.h"

#define INFLIGHT_SHARDS   64
#define INFLIGHT_BUCKETS  256  /* per shard */
#define HFM_MAX_PER_SHARD 4096 /* hit-for-miss markers kept per shard */

struct inflight_entry {
	struct inflight_entry *next;
	uint8_t key[CACHE_HASH_LEN];
	void *fill; /* NULL: a hit-for-miss marker */
	uint64_t hfm_until_ms;
};

struct inflight_shard {
	pthread_mutex_t mu;
	struct inflight_entry *b[INFLIGHT_BUCKETS];
	unsigned nhfm;
	char pad[64];
};

struct edge_inflight {
	struct inflight_shard shard[INFLIGHT_SHARDS];
};

static uint64_t
now_ms(void)
{
	return cdn_now_ns() / 1000000u;
}

static struct inflight_entry **
bucket_of(struct inflight_shard *s, const uint8_t key[CACHE_HASH_LEN])
{
	return &s->b[((unsigned)key[1] << 8 | key[2]) % INFLIGHT_BUCKETS];
}

static void
entry_unlink(struct inflight_shard *s, struct inflight_entry *victim)
{
	struct inflight_entry **pp = bucket_of(s, victim->key);

	while (*pp != victim)
		pp = &(*pp)->next;
	*pp = victim->next;
	if (victim->fill == NULL)
		s->nhfm--;
	free(victim);
}

static void
sweep_expired(struct inflight_shard *s)
{
	uint64_t now = now_ms();

	for (unsigned i = 0; i < INFLIGHT_BUCKETS; i++) {
		struct inflight_entry **pp = &s->b[i], *en;

		while ((en = *pp) != NULL) {
			if (en->fill == NULL && en->hfm_until_ms <= now) {
				*pp = en->next;
				s->nhfm--;
				free(en);
			} else {
				pp = &en->next;
			}
		}
	}
}

struct edge_inflight *
edge_inflight_new(void)
{
	struct edge_inflight *t = cdn_xcalloc(1, sizeof(*t));

	for (unsigned i = 0; i < INFLIGHT_SHARDS; i++)
		pthread_mutex_init(&t->shard[i].mu, NULL);
	return t;
}

void
edge_inflight_free(struct edge_inflight **tp)
{
	struct edge_inflight *t = *tp;

	*tp = NULL;
	if (t == NULL)
		return;
	for (unsigned i = 0; i < INFLIGHT_SHARDS; i++) {
		struct inflight_shard *s = &t->shard[i];

		for (unsigned j = 0; j < INFLIGHT_BUCKETS; j++)
			while (s->b[j] != NULL) {
				/* Fills are gone with their workers. */
				CDN_ASSERT(s->b[j]->fill == NULL);
				entry_unlink(s, s->b[j]);
			}
		pthread_mutex_destroy(&s->mu);
	}
	free(t);
}

void
edge_inflight_lock(struct edge_inflight *t, const uint8_t key[CACHE_HASH_LEN],
    struct edge_inflight_slot *sl)
{
	struct inflight_entry **pp, *en;

	sl->shard = &t->shard[key[0] % INFLIGHT_SHARDS];
	sl->key = key;
	sl->en = NULL;
	pthread_mutex_lock(&sl->shard->mu);
	for (pp = bucket_of(sl->shard, key); (en = *pp) != NULL;
	     pp = &en->next) {
		if (memcmp(en->key, key, CACHE_HASH_LEN) != 0)
			continue;
		if (en->fill == NULL && en->hfm_until_ms <= now_ms()) {
			*pp = en->next;
			sl->shard->nhfm--;
			free(en);
			return;
		}
		sl->en = en;
		return;
	}
}

void
edge_inflight_unlock(struct edge_inflight_slot *sl)
{
	pthread_mutex_unlock(&sl->shard->mu);
	sl->shard = NULL;
	sl->en = NULL;
}

void *
edge_inflight_fill(const struct edge_inflight_slot *sl)
{
	return sl->en != NULL ? sl->en->fill : NULL;
}

int
edge_inflight_is_hfm(const struct edge_inflight_slot *sl)
{
	return sl->en != NULL && sl->en->fill == NULL;
}

void
edge_inflight_set_fill(struct edge_inflight_slot *sl, void *fill)
{
	struct inflight_shard *s = sl->shard;

	CDN_ASSERT(fill != NULL);
	if (sl->en == NULL) {
		sl->en = cdn_xcalloc(1, sizeof(*sl->en));
		memcpy(sl->en->key, sl->key, CACHE_HASH_LEN);
		sl->en->next = *bucket_of(s, sl->key);
		*bucket_of(s, sl->key) = sl->en;
	} else if (sl->en->fill == NULL) {
		s->nhfm--; /* the marker becomes a fill */
	}
	sl->en->fill = fill;
}

void
edge_inflight_end_fill(struct edge_inflight_slot *sl, uint64_t hfm_ms)
{
	struct inflight_shard *s = sl->shard;

	CDN_ASSERT(sl->en != NULL && sl->en->fill != NULL);
	if (hfm_ms == 0) {
		entry_unlink(s, sl->en);
		sl->en = NULL;
		return;
	}
	/* Bounded: past the cap, a flood of such URLs just queues. */
	if (s->nhfm >= HFM_MAX_PER_SHARD)
		sweep_expired(s);
	if (s->nhfm >= HFM_MAX_PER_SHARD) {
		entry_unlink(s, sl->en);
		sl->en = NULL;
		return;
	}
	sl->en->fill = NULL;
	sl->en->hfm_until_ms = now_ms() + hfm_ms;
	s->nhfm++;
}

void
edge_inflight_clear_hfm(
    struct edge_inflight *t, const uint8_t key[CACHE_HASH_LEN])
{
	struct edge_inflight_slot sl;

	edge_inflight_lock(t, key, &sl);
	if (edge_inflight_is_hfm(&sl)) {
		entry_unlink(sl.shard, sl.en);
		sl.en = NULL;
	}
	edge_inflight_unlock(&sl);
}
