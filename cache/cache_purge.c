/*
 * Purges, the pure part (cache/cache.h "tags and purges"): parsing the tag
 * fields of an origin response, and the in-memory table of purge rules
 * that decides whether a stored object is purged.
 *
 * A rule is (kind, name) -> (hard seq, soft seq): the highest purge
 * sequence numbers that purged that URL, tag or prefix hard or soft.  An
 * object whose fill began at purge generation g (cache_obj.purge_gen) is
 * purged by a rule whose seq > g.  A purge therefore costs one rule
 * whatever the number of objects it covers; objects are checked when they
 * are looked up (cache_store_read.c), not deleted inside the purge.
 *
 * The table is not locked here: cache_store_purge.c holds its rwlock around
 * every call.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "cache/cache.h"
#include "cache/cache_int.h"
#include "common/cdn_strbuf.h"

/* ---------------- tags ---------------- */

static int
is_tag_sep(char c)
{
	return c == ' ' || c == '\t' || c == ',';
}

/* Is tag p[0..len) already in out[0..n)? */
static int
tag_seen(const char *out, size_t n, const char *p, size_t len)
{
	const char *q = out, *end = out + n, *sp;

	while (q < end) {
		sp = memchr(q, ' ', (size_t)(end - q));
		if (sp == NULL)
			sp = end;
		if ((size_t)(sp - q) == len && memcmp(q, p, len) == 0)
			return 1;
		q = sp + 1;
	}
	return 0;
}

/*
 * Split one field value into tags and append the new ones to out.
 * Returns 0, or -1 once a limit stops the parse.
 */
static int
tags_add(const char *v, size_t vlen, char *out, size_t cap, size_t *n,
    unsigned *count)
{
	const char *p = v, *end = v + vlen, *t;
	size_t len;

	while (p < end) {
		while (p < end && is_tag_sep(*p))
			p++;
		t = p;
		while (p < end && !is_tag_sep(*p))
			p++;
		len = (size_t)(p - t);
		if (len == 0)
			continue;
		if (len > CACHE_TAG_MAX_LEN)
			continue; /* no purge could name it usefully */
		if (tag_seen(out, *n, t, len))
			continue;
		if (*count >= CACHE_TAGS_MAX || *n + (*n > 0) + len > cap)
			return -1;
		if (*n > 0)
			out[(*n)++] = ' ';
		memcpy(out + *n, t, len);
		*n += len;
		(*count)++;
	}
	return 0;
}

/*
 * The tags of a response (see cache.h): every field of fields[] named in
 * names[] (case-insensitive), split on spaces, tabs and commas, so both
 * the Surrogate-Key (space-separated) and the Cache-Tag (comma-separated)
 * styles work.  Duplicates are kept once, in first-seen order.
 */
size_t
cache_tags_parse(const char *fields, size_t len, const char *const *names,
    unsigned nnames, char *out, size_t cap)
{
	const char *p = fields, *end = fields + len;
	struct cdn_field f;
	size_t n = 0;
	unsigned count = 0;

	CDN_ASSERT(fields != NULL || len == 0);
	CDN_ASSERT(out != NULL || cap == 0);
	while (cdn_fields_next(&p, end, &f)) {
		for (unsigned i = 0; i < nnames; i++) {
			/* No strlen per field line: a field name holds no
			 * NUL, so a shorter names[i] differs at its end. */
			if (strncasecmp(f.name, names[i], f.name_len) != 0 ||
			    names[i][f.name_len] != '\0')
				continue;
			if (tags_add(f.value, f.value_len, out, cap, &n,
			        &count) != 0)
				return n;
			break;
		}
	}
	return n;
}

/* ---------------- the rule table ---------------- */

struct rule {
	uint64_t h; /* 0: empty slot */
	char *name; /* kind byte, then the name */
	size_t len; /* of name, with the kind byte */
	uint64_t hard, soft;
};

struct cache_rules {
	uint32_t magic;
#define CACHE_RULES_MAGIC 0x5e1f0a93u
	struct rule *slots;
	size_t cap; /* a power of two */
	size_t n;
	/* Prefix rules again, for the scan at lookup: indexes into slots
	 * would move on a resize, so they hold their own copies. */
	struct rule *prefixes;
	size_t nprefix, prefix_cap;
};

#define RULES_MIN_CAP 64

struct cache_rules *
cache_rules_new(void)
{
	struct cache_rules *r;

	r = cdn_xcalloc(1, sizeof(*r));
	r->magic = CACHE_RULES_MAGIC;
	r->cap = RULES_MIN_CAP;
	r->slots = cdn_xcalloc(r->cap, sizeof(*r->slots));
	return r;
}

void
cache_rules_free(struct cache_rules **rp)
{
	struct cache_rules *r = *rp;

	*rp = NULL;
	if (r == NULL)
		return;
	MAGIC_CHECK(r, CACHE_RULES_MAGIC);
	for (size_t i = 0; i < r->cap; i++)
		free(r->slots[i].name);
	for (size_t i = 0; i < r->nprefix; i++)
		free(r->prefixes[i].name);
	free(r->slots);
	free(r->prefixes);
	MAGIC_WIPE(r);
	free(r);
}

static uint64_t
rule_hash(const void *name, size_t len)
{
	uint64_t h = XXH3_64bits(name, len);

	return h != 0 ? h : 1;
}

