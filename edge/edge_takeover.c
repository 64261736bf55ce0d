/*
 * Upgrades without a dropped request: a new edged takes over the listening
 * sockets of a running one (edged --takeover, same configuration).
 *
 * The running edged listens on a unix socket (takeover_socket; by default
 * edged.takeover in cache_dir).  A new edged started with --takeover
 * connects to it before it binds anything, asks ("T": a connection that
 * does not ask is only someone checking that the path is live) and
 * receives every listening socket of the old one, one SOCK_SEQPACKET
 * message per socket ("L KIND ADDR", the descriptor as SCM_RIGHTS), then
 * "E".  They are the same kernel sockets, so a connection queued on one
 * is accepted by whichever process accepts first and none is refused.
 * The new edged starts its workers on them (an address the old one did
 * not have is probed and bound as usual) and sends "R".  The old one
 * closes its admin listener (the new one answers /healthz now), drains as
 * on SIGTERM (listeners closed, in-flight responses finished, idle
 * keep-alive connections closed between responses), stops its purged and
 * answers "D".  The purge_listen socket (edge_purged.c) is handed over
 * with the others: only then does the new edged start its purged on it,
 * and purges sent meanwhile wait in its queue.  The new edged then takes
 * the unix socket's path over (it bound a temporary name: rename() swaps
 * them atomically).
 *
 * A takeover that fails before "R" (the new edged exits: its connection
 * closes) or takes longer than READY_WAIT_MS leaves the old edged serving,
 * and it logs why.  Main thread only, on both sides.
 *
 * SIGUSR2 makes the running edged start the new one itself (nginx's way):
 * the binary at the path it was started from, which a package upgrade
 * replaced, with its own command line and --takeover.  Under systemd the
 * new edged is then in the service's cgroup, and it tells systemd that it
 * is the main process now (MAINPID=, accepted with NotifyAccess=all); the
 * old one does not say STOPPING=1 for a takeover's drain.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/listener.h>

#include "common/cdn_log.h"
#include "common/cdn_notify.h"
#include "edge/edge_int.h"

#define MSG_MAX        512   /* "L KIND HOST:PORT"; the address is short */
#define READY_WAIT_MS  60000 /* the new edged opens the cache, loads TLS */
#define HANDOVER_IO_MS 10000 /* either side stalled this long: give up */
#define DONE_WAIT_MS   10000 /* > purged's stop (3 s) and a drain's start */
#define LISTEN_QUEUE   4

struct takeover_fd {
	enum edge_listen_kind kind;
	char *addr;
	int fd; /* -1 once used */
};

struct edge_takeover {
	uint32_t magic;
#define EDGE_TAKEOVER_MAGIC 0x6e1f93b4u
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	char tmp[sizeof(((struct sockaddr_un *)0)->sun_path)];
	struct evconnlistener *listener; /* old side: NULL when off */
	int conn;                        /* the takeover under way, or -1 */
	pid_t peer;
	struct event *reply_ev;
	int asked;   /* the peer sent "T": it has the listeners */
	int handed;  /* the listeners went to a new edged: path is its own */
	pid_t child; /* the edged SIGUSR2 started, until it exits */
	struct event *sigchld; /* reaps it */
	/* new side */
	int from; /* connection to the old edged, or -1 */
	struct takeover_fd *fds;
	unsigned nfds;
};

static const char *const kind_names[EDGE_LISTEN_KINDS] = {
    [EDGE_LISTEN_PLAIN] = "listen",
    [EDGE_LISTEN_TLS] = "listen_tls",
    [EDGE_LISTEN_H2C] = "listen_h2c",
    [EDGE_LISTEN_ADMIN] = "admin_listen",
    [EDGE_LISTEN_PURGE] = "purge_listen"};

/* The socket path of <c>, or "" when there is none.  CDN_EINVAL if it
 * does not fit a sockaddr_un. */
static int
socket_path(const struct conf *c, char *path, size_t len)
{
	int n;

	if (c->takeover_socket[0] != '\0')
		n = snprintf(path, len, "%s", c->takeover_socket);
	else if (c->cache_dir[0] != '\0')
		n = snprintf(path, len, "%s/edged.takeover", c->cache_dir);
	else
		n = snprintf(path, len, "%s", "");
	if (n < 0 || (size_t)n >= len) {
		CDN_LOG(CDN_LOG_ERR, "takeover",
		    "takeover_socket: path longer than %zu bytes", len - 1);
		return CDN_EINVAL;
	}
	return CDN_OK;
}

