/*
 * edgectl: the operator's command line for one edge node.
 *
 *   edgectl [--json] purge (--url U | --tag T | --prefix P)... [--soft]
 *           [--dry-run] [--wait[=TIMEOUT]]   through purged's POST /purge
 *           [--bus URL [--bus-password-file F]]   or straight to the bus
 *   edgectl [--json] fleet                   purged's GET /fleet
 *   edgectl [--json] stats                   edged's admin /stats
 *   edgectl [--json] inspect URL             purged's GET /inspect
 *
 * Where: --purge-api URL (default $EDGECTL_PURGE_API or
 * http://127.0.0.1:8082), --admin URL (default $EDGECTL_ADMIN or
 * http://127.0.0.1:8081), --token-file F (default $EDGECTL_TOKEN_FILE),
 * --admin-token-file F (default $EDGECTL_ADMIN_TOKEN_FILE); these and
 * --json may also follow the command.  Exit status: 0 done, 1 the request
 * failed or was refused, 2 bad usage (a missing token file included).
 */
#include "config.h"

#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <jansson.h>

#include "common/cdn.h"
#include "common/cdn_strbuf.h"
#include "conf/conf.h"
#include "purge/edgectl.h"
#include "purge/purge_bus.h"

#define TOKEN_MAX    4096
#define MAX_ITEMS    1000
#define REPLY_MAX    (64u << 20)
#define TIMEOUT_S    30L
#define WAIT_DEFAULT "10s" /* --wait alone */
#define WAIT_MAX_MS  600000

struct ctl {
	const char *purge_api, *admin, *token_file, *admin_token_file;
	int json;
};

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: edgectl [options] purge (--url U | --tag T | --prefix "
	    "P)... "
	    "[--soft] [--dry-run]\n"
	    "               [--wait[=TIMEOUT]] [--bus "
	    "redis://HOST:PORT[/STREAM] "
	    "[--bus-password-file F]]\n"
	    "       edgectl [options] fleet\n"
	    "       edgectl [options] stats\n"
	    "       edgectl [options] inspect URL\n"
	    "options (before or after the command): --json  --purge-api URL  "
	    "--admin URL\n"
	    "  --token-file F  --admin-token-file F\n");
}

static size_t
on_data(char *p, size_t size, size_t n, void *arg)
{
	struct cdn_strbuf *b = arg;

	cdn_sb_add(b, p, size * n);
	return b->failed ? 0 : size * n;
}

/* The first token of a token file ("TOKEN" or "ID TOKEN" lines). */
static int
read_token(const char *path, char *out, size_t cap)
{
	char line[TOKEN_MAX + 64], *p, *sp;
	FILE *f = fopen(path, "r");
	size_t n;

	if (f == NULL) {
		fprintf(stderr, "edgectl: %s: ", path);
		perror(NULL);
		return -1;
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		n = strcspn(line, "\r\n");
		line[n] = '\0';
		while (n > 0 && (line[n - 1] == ' ' || line[n - 1] == '\t'))
			line[--n] = '\0';
		if (n == 0 || line[0] == '#')
			continue;
		sp = strchr(line, ' ');
		p = sp != NULL ? sp + 1 : line;
		n = strlen(p);
		if (n >= cap)
			n = cap - 1;
		memcpy(out, p, n);
		out[n] = '\0';
		explicit_bzero(line, sizeof(line));
		fclose(f);
		return 0;
	}
	fclose(f);
	fprintf(stderr, "edgectl: %s: no token\n", path);
	return -1;
}

/*
 * One request; the reply body is parsed as JSON into *out (NULL if it is
 * not JSON).  Returns the HTTP status, or -1 if there was no answer.
 */
static long
call(const char *method, const char *url, const char *token_file,
    const char *body, json_t **out)
{
	struct cdn_strbuf reply = {.max = REPLY_MAX};
	struct curl_slist *h = NULL;
	char token[TOKEN_MAX + 1], auth[TOKEN_MAX + 32];
	long status = -1;
	CURL *c;
	CURLcode rc;

	*out = NULL;
	c = curl_easy_init();
	if (c == NULL)
		return -1;
	if (token_file != NULL && token_file[0] != '\0') {
		if (read_token(token_file, token, sizeof(token)) != 0) {
			curl_easy_cleanup(c);
			return -1;
		}
		snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
		h = curl_slist_append(h, auth);
		explicit_bzero(token, sizeof(token));
		explicit_bzero(auth, sizeof(auth));
	}
	if (body != NULL) {
		h = curl_slist_append(h, "Content-Type: application/json");
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
	}
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &reply);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, TIMEOUT_S);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	rc = curl_easy_perform(c);
	if (rc != CURLE_OK) {
		fprintf(stderr, "edgectl: %s %s: %s\n", method, url,
		    curl_easy_strerror(rc));
	} else {
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
		if (reply.len > 0)
			*out = json_loadb(reply.p, reply.len, 0, NULL);
		if (*out == NULL && status != 200)
			fprintf(stderr, "edgectl: %s %s: status %ld\n", method,
			    url, status);
	}
	curl_slist_free_all(h);
	curl_easy_cleanup(c);
	cdn_sb_free(&reply);
	return status;
}

