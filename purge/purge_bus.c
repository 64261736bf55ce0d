/*
 * The purge bus on purged's loop (purge/purge_bus.h, docs/fleet.md).
 *
 * Two hiredis async connections on purged's event_base:
 *   - the reader: XINFO STREAM at each connect (where to start, and
 *     whether entries it needed were trimmed: a gap), then XREAD BLOCK
 *     from the last applied ID, one batch after another.  XREAD BLOCK
 *     holds its connection, hence
 *   - the control connection: XADD of the purges accepted here, the
 *     node's record in "<stream>:nodes" every second, XINFO STREAM for
 *     the lag, HGETALL for confirmation and GET /fleet.
 * Each reconnects on its own, after 100 ms doubling to 5 s.
 *
 * A batch of entries is applied in ONE LMDB write transaction with the
 * ID of its last entry (cache_store_purge_batch, meta "bus_applied"), so
 * a kill -9 anywhere loses or repeats nothing, and catching up after a
 * long absence costs one fsync per batch, not per purge.  A purge
 * accepted here is not applied here directly: it is published, and its
 * answer waits until the reader applied it, so that every node applies
 * the same sequence.
 *
 * The shared page (cache_store_bus_page) is written here only.
 */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "common/cdn_log.h"
#include "http/http_server.h"
#include "purge/purge.h"
#include "purge/purge_bus.h"

#define BUS_MARK         "bus_applied" /* meta record: "<stream> <id>" */
#define READ_COUNT       1000          /* entries per XREAD (and txn) */
#define READ_BLOCK_MS    2000          /* XREAD BLOCK */
#define READ_WATCHDOG_MS 6000          /* no XREAD answer: reconnect */
#define BACKOFF_MIN_MS   100
#define BACKOFF_MAX_MS   5000
#define TICK_MS          100    /* pending answers, the watchdog */
#define CONFIRM_POLL_MS  2      /* the registry, while a ?wait is pending */
#define HEARTBEAT_MS     1000   /* the page, the registry, the lag */
#define APPLY_WAIT_MS    10000  /* a published purge not applied here: 504 */
#define WAIT_MAX_MS      600000 /* ?wait= bound */
#define MARK_MAX         (CONF_BUS_STREAM_MAX + CACHE_BUS_ID_MAX + 2)

struct purge_bus;

/* One Redis connection and its reconnection. */
struct conn {
	struct purge_bus *bus;
	const char *role; /* "reader" or "control" */
	redisAsyncContext *ac;
	int ready; /* connected and authenticated */
	uint64_t backoff_ms;
	struct event *retry;
	char last_err[200]; /* the last failure logged: each once */
	void (*on_ready)(struct conn *c);
};

enum pending_kind { P_PURGE, P_FLEET };

/* A request waiting on the bus: a publish, or GET /fleet. */
struct pending {
	uint32_t magic;
#define PENDING_MAGIC 0x4f1b9c2du
	enum pending_kind kind;
	struct purge_bus *bus;
	struct pending *next;
	struct http_txn *txn; /* NULL once the client went away */
	const char *token_id;
	char nonce[PURGE_BUS_NONCE_MAX];
	struct cache_bus_id id;
	int published;     /* XADD answered */
	json_t *answer;    /* set when the reader applied it here */
	unsigned inflight; /* Redis commands holding this pointer */
	uint64_t start_ns;
	uint64_t wait_ms;  /* confirmation asked for: its bound */
	uint64_t since_ms; /* monotonic: published */
	int polling;       /* an HGETALL for confirmation in flight */
};

struct purge_bus {
	uint32_t magic;
#define PURGE_BUS_MAGIC 0x7c3e81a5u
	struct purge_api *api;
	struct cache_store *store;
	struct cache_bus_page *page;
	struct event_base *base;
	struct conf_bus_url url;
	char url_text[600]; /* for logs: redis://host:port/stream */
	char *password;     /* NULL: none */
	char node[CONF_NODE_NAME_MAX];
	char nodes_key[CONF_BUS_STREAM_MAX + 8];
	uint64_t retention;
	struct conn rd, ctl;
	struct event *tick;
	struct event *confirm; /* the next confirmation poll */
	uint64_t last_heartbeat_ms;
	int closing;
	/* The reader's position. */
	int have_applied;            /* a recorded ID for this stream */
	struct cache_bus_id applied; /* the last applied (recorded) */
	struct cache_bus_id pos;     /* XREAD from here */
	int reading;                 /* an XREAD in flight */
	uint64_t read_sent_ms;
	int current_once;  /* current since purged started */
	int reader_was_up; /* the reader was connected before */
	struct pending *pendings;
};

static uint64_t
wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void
set_state(struct purge_bus *b, enum cache_bus_state st)
{
	uint64_t old = atomic_load(&b->page->state);

	if (old == (uint64_t)st)
		return;
	if (st == CACHE_BUS_DISCONNECTED)
		atomic_store(
		    &b->page->disconnected_ms, b->current_once ? wall_ms() : 0);
	if (st == CACHE_BUS_CURRENT)
		b->current_once = 1;
	atomic_store(&b->page->state, (uint64_t)st);
}

/* ---- connections ---- */

static void conn_start(struct conn *c);

static void
conn_fail(struct conn *c, const char *what, const char *detail)
{
	char msg[sizeof(c->last_err)];

	snprintf(msg, sizeof(msg), "%s: %s", what, detail);
	/* Each distinct failure once, not once per retry. */
	if (strcmp(msg, c->last_err) != 0) {
		CDN_LOG(CDN_LOG_ERR, "bus", "purge bus %s (%s): %s",
		    c->bus->url_text, c->role, msg);
		snprintf(c->last_err, sizeof(c->last_err), "%s", msg);
	}
}

static void
on_retry(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;

	(void)fd;
	(void)what;
	conn_start(c);
}

static void
conn_schedule(struct conn *c)
{
	struct timeval tv;

	if (c->bus->closing)
		return;
	tv.tv_sec = (time_t)(c->backoff_ms / 1000);
	tv.tv_usec = (suseconds_t)(c->backoff_ms % 1000) * 1000;
	evtimer_add(c->retry, &tv);
	c->backoff_ms *= 2;
	if (c->backoff_ms > BACKOFF_MAX_MS)
		c->backoff_ms = BACKOFF_MAX_MS;
}

