/*
 * Connection-specific fields (http/http_fields.h).
 */
#include "config.h"

#include <string.h>
#include <strings.h>

#include "common/cdn.h"
#include "http/http_fields.h"

int
http_field_is_hop_by_hop(const char *name, size_t len)
{
#define HOP(s)                                                                 \
	{                                                                      \
		s, sizeof(s) - 1                                               \
	}
	static const struct {
		const char *name;
		size_t len;
	} hop[] = {HOP("connection"), HOP("keep-alive"), HOP("te"),
	    HOP("trailer"), HOP("transfer-encoding"), HOP("upgrade"),
	    HOP("proxy-connection"), HOP("proxy-authorization"),
	    HOP("proxy-authenticate")};
#undef HOP

	/* Every field of every response passes here: lengths first. */
	for (size_t i = 0; i < CDN_ARRAY_LEN(hop); i++)
		if (hop[i].len == len &&
		    strncasecmp(name, hop[i].name, len) == 0)
			return 1;
	return 0;
}

void
http_conn_tokens_add(struct http_conn_tokens *ct, const char *v, size_t len)
{
	size_t i = 0, start, end;

	while (i < len && ct->n < HTTP_CONN_TOKENS_MAX) {
		while (i < len && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
			i++;
		start = i;
		while (i < len && v[i] != ',')
			i++;
		end = i;
		while (end > start && (v[end - 1] == ' ' || v[end - 1] == '\t'))
			end--;
		if (end > start) {
			ct->t[ct->n].p = v + start;
			ct->t[ct->n].len = end - start;
			ct->n++;
		}
	}
}

int
http_conn_tokens_has(
    const struct http_conn_tokens *ct, const char *name, size_t len)
{
	for (unsigned i = 0; i < ct->n; i++)
		if (ct->t[i].len == len &&
		    strncasecmp(ct->t[i].p, name, len) == 0)
			return 1;
	return 0;
}
