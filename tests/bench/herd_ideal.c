/*
 * The ideal coalescing server for a herd (tests/bench/herd_floor.sh): what
 * no proxy can beat.  Every request waits until DELAY_MS after the first
 * request of its herd arrived, as behind one origin fetch that costs nothing
 * but the delay; then each gets a 1 KiB response in one write and its
 * connection is closed.  A request whose URL holds "nodelay" is answered at
 * once.  Loopback only; runs until killed.
 *
 *   herd_ideal PORT DELAY_MS
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>

#define BODY_LEN 1024
#define MAX_WAIT 65536 /* connections waiting for the timer */
#define EVENTS   256

static char resp[BODY_LEN + 128];
static size_t resplen;
static int waiting[MAX_WAIT];
static int nwait;

static void
answer(int fd)
{
	(void)!write(fd, resp, resplen);
	close(fd);
}

int
main(int argc, char **argv)
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	struct epoll_event ev = {.events = EPOLLIN}, evs[EVENTS];
	int lfd, ep, tfd, one = 1, armed = 0, delay;
	char buf[4096];

	if (argc != 3) {
		fprintf(stderr, "usage: herd_ideal PORT DELAY_MS\n");
		return 2;
	}
	a.sin_port = htons((uint16_t)atoi(argv[1]));
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	delay = atoi(argv[2]);
	resplen = (size_t)snprintf(resp, sizeof(resp),
	    "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n"
	    "Connection: close\r\n\r\n",
	    BODY_LEN);
	for (int i = 0; i < BODY_LEN; i++)
		resp[resplen++] = (char)('a' + i % 26);
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	ep = epoll_create1(0);
	tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (lfd < 0 || ep < 0 || tfd < 0 ||
	    bind(lfd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
	    listen(lfd, 4096) != 0) {
		perror("herd_ideal");
		return 1;
	}
	ev.data.fd = lfd;
	epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
	ev.data.fd = tfd;
	epoll_ctl(ep, EPOLL_CTL_ADD, tfd, &ev);
	for (;;) {
		int n = epoll_wait(ep, evs, EVENTS, -1);

		for (int i = 0; i < n; i++) {
			int fd = evs[i].data.fd, c;
			ssize_t r;

			if (fd == lfd) {
				while ((c = accept4(lfd, NULL, NULL,
				            SOCK_NONBLOCK)) >= 0) {
					setsockopt(c, IPPROTO_TCP, TCP_NODELAY,
					    &one, sizeof(one));
					ev.data.fd = c;
					epoll_ctl(ep, EPOLL_CTL_ADD, c, &ev);
				}
				continue;
			}
			if (fd == tfd) { /* the herd's delay is over */
				uint64_t x;

				(void)!read(tfd, &x, sizeof(x));
				for (int j = 0; j < nwait; j++)
					answer(waiting[j]);
				nwait = 0;
				armed = 0;
				continue;
			}
			r = read(fd, buf, sizeof(buf));
			if (r <= 0) {
				close(fd);
				continue;
			}
			if (memmem(buf, (size_t)r, "nodelay", 7) != NULL ||
			    nwait == MAX_WAIT) {
				answer(fd);
				continue;
			}
			epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
			waiting[nwait++] = fd;
			if (!armed) {
				struct itimerspec it = {
				    .it_value = {delay / 1000,
				        (delay % 1000) * 1000000L}};

				timerfd_settime(tfd, 0, &it, NULL);
				armed = 1;
			}
		}
	}
}
