/*
 * Sealed bodies (cache/cache_objfd.c): which objects are sealed, that the
 * file holds the body byte for byte and refuses every change, that the
 * memory tier is charged the file's pages, and that freeing the object
 * gives the descriptor back.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cache/cache.h"
#include "cache/cache_int.h"
#include "tap.h"

static unsigned char
byte_at(uint64_t i)
{
	return (unsigned char)((i * 7 + (i >> 8) + (i >> 16) * 13) & 0xff);
}

/* An object whose body is <len> bytes of the pattern, appended in
 * pieces of <piece> bytes (as a fill or an LMDB read does). */
static struct cache_obj *
obj_of(uint64_t len, size_t piece)
{
	static const uint8_t key[CACHE_HASH_LEN] = {1, 2, 3};
	struct cache_decision d = {0};
	struct cache_obj *o;
	unsigned char *buf = malloc(piece);

	o = cache_obj_new(key, 0, 200, &d, 0, "/x", 2, "A: b\r\n", 6, "", 0);
	for (uint64_t at = 0; o != NULL && at < len; at += piece) {
		size_t n = len - at < piece ? (size_t)(len - at) : piece;

		for (size_t i = 0; i < n; i++)
			buf[i] = byte_at(at + i);
		if (cache_obj_append(o, buf, n) != CDN_OK)
			cache_obj_unref(&o);
	}
	free(buf);
	return o;
}

/* Does <o>'s body, read through its chunks, hold the pattern? */
static int
body_ok(const struct cache_obj *o)
{
	for (uint64_t i = 0; i < o->body_len; i++)
		if (o->chunks[i / CACHE_CHUNK_SIZE][i % CACHE_CHUNK_SIZE] !=
		    byte_at(i))
			return 0;
	return 1;
}

/* Does the file hold the pattern, read with pread (as sendfile does)? */
static int
file_ok(int fd, uint64_t len)
{
	unsigned char buf[4096];
	uint64_t at = 0;
	ssize_t n;

	while (at < len) {
		n = pread(fd, buf, sizeof(buf), (off_t)at);
		if (n <= 0)
			return 0;
		for (ssize_t i = 0; i < n; i++)
			if (buf[i] != byte_at(at + (uint64_t)i))
				return 0;
		at += (uint64_t)n;
	}
	return pread(fd, buf, 1, (off_t)at) == 0;
}

static void
test_which_are_sealed(void)
{
	struct cache_obj *o, *o2;

	o = obj_of(CACHE_OBJ_FD_MIN - 1, 4096);
	is_int(cache_obj_seal(o), 0, "a body under CACHE_OBJ_FD_MIN stays");
	is_int(o->body_fd, -1, "and has no file");
	cache_obj_unref(&o);

	o = obj_of(CACHE_OBJ_FD_MIN, 4096);
	o2 = cache_obj_ref(o);
	is_int(cache_obj_seal(o), 0, "a shared object stays as it is");
	cache_obj_unref(&o2);
	is_int(cache_obj_seal(o), 1, "CACHE_OBJ_FD_MIN bytes alone: sealed");
	is_int(cache_obj_seal(o), 0, "only once");
	cache_obj_unref(&o);
	is_int(cache_obj_sealed_count(), 0, "freed: no sealed body left");
}

