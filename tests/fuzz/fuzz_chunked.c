/*
 * libFuzzer target for the chunked body decoder on its own, through its
 * public API (http_chunked_init / http_chunked_step, http/http_parse.h):
 * fuzz_http_parse.c decodes the same bytes it parses as a head, this one
 * spends every run on the decoder, with limits drawn from the input.
 *
 * Input: [0] max_line (1..256), [1] max_trailer (0..1023, with [2]), then
 * the body.  The body is decoded whole, one byte at a time, and in pieces
 * whose sizes come from the body itself.  Beyond the sanitizers' checks it
 * asserts what callers rely on, whatever the decoder accepts:
 *   - a step never claims more than it was given, and hands data back
 *     only from what it was given;
 *   - a step that makes no progress asks for more (CDN_AGAIN), never
 *     spins: the caller's loop ends;
 *   - a refusal says why;
 *   - the outcome (complete, refused, or still waiting), the data bytes
 *     and, once complete, where the body ended do not depend on how the
 *     bytes were split.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/cdn.h"
#include "http/http_parse.h"

#define FZ_HDR 3

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum fz_end { FZ_DONE, FZ_BAD, FZ_WAITING };

struct fz_out {
	enum fz_end end;
	size_t used; /* bytes consumed when done */
	size_t ndata;
	unsigned char *data;
};

/*
 * Decode body[0..len) arriving in pieces: all at once when <nsizes> is 0,
 * else of sizes[i] % 9 + 1 bytes in turn.
 */
static void
fz_decode(const unsigned char *body, size_t len, size_t max_line,
    size_t max_trailer, const unsigned char *sizes, size_t nsizes,
    struct fz_out *o)
{
	struct http_chunked c;
	size_t start = 0, avail = 0, framing, data, si = 0, piece;
	const char *why;
	int rc;

	http_chunked_init(&c, max_line, max_trailer);
	o->ndata = 0;
	o->used = 0;
	for (;;) {
		if (avail < len) {
			/* the next piece arrives */
			piece =
			    nsizes == 0 ? len : sizes[si++ % nsizes] % 9u + 1;
			avail = len - avail < piece ? len : avail + piece;
		}
		for (;;) {
			framing = data = 0;
			why = NULL;
			rc = http_chunked_step(&c, (const char *)body + start,
			    avail - start, &framing, &data, &why);
			CDN_ASSERT(rc == CDN_OK || rc == CDN_AGAIN ||
			    rc == CDN_EINVAL);
			if (rc == CDN_EINVAL) {
				CDN_ASSERT(why != NULL);
				o->end = FZ_BAD;
				return;
			}
			CDN_ASSERT(framing + data <= avail - start);
			memcpy(
			    o->data + o->ndata, body + start + framing, data);
			o->ndata += data;
			start += framing + data;
			if (rc == CDN_OK) {
				CDN_ASSERT(data == 0);
				o->end = FZ_DONE;
				o->used = start;
				return;
			}
			if (framing + data == 0)
				break; /* needs more input */
		}
		if (avail == len) {
			o->end = FZ_WAITING;
			return;
		}
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const unsigned char one = 0; /* pieces of 1 byte */
	struct fz_out whole, bytes, split;
	const unsigned char *body;
	size_t len, max_line, max_trailer;

	if (size < FZ_HDR)
		return 0;
	max_line = (size_t)data[0] % 256 + 1;
	max_trailer = ((size_t)data[1] << 8 | data[2]) % 1024;
	body = data + FZ_HDR;
	len = size - FZ_HDR;
	whole.data = malloc(len + 1);
	bytes.data = malloc(len + 1);
	split.data = malloc(len + 1);
	if (whole.data == NULL || bytes.data == NULL || split.data == NULL)
		abort();

	fz_decode(body, len, max_line, max_trailer, NULL, 0, &whole);
	fz_decode(body, len, max_line, max_trailer, &one, 1, &bytes);
	fz_decode(body, len, max_line, max_trailer, body, len, &split);

	CDN_ASSERT(bytes.end == whole.end && split.end == whole.end);
	CDN_ASSERT(bytes.ndata == whole.ndata && split.ndata == whole.ndata);
	CDN_ASSERT(memcmp(bytes.data, whole.data, whole.ndata) == 0);
	CDN_ASSERT(memcmp(split.data, whole.data, whole.ndata) == 0);
	if (whole.end == FZ_DONE)
		CDN_ASSERT(
		    bytes.used == whole.used && split.used == whole.used);
	CDN_ASSERT(whole.ndata <= len);

	free(whole.data);
	free(bytes.data);
	free(split.data);
	return 0;
}
