/*
 * Unit tests of edge/edge_wake.c, other threads' wakes of a worker whose
 * event_base has no lock: a post from another thread wakes the loop where
 * it waits; posts of one wake before the loop takes them run its event
 * once; a wake taken back does not run; and posts that each wait for the
 * run of the one before, racing the loop's taking of the queue, are never
 * lost.  A guard timer bounds every wait.
 */
#include "config.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "edge/edge_int.h"
#include "tests/unit/tap.h"

#define GUARD_S      5     /* no wait of these tests takes longer */
#define RACE_POSTS   5000  /* posts in lockstep with the loop */
#define LATE_POST_US 50000 /* the poster's pause: the loop waits first */

struct fixture {
	struct edge_worker *w;
	struct event_base *base;
	struct event *guard;
	int timed_out;
};

struct target {
	struct edge_wake x;
	struct event *ev;
	unsigned runs;
	atomic_uint *seq; /* test_none_lost: the newest post's number */
	atomic_uint seen; /* what *seq was when the event last ran */
};

static void
on_guard(evutil_socket_t fd, short what, void *arg)
{
	struct fixture *fx = arg;

	(void)fd;
	(void)what;
	fx->timed_out = 1;
	event_base_loopbreak(fx->base);
}

static void
on_target(evutil_socket_t fd, short what, void *arg)
{
	struct target *t = arg;

	(void)fd;
	(void)what;
	t->runs++;
	if (t->seq != NULL)
		atomic_store(&t->seen, atomic_load(t->seq));
}

static void
fixture_init(struct fixture *fx)
{
	struct event_config *cfg = event_config_new();
	struct timeval tv = {GUARD_S, 0};

	(void)event_config_set_flag(cfg, EVENT_BASE_FLAG_NOLOCK);
	fx->base = event_base_new_with_config(cfg);
	event_config_free(cfg);
	fx->w = calloc(1, sizeof(*fx->w));
	fx->w->base = fx->base;
	fx->timed_out = 0;
	is_int(edge_wakeq_init(&fx->w->wakeq, fx->base), CDN_OK,
	    "the queue is made");
	fx->guard = evtimer_new(fx->base, on_guard, fx);
	evtimer_add(fx->guard, &tv);
}

static void
fixture_fini(struct fixture *fx)
{
	event_free(fx->guard);
	edge_wakeq_fini(&fx->w->wakeq);
	free(fx->w);
	event_base_free(fx->base);
}

static void
target_init(struct target *t, struct fixture *fx)
{
	t->ev = event_new(fx->base, -1, 0, on_target, t);
	edge_wake_init(&t->x, t->ev);
	t->runs = 0;
	t->seq = NULL;
	atomic_init(&t->seen, 0);
}

/* Run the loop until <t> has run <runs> times or the guard fires. */
static void
loop_until(struct fixture *fx, const struct target *t, unsigned runs)
{
	while (t->runs < runs && !fx->timed_out)
		event_base_loop(fx->base, EVLOOP_ONCE);
}

struct poster {
	struct fixture *fx;
	struct target *t;
	unsigned n;
	unsigned pause_us;
	int is_lockstep;  /* wait for each post's run before the next */
	atomic_int *stop; /* the guard fired: give up waiting */
};

static void *
post_main(void *arg)
{
	struct poster *p = arg;

	if (p->pause_us > 0)
		usleep(p->pause_us);
	for (unsigned i = 1; i <= p->n; i++) {
		if (p->t->seq != NULL)
			atomic_store(p->t->seq, i);
		edge_worker_wake(p->fx->w, &p->t->x);
		while (p->is_lockstep && atomic_load(&p->t->seen) < i &&
		    !atomic_load(p->stop))
			sched_yield();
	}
	return NULL;
}

static uint64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void
test_wakes_a_waiting_loop(void)
{
	struct fixture fx;
	struct target t;
	struct poster p;
	pthread_t th;
	uint64_t t0;

	fixture_init(&fx);
	target_init(&t, &fx);
	p = (struct poster){
	    .fx = &fx, .t = &t, .n = 1, .pause_us = LATE_POST_US};
	t0 = now_ms();
	pthread_create(&th, NULL, post_main, &p);
	loop_until(&fx, &t, 1);
	pthread_join(th, NULL);
	ok(!fx.timed_out, "a post from another thread wakes the loop");
	is_int(t.runs, 1, "its event ran once");
	ok(now_ms() - t0 < 1000, "at once, not at the guard");
	event_free(t.ev);
	fixture_fini(&fx);
}

static void
test_posts_run_once(void)
{
	struct fixture fx;
	struct target a, b;
	struct poster p;
	pthread_t th;

	fixture_init(&fx);
	target_init(&a, &fx);
	target_init(&b, &fx);
	p = (struct poster){.fx = &fx, .t = &a, .n = 3};
	pthread_create(&th, NULL, post_main, &p);
	pthread_join(th, NULL);
	p.t = &b;
	p.n = 1;
	pthread_create(&th, NULL, post_main, &p);
	pthread_join(th, NULL);
	loop_until(&fx, &b, 1);
	loop_until(&fx, &a, 1);
	is_int(a.runs, 1, "three posts before the loop ran: one run");
	is_int(b.runs, 1, "and the other wake posted beside it ran");
	event_free(a.ev);
	event_free(b.ev);
	fixture_fini(&fx);
}

static void
test_cancel(void)
{
	struct fixture fx;
	struct target a, b;
	struct poster p;
	pthread_t th;

	fixture_init(&fx);
	target_init(&a, &fx);
	target_init(&b, &fx);
	p = (struct poster){.fx = &fx, .t = &a, .n = 1};
	pthread_create(&th, NULL, post_main, &p);
	pthread_join(th, NULL);
	edge_worker_wake_cancel(fx.w, &a.x);
	ok(!a.x.is_posted, "a wake taken back is no longer posted");
	p.t = &b;
	pthread_create(&th, NULL, post_main, &p);
	pthread_join(th, NULL);
	loop_until(&fx, &b, 1);
	event_base_loop(fx.base, EVLOOP_NONBLOCK);
	is_int(b.runs, 1, "the wake posted after it ran");
	is_int(a.runs, 0, "the wake taken back did not");
	event_free(a.ev);
	event_free(b.ev);
	fixture_fini(&fx);
}

static void
test_none_lost(void)
{
	struct fixture fx;
	struct target t;
	struct poster p;
	atomic_uint seq;
	atomic_int stop;
	pthread_t th;

	fixture_init(&fx);
	target_init(&t, &fx);
	atomic_init(&seq, 0);
	atomic_init(&stop, 0);
	t.seq = &seq;
	p = (struct poster){.fx = &fx,
	    .t = &t,
	    .n = RACE_POSTS,
	    .is_lockstep = 1,
	    .stop = &stop};
	pthread_create(&th, NULL, post_main, &p);
	while (atomic_load(&t.seen) < RACE_POSTS && !fx.timed_out)
		event_base_loop(fx.base, EVLOOP_ONCE);
	atomic_store(&stop, 1);
	pthread_join(th, NULL);
	ok(!fx.timed_out, "posts in lockstep with the loop: none lost");
	is_int(atomic_load(&t.seen), RACE_POSTS, "the last one ran");
	is_int(t.runs, RACE_POSTS, "each post its run");
	event_free(t.ev);
	fixture_fini(&fx);
}

int
main(void)
{
	plan_no_plan();
	test_wakes_a_waiting_loop();
	test_posts_run_once();
	test_cancel();
	test_none_lost();
	return done_testing();
}