static void reader_lost(struct purge_bus *b);

static void
on_disconnect(const redisAsyncContext *ac, int status)
{
	struct conn *c = ac->data;

	if (c == NULL)
		return;
	c->ac = NULL;
	c->ready = 0;
	if (status != REDIS_OK)
		conn_fail(c, "connection lost",
		    ac->errstr[0] != '\0' ? ac->errstr : "closed");
	if (c == &c->bus->rd)
		reader_lost(c->bus);
	conn_schedule(c);
}

static void
on_auth(redisAsyncContext *ac, void *r, void *priv)
{
	struct conn *c = priv;
	redisReply *reply = r;

	(void)ac;
	if (c->bus->closing || c->ac == NULL)
		return;
	if (reply == NULL)
		return; /* on_disconnect follows */
	if (reply->type == REDIS_REPLY_ERROR) {
		/* The server's words name no secret: "WRONGPASS ..." */
		conn_fail(c, "authentication failed (purge_bus_password_file)",
		    reply->str);
		redisAsyncDisconnect(c->ac);
		return;
	}
	c->ready = 1;
	c->backoff_ms = BACKOFF_MIN_MS;
	if (c->last_err[0] != '\0')
		CDN_LOG(CDN_LOG_INFO, "bus", "purge bus %s (%s): connected",
		    c->bus->url_text, c->role);
	c->last_err[0] = '\0';
	c->on_ready(c);
}

static void
on_connect(const redisAsyncContext *ac, int status)
{
	struct conn *c = ac->data;
	struct purge_bus *b;
	const char *argv[3];
	size_t argl[3];
	int n = 0;

	if (c == NULL)
		return;
	b = c->bus;
	if (status != REDIS_OK) {
		/* hiredis frees the context after this callback. */
		conn_fail(c, "cannot connect",
		    ac->errstr[0] != '\0' ? ac->errstr : "refused");
		c->ac = NULL;
		if (c == &b->rd)
			reader_lost(b);
		conn_schedule(c);
		return;
	}
	if (b->password == NULL) {
		on_auth(c->ac, &(redisReply){.type = REDIS_REPLY_STATUS}, c);
		return;
	}
	argv[n] = "AUTH";
	argl[n++] = 4;
	if (b->url.user[0] != '\0') {
		argv[n] = b->url.user;
		argl[n] = strlen(b->url.user);
		n++;
	}
	argv[n] = b->password;
	argl[n] = strlen(b->password);
	n++;
	redisAsyncCommandArgv(c->ac, on_auth, c, n, argv, argl);
}

static void
conn_start(struct conn *c)
{
	struct purge_bus *b = c->bus;

	if (b->closing || c->ac != NULL)
		return;
	c->ac = redisAsyncConnect(b->url.host, b->url.port);
	if (c->ac == NULL || c->ac->err) {
		conn_fail(c, "cannot connect",
		    c->ac != NULL ? c->ac->errstr : "out of memory");
		if (c->ac != NULL)
			redisAsyncFree(c->ac);
		c->ac = NULL;
		conn_schedule(c);
		return;
	}
	c->ac->data = c;
	redisLibeventAttach(c->ac, b->base);
	redisAsyncSetConnectCallback(c->ac, on_connect);
	redisAsyncSetDisconnectCallback(c->ac, on_disconnect);
}

/* ---- XINFO STREAM, read by both connections ---- */

struct stream_info {
	int exists;
	uint64_t length, entries_added;
	struct cache_bus_id last, max_deleted, first;
};

static int
reply_id(const redisReply *r, struct cache_bus_id *id)
{
	if (r->type != REDIS_REPLY_STRING && r->type != REDIS_REPLY_STATUS)
		return CDN_EINVAL;
	return cache_bus_id_parse(r->str, r->len, id);
}

/* CDN_OK, or CDN_EINVAL for a reply it does not understand. */
static int
stream_info_parse(const redisReply *r, struct stream_info *si)
{
	memset(si, 0, sizeof(*si));
	if (r->type == REDIS_REPLY_ERROR &&
	    strstr(r->str, "no such key") != NULL)
		return CDN_OK; /* exists 0 */
	if (r->type != REDIS_REPLY_ARRAY || r->elements % 2 != 0)
		return CDN_EINVAL;
	si->exists = 1;
	for (size_t i = 0; i + 1 < r->elements; i += 2) {
		const redisReply *k = r->element[i], *v = r->element[i + 1];

		if (k->type != REDIS_REPLY_STRING &&
		    k->type != REDIS_REPLY_STATUS)
			continue;
		if (strcmp(k->str, "length") == 0 &&
		    v->type == REDIS_REPLY_INTEGER)
			si->length = (uint64_t)v->integer;
		else if (strcmp(k->str, "entries-added") == 0 &&
		    v->type == REDIS_REPLY_INTEGER)
			si->entries_added = (uint64_t)v->integer;
		else if (strcmp(k->str, "last-generated-id") == 0 &&
		    reply_id(v, &si->last) != CDN_OK)
			return CDN_EINVAL;
		else if (strcmp(k->str, "max-deleted-entry-id") == 0 &&
		    reply_id(v, &si->max_deleted) != CDN_OK)
			return CDN_EINVAL;
		else if (strcmp(k->str, "first-entry") == 0 &&
		    v->type == REDIS_REPLY_ARRAY && v->elements >= 1)
			(void)reply_id(v->element[0], &si->first);
	}
	return CDN_OK;
}

/* The greatest ID before <id> ({0, 0} for the first ones). */
static struct cache_bus_id
id_before(struct cache_bus_id id)
{
	if (id.seq > 0)
		return (struct cache_bus_id){id.ms, id.seq - 1};
	if (id.ms > 0)
		return (struct cache_bus_id){id.ms - 1, UINT64_MAX};
	return id;
}

