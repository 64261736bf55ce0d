/*
 * gzip (zlib) and brotli coders for stored bodies (cache/cache.h
 * "encodings").  Both directions stream: the input is the list of an
 * object's chunks and the output goes to a sink in pieces of at most
 * CODER_BUF bytes, so neither a large body nor a compression bomb needs
 * more memory than the coders' own state.
 *
 * Pure functions of their arguments: callable from any thread (the
 * variant pool calls them off the event loops).
 */
#include "config.h"

#include <brotli/decode.h>
#include <brotli/encode.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>

#include "cache/cache.h"
#include "common/cdn_strbuf.h"

#define CODER_BUF (64 * 1024)
/* zlib takes uInt lengths: feed segments in slices no larger than this. */
#define ZLIB_SLICE (1u << 30)

static const char *const enc_names[CACHE_ENC_COUNT] = {
    "identity", "gzip", "br"};

const char *
cache_enc_name(enum cache_enc enc)
{
	CDN_ASSERT((unsigned)enc < CACHE_ENC_COUNT);
	return enc_names[enc];
}

int
cache_enc_parse(const char *value, size_t len)
{
	while (len > 0 && (*value == ' ' || *value == '\t')) {
		value++;
		len--;
	}
	while (len > 0 && (value[len - 1] == ' ' || value[len - 1] == '\t'))
		len--;
	if (len == 0 || (len == 8 && strncasecmp(value, "identity", 8) == 0))
		return CACHE_ENC_IDENTITY;
	if ((len == 4 && strncasecmp(value, "gzip", 4) == 0) ||
	    (len == 6 && strncasecmp(value, "x-gzip", 6) == 0))
		return CACHE_ENC_GZIP;
	if (len == 2 && strncasecmp(value, "br", 2) == 0)
		return CACHE_ENC_BR;
	return -1;
}

int
cache_enc_of_fields(const char *fields, size_t len)
{
	const char *p, *end = fields + len;
	struct cdn_field f;
	int enc = CACHE_ENC_IDENTITY, lines = 0;

	for (p = fields; cdn_fields_next(&p, end, &f);) {
		if (f.name_len != 16 ||
		    strncasecmp(f.name, "content-encoding", 16) != 0 ||
		    f.value_len == 0)
			continue;
		/* Two lines are a list of two codings (RFC 9110 §5.3). */
		enc = lines++ == 0 ? cache_enc_parse(f.value, f.value_len) : -1;
	}
	return enc < 0 ? CACHE_ENC_OTHER : enc;
}

/* Output accounting shared by both directions. */
struct out_state {
	cache_sink_fn sink;
	void *arg;
	uint64_t total;
	uint64_t max;
	unsigned char buf[CODER_BUF];
};

static int
emit(struct out_state *o, const unsigned char *p, size_t n)
{
	if (n == 0)
		return CDN_OK;
	if (o->total + n > o->max)
		return CDN_ELIMIT;
	o->total += n;
	return o->sink(o->arg, p, n);
}

/* ---------------- gzip ---------------- */

