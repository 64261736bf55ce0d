/*
 * Configuration generations: what a SIGHUP replaces as one piece.
 *
 * A generation is a conf (one reference), the site table built from it
 * (origin and parent pools, cache policy, key rules) and the pools' active
 * health checks.  The main thread builds one at start-up and one at each
 * accepted reload, and publishes it to every worker (edge_worker.c); each
 * worker switches its current pointer (w->gen) on its own thread, so a
 * worker reads its generation without a lock.  Restart-only directives
 * (CONF_RESTART_KEY) are read from the start-up conf (e->conf), never from
 * a generation.
 *
 * Users.  A transaction holds the generation it began with (pt->gen) until
 * on_log, and a fill the one of its leader until its last reference goes:
 * their site pointers point into it.  A transaction's hold is counted per
 * worker in a counter only that worker writes (no locked instruction on
 * the hit path); a fill's in one atomic (fills are misses, and may end on
 * another worker).  A retired generation is freed on the main thread once
 * every worker has switched past it and no one holds it
 * (edge_gen_collect()); the holder that drops the last use wakes the main
 * thread.
 */
#ifndef EDGE_GEN_H
#define EDGE_GEN_H

#include <stdatomic.h>
#include <stdint.h>

#include <event2/event.h>

#include "conf/conf.h"
#include "edge/edge_site.h"
#include "origin/origin.h"

/* One worker's holds; padded so that workers never share a line. */
struct edge_gen_use {
	_Atomic uint64_t n;
	char pad[64 - sizeof(uint64_t)];
};

struct edge_gen {
	uint32_t magic;
#define EDGE_GEN_MAGIC 0x1f6e93b5u
	unsigned id;      /* 1 at start-up, +1 per accepted reload */
	uint64_t load_ms; /* wall clock time it was loaded */
	struct conf *conf;
	struct edge_sites *sites;
	struct origin_health *health; /* main thread; NULL once retired */
	struct edge_gen_use *use;     /* [nworkers], by worker id */
	unsigned nworkers;
	_Atomic unsigned fills; /* fills holding it */
	atomic_int retired;     /* replaced by a newer one */
	struct event *wake;     /* main's collector (borrowed) */
	struct edge_gen *next;  /* the main thread's list of retired ones */
};

/*
 * Build a generation from <c> (one reference taken) for <nworkers>
 * workers: the sites and their pools.  NULL after logging why when a pool
 * cannot be built.  <wake> is activated when its last use goes.
 */
struct edge_gen *edge_gen_new(
    struct conf *c, unsigned id, unsigned nworkers, struct event *wake);
/* Start the pools' active health checks on <main_base>; <tls_conf> gives
 * the client certificate and CA (restart-only). */
void edge_gen_health_start(struct edge_gen *g, struct event_base *main_base,
    const struct conf *tls_conf);
/* Stop them (the generation was replaced). */
void edge_gen_health_stop(struct edge_gen *g);
/* Carry the site counters of <old> over to <nw> by site name; <old>
 * remembers what it handed on (main thread, at the swap). */
void edge_gen_carry_counters(struct edge_gen *old, struct edge_gen *nw);
/* <old> is gone: add what its sites counted since the swap to the sites
 * of <cur> of the same name (main thread). */
void edge_gen_carry_rest(const struct edge_gen *old, struct edge_gen *cur);
/* Whether no one holds <g> any more (main thread; the workers must all
 * have switched past it). */
int edge_gen_unused(const struct edge_gen *g);
void edge_gen_free(struct edge_gen **gp);

/* A transaction of worker <wid> takes / drops a hold on <g> (that worker's
 * thread only).  <current> is the worker's current generation: dropping the
 * last hold of another one wakes the main thread. */
static inline void
edge_gen_hold(struct edge_gen *g, unsigned wid)
{
	_Atomic uint64_t *n = &g->use[wid].n;

	atomic_store_explicit(n,
	    atomic_load_explicit(n, memory_order_relaxed) + 1,
	    memory_order_relaxed);
}

static inline void
edge_gen_drop(struct edge_gen *g, unsigned wid, const struct edge_gen *current)
{
	_Atomic uint64_t *n = &g->use[wid].n;
	uint64_t v = atomic_load_explicit(n, memory_order_relaxed) - 1;

	/* release: what the holder did with the generation happens before
	 * the main thread sees the count drop and frees it. */
	atomic_store_explicit(n, v, memory_order_release);
	if (v == 0 && g != current)
		event_active(g->wake, 0, 0);
}

/* A fill takes / drops its hold (any thread). */
void edge_gen_fill_hold(struct edge_gen *g);
void edge_gen_fill_drop(struct edge_gen *g);

#endif /* EDGE_GEN_H */