/*
 * Why a node at <applied> cannot replay what it missed, or NULL: the
 * stream is gone, was reset below it, or lost entries after it.
 */
static const char *
gap_reason(const struct stream_info *si, struct cache_bus_id applied)
{
	static const struct cache_bus_id none = {0, 0};

	/* At "before everything", nothing can have been missed but by
	 * trimming. */
	if (!si->exists && cache_bus_id_cmp(applied, none) > 0)
		return "the stream is gone (Redis emptied or replaced)";
	if (!si->exists)
		return NULL;
	if (cache_bus_id_cmp(si->last, applied) < 0)
		return "the stream is older than what was applied (Redis "
		       "reset)";
	if (cache_bus_id_cmp(si->max_deleted, applied) > 0)
		return "entries after the last one applied were deleted";
	/* Trimming (MAXLEN) moves no max-deleted-entry-id in Redis 7.0:
	 * entries were removed, and the first one left is not the next
	 * after ours.  IDs are not dense, so a node whose own last entry
	 * was trimmed but none after it counts too: the safe side. */
	if (si->entries_added > si->length &&
	    cache_bus_id_cmp(applied, id_before(si->first)) < 0)
		return "entries after the last one applied were trimmed "
		       "(purge_bus_retention)";
	return NULL;
}

/* ---- applying ---- */

static int
mark_write(struct purge_bus *b, struct cache_bus_id id, char *out, size_t cap)
{
	char ids[CACHE_BUS_ID_MAX];

	return snprintf(
	    out, cap, "%s %s", b->url.stream, cache_bus_id_format(id, ids));
}

static struct pending *
pending_by_nonce(struct purge_bus *b, const char *nonce)
{
	for (struct pending *p = b->pendings; p != NULL; p = p->next)
		if (p->kind == P_PURGE && p->answer == NULL &&
		    strcmp(p->nonce, nonce) == 0)
			return p;
	return NULL;
}

#ifdef CDN_DEBUG
/* Tests stop purged at a chosen point of applying, once: the file named by
 * PURGED_TEST_KILL_<POINT> is removed and purged kills itself. */
static void
test_kill_point(const char *point)
{
	char name[64];
	const char *f;

	snprintf(name, sizeof(name), "PURGED_TEST_KILL_%s", point);
	f = getenv(name);
	if (f != NULL && unlink(f) == 0)
		raise(SIGKILL);
}
#else
#define test_kill_point(point) ((void)0)
#endif

static void pending_check(struct pending *p);
static void heartbeat(struct purge_bus *b);

/* A gap: everything stored before is soft-purged (one rule, O(1)), in the
 * same transaction that records where reading goes on. */
static int
apply_gap(struct purge_bus *b, const char *why, struct cache_bus_id from)
{
	struct cache_purge_item every = {
	    .kind = CACHE_PURGE_PREFIX, .name = "", .len = 0};
	struct cache_purge_op op = {.items = &every, .n = 1, .soft = 1};
	char mark[MARK_MAX], ids[CACHE_BUS_ID_MAX];
	int n = mark_write(b, from, mark, sizeof(mark));

	if (cache_store_purge_batch(
	        b->store, &op, 1, BUS_MARK, mark, (size_t)n) != CDN_OK)
		return CDN_EIO;
	CDN_LOG(CDN_LOG_WARN, "bus",
	    "purge bus %s: %s: everything stored before is now stale "
	    "(soft purge seq %" PRIu64 "); reading on from %s",
	    b->url_text, why, op.seq, cache_bus_id_format(from, ids));
	atomic_fetch_add(&b->page->gaps, 1);
	b->have_applied = 1;
	b->applied = from;
	cache_bus_applied_set(b->page, from);
	return CDN_OK;
}

