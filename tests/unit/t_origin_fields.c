/*
 * docs/origin-request.md shows the table of edge/edge_origin_fields.h:
 * every row of the code's table is a row of the document's, word for
 * word, and the document has no row the code lacks.  The document is read
 * from $TESTS_SRCDIR/../docs (make check sets it) or ./docs.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cdn.h"
#include "tests/unit/tap.h"

#define LINE_MAX_LEN 1024

static const struct {
	const char *name, *action, *doc;
} rows[] = {
#define ORIGIN_FIELD(name, action, doc) {name, #action, doc},
#include "edge/edge_origin_fields.h"
#undef ORIGIN_FIELD
};

static FILE *
open_doc(void)
{
	const char *src = getenv("TESTS_SRCDIR");
	char path[LINE_MAX_LEN];

	if (src != NULL) {
		snprintf(
		    path, sizeof(path), "%s/../docs/origin-request.md", src);
		return fopen(path, "r");
	}
	return fopen("docs/origin-request.md", "r");
}

int
main(void)
{
	char line[LINE_MAX_LEN], want[LINE_MAX_LEN];
	unsigned found[CDN_ARRAY_LEN(rows)] = {0};
	unsigned doc_rows = 0;
	FILE *f;

	plan_no_plan();
	f = open_doc();
	if (!ok(f != NULL, "docs/origin-request.md opens"))
		return done_testing();
	while (fgets(line, sizeof(line), f) != NULL) {
		int matched = 0;

		line[strcspn(line, "\n")] = '\0';
		/* Table rows past the header and its rule. */
		if (line[0] != '|' || strncmp(line, "| field", 7) == 0 ||
		    strncmp(line, "|---", 4) == 0)
			continue;
		doc_rows++;
		for (size_t i = 0; i < CDN_ARRAY_LEN(rows); i++) {
			snprintf(want, sizeof(want), "| %s | %s | %s |",
			    rows[i].name, rows[i].action, rows[i].doc);
			if (strcmp(line, want) == 0) {
				found[i]++;
				matched = 1;
			}
		}
		ok(matched, "the document's row is the code's: %s", line);
	}
	fclose(f);
	for (size_t i = 0; i < CDN_ARRAY_LEN(rows); i++)
		is_int(found[i], 1, "%s is in the document once", rows[i].name);
	is_int(doc_rows, CDN_ARRAY_LEN(rows), "as many rows as the code");
	return done_testing();
}
