/*
 * Whether AddressSanitizer is built in (gcc says so with a macro, clang
 * with __has_feature): CDN_ASAN 1 or 0.  CDN_POISON and CDN_UNPOISON mark
 * memory that edged keeps for reuse as not to be touched, so that a use
 * of it is reported as a use after free() would be; without ASan they do
 * nothing.
 */
#ifndef CDN_ASAN_H
#define CDN_ASAN_H

#if defined(__SANITIZE_ADDRESS__)
#define CDN_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CDN_ASAN 1
#endif
#endif
#ifndef CDN_ASAN
#define CDN_ASAN 0
#endif

#if CDN_ASAN
#include <sanitizer/asan_interface.h>
#define CDN_POISON(p, n)   ASAN_POISON_MEMORY_REGION((p), (n))
#define CDN_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define CDN_POISON(p, n)   ((void)(p), (void)(n))
#define CDN_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

#endif /* CDN_ASAN_H */
