/*
 * libFuzzer target for the CDN-Loop scanner (http/http_cdn_loop.c, RFC
 * 8586), the check every request forwarded by edged depends on to stop a
 * loop between nodes.
 *
 * The input is cut at the first 0xff byte into [0] a CDN-Loop value and
 * [1] a cdn-id (when it is empty or not a token, "edge-a").  Beyond the
 * sanitizers' checks (the value is copied into a buffer of its exact
 * length, so a read past its end is caught) it asserts:
 *   - a match is never made from nothing: the value holds the id, in any
 *     case;
 *   - whatever the value, the id appended after a comma is found, as a
 *     node appending its own member to a client's junk must be found
 *     again when the request comes back;
 *   - a value made only of other, well-formed members does not match.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/cdn.h"
#include "http/http_cdn_loop.h"
#include "http/http_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int
contains_ci(const char *v, size_t len, const char *id)
{
	size_t n = strlen(id);

	for (size_t i = 0; i + n <= len; i++)
		if (strncasecmp(v + i, id, n) == 0)
			return 1;
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *cut = memchr(data, 0xff, size);
	size_t vlen = cut != NULL ? (size_t)(cut - data) : size;
	char id[64] = "edge-a", *v, *w;
	size_t idlen = 0, wlen;
	int is_token = 1;

	if (cut != NULL) {
		idlen = size - vlen - 1;
		for (size_t i = 0; i < idlen; i++)
			if (!http_is_tchar(cut[1 + i]))
				is_token = 0;
		if (is_token && idlen > 0 && idlen < sizeof(id)) {
			memcpy(id, cut + 1, idlen);
			id[idlen] = '\0';
		}
	}
	v = malloc(vlen > 0 ? vlen : 1);
	CDN_ASSERT(v != NULL);
	memcpy(v, data, vlen);
	if (http_cdn_loop_names(v, vlen, id))
		CDN_ASSERT(contains_ci(v, vlen, id));

	wlen = vlen + 1 + strlen(id);
	w = malloc(wlen);
	CDN_ASSERT(w != NULL);
	memcpy(w, v, vlen);
	w[vlen] = ',';
	memcpy(w + vlen + 1, id, strlen(id));
	CDN_ASSERT(http_cdn_loop_names(w, wlen, id));
	free(w);

	/* The id with a suffix is another member: "edge-a2" is not us. */
	wlen = 2 * strlen(id) + 6;
	w = malloc(wlen);
	CDN_ASSERT(w != NULL);
	memcpy(w, id, strlen(id));
	memcpy(w + strlen(id), "x; a=b", 6);
	memcpy(w + strlen(id) + 6, id, strlen(id));
	CDN_ASSERT(!http_cdn_loop_names(w, strlen(id) + 6, id));
	free(w);
	free(v);
	return 0;
}
