/*
 * libFuzzer target for the purge bus's entry decoder
 * (purge/purge_bus_entry.c): what every node reads from a shared Redis
 * stream that anything holding its password may write to.
 *
 * The input is the entry's fields, separated by NUL bytes (name, value,
 * name, value...).  Beyond the sanitizers' checks it asserts:
 *   - a decoded entry has a node name that is a token, a nonce of hex
 *     digits, and a purge that is a JSON object;
 *   - a refused one has a reason and leaves the entry empty;
 *   - what is decoded encodes again, and that decodes to the same node
 *     and the same purge.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http/http_parse.h"
#include "purge/purge_bus.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FZ_FIELDS 64

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *f[FZ_FIELDS], *why = NULL, *p = (const char *)data;
	const char *end = p + size;
	size_t fl[FZ_FIELDS], nf = 0;
	struct purge_bus_entry e, e2;
	char *enc;
	size_t enclen;

	while (p <= end && nf < FZ_FIELDS) {
		const char *z = memchr(p, '\0', (size_t)(end - p));

		if (z == NULL)
			z = end;
		f[nf] = p;
		fl[nf++] = (size_t)(z - p);
		p = z + 1;
	}
	if (purge_bus_entry_decode(f, fl, nf, &e, &why) != CDN_OK) {
		if (why == NULL || e.purge != NULL || e.node[0] != '\0')
			abort();
		return 0;
	}
	if (e.node[0] == '\0' || !json_is_object(e.purge))
		abort();
	for (const char *c = e.node; *c != '\0'; c++)
		if (!http_is_tchar((unsigned char)*c))
			abort();
	if (strspn(e.nonce, "0123456789abcdef") != strlen(e.nonce))
		abort();
	if (purge_bus_entry_encode(e.purge, &enc, &enclen) == CDN_OK) {
		const char *g[] = {"v", "1", "node", e.node, "purge", enc};
		size_t gl[] = {1, 1, 4, strlen(e.node), 5, enclen};

		if (purge_bus_entry_decode(g, gl, 6, &e2, &why) != CDN_OK ||
		    strcmp(e2.node, e.node) != 0 ||
		    !json_equal(e2.purge, e.purge))
			abort();
		purge_bus_entry_clear(&e2);
		free(enc);
	}
	purge_bus_entry_clear(&e);
	return 0;
}
