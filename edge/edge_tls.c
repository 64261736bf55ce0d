/*
 * TLS termination (edge/edge_tls.h): the SSL_CTXs of the listen_tls
 * listeners, built from tls_cert, tls_key, tls_ocsp_file and tls_sni_cert.
 *
 * Generations.  A generation is one default SSL_CTX (tls_cert, served when
 * SNI is absent or names no tls_sni_cert) plus one SSL_CTX per
 * tls_sni_cert, all built on the main thread at start-up and at each
 * SIGHUP.  Everything a generation owns hangs off its SSL_CTXs as ex_data
 * (struct ctx_data: the SNI table of the default one, the OCSP response of
 * each), so OpenSSL's own reference counts decide when it goes: SSL_new()
 * takes a reference on the default SSL_CTX, SSL_set_SSL_CTX() one on the
 * SNI one, and the last SSL_free() of an old generation frees it.
 *
 * Hand-off to the workers.  Each worker has a slot: cur, its own reference
 * on the generation it gives new connections, touched by that worker only;
 * and next, into which the main thread publishes a new generation (with a
 * reference for that worker) by atomic exchange.  The worker swaps next in
 * at its next accept.  One shared atomic pointer would leave a window
 * between a worker loading it and taking its reference in which a reload
 * could drop the last one; with a reference per worker no thread ever
 * uses an SSL_CTX it does not hold, and an accept costs one relaxed load.
 *
 * Session resumption.  Tickets (TLS 1.2 and 1.3) are sealed by our own key
 * ring, shared by every generation so that a reload keeps them valid: a
 * current and a previous key, each a 16-byte name, an AES-256-CBC key and
 * an HMAC-SHA256 key from RAND_bytes(), rotated every tls_ticket_rotate by
 * the main thread under ring_lock (workers take it for reading in the
 * ticket callback).  A ticket sealed with the previous key is accepted and
 * replaced, so a ticket lives between one and two rotation periods; the
 * keys never leave the process, so a restart ends every ticket.  Clients
 * without tickets resume from each generation's server-side session cache
 * (OpenSSL's, internally locked; tls_session_cache entries).
 *
 * Protocol: TLS 1.2 and 1.3 only; ECDHE with AES-GCM or ChaCha20-Poly1305,
 * the server's order (ChaCha20 first for clients that put it first, which
 * lack AES hardware); X25519, P-256, P-384; no compression, no
 * renegotiation; ALPN from tls_alpn (h2 and http/1.1 by default, in
 * the server's order; http/1.0 for a client offering only that), and a
 * fatal no_application_protocol alert to a client offering none of them
 * (RFC 7301 §3.2).  An OCSP response from a file is stapled to clients that
 * ask.
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ocsp.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "common/cdn_log.h"
#include "edge/edge_tls.h"

#define CIPHERS_TLS12                                                          \
	"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"           \
	"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"           \
	"ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
#define CIPHERS_TLS13                                                          \
	"TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:"                       \
	"TLS_CHACHA20_POLY1305_SHA256"
#define GROUPS             "X25519:P-256:P-384"
#define SESSION_ID_CONTEXT "edged"
#define OCSP_MAX_BYTES     (1024 * 1024)
#define TICKET_NAME_LEN    16

struct ticket_key {
	unsigned char name[TICKET_NAME_LEN];
	unsigned char aes[32];
	unsigned char hmac[32];
};

struct tls_slot {
	SSL_CTX *cur;            /* the worker's reference */
	_Atomic(SSL_CTX *) next; /* published by the main thread */
};

struct edge_tls {
	uint32_t magic;
#define EDGE_TLS_MAGIC 0x5d1e7a39u
	struct conf *conf; /* one reference: the newest loaded */
	SSL_CTX *ctx;      /* newest generation (main thread's ref) */
	struct tls_slot *slots;
	unsigned nslots;
	unsigned reloads;
	EVP_CIPHER *aes; /* AES-256-CBC, fetched once */
	struct event *rotate_ev;
	pthread_rwlock_t ring_lock; /* covers keys and nkeys */
	struct ticket_key keys[2];  /* [0] current, [1] previous */
	unsigned nkeys;
	unsigned char alpn[32]; /* tls_alpn, length-prefixed (RFC 7301) */
	unsigned alpn_len;
};

