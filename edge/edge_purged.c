/*
 * edged's side of purges: the tags a fill records, the Surrogate-Key field
 * kept from clients, and purged run as a child process.
 *
 * The child.  With purge_listen or purge_bus set, edged fork+execs the
 * purged binary found beside its own (/proc/self/exe), so that one
 * command runs a whole node.  It runs on the main thread's event_base: SIGCHLD
 * reaps it and a timer restarts it, after 100 ms doubling to 10 s while it
 * keeps dying within 10 s of its start (a bad token file must not make edged
 * spin). The child gets SIGTERM if edged dies (PR_SET_PDEATHSIG), so that a
 * restarted edged finds the purge address free; edge_purged_fini() stops
 * it on shutdown.  purged shares nothing with edged but the LMDB
 * environment.
 *
 * Its configuration.  purged gets edged's whole effective configuration
 * (defaults, the file, the flags), not a list of flags: it needs the sites
 * and their key rules to build the keys edged stores under, and edged may
 * run from flags alone.  It goes as the --dump-config text, checked to load
 * back to the same values (conf_dump_buf()), in a sealed memfd that the
 * child inherits (--config-fd): no file to place, protect or remove after
 * a crash, nothing the child can change, no limit but the loader's, and
 * one copy serves every restart.  A reload (SIGHUP) makes a new memfd and
 * replaces the child: SIGTERM (purged answers the purges it has, then
 * exits) and a new one on the new memfd once the old has exited, so that
 * purges are keyed by the same rules as the node that stores.
 *
 * Its listener.  edged binds purge_listen itself and keeps the socket;
 * every child serves it (--listen-fd).  Purges sent while one child
 * replaces another, or while a takeover hands the socket to a new edged
 * (edge_takeover.c), wait in its accept queue instead of being refused.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "cache/cache.h"
#include "common/cdn_log.h"
#include "conf/conf.h"
#include "edge/edge_int.h"
#include "http/http_access.h"
#include "http/http_listen.h"

#define TAG_FIELDS_MAX    8
#define RESTART_MIN_MS    100
#define RESTART_MAX_MS    10000
#define RESTART_STABLE_MS 10000
#define STOP_WAIT_MS      3000
#define LISTEN_BACKLOG    128

struct edge_purged {
	uint32_t magic;
#define EDGE_PURGED_MAGIC 0x2b7d51c6u
	char *fields_buf; /* cache_tag_fields, split in place */
	const char *fields[TAG_FIELDS_MAX];
	struct cache_name field_names[TAG_FIELDS_MAX]; /* the same, sized */
	unsigned nfields;
	int pass_surrogate_key;
	/* the child, main thread only */
	char *exe;
	int config_fd; /* the sealed memfd of the configuration, or -1 */
	int listen_fd; /* purge_listen, or -1 */
	pid_t pid;
	uint64_t started_ms;
	uint64_t backoff_ms;
	struct event *sigchld;
	struct event *restart;
	unsigned restarts;
	int replacing; /* the child was told to stop for a new config */
	int deferred;  /* a takeover: edge_purged_start() spawns it */
};

/* ---- tags, from worker threads (read-only after init) ---- */

const struct cache_name *
edge_purge_tag_fields(const struct edge *e, unsigned *n)
{
	const struct edge_purged *p = e->purged;

	*n = p != NULL ? p->nfields : 0;
	return p != NULL ? p->field_names : NULL;
}

int
edge_purge_on_fill(struct edge *e, struct cache_obj *o, const char *fields,
    size_t len, int may_have_tags, uint64_t purge_gen)
{
	struct edge_purged *p = e->purged;
	char tags[CACHE_TAGS_CAP];
	size_t n;

	o->purge_gen = purge_gen;
	if (p == NULL || p->nfields == 0 || !may_have_tags)
		return CDN_OK;
	n = cache_tags_parse(
	    fields, len, p->fields, p->nfields, tags, sizeof(tags));
	if (n == 0)
		return CDN_OK;
	return cache_obj_set_tags(o, tags, n);
}

int
edge_purge_hides_field(const struct edge *e, const char *name, size_t len)
{
	const struct edge_purged *p = e->purged;

	return p != NULL && !p->pass_surrogate_key && len == 13 &&
	    strncasecmp(name, "surrogate-key", 13) == 0;
}

/* ---- the child ---- */