/* Apply XREAD's entries for our stream in one transaction. */
static int
apply_entries(struct purge_bus *b, const redisReply *entries)
{
	size_t n = entries->elements;
	struct cache_purge_op *ops;
	struct purge_plist *lists;
	struct purge_bus_entry *es;
	struct cache_bus_id *ids, last = b->applied;
	char mark[MARK_MAX], idtext[CACHE_BUS_ID_MAX], why[256];
	uint64_t now;
	unsigned nbad = 0;
	int rc = CDN_OK, mlen;

	ops = calloc(n, sizeof(*ops));
	lists = calloc(n, sizeof(*lists));
	es = calloc(n, sizeof(*es));
	ids = calloc(n, sizeof(*ids));
	if (ops == NULL || lists == NULL || es == NULL || ids == NULL) {
		rc = CDN_ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		const redisReply *e = entries->element[i], *fv;
		const char *fs[2 * 64], *reason = NULL;
		size_t fl[2 * 64], nf = 0;
		const char **fsp = fs;
		size_t *flp = fl;
		int soft = 0, dry = 0, irc;

		if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 ||
		    reply_id(e->element[0], &ids[i]) != CDN_OK) {
			/* No ID: nothing to record; never seen from Redis. */
			rc = CDN_EINVAL;
			goto out;
		}
		last = ids[i];
		fv = e->element[1];
		if (fv->type != REDIS_REPLY_ARRAY) {
			reason = "no fields";
		} else {
			nf = fv->elements;
			if (nf > 2 * 64) {
				fsp = calloc(nf, sizeof(*fsp));
				flp = calloc(nf, sizeof(*flp));
			}
			for (size_t k = 0; fsp != NULL && flp != NULL && k < nf;
			     k++) {
				if (fv->element[k]->type !=
				    REDIS_REPLY_STRING) {
					reason = "a field is not a string";
					break;
				}
				fsp[k] = fv->element[k]->str;
				flp[k] = fv->element[k]->len;
			}
			if (fsp == NULL || flp == NULL)
				reason = "out of memory";
			else if (reason == NULL &&
			    purge_bus_entry_decode(
			        fsp, flp, nf, &es[i], &reason) == CDN_OK)
				reason = NULL;
			if (fsp != fs)
				free(fsp);
			if (flp != fl)
				free(flp);
		}
		if (reason == NULL) {
			reason = purge_json_items(b->api, es[i].purge,
			    &lists[i], &soft, &dry, 1, why, sizeof(why), &irc);
		}
		if (reason != NULL) {
			CDN_LOG(CDN_LOG_WARN, "bus",
			    "purge bus %s: entry %s skipped: %s", b->url_text,
			    cache_bus_id_format(ids[i], idtext), reason);
			purge_plist_free(&lists[i]);
			nbad++;
			continue;
		}
		ops[i].items = lists[i].v;
		ops[i].n = lists[i].n;
		ops[i].soft = soft;
	}
	if (n == 0)
		goto out;
	test_kill_point("BEFORE_COMMIT");
	mlen = mark_write(b, last, mark, sizeof(mark));
	rc = cache_store_purge_batch(
	    b->store, ops, (unsigned)n, BUS_MARK, mark, (size_t)mlen);
	if (rc != CDN_OK)
		goto out;
	test_kill_point("AFTER_COMMIT");
	b->have_applied = 1;
	b->applied = last;
	b->pos = last;
	cache_bus_applied_set(b->page, last);
	/* The registry learns at once: confirmations wait on it. */
	heartbeat(b);
	atomic_fetch_add(&b->page->applied, n - nbad);
	atomic_fetch_add(&b->page->malformed, nbad);
	CDN_LOG(CDN_LOG_INFO, "bus",
	    "applied %zu entr%s up to %s (%u skipped), purge seq %" PRIu64, n,
	    n == 1 ? "y" : "ies", cache_bus_id_format(last, idtext), nbad,
	    cache_store_purge_seq(b->store));
	now = wall_ms();
	for (size_t i = 0; i < n; i++) {
		struct pending *p;
		uint64_t total = 0;

		if (ops[i].n == 0)
			continue;
		cache_bus_latency_observe(
		    b->page, now > ids[i].ms ? (now - ids[i].ms) * 1000 : 0);
		p = strcmp(es[i].node, b->node) == 0
		    ? pending_by_nonce(b, es[i].nonce)
		    : NULL;
		if (p != NULL) {
			p->answer = purge_result_json(
			    &lists[i], ops[i].soft, 0, ops[i].seq, &total);
			if (p->answer == NULL)
				p->answer = json_object(); /* still answered */
			purge_note(b->api, p->txn, p->token_id, &lists[i],
			    ops[i].soft, 0, ops[i].seq, total,
			    (double)((cdn_now_ns() - p->start_ns) / 1000) /
			        1000.0,
			    cache_bus_id_format(ids[i], idtext));
		} else {
			purge_note(b->api, NULL, NULL, &lists[i], ops[i].soft,
			    0, ops[i].seq, 0, 0,
			    cache_bus_id_format(ids[i], idtext));
		}
	}
out:
	for (size_t i = 0; es != NULL && lists != NULL && i < n; i++) {
		purge_plist_free(&lists[i]);
		purge_bus_entry_clear(&es[i]);
	}
	free(ops);
	free(lists);
	free(es);
	free(ids);
	/* Answers now: after the lists (their strings) are gone, from the
	 * JSON each pending holds. */
	for (struct pending *p = b->pendings; p != NULL;) {
		struct pending *next = p->next;

		pending_check(p);
		p = next;
	}
	return rc;
}

/* ---- the reader ---- */

static void reader_read(struct purge_bus *b);

static void
reader_lost(struct purge_bus *b)
{
	b->reading = 0;
	set_state(b, CACHE_BUS_DISCONNECTED);
}

static void
on_read(redisAsyncContext *ac, void *r, void *priv)
{
	struct purge_bus *b = priv;
	redisReply *reply = r, *entries = NULL;

	(void)ac;
	if (b->closing)
		return;
	b->reading = 0;
	if (reply == NULL || b->rd.ac == NULL)
		return; /* disconnected: on_disconnect handles it */
	if (reply->type == REDIS_REPLY_ERROR) {
		conn_fail(&b->rd, "XREAD", reply->str);
		redisAsyncDisconnect(b->rd.ac);
		return;
	}
	if (reply->type == REDIS_REPLY_ARRAY && reply->elements >= 1 &&
	    reply->element[0]->type == REDIS_REPLY_ARRAY &&
	    reply->element[0]->elements == 2 &&
	    reply->element[0]->element[1]->type == REDIS_REPLY_ARRAY)
		entries = reply->element[0]->element[1];
	if (entries != NULL && entries->elements > 0) {
		if (apply_entries(b, entries) != CDN_OK) {
			/* The store failed (logged): read again later. */
			conn_fail(&b->rd, "applying", "the store failed");
			redisAsyncDisconnect(b->rd.ac);
			return;
		}
	}
	set_state(b,
	    entries != NULL && entries->elements >= READ_COUNT
	        ? CACHE_BUS_CATCHING_UP
	        : CACHE_BUS_CURRENT);
	if (atomic_load(&b->page->state) == CACHE_BUS_CURRENT) {
		atomic_store(&b->page->lag_entries, 0);
		atomic_store(&b->page->lag_ms, 0);
	}
	reader_read(b);
}

static void
reader_read(struct purge_bus *b)
{
	char pos[CACHE_BUS_ID_MAX], count[16], block[16];
	const char *argv[] = {"XREAD", "COUNT", count, "BLOCK", block,
	    "STREAMS", b->url.stream, pos};

	if (b->rd.ac == NULL || !b->rd.ready || b->reading)
		return;
	snprintf(count, sizeof(count), "%d", READ_COUNT);
	snprintf(block, sizeof(block), "%d", READ_BLOCK_MS);
	cache_bus_id_format(b->pos, pos);
	b->reading = 1;
	b->read_sent_ms = cdn_now_ms();
	redisAsyncCommandArgv(b->rd.ac, on_read, b, 8, argv, NULL);
}

