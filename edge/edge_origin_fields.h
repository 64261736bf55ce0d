/*
 * The request fields the edge treats specially on the way to the origin:
 * the one table, included with ORIGIN_FIELD defined:
 *   ORIGIN_FIELD(name, action, doc)
 * action  UNKEYED  dropped unless the site's origin_pass_fields names it:
 *                  origins commonly reflect it, yet the cache key does not
 *                  cover it, so one client could poison the stored copy
 *                  for every other (X-Forwarded-Host and friends);
 *         SET      the client's is dropped, the node writes its own;
 *         APPEND   the client's is kept and the node's value appended;
 *         FRAMING  dropped: libcurl writes the framing of the request.
 * Every other field goes through, except hop-by-hop fields (Connection
 * and the fields it names, http_field_is_hop_by_hop()), the site's
 * origin_drop_fields, and the validators the cache replaces with its own
 * when it revalidates.  docs/origin-request.md shows this table and
 * tests/unit/t_origin_fields.c checks that the two agree.
 */
/* clang-format off */
ORIGIN_FIELD("Host", SET, "the client's Host, or the authority of an absolute target; origin_host replaces it")
ORIGIN_FIELD("X-Forwarded-Proto", SET, "http or https, as the client came")
ORIGIN_FIELD("Via", APPEND, "the client's list, then 1.1 and the node's via name")
ORIGIN_FIELD("X-Forwarded-For", APPEND, "the client's list, then the client's address")
ORIGIN_FIELD("CDN-Loop", APPEND, "the client's list, then the node's node_name (RFC 8586; docs/shield.md)")
ORIGIN_FIELD("Edge-Bus-Applied", SET, "to a parent only: the purge bus ID the node has applied; never to an origin (docs/shield.md)")
ORIGIN_FIELD("Content-Length", FRAMING, "written for the body forwarded")
ORIGIN_FIELD("Expect", FRAMING, "the node answers 100-continue itself")
ORIGIN_FIELD("X-Forwarded-Host", UNKEYED, "reflected into links and redirects by many frameworks")
ORIGIN_FIELD("X-Forwarded-Scheme", UNKEYED, "reflected into redirects (http to https loops)")
ORIGIN_FIELD("X-Forwarded-Port", UNKEYED, "reflected into absolute URLs")
ORIGIN_FIELD("Forwarded", UNKEYED, "RFC 7239 host= and proto= are reflected as X-Forwarded-* are")
ORIGIN_FIELD("X-Original-URL", UNKEYED, "rewrites the path some frameworks route by")
ORIGIN_FIELD("X-Rewrite-URL", UNKEYED, "rewrites the path some frameworks route by")
ORIGIN_FIELD("X-HTTP-Method-Override", UNKEYED, "turns a cached GET into another method at the origin")
ORIGIN_FIELD("X-HTTP-Method", UNKEYED, "turns a cached GET into another method at the origin")
ORIGIN_FIELD("X-Method-Override", UNKEYED, "turns a cached GET into another method at the origin")
/* clang-format on */
