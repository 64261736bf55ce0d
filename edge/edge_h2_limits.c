/*
 * HTTP/2 attack budgets (edge/edge_h2_limits.h), as nginx and h2o keep
 * them: a client may send what does no work in bursts, not for ever.
 */
#include "config.h"

#include <nghttp2/nghttp2.h>

#include "edge/edge_h2_limits.h"
#include "edge/edge_int.h"

/* Frames that do no work, per connection: a burst, then this many per
 * second.  A browser sends a few SETTINGS and PINGs and at most a
 * PRIORITY per stream; each new stream adds one more of the latter. */
#define FLOOD_BURST 1000
#define FLOOD_RATE  100
/* Streams the client resets before their answer: a burst of twice the
 * concurrent streams, then as many per second. */
#define RESET_BURST_MULT 2
#define RESET_RATE_MULT  1

static uint64_t
now_ms(void)
{
	return cdn_now_ns() / 1000000u;
}

static void
budget_init(struct h2_budget *b, uint32_t burst, uint32_t rate)
{
	b->burst = burst;
	b->tokens = burst;
	b->rate = rate;
	b->last_ms = now_ms();
}

/* Take one token: 0 if there was none (the budget is spent). */
static int
budget_take(struct h2_budget *b)
{
	uint64_t now = now_ms(), add;

	add = (now - b->last_ms) * b->rate / 1000u;
	if (add > 0) {
		b->tokens = add >= b->burst - b->tokens
		    ? b->burst
		    : b->tokens + (uint32_t)add;
		b->last_ms = now;
	}
	if (b->tokens == 0)
		return 0;
	b->tokens--;
	return 1;
}

void
h2_limits_init(struct h2_limits *l, uint32_t max_streams)
{
	budget_init(&l->resets, RESET_BURST_MULT * max_streams,
	    RESET_RATE_MULT * max_streams);
	budget_init(&l->settings, FLOOD_BURST, FLOOD_RATE);
	budget_init(&l->pings, FLOOD_BURST, FLOOD_RATE);
	budget_init(&l->priorities, FLOOD_BURST + max_streams, FLOOD_RATE);
	budget_init(&l->empty_data, FLOOD_BURST, FLOOD_RATE);
}

enum h2_spent
h2_limits_frame(struct h2_limits *l, const nghttp2_frame_hd *hd)
{
	switch (hd->type) {
	case NGHTTP2_DATA:
		/* Empty DATA that does not end its stream carries nothing. */
		if (hd->length == 0 && !(hd->flags & NGHTTP2_FLAG_END_STREAM) &&
		    !budget_take(&l->empty_data))
			return H2_SPENT_EMPTY_DATA;
		return H2_WITHIN;
	case NGHTTP2_SETTINGS:
		if (!(hd->flags & NGHTTP2_FLAG_ACK) &&
		    !budget_take(&l->settings))
			return H2_SPENT_SETTINGS;
		return H2_WITHIN;
	case NGHTTP2_PING:
		if (!(hd->flags & NGHTTP2_FLAG_ACK) && !budget_take(&l->pings))
			return H2_SPENT_PING;
		return H2_WITHIN;
	case NGHTTP2_PRIORITY:
		return budget_take(&l->priorities) ? H2_WITHIN
		                                   : H2_SPENT_PRIORITY;
	default:
		return H2_WITHIN;
	}
}

enum h2_spent
h2_limits_reset(struct h2_limits *l)
{
	return budget_take(&l->resets) ? H2_WITHIN : H2_SPENT_RESET;
}

void
h2_limits_count(struct edge_worker *w, enum h2_spent why)
{
	switch (why) {
	case H2_SPENT_SETTINGS:
		EDGE_COUNTER_INC(w, h2_settings_flood);
		break;
	case H2_SPENT_PING:
		EDGE_COUNTER_INC(w, h2_ping_flood);
		break;
	case H2_SPENT_PRIORITY:
		EDGE_COUNTER_INC(w, h2_priority_flood);
		break;
	case H2_SPENT_EMPTY_DATA:
		EDGE_COUNTER_INC(w, h2_empty_data);
		break;
	case H2_SPENT_RESET:
		EDGE_COUNTER_INC(w, h2_rapid_reset);
		break;
	case H2_WITHIN:
		CDN_ASSERT(why != H2_WITHIN);
		break;
	}
}