static void
addr_un(struct sockaddr_un *sa, const char *path)
{
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	memcpy(sa->sun_path, path, strlen(path) + 1); /* fits: socket_path */
}

static void
set_io_timeout(int fd, uint64_t ms)
{
	struct timeval tv = {
	    (time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};

	(void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
}

/* One message, with descriptor <fd> unless it is -1. */
static int
send_msg(int sock, const char *text, int fd)
{
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} ctl;
	struct iovec iov = {(void *)(uintptr_t)text, strlen(text)};
	struct msghdr m;
	struct cmsghdr *cm;

	memset(&m, 0, sizeof(m));
	m.msg_iov = &iov;
	m.msg_iovlen = 1;
	if (fd != -1) {
		memset(&ctl, 0, sizeof(ctl));
		m.msg_control = ctl.buf;
		m.msg_controllen = sizeof(ctl.buf);
		cm = CMSG_FIRSTHDR(&m);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(cm), &fd, sizeof(int));
	}
	return sendmsg(sock, &m, MSG_NOSIGNAL) == (ssize_t)iov.iov_len
	    ? CDN_OK
	    : CDN_EIO;
}

/* One message into text[0..len) (NUL-terminated), its descriptor (or -1)
 * into *fdp.  The length, 0 on EOF, -1 on error. */
static ssize_t
recv_msg(int sock, char *text, size_t len, int *fdp)
{
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} ctl;
	struct iovec iov = {text, len - 1};
	struct msghdr m;
	struct cmsghdr *cm;
	ssize_t n;

	*fdp = -1;
	memset(&m, 0, sizeof(m));
	m.msg_iov = &iov;
	m.msg_iovlen = 1;
	m.msg_control = ctl.buf;
	m.msg_controllen = sizeof(ctl.buf);
	n = recvmsg(sock, &m, MSG_CMSG_CLOEXEC);
	if (n < 0)
		return -1;
	for (cm = CMSG_FIRSTHDR(&m); cm != NULL; cm = CMSG_NXTHDR(&m, cm))
		if (cm->cmsg_level == SOL_SOCKET &&
		    cm->cmsg_type == SCM_RIGHTS &&
		    cm->cmsg_len == CMSG_LEN(sizeof(int)))
			memcpy(fdp, CMSG_DATA(cm), sizeof(int));
	text[n] = '\0';
	if ((m.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) != 0) {
		if (*fdp != -1)
			close(*fdp);
		*fdp = -1;
		errno = EMSGSIZE;
		return -1;
	}
	return n;
}

static struct edge_takeover *
takeover_new(void)
{
	struct edge_takeover *t = cdn_xcalloc(1, sizeof(*t));

	t->magic = EDGE_TAKEOVER_MAGIC;
	t->conn = -1;
	t->from = -1;
	return t;
}

/* ---- the old edged: hand the listeners over ---- */

static void
conn_end(struct edge_takeover *t)
{
	if (t->reply_ev != NULL)
		event_free(t->reply_ev);
	t->reply_ev = NULL;
	if (t->conn != -1)
		close(t->conn);
	t->conn = -1;
}

/* Send every listening socket, then "E". */
static int
hand_over(struct edge *e, int sock)
{
	char msg[MSG_MAX];

	for (unsigned i = 0; i < e->nworkers; i++) {
		struct edge_worker *w = &e->workers[i];

		for (unsigned j = 0; j < w->nlisteners; j++) {
			snprintf(msg, sizeof(msg), "L %d %s",
			    (int)w->listen_ids[j].kind, w->listen_ids[j].addr);
			if (send_msg(sock, msg,
			        http_acceptor_fd(w->listeners[j])) != CDN_OK)
				return CDN_EIO;
		}
	}
	if (e->admin != NULL) {
		snprintf(msg, sizeof(msg), "L %d %s", (int)EDGE_LISTEN_ADMIN,
		    e->conf->admin_listen);
		if (send_msg(sock, msg, evconnlistener_get_fd(e->admin)) !=
		    CDN_OK)
			return CDN_EIO;
	}
	if (edge_purged_listen_fd(e) != -1) {
		snprintf(msg, sizeof(msg), "L %d %s", (int)EDGE_LISTEN_PURGE,
		    e->conf->purge_listen);
		if (send_msg(sock, msg, edge_purged_listen_fd(e)) != CDN_OK)
			return CDN_EIO;
	}
	return send_msg(sock, "E", -1);
}

