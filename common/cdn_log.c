/*
 * Diagnostic and access logs (common/cdn_log.h).
 *
 * Diagnostic log: a file descriptor swapped atomically on reopen; every line
 * is one write(2), so concurrent lines from several threads never interleave
 * within a line (O_APPEND).
 *
 * Access log: workers own their struct cdn_alog_buf.  The writer thread owns
 * the file descriptor.  al->mtx covers al->pending and al->stop; al->cond
 * wakes the writer.  A reopen request is a marker chunk in al->pending, so
 * lines handed over before it go to the old file and lines after to the new.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "common/cdn_log.h"

volatile int cdn_log_level_now = CDN_LOG_INFO;

static atomic_int diag_fd = STDERR_FILENO;
static char *diag_path;

static const char *const level_names[] = {"err", "warn", "info", "debug"};

int
cdn_log_level_parse(const char *s, enum cdn_log_level *out)
{
	for (size_t i = 0; i < CDN_ARRAY_LEN(level_names); i++) {
		if (strcmp(s, level_names[i]) == 0) {
			*out = (enum cdn_log_level)i;
			return CDN_OK;
		}
	}
	return CDN_EINVAL;
}

const char *
cdn_log_level_name(enum cdn_log_level level)
{
	CDN_ASSERT((unsigned)level < CDN_ARRAY_LEN(level_names));
	return level_names[level];
}

void
cdn_log_timestamp(char *buf, size_t len)
{
	struct timeval tv;
	struct tm tm;
	size_t n;

	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf + n, len - n, ".%03dZ", (int)(tv.tv_usec / 1000));
}

void
cdn_log_emit(enum cdn_log_level level, const char *subsys, const char *fmt, ...)
{
	char line[2048];
	size_t n;
	int m;
	va_list ap;

	cdn_log_timestamp(line, 32);
	n = strlen(line);
	m = snprintf(line + n, sizeof(line) - n,
	    " %s %s: ", cdn_log_level_name(level), subsys);
	if (m > 0)
		n += (size_t)m;
	va_start(ap, fmt);
	m = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
	va_end(ap);
	if (m > 0)
		n += (size_t)m;
	if (n >= sizeof(line))
		n = sizeof(line) - 1; /* truncated: keep the newline */
	line[n++] = '\n';
	(void)!write(atomic_load(&diag_fd), line, n);
}

static int
open_append(const char *path)
{
	return open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
}

int
cdn_log_open(const char *path)
{
	int fd, old;

	if (path == NULL || *path == '\0')
		return CDN_OK;
	fd = open_append(path);
	if (fd == -1) {
		CDN_LOG(
		    CDN_LOG_ERR, "log", "open %s: %s", path, strerror(errno));
		return CDN_EIO;
	}
	old = atomic_exchange(&diag_fd, fd);
	if (old != STDERR_FILENO)
		close(old);
	free(diag_path);
	diag_path = cdn_xstrdup(path);
	return CDN_OK;
}

void
cdn_log_reopen(void)
{
	char *path;

	if (diag_path == NULL)
		return;
	path = cdn_xstrdup(diag_path);
	if (cdn_log_open(path) != CDN_OK)
		CDN_LOG(CDN_LOG_WARN, "log", "keeping the old error log");
	free(path);
}

void
cdn_log_close(void)
{
	int old = atomic_exchange(&diag_fd, STDERR_FILENO);

	if (old != STDERR_FILENO)
		close(old);
	free(diag_path);
	diag_path = NULL;
}

/* ---- access log ---- */

#define ALOG_BUF_HANDOVER 32768 /* a worker hands over at this size */

struct alog_chunk {
	struct alog_chunk *next;
	int is_reopen; /* a marker: reopen the file here (len is 0) */
	size_t len;
	char data[];
};

struct cdn_alog {
	uint32_t magic;
#define CDN_ALOG_MAGIC 0x5be10a7du
	char *path;
	int fd;
	pthread_t thread;
	pthread_mutex_t mtx;
	pthread_cond_t cond;
	struct alog_chunk *pending, **pending_tail; /* under mtx */
	int stop;                                   /* under mtx */
};

struct cdn_alog_buf {
	uint32_t magic;
#define CDN_ALOG_BUF_MAGIC 0x0e4a7c39u
	struct cdn_alog *al;
	size_t len;
	char data[ALOG_BUF_HANDOVER + 2048];
};

static void
alog_write_all(struct cdn_alog *al, const char *p, size_t len)
{
	ssize_t n;

	while (len > 0) {
		n = write(al->fd, p, len);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			CDN_LOG(CDN_LOG_ERR, "log", "write %s: %s", al->path,
			    strerror(errno));
			return;
		}
		p += n;
		len -= (size_t)n;
	}
}

