/*
 * A damaged cache directory (docs/cache-damage.md): the marker a crash
 * inside the store leaves, the checks made before LMDB reads a data page,
 * and moving a damaged cache aside.
 *
 * LMDB trusts its file.  A page overwritten on disk makes it follow wild
 * offsets, and a data.mdb shorter than its meta page says faults (SIGBUS)
 * on the first access past its end.  What can be checked without reading
 * a data page is checked at open (cache_store.c); what cannot, a scribbled
 * leaf page, shows when LMDB trips on it: an error code (the store then
 * marks itself damaged and stops using the file) or a fault.  A fault
 * leaves the process in an unknown state, so it still dies, with its core;
 * but when the faulting thread was inside the store (cache_lmdb_depth > 0)
 * the handler here first writes CACHE_DAMAGE_FILE into the cache
 * directory, so that the next start moves the files aside instead of
 * dying on the same page again.  A fault elsewhere, a signal sent by
 * another process, or kill -9 (which no handler sees) leaves no marker:
 * the cache survives those, as before.
 *
 * The handler uses only open/write/close on a directory fd opened at
 * start (openat follows the directory even if it is renamed), and then
 * gives the signal back to the action that was there before (the default
 * one, which dumps core, or a sanitizer's).
 *
 * Moving aside and other processes.  Every process with the store open
 * (edged, purged) holds a shared flock on CACHE_LOCK_FILE; the move takes
 * it exclusively, so it waits until none has the files open, and a
 * process that opens the store meanwhile finds, once it has its lock,
 * that the files it would use are the fresh ones.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cache/cache.h"
#include "cache/cache_int.h"
#include "common/cdn_log.h"

#define MOVE_POLL_MS    50 /* between tries of the exclusive lock */
#define LOCK_TRIES      8  /* of a shared lock the directory moved under */
#define MARKER_LINE_MAX 96
#define ASIDE_PREFIX    "damaged-"
#define ASIDE_TRIES     100 /* names tried within one second */
#define MARKED_MSG      "cache: marked damaged, moved aside at the next start: "
#define UNMARKED_MSG    "cache: could not mark the cache damaged: "

_Thread_local unsigned cache_lmdb_depth;

/* The files of the store that move aside; the lock file and the purge
 * audit log stay (the lock is what the move holds). */
static const char *const store_files[] = {
    "data.mdb", "lock.mdb", CACHE_PURGE_SEQ_FILE, CACHE_DAMAGE_FILE};

static const int fatal_sigs[] = {SIGSEGV, SIGBUS, SIGABRT};
static struct sigaction fatal_prev[CDN_ARRAY_LEN(fatal_sigs)];
static pthread_once_t fatal_once = PTHREAD_ONCE_INIT;
static atomic_int armed_dirfd = -1;

/* ---- the fatal-signal handler (async-signal-safe code only) ---- */

static size_t
put_str(char *p, size_t at, size_t cap, const char *s)
{
	while (*s != '\0' && at + 1 < cap)
		p[at++] = *s++;
	return at;
}

static size_t
put_uint(char *p, size_t at, size_t cap, unsigned long v)
{
	char d[24];
	size_t n = 0;

	do
		d[n++] = (char)('0' + v % 10);
	while ((v /= 10) != 0 && n < sizeof(d));
	while (n > 0 && at + 1 < cap)
		p[at++] = d[--n];
	return at;
}

/* 1 if all <n> bytes were written. */
static int
sig_write(int fd, const char *p, size_t n)
{
	return write(fd, p, n) == (ssize_t)n;
}

/* A fault the process raised itself, not a signal another one sent: the
 * kernel's (si_code > 0), or abort()'s (tgkill to itself). */
static int
is_own_fault(int sig, const siginfo_t *si)
{
	if (si == NULL)
		return 0;
	if (si->si_code > 0)
		return sig != SIGABRT;
	return sig == SIGABRT && si->si_code == SI_TKILL &&
	    si->si_pid == getpid();
}

