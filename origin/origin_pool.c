/*
 * Origin pools: server selection and passive health (origin.h); the active
 * checks (origin_health.c) report their verdicts here.
 *
 * Threads: a pool is built before the workers start and freed after they
 * stop; in between its configuration is immutable and every worker picks
 * servers from it concurrently.  The mutable state is per server and all
 * atomics, each written without a lock:
 *   active        fetches in flight (every worker, relaxed add/sub)
 *   fails         passive failures in a row (every worker)
 *   down_until_ms end of a passive cool-down (every worker)
 *   hc_healthy    the active checks' verdict (the main thread only)
 * A pick reads them relaxed: a worker that sees a server's state a moment
 * late sends it one more request, which the retry covers.
 *   stats         origin_fetch_stats (every worker, relaxed adds): only
 *                 fetches know which server they ended on, and a miss
 *                 that costs an origin round trip can afford the few
 *                 shared adds, as it already pays for active and fetches
 *
 * Selection:
 *   round-robin  one shared counter; each server in turn.
 *   weighted     smooth weighted round-robin (nginx's), precomputed once
 *                into a sequence of sum(weights) slots walked by the same
 *                counter, so a pick is lock-free and the spread is even
 *                within every cycle (weights 5,1,1 give a a b a c a a).
 *   least-conn   the fewest fetches in flight per unit of weight.
 *   consistent-hash  rendezvous (highest random weight) hashing: each
 *                server scores the key and the highest wins, with
 *                weight w scaled as -w / ln(u).  A server that goes away
 *                only loses its own keys, which spread over the others in
 *                proportion to their weights: what a hash ring does with
 *                many virtual nodes per server, with no ring to build.
 * Backup servers are considered only when no other server is up.
 * A pool of parents (a shield tier, docs/shield.md) is a consistent-hash
 * pool like any other; only its lone server may be taken out too, as the
 * fetch then has the origin to go to.
 */
#include "config.h"

#include <math.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <xxhash.h>

#include "common/cdn_log.h"
#include "http/http_url.h"
#include "origin/origin_int.h"

/* origin_pool_pick_except() names servers by the bits of a uint64_t. */
_Static_assert(ORIGIN_POOL_MAX <= 64, "a pool's servers fit one mask");

/* The sequence of the weighted mode has sum(weights) slots at most. */
#define WRR_MAX_SLOTS (ORIGIN_POOL_MAX * 256)

/* struct origin_fetch_stats, written by every worker. */
struct pool_stats {
	_Atomic uint64_t requests;
	_Atomic uint64_t errors[ORIGIN_ERR_KINDS];
	_Atomic uint64_t head_us[ORIGIN_LAT_BUCKETS];
	_Atomic uint64_t head_us_sum;
};

struct pool_server {
	char *url;        /* as configured */
	char *authority;  /* its host:port */
	char *base;       /* what the target is appended to */
	char *connect_to; /* NULL or "name:port:addr:port" */
	struct origin_h1_server
	    h1; /* h1.addrlen 0: not for the native client */
	unsigned weight, max_conns;
	int backup;
	uint64_t seed; /* rendezvous: the server's identity, from its URL */
	atomic_uint active;
	atomic_uint fails;
	_Atomic uint64_t down_until_ms;
	atomic_int hc_healthy;
	_Atomic uint64_t fetches, failures;
	struct pool_stats stats; /* zero from calloc, like a static */
};

struct origin_pool {
	uint32_t magic;
#define ORIGIN_POOL_MAGIC 0x5b1e07d3u
	atomic_uint refcnt; /* its site's, and one per fetch using it */
	char *name;
	enum origin_balance balance;
	struct pool_server *srv;
	unsigned nsrv;
	unsigned *seq; /* weighted: server index per slot */
	unsigned nseq;
	atomic_uint rr;
	_Atomic uint64_t retries;
	struct pool_stats unserved; /* fetches that found no server */
	int same_weights;           /* consistent-hash may skip the weighting */
	int eject_lone;
	unsigned max_fails;
	uint64_t fail_timeout_ms;
	struct origin_pool_hc hc; /* its path and host are ours (freed) */
};

static const char *const bal_names[] = {
    [ORIGIN_BAL_ROUND_ROBIN] = "round-robin",
    [ORIGIN_BAL_WEIGHTED] = "weighted",
    [ORIGIN_BAL_LEAST_CONN] = "least-conn",
    [ORIGIN_BAL_HASH] = "consistent-hash",
};

