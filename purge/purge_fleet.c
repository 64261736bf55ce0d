/*
 * The node registry's records (purge/purge_bus.h): what each node writes
 * about itself to "<stream>:nodes" every second, and who counts as live.
 * Pure: no I/O.
 */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "purge/purge_bus.h"

void
purge_fleet_record_format(
    const struct purge_fleet_node *n, char out[PURGE_FLEET_RECORD_MAX])
{
	char id[CACHE_BUS_ID_MAX];

	snprintf(out, PURGE_FLEET_RECORD_MAX,
	    "v1 %s %" PRIu64 " %" PRIu64 " %" PRIu64,
	    cache_bus_id_format(n->applied, id), n->lag_entries, n->lag_ms,
	    n->heartbeat_ms);
}

/* The next blank-separated word of s[*pos..len). */
static int
word(const char *s, size_t len, size_t *pos, const char **w, size_t *wl)
{
	size_t i = *pos;

	if (i >= len)
		return 0;
	*w = s + i;
	while (i < len && s[i] != ' ')
		i++;
	*wl = (size_t)(s + i - *w);
	*pos = i < len ? i + 1 : i;
	return *wl > 0;
}

static int
u64(const char *s, size_t len, uint64_t *out)
{
	struct cache_bus_id id;

	/* A plain number is an ID without "-seq". */
	if (memchr(s, '-', len) != NULL ||
	    cache_bus_id_parse(s, len, &id) != CDN_OK)
		return CDN_EINVAL;
	*out = id.ms;
	return CDN_OK;
}

int
purge_fleet_record_parse(const char *s, size_t len, struct purge_fleet_node *n)
{
	struct purge_fleet_node r;
	const char *w;
	size_t wl, pos = 0;

	memset(&r, 0, sizeof(r));
	if (!word(s, len, &pos, &w, &wl) || wl != 2 || memcmp(w, "v1", 2) != 0)
		return CDN_EINVAL;
	if (!word(s, len, &pos, &w, &wl) ||
	    cache_bus_id_parse(w, wl, &r.applied) != CDN_OK)
		return CDN_EINVAL;
	if (!word(s, len, &pos, &w, &wl) || u64(w, wl, &r.lag_entries) != 0)
		return CDN_EINVAL;
	if (!word(s, len, &pos, &w, &wl) || u64(w, wl, &r.lag_ms) != 0)
		return CDN_EINVAL;
	if (!word(s, len, &pos, &w, &wl) || u64(w, wl, &r.heartbeat_ms) != 0)
		return CDN_EINVAL;
	if (pos != len)
		return CDN_EINVAL;
	*n = r;
	return CDN_OK;
}

int
purge_fleet_live(uint64_t heartbeat_ms, uint64_t now_ms)
{
	/* A clock ahead of ours is live: clocks of a fleet differ a little. */
	return heartbeat_ms + PURGE_FLEET_LIVE_MS >= now_ms;
}
