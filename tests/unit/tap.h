/*
 * A minimal TAP producer for unit tests (run by automake's tap-driver.sh).
 *   plan_no_plan(); ok(cond, "name %d", i); is_int(got, want, "name");
 *   is_str(got, want, "name"); return done_testing();
 */
#ifndef TAP_H
#define TAP_H

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int tap_n, tap_failed;

static void
plan_no_plan(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
}

static int __attribute__((format(printf, 2, 3)))
ok(int cond, const char *fmt, ...)
{
	va_list ap;

	tap_n++;
	if (!cond)
		tap_failed++;
	printf("%sok %d - ", cond ? "" : "not ", tap_n);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	return cond;
}

#define is_int(got, want, ...)                                                 \
	do {                                                                   \
		long long tap_g_ = (long long)(got),                           \
		          tap_w_ = (long long)(want);                          \
		if (!ok(tap_g_ == tap_w_, __VA_ARGS__))                        \
			printf("#   got %lld, want %lld\n", tap_g_, tap_w_);   \
	} while (0)

#define is_str(got, want, ...)                                                 \
	do {                                                                   \
		const char *tap_g_ = (got), *tap_w_ = (want);                  \
		int tap_same_ = (tap_g_ == NULL && tap_w_ == NULL) ||          \
		    (tap_g_ != NULL && tap_w_ != NULL &&                       \
		        strcmp(tap_g_, tap_w_) == 0);                          \
		if (!ok(tap_same_, __VA_ARGS__))                               \
			printf("#   got \"%s\", want \"%s\"\n",                \
			    tap_g_ ? tap_g_ : "(null)",                        \
			    tap_w_ ? tap_w_ : "(null)");                       \
	} while (0)

static int
done_testing(void)
{
	printf("1..%d\n", tap_n);
	return tap_failed ? 1 : 0;
}

#endif /* TAP_H */