static void
spawn(struct edge *e)
{
	struct edge_purged *p = e->purged;
	char fdarg[16], lfdarg[16];
	char *argv[6];
	pid_t pid;

	snprintf(fdarg, sizeof(fdarg), "%d", p->config_fd);
	snprintf(lfdarg, sizeof(lfdarg), "%d", p->listen_fd);
	argv[0] = p->exe;
	argv[1] = (char *)(uintptr_t) "--config-fd";
	argv[2] = fdarg;
	argv[3] = p->listen_fd != -1 ? (char *)(uintptr_t) "--listen-fd" : NULL;
	argv[4] = lfdarg;
	argv[5] = NULL;

	pid = fork();
	if (pid == -1) {
		CDN_LOG(CDN_LOG_ERR, "purge", "fork: %s", strerror(errno));
		return;
	}
	if (pid == 0) {
		sigset_t all;

		/* Only async-signal-safe calls until exec. */
		sigemptyset(&all);
		sigprocmask(SIG_SETMASK, &all, NULL);
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (getppid() == 1)
			_exit(1); /* edged died before the prctl */
		/* The one descriptor purged inherits, from its start: the
		 * offset is shared with edged and earlier children. */
		if (fcntl(p->config_fd, F_SETFD, 0) == -1 ||
		    lseek(p->config_fd, 0, SEEK_SET) == -1 ||
		    (p->listen_fd != -1 &&
		        fcntl(p->listen_fd, F_SETFD, 0) == -1))
			_exit(127);
		execv(p->exe, argv);
		_exit(127);
	}
	p->pid = pid;
	p->started_ms = cdn_now_ms();
	CDN_LOG(CDN_LOG_INFO, "purge", "started purged (pid %d) on %s",
	    (int)pid,
	    e->conf->purge_listen[0] != '\0' ? e->conf->purge_listen
	                                     : "the purge bus only");
}

static void
on_restart(evutil_socket_t fd, short what, void *arg)
{
	struct edge *e = arg;

	(void)fd;
	(void)what;
	if (e->purged->pid == 0 && !atomic_load(&e->draining))
		spawn(e);
}

static void
on_sigchld(evutil_socket_t sig, short what, void *arg)
{
	struct edge *e = arg;
	struct edge_purged *p = e->purged;
	struct timeval tv;
	pid_t pid;
	int status;

	(void)sig;
	(void)what;
	/* Only our own child: other children (none today) keep theirs. */
	if (p->pid == 0)
		return;
	pid = waitpid(p->pid, &status, WNOHANG);
	if (pid != p->pid)
		return;
	p->pid = 0;
	if (atomic_load(&e->draining)) {
		CDN_LOG(
		    CDN_LOG_INFO, "purge", "purged (pid %d) stopped", (int)pid);
		return;
	}
	if (p->replacing) {
		/* Its listener is closed: the new one can bind it now. */
		p->replacing = 0;
		CDN_LOG(CDN_LOG_INFO, "purge",
		    "purged (pid %d) stopped for the new configuration",
		    (int)pid);
		spawn(e);
		return;
	}
	if (cdn_now_ms() - p->started_ms >= RESTART_STABLE_MS)
		p->backoff_ms = RESTART_MIN_MS;
	CDN_LOG(CDN_LOG_WARN, "purge",
	    "purged (pid %d) %s %d: restarting in %llu ms", (int)pid,
	    WIFSIGNALED(status) ? "killed by signal" : "exited with",
	    WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status),
	    (unsigned long long)p->backoff_ms);
	p->restarts++;
	tv.tv_sec = (time_t)(p->backoff_ms / 1000);
	tv.tv_usec = (suseconds_t)(p->backoff_ms % 1000) * 1000;
	evtimer_add(p->restart, &tv);
	p->backoff_ms *= 2;
	if (p->backoff_ms > RESTART_MAX_MS)
		p->backoff_ms = RESTART_MAX_MS;
}

/* The purged binary beside ours. */
static char *
purged_path(void)
{
	char buf[PATH_MAX];
	ssize_t n;
	char *slash;

	n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
	if (n <= 0)
		return NULL;
	buf[n] = '\0';
	slash = strrchr(buf, '/');
	if (slash == NULL || (size_t)(slash - buf) + 8 >= sizeof(buf))
		return NULL;
	strcpy(slash + 1, "purged");
	return cdn_xstrdup(buf);
}

/*
 * What purged would refuse at start-up, refused here, so that a bad
 * token file or ACL stops edged with the reason instead of making it
 * restart purged every 10 s.
 */