static int
gzip_encode(int level, const void *const *segs, const size_t *lens,
    unsigned nseg, struct out_state *o)
{
	z_stream z;
	int zr, rc = CDN_OK;

	memset(&z, 0, sizeof(z));
	/* 15 + 16: a gzip wrapper (RFC 1952), the largest window. */
	if (deflateInit2(
	        &z, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
		return CDN_ENOMEM;
	for (unsigned i = 0; i <= nseg && rc == CDN_OK; i++) {
		const unsigned char *p = i < nseg ? segs[i] : NULL;
		size_t left = i < nseg ? lens[i] : 0;
		int flush;

		do {
			size_t take = left < ZLIB_SLICE ? left : ZLIB_SLICE;

			z.next_in = (Bytef *)(uintptr_t)p;
			z.avail_in = (uInt)take;
			p = p != NULL ? p + take : NULL;
			left -= take;
			flush = i == nseg ? Z_FINISH : Z_NO_FLUSH;
			do {
				z.next_out = o->buf;
				z.avail_out = CODER_BUF;
				zr = deflate(&z, flush);
				if (zr == Z_STREAM_ERROR) {
					rc = CDN_EINVAL;
					break;
				}
				rc = emit(o, o->buf, CODER_BUF - z.avail_out);
			} while (rc == CDN_OK &&
			    (z.avail_out == 0 ||
			        (flush == Z_FINISH && zr != Z_STREAM_END)));
		} while (rc == CDN_OK && left > 0);
	}
	deflateEnd(&z);
	return rc;
}

static int
gzip_decode(const void *const *segs, const size_t *lens, unsigned nseg,
    struct out_state *o)
{
	z_stream z;
	int zr = Z_OK, rc = CDN_OK, ended = 0;

	memset(&z, 0, sizeof(z));
	if (inflateInit2(&z, 15 + 16) != Z_OK)
		return CDN_ENOMEM;
	for (unsigned i = 0; i < nseg && rc == CDN_OK; i++) {
		const unsigned char *p = segs[i];
		size_t left = lens[i];

		while (rc == CDN_OK && left > 0) {
			size_t take = left < ZLIB_SLICE ? left : ZLIB_SLICE;

			if (ended) {
				/* RFC 1952 §2.2: members may follow. */
				if (inflateReset(&z) != Z_OK) {
					rc = CDN_EINVAL;
					break;
				}
				ended = 0;
			}
			z.next_in = (Bytef *)(uintptr_t)p;
			z.avail_in = (uInt)take;
			do {
				z.next_out = o->buf;
				z.avail_out = CODER_BUF;
				zr = inflate(&z, Z_NO_FLUSH);
				if (zr == Z_MEM_ERROR) {
					rc = CDN_ENOMEM;
					break;
				}
				if (zr != Z_OK && zr != Z_STREAM_END &&
				    zr != Z_BUF_ERROR) {
					rc = CDN_EINVAL;
					break;
				}
				rc = emit(o, o->buf, CODER_BUF - z.avail_out);
				if (zr == Z_STREAM_END) {
					ended = 1;
					break;
				}
			} while (rc == CDN_OK && z.avail_out == 0);
			/* Whatever inflate did not take belongs to the next
			 * member (after Z_STREAM_END) or waits for input. */
			take -= z.avail_in;
			p += take;
			left -= take;
			if (rc == CDN_OK && !ended && z.avail_in > 0) {
				/* inflate stops short of its input only at an
				 * error: never spin on it. */
				rc = CDN_EINVAL;
				break;
			}
		}
	}
	if (rc == CDN_OK && !ended)
		rc = CDN_EINVAL; /* truncated */
	inflateEnd(&z);
	return rc;
}

/* ---------------- brotli ---------------- */

static int
br_encode(int level, const void *const *segs, const size_t *lens, unsigned nseg,
    uint64_t total_in, struct out_state *o)
{
	BrotliEncoderState *st;
	int rc = CDN_OK;

	st = BrotliEncoderCreateInstance(NULL, NULL, NULL);
	if (st == NULL)
		return CDN_ENOMEM;
	BrotliEncoderSetParameter(st, BROTLI_PARAM_QUALITY, (uint32_t)level);
	BrotliEncoderSetParameter(st, BROTLI_PARAM_MODE, BROTLI_MODE_TEXT);
	if (total_in < (UINT64_C(1) << 30))
		BrotliEncoderSetParameter(
		    st, BROTLI_PARAM_SIZE_HINT, (uint32_t)total_in);
	/* Qualities 0 and 1 compress each call's input on its own: the
	 * 256 KiB chunks of an object are large enough for that not to
	 * matter, tiny segments would (tests/unit/t_cache_encode.c). */
	for (unsigned i = 0; i <= nseg && rc == CDN_OK; i++) {
		const uint8_t *in = i < nseg ? segs[i] : NULL;
		size_t avail_in = i < nseg ? lens[i] : 0;
		BrotliEncoderOperation op = i < nseg ? BROTLI_OPERATION_PROCESS
		                                     : BROTLI_OPERATION_FINISH;

		for (;;) {
			uint8_t *next_out = o->buf;
			size_t avail_out = CODER_BUF;

			if (!BrotliEncoderCompressStream(st, op, &avail_in, &in,
			        &avail_out, &next_out, NULL)) {
				rc = CDN_EINVAL;
				break;
			}
			rc = emit(o, o->buf, CODER_BUF - avail_out);
			if (rc != CDN_OK)
				break;
			if (op == BROTLI_OPERATION_FINISH
			        ? BrotliEncoderIsFinished(st)
			        : (avail_in == 0 &&
			              !BrotliEncoderHasMoreOutput(st)))
				break;
		}
	}
	BrotliEncoderDestroyInstance(st);
	return rc;
}

static int
br_decode(const void *const *segs, const size_t *lens, unsigned nseg,
    struct out_state *o)
{
	BrotliDecoderState *st;
	BrotliDecoderResult r = BROTLI_DECODER_RESULT_NEEDS_MORE_INPUT;
	int rc = CDN_OK;

	st = BrotliDecoderCreateInstance(NULL, NULL, NULL);
	if (st == NULL)
		return CDN_ENOMEM;
	for (unsigned i = 0; i < nseg && rc == CDN_OK; i++) {
		const uint8_t *in = segs[i];
		size_t avail_in = lens[i];

		if (r == BROTLI_DECODER_RESULT_SUCCESS) {
			if (avail_in > 0)
				rc = CDN_EINVAL; /* bytes after the end */
			continue;
		}
		do {
			uint8_t *next_out = o->buf;
			size_t avail_out = CODER_BUF;

			r = BrotliDecoderDecompressStream(
			    st, &avail_in, &in, &avail_out, &next_out, NULL);
			if (r == BROTLI_DECODER_RESULT_ERROR) {
				rc = CDN_EINVAL;
				break;
			}
			rc = emit(o, o->buf, CODER_BUF - avail_out);
		} while (rc == CDN_OK &&
		    r == BROTLI_DECODER_RESULT_NEEDS_MORE_OUTPUT);
		if (rc == CDN_OK && r == BROTLI_DECODER_RESULT_SUCCESS &&
		    avail_in > 0)
			rc = CDN_EINVAL;
	}
	if (rc == CDN_OK && r != BROTLI_DECODER_RESULT_SUCCESS)
		rc = CDN_EINVAL; /* truncated */
	BrotliDecoderDestroyInstance(st);
	return rc;
}

/* ---------------- entry points ---------------- */

int
cache_encode(enum cache_enc enc, int level, const void *const *segs,
    const size_t *lens, unsigned nseg, uint64_t max_out, cache_sink_fn sink,
    void *arg)
{
	struct out_state *o;
	uint64_t total_in = 0;
	int rc;

	CDN_ASSERT(sink != NULL && (segs != NULL || nseg == 0));
	for (unsigned i = 0; i < nseg; i++)
		total_in += lens[i];
	o = malloc(sizeof(*o));
	if (o == NULL)
		return CDN_ENOMEM;
	o->sink = sink;
	o->arg = arg;
	o->total = 0;
	o->max = max_out;
	switch (enc) {
	case CACHE_ENC_GZIP:
		CDN_ASSERT(level >= 1 && level <= 9);
		rc = gzip_encode(level, segs, lens, nseg, o);
		break;
	case CACHE_ENC_BR:
		CDN_ASSERT(level >= 0 && level <= 11);
		rc = br_encode(level, segs, lens, nseg, total_in, o);
		break;
	default:
		CDN_ASSERT(!"cache_encode: not a compressing coding");
		rc = CDN_EINVAL;
	}
	free(o);
	return rc;
}

int
cache_decode(enum cache_enc enc, const void *const *segs, const size_t *lens,
    unsigned nseg, const struct cache_decode_limits *lim, cache_sink_fn sink,
    void *arg)
{
	struct out_state *o;
	uint64_t total_in = 0, by_ratio;
	int rc;

	CDN_ASSERT(sink != NULL && lim != NULL && (segs != NULL || nseg == 0));
	for (unsigned i = 0; i < nseg; i++)
		total_in += lens[i];
	o = malloc(sizeof(*o));
	if (o == NULL)
		return CDN_ENOMEM;
	o->sink = sink;
	o->arg = arg;
	o->total = 0;
	o->max = lim->max_size;
	if (lim->max_ratio > 0) {
		/* Small bodies may legitimately inflate a lot (a page of
		 * repeated markup): the ratio only bites above a floor. */
		by_ratio = total_in > UINT64_MAX / lim->max_ratio
		    ? UINT64_MAX
		    : total_in * lim->max_ratio;
		if (by_ratio < CACHE_DECODE_RATIO_FLOOR)
			by_ratio = CACHE_DECODE_RATIO_FLOOR;
		if (by_ratio < o->max)
			o->max = by_ratio;
	}
	switch (enc) {
	case CACHE_ENC_GZIP:
		rc = gzip_decode(segs, lens, nseg, o);
		break;
	case CACHE_ENC_BR:
		rc = br_decode(segs, lens, nseg, o);
		break;
	default:
		CDN_ASSERT(!"cache_decode: not a compressing coding");
		rc = CDN_EINVAL;
	}
	free(o);
	return rc;
}
