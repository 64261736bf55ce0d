/*
 * Range responses from stored objects (edge/edge_range.h):
 * RFC 9110 §14 (206, multipart/byteranges, 416) and §13.1.5 (If-Range).
 * A plan also drives the sending of a large object's body from disk, one
 * chunk at a time as the client drains (struct edge_range_disk), whether
 * the plan is the whole body, one range or many.
 */
#include "config.h"

#include <inttypes.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "edge/edge_range.h"
#include "edge/edge_stream.h"
#include "http/http_date.h"

#define PLAN_FIELDS_MAX 1024
#define PLAN_LIT_MAX    (HTTP_RANGE_MAX * 512 + 256)
#define CTYPE_MAX       256
/*
 * A piece of a chunk read from disk shorter than this is copied into the
 * output buffer rather than referenced: many small ranges in many chunks
 * must not pin a whole chunk each while the client does not read.  So the
 * output buffer (at most its high-water mark, 256 KiB for HTTP/1.1, plus
 * one chunk) pins at most four chunks, and the sender holds one more.
 */
#define DISK_REF_MIN (CACHE_CHUNK_SIZE / 2)
/*
 * A piece of a sealed body shorter than this goes by reference like any
 * other: sendfile and its file segment cost more than copying a few KiB.
 */
#define FILE_PIECE_MIN (16 * 1024)

/* Boundaries need only be unique within one response (RFC 2046 §5.1.1),
 * but a counter keeps them from ever repeating in a process. */
static atomic_uint_fast64_t boundary_seq;

static void
plan_whole(struct edge_range_plan *p)
{
	cdn_sb_free(&p->fields);
	cdn_sb_free(&p->lit);
	p->fields.max = PLAN_FIELDS_MAX;
	p->lit.max = PLAN_LIT_MAX;
	p->status = 200;
	p->multipart = 0;
	p->content_length = p->total;
	p->nsegs = 1;
	memset(&p->segs[0], 0, sizeof(p->segs[0]));
	p->segs[0].len = p->total;
}

void
edge_range_plan_init(struct edge_range_plan *p, const char *range, size_t rlen,
    uint64_t total, const char *ctype, size_t ctlen, int allow_multi)
{
	struct http_range r[HTTP_RANGE_MAX];
	enum http_range_rc rc;
	unsigned n = 0;
	char boundary[40];
	uint64_t len = 0;

	CDN_ASSERT(p != NULL);
	/* All but the segments, which are set as nsegs grows: the whole
	 * struct is most of a kilobyte, cleared on every hit. */
	memset(p, 0, offsetof(struct edge_range_plan, segs));
	p->magic = EDGE_RANGE_PLAN_MAGIC;
	p->total = total;
	plan_whole(p);
	if (range == NULL)
		return;
	rc = http_range_parse(range, rlen, total, r, &n);
	if (rc == HTTP_RANGE_IGNORE)
		return;
	if (rc == HTTP_RANGE_UNSATISFIABLE) {
		/* RFC 9110 §15.5.17: the current length, no body. */
		p->status = 416;
		p->content_length = 0;
		p->nsegs = 0;
		cdn_sb_printf(&p->fields,
		    "Content-Range: bytes */%" PRIu64 "\r\n", total);
		return;
	}
	if (n == 1) {
		p->status = 206;
		p->content_length = r[0].last - r[0].first + 1;
		p->segs[0].off = r[0].first;
		p->segs[0].len = p->content_length;
		cdn_sb_printf(&p->fields,
		    "Content-Range: bytes %" PRIu64 "-%" PRIu64 "/%" PRIu64
		    "\r\n",
		    r[0].first, r[0].last, total);
		if (p->fields.failed)
			plan_whole(p);
		return;
	}
	if (!allow_multi)
		return;
	/* RFC 9110 §14.6: multipart/byteranges. */
	snprintf(boundary, sizeof(boundary), "edged-%016" PRIxFAST64,
	    atomic_fetch_add_explicit(&boundary_seq, 1, memory_order_relaxed) ^
	        (uint_fast64_t)cdn_now_ns());
	if (ctlen > CTYPE_MAX)
		ctype = NULL;
	p->status = 206;
	p->multipart = 1;
	p->nsegs = 0;
	memset(p->segs, 0, sizeof(p->segs)); /* left out at the start */
	cdn_sb_printf(&p->fields,
	    "Content-Type: multipart/byteranges; boundary=%s\r\n", boundary);
	for (unsigned i = 0; i < n; i++) {
		struct edge_range_seg *s;
		size_t at = p->lit.len;

		cdn_sb_printf(
		    &p->lit, "%s--%s\r\n", i > 0 ? "\r\n" : "", boundary);
		if (ctype != NULL) {
			cdn_sb_str(&p->lit, "Content-Type: ");
			cdn_sb_add(&p->lit, ctype, ctlen);
			cdn_sb_str(&p->lit, "\r\n");
		}
		cdn_sb_printf(&p->lit,
		    "Content-Range: bytes %" PRIu64 "-%" PRIu64 "/%" PRIu64
		    "\r\n\r\n",
		    r[i].first, r[i].last, total);
		s = &p->segs[p->nsegs++];
		s->is_lit = 1;
		s->lit_off = (uint32_t)at;
		s->len = p->lit.len - at;
		len += s->len;
		s = &p->segs[p->nsegs++];
		s->off = r[i].first;
		s->len = r[i].last - r[i].first + 1;
		len += s->len;
	}
	{
		struct edge_range_seg *s = &p->segs[p->nsegs++];
		size_t at = p->lit.len;

		cdn_sb_printf(&p->lit, "\r\n--%s--\r\n", boundary);
		s->is_lit = 1;
		s->lit_off = (uint32_t)at;
		s->len = p->lit.len - at;
		len += s->len;
	}
	p->content_length = len;
	if (p->fields.failed || p->lit.failed)
		plan_whole(p);
}