struct sni_entry {
	char *name; /* lower case; "*.example.com" for a wildcard */
	SSL_CTX *ctx;
};

/* ex_data of every SSL_CTX built here; freed with it. */
struct ctx_data {
	uint32_t magic;
#define CTX_DATA_MAGIC 0x0b6c25f4u
	struct edge_tls *t;
	unsigned char *ocsp; /* DER response to staple, or NULL */
	size_t ocsp_len;
	struct sni_entry *sni; /* default SSL_CTX only; sorted by name */
	unsigned nsni;
};

static int ctx_data_idx = -1;
static pthread_once_t ctx_data_once = PTHREAD_ONCE_INIT;

/* ---- errors ---- */

/*
 * The oldest error in this thread's OpenSSL queue (the root cause: "no
 * start line", "key values mismatch"), then clear the queue.
 */
static const char *
ssl_error(char *buf, size_t len)
{
	unsigned long e = ERR_get_error();

	if (e == 0)
		snprintf(buf, len, "unknown error");
	else
		ERR_error_string_n(e, buf, len);
	ERR_clear_error();
	return buf;
}

/* ---- ex_data ---- */

static void
ctx_data_free(
    void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
	struct ctx_data *d = ptr;

	(void)parent;
	(void)ad;
	(void)idx;
	(void)argl;
	(void)argp;
	if (d == NULL)
		return;
	MAGIC_CHECK(d, CTX_DATA_MAGIC);
	for (unsigned i = 0; i < d->nsni; i++) {
		free(d->sni[i].name);
		SSL_CTX_free(d->sni[i].ctx);
	}
	free(d->sni);
	free(d->ocsp);
	MAGIC_WIPE(d);
	free(d);
}

static void
ctx_data_init(void)
{
	ctx_data_idx =
	    SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, ctx_data_free);
	CDN_ASSERT(ctx_data_idx >= 0);
}

static struct ctx_data *
ctx_data(const SSL_CTX *ctx)
{
	struct ctx_data *d = SSL_CTX_get_ex_data(ctx, ctx_data_idx);

	MAGIC_CHECK(d, CTX_DATA_MAGIC);
	return d;
}

/* ---- callbacks (workers) ---- */

static int
sni_cmp(const void *a, const void *b)
{
	const struct sni_entry *x = a, *y = b;

	return strcmp(x->name, y->name);
}

/* The SSL_CTX of the tls_sni_cert for <host>: exact first, then *.rest. */
static SSL_CTX *
sni_lookup(const struct ctx_data *d, const char *host)
{
	struct sni_entry key = {0}, *hit; /* sni_cmp reads only the name */
	char name[256];
	size_t len = strlen(host), i;
	char *dot;

	if (len > 1 && host[len - 1] == '.')
		len--;
	if (len == 0 || len >= sizeof(name) - 1)
		return NULL;
	name[0] = '*';
	for (i = 0; i < len; i++) {
		char ch = host[i];

		name[i + 1] =
		    ch >= 'A' && ch <= 'Z' ? (char)(ch - 'A' + 'a') : ch;
	}
	name[len + 1] = '\0';
	key.name = name + 1;
	hit = bsearch(&key, d->sni, d->nsni, sizeof(*d->sni), sni_cmp);
	if (hit != NULL)
		return hit->ctx;
	/* One label only: *.example.com matches www.example.com. */
	dot = strchr(name + 1, '.');
	if (dot == NULL || dot == name + 1)
		return NULL;
	memmove(name + 1, dot, strlen(dot) + 1);
	key.name = name;
	hit = bsearch(&key, d->sni, d->nsni, sizeof(*d->sni), sni_cmp);
	return hit != NULL ? hit->ctx : NULL;
}

static int
on_servername(SSL *ssl, int *alert, void *arg)
{
	const struct ctx_data *d = arg;
	const char *host;
	SSL_CTX *ctx;

	host = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
	if (host == NULL || d->nsni == 0)
		return SSL_TLSEXT_ERR_NOACK; /* the default certificate */
	ctx = sni_lookup(d, host);
	if (ctx == NULL)
		return SSL_TLSEXT_ERR_NOACK;
	if (SSL_set_SSL_CTX(ssl, ctx) == NULL) {
		*alert = SSL_AD_INTERNAL_ERROR;
		return SSL_TLSEXT_ERR_ALERT_FATAL;
	}
	return SSL_TLSEXT_ERR_OK;
}

