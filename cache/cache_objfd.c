/*
 * Bodies in sealed memory files (cache/cache.h cache_obj_seal).
 *
 * A body of at least CACHE_OBJ_FD_MIN bytes bound for the memory tier is
 * written into a memfd, which is then sealed against writes, shrinking
 * and growth, and mapped read-only: o->chunks point into the mapping, so
 * every reader (HTTP/2, TLS, ranges, the LMDB writer, the encoders) reads
 * it as before, while a plain HTTP/1.1 hit hands the file to the kernel
 * (sendfile) instead of having it copy the bytes out of user memory.
 *
 * Why sealed: sendfile gives the socket references to the file's pages,
 * which the kernel sends, and retransmits, from until the peer has
 * acknowledged them, long after the call returned.  With F_SEAL_WRITE no
 * one can change such a page, so what leaves is what was stored, even
 * after the object is freed: closing the last descriptor drops the file,
 * and the pages the socket references live on, unchanged, until it lets
 * them go.  A malloc'd chunk, by contrast, may be reused the moment it is
 * freed.
 *
 * Every sealed body holds a descriptor; at most a quarter of
 * RLIMIT_NOFILE are spent so, so that clients and origins keep theirs.
 * Past that, or when the kernel refuses, a body stays in malloc'd chunks.
 * The counters are process-wide atomics; each object is sealed by the one
 * thread that holds it, before it is shared.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include "cache/cache.h"
#include "cache/cache_int.h"
#include "common/cdn_log.h"
#include "common/cdn_ratelog.h"

#define SEAL_FD_SHARE_DIV 4     /* of RLIMIT_NOFILE, at most, for bodies */
#define SEAL_FAIL_LOG_MS  60000 /* between two lines about failing seals */

static atomic_uint_fast64_t sealed_count;
static atomic_uint_fast64_t sealed_bytes;
/* Each thread that seals reports its own failures, at most once a
 * minute: a kernel that refuses memfds refuses every one. */
static _Thread_local struct cdn_ratelog seal_log;

/* The kernel refused a sealed body (errno <err>, in <what>). */
static void
seal_failed(const char *what, int err)
{
	struct cdn_ratelog_report r;

	switch (cdn_ratelog_hit(
	    &seal_log, err, cdn_now_ms(), SEAL_FAIL_LOG_MS, &r)) {
	case CDN_RATELOG_BEGIN:
		CDN_LOG(CDN_LOG_WARN, "cache",
		    "sealed body: %s: %s; large bodies stay in memory chunks "
		    "(sent with a copy)",
		    what, strerror(err));
		break;
	case CDN_RATELOG_REPEAT:
		CDN_LOG(CDN_LOG_WARN, "cache",
		    "sealed body: %s still failing: %" PRIu64
		    " times in %" PRIu64 " s",
		    what, r.count, r.elapsed_ms / 1000);
		break;
	default:
		break;
	}
}

static size_t
page_round(uint64_t n)
{
	size_t pg = (size_t)sysconf(_SC_PAGESIZE);

	return (size_t)((n + pg - 1) / pg * pg);
}

/* May one more body take a descriptor?  Reserves it if so. */
static int
fd_reserve(void)
{
	struct rlimit rl;
	uint64_t cap;

	if (getrlimit(RLIMIT_NOFILE, &rl) == -1)
		return 0;
	cap = rl.rlim_cur == RLIM_INFINITY ? UINT32_MAX
	                                   : rl.rlim_cur / SEAL_FD_SHARE_DIV;
	if (atomic_fetch_add_explicit(&sealed_count, 1, memory_order_relaxed) <
	    cap)
		return 1;
	atomic_fetch_sub_explicit(&sealed_count, 1, memory_order_relaxed);
	return 0;
}

static int
write_all(int fd, const unsigned char *p, size_t len, off_t off)
{
	ssize_t n;

	while (len > 0) {
		n = pwrite(fd, p, len, off);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
		off += n;
	}
	return 0;
}

/* A sealed file holding the body of <o>, or -1 (errno set). */
static int
body_file(const struct cache_obj *o)
{
	uint64_t left = o->body_len;
	size_t n;
	int fd, err;

	fd = memfd_create("edged-body", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd == -1)
		return -1;
	for (uint32_t i = 0; i < o->nchunks; i++) {
		n = left < CACHE_CHUNK_SIZE ? (size_t)left : CACHE_CHUNK_SIZE;
		if (write_all(
		        fd, o->chunks[i], n, (off_t)i * CACHE_CHUNK_SIZE) == -1)
			goto fail;
		left -= n;
	}
	if (fcntl(fd, F_ADD_SEALS,
	        F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) == -1)
		goto fail;
	return fd;
fail:
	err = errno;
	close(fd);
	errno = err;
	return -1;
}

int
cache_obj_seal(struct cache_obj *o)
{
	unsigned char *map;
	int fd;

	MAGIC_CHECK(o, CACHE_OBJ_MAGIC);
	if (atomic_load_explicit(&o->refcnt, memory_order_relaxed) != 1 ||
	    o->body_fd >= 0 || o->body_len < CACHE_OBJ_FD_MIN ||
	    o->body_len > SIZE_MAX / 2 || o->chunks == NULL)
		return 0;
	CDN_ASSERT(
	    !o->is_body_slab); /* bodies of CACHE_OBJ_FD_MIN are malloc's */
	for (uint32_t i = 0; i < o->nchunks; i++)
		if (o->chunks[i] == NULL)
			return 0;
	if (!fd_reserve())
		return 0;
	fd = body_file(o);
	if (fd == -1) {
		seal_failed("memfd", errno);
		goto fail;
	}
	map = mmap(NULL, (size_t)o->body_len, PROT_READ, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED) {
		seal_failed("mmap", errno);
		close(fd);
		goto fail;
	}
	(void)cdn_ratelog_clear(&seal_log, cdn_now_ms(), NULL);
	for (uint32_t i = 0; i < o->nchunks; i++) {
		free(o->chunks[i]);
		o->chunks[i] = map + (size_t)i * CACHE_CHUNK_SIZE;
	}
	o->body_fd = fd;
	o->last_chunk_cap = 0;
	atomic_fetch_add_explicit(
	    &sealed_bytes, page_round(o->body_len), memory_order_relaxed);
	return 1;
fail:
	atomic_fetch_sub_explicit(&sealed_count, 1, memory_order_relaxed);
	return 0;
}

size_t
cache_objfd_footprint(const struct cache_obj *o)
{
	return page_round(o->body_len);
}

void
cache_objfd_release(struct cache_obj *o)
{
	CDN_ASSERT(o->body_fd >= 0 && o->chunks != NULL);
	munmap(o->chunks[0], (size_t)o->body_len);
	close(o->body_fd);
	o->body_fd = -1;
	atomic_fetch_sub_explicit(&sealed_count, 1, memory_order_relaxed);
	atomic_fetch_sub_explicit(
	    &sealed_bytes, page_round(o->body_len), memory_order_relaxed);
}

uint64_t
cache_obj_sealed_count(void)
{
	return atomic_load_explicit(&sealed_count, memory_order_relaxed);
}

uint64_t
cache_obj_sealed_bytes(void)
{
	return atomic_load_explicit(&sealed_bytes, memory_order_relaxed);
}