int
origin_balance_parse(const char *s, enum origin_balance *out)
{
	for (size_t i = 0; i < CDN_ARRAY_LEN(bal_names); i++) {
		if (strcmp(s, bal_names[i]) == 0) {
			*out = (enum origin_balance)i;
			return CDN_OK;
		}
	}
	return CDN_EINVAL;
}

const char *
origin_balance_name(enum origin_balance b)
{
	CDN_ASSERT((unsigned)b < CDN_ARRAY_LEN(bal_names));
	return bal_names[b];
}

/*
 * What the native client needs of an http:// server whose host is an
 * address: names stay with libcurl, whose resolver does not block the
 * loop.  Leaves h1.addrlen 0 for a name.
 */
static void
h1_server_init(struct pool_server *s, const char *u, const struct http_url *pu,
    size_t pathlen)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)&s->h1.addr;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&s->h1.addr;
	char host[64];
	size_t hlen = pu->host.len;
	const char *h = pu->host.p;

	if (hlen >= 2 && h[0] == '[') { /* an IPv6 literal */
		h++;
		hlen -= 2;
	}
	if (hlen == 0 || hlen >= sizeof(host))
		return;
	memcpy(host, h, hlen);
	host[hlen] = '\0';
	memset(&s->h1, 0, sizeof(s->h1));
	if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons(pu->port);
		s->h1.addrlen = sizeof(*sin);
	} else if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(pu->port);
		s->h1.addrlen = sizeof(*sin6);
	} else {
		return;
	}
	/* Into s->url, the copy of <u> that lives as long as the pool. */
	s->h1.prefix = s->url + (pu->path.p - u);
	s->h1.prefix_len = pathlen;
	s->h1.authority = s->url + (pu->authority.p - u);
	s->h1.authority_len = pu->authority.len;
}

/*
 * Split a validated server URL and build what fetches use.  With
 * <tls_name>, an https URL names tls_name (verification and SNI) and
 * CONNECT_TO sends the connection to the configured address.
 */
static int
server_init(struct pool_server *s, const struct origin_server_conf *sc,
    const char *tls_name, const char **why)
{
	const char *u = sc->url, *auth, *path;
	struct http_url pu;
	char buf[1024];
	size_t authlen, pathlen, hostlen;
	int https, n;
	unsigned port;

	if (http_url_parse(u, strlen(u), &pu, why) != CDN_OK)
		return CDN_EINVAL;
	https = pu.https;
	auth = pu.authority.p;
	authlen = pu.authority.len;
	path = pu.path.p;
	pathlen = pu.path.len;
	while (pathlen > 0 && path[pathlen - 1] == '/')
		pathlen--;
	hostlen = pu.host.len;
	port = pu.port;

	s->url = cdn_xstrdup(u);
	s->authority = cdn_xstrndup(auth, authlen);
	if (https && tls_name != NULL && tls_name[0] != '\0') {
		n = snprintf(buf, sizeof(buf), "https://%s:%u%.*s", tls_name,
		    port, (int)pathlen, path);
		if (n < 0 || (size_t)n >= sizeof(buf))
			goto toolong;
		s->base = cdn_xstrdup(buf);
		n = snprintf(buf, sizeof(buf), "%s:%u:%.*s:%u", tls_name, port,
		    (int)hostlen, auth, port);
		if (n < 0 || (size_t)n >= sizeof(buf))
			goto toolong;
		s->connect_to = cdn_xstrdup(buf);
	} else {
		s->base = cdn_xstrndup(u, (size_t)(path - u) + pathlen);
	}
	if (!https && !pu.has_userinfo)
		h1_server_init(s, u, &pu, pathlen);
	s->weight = sc->weight > 0 ? sc->weight : 1;
	s->max_conns = sc->max_conns;
	s->backup = sc->backup;
	s->seed = XXH3_64bits(u, strlen(u));
	atomic_init(&s->active, 0);
	atomic_init(&s->fails, 0);
	atomic_init(&s->down_until_ms, 0);
	atomic_init(&s->hc_healthy, 1);
	atomic_init(&s->fetches, 0);
	atomic_init(&s->failures, 0);
	return CDN_OK;
toolong:
	*why = "server URL too long";
	return CDN_EINVAL;
}