/* Where to start, from XINFO STREAM at connect. */
static void
on_reader_info(redisAsyncContext *ac, void *r, void *priv)
{
	struct purge_bus *b = priv;
	redisReply *reply = r;
	struct stream_info si;
	const char *why;

	(void)ac;
	if (b->closing || reply == NULL || b->rd.ac == NULL)
		return;
	if (stream_info_parse(reply, &si) != CDN_OK) {
		conn_fail(&b->rd, "XINFO STREAM",
		    reply->type == REDIS_REPLY_ERROR ? reply->str
		                                     : "an unexpected reply");
		redisAsyncDisconnect(b->rd.ac);
		return;
	}
	if (!b->have_applied) {
		/* A new node, or the bus newly configured: from now on,
		 * recorded at once so that a restart goes on from here. */
		struct cache_bus_id from =
		    si.exists ? si.last : (struct cache_bus_id){0, 0};
		char mark[MARK_MAX];
		int n = mark_write(b, from, mark, sizeof(mark));

		if (cache_store_purge_batch(b->store, NULL, 0, BUS_MARK, mark,
		        (size_t)n) != CDN_OK) {
			conn_fail(&b->rd, "recording the start",
			    "the store "
			    "failed");
			redisAsyncDisconnect(b->rd.ac);
			return;
		}
		b->have_applied = 1;
		b->applied = from;
		b->pos = from;
		cache_bus_applied_set(b->page, from);
	} else if ((why = gap_reason(&si, b->applied)) != NULL) {
		/* Reset or gone: its first entry on; trimmed or deleted:
		 * the first entry left on. */
		struct cache_bus_id from =
		    cache_bus_id_cmp(si.last, b->applied) < 0 || !si.exists
		    ? (struct cache_bus_id){0, 0}
		    : id_before(si.first);

		if (cache_bus_id_cmp(from, b->applied) < 0)
			from = b->applied; /* only deletions after ours */

		if (apply_gap(b, why, from) != CDN_OK) {
			conn_fail(&b->rd, "applying a gap", "the store failed");
			redisAsyncDisconnect(b->rd.ac);
			return;
		}
		b->pos = from;
	} else {
		b->pos = b->applied;
	}
	set_state(b, CACHE_BUS_CATCHING_UP);
	reader_read(b);
}

static void
reader_ready(struct conn *c)
{
	struct purge_bus *b = c->bus;
	const char *argv[] = {"XINFO", "STREAM", b->url.stream};

	/* Counted when the bus is back, not per failed attempt. */
	if (b->reader_was_up)
		atomic_fetch_add(&b->page->reconnects, 1);
	b->reader_was_up = 1;
	redisAsyncCommandArgv(c->ac, on_reader_info, b, 3, argv, NULL);
}

/* ---- the control connection: registry, lag ---- */

static void
on_ctl_reply(redisAsyncContext *ac, void *r, void *priv)
{
	struct purge_bus *b = priv;
	redisReply *reply = r;

	(void)ac;
	if (b->closing || reply == NULL)
		return;
	if (reply->type == REDIS_REPLY_ERROR)
		conn_fail(&b->ctl, "registry", reply->str);
}

static void
on_ctl_info(redisAsyncContext *ac, void *r, void *priv)
{
	struct purge_bus *b = priv;
	redisReply *reply = r;
	struct stream_info si;
	struct cache_bus_id applied = b->applied;

	(void)ac;
	if (b->closing || reply == NULL ||
	    stream_info_parse(reply, &si) != CDN_OK)
		return;
	/* Redis emptied or reset under a connected reader, or trimmed past
	 * it: reconnect it, and its XINFO decides. */
	if (b->have_applied && b->rd.ac != NULL && b->rd.ready &&
	    gap_reason(&si, applied) != NULL) {
		CDN_LOG(CDN_LOG_WARN, "bus",
		    "purge bus %s: the stream changed under the reader: "
		    "reconnecting",
		    b->url_text);
		redisAsyncDisconnect(b->rd.ac);
		return;
	}
	if (cache_bus_id_cmp(si.last, applied) <= 0 || !si.exists) {
		atomic_store(&b->page->lag_entries, 0);
		atomic_store(&b->page->lag_ms, 0);
	} else {
		/* Exact when current; while catching up, the stream's
		 * length bounds it (Redis counts no range cheaply). */
		atomic_store(&b->page->lag_entries,
		    atomic_load(&b->page->state) == CACHE_BUS_CURRENT
		        ? 0
		        : si.length);
		atomic_store(&b->page->lag_ms,
		    si.last.ms > applied.ms ? si.last.ms - applied.ms : 0);
	}
}

static void
heartbeat(struct purge_bus *b)
{
	struct purge_fleet_node me;
	char rec[PURGE_FLEET_RECORD_MAX];
	const char *hset[] = {"HSET", b->nodes_key, b->node, rec};
	const char *info[] = {"XINFO", "STREAM", b->url.stream};

	atomic_store(&b->page->heartbeat_ms, wall_ms());
	if (!b->ctl.ready)
		return;
	memset(&me, 0, sizeof(me));
	me.applied = cache_bus_applied_get(b->page);
	me.lag_entries = atomic_load(&b->page->lag_entries);
	me.lag_ms = atomic_load(&b->page->lag_ms);
	me.heartbeat_ms = wall_ms();
	purge_fleet_record_format(&me, rec);
	redisAsyncCommandArgv(b->ctl.ac, on_ctl_reply, b, 4, hset, NULL);
	redisAsyncCommandArgv(b->ctl.ac, on_ctl_info, b, 3, info, NULL);
}

static void
ctl_ready(struct conn *c)
{
	heartbeat(c->bus);
}

/* ---- publishing and confirmation ---- */

static void
pending_unlink_free(struct pending *p)
{
	struct pending **pp = &p->bus->pendings;

	while (*pp != p)
		pp = &(*pp)->next;
	*pp = p->next;
	json_decref(p->answer);
	MAGIC_WIPE(p);
	free(p);
}

/* Answer and forget <p> (its Redis commands, if any, still point at it:
 * it goes when the last returns). */
static void
pending_answer(struct pending *p, int status, json_t *j)
{
	if (p->txn != NULL)
		purge_send_json(p->txn, status, j);
	else
		json_decref(j);
	p->txn = NULL;
}

