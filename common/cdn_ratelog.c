/* Rate-limited reporting of a repeating condition (common/cdn_ratelog.h). */
#include "config.h"

#include <string.h>

#include "common/cdn.h"
#include "common/cdn_ratelog.h"

static void
report(const struct cdn_ratelog *rl, uint64_t now_ms,
    struct cdn_ratelog_report *out)
{
	if (out == NULL)
		return;
	out->repeats = rl->unreported;
	out->count = rl->count;
	/* A clock that went back gives 0, not a wrapped figure. */
	out->elapsed_ms = now_ms > rl->begin_ms ? now_ms - rl->begin_ms : 0;
}

enum cdn_ratelog_say
cdn_ratelog_hit(struct cdn_ratelog *rl, int cond, uint64_t now_ms,
    uint64_t interval_ms, struct cdn_ratelog_report *out)
{
	CDN_ASSERT(rl != NULL);
	CDN_ASSERT(cond != 0);
	if (rl->cond != cond) {
		/* New, or a different condition: the old episode's figures
		 * go with the new one's first line. */
		report(rl, now_ms, out);
		rl->cond = cond;
		rl->begin_ms = now_ms;
		rl->line_ms = now_ms;
		rl->count = 1;
		rl->unreported = 0;
		return CDN_RATELOG_BEGIN;
	}
	rl->count++;
	rl->unreported++;
	if (now_ms < rl->line_ms)
		rl->line_ms = now_ms; /* a clock that went back restarts it */
	if (now_ms - rl->line_ms < interval_ms)
		return CDN_RATELOG_QUIET;
	report(rl, now_ms, out);
	rl->line_ms = now_ms;
	rl->unreported = 0;
	return CDN_RATELOG_REPEAT;
}

enum cdn_ratelog_say
cdn_ratelog_clear(
    struct cdn_ratelog *rl, uint64_t now_ms, struct cdn_ratelog_report *out)
{
	CDN_ASSERT(rl != NULL);
	if (rl->cond == 0)
		return CDN_RATELOG_QUIET;
	report(rl, now_ms, out);
	memset(rl, 0, sizeof(*rl));
	return CDN_RATELOG_END;
}
