/*
 * The metric table (edge/edge_counters.h) is well formed, and
 * docs/metrics.md documents exactly its /metrics families, with their
 * types and label names, and names every /stats key it defines.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edge/edge_int.h"
#include "tests/unit/tap.h"

#define MAX_FAMILIES 128
#define MAX_LABELS   4
#define DOC_MAX      (1 << 20)

struct family {
	const char *name, *type, *help;
	const char *labels[MAX_LABELS];
	unsigned nlabels;
	int documented;
};

static struct family fams[MAX_FAMILIES];
static unsigned nfams;
static int split_family; /* a family's rows were not consecutive */
static int bad_help;     /* help on a continuation row, or none on a first */

static const char *const kind_type[] = {
    "counter", "gauge", "gauge", "gauge", "counter"};
enum { KIND_COUNTER, KIND_GAUGE, KIND_FLAG, KIND_MS, KIND_MS_TOTAL };

static void
label_add(struct family *f, const char *l)
{
	if (l == NULL)
		return;
	for (unsigned i = 0; i < f->nlabels; i++)
		if (strcmp(f->labels[i], l) == 0)
			return;
	if (f->nlabels < MAX_LABELS)
		f->labels[f->nlabels++] = l;
}

/* A row of <family>: the previous row's family or a new one. */
static struct family *
row(const char *family, const char *type, const char *help)
{
	struct family *f = nfams > 0 ? &fams[nfams - 1] : NULL;

	if (family == NULL)
		return NULL;
	if (f != NULL && strcmp(f->name, family) == 0) {
		if (help[0] != '\0')
			bad_help = 1;
		return f;
	}
	for (unsigned i = 0; i < nfams; i++)
		if (strcmp(fams[i].name, family) == 0)
			split_family = 1;
	if (help[0] == '\0')
		bad_help = 1;
	if (nfams == MAX_FAMILIES)
		abort();
	f = &fams[nfams++];
	f->name = family;
	f->type = type;
	f->help = help;
	return f;
}

static const char *const dim_labels[] = {
#define EDGE_DIM(id, label, count) label,
#include "edge/edge_counters.h"
};
enum {
#define EDGE_DIM(id, label, count) DIM_##id,
#include "edge/edge_counters.h"
	DIM_NONE
};

static void
collect(void)
{
	struct family *f;

#define KIND(k) kind_type[KIND_##k]
#define SCALAR(kind, family, label, help)                                      \
	if ((f = row(family, KIND(kind), help)) != NULL)                       \
		label_add(f, label);
#define EDGE_NODE_STAT(field, kind, group, key, family, label, value, help)    \
	SCALAR(kind, family, label, help)
#include "edge/edge_counters.h"
#define EDGE_PROCESS_STAT(field, kind, family, help)                           \
	SCALAR(kind, family, NULL, help)
#include "edge/edge_counters.h"
#define EDGE_D1(a)    DIM_##a, DIM_NONE
#define EDGE_D2(a, b) DIM_##a, DIM_##b
#define EDGE_COUNTER(field, kind, group, key, family, label, value, help)      \
	SCALAR(kind, family, label, help)
#define EDGE_COUNTER_VEC(                                                      \
    field, dims, first, group, key, family, label, value, help)                \
	if ((f = row(family, "counter", help)) != NULL) {                      \
		const int d[2] = {dims};                                       \
		label_add(f, label);                                           \
		for (int i = 0; i < 2; i++)                                    \
			if (d[i] != DIM_NONE)                                  \
				label_add(f, dim_labels[d[i]]);                \
	}
#include "edge/edge_counters.h"
#undef EDGE_D1
#undef EDGE_D2
#define EDGE_STORE_STAT(field, kind, group, key, family, label, value, help)   \
	SCALAR(kind, family, label, help)
#include "edge/edge_counters.h"
#define EDGE_VARIANT_STAT(field, kind, group, key, family, label, value, help) \
	SCALAR(kind, family, label, help)
#include "edge/edge_counters.h"
#define EDGE_BUS_STAT(field, kind, group, key, family, label, value, help)     \
	SCALAR(kind, family, label, help)