/* nginx's smooth weighted round-robin, run once over a whole cycle. */
static void
build_sequence(struct origin_pool *p)
{
	long cur[ORIGIN_POOL_MAX] = {0};
	long total = 0;
	unsigned best;

	for (unsigned i = 0; i < p->nsrv; i++)
		total += p->srv[i].weight;
	CDN_ASSERT(total > 0 && total <= WRR_MAX_SLOTS);
	p->nseq = (unsigned)total;
	p->seq = cdn_xcalloc(p->nseq, sizeof(*p->seq));
	for (unsigned k = 0; k < p->nseq; k++) {
		best = 0;
		for (unsigned i = 0; i < p->nsrv; i++) {
			cur[i] += p->srv[i].weight;
			if (cur[i] > cur[best])
				best = i;
		}
		cur[best] -= total;
		p->seq[k] = best;
	}
}

static void
pool_free_servers(struct origin_pool *p)
{
	for (unsigned i = 0; i < p->nsrv; i++) {
		free(p->srv[i].url);
		free(p->srv[i].authority);
		free(p->srv[i].base);
		free(p->srv[i].connect_to);
	}
	free(p->srv);
}

struct origin_pool *
origin_pool_new(const struct origin_pool_conf *pc, const char **why)
{
	struct origin_pool *p;

	CDN_ASSERT(pc != NULL && why != NULL);
	if (pc->nservers == 0 || pc->nservers > ORIGIN_POOL_MAX) {
		*why = "a pool needs 1 to 64 servers";
		return NULL;
	}
	for (unsigned i = 0; i < pc->nservers; i++) {
		if (pc->servers[i].weight > 256) {
			*why = "weight must be between 1 and 256";
			return NULL;
		}
	}
	p = cdn_xcalloc(1, sizeof(*p));
	p->magic = ORIGIN_POOL_MAGIC;
	atomic_init(&p->refcnt, 1);
	p->name = cdn_xstrdup(pc->name != NULL ? pc->name : "");
	p->balance = pc->balance;
	p->srv = cdn_xcalloc(pc->nservers, sizeof(*p->srv));
	for (unsigned i = 0; i < pc->nservers; i++) {
		p->nsrv = i + 1;
		if (server_init(&p->srv[i], &pc->servers[i], pc->tls_name,
		        why) != CDN_OK) {
			pool_free_servers(p);
			free(p->name);
			MAGIC_WIPE(p);
			free(p);
			return NULL;
		}
	}
	if (p->balance == ORIGIN_BAL_WEIGHTED)
		build_sequence(p);
	p->same_weights = 1;
	for (unsigned i = 1; i < p->nsrv; i++)
		if (p->srv[i].weight != p->srv[0].weight)
			p->same_weights = 0;
	atomic_init(&p->rr, 0);
	atomic_init(&p->retries, 0);
	p->eject_lone = pc->eject_lone;
	p->max_fails = pc->max_fails;
	p->fail_timeout_ms = pc->fail_timeout_ms;
	p->hc.path = cdn_xstrdup(pc->hc_path != NULL ? pc->hc_path : "");
	p->hc.host = cdn_xstrdup(pc->hc_host != NULL ? pc->hc_host : "");
	p->hc.interval_ms = pc->hc_interval_ms > 0 ? pc->hc_interval_ms : 5000;
	p->hc.timeout_ms = pc->hc_timeout_ms > 0 ? pc->hc_timeout_ms : 2000;
	p->hc.rise = pc->hc_rise > 0 ? pc->hc_rise : 1;
	p->hc.fall = pc->hc_fall > 0 ? pc->hc_fall : 1;
	p->hc.status = pc->hc_status;
	return p;
}

struct origin_pool *
origin_pool_ref(struct origin_pool *p)
{
	MAGIC_CHECK(p, ORIGIN_POOL_MAGIC);
	atomic_fetch_add_explicit(&p->refcnt, 1, memory_order_relaxed);
	return p;
}

void
origin_pool_free(struct origin_pool **pp)
{
	struct origin_pool *p = *pp;

	*pp = NULL;
	if (p == NULL)
		return;
	MAGIC_CHECK(p, ORIGIN_POOL_MAGIC);
	if (atomic_fetch_sub_explicit(&p->refcnt, 1, memory_order_acq_rel) > 1)
		return;
	pool_free_servers(p);
	free(p->seq);
	free(p->name);
	free((char *)(uintptr_t)p->hc.path);
	free((char *)(uintptr_t)p->hc.host);
	MAGIC_WIPE(p);
	free(p);
}

/* ---- selection ---- */