static void
on_reply(evutil_socket_t fd, short what, void *arg)
{
	struct edge *e = arg;
	struct edge_takeover *t = e->takeover;
	char msg[MSG_MAX];
	ssize_t n;
	int got = -1;
	struct timeval tv = {READY_WAIT_MS / 1000, 0};

	if (!t->asked) {
		n = (what & EV_TIMEOUT) != 0
		    ? -1
		    : recv_msg(fd, msg, sizeof(msg), &got);
		if (got != -1)
			close(got);
		if (n <= 0 || strcmp(msg, "T") != 0) {
			CDN_LOG(CDN_LOG_DEBUG, "takeover",
			    "pid %d asked for nothing", (int)t->peer);
			conn_end(t);
			return;
		}
		t->asked = 1;
		CDN_LOG(CDN_LOG_INFO, "takeover",
		    "pid %d takes over the listeners", (int)t->peer);
		if (hand_over(e, fd) != CDN_OK) {
			CDN_LOG(CDN_LOG_ERR, "takeover",
			    "handing the listeners to pid %d: %s: still "
			    "serving",
			    (int)t->peer, strerror(errno));
			conn_end(t);
			return;
		}
		event_add(t->reply_ev, &tv);
		return;
	}
	if ((what & EV_TIMEOUT) != 0) {
		CDN_LOG(CDN_LOG_ERR, "takeover",
		    "pid %d not ready after %d ms: still serving", (int)t->peer,
		    READY_WAIT_MS);
		conn_end(t);
		return;
	}
	n = recv_msg(fd, msg, sizeof(msg), &got);
	if (got != -1)
		close(got);
	if (n <= 0 || strcmp(msg, "R") != 0) {
		CDN_LOG(CDN_LOG_ERR, "takeover",
		    "pid %d failed before it was ready (%s): still serving",
		    (int)t->peer,
		    n < 0        ? strerror(errno)
		        : n == 0 ? "it closed the connection; see its log"
		                 : "unexpected message");
		conn_end(t);
		return;
	}
	CDN_LOG(CDN_LOG_INFO, "takeover",
	    "pid %d serves on our listeners: draining", (int)t->peer);
	t->handed = 1;
	evconnlistener_free(t->listener);
	t->listener = NULL;
	/* The new edged answers /healthz: ours would say 503 while we drain. */
	if (e->admin != NULL) {
		evconnlistener_free(e->admin);
		e->admin = NULL;
	}
	edge_start_drain(e, "takeover", 0);
	edge_purged_stop(e);
	if (send_msg(t->conn, "D", -1) != CDN_OK)
		CDN_LOG(CDN_LOG_WARN, "takeover", "telling pid %d: %s",
		    (int)t->peer, strerror(errno));
	conn_end(t);
}

static void
on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
    int salen, void *arg)
{
	struct edge *e = arg;
	struct edge_takeover *t = e->takeover;
	struct ucred cred;
	socklen_t clen = sizeof(cred);
	struct timeval tv = {HANDOVER_IO_MS / 1000, 0};
	int flags;

	(void)l;
	(void)sa;
	(void)salen;
	memset(&cred, 0, sizeof(cred));
	(void)getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen);
	if (t->conn != -1 || atomic_load(&e->draining)) {
		CDN_LOG(CDN_LOG_WARN, "takeover", "pid %d refused: %s",
		    (int)cred.pid,
		    t->conn != -1 ? "another takeover is under way"
		                  : "this edged is draining");
		close(fd);
		return;
	}
	/* A few small messages: blocking, bounded by the timeouts. */
	flags = fcntl(fd, F_GETFL);
	if (flags != -1)
		(void)fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
	set_io_timeout(fd, HANDOVER_IO_MS);
	t->conn = fd;
	t->peer = cred.pid;
	t->asked = 0;
	t->reply_ev = event_new(e->main_base, fd, EV_READ, on_reply, e);
	event_add(t->reply_ev, &tv);
}

