/*
 * edgectl purge --bus: publish a purge straight to the purge bus (a Redis
 * stream, docs/fleet.md) without going through a node, and optionally
 * wait until every live node applied it.  Synchronous hiredis: edgectl
 * is a command, not an event loop.
 */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include <hiredis/hiredis.h>

#include "purge/edgectl.h"
#include "purge/purge_bus.h"

#define CONNECT_TIMEOUT_MS 5000
#define POLL_MS            100

static uint64_t
wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* A connected, authenticated context, or NULL after saying why. */
static redisContext *
bus_connect(
    const struct conf_bus_url *u, const char *url, const char *password_file)
{
	struct timeval tv = {CONNECT_TIMEOUT_MS / 1000, 0};
	redisContext *rc;
	redisReply *r;
	char *pw = NULL;

	if (password_file != NULL) {
		pw = conf_bus_password_load(password_file, "edgectl");
		if (pw == NULL)
			return NULL;
	}
	rc = redisConnectWithTimeout(u->host, u->port, tv);
	if (rc == NULL || rc->err) {
		fprintf(stderr, "edgectl: purge bus %s: cannot connect: %s\n",
		    url, rc != NULL ? rc->errstr : "out of memory");
		goto fail;
	}
	redisSetTimeout(rc, tv);
	if (pw != NULL) {
		r = u->user[0] != '\0'
		    ? redisCommand(rc, "AUTH %s %s", u->user, pw)
		    : redisCommand(rc, "AUTH %s", pw);
		if (r == NULL || r->type == REDIS_REPLY_ERROR) {
			/* Redis's words name no secret. */
			fprintf(stderr,
			    "edgectl: purge bus %s: authentication failed: "
			    "%s\n",
			    url, r != NULL ? r->str : rc->errstr);
			freeReplyObject(r);
			goto fail;
		}
		freeReplyObject(r);
		explicit_bzero(pw, strlen(pw));
		free(pw);
	}
	return rc;
fail:
	if (pw != NULL) {
		explicit_bzero(pw, strlen(pw));
		free(pw);
	}
	if (rc != NULL)
		redisFree(rc);
	return NULL;
}

/* Poll "<stream>:nodes" until every live node applied <id> or <wait_ms>
 * passed; print who had not and who is down.  0 when confirmed. */
static int
bus_wait(redisContext *rc, const struct conf_bus_url *u, struct cache_bus_id id,
    uint64_t wait_ms, int json_out)
{
	struct timespec pause = {0, POLL_MS * 1000000L};
	uint64_t until = wall_ms() + wait_ms;
	char key[CONF_BUS_STREAM_MAX + 8];
	json_t *behind = NULL, *down = NULL;
	int confirmed = 0;

	snprintf(key, sizeof(key), "%s:nodes", u->stream);
	for (;;) {
		redisReply *r = redisCommand(rc, "HGETALL %s", key);
		uint64_t now = wall_ms();

		json_decref(behind);
		json_decref(down);
		behind = json_array();
		down = json_array();
		if (r == NULL) {
			fprintf(stderr, "edgectl: purge bus: %s\n", rc->errstr);
			break;
		}
		for (size_t i = 0;
		     r->type == REDIS_REPLY_ARRAY && i + 1 < r->elements;
		     i += 2) {
			struct purge_fleet_node n;
			const redisReply *k = r->element[i],
			                 *v = r->element[i + 1];

			if (k->type != REDIS_REPLY_STRING ||
			    v->type != REDIS_REPLY_STRING ||
			    purge_fleet_record_parse(v->str, v->len, &n) !=
			        CDN_OK)
				continue;
			if (!purge_fleet_live(n.heartbeat_ms, now))
				json_array_append_new(
				    down, json_stringn(k->str, k->len));
			else if (cache_bus_id_cmp(n.applied, id) < 0)
				json_array_append_new(
				    behind, json_stringn(k->str, k->len));
		}
		freeReplyObject(r);
		if (json_array_size(behind) == 0) {
			confirmed = 1;
			break;
		}
		if (now >= until)
			break;
		nanosleep(&pause, NULL);
	}
	if (json_out) {
		json_t *j = json_pack("{s:b, s:o, s:o}", "confirmed", confirmed,
		    "not_applied", behind != NULL ? behind : json_array(),
		    "down", down != NULL ? down : json_array());

		edgectl_print_json(j);
		json_decref(j);
	} else {
		edgectl_print_fleet(confirmed, behind, down);
		json_decref(behind);
		json_decref(down);
	}
	return confirmed ? 0 : 1;
}

int
edgectl_bus_purge(const char *url, const char *password_file, json_t *purge,
    uint64_t wait_ms, int json_out)
{
	struct conf_bus_url u;
	struct cache_bus_id id;
	unsigned char rnd[16];
	char nonce[PURGE_BUS_NONCE_MAX], retention[24], *enc = NULL;
	const char *why;
	redisContext *rc;
	redisReply *r;
	size_t enclen;
	int ret = 1;

	if (conf_bus_url_parse(url, &u, &why) != CDN_OK) {
		fprintf(stderr, "edgectl: --bus %s: %s\n", url, why);
		return 2;
	}
	if (purge_bus_entry_encode(purge, &enc, &enclen) != CDN_OK) {
		fprintf(stderr,
		    "edgectl: the purge is too large for one "
		    "entry\n");
		return 2;
	}
	rc = bus_connect(&u, url, password_file);
	if (rc == NULL) {
		free(enc);
		return 1;
	}
	if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
		memset(rnd, 0, sizeof(rnd)); /* no answer waits on it here */
	for (size_t i = 0; i < sizeof(rnd); i++)
		snprintf(nonce + 2 * i, 3, "%02x", rnd[i]);
	/* The stream's retention is each node's to keep; a publisher
	 * without a configuration keeps the default's. */
	snprintf(retention, sizeof(retention), "%d", 1000000);
	r = redisCommand(rc,
	    "XADD %s MAXLEN ~ %s * v 1 node edgectl nonce %s purge %b",
	    u.stream, retention, nonce, enc, enclen);
	free(enc);
	if (r == NULL || r->type != REDIS_REPLY_STRING ||
	    cache_bus_id_parse(r->str, r->len, &id) != CDN_OK) {
		fprintf(stderr, "edgectl: purge bus %s: not published: %s\n",
		    url,
		    r == NULL                          ? rc->errstr
		        : r->type == REDIS_REPLY_ERROR ? r->str
		                                       : "an unexpected reply");
		freeReplyObject(r);
		redisFree(rc);
		return 1;
	}
	if (!json_out || wait_ms == 0) {
		if (json_out)
			printf("{\"bus_id\": \"%.*s\"}\n", (int)r->len, r->str);
		else
			printf(
			    "published %.*s to %s\n", (int)r->len, r->str, url);
	}
	freeReplyObject(r);
	ret = wait_ms > 0 ? bus_wait(rc, &u, id, wait_ms, json_out) : 0;
	redisFree(rc);
	return ret;
}
