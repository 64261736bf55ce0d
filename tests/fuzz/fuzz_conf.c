/*
 * libFuzzer target for the config loader (conf/conf_load.c) and the command
 * line (conf/conf_argv.c).
 *
 * 1. The input is a config file: conf_load_buf() must not crash or leak,
 *    whatever it holds, and its errors are printed (to /dev/null) so the
 *    message formatting runs too.  When it loads, --dump-config output must
 *    load back, and dump to the same text again (the dump is a fixed point).
 * 2. The input, split at newlines, is a command line for conf_argv_parse()
 *    (without -c/-f/--config, so that nothing reads the fuzzing machine's
 *    files).
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/conf.h"

#define FUZZ_MAX_ARGS 32

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static FILE *devnull;

static char *
dump_text(const struct conf *c, size_t *lenp)
{
	char *buf = NULL;
	FILE *f = open_memstream(&buf, lenp);

	if (f == NULL)
		abort();
	conf_dump(f, c);
	fclose(f);
	return buf;
}

static void
fuzz_file(const char *text, size_t size)
{
	struct conf *c = conf_new_defaults(), *back;
	char *d1, *d2;
	size_t l1, l2;

	if (conf_load_buf(c, "fuzz.conf", text, size, devnull) != CDN_OK) {
		conf_unref(&c);
		return;
	}
	d1 = dump_text(c, &l1);
	back = conf_new_defaults();
	if (conf_load_buf(back, "dump", d1, l1, stderr) != CDN_OK)
		abort(); /* a dump that does not load back */
	d2 = dump_text(back, &l2);
	if (l1 != l2 || memcmp(d1, d2, l1) != 0)
		abort(); /* a dump that loads back to something else */
	free(d1);
	free(d2);
	conf_unref(&back);
	conf_unref(&c);
}

static void
fuzz_argv(const char *text, size_t size)
{
	char *copy, *argv[FUZZ_MAX_ARGS + 1], *p, *nl;
	struct conf *c = NULL;
	enum conf_action act;
	int argc = 0;

	copy = malloc(size + 1);
	if (copy == NULL)
		return;
	memcpy(copy, text, size);
	copy[size] = '\0';
	argv[argc++] = (char *)(uintptr_t) "edged";
	for (p = copy; argc < FUZZ_MAX_ARGS; p = nl + 1) {
		nl = strchr(p, '\n');
		if (nl != NULL)
			*nl = '\0';
		if (strncmp(p, "-c", 2) == 0 || strncmp(p, "-f", 2) == 0 ||
		    strncmp(p, "--config", 8) == 0)
			goto out; /* no reading of real files */
		argv[argc++] = p;
		if (nl == NULL)
			break;
	}
	argv[argc] = NULL;
	if (conf_argv_parse(argc, argv, devnull, &c, &act) == CDN_OK) {
		if (c == NULL)
			abort();
		conf_unref(&c);
	} else if (c != NULL) {
		abort(); /* *out must stay untouched on error */
	}
out:
	free(copy);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (devnull == NULL) {
		devnull = fopen("/dev/null", "w");
		if (devnull == NULL)
			abort();
	}
	if (size > CONF_MAX_FILE + 1)
		return 0;
	fuzz_file((const char *)data, size);
	fuzz_argv((const char *)data, size);
	return 0;
}