static void *
alog_thread(void *arg)
{
	struct cdn_alog *al = arg;
	struct alog_chunk *list, *c;
	int stop, fd;

	for (;;) {
		pthread_mutex_lock(&al->mtx);
		while (al->pending == NULL && !al->stop)
			pthread_cond_wait(&al->cond, &al->mtx);
		list = al->pending;
		al->pending = NULL;
		al->pending_tail = &al->pending;
		stop = al->stop;
		pthread_mutex_unlock(&al->mtx);

		while ((c = list) != NULL) {
			list = c->next;
			if (!c->is_reopen) {
				alog_write_all(al, c->data, c->len);
				free(c);
				continue;
			}
			free(c);
			fd = open_append(al->path);
			if (fd == -1) {
				CDN_LOG(CDN_LOG_ERR, "log",
				    "reopen %s: %s (keeping the old file)",
				    al->path, strerror(errno));
			} else {
				close(al->fd);
				al->fd = fd;
			}
		}
		if (stop)
			return NULL;
	}
}

struct cdn_alog *
cdn_alog_new(const char *path)
{
	struct cdn_alog *al;
	int fd;

	if (path == NULL || *path == '\0')
		return NULL;
	fd = open_append(path);
	if (fd == -1) {
		CDN_LOG(CDN_LOG_ERR, "log", "open access log %s: %s", path,
		    strerror(errno));
		return NULL;
	}
	al = cdn_xcalloc(1, sizeof(*al));
	al->magic = CDN_ALOG_MAGIC;
	al->path = cdn_xstrdup(path);
	al->fd = fd;
	al->pending_tail = &al->pending;
	pthread_mutex_init(&al->mtx, NULL);
	pthread_cond_init(&al->cond, NULL);
	if (pthread_create(&al->thread, NULL, alog_thread, al) != 0) {
		CDN_LOG(CDN_LOG_ERR, "log", "pthread_create failed");
		close(fd);
		free(al->path);
		free(al);
		return NULL;
	}
	return al;
}

void
cdn_alog_free(struct cdn_alog **alp)
{
	struct cdn_alog *al = *alp;

	*alp = NULL;
	if (al == NULL)
		return;
	MAGIC_CHECK(al, CDN_ALOG_MAGIC);
	pthread_mutex_lock(&al->mtx);
	al->stop = 1;
	pthread_cond_signal(&al->cond);
	pthread_mutex_unlock(&al->mtx);
	pthread_join(al->thread, NULL);
	CDN_ASSERT(al->pending == NULL);
	close(al->fd);
	pthread_mutex_destroy(&al->mtx);
	pthread_cond_destroy(&al->cond);
	free(al->path);
	MAGIC_WIPE(al);
	free(al);
}

void
cdn_alog_reopen(struct cdn_alog *al)
{
	struct alog_chunk *c;

	if (al == NULL)
		return;
	MAGIC_CHECK(al, CDN_ALOG_MAGIC);
	c = cdn_xmalloc(sizeof(*c));
	c->next = NULL;
	c->is_reopen = 1;
	c->len = 0;
	pthread_mutex_lock(&al->mtx);
	*al->pending_tail = c;
	al->pending_tail = &c->next;
	pthread_cond_signal(&al->cond);
	pthread_mutex_unlock(&al->mtx);
}

struct cdn_alog_buf *
cdn_alog_buf_new(struct cdn_alog *al)
{
	struct cdn_alog_buf *b;

	if (al == NULL)
		return NULL;
	b = cdn_xmalloc(sizeof(*b));
	b->magic = CDN_ALOG_BUF_MAGIC;
	b->al = al;
	b->len = 0;
	return b;
}

void
cdn_alog_buf_flush(struct cdn_alog_buf *b)
{
	struct alog_chunk *c;
	struct cdn_alog *al;

	if (b == NULL || b->len == 0)
		return;
	MAGIC_CHECK(b, CDN_ALOG_BUF_MAGIC);
	al = b->al;
	c = malloc(sizeof(*c) + b->len);
	if (c == NULL) {
		b->len = 0; /* drop the lines rather than stall the loop */
		return;
	}
	c->next = NULL;
	c->is_reopen = 0;
	c->len = b->len;
	memcpy(c->data, b->data, b->len);
	b->len = 0;
	pthread_mutex_lock(&al->mtx);
	*al->pending_tail = c;
	al->pending_tail = &c->next;
	pthread_cond_signal(&al->cond);
	pthread_mutex_unlock(&al->mtx);
}

void
cdn_alog_buf_free(struct cdn_alog_buf **bp)
{
	struct cdn_alog_buf *b = *bp;

	*bp = NULL;
	if (b == NULL)
		return;
	cdn_alog_buf_flush(b);
	MAGIC_WIPE(b);
	free(b);
}

void
cdn_alog_printf(struct cdn_alog_buf *b, const char *fmt, ...)
{
	size_t room;
	int n;
	va_list ap;

	if (b == NULL)
		return;
	room = sizeof(b->data) - b->len;
	va_start(ap, fmt);
	n = vsnprintf(b->data + b->len, room, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n + 1 >= room) {
		/* Too long for what is left: flush and retry once, truncating.
		 */
		cdn_alog_buf_flush(b);
		room = sizeof(b->data);
		va_start(ap, fmt);
		n = vsnprintf(b->data, room - 1, fmt, ap);
		va_end(ap);
		if (n < 0)
			return;
		if ((size_t)n >= room - 1)
			n = (int)room - 2;
	}
	b->len += (size_t)n;
	b->data[b->len++] = '\n';
	if (b->len >= ALOG_BUF_HANDOVER)
		cdn_alog_buf_flush(b);
}