void
edge_range_plan_fini(struct edge_range_plan *p)
{
	MAGIC_CHECK(p, EDGE_RANGE_PLAN_MAGIC);
	cdn_sb_free(&p->fields);
	cdn_sb_free(&p->lit);
	MAGIC_WIPE(p);
}

int
edge_if_range_ok(
    const char *v, size_t len, const char *fields, size_t fields_len)
{
	const char *etag, *lm;
	size_t elen, lmlen;
	int64_t t, t_lm;

	while (len > 0 && (*v == ' ' || *v == '\t')) {
		v++;
		len--;
	}
	while (len > 0 && (v[len - 1] == ' ' || v[len - 1] == '\t'))
		len--;
	if (len >= 2 && (v[0] == '"' || (v[0] == 'W' && v[1] == '/'))) {
		/* Strong comparison: neither may be weak (§8.8.3.2). */
		if (v[0] == 'W')
			return 0;
		etag = cdn_fields_get(fields, fields_len, "etag", &elen);
		return etag != NULL && elen == len && etag[0] == '"' &&
		    memcmp(etag, v, len) == 0;
	}
	t = http_date_parse(v, len);
	lm = cdn_fields_get(fields, fields_len, "last-modified", &lmlen);
	if (t < 0 || lm == NULL)
		return 0;
	t_lm = http_date_parse(lm, lmlen);
	return t_lm >= 0 && t_lm == t;
}

void
edge_range_feed(const struct edge_range_plan *p, struct edge_range_cursor *c,
    uint64_t off, const void *data, size_t len,
    void (*out)(void *arg, const void *p, size_t n), void *arg)
{
	const unsigned char *d = data;
	uint64_t end = off + len;

	MAGIC_CHECK(p, EDGE_RANGE_PLAN_MAGIC);
	CDN_ASSERT(c != NULL && out != NULL);
	while (c->seg < p->nsegs) {
		const struct edge_range_seg *s = &p->segs[c->seg];
		uint64_t a, b;

		if (s->is_lit) {
			out(arg, p->lit.p + s->lit_off + c->sent,
			    (size_t)(s->len - c->sent));
			c->seg++;
			c->sent = 0;
			continue;
		}
		a = s->off + c->sent;
		b = s->off + s->len;
		if (a >= end)
			return; /* waits for later bytes */
		if (a < off) {
			/* Bytes before this feed were skipped or sent. */
			CDN_ASSERT(!"range feed: bytes fed out of order");
			return;
		}
		if (b > end)
			b = end;
		out(arg, d + (a - off), (size_t)(b - a));
		c->sent += b - a;
		if (c->sent < s->len)
			return;
		c->seg++;
		c->sent = 0;
	}
}