static void pending_error(struct pending *p, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Answer an error: fmt's first %s is the bus's URL. */
static void
pending_error(struct pending *p, int status, const char *fmt, ...)
{
	char msg[1000];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	pending_answer(p, status, json_pack("{s:s}", "error", msg));
}

static void
answer_with_ms(struct pending *p, int status, json_t *extra)
{
	char ids[CACHE_BUS_ID_MAX];
	json_t *j = p->answer;
	double ms = (double)((cdn_now_ns() - p->start_ns) / 1000) / 1000.0;

	p->answer = NULL;
	json_object_set_new(
	    j, "bus_id", json_string(cache_bus_id_format(p->id, ids)));
	if (extra != NULL)
		json_object_update_new(j, extra);
	json_object_set_new(j, "ms", json_real(ms));
	pending_answer(p, status, j);
}

/* The registry as JSON: every node, and the lists confirmation needs. */
static json_t *
fleet_json(
    const redisReply *hash, struct cache_bus_id want, int *all_live_applied)
{
	json_t *nodes = json_array(), *behind = json_array(),
	       *down = json_array();
	uint64_t now = wall_ms();
	char ids[CACHE_BUS_ID_MAX];

	*all_live_applied = 1;
	for (size_t i = 0; i + 1 < hash->elements; i += 2) {
		const redisReply *k = hash->element[i],
		                 *v = hash->element[i + 1];
		struct purge_fleet_node n;
		int live, done;

		if (k->type != REDIS_REPLY_STRING ||
		    v->type != REDIS_REPLY_STRING ||
		    purge_fleet_record_parse(v->str, v->len, &n) != CDN_OK)
			continue;
		live = purge_fleet_live(n.heartbeat_ms, now);
		done = cache_bus_id_cmp(n.applied, want) >= 0;
		json_array_append_new(nodes,
		    json_pack("{s:s#, s:s, s:I, s:I, s:I, s:I, s:b}", "name",
		        k->str, (int)k->len, "applied",
		        cache_bus_id_format(n.applied, ids), "lag_entries",
		        (json_int_t)n.lag_entries, "lag_ms",
		        (json_int_t)n.lag_ms, "heartbeat_ms",
		        (json_int_t)n.heartbeat_ms, "heartbeat_age_ms",
		        (json_int_t)(now > n.heartbeat_ms ? now - n.heartbeat_ms
		                                          : 0),
		        "live", live));
		if (!live)
			json_array_append_new(
			    down, json_stringn(k->str, k->len));
		else if (!done) {
			json_array_append_new(
			    behind, json_stringn(k->str, k->len));
			*all_live_applied = 0;
		}
	}
	return json_pack("{s:o, s:o, s:o}", "nodes", nodes, "not_applied",
	    behind, "down", down);
}

static void
on_confirm(redisAsyncContext *ac, void *r, void *priv)
{
	struct pending *p = priv;
	redisReply *reply = r;
	json_t *f;
	int all;

	(void)ac;
	p->inflight--;
	p->polling = 0;
	if (p->bus->closing)
		return;
	if (p->txn == NULL) {
		if (p->inflight == 0)
			pending_unlink_free(p);
		return;
	}
	if (reply == NULL || reply->type != REDIS_REPLY_ARRAY)
		return; /* the next tick tries again, until the bound */
	f = fleet_json(reply, p->id, &all);
	if (all) {
		json_object_set_new(f, "confirmed", json_true());
		answer_with_ms(p, 200, json_pack("{s:o}", "fleet", f));
	} else if (cdn_now_ms() - p->since_ms >= p->wait_ms) {
		json_object_set_new(f, "confirmed", json_false());
		answer_with_ms(p, 202, json_pack("{s:o}", "fleet", f));
	} else {
		/* Ask again soon: the others record their progress as soon
		 * as they applied it. */
		struct timeval tv = {0, CONFIRM_POLL_MS * 1000};

		json_decref(f);
		evtimer_add(p->bus->confirm, &tv);
	}
}

/* Move <p> on: answer it when it can be, poll the registry if asked. */
static void
pending_check(struct pending *p)
{
	struct purge_bus *b = p->bus;

	if (p->kind != P_PURGE || p->txn == NULL || !p->published)
		return;
	if (p->answer == NULL) {
		if (cdn_now_ms() - p->since_ms >= APPLY_WAIT_MS) {
			char ids[CACHE_BUS_ID_MAX];

			pending_error(p, 504,
			    "published to the purge bus %s as %s, but not yet "
			    "applied here: it will be",
			    b->url_text, cache_bus_id_format(p->id, ids));
		}
		return;
	}
	if (p->wait_ms == 0) {
		answer_with_ms(p, 200, NULL);
		return;
	}
	if (!b->ctl.ready && cdn_now_ms() - p->since_ms >= p->wait_ms) {
		/* Applied here; who else did cannot be known now. */
		answer_with_ms(p, 202,
		    json_pack("{s:{s:b, s:s}}", "fleet", "confirmed", 0,
		        "error", "the node registry is unreachable"));
		return;
	}
	if (!p->polling && b->ctl.ready) {
		const char *argv[] = {"HGETALL", b->nodes_key};

		/* Our own record first, so that it shows this purge. */
		heartbeat(b);
		p->polling = 1;
		p->inflight++;
		redisAsyncCommandArgv(b->ctl.ac, on_confirm, p, 2, argv, NULL);
	}
}

static void
on_xadd(redisAsyncContext *ac, void *r, void *priv)
{
	struct pending *p = priv;
	redisReply *reply = r;

	(void)ac;
	p->inflight--;
	if (p->bus->closing)
		return;
	if (reply == NULL || reply->type != REDIS_REPLY_STRING ||
	    cache_bus_id_parse(reply->str, reply->len, &p->id) != CDN_OK) {
		pending_error(p, 503,
		    "the purge bus %s failed (%s): the purge was not published "
		    "nor applied; try again",
		    p->bus->url_text,
		    reply == NULL ? "connection lost"
		        : reply->type == REDIS_REPLY_ERROR
		        ? reply->str
		        : "an unexpected reply");
	} else {
		p->published = 1;
		p->since_ms = cdn_now_ms();
		atomic_fetch_add(&p->bus->page->published, 1);
		pending_check(p);
	}
	if (p->txn == NULL && p->inflight == 0)
		pending_unlink_free(p);
}

void
purge_bus_publish(struct purge_bus *b, struct http_txn *txn,
    const char *token_id, json_t *body, uint64_t wait_ms, uint64_t start_ns)
{
	struct pending *p;
	unsigned char rnd[16];
	char retention[24], *enc = NULL;
	size_t enclen;
	int rc;

	MAGIC_CHECK(b, PURGE_BUS_MAGIC);
	rc = purge_bus_entry_encode(body, &enc, &enclen);
	json_decref(body);
	if (rc != CDN_OK) {
		purge_send_error(txn, rc == CDN_ELIMIT ? 413 : 503,
		    rc == CDN_ELIMIT ? "too large for one purge bus entry"
		                     : "out of memory");
		return;
	}
	if (!b->ctl.ready) {
		char msg[800];

		free(enc);
		snprintf(msg, sizeof(msg),
		    "the purge bus %s is unreachable: the purge was not "
		    "published nor applied; try again",
		    b->url_text);
		purge_send_error(txn, 503, msg);
		return;
	}
	p = cdn_xcalloc(1, sizeof(*p));
	p->magic = PENDING_MAGIC;
	p->kind = P_PURGE;
	p->bus = b;
	p->txn = txn;
	p->token_id = token_id;
	p->start_ns = start_ns;
	p->wait_ms = wait_ms;
	if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
		/* Unique enough among this node's own purges in flight. */
		uint64_t t = cdn_now_ns();

		memcpy(rnd, &t, sizeof(t));
		memcpy(rnd + 8, &p, sizeof(p) < 8 ? sizeof(p) : 8);
	}
	for (size_t i = 0; i < sizeof(rnd); i++)
		snprintf(p->nonce + 2 * i, 3, "%02x", rnd[i]);
	p->next = b->pendings;
	b->pendings = p;
	http_txn_set_data(txn, p);
	snprintf(retention, sizeof(retention), "%" PRIu64, b->retention);
	{
		const char *argv[] = {"XADD", b->url.stream, "MAXLEN", "~",
		    retention, "*", "v", "1", "node", b->node, "nonce",
		    p->nonce, "purge", enc};
		size_t argl[14];

		for (size_t i = 0; i < 14; i++)
			argl[i] = strlen(argv[i]);
		argl[13] = enclen;
		p->inflight++;
		redisAsyncCommandArgv(b->ctl.ac, on_xadd, p, 14, argv, argl);
	}
	free(enc);
}

