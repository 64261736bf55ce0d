/*
 * Other threads' wakes of a worker.
 *
 * A worker's event_base has no lock (EVENT_BASE_FLAG_NOLOCK): only the
 * worker's own thread adds, deletes or activates its events.  libevent's
 * lock cost some twenty lock/unlock pairs per request, most of them on
 * events no other thread ever sees.  What another thread must wake (a
 * fill's waiter on another worker, a fill's stream from the store's writer,
 * drain and a new configuration from the main thread) it posts here: a
 * struct edge_wake goes on the worker's queue, under the queue's lock, and
 * an eventfd makes the worker's loop take the queue and activate each
 * wake's event itself.  A wake posted from the worker's own thread
 * activates its event at once.
 *
 * Threads: q->mu guards the list and x->is_posted of every wake on it.
 * Posts may come from any thread; the worker's thread alone takes the
 * list off.  Lock order: whatever the poster holds (a fill's mu, a
 * stream's), then q->mu; nothing is taken under it (activating an event
 * of a base without a lock takes none).
 */
#include "config.h"

#include <errno.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "edge/edge_int.h"

static void
on_posted(evutil_socket_t fd, short what, void *arg)
{
	struct edge_wakeq *q = arg;
	struct edge_wake *x;
	uint64_t n;

	(void)what;
	/* Read before the list is taken: a post after it writes again. */
	(void)read(fd, &n, sizeof(n));
	pthread_mutex_lock(&q->mu);
	while ((x = q->head) != NULL) {
		q->head = x->next;
		if (q->head != NULL)
			q->head->prev = NULL;
		x->next = NULL;
		x->is_posted = 0;
		event_active(x->ev, EV_READ, 0);
	}
	q->is_signalled = 0;
	pthread_mutex_unlock(&q->mu);
}

int
edge_wakeq_init(struct edge_wakeq *q, struct event_base *base)
{
	pthread_mutex_init(&q->mu, NULL);
	q->head = NULL;
	q->is_signalled = 0;
	q->ev = NULL;
	q->fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (q->fd == -1)
		goto fail;
	q->ev = event_new(base, q->fd, EV_READ | EV_PERSIST, on_posted, q);
	if (q->ev == NULL || event_add(q->ev, NULL) != 0)
		goto fail;
	return CDN_OK;
fail:
	if (q->ev != NULL)
		event_free(q->ev);
	q->ev = NULL;
	if (q->fd != -1)
		close(q->fd);
	q->fd = -1;
	pthread_mutex_destroy(&q->mu);
	return CDN_EIO;
}

void
edge_wakeq_fini(struct edge_wakeq *q)
{
	if (q->ev == NULL)
		return;
	event_free(q->ev);
	q->ev = NULL;
	close(q->fd);
	q->fd = -1;
	pthread_mutex_destroy(&q->mu);
}

void
edge_wake_init(struct edge_wake *x, struct event *ev)
{
	x->prev = x->next = NULL;
	x->ev = ev;
	x->is_posted = 0;
}

void
edge_worker_wake(struct edge_worker *w, struct edge_wake *x)
{
	struct edge_wakeq *q = &w->wakeq;
	static const uint64_t one = 1;
	ssize_t n;

	if (edge_worker_current() == w) {
		event_active(x->ev, EV_READ, 0);
		return;
	}
	pthread_mutex_lock(&q->mu);
	if (!x->is_posted) {
		x->is_posted = 1;
		x->prev = NULL;
		x->next = q->head;
		if (q->head != NULL)
			q->head->prev = x;
		q->head = x;
	}
	if (!q->is_signalled) {
		q->is_signalled = 1;
		/* Fails only with the counter at its maximum: readable. */
		do
			n = write(q->fd, &one, sizeof(one));
		while (n == -1 && errno == EINTR);
	}
	pthread_mutex_unlock(&q->mu);
}

void
edge_worker_wake_cancel(struct edge_worker *w, struct edge_wake *x)
{
	struct edge_wakeq *q = &w->wakeq;

	/* Read without the lock: only this thread clears it, and the
	 * caller is ordered after every post. */
	if (!x->is_posted)
		return;
	pthread_mutex_lock(&q->mu);
	if (x->prev != NULL)
		x->prev->next = x->next;
	else
		q->head = x->next;
	if (x->next != NULL)
		x->next->prev = x->prev;
	x->prev = x->next = NULL;
	x->is_posted = 0;
	pthread_mutex_unlock(&q->mu);
}