void
edge_range_obj_pieces(const struct edge_range_plan *p,
    const struct cache_obj *o,
    void (*out)(void *arg, const unsigned char *p, size_t n, int in_obj),
    void *arg)
{
	MAGIC_CHECK(p, EDGE_RANGE_PLAN_MAGIC);
	MAGIC_CHECK(o, CACHE_OBJ_MAGIC);
	for (unsigned k = 0; k < p->nsegs; k++) {
		const struct edge_range_seg *s = &p->segs[k];
		uint64_t a = s->off, b = s->off + s->len;

		if (s->is_lit) {
			out(arg, (const unsigned char *)p->lit.p + s->lit_off,
			    (size_t)s->len, 0);
			continue;
		}
		CDN_ASSERT(b <= o->body_len);
		/* Only the chunks the range covers; those alone were read
		 * from disk (edge_range_load_chunks). */
		while (a < b) {
			uint64_t i = a / CACHE_CHUNK_SIZE;
			uint64_t in = a % CACHE_CHUNK_SIZE;
			uint64_t n = CACHE_CHUNK_SIZE - in;

			CDN_ASSERT(o->chunks != NULL && o->chunks[i] != NULL);
			if (n > b - a)
				n = b - a;
			out(arg, o->chunks[i] + in, (size_t)n, 1);
			a += n;
		}
	}
}

int
edge_range_load_chunks(
    struct cache_store *s, const struct edge_range_plan *p, struct cache_obj *o)
{
	int rc = CDN_OK;

	MAGIC_CHECK(p, EDGE_RANGE_PLAN_MAGIC);
	for (unsigned k = 0; rc == CDN_OK && k < p->nsegs; k++) {
		const struct edge_range_seg *sg = &p->segs[k];

		if (sg->is_lit || sg->len == 0)
			continue;
		rc = cache_store_load_chunks(s, o,
		    (uint32_t)(sg->off / CACHE_CHUNK_SIZE),
		    (uint32_t)((sg->off + sg->len - 1) / CACHE_CHUNK_SIZE));
	}
	return rc;
}

struct send_ctx {
	const struct edge_stream *cs;
	struct cache_obj *o;
};

static void
on_piece_sent(const void *data, size_t len, void *arg)
{
	struct cache_obj *o = arg;

	(void)data;
	(void)len;
	cache_obj_unref(&o);
}

static void
send_piece(void *arg, const unsigned char *p, size_t n, int in_obj)
{
	struct send_ctx *c = arg;
	struct cache_obj *ref;

	/* A sealed body goes from its file where the stream can send it so;
	 * the file's bytes never change (cache_obj_seal). */
	if (in_obj && c->o->body_fd >= 0 && n >= FILE_PIECE_MIN) {
		ref = cache_obj_ref(c->o);
		if (edge_stream_write_file(c->cs, c->o->body_fd,
		        (uint64_t)(p - c->o->chunks[0]), n, on_piece_sent,
		        ref) == CDN_OK)
			return;
		cache_obj_unref(&ref);
	}
	if (in_obj)
		edge_stream_write_ref(
		    c->cs, p, n, on_piece_sent, cache_obj_ref(c->o));
	else
		edge_stream_write(c->cs, p, n);
}

void
edge_range_send_obj(const struct edge_stream *cs,
    const struct edge_range_plan *p, struct cache_obj *o)
{
	struct send_ctx c = {cs, o};

	edge_range_obj_pieces(p, o, send_piece, &c);
}

/* ------------- a planned body read from disk as it is sent ------------- */

/*
 * One chunk read from disk: held by the sender while it sends from it and
 * by each piece of it in the client's output buffer.  The sender and the
 * pieces live on the connection's worker (edge_stream_write_ref calls back
 * on it), so the count needs no atomics.
 */
struct disk_chunk {
	unsigned refs;
	uint32_t idx;
	size_t len;
	unsigned char *data;
};

