/*
 * Active health checks of the origin pools (origin.h): one probe per
 * server of every pool with health_check_path, a GET on the main thread's
 * event_base every interval, whose verdicts (rise successes or fall
 * failures in a row) take a server in or out (origin_pool_hc_verdict).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cdn_log.h"
#include "origin/origin_int.h"

struct hc_probe {
	struct origin_health *h;
	struct origin_pool *p;
	unsigned i;
	struct event *timer;
	struct origin_fetch *f;
	int status;
	unsigned rise, fall; /* successes / failures in a row */
	char *url;
	char *host_field; /* "Host: ..." or NULL */
};

struct origin_health {
	uint32_t magic;
#define ORIGIN_HEALTH_MAGIC 0x2e6c91b4u
	struct event_base *base;
	struct origin_multi *m;
	struct hc_probe *probes;
	unsigned nprobes;
};

static void
hc_arm(struct hc_probe *pr, uint64_t ms)
{
	struct timeval tv;

	tv.tv_sec = (time_t)(ms / 1000);
	tv.tv_usec = (suseconds_t)((ms % 1000) * 1000);
	evtimer_add(pr->timer, &tv);
}

static void
hc_on_head(struct origin_fetch *f, void *arg, int status, const char *fields,
    size_t len, int64_t content_length)
{
	struct hc_probe *pr = arg;

	(void)f;
	(void)fields;
	(void)len;
	(void)content_length;
	pr->status = status;
}

static size_t
hc_on_body(struct origin_fetch *f, void *arg, const char *data, size_t len)
{
	(void)f;
	(void)arg;
	(void)data;
	return len; /* the body says nothing we check */
}

static size_t
hc_on_upload(struct origin_fetch *f, void *arg, char *buf, size_t max)
{
	(void)f;
	(void)arg;
	(void)buf;
	(void)max;
	return 0;
}

static void
hc_on_done(struct origin_fetch *f, void *arg, enum origin_err e)
{
	struct hc_probe *pr = arg;
	const struct origin_pool_hc *hc = origin_pool_hc(pr->p);
	const char *name = origin_pool_name(pr->p);
	int ok;

	(void)f;
	pr->f = NULL;
	if (hc->status != 0)
		ok = e == ORIGIN_OK && pr->status == hc->status;
	else
		ok = e == ORIGIN_OK && pr->status >= 200 && pr->status < 400;
	if (ok) {
		pr->fall = 0;
		pr->rise++;
		if (pr->rise >= hc->rise &&
		    origin_pool_hc_verdict(pr->p, pr->i, 1))
			CDN_LOG(CDN_LOG_WARN, "origin",
			    "pool %s: %s is healthy again", name,
			    origin_pool_server_url(pr->p, pr->i));
	} else {
		pr->rise = 0;
		pr->fall++;
		if (pr->fall >= hc->fall &&
		    origin_pool_hc_verdict(pr->p, pr->i, 0))
			CDN_LOG(CDN_LOG_WARN, "origin",
			    "pool %s: %s failed its health check (%s, status "
			    "%d): out",
			    name, origin_pool_server_url(pr->p, pr->i),
			    origin_err_name(e), pr->status);
	}
	hc_arm(pr, hc->interval_ms);
}

static const struct origin_fetch_ops hc_ops = {
    .on_head = hc_on_head,
    .on_body = hc_on_body,
    .on_upload = hc_on_upload,
    .on_done = hc_on_done,
};

static void
hc_on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct hc_probe *pr = arg;
	struct origin_timeouts to;
	struct origin_request req;

	(void)fd;
	(void)what;
	MAGIC_CHECK(pr->h, ORIGIN_HEALTH_MAGIC);
	memset(&req, 0, sizeof(req));
	req.method = "GET";
	req.url = pr->url;
	if (pr->host_field != NULL) {
		req.fields = pr->host_field;
		req.fields_len = strlen(pr->host_field) + 1;
	}
	req.connect_to = origin_pool_connect_to(pr->p, pr->i);
	to.connect_ms = origin_pool_hc(pr->p)->timeout_ms;
	to.first_byte_ms = to.connect_ms;
	to.idle_ms = to.connect_ms;
	to.total_ms = to.connect_ms;
	pr->status = -1;
	pr->f = origin_fetch_start(pr->h->m, &req, &to, &hc_ops, pr);
	if (pr->f == NULL)
		hc_arm(pr, origin_pool_hc(pr->p)->interval_ms); /* logged */
}

struct origin_health *
origin_health_new(struct event_base *base, struct origin_pool *const *pools,
    unsigned npools, const struct origin_tls_conf *tls)
{
	struct origin_health *h = cdn_xcalloc(1, sizeof(*h));
	struct hc_probe *pr;
	unsigned n = 0;
	size_t len;

	h->magic = ORIGIN_HEALTH_MAGIC;
	h->base = base;
	h->m = origin_multi_new(base);
	if (tls != NULL)
		origin_multi_set_tls(h->m, tls);
	for (unsigned k = 0; k < npools; k++)
		if (origin_pool_has_checks(pools[k]))
			n += origin_pool_nservers(pools[k]);
	h->probes = cdn_xcalloc(n > 0 ? n : 1, sizeof(*h->probes));
	for (unsigned k = 0; k < npools; k++) {
		struct origin_pool *p = pools[k];
		const struct origin_pool_hc *hc = origin_pool_hc(p);

		if (!origin_pool_has_checks(p))
			continue;
		for (unsigned i = 0; i < origin_pool_nservers(p); i++) {
			const char *srv_base = origin_pool_server_base(p, i);

			pr = &h->probes[h->nprobes++];
			pr->h = h;
			pr->p = p;
			pr->i = i;
			len = strlen(srv_base) + strlen(hc->path) + 2;
			pr->url = cdn_xmalloc(len);
			snprintf(pr->url, len, "%s%s%s", srv_base,
			    hc->path[0] == '/' ? "" : "/", hc->path);
			if (hc->host[0] != '\0') {
				len = strlen(hc->host) + 7;
				pr->host_field = cdn_xmalloc(len);
				snprintf(
				    pr->host_field, len, "Host: %s", hc->host);
			}
			pr->timer = evtimer_new(base, hc_on_timer, pr);
			/* The first round at once: a server that is down at
			 * start-up should not get traffic for an interval. */
			hc_arm(pr, 0);
		}
	}
	return h;
}

void
origin_health_free(struct origin_health **hp)
{
	struct origin_health *h = *hp;

	*hp = NULL;
	if (h == NULL)
		return;
	MAGIC_CHECK(h, ORIGIN_HEALTH_MAGIC);
	for (unsigned i = 0; i < h->nprobes; i++) {
		origin_fetch_cancel(&h->probes[i].f);
		event_free(h->probes[i].timer);
		free(h->probes[i].url);
		free(h->probes[i].host_field);
	}
	free(h->probes);
	origin_multi_free(&h->m);
	MAGIC_WIPE(h);
	free(h);
}
