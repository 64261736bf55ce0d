/*
 * Values written back in config-file syntax (conf/conf_int.h): the inverse
 * of conf_parse.c for sizes and durations, in the largest unit that divides
 * the value exactly, so that --dump-config and the "must be between" errors
 * read as a user would have written them.  No state.
 */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>

#include "conf/conf_int.h"

void
conf_format_size(char *buf, size_t len, uint64_t v)
{
	static const char units[] = "KMGT";
	int u = -1;

	while (v != 0 && u < 3 && v % 1024 == 0) {
		v /= 1024;
		u++;
	}
	if (u < 0)
		snprintf(buf, len, "%" PRIu64, v);
	else
		snprintf(buf, len, "%" PRIu64 "%c", v, units[u]);
}

/* <ms> in the largest unit that divides it exactly: "30s", "1500ms", "0". */
static void
format_duration(char *buf, size_t len, uint64_t ms)
{
	if (ms == 0) {
		snprintf(buf, len, "0");
		return;
	}
	for (size_t i = 0; i < CDN_ARRAY_LEN(conf_parse_dur_units); i++) {
		if (ms % conf_parse_dur_units[i].ms == 0) {
			snprintf(buf, len, "%" PRIu64 "%s",
			    ms / conf_parse_dur_units[i].ms,
			    conf_parse_dur_units[i].name);
			return;
		}
	}
	CDN_ASSERT(0); /* "ms" divides everything */
}

void
conf_format_number(const struct conf_desc *d, char *buf, size_t len, uint64_t v)
{
	if (d->type == CONF_T_SIZE)
		conf_format_size(buf, len, v);
	else if (d->type == CONF_T_DURATION)
		format_duration(buf, len, v);
	else
		snprintf(buf, len, "%" PRIu64, v);
}