static void
test_body_and_seals(uint64_t len, size_t piece)
{
	struct cache_obj *o = obj_of(len, piece);
	size_t before = cache_obj_footprint(o), pg;
	unsigned char byte = 0;
	struct stat st;
	int fd, seals;

	pg = (size_t)sysconf(_SC_PAGESIZE);
	ok(cache_obj_seal(o) == 1, "%llu bytes: sealed",
	    (unsigned long long)len);
	fd = o->body_fd;
	ok(fd >= 0, "it has a file");
	ok(body_ok(o), "the chunks read the body");
	ok(file_ok(fd, len), "the file holds the body and no more");
	ok(fstat(fd, &st) == 0 && (uint64_t)st.st_size == len, "its size");
	seals = fcntl(fd, F_GET_SEALS);
	ok(seals != -1 &&
	        (seals &
	            (F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW |
	                F_SEAL_SEAL)) ==
	            (F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL),
	    "sealed against write, shrink, grow and new seals");
	ok(pwrite(fd, &byte, 1, 0) == -1 && errno == EPERM,
	    "a write is refused");
	ok(ftruncate(fd, 0) == -1, "so is truncation");
	ok(mmap(NULL, (size_t)len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0) ==
	        MAP_FAILED,
	    "and a writable mapping");
	ok(cache_obj_footprint(o) >= (len + pg - 1) / pg * pg,
	    "the footprint counts the file's pages: %zu",
	    cache_obj_footprint(o));
	ok(cache_obj_footprint(o) <= before + pg,
	    "and not much more than the chunks did (%zu, was %zu)",
	    cache_obj_footprint(o), before);
	is_int(cache_obj_sealed_count(), 1, "one sealed body counted");
	is_int(cache_obj_sealed_bytes(), (len + pg - 1) / pg * pg,
	    "its pages counted");
	cache_obj_unref(&o);
	ok(fcntl(fd, F_GETFD) == -1 && errno == EBADF,
	    "freeing the object closes its file");
	is_int(cache_obj_sealed_count(), 0, "no sealed body left");
	is_int(cache_obj_sealed_bytes(), 0, "no sealed byte left");
}

static void
test_descriptor_budget(void)
{
	struct cache_obj *o[8];
	struct rlimit old, rl;
	int sealed = 0;

	if (getrlimit(RLIMIT_NOFILE, &old) != 0)
		return;
	/* Descriptors in use now, plus room for 3 sealed bodies: the
	 * budget is a quarter of the limit. */
	rl = old;
	rl.rlim_cur = 12;
	if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
		ok(1, "# SKIP cannot lower RLIMIT_NOFILE");
		return;
	}
	for (int i = 0; i < 8; i++) {
		o[i] = obj_of(CACHE_OBJ_FD_MIN, CACHE_OBJ_FD_MIN);
		sealed += cache_obj_seal(o[i]);
	}
	setrlimit(RLIMIT_NOFILE, &old);
	is_int(sealed, 3, "a quarter of RLIMIT_NOFILE: 3 of 8 sealed");
	for (int i = 0; i < 8; i++) {
		ok(body_ok(o[i]), "body %d intact, sealed or not", i);
		cache_obj_unref(&o[i]);
	}
	is_int(cache_obj_sealed_count(), 0, "all given back");
}

/* No descriptor left for the memfd: the body stays, intact, unsealed. */
static void
test_no_descriptor_left(void)
{
	struct rlimit old, rl;
	struct cache_obj *o = obj_of(CACHE_OBJ_FD_MIN, CACHE_OBJ_FD_MIN);
	int fds[64], n = 0, fd;

	if (getrlimit(RLIMIT_NOFILE, &old) != 0)
		return;
	rl = old;
	rl.rlim_cur = 40; /* room for 10 sealed bodies by the budget */
	if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
		ok(1, "# SKIP cannot lower RLIMIT_NOFILE");
		cache_obj_unref(&o);
		return;
	}
	while (n < 64 && (fd = dup(0)) != -1)
		fds[n++] = fd;
	is_int(cache_obj_seal(o), 0, "EMFILE: not sealed");
	is_int(o->body_fd, -1, "no file");
	ok(body_ok(o), "the body is intact in its chunks");
	is_int(
	    cache_obj_sealed_count(), 0, "the budget's reservation given back");
	while (n > 0)
		close(fds[--n]);
	setrlimit(RLIMIT_NOFILE, &old);
	is_int(cache_obj_seal(o), 1, "sealed once descriptors are free");
	ok(body_ok(o), "and intact");
	cache_obj_unref(&o);
}

int
main(void)
{
	plan_no_plan();
	test_which_are_sealed();
	test_body_and_seals(CACHE_OBJ_FD_MIN, 1000);
	test_body_and_seals(102400, 16384);
	/* Over several chunks, the last a short one. */
	test_body_and_seals(2 * CACHE_CHUNK_SIZE + 12345, 65536);
	test_descriptor_budget();
	test_no_descriptor_left();
	return done_testing();
}