#define EDGE_BUS_HIST(key, family, help)                                       \
	if ((f = row(family, "histogram", help)) != NULL)                      \
		label_add(f, NULL);
#include "edge/edge_counters.h"
#define ORIGIN_TYPE_COUNT "counter"
#define ORIGIN_TYPE_KINDS "counter"
#define ORIGIN_TYPE_HIST  "histogram"
#define EDGE_ORIGIN_STAT(field, shape, key, family, help)                      \
	if ((f = row(family, ORIGIN_TYPE_##shape, help)) != NULL) {            \
		label_add(f, "pool");                                          \
		label_add(f, "role");                                          \
		label_add(f, "server");                                        \
		if (strcmp(#shape, "KINDS") == 0)                              \
			label_add(f, dim_labels[DIM_KIND]);                    \
	}
#include "edge/edge_counters.h"
#define EDGE_SITE_COUNTER(field, key, family, help)                            \
	if ((f = row(family, "counter", help)) != NULL)                        \
		label_add(f, "site");
#include "edge/edge_counters.h"
#define EDGE_POOL_STAT(field, kind, key, family, help)                         \
	if ((f = row(family, KIND(kind), help)) != NULL) {                     \
		label_add(f, "pool");                                          \
		label_add(f, "role");                                          \
	}
#include "edge/edge_counters.h"
#define EDGE_SERVER_STAT(field, kind, key, family, help)                       \
	if ((f = row(family, KIND(kind), help)) != NULL) {                     \
		label_add(f, "pool");                                          \
		label_add(f, "role");                                          \
		label_add(f, "server");                                        \
	}
#include "edge/edge_counters.h"
#undef SCALAR
#undef KIND
}

/* The text of section "## <title>" of <doc>, up to the next "## ". */
static char *
section(const char *doc, const char *title, size_t *len)
{
	char head[64];
	const char *p, *end;

	snprintf(head, sizeof(head), "\n## %s\n", title);
	p = strstr(doc, head);
	if (p == NULL)
		return NULL;
	p += strlen(head);
	end = strstr(p, "\n## ");
	*len = end != NULL ? (size_t)(end - p) : strlen(p);
	return strndup(p, *len);
}

static struct family *
family_named(const char *name, size_t len)
{
	for (unsigned i = 0; i < nfams; i++)
		if (strlen(fams[i].name) == len &&
		    memcmp(fams[i].name, name, len) == 0)
			return &fams[i];
	return NULL;
}

/* The backticked words of [p, end), each passed to <fn>. */
static void
each_code(const char *p, const char *end,
    void (*fn)(const char *w, size_t len, void *arg), void *arg)
{
	const char *q;

	while (p < end && (p = memchr(p, '`', (size_t)(end - p))) != NULL) {
		q = memchr(p + 1, '`', (size_t)(end - p - 1));
		if (q == NULL)
			break;
		fn(p + 1, (size_t)(q - p - 1), arg);
		p = q + 1;
	}
}

struct doc_row {
	struct family *f[8];
	unsigned nf;
	const char *labels[MAX_LABELS];
	size_t label_len[MAX_LABELS];
	unsigned nlabels;
};

static void
on_name(const char *w, size_t len, void *arg)
{
	struct doc_row *r = arg;
	struct family *f = family_named(w, len);

	ok(f != NULL, "docs/metrics.md: `%.*s` is a metric of the table",
	    (int)len, w);
	if (f != NULL && r->nf < 8) {
		f->documented++;
		r->f[r->nf++] = f;
	}
}

static void
on_label(const char *w, size_t len, void *arg)
{
	struct doc_row *r = arg;

	if (r->nlabels < MAX_LABELS) {
		r->labels[r->nlabels] = w;
		r->label_len[r->nlabels++] = len;
	}
}

/* One row of the /metrics table: | names | type | labels | meaning | */
static void
check_doc_row(const char *line, const char *end)
{
	const char *c[5];
	unsigned n = 0;
	struct doc_row r = {.nf = 0};

	for (const char *p = line; p < end && n < 5; p++)
		if (*p == '|')
			c[n++] = p;
	if (n < 5)
		return;
	each_code(c[0], c[1], on_name, &r);
	each_code(c[2], c[3], on_label, &r);
	for (unsigned i = 0; i < r.nf; i++) {
		struct family *f = r.f[i];
		char type[32];
		int same = r.nlabels == f->nlabels;

		snprintf(type, sizeof(type), "%.*s", (int)(c[2] - c[1] - 1),
		    c[1] + 1);
		ok(strstr(type, f->type) != NULL, "docs: %s is a %s (docs: %s)",
		    f->name, f->type, type);
		for (unsigned k = 0; same && k < r.nlabels; k++) {
			int found = 0;

			for (unsigned j = 0; j < f->nlabels; j++)
				found |=
				    strlen(f->labels[j]) == r.label_len[k] &&
				    memcmp(f->labels[j], r.labels[k],
				        r.label_len[k]) == 0;
			same = found;
		}
		ok(same, "docs: the labels of %s are the table's", f->name);
	}
}

/* Every /stats key of the table appears as `key` in the /stats section. */
static void
check_stats_keys(const char *text)
{
	char want[96];

#define KEY(key)                                                               \
	if ((key) != NULL) {                                                   \
		snprintf(want, sizeof(want), "`%s`", (const char *)(key));     \
		ok(strstr(text, want) != NULL, "docs /stats names %s", want);  \
	}
#define EDGE_JGROUP(id, parent, key)                          KEY(key)
#define EDGE_NODE_STAT(field, kind, group, key, ...)          KEY(key)
#define EDGE_COUNTER(field, kind, group, key, ...)            KEY(key)
#define EDGE_COUNTER_VEC(field, dims, first, group, key, ...) KEY(key)
#define EDGE_COUNTER_ALIAS(field, group, key)                 KEY(key)
#define EDGE_STORE_STAT(field, kind, group, key, ...)         KEY(key)
#define EDGE_VARIANT_STAT(field, kind, group, key, ...)       KEY(key)
#define EDGE_BUS_STAT(field, kind, group, key, ...)           KEY(key)
#define EDGE_BUS_HIST(key, ...)                               KEY(key)
#define EDGE_SITE_COUNTER(field, key, ...)                    KEY(key)
#define EDGE_POOL_STAT(field, kind, key, ...)                 KEY(key)
#define EDGE_SERVER_STAT(field, kind, key, ...)               KEY(key)
#define EDGE_ORIGIN_STAT(field, shape, key, ...)              KEY(key)
#define EDGE_SNAP(name, expr)                                 KEY(#name)
#include "edge/edge_counters.h"
#undef KEY
}

int
main(void)
{
	const char *srcdir = getenv("TESTS_SRCDIR");
	char path[1024], *doc, *metrics, *stats;
	size_t len, mlen, slen;
	FILE *fp;

	plan_no_plan();
	collect();
	ok(nfams > 0, "the table has %u families", nfams);
	ok(!split_family, "each family's rows are consecutive");
	ok(!bad_help, "the first row of each family has its help, only it");

	snprintf(path, sizeof(path), "%s/../docs/metrics.md",
	    srcdir != NULL ? srcdir : "tests");
	fp = fopen(path, "r");
	if (!ok(fp != NULL, "open %s", path))
		return done_testing();
	doc = calloc(1, DOC_MAX + 1);
	len = fread(doc, 1, DOC_MAX, fp);
	fclose(fp);
	ok(len > 0 && len < DOC_MAX, "read docs/metrics.md");

	metrics = section(doc, "/metrics", &mlen);
	stats = section(doc, "/stats", &slen);
	if (ok(metrics != NULL && stats != NULL, "sections /metrics, /stats")) {
		for (char *p = metrics; (p = strstr(p, "\n| `")) != NULL;) {
			char *end = strchr(p + 1, '\n');

			if (end == NULL)
				end = p + strlen(p);
			check_doc_row(p + 1, end);
			p = end;
		}
		for (unsigned i = 0; i < nfams; i++)
			ok(fams[i].documented == 1,
			    "docs/metrics.md lists %s once (%d)", fams[i].name,
			    fams[i].documented);
		check_stats_keys(stats);
	}
	free(metrics);
	free(stats);
	free(doc);
	return done_testing();
}