static int
server_up(struct pool_server *s, uint64_t now_ms)
{
	if (!atomic_load_explicit(&s->hc_healthy, memory_order_relaxed))
		return 0;
	if (atomic_load_explicit(&s->down_until_ms, memory_order_relaxed) >
	    now_ms)
		return 0;
	if (s->max_conns > 0 &&
	    atomic_load_explicit(&s->active, memory_order_relaxed) >=
	        s->max_conns)
		return 0;
	return 1;
}

/* Whether server i may take this fetch in this pass (0: primaries). */
static int
eligible(struct origin_pool *p, unsigned i, uint64_t excluded, int backups,
    uint64_t now_ms)
{
	struct pool_server *s = &p->srv[i];

	return !(excluded & (UINT64_C(1) << i)) && s->backup == backups &&
	    server_up(s, now_ms);
}

/* A uniform double in (0, 1) from 53 bits of h. */
static double
unit_interval(uint64_t h)
{
	return ((double)(h >> 11) + 0.5) / 9007199254740992.0;
}

/*
 * The shared round-robin position.  A retry (exclude >= 0) reads it
 * without moving it: were it to take a turn, the next request would land
 * on the failed server's slot again, and with two servers every request
 * would try the dead one first.
 */
static unsigned
rr_next(struct origin_pool *p, uint64_t excluded)
{
	if (excluded != 0)
		return atomic_load_explicit(&p->rr, memory_order_relaxed);
	return atomic_fetch_add_explicit(&p->rr, 1, memory_order_relaxed);
}

static int
pick_pass(struct origin_pool *p, uint64_t key, uint64_t exclude, int backups,
    uint64_t now_ms)
{
	unsigned start, i, idx, n;
	int best = -1;
	double score, best_score = 0.0;
	uint64_t h, kb, best_h = 0;

	switch (p->balance) {
	case ORIGIN_BAL_ROUND_ROBIN:
	case ORIGIN_BAL_WEIGHTED:
		n = p->balance == ORIGIN_BAL_WEIGHTED ? p->nseq : p->nsrv;
		start = rr_next(p, exclude);
		for (i = 0; i < n; i++) {
			idx = (start + i) % n;
			if (p->balance == ORIGIN_BAL_WEIGHTED)
				idx = p->seq[idx];
			if (eligible(p, idx, exclude, backups, now_ms))
				return (int)idx;
		}
		return -1;
	case ORIGIN_BAL_LEAST_CONN:
		/* Ties go round-robin, or an idle pool sends all to one. */
		start = rr_next(p, exclude);
		for (i = 0; i < p->nsrv; i++) {
			idx = (start + i) % p->nsrv;
			if (!eligible(p, idx, exclude, backups, now_ms))
				continue;
			score = (double)atomic_load_explicit(
			            &p->srv[idx].active, memory_order_relaxed) /
			    p->srv[idx].weight;
			if (best == -1 || score < best_score) {
				best = (int)idx;
				best_score = score;
			}
		}
		return best;
	case ORIGIN_BAL_HASH:
		kb = key;
		for (i = 0; i < p->nsrv; i++) {
			if (!eligible(p, i, exclude, backups, now_ms))
				continue;
			h = XXH3_64bits_withSeed(
			    &kb, sizeof(kb), p->srv[i].seed);
			/* Equal weights: -w/ln(u) grows with u, so the
			 * largest hash wins and log() is not needed. */
			if (p->same_weights) {
				if (best == -1 || h > best_h) {
					best = (int)i;
					best_h = h;
				}
				continue;
			}
			score =
			    -(double)p->srv[i].weight / log(unit_interval(h));
			if (best == -1 || score > best_score) {
				best = (int)i;
				best_score = score;
			}
		}
		return best;
	}
	return -1;
}

int
origin_pool_pick_except(
    struct origin_pool *p, uint64_t hash_key, uint64_t excluded)
{
	uint64_t now = cdn_now_ms();
	int i;

	MAGIC_CHECK(p, ORIGIN_POOL_MAGIC);
	i = pick_pass(p, hash_key, excluded, 0, now);
	if (i == -1)
		i = pick_pass(p, hash_key, excluded, 1, now);
	return i;
}

int
origin_pool_pick(struct origin_pool *p, uint64_t hash_key, int exclude)
{
	CDN_ASSERT(exclude < ORIGIN_POOL_MAX);
	return origin_pool_pick_except(
	    p, hash_key, exclude >= 0 ? UINT64_C(1) << exclude : 0);
}

/* ---- what fetches report ---- */