int
purge_bus_owns(const void *data)
{
	return data != NULL &&
	    ((const struct pending *)data)->magic == PENDING_MAGIC;
}

void
purge_bus_abandon(void *data)
{
	struct pending *p = data;

	MAGIC_CHECK(p, PENDING_MAGIC);
	p->txn = NULL;
	if (p->inflight == 0)
		pending_unlink_free(p);
}

/* ---- GET /fleet ---- */

static json_t *
own_json(struct purge_bus *b)
{
	static const char *const states[] = {
	    "none", "starting", "catching_up", "current", "disconnected"};
	struct cache_bus_page *pg = b->page;
	uint64_t st = atomic_load(&pg->state);
	json_t *le = json_array();
	char ids[CACHE_BUS_ID_MAX];

	for (unsigned i = 0; i < CACHE_BUS_LATENCY_BUCKETS; i++)
		json_array_append_new(le,
		    json_integer((json_int_t)atomic_load(&pg->latency_le[i])));
	return json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I, "
	                 "s:I, s:I, s:I, s:o, s:I, s:I}",
	    "node", b->node, "bus", b->url_text, "state",
	    st < 5 ? states[st] : "?", "applied",
	    cache_bus_id_format(cache_bus_applied_get(pg), ids),
	    "disconnected_ms", (json_int_t)atomic_load(&pg->disconnected_ms),
	    "lag_entries", (json_int_t)atomic_load(&pg->lag_entries), "lag_ms",
	    (json_int_t)atomic_load(&pg->lag_ms), "published",
	    (json_int_t)atomic_load(&pg->published), "applied_count",
	    (json_int_t)atomic_load(&pg->applied), "gaps",
	    (json_int_t)atomic_load(&pg->gaps), "reconnects",
	    (json_int_t)atomic_load(&pg->reconnects), "malformed",
	    (json_int_t)atomic_load(&pg->malformed), "heartbeat_ms",
	    (json_int_t)atomic_load(&pg->heartbeat_ms), "latency_le", le,
	    "latency_count", (json_int_t)atomic_load(&pg->latency_count),
	    "latency_sum_us", (json_int_t)atomic_load(&pg->latency_sum_us));
}

static void
on_fleet(redisAsyncContext *ac, void *r, void *priv)
{
	struct pending *p = priv;
	redisReply *reply = r;
	int all;
	json_t *f;

	(void)ac;
	p->inflight--;
	if (p->bus->closing)
		return;
	if (p->txn != NULL) {
		if (reply == NULL || reply->type != REDIS_REPLY_ARRAY) {
			pending_answer(p, 503,
			    json_pack("{s:s, s:o}", "error",
			        "the purge bus failed", "self",
			        own_json(p->bus)));
		} else {
			f = fleet_json(reply, p->bus->applied, &all);
			json_object_del(f, "not_applied");
			json_object_set_new(f, "self", own_json(p->bus));
			pending_answer(p, 200, f);
		}
	}
	pending_unlink_free(p);
}

void
purge_bus_fleet(struct purge_bus *b, struct http_txn *txn)
{
	const char *argv[] = {"HGETALL", b->nodes_key};
	struct pending *p;

	MAGIC_CHECK(b, PURGE_BUS_MAGIC);
	if (!b->ctl.ready) {
		purge_send_json(txn, 503,
		    json_pack("{s:s, s:o}", "error",
		        "the purge bus is unreachable", "self", own_json(b)));
		return;
	}
	p = cdn_xcalloc(1, sizeof(*p));
	p->magic = PENDING_MAGIC;
	p->kind = P_FLEET;
	p->bus = b;
	p->txn = txn;
	p->next = b->pendings;
	b->pendings = p;
	http_txn_set_data(txn, p);
	p->inflight++;
	redisAsyncCommandArgv(b->ctl.ac, on_fleet, p, 2, argv, NULL);
}

