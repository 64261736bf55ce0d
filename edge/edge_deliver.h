/*
 * Delivery: the responses edged writes to a client, whoever decided them.
 * The proxy (edge_proxy.c), the shared fill (edge_fill.c) and the cache
 * (edge_cache.c) decide what to answer; this writes it: stored objects
 * (with Age, 304s and ranges), the client's copy of an origin head, ranged
 * bodies cut from a response arriving, the node's own errors, and the
 * Cache-Status field (RFC 9211) of each.  It calls none of the three.
 * Everything runs on the transaction's worker.
 */
#ifndef EDGE_DELIVER_H
#define EDGE_DELIVER_H

#include <stddef.h>
#include <stdint.h>

#include "cache/cache.h"
#include "common/cdn_strbuf.h"

struct edge;
struct edge_site;
struct edge_range_plan;
struct edge_stream;
struct http_request;
struct proxy_txn;

/* Append "Cache-Status: <node>; <text>". */
void edge_deliver_cache_status(
    const struct proxy_txn *pt, const char *text, struct cdn_strbuf *out);
/* Append the transaction's Cache-Status (pt->cache_status; "fwd=bypass"
 * when the cache had no say). */
void edge_deliver_status_field(
    const struct proxy_txn *pt, struct cdn_strbuf *out);
/*
 * Append "Surrogate-Key: <tags>" (space-separated, as stored) when the
 * client is a cache of the fleet and end users do not get the field
 * (surrogate_key_pass 0): the cache below stores the object too, and a
 * tag purge must find it there.
 */
void edge_deliver_tags_field(const struct proxy_txn *pt, const char *tags,
    size_t len, struct cdn_strbuf *out);
/* The Cache-Status of an error the node answers itself. */
void edge_deliver_error_field(
    const struct proxy_txn *pt, struct cdn_strbuf *out);

/*
 * An answer the node gives before the request has a transaction (an
 * unknown method, no site for the Host, OPTIONS *): <status>, <fields>
 * (whole lines, "" for none), a text <body>, and "Cache-Status: <node>;
 * <cache_status>" (RFC 9211: every answer says what the cache did); the
 * stream is finished.
 */
void edge_deliver_node_answer(const struct edge *e,
    const struct edge_stream *cs, int status, const char *fields,
    const char *body, const char *cache_status);

/*
 * Answer <status> with a short text body and pt's Cache-Status, and
 * finish the stream <cs>, pt's own (pt dies in the finish).
 */
void edge_deliver_error(
    struct proxy_txn *pt, const struct edge_stream *cs, int status);

/*
 * The client's copy of an origin response head: hop-by-hop fields out, Via
 * appended, targeted and purge fields hidden; *content_length -1 if
 * chunked.  CDN_ENOMEM if too big.
 */
int edge_deliver_client_fields(const struct edge *e,
    const struct edge_site *site, const char *fields, size_t len,
    struct cdn_strbuf *out, int64_t *content_length);
/*
 * A miss for a Range request fetches the whole response (to store it):
 * turn the client's response into the 206/416 the Range asks for.  May
 * change *status, <out> and *content_length; then the body goes through
 * edge_deliver_body().
 */
void edge_deliver_range_head(struct proxy_txn *pt, int *status,
    const char *fields, size_t len, struct cdn_strbuf *out,
    int64_t *content_length);
/* Body bytes of the origin's response for the client (ranged or not). */
void edge_deliver_body(struct proxy_txn *pt, const char *data, size_t len);

/*
 * Answer from the stored <o> (pt->cache_status as its Cache-Status): its
 * fields plus Age, its body by reference, a 304 when the client's
 * conditional matches, or the range the client asked for.  Does not
 * finish the stream.  <age> is the Age to send (a soft-purged object is
 * stale from the purge on); edge_deliver_stored computes it from <o>.
 */
void edge_deliver_stored_at_age(
    struct proxy_txn *pt, struct cache_obj *o, int64_t age);
void edge_deliver_stored(struct proxy_txn *pt, struct cache_obj *o);
/* RFC 9110 §13.1.1-2: may the client's conditional get a 304 from <o>? */
int edge_deliver_not_modified(
    const struct http_request *req, const struct cache_obj *o);
/*
 * The head alone of the answer from <o> under <plan> (from
 * edge_range_plan_for() with <not_modified>): for a body the caller sends
 * itself (edge_range_disk).  A head too large for the stored fields makes
 * <plan> the whole body.
 */
void edge_deliver_stored_head(struct proxy_txn *pt, const struct cache_obj *o,
    int64_t age, int not_modified, struct edge_range_plan *plan);

#endif /* EDGE_DELIVER_H */