void
edgectl_print_json(json_t *j)
{
	char *s = json_dumps(j, JSON_INDENT(2) | JSON_REAL_PRECISION(9));

	if (s != NULL)
		printf("%s\n", s);
	free(s);
}

void
edgectl_print_fleet(int confirmed, json_t *behind, json_t *down)
{
	json_t *n;
	size_t i;

	if (confirmed)
		printf("applied by every live node\n");
	json_array_foreach(behind, i, n)
	{
		printf("  not applied by %s (timeout)\n", json_string_value(n));
	}
	json_array_foreach(down, i, n)
	{
		printf("  node %s is down (no heartbeat for %d s)\n",
		    json_string_value(n), PURGE_FLEET_LIVE_S);
	}
}

/* A refusal or error answer: say what purged or edged said. */
static int
failed(long status, json_t *j)
{
	const char *why = json_string_value(json_object_get(j, "error"));

	if (status > 0)
		fprintf(stderr, "edgectl: refused: %ld %s\n", status,
		    why != NULL ? why : "");
	return 1;
}

/*
 * purged answers nothing without a token: say that the file is missing
 * rather than send a request bound to come back 401.
 */
static int
need_token(const struct ctl *ctl)
{
	if (ctl->token_file != NULL && ctl->token_file[0] != '\0')
		return 0;
	fprintf(stderr,
	    "edgectl: no token file: purged needs a token "
	    "(--token-file F or EDGECTL_TOKEN_FILE)\n");
	return -1;
}

/* The summary of a purge's answer, for a reader (--json: for programs). */
static void
print_purge(json_t *reply, int soft, int dry)
{
	json_t *it, *m;
	size_t i;
	int counted = json_is_true(json_object_get(reply, "counted"));

	printf("purge %" JSON_INTEGER_FORMAT "%s%s: %" JSON_INTEGER_FORMAT
	       " object(s) matched%s, %.3f ms\n",
	    json_integer_value(json_object_get(reply, "seq")),
	    soft ? " (soft)" : "", dry ? " (dry run)" : "",
	    json_integer_value(json_object_get(reply, "matched")),
	    counted ? "" : " (prefixes not counted)",
	    json_real_value(json_object_get(reply, "ms")));
	json_array_foreach(json_object_get(reply, "items"), i, it)
	{
		m = json_object_get(it, "matched");
		if (json_is_integer(m))
			printf("  %s %s: %" JSON_INTEGER_FORMAT " matched\n",
			    json_string_value(json_object_get(it, "type")),
			    json_string_value(json_object_get(it, "value")),
			    json_integer_value(m));
		else
			printf("  %s %s: applied by generation, not counted\n",
			    json_string_value(json_object_get(it, "type")),
			    json_string_value(json_object_get(it, "value")));
	}
}