/*
 * RFC 7301: the first of tls_alpn (in the server's order) the client
 * offers, http/1.0 for a client that offers only that, else a fatal
 * no_application_protocol alert.
 */
static int
on_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen,
    const unsigned char *in, unsigned int inlen, void *arg)
{
	static const unsigned char h10[] = "\x08http/1.0";
	struct edge_tls *t = arg;
	unsigned char *sel;

	(void)ssl;
	MAGIC_CHECK(t, EDGE_TLS_MAGIC);
	if (SSL_select_next_proto(&sel, outlen, t->alpn, t->alpn_len, in,
	        inlen) == OPENSSL_NPN_NEGOTIATED ||
	    SSL_select_next_proto(&sel, outlen, h10, sizeof(h10) - 1, in,
	        inlen) == OPENSSL_NPN_NEGOTIATED) {
		*out = sel;
		return SSL_TLSEXT_ERR_OK;
	}
	return SSL_TLSEXT_ERR_ALERT_FATAL;
}

/* tls_alpn ("h2,http/1.1", checked by conf_validate) in wire format. */
static void
alpn_wire(struct edge_tls *t, const char *list)
{
	const char *p = list, *comma;
	size_t n;

	t->alpn_len = 0;
	while (*p != '\0') {
		comma = strchr(p, ',');
		n = comma != NULL ? (size_t)(comma - p) : strlen(p);
		CDN_ASSERT(
		    n > 0 && n < 255 && t->alpn_len + 1 + n <= sizeof(t->alpn));
		t->alpn[t->alpn_len++] = (unsigned char)n;
		memcpy(t->alpn + t->alpn_len, p, n);
		t->alpn_len += (unsigned)n;
		p += n + (comma != NULL);
	}
}

/* Staple the response (OpenSSL frees what it is given: a copy). */
static int
on_ocsp_status(SSL *ssl, void *arg)
{
	const struct ctx_data *d = arg;
	unsigned char *copy;

	if (d->ocsp == NULL)
		return SSL_TLSEXT_ERR_NOACK;
	copy = OPENSSL_malloc(d->ocsp_len);
	if (copy == NULL)
		return SSL_TLSEXT_ERR_NOACK;
	memcpy(copy, d->ocsp, d->ocsp_len);
	if (SSL_set_tlsext_status_ocsp_resp(ssl, copy, (long)d->ocsp_len) !=
	    1) {
		OPENSSL_free(copy);
		return SSL_TLSEXT_ERR_NOACK;
	}
	return SSL_TLSEXT_ERR_OK;
}

/*
 * Seal (enc = 1) or open a session ticket.  Returns 1 to go on, 2 to
 * accept a ticket under the previous key and issue a fresh one, 0 when
 * the key name is unknown (a full handshake follows), -1 on error.
 */
static int
on_ticket_key(SSL *ssl, unsigned char *name, unsigned char *iv,
    EVP_CIPHER_CTX *cctx, EVP_MAC_CTX *hctx, int enc)
{
	static char digest[] = "SHA256";
	struct edge_tls *t = ctx_data(SSL_get_SSL_CTX(ssl))->t;
	struct ticket_key k;
	OSSL_PARAM params[3];
	int which = -1, rc = -1;

	pthread_rwlock_rdlock(&t->ring_lock);
	for (unsigned i = 0; i < t->nkeys; i++) {
		if (enc ||
		    memcmp(name, t->keys[i].name, TICKET_NAME_LEN) == 0) {
			k = t->keys[i];
			which = (int)i;
			break;
		}
	}
	pthread_rwlock_unlock(&t->ring_lock);
	if (which < 0)
		return 0;
	params[0] = OSSL_PARAM_construct_octet_string(
	    OSSL_MAC_PARAM_KEY, k.hmac, sizeof(k.hmac));
	params[1] =
	    OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0);
	params[2] = OSSL_PARAM_construct_end();
	if (enc) {
		if (RAND_bytes(iv, EVP_CIPHER_get_iv_length(t->aes)) != 1)
			goto out;
		memcpy(name, k.name, TICKET_NAME_LEN);
		if (EVP_EncryptInit_ex(cctx, t->aes, NULL, k.aes, iv) != 1)
			goto out;
	} else if (EVP_DecryptInit_ex(cctx, t->aes, NULL, k.aes, iv) != 1) {
		goto out;
	}
	if (EVP_MAC_CTX_set_params(hctx, params) != 1)
		goto out;
	rc = enc || which == 0 ? 1 : 2;