/* Bind <path> afresh: a file left there by an edged that is gone is
 * removed.  -2 if a live edged listens there (it keeps it), -1 after
 * logging why. */
static int
bind_path(const char *path, int replace)
{
	struct sockaddr_un sa;
	int fd, probe;

	addr_un(&sa, path);
	if (replace) {
		probe = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
		if (probe != -1 &&
		    connect(probe, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
			close(probe);
			CDN_LOG(CDN_LOG_WARN, "takeover",
			    "%s: another edged listens there: no takeover of "
			    "this one (set takeover_socket)",
			    path);
			return -2;
		}
		if (probe != -1)
			close(probe);
	}
	(void)unlink(path);
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == -1 ||
	    listen(fd, LISTEN_QUEUE) == -1) {
		CDN_LOG(
		    CDN_LOG_ERR, "takeover", "%s: %s", path, strerror(errno));
		if (fd != -1)
			close(fd);
		return -1;
	}
	return fd;
}

/* The edged SIGUSR2 started exited: a failed takeover (on_reply said
 * why), or one that was refused. */
static void
on_sigchld(evutil_socket_t sig, short what, void *arg)
{
	struct edge_takeover *t = arg;
	int status;

	(void)sig;
	(void)what;
	if (t->child == 0 || waitpid(t->child, &status, WNOHANG) != t->child)
		return;
	CDN_LOG(t->handed ? CDN_LOG_INFO : CDN_LOG_WARN, "takeover",
	    "pid %d %s %d", (int)t->child,
	    WIFSIGNALED(status) ? "killed by signal" : "exited with",
	    WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
	t->child = 0;
}

int
edge_takeover_listen(struct edge *e)
{
	struct edge_takeover *t;
	int fd;

	MAGIC_CHECK(e, EDGE_MAGIC);
	if (e->takeover == NULL)
		e->takeover = takeover_new();
	t = e->takeover;
	if (socket_path(e->conf, t->path, sizeof(t->path)) != CDN_OK)
		return CDN_EINVAL;
	if (t->path[0] == '\0')
		return CDN_OK; /* no cache_dir, no takeover_socket */
	if (t->from != -1) {
		/* The old edged's path stays its own until it answers. */
		if (snprintf(t->tmp, sizeof(t->tmp), "%s.%d", t->path,
		        (int)getpid()) >= (int)sizeof(t->tmp)) {
			CDN_LOG(CDN_LOG_ERR, "takeover",
			    "takeover_socket: path too long");
			return CDN_EINVAL;
		}
		fd = bind_path(t->tmp, 0);
	} else {
		fd = bind_path(t->path, 1);
	}
	if (fd == -2)
		return CDN_OK;
	if (fd == -1 && e->conf->takeover_socket[0] == '\0') {
		/* The default place is the cache directory, which may be
		 * unusable (read-only, not a directory) while the node runs
		 * proxy-only: serve without a takeover socket, not at all. */
		CDN_LOG(CDN_LOG_WARN, "takeover",
		    "no takeover socket: an upgrade needs a restart (set "
		    "takeover_socket to a writable path)");
		return CDN_OK;
	}
	if (fd == -1)
		return CDN_EIO;
	t->listener = evconnlistener_new(e->main_base, on_accept, e,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 0, fd);
	if (t->listener == NULL) {
		close(fd);
		return CDN_ENOMEM;
	}
	t->sigchld = evsignal_new(e->main_base, SIGCHLD, on_sigchld, t);
	event_add(t->sigchld, NULL);
	return CDN_OK;
}

/* ---- the new edged: take the listeners ---- */

static int
parse_fd_msg(struct edge_takeover *t, const char *msg, int fd)
{
	char *end;
	long kind;

	if (msg[0] != 'L' || msg[1] != ' ' || fd == -1)
		return CDN_EINVAL;
	kind = strtol(msg + 2, &end, 10);
	if (end == msg + 2 || *end != ' ' || kind < 0 ||
	    kind >= EDGE_LISTEN_KINDS || end[1] == '\0')
		return CDN_EINVAL;
	t->fds = realloc(t->fds, (t->nfds + 1) * sizeof(*t->fds));
	CDN_ASSERT(t->fds != NULL);
	t->fds[t->nfds].kind = (enum edge_listen_kind)kind;
	t->fds[t->nfds].addr = cdn_xstrdup(end + 1);
	t->fds[t->nfds].fd = fd;
	t->nfds++;
	return CDN_OK;
}

int
edge_takeover_fetch(struct edge *e)
{
	struct edge_takeover *t;
	struct sockaddr_un sa;
	char msg[MSG_MAX];
	ssize_t n;
	int fd;

	MAGIC_CHECK(e, EDGE_MAGIC);
	CDN_ASSERT(e->takeover == NULL);
	t = e->takeover = takeover_new();
	if (socket_path(e->conf, t->path, sizeof(t->path)) != CDN_OK)
		return CDN_EINVAL;
	if (t->path[0] == '\0') {
		CDN_LOG(CDN_LOG_ERR, "takeover",
		    "--takeover needs cache_dir or takeover_socket");
		return CDN_EINVAL;
	}
	addr_un(&sa, t->path);
	t->from = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (t->from == -1 ||
	    connect(t->from, (struct sockaddr *)&sa, sizeof(sa)) == -1) {
		CDN_LOG(CDN_LOG_ERR, "takeover",
		    "%s: %s (is an edged with this configuration running?)",
		    t->path, strerror(errno));
		return CDN_EIO;
	}
	set_io_timeout(t->from, HANDOVER_IO_MS);
	if (send_msg(t->from, "T", -1) != CDN_OK) {
		CDN_LOG(CDN_LOG_ERR, "takeover", "%s: %s", t->path,
		    strerror(errno));
		return CDN_EIO;
	}
	for (;;) {
		n = recv_msg(t->from, msg, sizeof(msg), &fd);
		if (n > 0 && strcmp(msg, "E") == 0 && fd == -1)
			break;
		if (n <= 0 || parse_fd_msg(t, msg, fd) != CDN_OK) {
			CDN_LOG(CDN_LOG_ERR, "takeover",
			    "receiving the listeners from %s: %s", t->path,
			    n < 0 ? strerror(errno)
			        : n == 0
			        ? "the running edged refused (see its log)"
			        : "malformed message");
			if (fd != -1)
				close(fd);
			return CDN_EIO;
		}
	}
	CDN_LOG(CDN_LOG_INFO, "takeover", "received %u listening socket(s)",
	    t->nfds);
	return CDN_OK;
}

int
edge_takeover_pending(const struct edge *e)
{
	return e->takeover != NULL && e->takeover->from != -1;
}

int
edge_takeover_has(
    const struct edge *e, enum edge_listen_kind kind, const char *addr)
{
	const struct edge_takeover *t = e->takeover;

	for (unsigned i = 0; t != NULL && i < t->nfds; i++)
		if (t->fds[i].kind == kind && strcmp(t->fds[i].addr, addr) == 0)
			return 1;
	return 0;
}

int
edge_takeover_take(struct edge *e, enum edge_listen_kind kind, const char *addr)
{
	struct edge_takeover *t = e->takeover;
	int fd;

	for (unsigned i = 0; t != NULL && i < t->nfds; i++)
		if (t->fds[i].fd != -1 && t->fds[i].kind == kind &&
		    strcmp(t->fds[i].addr, addr) == 0) {
			fd = t->fds[i].fd;
			t->fds[i].fd = -1;
			return fd;
		}
	return -1;
}

int
edge_takeover_next(
    struct edge *e, enum edge_listen_kind *kind, const char **addr)
{
	struct edge_takeover *t = e->takeover;
	int fd;

	for (unsigned i = 0; t != NULL && i < t->nfds; i++)
		if (t->fds[i].fd != -1) {
			fd = t->fds[i].fd;
			t->fds[i].fd = -1;
			*kind = t->fds[i].kind;
			*addr = t->fds[i].addr;
			return fd;
		}
	return -1;
}

const char *
edge_takeover_kind_name(enum edge_listen_kind kind)
{
	CDN_ASSERT(kind < EDGE_LISTEN_KINDS);
	return kind_names[kind];
}

void
edge_takeover_ready(struct edge *e)
{
	struct edge_takeover *t = e->takeover;
	char msg[MSG_MAX];
	ssize_t n;
	int fd = -1;

	if (t == NULL || t->from == -1)
		return;
	set_io_timeout(t->from, DONE_WAIT_MS);
	if (send_msg(t->from, "R", -1) != CDN_OK) {
		CDN_LOG(CDN_LOG_WARN, "takeover", "telling the old edged: %s",
		    strerror(errno));
		n = -1;
	} else {
		n = recv_msg(t->from, msg, sizeof(msg), &fd);
	}
	if (fd != -1)
		close(fd);
	if (n > 0 && strcmp(msg, "D") == 0) {
		char state[32];

		CDN_LOG(CDN_LOG_INFO, "takeover",
		    "the old edged drains: serving alone");
		snprintf(state, sizeof(state), "MAINPID=%d", (int)getpid());
		cdn_notify(state);
	} else
		CDN_LOG(CDN_LOG_WARN, "takeover",
		    "no answer from the old edged (%s): serving anyway",
		    n < 0 ? strerror(errno) : "connection closed");
	close(t->from);
	t->from = -1;
	/* Our socket takes the path over: the next upgrade finds us. */
	if (t->listener != NULL && rename(t->tmp, t->path) == -1)
		CDN_LOG(CDN_LOG_ERR, "takeover", "rename %s to %s: %s", t->tmp,
		    t->path, strerror(errno));
	t->tmp[0] = '\0';
	edge_purged_start(e);
}

void
edge_takeover_spawn(struct edge *e)
{
	static const char deleted[] = " (deleted)";
	struct edge_takeover *t = e->takeover;
	char exe[PATH_MAX], **argv;
	size_t dl = sizeof(deleted) - 1;
	ssize_t n;
	pid_t pid;

	if (t == NULL || t->listener == NULL || atomic_load(&e->draining) ||
	    t->child != 0) {
		CDN_LOG(CDN_LOG_WARN, "takeover", "SIGUSR2 ignored: %s",
		    atomic_load(&e->draining) ? "draining"
		        : t != NULL && t->child != 0
		        ? "a new edged is starting already"
		        : "no takeover socket (cache_dir or takeover_socket)");
		return;
	}
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0) {
		CDN_LOG(CDN_LOG_ERR, "takeover", "SIGUSR2: /proc/self/exe: %s",
		    strerror(errno));
		return;
	}
	exe[n] = '\0';
	/* A package upgrade replaced the file: the new one has its path. */
	if ((size_t)n > dl && strcmp(exe + n - dl, deleted) == 0)
		exe[n - dl] = '\0';
	argv = cdn_xcalloc((size_t)e->argc + 2, sizeof(*argv));
	argv[0] = exe;
	for (int i = 1; i < e->argc; i++)
		argv[i] = e->argv[i];
	argv[e->argc > 0 ? e->argc : 1] = (char *)(uintptr_t) "--takeover";
	pid = fork();
	if (pid == 0) {
		sigset_t none;

		/* Only async-signal-safe calls until exec. */
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		execv(exe, argv);
		_exit(127);
	}
	free(argv);
	if (pid == -1) {
		CDN_LOG(CDN_LOG_ERR, "takeover", "SIGUSR2: fork: %s",
		    strerror(errno));
		return;
	}
	t->child = pid;
	CDN_LOG(CDN_LOG_INFO, "takeover", "SIGUSR2: started %s (pid %d)", exe,
	    (int)pid);
}

void
edge_takeover_fini(struct edge *e)
{
	struct edge_takeover *t = e->takeover;

	if (t == NULL)
		return;
	MAGIC_CHECK(t, EDGE_TAKEOVER_MAGIC);
	e->takeover = NULL;
	conn_end(t);
	if (t->sigchld != NULL)
		event_free(t->sigchld);
	if (t->listener != NULL) {
		evconnlistener_free(t->listener);
		/* After a handover the path is the new edged's. */
		if (!t->handed)
			(void)unlink(t->tmp[0] != '\0' ? t->tmp : t->path);
	}
	if (t->from != -1)
		close(t->from);
	for (unsigned i = 0; i < t->nfds; i++) {
		if (t->fds[i].fd != -1)
			close(t->fds[i].fd);
		free(t->fds[i].addr);
	}
	free(t->fds);
	MAGIC_WIPE(t);
	free(t);
}