struct edge_range_disk {
	uint32_t magic;
#define EDGE_RANGE_DISK_MAGIC 0x2d7f51b6u
	struct cache_store *store;
	struct cache_obj *o;   /* metadata */
	struct cache_pin *pin; /* from the first chunk read on */
	struct edge_range_plan plan;
	struct edge_range_cursor cur;
	struct disk_chunk *chunk; /* the last read, or NULL */
};

static void
disk_chunk_unref(struct disk_chunk **cp)
{
	struct disk_chunk *c = *cp;

	*cp = NULL;
	CDN_ASSERT(c != NULL && c->refs > 0);
	if (--c->refs > 0)
		return;
	free(c->data);
	free(c);
}

static void
on_disk_piece_sent(const void *data, size_t len, void *arg)
{
	struct disk_chunk *c = arg;

	(void)data;
	(void)len;
	disk_chunk_unref(&c);
}

/* Make chunk <i> the sender's: the one it holds, or read now. */
static int
disk_chunk_get(struct edge_range_disk *rd, uint32_t i)
{
	struct disk_chunk *c;
	uint64_t at = (uint64_t)i * CACHE_CHUNK_SIZE;
	int rc;

	if (rd->chunk != NULL && rd->chunk->idx == i)
		return CDN_OK;
	if (rd->chunk != NULL)
		disk_chunk_unref(&rd->chunk); /* pieces in flight keep theirs */
	/* Pinned for the sender's life, so that eviction or a newer copy
	 * does not take the chunks still to send. */
	if (rd->pin == NULL) {
		rc = cache_store_pin(rd->store, rd->o, &rd->pin);
		if (rc != CDN_OK)
			return rc;
	}
	c = calloc(1, sizeof(*c));
	if (c == NULL)
		return CDN_ENOMEM;
	rc = cache_store_pin_read(rd->store, rd->pin, i, &c->data, &c->len);
	if (rc != CDN_OK) {
		free(c);
		return rc;
	}
	CDN_ASSERT(c->len ==
	    (rd->o->body_len - at < CACHE_CHUNK_SIZE
	            ? (size_t)(rd->o->body_len - at)
	            : CACHE_CHUNK_SIZE));
	c->refs = 1;
	c->idx = i;
	rd->chunk = c;
	return CDN_OK;
}

struct edge_range_disk *
edge_range_disk_new(struct cache_store *s, const struct http_request *req,
    struct cache_obj **op, int not_modified)
{
	struct edge_range_disk *rd = cdn_xcalloc(1, sizeof(*rd));

	MAGIC_CHECK(*op, CACHE_OBJ_MAGIC);
	CDN_ASSERT((*op)->chunks == NULL);
	rd->magic = EDGE_RANGE_DISK_MAGIC;
	rd->store = s;
	rd->o = *op;
	*op = NULL;
	edge_range_plan_for(&rd->plan, req, rd->o, not_modified);
	return rd;
}

struct edge_range_plan *
edge_range_disk_plan(struct edge_range_disk *rd)
{
	MAGIC_CHECK(rd, EDGE_RANGE_DISK_MAGIC);
	return &rd->plan;
}

const struct cache_obj *
edge_range_disk_obj(const struct edge_range_disk *rd)
{
	MAGIC_CHECK(rd, EDGE_RANGE_DISK_MAGIC);
	return rd->o;
}

int
edge_range_disk_prime(struct edge_range_disk *rd)
{
	MAGIC_CHECK(rd, EDGE_RANGE_DISK_MAGIC);
	for (unsigned k = 0; k < rd->plan.nsegs; k++) {
		const struct edge_range_seg *sg = &rd->plan.segs[k];

		if (!sg->is_lit && sg->len > 0)
			return disk_chunk_get(
			    rd, (uint32_t)(sg->off / CACHE_CHUNK_SIZE));
	}
	return CDN_OK;
}

