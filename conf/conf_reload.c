/*
 * What a reload may not change (conf/conf.h: conf_restart_changed): the
 * CONF_RESTART_KEY rows of conf_keys.h, compared value by value.  No state.
 */
#include "config.h"

#include <string.h>

#include "conf/conf_int.h"

static int
str_eq(const char *a, const char *b)
{
	return strcmp(a, b) == 0;
}

static int
list_eq(const struct conf_strlist *a, const struct conf_strlist *b)
{
	if (a->n != b->n)
		return 0;
	for (unsigned i = 0; i < a->n; i++)
		if (!str_eq(a->v[i], b->v[i]))
			return 0;
	return 1;
}

static int
value_eq(const struct conf_desc *d, const struct conf *a, const struct conf *b)
{
	const void *fa = conf_cfield(a, d), *fb = conf_cfield(b, d);

	switch (d->type) {
	case CONF_T_STR:
	case CONF_T_ADDR:
	case CONF_T_URL:
		return str_eq(*(char *const *)fa, *(char *const *)fb);
	case CONF_T_STRLIST:
	case CONF_T_ADDRLIST:
	case CONF_T_SNICERT:
	case CONF_T_ORIGINSRV:
	case CONF_T_TOKENS:
		return list_eq(fa, fb);
	case CONF_T_SIZE:
	case CONF_T_DURATION:
		return *(const uint64_t *)fa == *(const uint64_t *)fb;
	case CONF_T_UINT:
		return *(const unsigned *)fa == *(const unsigned *)fb;
	case CONF_T_LOGLEVEL:
		return *(const enum cdn_log_level *)fa ==
		    *(const enum cdn_log_level *)fb;
	}
	return 0;
}

unsigned
conf_restart_changed(const struct conf *old, const struct conf *nw,
    const char **names, unsigned cap)
{
	unsigned n = 0;

	MAGIC_CHECK(old, CONF_MAGIC);
	MAGIC_CHECK(nw, CONF_MAGIC);
	for (size_t i = 0; i < CONF_NKEYS; i++) {
		const struct conf_desc *d = &conf_descs[i];

		if (!d->restart || value_eq(d, old, nw))
			continue;
		if (n < cap)
			names[n] = d->name;
		n++;
	}
	return n;
}

int
conf_key_is_restart(const char *name)
{
	for (size_t i = 0; i < CONF_NKEYS; i++)
		if (strcmp(conf_descs[i].name, name) == 0)
			return conf_descs[i].restart;
	return -1;
}
