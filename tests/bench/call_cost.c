/*
 * The CPU time of the system calls a churn request pays or avoids, each
 * repeated N times in a loop on this thread (CLOCK_THREAD_CPUTIME_ID, so
 * other work on the machine does not count, only its effect on caches):
 * an accept4 on an empty listener (EAGAIN), an EPOLL_CTL_DEL of a closed
 * descriptor (EBADF), an epoll_wait that finds one descriptor ready, and
 * getppid as the bare cost of a call.
 *   call_cost [N [ROUNDS]]     (N 200000, ROUNDS 5: prints each median)
 * e.g. taskset -c 1 tests/bench/call_cost
 */
#include "config.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define ROUNDS_MAX 101
#define NS_PER_S   1000000000.0

enum call { ACCEPT_EMPTY, CTL_DEL_CLOSED, WAIT_READY, GETPPID, CALLS };

static const char *const call_name[CALLS] = {
    "accept4, empty queue (EAGAIN)",
    "epoll_ctl DEL, closed fd (EBADF)",
    "epoll_wait, one fd ready",
    "getppid",
};

static double
cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec * NS_PER_S + (double)ts.tv_nsec;
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* ns per call of <c>, over <n> calls. */
static double
time_call(enum call c, long n, int lfd, int ep, int closed)
{
	struct epoll_event ev = {.events = EPOLLIN}, out[8];
	double t0 = cpu_ns();

	for (long i = 0; i < n; i++) {
		switch (c) {
		case ACCEPT_EMPTY:
			(void)accept4(
			    lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
			break;
		case CTL_DEL_CLOSED:
			(void)epoll_ctl(ep, EPOLL_CTL_DEL, closed, &ev);
			break;
		case WAIT_READY:
			(void)epoll_wait(ep, out, 8, 0);
			break;
		case GETPPID:
			(void)getppid();
			break;
		case CALLS:
			break;
		}
	}
	return (cpu_ns() - t0) / (double)n;
}

int
main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 200000;
	int rounds = argc > 2 ? atoi(argv[2]) : 5;
	struct sockaddr_in sa = {.sin_family = AF_INET};
	struct epoll_event ev = {.events = EPOLLIN};
	double ns[CALLS][ROUNDS_MAX];
	int lfd, ep, p[2], closed;

	if (n <= 0 || rounds <= 0 || rounds > ROUNDS_MAX) {
		fprintf(stderr, "usage: call_cost [N [ROUNDS <= %d]]\n",
		    ROUNDS_MAX);
		return 2;
	}
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	ep = epoll_create1(EPOLL_CLOEXEC);
	if (lfd == -1 || ep == -1 || pipe(p) != 0 ||
	    bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
	    listen(lfd, 16) != 0 || write(p[1], "x", 1) != 1) {
		perror("call_cost: set-up");
		return 1;
	}
	ev.data.fd = p[0];
	if (epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev) != 0) {
		perror("call_cost: epoll_ctl");
		return 1;
	}
	closed = dup(p[0]);
	close(closed); /* a descriptor number no longer open */
	for (int r = 0; r < rounds; r++)
		for (int c = 0; c < CALLS; c++)
			ns[c][r] = time_call(c, n, lfd, ep, closed);
	for (int c = 0; c < CALLS; c++) {
		qsort(ns[c], (size_t)rounds, sizeof(ns[c][0]), cmp_double);
		printf("%-34s %7.0f ns (median of %d x %ld; %.0f-%.0f)\n",
		    call_name[c], ns[c][rounds / 2], rounds, n, ns[c][0],
		    ns[c][rounds - 1]);
	}
	return 0;
}