int
edge_range_disk_send(struct edge_range_disk *rd, const struct edge_stream *cs)
{
	const struct edge_range_plan *p = &rd->plan;
	struct edge_range_cursor *c = &rd->cur;
	uint64_t a, in, n;
	int rc;

	MAGIC_CHECK(rd, EDGE_RANGE_DISK_MAGIC);
	while (c->seg < p->nsegs) {
		const struct edge_range_seg *s = &p->segs[c->seg];

		/* At most one chunk more than the stream's high-water mark is
		 * queued: it calls back once it has drained. */
		if (edge_stream_congested(cs))
			return CDN_AGAIN;
		if (s->is_lit) {
			edge_stream_write(
			    cs, p->lit.p + s->lit_off, (size_t)s->len);
			c->seg++;
			continue;
		}
		a = s->off + c->sent;
		CDN_ASSERT(a < rd->o->body_len);
		rc = disk_chunk_get(rd, (uint32_t)(a / CACHE_CHUNK_SIZE));
		if (rc != CDN_OK)
			return rc;
		in = a % CACHE_CHUNK_SIZE;
		n = rd->chunk->len - in;
		if (n > s->len - c->sent)
			n = s->len - c->sent;
		if (n < DISK_REF_MIN) {
			edge_stream_write(cs, rd->chunk->data + in, (size_t)n);
		} else {
			rd->chunk->refs++;
			edge_stream_write_ref(cs, rd->chunk->data + in,
			    (size_t)n, on_disk_piece_sent, rd->chunk);
		}
		c->sent += n;
		if (c->sent == s->len) {
			c->seg++;
			c->sent = 0;
		}
	}
	return CDN_OK;
}

void
edge_range_disk_free(struct edge_range_disk **rdp)
{
	struct edge_range_disk *rd = *rdp;

	*rdp = NULL;
	if (rd == NULL)
		return;
	MAGIC_CHECK(rd, EDGE_RANGE_DISK_MAGIC);
	if (rd->chunk != NULL)
		disk_chunk_unref(&rd->chunk);
	cache_store_unpin(rd->store, &rd->pin);
	edge_range_plan_fini(&rd->plan);
	cache_obj_unref(&rd->o);
	MAGIC_WIPE(rd);
	free(rd);
}

void
edge_range_plan_for(struct edge_range_plan *p, const struct http_request *req,
    const struct cache_obj *o, int not_modified)
{
	const struct http_header *rh = NULL, *ifr;
	const char *ct;
	size_t ctlen = 0;

	MAGIC_CHECK(o, CACHE_OBJ_MAGIC);
	/* RFC 9110 §14.2: Range is for GET; a server ignores it on other
	 * methods and on responses other than 200. */
	if (!not_modified && o->status == 200 && req->method == HTTP_M_GET) {
		rh = http_request_find(req, "range");
		ifr = http_request_find(req, "if-range");
		if (rh != NULL && ifr != NULL &&
		    !edge_if_range_ok(
		        ifr->value.p, ifr->value.len, o->fields, o->fields_len))
			rh = NULL; /* §13.1.5: the whole, current response */
	}
	/* The type is for the parts of a multipart answer: no Range, no
	 * parts, and no walk of the stored fields for it. */
	ct = rh != NULL
	    ? cdn_fields_get(o->fields, o->fields_len, "content-type", &ctlen)
	    : NULL;
	edge_range_plan_init(p, rh != NULL ? rh->value.p : NULL,
	    rh != NULL ? rh->value.len : 0, o->body_len, ct, ctlen,
	    cache_variant_enc(o->variant) == CACHE_ENC_IDENTITY);
}

void
edge_range_fields(const struct edge_range_plan *p, const struct cache_obj *o,
    struct cdn_strbuf *f)
{
	const char *q, *end = o->fields + o->fields_len, *eol, *colon;
	size_t n;

	MAGIC_CHECK(p, EDGE_RANGE_PLAN_MAGIC);
	MAGIC_CHECK(o, CACHE_OBJ_MAGIC);
	if (!p->multipart) {
		cdn_sb_add(f, o->fields, o->fields_len);
	} else {
		/* The parts carry the type; the whole is multipart. */
		for (q = o->fields; q < end; q = eol + 1) {
			eol = memchr(q, '\n', (size_t)(end - q));
			if (eol == NULL)
				break;
			colon = memchr(q, ':', (size_t)(eol - q));
			if (colon != NULL && (size_t)(colon - q) == 12 &&
			    strncasecmp(q, "content-type", 12) == 0)
				continue;
			cdn_sb_add(f, q, (size_t)(eol + 1 - q));
		}
	}
	if (p->fields.len > 0)
		cdn_sb_add(f, p->fields.p, p->fields.len);
	if (o->status == 200 &&
	    cdn_fields_get(o->fields, o->fields_len, "accept-ranges", &n) ==
	        NULL)
		cdn_sb_str(f, "Accept-Ranges: bytes\r\n");
}