static int
cmd_purge(const struct ctl *ctl, int argc, char **argv)
{
	static const struct option opts[] = {
	    {"url", required_argument, NULL, 'u'},
	    {"tag", required_argument, NULL, 't'},
	    {"prefix", required_argument, NULL, 'p'},
	    {"soft", no_argument, NULL, 's'},
	    {"dry-run", no_argument, NULL, 'n'},
	    {"wait", optional_argument, NULL, 'w'},
	    {"bus", required_argument, NULL, 'b'},
	    {"bus-password-file", required_argument, NULL, 'B'},
	    {NULL, 0, NULL, 0},
	};
	json_t *req, *urls, *tags, *prefixes, *reply = NULL;
	char url[4096], *body;
	const char *bus = NULL, *bus_pw = NULL, *wait = NULL, *why;
	uint64_t wait_ms = 0;
	int opt, soft = 0, dry = 0, nitems = 0, rc;
	long status;

	req = json_object();
	urls = json_array();
	tags = json_array();
	prefixes = json_array();
	optind = 1;
	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (opt) {
		case 'u':
			json_array_append_new(urls, json_string(optarg));
			break;
		case 't':
			json_array_append_new(tags, json_string(optarg));
			break;
		case 'p':
			json_array_append_new(prefixes, json_string(optarg));
			break;
		case 's':
			soft = 1;
			continue;
		case 'n':
			dry = 1;
			continue;
		case 'w':
			wait = optarg != NULL ? optarg : WAIT_DEFAULT;
			continue;
		case 'b':
			bus = optarg;
			continue;
		case 'B':
			bus_pw = optarg;
			continue;
		default:
			goto usage_fail;
		}
		if (++nitems > MAX_ITEMS)
			goto usage_fail;
	}
	if (optind != argc || nitems == 0 || (bus != NULL && dry) ||
	    (bus_pw != NULL && bus == NULL))
		goto usage_fail;
	if (wait != NULL) {
		char d[64];

		/* A bare number is seconds. */
		snprintf(d, sizeof(d), "%s%s", wait,
		    strspn(wait, "0123456789") == strlen(wait) ? "s" : "");
		if (conf_parse_duration_ms(d, &wait_ms, &why) != CDN_OK ||
		    wait_ms == 0 || wait_ms > WAIT_MAX_MS) {
			fprintf(stderr,
			    "edgectl: --wait=%s: a duration up to 10m "
			    "(10s, 500ms)\n",
			    wait);
			goto usage_fail;
		}
	}
	json_object_set_new(req, "urls", urls);
	json_object_set_new(req, "tags", tags);
	json_object_set_new(req, "prefixes", prefixes);
	json_object_set_new(req, "soft", json_boolean(soft));
	if (bus != NULL) {
		rc = edgectl_bus_purge(bus, bus_pw, req, wait_ms, ctl->json);
		json_decref(req);
		return rc;
	}
	if (need_token(ctl) != 0) {
		json_decref(req);
		return 2;
	}
	json_object_set_new(req, "dry_run", json_boolean(dry));
	body = json_dumps(req, JSON_COMPACT);
	json_decref(req);
	if (body == NULL)
		return 1;
	if (wait_ms > 0)
		snprintf(url, sizeof(url), "%s/purge?wait=%" PRIu64 "ms",
		    ctl->purge_api, wait_ms);
	else
		snprintf(url, sizeof(url), "%s/purge", ctl->purge_api);
	status = call("POST", url, ctl->token_file, body, &reply);
	free(body);
	if (status != 200 && status != 202) {
		rc = failed(status, reply);
		json_decref(reply);
		return rc;
	}
	/* 202: applied here, not confirmed by every live node in time. */
	rc = status == 200 ? 0 : 1;
	if (ctl->json) {
		edgectl_print_json(reply);
	} else {
		json_t *fleet = json_object_get(reply, "fleet");
		const char *bus_id =
		    json_string_value(json_object_get(reply, "bus_id"));

		if (bus_id != NULL)
			printf("bus id %s\n", bus_id);
		if (fleet != NULL)
			edgectl_print_fleet(status == 200,
			    json_object_get(fleet, "not_applied"),
			    json_object_get(fleet, "down"));
		print_purge(reply, soft, dry);
	}
	json_decref(reply);
	return rc;

usage_fail:
	json_decref(req);
	json_decref(urls);
	json_decref(tags);
	json_decref(prefixes);
	usage(stderr);
	return 2;
}

static void
print_flat(const char *prefix, json_t *j)
{
	const char *k;
	json_t *v;
	char name[256];

	json_object_foreach(j, k, v)
	{
		snprintf(name, sizeof(name), "%s%s%s", prefix,
		    prefix[0] != '\0' ? "." : "", k);
		if (json_is_object(v)) {
			print_flat(name, v);
		} else if (json_is_integer(v)) {
			printf("%s %" JSON_INTEGER_FORMAT "\n", name,
			    json_integer_value(v));
		} else if (json_is_real(v)) {
			printf("%s %g\n", name, json_real_value(v));
		} else if (json_is_string(v)) {
			printf("%s %s\n", name, json_string_value(v));
		} else if (json_is_boolean(v)) {
			printf("%s %s\n", name,
			    json_is_true(v) ? "true" : "false");
		}
	}
}

