/*
 * The process_* figures of /metrics, read from /proc as Prometheus's own
 * client libraries do, so the dashboards and alerts written for every
 * other exporter (CPU, memory, file descriptors, restarts) work on edged
 * unchanged.  Main thread only (the admin listener's).
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "edge/edge_int.h"

#define PROC_STAT_MAX 1024 /* /proc/self/stat is one line of ~300 bytes */
#define PROC_LINE_MAX 256
/* Fields of /proc/self/stat counted from the state (field 3), proc(5). */
#define STAT_UTIME     11
#define STAT_STIME     12
#define STAT_STARTTIME 19
#define STAT_VSIZE     20
#define STAT_RSS       21
#define STAT_FIELDS    22

static int logged; /* the failure is logged once */

static int
fail(const char *what)
{
	if (!logged)
		CDN_LOG(CDN_LOG_WARN, "edge",
		    "process metrics: %s: %s; process_* left out of /metrics",
		    what, strerror(errno));
	logged = 1;
	return CDN_EIO;
}

/* The numeric fields of /proc/self/stat after the command name (which may
 * hold spaces and parentheses: the last ')' ends it). */
static int
stat_fields(unsigned long long *f)
{
	char buf[PROC_STAT_MAX], *p, *end;
	FILE *fp = fopen("/proc/self/stat", "r");
	size_t n;

	if (fp == NULL)
		return fail("/proc/self/stat");
	n = fread(buf, 1, sizeof(buf) - 1, fp);
	fclose(fp);
	buf[n] = '\0';
	p = strrchr(buf, ')');
	if (p == NULL || p[1] != ' ' || p[2] == '\0') {
		errno = EINVAL;
		return fail("/proc/self/stat");
	}
	p += 3; /* past ") " and the one-letter state */
	f[0] = 0;
	for (unsigned i = 1; i < STAT_FIELDS; i++) {
		errno = 0;
		f[i] = strtoull(p, &end, 10);
		if (end == p || errno != 0) {
			errno = EINVAL;
			return fail("/proc/self/stat");
		}
		p = end;
	}
	return CDN_OK;
}

/* The boot time, Unix seconds ("btime" of /proc/stat). */
static int
boot_time(unsigned long long *btime)
{
	char line[PROC_LINE_MAX];
	FILE *fp = fopen("/proc/stat", "r");
	int found = 0;

	if (fp == NULL)
		return fail("/proc/stat");
	while (!found && fgets(line, sizeof(line), fp) != NULL)
		found = sscanf(line, "btime %llu", btime) == 1;
	fclose(fp);
	if (!found) {
		errno = EINVAL;
		return fail("/proc/stat: no btime");
	}
	return CDN_OK;
}

static int
open_fds(uint64_t *n)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;
	uint64_t k = 0;

	if (d == NULL)
		return fail("/proc/self/fd");
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			k++;
	closedir(d);
	*n = k > 0 ? k - 1 : 0; /* not the descriptor reading the directory */
	return CDN_OK;
}

int
edge_process_stats(struct edge_process_stats *ps)
{
	unsigned long long f[STAT_FIELDS], btime;
	long tick = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
	struct rlimit rl;

	CDN_ASSERT(ps != NULL);
	if (tick <= 0 || page <= 0) {
		errno = EINVAL;
		return fail("sysconf");
	}
	if (stat_fields(f) != CDN_OK || boot_time(&btime) != CDN_OK ||
	    open_fds(&ps->open_fds) != CDN_OK)
		return CDN_EIO;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return fail("getrlimit");
	ps->cpu_ms = (f[STAT_UTIME] + f[STAT_STIME]) * 1000 / (uint64_t)tick;
	ps->rss_bytes = f[STAT_RSS] * (uint64_t)page;
	ps->vm_bytes = f[STAT_VSIZE];
	ps->max_fds = rl.rlim_cur == RLIM_INFINITY ? UINT64_MAX : rl.rlim_cur;
	ps->start_ms = btime * 1000 + f[STAT_STARTTIME] * 1000 / (uint64_t)tick;
	return CDN_OK;
}
