/*
 * Diagnostic log and access log.
 *
 * The diagnostic log (CDN_LOG) is rare output: each line is formatted on the
 * caller's stack and written with one write(2) to stderr or the error log.
 *
 * The access log is per request, so it never touches the file from an event
 * loop: each worker appends lines to its own struct cdn_alog_buf, and hands
 * full buffers (or whatever it has, every 200 ms) to the one writer thread
 * of struct cdn_alog, which does the write(2)s and reopens the file on
 * SIGHUP.
 */
#ifndef CDN_LOG_H
#define CDN_LOG_H

#include <stdarg.h>
#include <stddef.h>

#include "common/cdn.h"

enum cdn_log_level {
	CDN_LOG_ERR = 0,
	CDN_LOG_WARN = 1,
	CDN_LOG_INFO = 2,
	CDN_LOG_DEBUG = 3,
};

/* Read without a lock on every CDN_LOG: set once at start-up or reload. */
extern volatile int cdn_log_level_now;

#define CDN_LOG(level, subsys, ...)                                            \
	do {                                                                   \
		if ((int)(level) <= cdn_log_level_now)                         \
			cdn_log_emit((level), (subsys), __VA_ARGS__);          \
	} while (0)

void cdn_log_emit(enum cdn_log_level level, const char *subsys, const char *fmt,
    ...) __attribute__((format(printf, 3, 4)));

/* Parse "err", "warn", "info" or "debug".  Returns CDN_EINVAL if unknown. */
int cdn_log_level_parse(const char *s, enum cdn_log_level *out) CDN_WUR;
const char *cdn_log_level_name(enum cdn_log_level level);

/*
 * Send diagnostics to <path> (NULL: stderr).  Returns CDN_EIO if the file
 * cannot be opened; the previous destination stays in use.
 */
int cdn_log_open(const char *path) CDN_WUR;
/* Reopen the diagnostic log file after rotation (SIGHUP). */
void cdn_log_reopen(void);
void cdn_log_close(void);

/* ISO 8601 UTC with milliseconds, "2026-11-26T23:20:03.123Z"; buf >= 32. */
void cdn_log_timestamp(char *buf, size_t len);

struct cdn_alog;
struct cdn_alog_buf;

/*
 * Start the access-log writer thread for <path> (NULL or "": no access log,
 * and every call below becomes a no-op on a NULL object).  Returns NULL and
 * logs if the file cannot be opened.
 */
struct cdn_alog *cdn_alog_new(const char *path);
/* Flushes every handed-over line, stops the thread, closes the file. */
void cdn_alog_free(struct cdn_alog **alp);
/* Ask the writer thread to reopen the file (after rotation).  Any thread. */
void cdn_alog_reopen(struct cdn_alog *al);

/* One worker's buffer.  Owned and used by one thread only. */
struct cdn_alog_buf *cdn_alog_buf_new(struct cdn_alog *al);
/* Hands over what is buffered, then frees. */
void cdn_alog_buf_free(struct cdn_alog_buf **bp);
/* Append one formatted line (a newline is added). */
void cdn_alog_printf(struct cdn_alog_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Hand what is buffered to the writer thread (from a worker's timer). */
void cdn_alog_buf_flush(struct cdn_alog_buf *b);

#endif /* CDN_LOG_H */