out:
	OPENSSL_cleanse(&k, sizeof(k));
	return rc;
}

/* Never prompt on a terminal for a key's passphrase: fail instead. */
static int
on_no_password(char *buf, int size, int rwflag, void *arg)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)arg;
	return 0;
}

/* ---- ticket keys (main thread) ---- */

static int
ticket_key_new(struct ticket_key *k)
{
	if (RAND_bytes(k->name, sizeof(k->name)) != 1 ||
	    RAND_bytes(k->aes, sizeof(k->aes)) != 1 ||
	    RAND_bytes(k->hmac, sizeof(k->hmac)) != 1)
		return CDN_EIO;
	return CDN_OK;
}

static void
on_rotate(evutil_socket_t fd, short what, void *arg)
{
	struct edge_tls *t = arg;
	struct ticket_key k;
	char err[256];

	(void)fd;
	(void)what;
	MAGIC_CHECK(t, EDGE_TLS_MAGIC);
	if (ticket_key_new(&k) != CDN_OK) {
		CDN_LOG(CDN_LOG_ERR, "tls", "ticket key rotation: %s",
		    ssl_error(err, sizeof(err)));
		return; /* the current key stays; try again next period */
	}
	pthread_rwlock_wrlock(&t->ring_lock);
	t->keys[1] = t->keys[0];
	t->keys[0] = k;
	t->nkeys = 2;
	pthread_rwlock_unlock(&t->ring_lock);
	OPENSSL_cleanse(&k, sizeof(k));
	CDN_LOG(CDN_LOG_DEBUG, "tls", "session ticket keys rotated");
}

/* ---- building a generation (main thread) ---- */

/* Read a whole small file; CDN_EIO after logging. */
static int
read_file(const char *what, const char *path, unsigned char **out, size_t *lenp)
{
	unsigned char *buf = NULL;
	size_t len;
	FILE *f;
	int rc = CDN_EIO;

	f = fopen(path, "rb");
	if (f == NULL) {
		CDN_LOG(CDN_LOG_ERR, "tls", "%s %s: %s", what, path,
		    strerror(errno));
		return CDN_EIO;
	}
	buf = malloc(OCSP_MAX_BYTES + 1);
	if (buf == NULL) {
		CDN_LOG(CDN_LOG_ERR, "tls", "%s %s: out of memory", what, path);
		goto out;
	}
	len = fread(buf, 1, OCSP_MAX_BYTES + 1, f);
	if (ferror(f)) {
		CDN_LOG(CDN_LOG_ERR, "tls", "%s %s: %s", what, path,
		    strerror(errno));
		goto out;
	}
	if (len == 0 || len > OCSP_MAX_BYTES) {
		CDN_LOG(CDN_LOG_ERR, "tls", "%s %s: %s", what, path,
		    len == 0 ? "empty file" : "larger than 1 MiB");
		goto out;
	}
	*out = buf;
	*lenp = len;
	buf = NULL;
	rc = CDN_OK;
out:
	free(buf);
	fclose(f);
	return rc;
}

/*
 * Check an OCSP response against the certificate of <ctx>: a successful
 * response, about this certificate (when its issuer is in the chain file),
 * saying "good", and current.  The responder's signature is the client's
 * to check.
 */