/* ---------------- ranges of a response arriving ---------------- */

struct edge_range_stream {
	uint32_t magic;
#define EDGE_RANGE_STREAM_MAGIC 0x0e4c7a95u
	struct edge_range_plan plan;
	struct edge_range_cursor cur;
	uint64_t fed; /* representation bytes seen */
};

struct edge_range_stream *
edge_range_stream_new(const struct http_request *req, const char *fields,
    size_t len, uint64_t total, struct cdn_strbuf *out)
{
	struct edge_range_stream *rs;
	const struct http_header *rh, *ifr;
	struct cdn_strbuf f = {.max = out->max};
	const char *ct, *q, *end, *eol, *colon;
	size_t ctlen = 0;
	int coding;

	if (req->method != HTTP_M_GET)
		return NULL;
	rh = http_request_find(req, "range");
	if (rh == NULL)
		return NULL;
	ifr = http_request_find(req, "if-range");
	if (ifr != NULL &&
	    !edge_if_range_ok(ifr->value.p, ifr->value.len, fields, len))
		return NULL;
	coding = cache_enc_of_fields(fields, len);
	ct = cdn_fields_get(fields, len, "content-type", &ctlen);
	rs = cdn_xcalloc(1, sizeof(*rs));
	rs->magic = EDGE_RANGE_STREAM_MAGIC;
	edge_range_plan_init(&rs->plan, rh->value.p, rh->value.len, total, ct,
	    ctlen, coding == CACHE_ENC_IDENTITY);
	if (rs->plan.status == 200) {
		edge_range_stream_free(&rs);
		return NULL;
	}
	/* The client's head: the multipart type replaces the stored one. */
	end = out->p + out->len;
	for (q = out->p; q < end; q = eol + 1) {
		eol = memchr(q, '\n', (size_t)(end - q));
		if (eol == NULL)
			break;
		colon = memchr(q, ':', (size_t)(eol - q));
		if (rs->plan.multipart && colon != NULL &&
		    (size_t)(colon - q) == 12 &&
		    strncasecmp(q, "content-type", 12) == 0)
			continue;
		cdn_sb_add(&f, q, (size_t)(eol + 1 - q));
	}
	if (rs->plan.fields.len > 0)
		cdn_sb_add(&f, rs->plan.fields.p, rs->plan.fields.len);
	if (cdn_fields_get(fields, len, "accept-ranges", &ctlen) == NULL)
		cdn_sb_str(&f, "Accept-Ranges: bytes\r\n");
	if (f.failed) {
		cdn_sb_free(&f);
		edge_range_stream_free(&rs);
		return NULL; /* the whole response then */
	}
	cdn_sb_free(out);
	*out = f;
	return rs;
}

int
edge_range_stream_status(const struct edge_range_stream *rs)
{
	MAGIC_CHECK(rs, EDGE_RANGE_STREAM_MAGIC);
	return rs->plan.status;
}

uint64_t
edge_range_stream_length(const struct edge_range_stream *rs)
{
	MAGIC_CHECK(rs, EDGE_RANGE_STREAM_MAGIC);
	return rs->plan.content_length;
}

void
edge_range_stream_feed(struct edge_range_stream *rs, const void *data,
    size_t len, void (*out)(void *arg, const void *p, size_t n), void *arg)
{
	MAGIC_CHECK(rs, EDGE_RANGE_STREAM_MAGIC);
	edge_range_feed(&rs->plan, &rs->cur, rs->fed, data, len, out, arg);
	rs->fed += len;
}

void
edge_range_stream_free(struct edge_range_stream **rsp)
{
	struct edge_range_stream *rs = *rsp;

	*rsp = NULL;
	if (rs == NULL)
		return;
	MAGIC_CHECK(rs, EDGE_RANGE_STREAM_MAGIC);
	edge_range_plan_fini(&rs->plan);
	MAGIC_WIPE(rs);
	free(rs);
}
