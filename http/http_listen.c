/*
 * Listening sockets (http/http_listen.h): the "HOST:PORT" a listen
 * directive or flag names, and a socket bound to it.  edged opens one per
 * worker thread for each address, with SO_REUSEPORT; purged one.  No state;
 * errors are logged under the caller's subsystem name.
 */
#include "config.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/cdn_log.h"
#include "http/http_authority.h"
#include "http/http_listen.h"

int
http_listen_parse(
    const char *s, char *host, size_t hostlen, uint16_t *port, const char **why)
{
	char h[HTTP_AUTHORITY_HOST_MAX];
	const char *portp;
	size_t portlen;
	uint16_t pv;

	CDN_ASSERT(s != NULL && host != NULL && port != NULL && why != NULL);
	if (*s == '\0') {
		*why = "empty address (HOST:PORT)";
		return CDN_EINVAL;
	}
	if (http_authority_split(s, strlen(s), h, &portp, &portlen, why) !=
	    CDN_OK)
		return CDN_EINVAL;
	if (portp == NULL) {
		*why = "missing port (HOST:PORT)";
		return CDN_EINVAL;
	}
	if (s[0] != '[') {
		if (strcmp(h, "*") == 0)
			snprintf(h, sizeof(h), "0.0.0.0");
		else if (http_authority_check_host(h, why) != CDN_OK)
			return CDN_EINVAL;
	}
	if (http_authority_parse_port(portp, portlen, &pv, why) != CDN_OK)
		return CDN_EINVAL;
	if (strlen(h) >= hostlen) {
		*why = "host name too long";
		return CDN_EINVAL;
	}
	memcpy(host, h, strlen(h) + 1);
	*port = pv;
	return CDN_OK;
}

int
http_listen_socket(
    const char *hostport, int reuseport, int backlog, const char *who)
{
	struct addrinfo hints, *res = NULL;
	char host[HTTP_AUTHORITY_HOST_MAX], port[8];
	const char *why;
	uint16_t portnum;
	int fd = -1, one = 1, rc;

	if (http_listen_parse(hostport, host, sizeof(host), &portnum, &why) !=
	    CDN_OK) {
		CDN_LOG(CDN_LOG_ERR, who, "listen %s: %s", hostport, why);
		return -1;
	}
	snprintf(port, sizeof(port), "%u", (unsigned)portnum);
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	rc = getaddrinfo(host, port, &hints, &res);
	if (rc != 0) {
		CDN_LOG(CDN_LOG_ERR, who, "listen %s: %s", hostport,
		    gai_strerror(rc));
		return -1;
	}
	fd = socket(
	    res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1)
		goto fail;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == -1 ||
	    (reuseport &&
	        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) ==
	            -1))
		goto fail;
	/* [::]:80 must not also take 0.0.0.0:80: that is its own listen. */
	if (res->ai_family == AF_INET6 &&
	    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) == -1)
		goto fail;
	if (bind(fd, res->ai_addr, res->ai_addrlen) == -1 ||
	    listen(fd, backlog) == -1)
		goto fail;
	freeaddrinfo(res);
	return fd;

fail:
	CDN_LOG(CDN_LOG_ERR, who, "listen %s: %s", hostport, strerror(errno));
	if (fd != -1)
		close(fd);
	freeaddrinfo(res);
	return -1;
}

int
http_listen_probe(const char *hostport, const char *who)
{
	int fd = http_listen_socket(hostport, 0, 1, who);

	if (fd == -1) {
		CDN_LOG(CDN_LOG_ERR, who,
		    "listen %s: not free (is another edged running there?)",
		    hostport);
		return CDN_EIO;
	}
	close(fd);
	return CDN_OK;
}

int
http_listen_nodelay(int fd, const char *who)
{
	int one = 1;

	if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) == 0 ||
	    errno == EOPNOTSUPP || errno == ENOPROTOOPT)
		return CDN_OK;
	CDN_LOG(CDN_LOG_WARN, who, "listening socket %d: TCP_NODELAY: %s", fd,
	    strerror(errno));
	return CDN_EIO;
}

int
http_listen_defer(int fd, unsigned secs, const char *who)
{
	int v = (int)secs;

	if (setsockopt(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &v, sizeof(v)) == 0 ||
	    errno == EOPNOTSUPP || errno == ENOPROTOOPT)
		return CDN_OK;
	CDN_LOG(CDN_LOG_WARN, who, "listening socket %d: TCP_DEFER_ACCEPT: %s",
	    fd, strerror(errno));
	return CDN_EIO;
}