static int
ocsp_check(SSL_CTX *ctx, const char *path, const unsigned char *der, size_t len)
{
	const unsigned char *p = der;
	OCSP_RESPONSE *resp;
	OCSP_BASICRESP *bs = NULL;
	OCSP_CERTID *id = NULL;
	STACK_OF(X509) *chain = NULL;
	X509 *leaf = SSL_CTX_get0_certificate(ctx), *issuer = NULL;
	ASN1_GENERALIZEDTIME *rev, *thisupd, *nextupd;
	const char *why = NULL;
	int status, reason, rc = CDN_EINVAL;

	resp = d2i_OCSP_RESPONSE(NULL, &p, (long)len);
	if (resp == NULL || p != der + len) {
		why = "not a DER-encoded OCSP response";
		goto out;
	}
	status = OCSP_response_status(resp);
	if (status != OCSP_RESPONSE_STATUS_SUCCESSFUL) {
		CDN_LOG(CDN_LOG_ERR, "tls",
		    "tls_ocsp_file %s: response status %s", path,
		    OCSP_response_status_str(status));
		goto out;
	}
	bs = OCSP_response_get1_basic(resp);
	if (bs == NULL) {
		why = "not a basic OCSP response";
		goto out;
	}
	SSL_CTX_get0_chain_certs(ctx, &chain);
	for (int i = 0; i < sk_X509_num(chain); i++) {
		if (X509_check_issued(sk_X509_value(chain, i), leaf) ==
		    X509_V_OK) {
			issuer = sk_X509_value(chain, i);
			break;
		}
	}
	if (issuer == NULL) {
		CDN_LOG(CDN_LOG_WARN, "tls",
		    "tls_ocsp_file %s: the issuer is not in the certificate "
		    "file, so the response cannot be matched to the "
		    "certificate",
		    path);
		rc = CDN_OK;
		goto out;
	}
	id = OCSP_cert_to_id(NULL, leaf, issuer);
	if (id == NULL ||
	    OCSP_resp_find_status(
	        bs, id, &status, &reason, &rev, &thisupd, &nextupd) != 1) {
		why = "not about this certificate";
		goto out;
	}
	if (status != V_OCSP_CERTSTATUS_GOOD) {
		CDN_LOG(CDN_LOG_ERR, "tls",
		    "tls_ocsp_file %s: the response says the certificate is %s",
		    path, OCSP_cert_status_str(status));
		goto out;
	}
	if (OCSP_check_validity(thisupd, nextupd, 300, -1) != 1) {
		why = "out of date (past its nextUpdate) or not yet valid";
		goto out;
	}
	rc = CDN_OK;
out:
	if (why != NULL)
		CDN_LOG(CDN_LOG_ERR, "tls", "tls_ocsp_file %s: %s", path, why);
	OCSP_CERTID_free(id);
	OCSP_BASICRESP_free(bs);
	OCSP_RESPONSE_free(resp);
	ERR_clear_error();
	return rc;
}

/* Warn about a certificate that will not satisfy clients. */
static void
cert_check(
    SSL_CTX *ctx, const char *what, const char *path, const char *sni_name)
{
	X509 *leaf = SSL_CTX_get0_certificate(ctx);
	BIGNUM *bn;
	char *serial = NULL, host[256];

	if (X509_cmp_current_time(X509_get0_notAfter(leaf)) < 0)
		CDN_LOG(CDN_LOG_WARN, "tls",
		    "%s %s: the certificate has expired", what, path);
	else if (X509_cmp_current_time(X509_get0_notBefore(leaf)) > 0)
		CDN_LOG(CDN_LOG_WARN, "tls",
		    "%s %s: the certificate is not valid yet", what, path);
	if (sni_name != NULL) {
		/* For *.example.com, any one label must be covered. */
		snprintf(host, sizeof(host), "%s%s",
		    sni_name[0] == '*' ? "sni-check" : "",
		    sni_name + (sni_name[0] == '*'));
		if (X509_check_host(leaf, host, 0, 0, NULL) != 1)
			CDN_LOG(CDN_LOG_WARN, "tls",
			    "%s %s: the certificate does not cover %s", what,
			    path, sni_name);
	}
	bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(leaf), NULL);
	if (bn != NULL)
		serial = BN_bn2hex(bn);
	CDN_LOG(CDN_LOG_INFO, "tls", "%s%s%s: %s, serial %s", what,
	    sni_name != NULL ? " " : "", sni_name != NULL ? sni_name : "", path,
	    serial != NULL ? serial : "?");
	OPENSSL_free(serial);
	BN_free(bn);
	ERR_clear_error();
}

/*
 * One SSL_CTX serving <cert_path> with <key_path> (NULL: the key is in the
 * certificate file) and the OCSP response in <ocsp_path> (NULL: none).
 * <what> names the directive in errors.  Returns NULL after logging.
 */
