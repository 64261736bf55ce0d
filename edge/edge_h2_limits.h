/*
 * The attack budgets of one HTTP/2 connection (edge_h2.c's): token buckets
 * for frames that make the node work without asking it anything (SETTINGS,
 * PING, PRIORITY, empty DATA) and for streams the client resets before
 * their answer (rapid reset, CVE-2023-44487).  A spent budget is a reason
 * of edge_h2_refused_total; the connection then gets GOAWAY
 * ENHANCE_YOUR_CALM.  Plain data of its connection: no locks, no loop.
 */
#ifndef EDGE_H2_LIMITS_H
#define EDGE_H2_LIMITS_H

#include <stdint.h>

#include <nghttp2/nghttp2.h>

struct edge_worker;

/* A token bucket: tokens refill at <rate> per second up to <burst>. */
struct h2_budget {
	uint64_t last_ms;
	uint32_t tokens;
	uint32_t burst;
	uint32_t rate;
};

enum h2_spent {
	H2_WITHIN = 0,
	H2_SPENT_SETTINGS,
	H2_SPENT_PING,
	H2_SPENT_PRIORITY,
	H2_SPENT_EMPTY_DATA,
	H2_SPENT_RESET,
};

struct h2_limits {
	struct h2_budget settings, pings, priorities, empty_data, resets;
};

/* Full budgets for a connection that allows <max_streams> streams. */
void h2_limits_init(struct h2_limits *l, uint32_t max_streams);
/*
 * Charge a frame just received, by its header <hd>, to its budget.
 * Returns H2_WITHIN, or the budget it found spent.
 */
enum h2_spent h2_limits_frame(struct h2_limits *l, const nghttp2_frame_hd *hd);
/* Charge a stream the client reset before its answer. */
enum h2_spent h2_limits_reset(struct h2_limits *l);
/* Count the refusal <why> (not H2_WITHIN) on worker <w>. */
void h2_limits_count(struct edge_worker *w, enum h2_spent why);

#endif /* EDGE_H2_LIMITS_H */