static void
on_fatal(int sig, siginfo_t *si, void *uc)
{
	char line[MARKER_LINE_MAX];
	size_t n = 0, i;
	int fd, dirfd, ok = 0, saved = errno;

	(void)uc;
	dirfd = atomic_load_explicit(&armed_dirfd, memory_order_relaxed);
	if (cache_lmdb_depth > 0 && dirfd != -1 && is_own_fault(sig, si)) {
		n = put_str(line, n, sizeof(line),
		    sig == SIGSEGV      ? "SIGSEGV"
		        : sig == SIGBUS ? "SIGBUS"
		                        : "SIGABRT");
		n = put_str(line, n, sizeof(line), " inside the store, pid ");
		n = put_uint(line, n, sizeof(line), (unsigned long)getpid());
		line[n++] = '\n';
		/* The first cause stays (a sanitizer's abort may follow). */
		fd = openat(dirfd, CACHE_DAMAGE_FILE,
		    O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
		if (fd != -1) {
			ok = sig_write(fd, line, n);
			close(fd);
		} else {
			ok = errno == EEXIST;
		}
		/* The one word this death gets in the log (stderr). */
		(void)sig_write(STDERR_FILENO, ok ? MARKED_MSG : UNMARKED_MSG,
		    ok ? sizeof(MARKED_MSG) - 1 : sizeof(UNMARKED_MSG) - 1);
		(void)sig_write(STDERR_FILENO, line, n);
	}
	for (i = 0; i < CDN_ARRAY_LEN(fatal_sigs); i++)
		if (fatal_sigs[i] == sig)
			sigaction(sig, &fatal_prev[i], NULL);
	/* A fault happens again on return, now to the previous action; a
	 * sent signal (abort) must be sent again. */
	if (si == NULL || si->si_code <= 0)
		raise(sig);
	errno = saved;
}

static void
fatal_install(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_fatal;
	sa.sa_flags = SA_SIGINFO;
	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < CDN_ARRAY_LEN(fatal_sigs); i++)
		if (sigaction(fatal_sigs[i], &sa, &fatal_prev[i]) == -1)
			CDN_LOG(CDN_LOG_WARN, "cache", "sigaction: %s",
			    strerror(errno));
}

void
cache_damage_arm(int dirfd)
{
	pthread_once(&fatal_once, fatal_install);
	atomic_store_explicit(&armed_dirfd, dirfd, memory_order_relaxed);
}

void
cache_damage_disarm(int dirfd)
{
	int want = dirfd;

	atomic_compare_exchange_strong(&armed_dirfd, &want, -1);
}

/* ---- the marker, outside signal handlers ---- */

void
cache_damage_mark(int dirfd, const char *why)
{
	FILE *f;
	int fd;

	fd = openat(dirfd, CACHE_DAMAGE_FILE,
	    O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd == -1 && errno == EEXIST)
		return; /* the first cause stays */
	if (fd == -1 || (f = fdopen(fd, "w")) == NULL) {
		CDN_LOG(CDN_LOG_ERR, "cache", "%s: %s", CACHE_DAMAGE_FILE,
		    strerror(errno));
		if (fd != -1)
			close(fd);
		return;
	}
	fprintf(f, "%s, pid %ld\n", why, (long)getpid());
	if (fclose(f) != 0)
		CDN_LOG(CDN_LOG_ERR, "cache", "%s: %s", CACHE_DAMAGE_FILE,
		    strerror(errno));
}

int
cache_damage_marked(int dirfd, char *why, size_t cap)
{
	char line[MARKER_LINE_MAX];
	ssize_t n;
	int fd;

	CDN_ASSERT(cap > 0);
	fd = openat(dirfd, CACHE_DAMAGE_FILE, O_RDONLY | O_CLOEXEC);
	if (fd == -1)
		return 0;
	n = read(fd, line, sizeof(line) - 1);
	close(fd);
	line[n > 0 ? n : 0] = '\0';
	line[strcspn(line, "\n")] = '\0';
	snprintf(why, cap, "marked damaged: %s",
	    line[0] != '\0' ? line : "no reason given");
	return 1;
}

/* ---- checks ---- */