static SSL_CTX *
ctx_new(struct edge_tls *t, const char *what, const char *sni_name,
    const char *cert_path, const char *key_path, const char *ocsp_path)
{
	const struct conf *c = t->conf;
	struct ctx_data *d;
	SSL_CTX *ctx;
	char err[256];
	/* SSL_CTX_set1_groups_list casts its argument to char *. */
	char groups[] = GROUPS;
	long timeout_s;

	if (key_path == NULL || key_path[0] == '\0')
		key_path = cert_path;
	ctx = SSL_CTX_new(TLS_server_method());
	if (ctx == NULL) {
		CDN_LOG(CDN_LOG_ERR, "tls", "SSL_CTX_new: %s",
		    ssl_error(err, sizeof(err)));
		return NULL;
	}
	d = cdn_xcalloc(1, sizeof(*d));
	d->magic = CTX_DATA_MAGIC;
	d->t = t;
	if (SSL_CTX_set_ex_data(ctx, ctx_data_idx, d) != 1) {
		ctx_data_free(NULL, d, NULL, 0, 0, NULL);
		CDN_LOG(CDN_LOG_ERR, "tls", "SSL_CTX_set_ex_data: %s",
		    ssl_error(err, sizeof(err)));
		SSL_CTX_free(ctx);
		return NULL;
	}
	if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
	    SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) != 1 ||
	    SSL_CTX_set_cipher_list(ctx, CIPHERS_TLS12) != 1 ||
	    SSL_CTX_set_ciphersuites(ctx, CIPHERS_TLS13) != 1 ||
	    SSL_CTX_set1_groups_list(ctx, groups) != 1 ||
	    SSL_CTX_set_session_id_context(ctx,
	        (const unsigned char *)SESSION_ID_CONTEXT,
	        sizeof(SESSION_ID_CONTEXT) - 1) != 1) {
		CDN_LOG(CDN_LOG_ERR, "tls", "setting up TLS: %s",
		    ssl_error(err, sizeof(err)));
		goto fail;
	}
	/* OpenSSL 3 makes a client's end of file without close_notify a
	 * fatal error and answers it with a decode_error alert: a client
	 * that half-closes after its request got the alert, not the answer.
	 * As over plain HTTP the FIN ends the requests (http_server.c allows
	 * dirty shutdowns; framing tells a whole request). */
	SSL_CTX_set_options(ctx,
	    SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_PRIORITIZE_CHACHA |
	        SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
	        SSL_OP_IGNORE_UNEXPECTED_EOF);
	/* An idle keep-alive connection keeps no 34 KiB record buffers. */
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	SSL_CTX_set_alpn_select_cb(ctx, on_alpn, t);
	SSL_CTX_set_default_passwd_cb(ctx, on_no_password);

	/* Tickets: our key ring; without it OpenSSL's stateful tickets. */
	if (c->tls_ticket_rotate > 0) {
		SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, on_ticket_key);
		timeout_s = (long)(2 * c->tls_ticket_rotate / 1000);
	} else {
		SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
		timeout_s = 3600;
	}
	SSL_CTX_set_timeout(ctx, timeout_s);
	if (c->tls_session_cache == 0) {
		SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	} else {
		SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
		SSL_CTX_sess_set_cache_size(ctx, (long)c->tls_session_cache);
	}

	if (SSL_CTX_use_certificate_chain_file(ctx, cert_path) != 1) {
		CDN_LOG(CDN_LOG_ERR, "tls",
		    "%s%s%s %s: cannot load the certificate chain: %s", what,
		    sni_name != NULL ? " " : "",
		    sni_name != NULL ? sni_name : "", cert_path,
		    ssl_error(err, sizeof(err)));
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, key_path, SSL_FILETYPE_PEM) != 1) {
		CDN_LOG(CDN_LOG_ERR, "tls",
		    "%s%s%s %s: cannot load the private key: %s", what,
		    sni_name != NULL ? " " : "",
		    sni_name != NULL ? sni_name : "", key_path,
		    ssl_error(err, sizeof(err)));
		goto fail;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		CDN_LOG(CDN_LOG_ERR, "tls",
		    "%s%s%s: the key %s does not match the certificate %s: %s",
		    what, sni_name != NULL ? " " : "",
		    sni_name != NULL ? sni_name : "", key_path, cert_path,
		    ssl_error(err, sizeof(err)));
		goto fail;
	}
	cert_check(ctx, what, cert_path, sni_name);
	if (ocsp_path != NULL && ocsp_path[0] != '\0') {
		if (read_file("tls_ocsp_file", ocsp_path, &d->ocsp,
		        &d->ocsp_len) != CDN_OK ||
		    ocsp_check(ctx, ocsp_path, d->ocsp, d->ocsp_len) != CDN_OK)
			goto fail;
		SSL_CTX_set_tlsext_status_cb(ctx, on_ocsp_status);
		SSL_CTX_set_tlsext_status_arg(ctx, d);
	}
	return ctx;