const char *
origin_pool_server_base(const struct origin_pool *p, unsigned i)
{
	MAGIC_CHECK(p, ORIGIN_POOL_MAGIC);
	CDN_ASSERT(i < p->nsrv);
	return p->srv[i].base;
}

const struct origin_h1_server *
origin_pool_h1_server(const struct origin_pool *p, unsigned i)
{
	MAGIC_CHECK(p, ORIGIN_POOL_MAGIC);
	CDN_ASSERT(i < p->nsrv);
	return p->srv[i].h1.addrlen != 0 ? &p->srv[i].h1 : NULL;
}

const char *
origin_pool_connect_to(const struct origin_pool *p, unsigned i)
{
	MAGIC_CHECK(p, ORIGIN_POOL_MAGIC);
	CDN_ASSERT(i < p->nsrv);
	return p->srv[i].connect_to;
}

void
origin_pool_conn_begin(struct origin_pool *p, unsigned i)
{
	CDN_ASSERT(i < p->nsrv);
	atomic_fetch_add_explicit(&p->srv[i].active, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&p->srv[i].fetches, 1, memory_order_relaxed);
}

void
origin_pool_conn_end(struct origin_pool *p, unsigned i)
{
	unsigned prev;

	CDN_ASSERT(i < p->nsrv);
	prev = atomic_fetch_sub_explicit(
	    &p->srv[i].active, 1, memory_order_relaxed);
	CDN_ASSERT(prev > 0);
}

void
origin_pool_report(struct origin_pool *p, unsigned i, int failed)
{
	struct pool_server *s;
	unsigned n;

	MAGIC_CHECK(p, ORIGIN_POOL_MAGIC);
	CDN_ASSERT(i < p->nsrv);
	s = &p->srv[i];
	if (!failed) {
		if (atomic_load_explicit(&s->fails, memory_order_relaxed) != 0)
			atomic_store_explicit(
			    &s->fails, 0, memory_order_relaxed);
		return;
	}
	atomic_fetch_add_explicit(&s->failures, 1, memory_order_relaxed);
	/* A lone server is never taken out by failures (as in nginx): with
	 * nothing to fail over to, a few bad requests would turn into every
	 * request failing for the whole cool-down. */
	if (p->nsrv == 1 && !p->eject_lone)
		return;
	n = atomic_fetch_add_explicit(&s->fails, 1, memory_order_relaxed) + 1;
	if (p->max_fails == 0 || n < p->max_fails)
		return;
	/* Out for a while; the count restarts, so after the cool-down one
	 * more failure is not enough to take it out again at once. */
	atomic_store_explicit(&s->fails, 0, memory_order_relaxed);
	atomic_store_explicit(&s->down_until_ms,
	    cdn_now_ms() + p->fail_timeout_ms, memory_order_relaxed);
	CDN_LOG(CDN_LOG_WARN, "origin",
	    "pool %s: %s failed %u times in a row: out for %llu ms", p->name,
	    s->url, n, (unsigned long long)p->fail_timeout_ms);
}

void
origin_pool_count_retry(struct origin_pool *p)
{
	MAGIC_CHECK(p, ORIGIN_POOL_MAGIC);
	atomic_fetch_add_explicit(&p->retries, 1, memory_order_relaxed);
}

/* Bounds of 0.1 ms to 30 s, as Prometheus clients' defaults go finer. */
const uint64_t origin_lat_le_us[ORIGIN_LAT_BUCKETS - 1] = {100, 250, 500, 1000,
    2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000, 2500000,
    5000000, 10000000, 30000000};

unsigned
origin_lat_bucket(uint64_t us)
{
	unsigned b = 0;

	while (b < ORIGIN_LAT_BUCKETS - 1 && us > origin_lat_le_us[b])
		b++;
	return b;
}

static struct pool_stats *
pool_stats_of(struct origin_pool *p, int i)
{
	MAGIC_CHECK(p, ORIGIN_POOL_MAGIC);
	CDN_ASSERT(i < (int)p->nsrv);
	return i >= 0 ? &p->srv[i].stats : &p->unserved;
}

void
origin_pool_count_head(struct origin_pool *p, int i, uint64_t us)
{
	struct pool_stats *ps = pool_stats_of(p, i);

	atomic_fetch_add_explicit(
	    &ps->head_us[origin_lat_bucket(us)], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&ps->head_us_sum, us, memory_order_relaxed);
}

