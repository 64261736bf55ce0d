/*
 * The CDN-Loop request field (RFC 8586): each CDN a request passes through
 * appends its own member, and a CDN that finds itself in the list knows the
 * request is going round in circles.  Pure logic, any thread.
 */
#ifndef HTTP_CDN_LOOP_H
#define HTTP_CDN_LOOP_H

#include <stddef.h>

/*
 * Does the CDN-Loop field value v[0..len) name <cdn_id> (a NUL-terminated
 * token, compared without regard to case, as host names are)?  The value is
 * RFC 8586 §2's list: #cdn-info, cdn-info = cdn-id *( OWS ";" OWS
 * parameter ), parameter = token "=" ( token / quoted-string ).  A member
 * that does not parse is skipped up to the next comma: junk never hides a
 * member after it.  Returns 1 or 0; never reads past v + len.
 */
int http_cdn_loop_names(const char *v, size_t len, const char *cdn_id);

#endif /* HTTP_CDN_LOOP_H */
