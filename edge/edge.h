/*
 * edged: the edge node.  edge_new() binds every listener (so bind errors
 * stop start-up before any thread runs), edge_run() runs the workers and
 * the main loop until SIGTERM/SIGINT has drained them, edge_free() frees.
 */
#ifndef EDGE_H
#define EDGE_H

#include "common/cdn.h"
#include "conf/conf.h"

struct edge;

/*
 * <conf> came from conf_argv_parse(<argc>, <argv>), which SIGHUP runs again
 * (argv must outlive the edge).  With <takeover>, the listeners of the
 * edged running with this configuration are taken over rather than bound
 * (edge_takeover.c).  Returns NULL (after logging why) if a listener cannot
 * be bound or taken over.
 */
struct edge *edge_new(struct conf *conf, int argc, char **argv, int takeover);
/* Runs until drained; returns 0, or 1 if the node could not start. */
int edge_run(struct edge *e);
void edge_free(struct edge **ep);

#endif /* EDGE_H */