void
origin_pool_count_end(struct origin_pool *p, int i, enum origin_err e)
{
	struct pool_stats *ps = pool_stats_of(p, i);

	CDN_ASSERT((unsigned)e < ORIGIN_ERR_KINDS);
	atomic_fetch_add_explicit(&ps->requests, 1, memory_order_relaxed);
	if (e != ORIGIN_OK)
		atomic_fetch_add_explicit(
		    &ps->errors[e], 1, memory_order_relaxed);
}

static void
pool_stats_read(const struct pool_stats *ps, struct origin_fetch_stats *fs)
{
	fs->requests =
	    atomic_load_explicit(&ps->requests, memory_order_relaxed);
	for (unsigned k = 0; k < ORIGIN_ERR_KINDS; k++)
		fs->errors[k] =
		    atomic_load_explicit(&ps->errors[k], memory_order_relaxed);
	for (unsigned b = 0; b < ORIGIN_LAT_BUCKETS; b++)
		fs->head_us[b] =
		    atomic_load_explicit(&ps->head_us[b], memory_order_relaxed);
	fs->head_us_sum =
	    atomic_load_explicit(&ps->head_us_sum, memory_order_relaxed);
}

void
origin_pool_unserved(const struct origin_pool *p, struct origin_fetch_stats *fs)
{
	MAGIC_CHECK(p, ORIGIN_POOL_MAGIC);
	pool_stats_read(&p->unserved, fs);
}

uint64_t
origin_pool_retries(const struct origin_pool *p)
{
	MAGIC_CHECK(p, ORIGIN_POOL_MAGIC);
	return atomic_load_explicit(&p->retries, memory_order_relaxed);
}

unsigned
origin_pool_nservers(const struct origin_pool *p)
{
	MAGIC_CHECK(p, ORIGIN_POOL_MAGIC);
	return p->nsrv;
}

int
origin_pool_has_checks(const struct origin_pool *p)
{
	MAGIC_CHECK(p, ORIGIN_POOL_MAGIC);
	return p->hc.path[0] != '\0';
}

void
origin_pool_server_state(
    const struct origin_pool *p, unsigned i, struct origin_server_state *st)
{
	struct pool_server *s;
	uint64_t now = cdn_now_ms();

	MAGIC_CHECK(p, ORIGIN_POOL_MAGIC);
	CDN_ASSERT(i < p->nsrv);
	s = &p->srv[i];
	st->url = s->url;
	st->authority = s->authority;
	st->hc_healthy =
	    atomic_load_explicit(&s->hc_healthy, memory_order_relaxed);
	st->cooling =
	    atomic_load_explicit(&s->down_until_ms, memory_order_relaxed) > now;
	st->up = st->hc_healthy && !st->cooling;
	st->active = atomic_load_explicit(&s->active, memory_order_relaxed);
	st->fetches = atomic_load_explicit(&s->fetches, memory_order_relaxed);
	st->failures = atomic_load_explicit(&s->failures, memory_order_relaxed);
	pool_stats_read(&s->stats, &st->fs);
}

const struct origin_pool_hc *
origin_pool_hc(const struct origin_pool *p)
{
	MAGIC_CHECK(p, ORIGIN_POOL_MAGIC);
	return &p->hc;
}

const char *
origin_pool_server_url(const struct origin_pool *p, unsigned i)
{
	MAGIC_CHECK(p, ORIGIN_POOL_MAGIC);
	CDN_ASSERT(i < p->nsrv);
	return p->srv[i].url;
}

int
origin_pool_hc_verdict(struct origin_pool *p, unsigned i, int healthy)
{
	struct pool_server *s;

	MAGIC_CHECK(p, ORIGIN_POOL_MAGIC);
	CDN_ASSERT(i < p->nsrv);
	s = &p->srv[i];
	if (atomic_load_explicit(&s->hc_healthy, memory_order_relaxed) ==
	    healthy)
		return 0;
	if (healthy) {
		/* Back: forget the passive record too, or a cool-down would
		 * keep a server out that answers again. */
		atomic_store_explicit(&s->fails, 0, memory_order_relaxed);
		atomic_store_explicit(
		    &s->down_until_ms, 0, memory_order_relaxed);
	}
	atomic_store_explicit(&s->hc_healthy, healthy, memory_order_relaxed);
	return 1;
}

const char *
origin_pool_name(const struct origin_pool *p)
{
	MAGIC_CHECK(p, ORIGIN_POOL_MAGIC);
	return p->name;
}