static int
check_access(const struct conf *c)
{
	struct http_tokens t;
	struct http_acl acl;
	const char *why;
	int rc = CDN_OK;

	memset(&acl, 0, sizeof(acl));
	for (unsigned i = 0; i < c->purge_allow.n && rc == CDN_OK; i++) {
		if (http_acl_add(&acl, c->purge_allow.v[i], &why) != CDN_OK) {
			CDN_LOG(CDN_LOG_ERR, "purge",
			    "purge_allow \"%s\": %s (write ADDRESS[/PREFIX] "
			    "or loopback)",
			    c->purge_allow.v[i], why);
			rc = CDN_EINVAL;
		}
	}
	http_acl_free(&acl);
	if (rc == CDN_OK &&
	    http_tokens_load(&t, c->purge_token_file, 0, "purge",
	        "purge_token_file") != CDN_OK)
		rc = CDN_EINVAL;
	else if (rc == CDN_OK)
		http_tokens_free(&t);
	return rc;
}

/*
 * The sealed memfd that hands purged the configuration (see the top of
 * this file); -1 after logging why.
 */
static int
config_fd_new(const struct conf *c)
{
	char *buf;
	size_t len, off = 0;
	ssize_t n;
	int fd, rc;

	rc = conf_dump_buf(c, &buf, &len, stderr);
	if (rc != CDN_OK) {
		CDN_LOG(CDN_LOG_ERR, "purge",
		    "the configuration cannot be handed to purged: %s",
		    rc == CDN_ENOMEM ? "out of memory"
		                     : "its dump does not load back as it is");
		return -1;
	}
	fd = memfd_create("edged-config", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd == -1) {
		CDN_LOG(
		    CDN_LOG_ERR, "purge", "memfd_create: %s", strerror(errno));
		goto fail;
	}
	while (off < len) {
		n = write(fd, buf + off, len - off);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			CDN_LOG(CDN_LOG_ERR, "purge",
			    "writing the configuration for purged: %s",
			    strerror(errno));
			goto fail;
		}
		off += (size_t)n;
	}
	if (fcntl(fd, F_ADD_SEALS,
	        F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) ==
	    -1) {
		CDN_LOG(CDN_LOG_ERR, "purge", "sealing the configuration: %s",
		    strerror(errno));
		goto fail;
	}
	free(buf);
	return fd;
fail:
	if (fd != -1)
		close(fd);
	free(buf);
	return -1;
}

int
edge_purged_init(struct edge *e)
{
	const struct conf *c = e->conf;
	struct edge_purged *p;
	char *save = NULL, *tok;

	CDN_ASSERT(e->purged == NULL && e->main_base != NULL);
	p = cdn_xcalloc(1, sizeof(*p));
	p->magic = EDGE_PURGED_MAGIC;
	p->config_fd = -1;
	p->listen_fd = -1;
	e->purged = p;
	p->pass_surrogate_key = (int)c->surrogate_key_pass;
	p->fields_buf = cdn_xstrdup(c->cache_tag_fields);
	for (tok = strtok_r(p->fields_buf, " ,", &save); tok != NULL;
	     tok = strtok_r(NULL, " ,", &save)) {
		if (p->nfields == TAG_FIELDS_MAX) {
			CDN_LOG(CDN_LOG_ERR, "purge",
			    "cache_tag_fields: at most %d fields",
			    TAG_FIELDS_MAX);
			return CDN_EINVAL;
		}
		p->field_names[p->nfields].p = tok;
		p->field_names[p->nfields].len = strlen(tok);
		p->fields[p->nfields++] = tok;
	}
	/* The purge bus is read by purged: it runs for either. */
	if (c->purge_listen[0] == '\0' && c->purge_bus[0] == '\0')
		return CDN_OK;
	if (c->purge_listen[0] != '\0' &&
	    (c->cache_dir[0] == '\0' || c->purge_token_file[0] == '\0')) {
		CDN_LOG(CDN_LOG_ERR, "purge",
		    "purge_listen needs cache_dir and purge_token_file");
		return CDN_EINVAL;
	}
	if (c->purge_listen[0] != '\0' && check_access(c) != CDN_OK)
		return CDN_EINVAL;
	/* Purges would be acknowledged against files no one serves, which a
	 * later start could serve again: refuse them (connection refused). */
	if (e->store == NULL) {
		CDN_LOG(CDN_LOG_ERR, "purge",
		    "purge API not started: the cache is disabled (%s)",
		    e->cache_off);
		return CDN_OK;
	}
	p->exe = purged_path();
	if (p->exe == NULL || access(p->exe, X_OK) != 0) {
		CDN_LOG(CDN_LOG_ERR, "purge",
		    "no purged binary beside edged (%s)",
		    p->exe != NULL ? p->exe : "/proc/self/exe unreadable");
		return CDN_EINVAL;
	}
	p->config_fd = config_fd_new(c);
	if (p->config_fd == -1)
		return CDN_EINVAL;
	if (c->purge_listen[0] != '\0') {
		p->listen_fd =
		    edge_takeover_take(e, EDGE_LISTEN_PURGE, c->purge_listen);
		if (p->listen_fd == -1)
			p->listen_fd = http_listen_socket(
			    c->purge_listen, 0, LISTEN_BACKLOG, "purge");
		if (p->listen_fd == -1)
			return CDN_EIO;
	}
	p->backoff_ms = RESTART_MIN_MS;
	p->sigchld = evsignal_new(e->main_base, SIGCHLD, on_sigchld, e);
	p->restart = evtimer_new(e->main_base, on_restart, e);
	event_add(p->sigchld, NULL);
	if (edge_takeover_pending(e)) {
		/* The old edged's purged holds purge_listen until it stops. */
		p->deferred = 1;
		return CDN_OK;
	}
	spawn(e);
	return p->pid != 0 ? CDN_OK : CDN_EIO;
}