static int
cmd_stats(const struct ctl *ctl)
{
	char url[4096];
	json_t *reply = NULL;
	long status;
	int rc = 0;

	snprintf(url, sizeof(url), "%s/stats", ctl->admin);
	status = call("GET", url, ctl->admin_token_file, NULL, &reply);
	if (status != 200 || reply == NULL)
		rc = failed(status, reply);
	else if (ctl->json)
		edgectl_print_json(reply);
	else
		print_flat("", reply);
	json_decref(reply);
	return rc;
}

static void
print_variant(json_t *v)
{
	json_t *tags = json_object_get(v, "tags"), *t;
	const char *hp = json_string_value(json_object_get(v, "headers"));
	size_t i, l;

	printf("  variant %s: status %" JSON_INTEGER_FORMAT
	       ", %" JSON_INTEGER_FORMAT " bytes, age %" JSON_INTEGER_FORMAT
	       " s, ttl left %" JSON_INTEGER_FORMAT " s, purged %s\n",
	    json_string_value(json_object_get(v, "variant")),
	    json_integer_value(json_object_get(v, "status")),
	    json_integer_value(json_object_get(v, "size")),
	    json_integer_value(json_object_get(v, "age")),
	    json_integer_value(json_object_get(v, "ttl_left")),
	    json_string_value(json_object_get(v, "purged")));
	printf("    tags:");
	json_array_foreach(tags, i, t)
	{
		printf(" %s", json_string_value(t));
	}
	printf("\n    vary: %s\n    headers:\n",
	    json_string_value(json_object_get(v, "vary")));
	while (hp != NULL && *hp != '\0') {
		l = strcspn(hp, "\r\n");
		if (l > 0)
			printf("      %.*s\n", (int)l, hp);
		hp += l;
		hp += strspn(hp, "\r\n");
	}
}

static int
cmd_inspect(const struct ctl *ctl, const char *target)
{
	struct cdn_strbuf url = {.max = 65536};
	json_t *reply = NULL, *k, *v, *vars;
	CURL *c = curl_easy_init();
	char *esc;
	long status;
	size_t i, n;
	int rc = 0;

	if (c == NULL)
		return 1;
	esc = curl_easy_escape(c, target, 0);
	curl_easy_cleanup(c);
	if (esc == NULL)
		return 1;
	cdn_sb_printf(&url, "%s/inspect?url=%s", ctl->purge_api, esc);
	curl_free(esc);
	if (url.failed) {
		cdn_sb_free(&url);
		return 2;
	}
	status = call("GET", url.p, ctl->token_file, NULL, &reply);
	cdn_sb_free(&url);
	if (status != 200 || reply == NULL) {
		rc = failed(status, reply);
	} else if (ctl->json) {
		edgectl_print_json(reply);
	} else {
		json_array_foreach(json_object_get(reply, "keys"), i, k)
		{
			printf("key %s (hash %s)\n",
			    json_string_value(json_object_get(k, "key")),
			    json_string_value(json_object_get(k, "hash")));
			vars = json_object_get(k, "variants");
			if (json_array_size(vars) == 0)
				printf("  not stored\n");
			json_array_foreach(vars, n, v)
			{
				print_variant(v);
			}
		}
	}
	json_decref(reply);
	return rc;
}

static int
cmd_fleet(const struct ctl *ctl)
{
	char url[4096];
	json_t *reply = NULL, *n, *self;
	long status;
	size_t i;
	int rc = 0;

	snprintf(url, sizeof(url), "%s/fleet", ctl->purge_api);
	status = call("GET", url, ctl->token_file, NULL, &reply);
	if (status != 200 || reply == NULL) {
		rc = failed(status, reply);
	} else if (ctl->json) {
		edgectl_print_json(reply);
	} else {
		self = json_object_get(reply, "self");
		printf("this node: %s, bus %s, %s, applied %s\n",
		    json_string_value(json_object_get(self, "node")),
		    json_string_value(json_object_get(self, "bus")),
		    json_string_value(json_object_get(self, "state")),
		    json_string_value(json_object_get(self, "applied")));
		printf("%-24s %-28s %12s %10s %14s %s\n", "node", "applied",
		    "lag_entries", "lag_ms", "heartbeat_age", "state");
		json_array_foreach(json_object_get(reply, "nodes"), i, n)
		{
			printf("%-24s %-28s %12" JSON_INTEGER_FORMAT
			       " %10" JSON_INTEGER_FORMAT
			       " %12" JSON_INTEGER_FORMAT "ms %s\n",
			    json_string_value(json_object_get(n, "name")),
			    json_string_value(json_object_get(n, "applied")),
			    json_integer_value(
			        json_object_get(n, "lag_entries")),
			    json_integer_value(json_object_get(n, "lag_ms")),
			    json_integer_value(
			        json_object_get(n, "heartbeat_age_ms")),
			    json_is_true(json_object_get(n, "live")) ? "live"
			                                             : "down");
		}
	}
	json_decref(reply);
	return rc;
}

