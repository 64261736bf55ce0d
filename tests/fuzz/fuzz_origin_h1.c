/*
 * libFuzzer target for the native origin client's readers
 * (origin/origin_head.c): the input is a response head as an origin sends
 * it, fed to origin_head_parse() whole and then in pieces as reads would
 * bring it, and chunk-size lines.  Beyond the sanitizers' checks it asserts:
 *   - a head found in pieces is the same head, found when its last byte
 *     comes, as the whole input gives: same verdict, bytes and fields;
 *   - a head is at most ORIGIN_HEAD_MAX bytes, ends with CRLF CRLF, has a
 *     status in 100..599, and its fields are CRLF-ended lines inside it,
 *     none empty, none starting with white space, each with a colon;
 *   - content_length is -1 exactly when no Content-Length was taken;
 *   - a chunk-size line that parses ends with CRLF inside the input.
 */
#include "config.h"

#include <stdint.h>
#include <string.h>

#include "origin/origin_head.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct fz_head {
	int r;
	struct origin_head h;
	const char *fields, *why;
	size_t flen, used;
};

static void
fz_check(const char *p, size_t len, const struct fz_head *o)
{
	const char *f, *end, *lf;

	if (o->r != ORIGIN_HEAD_DONE) {
		CDN_ASSERT(o->r == ORIGIN_HEAD_PARTIAL ||
		    (o->r == ORIGIN_HEAD_BAD && o->why != NULL));
		return;
	}
	CDN_ASSERT(
	    o->used >= 16 && o->used <= len && o->used <= ORIGIN_HEAD_MAX);
	CDN_ASSERT(memcmp(p + o->used - 4, "\r\n\r\n", 4) == 0);
	CDN_ASSERT(o->h.status >= 100 && o->h.status <= 599);
	CDN_ASSERT((o->h.content_length >= 0) == (o->h.cl_seen != 0));
	f = o->fields;
	end = f + o->flen;
	CDN_ASSERT(f > p && end <= p + o->used - 2);
	while (f < end) {
		lf = memchr(f, '\n', (size_t)(end - f));
		CDN_ASSERT(lf != NULL && lf > f + 1 && lf[-1] == '\r');
		CDN_ASSERT(f[0] != ' ' && f[0] != '\t' && f[0] != '\r');
		CDN_ASSERT(memchr(f, ':', (size_t)(lf - f)) != NULL);
		f = lf + 1;
	}
}

static struct fz_head
fz_parse(const char *p, size_t len, size_t *scan)
{
	struct fz_head o;

	memset(&o, 0, sizeof(o));
	o.r = origin_head_parse(
	    p, len, scan, &o.h, &o.fields, &o.flen, &o.used, &o.why);
	return o;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data;
	struct fz_head whole, part;
	size_t scan = 0, n, step, used;
	uint64_t csize;

	if (size < 1)
		return 0;
	/* The first byte sets the size of the reads. */
	step = (size_t)(data[0] % 64) + 1;
	p++;
	size--;
	whole = fz_parse(p, size, &scan);
	fz_check(p, size, &whole);

	memset(&part, 0, sizeof(part));
	part.r = ORIGIN_HEAD_PARTIAL;
	scan = 0;
	for (n = step < size ? step : size; n <= size; n += step) {
		CDN_ASSERT(scan <= n);
		part = fz_parse(p, n, &scan);
		if (part.r != ORIGIN_HEAD_PARTIAL || n == size)
			break;
		if (n + step > size)
			n = size - step;
	}
	if (whole.r == ORIGIN_HEAD_DONE) {
		CDN_ASSERT(part.r == ORIGIN_HEAD_DONE &&
		    part.used == whole.used && part.flen == whole.flen &&
		    part.fields == whole.fields &&
		    part.h.status == whole.h.status &&
		    part.h.content_length == whole.h.content_length);
	} else if (whole.r == ORIGIN_HEAD_BAD && part.r == ORIGIN_HEAD_DONE) {
		CDN_ASSERT(!"a head found in pieces that the whole refuses");
	}

	if (origin_chunk_size(p, size, &csize, &used) == CDN_OK)
		CDN_ASSERT(used >= 3 && used <= size &&
		    memcmp(p + used - 2, "\r\n", 2) == 0);
	return 0;
}