fail:
	SSL_CTX_free(ctx); /* frees d too */
	return NULL;
}

/*
 * A whole generation: the default SSL_CTX, owning the SNI ones.  Every
 * broken file is logged before NULL is returned.
 */
static SSL_CTX *
generation_new(struct edge_tls *t)
{
	const struct conf *c = t->conf;
	const struct conf_strlist *l = &c->tls_sni_cert;
	struct conf_sni_cert sc;
	struct ctx_data *d;
	SSL_CTX *def, *ctx;
	const char *why;
	char *buf;
	unsigned nbad = 0;

	def = ctx_new(
	    t, "tls_cert", NULL, c->tls_cert, c->tls_key, c->tls_ocsp_file);
	if (def == NULL)
		nbad++;
	d = def != NULL ? ctx_data(def) : NULL;
	if (d != NULL && l->n > 0)
		d->sni = cdn_xcalloc(l->n, sizeof(*d->sni));
	for (unsigned i = 0; i < l->n; i++) {
		buf = cdn_xstrdup(l->v[i]);
		if (conf_parse_sni_cert(
		        l->v[i], buf, strlen(buf) + 1, &sc, &why) != CDN_OK) {
			/* conf checked the syntax: only a hand-made conf */
			CDN_LOG(CDN_LOG_ERR, "tls", "tls_sni_cert \"%s\": %s",
			    l->v[i], why);
			free(buf);
			nbad++;
			continue;
		}
		ctx = ctx_new(
		    t, "tls_sni_cert", sc.name, sc.cert, sc.key, sc.ocsp);
		if (ctx == NULL) {
			nbad++;
		} else if (d == NULL) {
			SSL_CTX_free(ctx);
		} else {
			d->sni[d->nsni].name = cdn_xstrdup(sc.name);
			d->sni[d->nsni].ctx = ctx;
			d->nsni++;
		}
		free(buf);
	}
	if (nbad > 0 || d == NULL) {
		SSL_CTX_free(def);
		return NULL;
	}
	if (d->nsni > 1)
		qsort(d->sni, d->nsni, sizeof(*d->sni), sni_cmp);
	SSL_CTX_set_tlsext_servername_callback(def, on_servername);
	SSL_CTX_set_tlsext_servername_arg(def, d);
	return def;
}

/* ---- API ---- */

int
edge_tls_new(struct conf *c, unsigned nworkers, struct edge_tls **out)
{
	struct edge_tls *t;
	char err[256];

	MAGIC_CHECK(c, CONF_MAGIC);
	CDN_ASSERT(out != NULL);
	if (c->listen_tls.n == 0) {
		*out = NULL;
		return CDN_OK;
	}
	pthread_once(&ctx_data_once, ctx_data_init);
	t = cdn_xcalloc(1, sizeof(*t));
	t->magic = EDGE_TLS_MAGIC;
	t->conf = conf_ref(c);
	alpn_wire(t, c->tls_alpn);
	if (pthread_rwlock_init(&t->ring_lock, NULL) != 0)
		CDN_ASSERT(!"pthread_rwlock_init failed"); /* no attributes */
	t->aes = EVP_CIPHER_fetch(NULL, "AES-256-CBC", NULL);
	if (t->aes == NULL || ticket_key_new(&t->keys[0]) != CDN_OK) {
		CDN_LOG(CDN_LOG_ERR, "tls", "session ticket keys: %s",
		    ssl_error(err, sizeof(err)));
		goto fail;
	}
	t->nkeys = 1;
	t->ctx = generation_new(t);
	if (t->ctx == NULL)
		goto fail;
	t->nslots = nworkers;
	t->slots = cdn_xcalloc(nworkers > 0 ? nworkers : 1, sizeof(*t->slots));
	for (unsigned i = 0; i < nworkers; i++) {
		CDN_ASSERT(SSL_CTX_up_ref(t->ctx) == 1);
		t->slots[i].cur = t->ctx;
		atomic_init(&t->slots[i].next, NULL);
	}
	*out = t;
	return CDN_OK;

fail:
	edge_tls_free(&t);
	return CDN_EINVAL;
}

