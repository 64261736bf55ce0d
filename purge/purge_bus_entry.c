/*
 * Purge bus entries (purge/purge_bus.h): what a node appends to the
 * stream and every node reads back.  Pure: no I/O.  Entries come from a
 * shared Redis that anything with its password may write to, so the
 * decoder trusts nothing: sizes are bounded before JSON is parsed, and
 * the shape is checked here; the items themselves (URLs, tags) are
 * checked by purge_json_items() as a POST /purge body's are.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http/http_parse.h"
#include "purge/purge_bus.h"

static int
field_is(const char *f, size_t len, const char *name)
{
	return len == strlen(name) && memcmp(f, name, len) == 0;
}

/* The members a purge may have, each of the type it must be. */
static const char *
shape_check(const json_t *p)
{
	const char *name;
	json_t *v, *e;
	size_t i;

	if (!json_is_object(p))
		return "purge: not a JSON object";
	json_object_foreach((json_t *)(uintptr_t)p, name, v)
	{
		if (strcmp(name, "soft") == 0) {
			if (!json_is_boolean(v))
				return "purge: soft is not a boolean";
			continue;
		}
		if (strcmp(name, "urls") != 0 && strcmp(name, "tags") != 0 &&
		    strcmp(name, "prefixes") != 0)
			return "purge: unknown member";
		if (!json_is_array(v))
			return "purge: urls, tags and prefixes are arrays";
		json_array_foreach(v, i, e)
		{
			if (!json_is_string(e))
				return "purge: items are strings";
		}
	}
	return NULL;
}

static int
decode(const char *const *f, const size_t *flen, size_t nf,
    struct purge_bus_entry *e, const char **why)
{
	const char *purge = NULL;
	size_t purge_len = 0, total = 0;
	int have_v = 0;
	json_error_t err;

	memset(e, 0, sizeof(*e));
	if (nf % 2 != 0) {
		*why = "an odd number of fields";
		return CDN_EINVAL;
	}
	for (size_t i = 0; i < nf; i += 2) {
		const char *n = f[i], *v = f[i + 1];
		size_t nl = flen[i], vl = flen[i + 1];

		total += nl + vl;
		if (total > PURGE_BUS_ENTRY_MAX) {
			*why = "larger than 1 MiB";
			return CDN_EINVAL;
		}
		if (field_is(n, nl, "v")) {
			if (!field_is(v, vl, "1")) {
				*why = "an unknown version";
				return CDN_EINVAL;
			}
			have_v = 1;
		} else if (field_is(n, nl, "node")) {
			if (vl == 0 || vl >= sizeof(e->node)) {
				*why = "a bad node name";
				return CDN_EINVAL;
			}
			for (size_t k = 0; k < vl; k++)
				if (!http_is_tchar((unsigned char)v[k])) {
					*why = "a bad node name";
					return CDN_EINVAL;
				}
			memcpy(e->node, v, vl);
			e->node[vl] = '\0';
		} else if (field_is(n, nl, "nonce")) {
			if (vl == 0 || vl >= sizeof(e->nonce)) {
				*why = "a bad nonce";
				return CDN_EINVAL;
			}
			for (size_t k = 0; k < vl; k++)
				if (strchr("0123456789abcdef", v[k]) == NULL ||
				    v[k] == '\0') {
					*why = "a bad nonce";
					return CDN_EINVAL;
				}
			memcpy(e->nonce, v, vl);
			e->nonce[vl] = '\0';
		} else if (field_is(n, nl, "purge")) {
			purge = v;
			purge_len = vl;
		}
	}
	if (!have_v || e->node[0] == '\0' || purge == NULL) {
		*why = "v, node or purge missing";
		memset(e, 0, sizeof(*e));
		return CDN_EINVAL;
	}
	e->purge = json_loadb(purge, purge_len, JSON_REJECT_DUPLICATES, &err);
	if (e->purge == NULL) {
		*why = "purge: not JSON";
		memset(e, 0, sizeof(*e));
		return CDN_EINVAL;
	}
	*why = shape_check(e->purge);
	if (*why != NULL) {
		purge_bus_entry_clear(e);
		return CDN_EINVAL;
	}
	return CDN_OK;
}

int
purge_bus_entry_decode(const char *const *f, const size_t *flen, size_t nf,
    struct purge_bus_entry *e, const char **why)
{
	int rc = decode(f, flen, nf, e, why);

	/* decode() frees what it parsed before a refusal; the fields it
	 * copied before the bad one go here. */
	if (rc != CDN_OK)
		memset(e, 0, sizeof(*e));
	return rc;
}

void
purge_bus_entry_clear(struct purge_bus_entry *e)
{
	json_decref(e->purge);
	memset(e, 0, sizeof(*e));
}

int
purge_bus_entry_encode(const json_t *purge, char **out, size_t *len)
{
	static const char *const keep[] = {"urls", "tags", "prefixes", "soft"};
	json_t *p = json_object(), *v;
	char *s;

	if (p == NULL)
		return CDN_ENOMEM;
	for (size_t i = 0; i < sizeof(keep) / sizeof(keep[0]); i++) {
		v = json_object_get(purge, keep[i]);
		if (v != NULL && json_object_set(p, keep[i], v) != 0) {
			json_decref(p);
			return CDN_ENOMEM;
		}
	}
	s = json_dumps(p, JSON_COMPACT);
	json_decref(p);
	if (s == NULL)
		return CDN_ENOMEM;
	/* The other fields are a few dozen bytes: keep room for them. */
	if (strlen(s) + 256 > PURGE_BUS_ENTRY_MAX) {
		free(s);
		return CDN_ELIMIT;
	}
	*out = s;
	*len = strlen(s);
	return CDN_OK;
}
