/*
 * Assertion handler, aborting allocators and clocks (common/cdn.h).
 * Thread-safe: no state.  The assert handler takes no locks and allocates
 * nothing, so it works from any thread in any state.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/cdn.h"

const char *
cdn_strerror(int rc)
{
	switch (rc) {
	case CDN_OK:
		return "CDN_OK";
	case CDN_AGAIN:
		return "CDN_AGAIN";
	case CDN_NOTFOUND:
		return "CDN_NOTFOUND";
	case CDN_EINVAL:
		return "CDN_EINVAL";
	case CDN_ENOMEM:
		return "CDN_ENOMEM";
	case CDN_EIO:
		return "CDN_EIO";
	case CDN_ECORRUPT:
		return "CDN_ECORRUPT";
	case CDN_ELIMIT:
		return "CDN_ELIMIT";
	}
	return "CDN_UNKNOWN";
}

void
cdn_assert_fail(const char *file, int line, const char *func, const char *expr)
{
	char buf[512];
	int n;

	n = snprintf(buf, sizeof(buf), "%s:%d: %s(): assertion \"%s\" failed\n",
	    file, line, func, expr);
	if (n > 0)
		(void)!write(STDERR_FILENO, buf,
		    (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1);
	abort();
}

static void
oom(size_t len)
{
	char buf[96];
	int n;

	n = snprintf(
	    buf, sizeof(buf), "out of memory allocating %zu bytes\n", len);
	if (n > 0)
		(void)!write(STDERR_FILENO, buf, (size_t)n);
	abort();
}

void *
cdn_xmalloc(size_t len)
{
	void *p = malloc(len);

	if (p == NULL)
		oom(len);
	return p;
}

void *
cdn_xcalloc(size_t n, size_t len)
{
	void *p = calloc(n, len);

	if (p == NULL)
		oom(n * len);
	return p;
}

char *
cdn_xstrdup(const char *s)
{
	return cdn_xstrndup(s, strlen(s));
}

char *
cdn_xstrndup(const char *s, size_t len)
{
	char *p = cdn_xmalloc(len + 1);

	memcpy(p, s, len);
	p[len] = '\0';
	return p;
}

char *
cdn_strndup(const char *s, size_t len)
{
	char *p = malloc(len + 1);

	if (p != NULL) {
		memcpy(p, s, len);
		p[len] = '\0';
	}
	return p;
}

size_t
cdn_strlcpy(char *dst, const char *src, size_t cap)
{
	size_t n;

	CDN_ASSERT(cap > 0);
	n = strnlen(src, cap - 1);
	memcpy(dst, src, n);
	dst[n] = '\0';
	return n;
}

int
cdn_ready_file_write(const char *path)
{
	char tmp[4096];
	FILE *f;

	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= sizeof(tmp)) {
		errno = ENAMETOOLONG;
		return CDN_EIO;
	}
	f = fopen(tmp, "w");
	if (f == NULL)
		return CDN_EIO;
	fprintf(f, "%ld\n", (long)getpid());
	if (fclose(f) != 0 || rename(tmp, path) == -1)
		return CDN_EIO;
	return CDN_OK;
}

uint64_t
cdn_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t
cdn_now_ms(void)
{
	return cdn_now_ns() / 1000000u;
}
