/*
 * Rate-limited reporting of a condition that repeats: a disk whose writes
 * keep failing, a peer that keeps refusing.  One line per occurrence floods
 * the log and hides everything else, so the caller logs:
 *  - the first occurrence at once, saying what it means (BEGIN);
 *  - then, at most once per interval, how many more there were (REPEAT);
 *  - and one line when the condition clears (END), with the episode's total.
 * A different condition (the caller's code changes) begins a new episode at
 * once.  The helper only decides; the caller writes the lines, because only
 * it knows what the condition means.
 *
 * No lock: one thread owns a struct cdn_ratelog.  Zero-initialised means
 * "no condition".  Times are the caller's (cdn_now_ms()), so the logic is
 * testable with any clock.
 */
#ifndef CDN_RATELOG_H
#define CDN_RATELOG_H

#include <stdint.h>

struct cdn_ratelog {
	int cond;            /* the current condition's code; 0: none */
	uint64_t begin_ms;   /* when it began */
	uint64_t line_ms;    /* when the last line about it was due */
	uint64_t count;      /* occurrences since it began */
	uint64_t unreported; /* occurrences since the last line */
};

enum cdn_ratelog_say {
	CDN_RATELOG_QUIET = 0, /* log nothing now */
	CDN_RATELOG_BEGIN,     /* a new condition: say what it is */
	CDN_RATELOG_REPEAT,    /* still there: say how many more since */
	CDN_RATELOG_END,       /* cleared: say so, with the episode's figures */
};

/* What a line should report: filled for REPEAT and END (and BEGIN, where
 * <count> is that of the episode a different condition ended, or 0). */
struct cdn_ratelog_report {
	uint64_t repeats;    /* occurrences not reported in a line yet */
	uint64_t count;      /* occurrences in the whole episode */
	uint64_t elapsed_ms; /* since the episode began */
};

/*
 * One occurrence of condition <cond> (non-zero) at <now_ms>: what to log.
 * <interval_ms> is the least time between two lines of one episode.
 * <out> may be NULL.
 */
enum cdn_ratelog_say cdn_ratelog_hit(struct cdn_ratelog *rl, int cond,
    uint64_t now_ms, uint64_t interval_ms, struct cdn_ratelog_report *out);

/* The condition is gone (the operation succeeded) at <now_ms>: END once
 * after an episode, QUIET otherwise.  <out> may be NULL. */
enum cdn_ratelog_say cdn_ratelog_clear(
    struct cdn_ratelog *rl, uint64_t now_ms, struct cdn_ratelog_report *out);

#endif /* CDN_RATELOG_H */