/*
 * Take the options every command shares out of a command's words, wherever
 * they stand ("purge --url U --json"), so that the command parses only
 * its own: argv[0] is the command; returns the new argc (argv is
 * compacted, NULL-terminated), or 0 after saying what is wrong.  "--" ends
 * the search.
 */
static int
take_common(struct ctl *ctl, int argc, char **argv)
{
	static const char *const names[] = {
	    "--purge-api", "--admin", "--token-file", "--admin-token-file"};
	const char **slots[] = {&ctl->purge_api, &ctl->admin, &ctl->token_file,
	    &ctl->admin_token_file};
	const char *a, *eq;
	size_t nlen, k;
	int out = 1;

	for (int i = 1; i < argc; i++) {
		a = argv[i];
		if (strcmp(a, "--") == 0) {
			while (i < argc)
				argv[out++] = argv[i++];
			break;
		}
		if (strcmp(a, "--json") == 0) {
			ctl->json = 1;
			continue;
		}
		eq = strchr(a, '=');
		nlen = eq != NULL ? (size_t)(eq - a) : strlen(a);
		for (k = 0; k < CDN_ARRAY_LEN(names); k++)
			if (strlen(names[k]) == nlen &&
			    strncmp(a, names[k], nlen) == 0)
				break;
		if (k == CDN_ARRAY_LEN(names)) {
			argv[out++] = argv[i];
			continue;
		}
		if (eq != NULL) {
			*slots[k] = eq + 1;
		} else if (i + 1 < argc) {
			*slots[k] = argv[++i];
		} else {
			fprintf(stderr, "edgectl: %s needs a value\n", a);
			return 0;
		}
	}
	argv[out] = NULL;
	return out;
}

static const char *
env_or(const char *name, const char *dflt)
{
	const char *v = getenv(name);

	return v != NULL && v[0] != '\0' ? v : dflt;
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"json", no_argument, NULL, 'j'},
	    {"purge-api", required_argument, NULL, 'P'},
	    {"admin", required_argument, NULL, 'A'},
	    {"token-file", required_argument, NULL, 'T'},
	    {"admin-token-file", required_argument, NULL, 'a'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct ctl ctl;
	int opt, rc;

	memset(&ctl, 0, sizeof(ctl));
	ctl.purge_api = env_or("EDGECTL_PURGE_API", "http://127.0.0.1:8082");
	ctl.admin = env_or("EDGECTL_ADMIN", "http://127.0.0.1:8081");
	ctl.token_file = env_or("EDGECTL_TOKEN_FILE", NULL);
	ctl.admin_token_file = env_or("EDGECTL_ADMIN_TOKEN_FILE", NULL);
	/* Options before the command ("+": stop at the first word). */
	while ((opt = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
		switch (opt) {
		case 'j':
			ctl.json = 1;
			break;
		case 'P':
			ctl.purge_api = optarg;
			break;
		case 'A':
			ctl.admin = optarg;
			break;
		case 'T':
			ctl.token_file = optarg;
			break;
		case 'a':
			ctl.admin_token_file = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return 2;
	}
	argc = optind + take_common(&ctl, argc - optind, argv + optind);
	if (argc <= optind) {
		usage(stderr);
		return 2;
	}
	if ((strcmp(argv[optind], "fleet") == 0 ||
	        strcmp(argv[optind], "inspect") == 0) &&
	    need_token(&ctl) != 0)
		return 2;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	if (strcmp(argv[optind], "purge") == 0) {
		rc = cmd_purge(&ctl, argc - optind, argv + optind);
	} else if (strcmp(argv[optind], "fleet") == 0 && optind + 1 == argc) {
		rc = cmd_fleet(&ctl);
	} else if (strcmp(argv[optind], "stats") == 0 && optind + 1 == argc) {
		rc = cmd_stats(&ctl);
	} else if (strcmp(argv[optind], "inspect") == 0 && optind + 2 == argc) {
		rc = cmd_inspect(&ctl, argv[optind + 1]);
	} else {
		usage(stderr);
		rc = 2;
	}
	curl_global_cleanup();
	return rc;
}
