/*
 * Shared infrastructure every subsystem includes: return codes, always-on
 * assertions, magic-number checks and the aborting allocator for small
 * fixed-size control structures (STYLE 2.4, 2.6).
 */
#ifndef CDN_H
#define CDN_H

#include <stddef.h>
#include <stdint.h>

/* Fallible functions return 0 or one of these (never a library's own code). */
enum cdn_rc {
	CDN_OK = 0,
	CDN_AGAIN = -1,    /* outcome: not yet, call again with more input */
	CDN_NOTFOUND = -2, /* outcome: nothing there, not an error */
	CDN_EINVAL = -3,
	CDN_ENOMEM = -4,
	CDN_EIO = -5,
	CDN_ECORRUPT = -6,
	CDN_ELIMIT = -7, /* a configured limit was exceeded */
};

#define CDN_WUR      __attribute__((warn_unused_result))
#define CDN_UNUSED   __attribute__((unused))
#define CDN_NORETURN __attribute__((noreturn))
/* Ends a switch case that goes on into the next (gcc reads a comment for
 * this, clang only the attribute). */
#define CDN_FALLTHROUGH  __attribute__((fallthrough))
#define CDN_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* Static name of a cdn_rc ("CDN_EIO"), for logs. */
const char *cdn_strerror(int rc);

CDN_NORETURN void cdn_assert_fail(
    const char *file, int line, const char *func, const char *expr);

/* Always compiled in: release builds are where a crash must name its cause. */
#define CDN_ASSERT(e)                                                          \
	do {                                                                   \
		if (__builtin_expect(!(e), 0))                                 \
			cdn_assert_fail(__FILE__, __LINE__, __func__, #e);     \
	} while (0)

/* Expensive checks (walking a list) only exist with --enable-debug. */
#ifdef CDN_DEBUG
#define CDN_DASSERT(e) CDN_ASSERT(e)
#else
#define CDN_DASSERT(e) ((void)0)
#endif

#define MAGIC_CHECK(ptr, want)                                                 \
	do {                                                                   \
		CDN_ASSERT((ptr) != NULL);                                     \
		CDN_ASSERT((ptr)->magic == (want));                            \
	} while (0)

/* Call just before free(): a stale pointer then fails MAGIC_CHECK. */
#define MAGIC_WIPE(ptr) ((ptr)->magic = 0)

/*
 * Allocators that abort on failure: only for small control structures whose
 * size no peer controls.  Peer-sized buffers use malloc() and fail the request.
 */
void *cdn_xmalloc(size_t len);
void *cdn_xcalloc(size_t n, size_t len);
char *cdn_xstrdup(const char *s);
char *cdn_xstrndup(const char *s, size_t len);
/* A NUL-terminated copy of <len> bytes a peer sized, or NULL when memory
 * runs out (the caller fails that request, never the node). */
char *cdn_strndup(const char *s, size_t len);

/*
 * Copy the string <src> into <dst> of <cap> bytes (cap > 0), cut to fit and
 * always terminated; returns the length copied.  What snprintf(dst, cap,
 * "%s", src) does, without the formatter's few hundred instructions (the
 * miss path made several such copies per request).
 */
size_t cdn_strlcpy(char *dst, const char *src, size_t cap);

/*
 * Write our pid to <path> through <path>.tmp and a rename, so a reader
 * never sees a partial file: tests and supervisors wait for it.  CDN_EIO
 * with errno set on failure.
 */
int cdn_ready_file_write(const char *path);

/* Monotonic clock in milliseconds and nanoseconds. */
uint64_t cdn_now_ms(void);
uint64_t cdn_now_ns(void);

#endif /* CDN_H */