int
cache_damage_check_size(int dirfd, uint64_t need, char *why, size_t cap)
{
	struct stat st;

	if (fstatat(dirfd, "data.mdb", &st, 0) == -1) {
		snprintf(why, cap, "data.mdb: %s", strerror(errno));
		return CDN_ECORRUPT;
	}
	if ((uint64_t)st.st_size >= need)
		return CDN_OK;
	snprintf(why, cap,
	    "data.mdb has %llu bytes, its meta page needs %llu (truncated)",
	    (unsigned long long)st.st_size, (unsigned long long)need);
	return CDN_ECORRUPT;
}

/* Is <fd> still the lock file at <path>? */
static int
is_same_file(int fd, const char *path)
{
	struct stat a, b;

	return fstat(fd, &a) == 0 && stat(path, &b) == 0 &&
	    a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

int
cache_damage_lock_shared(const char *dir, int *fdp)
{
	char path[PATH_MAX];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, CACHE_LOCK_FILE);
	for (int i = 0; i < LOCK_TRIES; i++) {
		fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
		if (fd == -1)
			return CDN_EIO;
		if (flock(fd, LOCK_SH) == -1) {
			int e = errno;

			close(fd);
			errno = e;
			return CDN_EIO;
		}
		if (is_same_file(fd, path)) {
			*fdp = fd;
			return CDN_OK;
		}
		close(fd); /* replaced while we waited: lock the new one */
	}
	errno = EAGAIN;
	return CDN_EIO;
}

/* ---- moving aside ---- */

/* Make <dir>/damaged-<UTC time>[-N]; its path in <out>. */
static int
aside_mkdir(const char *dir, char *out, size_t cap)
{
	char stamp[32];
	struct tm tm;
	time_t now = time(NULL);

	gmtime_r(&now, &tm);
	strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm);
	for (int i = 0; i < ASIDE_TRIES; i++) {
		if (i == 0)
			snprintf(out, cap, "%s/%s%s", dir, ASIDE_PREFIX, stamp);
		else
			snprintf(out, cap, "%s/%s%s-%d", dir, ASIDE_PREFIX,
			    stamp, i);
		if (mkdir(out, 0755) == 0)
			return CDN_OK;
		if (errno != EEXIST)
			return CDN_EIO;
	}
	errno = EEXIST;
	return CDN_EIO;
}

int
cache_store_move_aside(const char *dir, unsigned wait_ms, char *aside,
    size_t aside_cap, char *why, size_t why_cap)
{
	char lock[PATH_MAX], from[PATH_MAX], to[PATH_MAX];
	struct timespec ts = {0, MOVE_POLL_MS * 1000000L};
	uint64_t until = cdn_now_ms() + wait_ms;
	int fd, rc = CDN_EIO;

	CDN_ASSERT(dir != NULL && aside != NULL && why != NULL);
	snprintf(lock, sizeof(lock), "%s/%s", dir, CACHE_LOCK_FILE);
	fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd == -1) {
		snprintf(why, why_cap, "%s", strerror(errno));
		return CDN_EIO;
	}
	while (flock(fd, LOCK_EX | LOCK_NB) == -1) {
		int busy = errno == EWOULDBLOCK;

		if (!busy || cdn_now_ms() >= until) {
			snprintf(why, why_cap, "%s",
			    busy ? "still open in another process"
			         : strerror(errno));
			close(fd);
			return busy ? CDN_AGAIN : CDN_EIO;
		}
		nanosleep(&ts, NULL);
	}
	if (aside_mkdir(dir, aside, aside_cap) != CDN_OK) {
		snprintf(why, why_cap, "mkdir: %s", strerror(errno));
		goto out;
	}
	for (size_t i = 0; i < CDN_ARRAY_LEN(store_files); i++) {
		snprintf(from, sizeof(from), "%s/%s", dir, store_files[i]);
		snprintf(to, sizeof(to), "%s/%s", aside, store_files[i]);
		if (rename(from, to) == -1 && errno != ENOENT) {
			snprintf(why, why_cap, "rename %s: %s", store_files[i],
			    strerror(errno));
			goto out;
		}
	}
	rc = CDN_OK;
out:
	close(fd); /* releases the lock */
	return rc;
}