int
edge_purged_listen_fd(const struct edge *e)
{
	return e->purged != NULL ? e->purged->listen_fd : -1;
}

void
edge_purged_start(struct edge *e)
{
	struct edge_purged *p = e->purged;

	if (p == NULL || !p->deferred)
		return;
	MAGIC_CHECK(p, EDGE_PURGED_MAGIC);
	p->deferred = 0;
	if (!atomic_load(&e->draining))
		spawn(e);
}

int
edge_purged_reload(struct edge *e, const struct conf *c)
{
	struct edge_purged *p = e->purged;
	int fd;

	if (p == NULL || p->config_fd == -1)
		return CDN_OK; /* no child */
	MAGIC_CHECK(p, EDGE_PURGED_MAGIC);
	fd = config_fd_new(c);
	if (fd == -1)
		return CDN_EINVAL;
	close(p->config_fd);
	p->config_fd = fd;
	if (p->pid == 0)
		return CDN_OK; /* the restart timer spawns it on the new one */
	p->replacing = 1;
	kill(p->pid, SIGTERM);
	return CDN_OK;
}

void
edge_purged_reopen_logs(struct edge *e)
{
	struct edge_purged *p = e->purged;

	if (p != NULL && p->pid != 0 && kill(p->pid, SIGUSR1) != 0)
		CDN_LOG(CDN_LOG_WARN, "purge", "SIGUSR1 to purged (pid %d): %s",
		    (int)p->pid, strerror(errno));
}

/* Stop the child: SIGTERM, then SIGKILL after STOP_WAIT_MS. */
static void
stop_child(struct edge_purged *p)
{
	uint64_t until;
	struct timespec ts = {0, 10 * 1000000L};
	int status;

	if (p->pid == 0)
		return;
	kill(p->pid, SIGTERM);
	until = cdn_now_ms() + STOP_WAIT_MS;
	while (waitpid(p->pid, &status, WNOHANG) == 0) {
		if (cdn_now_ms() >= until) {
			kill(p->pid, SIGKILL);
			(void)waitpid(p->pid, &status, 0);
			break;
		}
		nanosleep(&ts, NULL);
	}
	p->pid = 0;
}

void
edge_purged_stop(struct edge *e)
{
	struct edge_purged *p = e->purged;

	if (p == NULL)
		return;
	MAGIC_CHECK(p, EDGE_PURGED_MAGIC);
	CDN_ASSERT(atomic_load(&e->draining)); /* or SIGCHLD restarts it */
	if (p->pid != 0)
		CDN_LOG(CDN_LOG_INFO, "purge", "stopping purged (pid %d)",
		    (int)p->pid);
	stop_child(p);
	if (p->restart != NULL)
		evtimer_del(p->restart);
}

void
edge_purged_fini(struct edge *e)
{
	struct edge_purged *p = e->purged;

	if (p == NULL)
		return;
	MAGIC_CHECK(p, EDGE_PURGED_MAGIC);
	e->purged = NULL;
	stop_child(p);
	if (p->sigchld != NULL)
		event_free(p->sigchld);
	if (p->restart != NULL)
		event_free(p->restart);
	if (p->config_fd != -1)
		close(p->config_fd);
	if (p->listen_fd != -1)
		close(p->listen_fd);
	free(p->exe);
	free(p->fields_buf);
	MAGIC_WIPE(p);
	free(p);
}