/* ---- the tick ---- */

static void
pendings_check(struct purge_bus *b)
{
	for (struct pending *p = b->pendings; p != NULL;) {
		struct pending *next = p->next;

		if (p->txn == NULL && p->inflight == 0)
			pending_unlink_free(p);
		else
			pending_check(p);
		p = next;
	}
}

static void
on_confirm_poll(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	pendings_check(arg);
}

static void
on_tick(evutil_socket_t fd, short what, void *arg)
{
	struct purge_bus *b = arg;
	uint64_t now = cdn_now_ms();

	(void)fd;
	(void)what;
	if (now - b->last_heartbeat_ms >= HEARTBEAT_MS) {
		b->last_heartbeat_ms = now;
		heartbeat(b);
	}
	if (b->reading && b->rd.ac != NULL &&
	    now - b->read_sent_ms > READ_WATCHDOG_MS) {
		conn_fail(&b->rd, "XREAD", "no answer: reconnecting");
		redisAsyncDisconnect(b->rd.ac);
	}
	pendings_check(b);
}

/* ---- life ---- */

/* The recorded position, if it is for this stream. */
static int
load_mark(struct purge_bus *b)
{
	char mark[MARK_MAX + 1];
	size_t len = 0, sl = strlen(b->url.stream);
	int rc;

	rc = cache_store_purge_mark(b->store, BUS_MARK, mark, MARK_MAX, &len);
	if (rc == CDN_NOTFOUND)
		return CDN_OK;
	if (rc != CDN_OK)
		return rc;
	if (len > sl + 1 && memcmp(mark, b->url.stream, sl) == 0 &&
	    mark[sl] == ' ' &&
	    cache_bus_id_parse(mark + sl + 1, len - sl - 1, &b->applied) ==
	        CDN_OK) {
		b->have_applied = 1;
		b->pos = b->applied;
	} else {
		CDN_LOG(CDN_LOG_INFO, "bus",
		    "purge bus %s: the recorded position is for another "
		    "stream: starting at the stream's end",
		    b->url_text);
	}
	return CDN_OK;
}

struct purge_bus *
purge_bus_new(struct purge_api *a, const struct conf *c,
    struct event_base *base, const char *password)
{
	struct purge_bus *b;
	struct timeval tv = {0, TICK_MS * 1000};
	const char *why;
	char ids[CACHE_BUS_ID_MAX];

	b = cdn_xcalloc(1, sizeof(*b));
	b->magic = PURGE_BUS_MAGIC;
	if (conf_bus_url_parse(c->purge_bus, &b->url, &why) != CDN_OK) {
		CDN_LOG(CDN_LOG_ERR, "bus", "purge_bus \"%s\": %s",
		    c->purge_bus, why);
		free(b);
		return NULL;
	}
	b->api = a;
	b->store = a->store;
	b->page = cache_store_bus_page(a->store);
	b->base = base;
	b->retention = c->purge_bus_retention;
	snprintf(b->url_text, sizeof(b->url_text), "redis://%s%s%s:%d/%s",
	    b->url.user, b->url.user[0] != '\0' ? "@" : "", b->url.host,
	    b->url.port, b->url.stream);
	snprintf(b->nodes_key, sizeof(b->nodes_key), "%s:nodes", b->url.stream);
	conf_node_name(c, b->node);
	b->password = password != NULL ? cdn_xstrdup(password) : NULL;
	cache_bus_page_init(b->page);
	if (load_mark(b) != CDN_OK) {
		free(b->password);
		free(b);
		return NULL;
	}
	if (b->have_applied)
		cache_bus_applied_set(b->page, b->applied);
	atomic_store(&b->page->heartbeat_ms, wall_ms());
	b->rd = (struct conn){.bus = b,
	    .role = "reader",
	    .backoff_ms = BACKOFF_MIN_MS,
	    .on_ready = reader_ready};
	b->ctl = (struct conn){.bus = b,
	    .role = "control",
	    .backoff_ms = BACKOFF_MIN_MS,
	    .on_ready = ctl_ready};
	b->rd.retry = evtimer_new(base, on_retry, &b->rd);
	b->ctl.retry = evtimer_new(base, on_retry, &b->ctl);
	b->tick = event_new(base, -1, EV_PERSIST, on_tick, b);
	b->confirm = evtimer_new(base, on_confirm_poll, b);
	event_add(b->tick, &tv);
	CDN_LOG(CDN_LOG_INFO, "bus", "purge bus %s as node %s, from %s",
	    b->url_text, b->node,
	    b->have_applied ? cache_bus_id_format(b->applied, ids)
	                    : "the stream's end");
	conn_start(&b->rd);
	conn_start(&b->ctl);
	return b;
}

void
purge_bus_free(struct purge_bus **bp)
{
	struct purge_bus *b = *bp;

	*bp = NULL;
	if (b == NULL)
		return;
	MAGIC_CHECK(b, PURGE_BUS_MAGIC);
	b->closing = 1;
	/* Frees the contexts; their callbacks see <closing>. */
	if (b->rd.ac != NULL) {
		b->rd.ac->data = NULL;
		redisAsyncFree(b->rd.ac);
	}
	if (b->ctl.ac != NULL) {
		b->ctl.ac->data = NULL;
		redisAsyncFree(b->ctl.ac);
	}
	while (b->pendings != NULL) {
		if (b->pendings->txn != NULL)
			http_txn_set_data(b->pendings->txn, NULL);
		pending_unlink_free(b->pendings);
	}
	event_free(b->rd.retry);
	event_free(b->ctl.retry);
	event_free(b->tick);
	event_free(b->confirm);
	set_state(b, CACHE_BUS_DISCONNECTED);
	if (b->password != NULL) {
		explicit_bzero(b->password, strlen(b->password));
		free(b->password);
	}
	MAGIC_WIPE(b);
	free(b);
}