void
edge_tls_start(struct edge_tls *t, struct event_base *main_base)
{
	struct timeval tv;
	uint64_t ms;

	MAGIC_CHECK(t, EDGE_TLS_MAGIC);
	ms = t->conf->tls_ticket_rotate;
	if (ms == 0 || t->rotate_ev != NULL)
		return;
	t->rotate_ev = event_new(main_base, -1, EV_PERSIST, on_rotate, t);
	CDN_ASSERT(t->rotate_ev != NULL);
	tv.tv_sec = (time_t)(ms / 1000);
	tv.tv_usec = (suseconds_t)((ms % 1000) * 1000);
	event_add(t->rotate_ev, &tv);
}

int
edge_tls_reload(struct edge_tls *t, struct conf *c)
{
	struct conf *prev = t->conf;
	SSL_CTX *ctx, *old;

	MAGIC_CHECK(t, EDGE_TLS_MAGIC);
	t->conf = c;
	ctx = generation_new(t);
	t->conf = prev;
	if (ctx == NULL) {
		CDN_LOG(CDN_LOG_ERR, "tls",
		    "reload refused: the certificates above cannot be used; "
		    "still serving the previous ones");
		return CDN_EINVAL;
	}
	for (unsigned i = 0; i < t->nslots; i++) {
		CDN_ASSERT(SSL_CTX_up_ref(ctx) == 1);
		old = atomic_exchange_explicit(
		    &t->slots[i].next, ctx, memory_order_acq_rel);
		/* Never taken by the worker: ours to drop. */
		SSL_CTX_free(old);
	}
	SSL_CTX_free(t->ctx);
	t->ctx = ctx;
	conf_unref(&t->conf);
	t->conf = conf_ref(c);
	t->reloads++;
	CDN_LOG(CDN_LOG_INFO, "tls",
	    "certificates reloaded (generation %u): new connections use them",
	    t->reloads + 1);
	return CDN_OK;
}

SSL *
edge_tls_ssl_new(struct edge_tls *t, unsigned id)
{
	struct tls_slot *sl;
	SSL_CTX *next;
	SSL *ssl;
	char err[256];

	MAGIC_CHECK(t, EDGE_TLS_MAGIC);
	CDN_ASSERT(id < t->nslots);
	sl = &t->slots[id];
	if (atomic_load_explicit(&sl->next, memory_order_relaxed) != NULL) {
		next = atomic_exchange_explicit(
		    &sl->next, NULL, memory_order_acquire);
		if (next != NULL) {
			SSL_CTX_free(sl->cur);
			sl->cur = next;
		}
	}
	ssl = SSL_new(sl->cur);
	if (ssl == NULL)
		CDN_LOG(CDN_LOG_ERR, "tls", "SSL_new: %s",
		    ssl_error(err, sizeof(err)));
	return ssl;
}

void
edge_tls_free(struct edge_tls **tp)
{
	struct edge_tls *t = *tp;

	*tp = NULL;
	if (t == NULL)
		return;
	MAGIC_CHECK(t, EDGE_TLS_MAGIC);
	if (t->rotate_ev != NULL)
		event_free(t->rotate_ev);
	for (unsigned i = 0; t->slots != NULL && i < t->nslots; i++) {
		SSL_CTX_free(t->slots[i].cur);
		SSL_CTX_free(atomic_load(&t->slots[i].next));
	}
	free(t->slots);
	SSL_CTX_free(t->ctx);
	EVP_CIPHER_free(t->aes);
	conf_unref(&t->conf);
	OPENSSL_cleanse(t->keys, sizeof(t->keys));
	pthread_rwlock_destroy(&t->ring_lock);
	MAGIC_WIPE(t);
	free(t);
}