/* The slot of (kind, name): found, or the empty one it would go to. */
static struct rule *
rule_slot(const struct cache_rules *r, uint64_t h, const char *kn, size_t len)
{
	size_t i = (size_t)h & (r->cap - 1);

	for (;;) {
		struct rule *e = &r->slots[i];

		if (e->h == 0 ||
		    (e->h == h && e->len == len &&
		        memcmp(e->name, kn, len) == 0))
			return e;
		i = (i + 1) & (r->cap - 1);
	}
}

static void
rules_grow(struct cache_rules *r)
{
	struct rule *old = r->slots;
	size_t oldcap = r->cap;

	r->cap *= 2;
	r->slots = cdn_xcalloc(r->cap, sizeof(*r->slots));
	for (size_t i = 0; i < oldcap; i++) {
		if (old[i].h != 0)
			*rule_slot(r, old[i].h, old[i].name, old[i].len) =
			    old[i];
	}
	free(old);
}

static void
seq_max(uint64_t *at, uint64_t seq)
{
	if (seq > *at)
		*at = seq;
}

/*
 * Record that purge <seq> purged (kind, name) hard or soft (a hard purge
 * also counts as soft: soft never undoes hard).  Aborts only if memory
 * runs out (the table is small: one entry per distinct URL, tag or
 * prefix ever purged).
 */
void
cache_rules_add(struct cache_rules *r, int kind, const void *name, size_t len,
    uint64_t hard, uint64_t soft)
{
	char *kn;
	struct rule *e;
	uint64_t h;

	MAGIC_CHECK(r, CACHE_RULES_MAGIC);
	CDN_ASSERT(kind == CACHE_PURGE_URL || kind == CACHE_PURGE_TAG ||
	    kind == CACHE_PURGE_PREFIX);
	kn = cdn_xmalloc(len + 1);
	kn[0] = (char)kind;
	memcpy(kn + 1, name, len);
	h = rule_hash(kn, len + 1);
	e = rule_slot(r, h, kn, len + 1);
	if (e->h == 0) {
		if ((r->n + 1) * 2 > r->cap) {
			rules_grow(r);
			e = rule_slot(r, h, kn, len + 1);
		}
		e->h = h;
		e->name = kn;
		e->len = len + 1;
		r->n++;
		if (kind == CACHE_PURGE_PREFIX) {
			if (r->nprefix == r->prefix_cap) {
				r->prefix_cap =
				    r->prefix_cap == 0 ? 16 : r->prefix_cap * 2;
				r->prefixes = realloc(r->prefixes,
				    r->prefix_cap * sizeof(*r->prefixes));
				CDN_ASSERT(r->prefixes != NULL);
			}
			r->prefixes[r->nprefix] = *e;
			r->prefixes[r->nprefix].name =
			    cdn_xstrndup(kn, len + 1);
			r->nprefix++;
		}
	} else {
		free(kn);
	}
	seq_max(&e->hard, hard);
	seq_max(&e->soft, soft > hard ? soft : hard);
	if (kind == CACHE_PURGE_PREFIX) {
		for (size_t i = 0; i < r->nprefix; i++) {
			struct rule *p = &r->prefixes[i];

			if (p->h == e->h && p->len == e->len &&
			    memcmp(p->name, e->name, e->len) == 0) {
				p->hard = e->hard;
				p->soft = e->soft;
			}
		}
	}
}

static void
rule_apply(const struct cache_rules *r, int kind, const void *name, size_t len,
    uint64_t *hard, uint64_t *soft)
{
	char kn[1 + CACHE_TAG_MAX_LEN];
	const struct rule *e;

	if (len > CACHE_TAG_MAX_LEN)
		return;
	kn[0] = (char)kind;
	memcpy(kn + 1, name, len);
	e = rule_slot(r, rule_hash(kn, len + 1), kn, len + 1);
	if (e->h == 0)
		return;
	seq_max(hard, e->hard);
	seq_max(soft, e->soft);
}

/*
 * Is <o> purged by a rule: CACHE_PURGED_HARD (a hard purge of its URL,
 * one of its tags, or a prefix of its URL came after its fill began),
 * CACHE_PURGED_SOFT (only soft ones did), or 0.
 */
int
cache_rules_match(const struct cache_rules *r, const struct cache_obj *o)
{
	uint64_t hard = 0, soft = 0;
	const char *p, *end, *sp;

	MAGIC_CHECK(r, CACHE_RULES_MAGIC);
	MAGIC_CHECK(o, CACHE_OBJ_MAGIC);
	if (r->n == 0)
		return 0;
	rule_apply(r, CACHE_PURGE_URL, o->key, CACHE_HASH_LEN, &hard, &soft);
	p = o->tags;
	end = o->tags_len > 0 ? p + o->tags_len : p; /* never NULL + 0 */
	while (p < end) {
		sp = memchr(p, ' ', (size_t)(end - p));
		if (sp == NULL)
			sp = end;
		rule_apply(
		    r, CACHE_PURGE_TAG, p, (size_t)(sp - p), &hard, &soft);
		p = sp + 1;
	}
	for (size_t i = 0; i < r->nprefix; i++) {
		const struct rule *e = &r->prefixes[i];

		if (e->len - 1 <= o->url_len &&
		    memcmp(e->name + 1, o->url, e->len - 1) == 0) {
			seq_max(&hard, e->hard);
			seq_max(&soft, e->soft);
		}
	}
	if (hard > o->purge_gen)
		return CACHE_PURGED_HARD;
	if (soft > o->purge_gen)
		return CACHE_PURGED_SOFT;
	return 0;
}
