// SPDX-License-Identifier: GPL-2.0
/*
 * OAuth 2.0 client credentials: a thread per tool server with its own small
 * HTTP/1.1 client (blocking in the thread's own time, never the daemon's),
 * responses read with the project's strict parser (http.h), TLS through
 * tls.h's verified client over a non-blocking socket.
 *
 * Every wait of the thread, network or backoff, polls one eventfd as well:
 * stop() and invalidate() ring it, so stop never waits out a backoff or a
 * slow endpoint.  The state both sides share is under one mutex that is
 * never held across I/O; the eventfd only says "look again".
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>
#include <arpa/inet.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "http.h"
#include "oauth_int.h"
#include "hostport.h"
#include "tls.h"

/* Response heads are small; the body bound is the token response's. */
static const struct ag_http_limits resp_limits = {
	.max_start_line = 1024,
	.max_line = 8192,
	.max_head = 16384,
	.max_fields = 64,
	.max_chunk_line = 256,
	.max_body = RESP_MAX - 1,
};

/* application/x-www-form-urlencoded: ALPHA DIGIT *-._ kept, SP as '+', the rest %XX. */
static size_t form_encode(const char *s, size_t len, char *out)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t n = 0;

	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)s[i];

		if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		    (ch >= '0' && ch <= '9') || strchr("*-._", ch)) {
			out[n++] = (char)ch;
		} else if (ch == ' ') {
			out[n++] = '+';
		} else {
			out[n++] = '%';
			out[n++] = hex[ch >> 4];
			out[n++] = hex[ch & 15];
		}
	}
	return n;
}

/* Appends to buf (cap bytes) at *len; false once it would not fit. */
static bool put(char *buf, size_t cap, size_t *len, const char *s, size_t n)
{
	if (n > cap - *len)
		return false;
	memcpy(buf + *len, s, n);
	*len += n;
	return true;
}

static bool put_str(char *buf, size_t cap, size_t *len, const char *s)
{
	return put(buf, cap, len, s, strlen(s));
}

/*
 * The request in o->req.  The Basic credentials (RFC 6749 §2.3.1: id and
 * secret form-urlencoded, then joined by ':') pass through o->cred; the
 * caller wipes both.
 */
static int build_request(struct ag_oauth *o, size_t *out_len, struct ag_err *err)
{
	size_t cred = 0, len = 0;
	char clen[32];
	bool ok;

	cred += form_encode(o->client_id, strlen(o->client_id), (char *)o->cred);
	o->cred[cred++] = ':';
	cred += form_encode((const char *)o->secret->data, o->secret->len, (char *)o->cred + cred);
	snprintf(clen, sizeof(clen), "%zu", o->form_len);
	ok = put_str(o->req, sizeof(o->req), &len, "POST ") &&
	     put_str(o->req, sizeof(o->req), &len, o->target) &&
	     put_str(o->req, sizeof(o->req), &len, " HTTP/1.1\r\nHost: ") &&
	     put_str(o->req, sizeof(o->req), &len, o->host_hdr) &&
	     put_str(o->req, sizeof(o->req), &len, "\r\nAuthorization: Basic ");
	/* base64 of cred: 4 bytes per 3, plus EVP_EncodeBlock's NUL. */
	if (ok && (cred + 2) / 3 * 4 + 1 <= sizeof(o->req) - len)
		len += (size_t)EVP_EncodeBlock((unsigned char *)o->req + len, o->cred, (int)cred);
	else
		ok = false;
	ok = ok &&
	     put_str(o->req, sizeof(o->req), &len,
		     "\r\nContent-Type: application/x-www-form-urlencoded\r\n"
		     "Accept: application/json\r\nConnection: close\r\nContent-Length: ") &&
	     put_str(o->req, sizeof(o->req), &len, clen) &&
	     put_str(o->req, sizeof(o->req), &len, "\r\n\r\n") &&
	     put(o->req, sizeof(o->req), &len, o->form, o->form_len);
	OPENSSL_cleanse(o->cred, cred);
	if (!ok)
		return ag_errf(err, ENOSPC, "OAuth token endpoint %s: request larger than %d bytes",
			       o->url, REQ_MAX);
	*out_len = len;
	return 0;
}

/*
 * Reads the final response: its status in *status, its decoded body into
 * o->body (NUL-terminated), *body_len.  Interim (1xx) responses are skipped.
 */
static int read_response(struct conn *c, struct ag_http_parser *p, int *status, size_t *body_len,
			 struct ag_err *err)
{
	struct ag_oauth *o = c->o;
	bool final = false;
	size_t used = 0;

	for (;;) {
		struct ag_http_event ev = { .type = AG_HTTP_EV_NEED_MORE };
		ssize_t n = oauth_conn_recv(c, o->io, sizeof(o->io), err);
		const char *d = o->io;

		if (n < 0)
			return (int)n;
		if (n == 0) {
			/* Without close_notify an attacker could have cut the body short. */
			if (c->tls && !c->tls_closed && p->msg.framing == AG_HTTP_BODY_CLOSE)
				return ag_errf(err, EPROTO,
					       "OAuth token endpoint %s: TLS closed without "
					       "close_notify in a body delimited by the close",
					       o->url);
			if (ag_http_parse_eof(p, &ev) || !final || ev.type != AG_HTTP_EV_END)
				return ag_errf(err, EPROTO,
					       "OAuth token endpoint %s: connection closed before "
					       "the whole response arrived",
					       o->url);
			break;
		}
		do {
			ssize_t k = ag_http_parse(p, d, (size_t)n, &ev);

			if (k < 0)
				return ag_errf(err, EPROTO, "OAuth token endpoint %s: %s", o->url,
					       p->err.msg);
			d += k;
			n -= k;
			if (ev.type == AG_HTTP_EV_HEAD) {
				if (p->msg.upgrade)
					return ag_errf(err, EPROTO,
						       "OAuth token endpoint %s: response switches "
						       "protocols",
						       o->url);
				final = p->msg.status >= 200;
				*status = p->msg.status;
			} else if (ev.type == AG_HTTP_EV_BODY && final) {
				/* The parser's max_body keeps this within the buffer. */
				memcpy(o->body + used, ev.data, ev.len);
				used += ev.len;
			}
		} while (ev.type != AG_HTTP_EV_NEED_MORE && !(final && ev.type == AG_HTTP_EV_END));
		if (final && ev.type == AG_HTTP_EV_END)
			break;
	}
	o->body[used] = '\0';
	*body_len = used;
	return 0;
}

/* s as printable ASCII into out (cap bytes), "..." marking a cut. */
static void printable(const char *s, size_t len, char *out, size_t cap)
{
	size_t n = 0;

	for (size_t i = 0; i < len && n + 1 < cap; i++)
		out[n++] = s[i] >= 0x20 && s[i] < 0x7f ? s[i] : '?';
	if (len >= cap && cap > 3)
		memcpy(out + cap - 4, "...", 3);
	out[n] = '\0';
}

/*
 * The server's text for a message, bounded by out's size; withheld when it
 * holds the client secret (a server echoing it must not put it in logs).
 */
static const char *server_text(const struct ag_oauth *o, json_t *v, char *out, size_t cap)
{
	const char *s = json_string_value(v);

	if (!s)
		return NULL;
	if (memmem(s, json_string_length(v), o->secret->data, o->secret->len))
		return "withheld: it contains the client secret";
	printable(s, json_string_length(v), out, cap);
	return out;
}

/* Wipes a string's bytes inside a parsed document before it is freed. */
static void wipe_string(json_t *v)
{
	if (json_is_string(v))
		OPENSSL_cleanse((char *)json_string_value(v), json_string_length(v));
}

static int error_response(struct ag_oauth *o, int status, json_t *root, struct ag_err *err)
{
	char e[SERVER_TEXT_MAX + 1], d[SERVER_TEXT_MAX + 1];
	const char *error = server_text(o, json_object_get(root, "error"), e, sizeof(e));
	const char *desc = server_text(o, json_object_get(root, "error_description"), d, sizeof(d));

	if (!error)
		return ag_errf(err, EIO,
			       "OAuth token endpoint %s: HTTP %d (no OAuth error in the body)",
			       o->url, status);
	return ag_errf(err, EIO, "OAuth token endpoint %s: HTTP %d: %s%s%s%s", o->url, status,
		       error, desc ? " (" : "", desc ? desc : "", desc ? ")" : "");
}

/* The token response (RFC 6749 §5.1): the token into o->fresh, *expires_in in seconds. */
static int parse_token(struct ag_oauth *o, int status, size_t body_len, size_t *tok_len,
		       uint32_t *expires_in, struct ag_err *err)
{
	json_error_t jerr;
	json_t *root = json_loadb(o->body, body_len, JSON_REJECT_DUPLICATES, &jerr);
	json_t *tok = json_object_get(root, "access_token");
	json_t *type = json_object_get(root, "token_type");
	json_t *exp = json_object_get(root, "expires_in");
	const char *t = json_string_value(tok);
	size_t len = json_string_length(tok);
	int ret = 0;

	if (status != 200) {
		ret = error_response(o, status, root, err);
	} else if (!json_is_object(root)) {
		ret = ag_errf(err, EPROTO,
			      "OAuth token endpoint %s: HTTP 200 without a JSON object", o->url);
	} else if (!t || !len || len > AG_OAUTH_TOKEN_MAX) {
		ret = ag_errf(err, EPROTO,
			      "OAuth token endpoint %s: access_token missing, not a string, empty "
			      "or longer than %d bytes",
			      o->url, AG_OAUTH_TOKEN_MAX);
	} else if (!json_is_string(type) || strcasecmp(json_string_value(type), "Bearer")) {
		ret = ag_errf(err, EPROTO,
			      "OAuth token endpoint %s: token_type is not \"Bearer\" (only bearer "
			      "tokens are supported)",
			      o->url);
	} else if (exp && (!json_is_integer(exp) || json_integer_value(exp) <= 0 ||
			   json_integer_value(exp) > EXPIRES_IN_MAX)) {
		ret = ag_errf(err, EPROTO,
			      "OAuth token endpoint %s: expires_in is not an integer in 1..%d",
			      o->url, EXPIRES_IN_MAX);
	} else {
		/* It goes into an Authorization field: visible ASCII only (RFC 6749 VSCHAR, no SP).
		 */
		for (size_t i = 0; i < len && !ret; i++)
			if (t[i] < 0x21 || t[i] > 0x7e)
				ret = ag_errf(err, EPROTO,
					      "OAuth token endpoint %s: access_token has a byte "
					      "outside visible ASCII",
					      o->url);
	}
	if (!ret) {
		memcpy(o->fresh, t, len);
		o->fresh[len] = '\0';
		*tok_len = len;
		*expires_in = exp ? (uint32_t)json_integer_value(exp) : AG_OAUTH_DEFAULT_TTL;
		if (!exp && !o->noted_no_expiry) {
			char q[URL_MAX + 8];

			o->noted_no_expiry = true;
			ag_log(AG_LOG_WARN, "oauth_no_expires_in", "url=%s assumed_s=%d",
			       ag_logq(q, sizeof(q), o->url), AG_OAUTH_DEFAULT_TTL);
		}
	}
	wipe_string(tok);
	json_decref(root);
	return ret;
}

/* One token request; the token lands in o->fresh. */
static int fetch(struct ag_oauth *o, size_t *tok_len, uint32_t *expires_in, struct ag_err *err)
{
	struct conn c = { .o = o, .fd = -1 };
	struct ag_http_parser p;
	size_t req_len = 0, body_len = 0;
	int status = 0, ret;

	c.deadline = ag_now_ns() + (uint64_t)o->timeout_ms * NS_PER_MS;
	ret = ag_http_parser_init(&p, false, &resp_limits, err);
	if (ret)
		return ret;
	ret = oauth_conn_open(&c, err);
	if (!ret && o->https)
		ret = oauth_conn_tls(&c, err);
	if (!ret)
		ret = build_request(o, &req_len, err);
	if (!ret)
		ret = oauth_conn_send(&c, o->req, req_len, err);
	/* All of it: a request that did not fit left a part behind. */
	OPENSSL_cleanse(o->req, sizeof(o->req));
	if (!ret)
		ret = read_response(&c, &p, &status, &body_len, err);
	oauth_conn_close(&c);
	ag_http_parser_release(&p);
	if (!ret)
		ret = parse_token(o, status, body_len, tok_len, expires_in, err);
	/* The response passed through both; under TLS raw is ciphertext, but cheap to wipe. */
	OPENSSL_cleanse(o->body, sizeof(o->body));
	OPENSSL_cleanse(o->io, sizeof(o->io));
	OPENSSL_cleanse(o->raw, sizeof(o->raw));
	return ret;
}

int oauth_get(struct ag_oauth *o, int *status, size_t *body_len, struct ag_err *err)
{
	struct conn c = { .o = o, .fd = -1 };
	struct ag_http_parser p;
	size_t len = 0;
	int ret;

	c.deadline = ag_now_ns() + (uint64_t)o->timeout_ms * NS_PER_MS;
	if ((ret = ag_http_parser_init(&p, false, &resp_limits, err)))
		return ret;
	ret = oauth_conn_open(&c, err);
	if (!ret && o->https)
		ret = oauth_conn_tls(&c, err);
	if (!ret && !(put_str(o->req, sizeof(o->req), &len, "GET ") &&
		      put_str(o->req, sizeof(o->req), &len, o->target) &&
		      put_str(o->req, sizeof(o->req), &len, " HTTP/1.1\r\nHost: ") &&
		      put_str(o->req, sizeof(o->req), &len, o->host_hdr) &&
		      put_str(o->req, sizeof(o->req), &len,
			      "\r\nAccept: application/json\r\nConnection: close\r\n\r\n")))
		ret = ag_errf(err, ENOSPC, "%s: request too large", o->url);
	if (!ret)
		ret = oauth_conn_send(&c, o->req, len, err);
	if (!ret)
		ret = read_response(&c, &p, status, body_len, err);
	oauth_conn_close(&c);
	ag_http_parser_release(&p);
	return ret;
}

/* Equal jitter: a random delay in [ms/2, ms], so restarted daemons spread out. */
static uint64_t jitter_ns(struct ag_oauth *o, unsigned int ms)
{
	/* xorshift64: statistical spread is all this needs. */
	o->rng ^= o->rng << 13;
	o->rng ^= o->rng >> 7;
	o->rng ^= o->rng << 17;
	return ((uint64_t)ms / 2 + o->rng % (ms / 2 + 1)) * NS_PER_MS;
}

static unsigned int next_backoff(unsigned int ms)
{
	if (!ms)
		return BACKOFF_MIN_MS;
	return ms >= BACKOFF_MAX_MS / 2 ? BACKOFF_MAX_MS : ms * 2;
}

/*
 * When to refresh a token usable for `usable` ns: at 80% of it, and at
 * least REFRESH_MARGIN_NS before its end when that leaves half of it.
 */
static uint64_t refresh_after(uint64_t usable)
{
	uint64_t at80 = usable / 5 * 4;
	uint64_t margin = usable > REFRESH_MARGIN_NS ? usable - REFRESH_MARGIN_NS : 0;
	uint64_t half = usable / 2;
	uint64_t latest = margin > half ? margin : half;

	return at80 < latest ? at80 : latest;
}

static void install(struct ag_oauth *o, uint64_t t0, size_t len, uint32_t expires_in)
{
	uint64_t life = (uint64_t)expires_in * NS_PER_S;
	/* See oauth.h: expires_in counts whole seconds from a rounded-down now. */
	uint64_t slack = life / 2 < NS_PER_S ? life / 2 : NS_PER_S;
	uint64_t usable = life - slack;

	OPENSSL_cleanse(o->token, o->token_len);
	memcpy(o->token, o->fresh, len + 1);
	o->token_len = len;
	o->generation++;
	o->usable_until = t0 + usable;
	o->next_fetch = t0 + refresh_after(usable);
	o->last_failed = false;
	o->last_error[0] = '\0';
}

static void *oauth_thread(void *arg)
{
	struct ag_oauth *o = arg;
	unsigned int backoff_ms = 0;
	char q1[URL_MAX + 8], q2[2 * sizeof(o->last_error)];

	for (;;) {
		struct ag_err err = { 0 };
		uint64_t due, t0, delay = 0;
		uint32_t expires_in = 0;
		size_t len = 0;
		int ret;

		pthread_mutex_lock(&o->lock);
		due = o->next_fetch;
		ret = o->stopping;
		pthread_mutex_unlock(&o->lock);
		if (ret)
			break;
		if (ag_now_ns() < due) {
			oauth_wait_for(o, -1, 0, due);
			continue;
		}
		t0 = ag_now_ns();
		ret = fetch(o, &len, &expires_in, &err);
		if (ret == -ECANCELED)
			break;
		pthread_mutex_lock(&o->lock);
		o->requests++;
		if (!ret) {
			install(o, t0, len, expires_in);
			backoff_ms = 0;
		} else {
			o->failures++;
			o->last_failed = true;
			/* Status is JSON: whatever the parser quoted stays ASCII. */
			printable(err.msg, strlen(err.msg), o->last_error, sizeof(o->last_error));
			backoff_ms = next_backoff(backoff_ms);
			delay = jitter_ns(o, backoff_ms);
			o->next_fetch = ag_now_ns() + delay;
		}
		pthread_mutex_unlock(&o->lock);
		OPENSSL_cleanse(o->fresh, len);
		if (ret)
			ag_log(AG_LOG_WARN, "oauth_token_failed", "url=%s error=%s retry_ms=%llu",
			       ag_logq(q1, sizeof(q1), o->url), ag_logq(q2, sizeof(q2), err.msg),
			       (unsigned long long)(delay / NS_PER_MS));
		else
			ag_log(AG_LOG_DEBUG, "oauth_token", "url=%s expires_in_s=%u",
			       ag_logq(q1, sizeof(q1), o->url), expires_in);
		oauth_ring(o->notify_fd);
	}
	return NULL;
}

/* ---- configuration ---- */

static bool bounded(const char *s, size_t max)
{
	return strnlen(s, max + 1) <= max;
}

/* The token endpoint by the grammar of lib/hostport.h, the one config check uses. */
static int parse_url(struct ag_oauth *o, const char *url, char *port, size_t port_cap,
		     struct ag_err *err)
{
	struct ag_url u;
	char why[300];

	if (!bounded(url, URL_MAX - 1))
		return ag_errf(err, EINVAL, "OAuth token_url: longer than %d bytes", URL_MAX - 1);
	snprintf(o->url, sizeof(o->url), "%s", url);
	if (ag_url_parse(url, &u, why, sizeof(why)))
		return ag_errf(err, EINVAL, "OAuth token_url %s: %s", url, why);
	/* Fail closed: the host is the TLS name to verify, so it must fit whole. */
	if (strlen(u.host) >= sizeof(o->host) || u.authority_len >= sizeof(o->host_hdr) ||
	    !ag_url_target(&u, o->target, sizeof(o->target)))
		return ag_errf(err, EINVAL, "OAuth token_url %s: overlong host or path", url);
	o->https = u.https;
	strcpy(o->host, u.host);
	/* Host: exactly the URL's authority (RFC 9110 §7.2). */
	memcpy(o->host_hdr, u.authority, u.authority_len);
	o->host_hdr[u.authority_len] = '\0';
	snprintf(port, port_cap, "%u", u.port);
	return 0;
}

static int resolve(struct ag_oauth *o, const char *port, struct ag_err *err)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_protocol = IPPROTO_TCP };
	struct addrinfo *res, *ai;
	int r = getaddrinfo(o->host, port, &hints, &res);

	if (r)
		return ag_errf(err, r == EAI_SYSTEM ? errno : EHOSTUNREACH,
			       "OAuth token_url %s: cannot resolve %s: %s", o->url, o->host,
			       gai_strerror(r));
	for (ai = res; ai && o->naddrs < MAX_ADDRS; ai = ai->ai_next) {
		if (ai->ai_addrlen > sizeof(o->addrs[0]))
			continue;
		memcpy(&o->addrs[o->naddrs], ai->ai_addr, ai->ai_addrlen);
		o->addr_lens[o->naddrs++] = ai->ai_addrlen;
	}
	freeaddrinfo(res);
	if (!o->naddrs)
		return ag_errf(err, EHOSTUNREACH, "OAuth token_url %s: no address for %s", o->url,
			       o->host);
	return 0;
}

/* grant_type=client_credentials and the optional parameters, form-encoded. */
static int build_form(struct ag_oauth *o, const struct ag_oauth_conf *conf, struct ag_err *err)
{
	const struct {
		const char *name, *value;
	} params[] = {
		{ "scope", conf->scope },
		{ "resource", conf->resource },
		{ "audience", conf->audience },
	};
	static const char grant[] = "grant_type=client_credentials";
	size_t cap = sizeof(grant), len = sizeof(grant) - 1;

	for (size_t i = 0; i < AG_ARRAY_SIZE(params); i++) {
		if (!params[i].value)
			continue;
		if (!*params[i].value || !bounded(params[i].value, PARAM_MAX))
			return ag_errf(err, EINVAL, "OAuth %s: empty or longer than %d bytes",
				       params[i].name, PARAM_MAX);
		cap += 2 + strlen(params[i].name) + 3 * strlen(params[i].value);
	}
	o->form = malloc(cap);
	if (!o->form)
		return ag_errf(err, ENOMEM, "OAuth token request: out of memory");
	memcpy(o->form, grant, len);
	for (size_t i = 0; i < AG_ARRAY_SIZE(params); i++) {
		if (!params[i].value)
			continue;
		len += (size_t)sprintf(o->form + len, "&%s=", params[i].name);
		len += form_encode(params[i].value, strlen(params[i].value), o->form + len);
	}
	o->form_len = len;
	return 0;
}

void oauth_free(struct ag_oauth *o)
{
	if (o->wake_fd >= 0)
		close(o->wake_fd);
	SSL_CTX_free(o->ctx);
	free(o->form);
	free((char *)o->client_id);
	pthread_mutex_destroy(&o->lock);
	OPENSSL_cleanse(o, sizeof(*o));
	munmap(o, sizeof(*o));
}

int oauth_endpoint_new(const char *url, const char *ca_file, uint32_t mark, unsigned int timeout_ms,
		       struct ag_oauth **out, struct ag_err *err)
{
	struct ag_oauth *o;
	char port[8];
	int ret;

	o = mmap(NULL, sizeof(*o), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (o == MAP_FAILED)
		return ag_errf(err, ENOMEM, "OAuth %s: out of memory", url);
	/* Tokens and the Basic credentials pass through it: keep it out of core dumps. */
	if (madvise(o, sizeof(*o), MADV_DONTDUMP)) {
		ret = -errno;
		munmap(o, sizeof(*o));
		return ag_errf(err, ret, "OAuth %s: madvise: %s", url, strerror(-ret));
	}
	o->wake_fd = -1;
	pthread_mutex_init(&o->lock, NULL);
	o->mark = mark;
	o->timeout_ms = timeout_ms ? timeout_ms : AG_OAUTH_TIMEOUT_MS;
	o->notify_fd = -1;
	o->rng = (ag_wall_ns() ^ (uintptr_t)o) | 1;
	ret = parse_url(o, url, port, sizeof(port), err);
	if (!ret)
		ret = resolve(o, port, err);
	if (ret)
		goto fail;
	if (o->https) {
		o->ctx = ag_tls_client_ctx(ca_file, err);
		if (!o->ctx) {
			char why[sizeof(err->msg)];

			snprintf(why, sizeof(why), "%s", err->msg);
			ret = ag_errf(err, err->code, "OAuth token_url %s: %s", o->url, why);
			goto fail;
		}
	}
	o->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (o->wake_fd < 0) {
		ret = ag_errf(err, errno, "OAuth %s: eventfd: %s", o->url, strerror(errno));
		goto fail;
	}
	*out = o;
	return 0;
fail:
	oauth_free(o);
	return ret;
}

int ag_oauth_start(const struct ag_oauth_conf *conf, int notify_fd, struct ag_oauth **out,
		   struct ag_err *err)
{
	struct ag_oauth *o;
	sigset_t all, old;
	int ret;

	if (!conf->token_url || !conf->client_id || !conf->client_secret)
		return ag_errf(err, EINVAL,
			       "OAuth: token_url, client_id and client_secret are required");
	if (!*conf->client_id || !bounded(conf->client_id, PARAM_MAX))
		return ag_errf(err, EINVAL, "OAuth client_id: empty or longer than %d bytes",
			       PARAM_MAX);
	if (conf->client_secret->len > CLIENT_SECRET_MAX)
		return ag_errf(err, EINVAL, "OAuth client_secret: longer than %d bytes",
			       CLIENT_SECRET_MAX);
	if ((ret = oauth_endpoint_new(conf->token_url, conf->ca_file, conf->mark, conf->timeout_ms,
				      &o, err)))
		return ret;
	o->secret = conf->client_secret;
	o->notify_fd = notify_fd;
	o->client_id = strdup(conf->client_id);
	if (!o->client_id) {
		ret = ag_errf(err, ENOMEM, "OAuth %s: out of memory", conf->token_url);
		goto fail;
	}
	if ((ret = build_form(o, conf, err)))
		goto fail;
	/* The thread takes no signals: the daemon handles them in its loop. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	ret = -pthread_create(&o->thread, NULL, oauth_thread, o);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (ret) {
		ag_errf(err, ret, "OAuth %s: cannot start the token thread: %s", o->url,
			strerror(-ret));
		goto fail;
	}
	pthread_setname_np(o->thread, "ag-oauth");
	o->started = true;
	*out = o;
	return 0;
fail:
	oauth_free(o);
	return ret;
}

/* ---- the daemon's side ---- */

int ag_oauth_token(struct ag_oauth *o, char *buf, size_t cap, size_t *len, uint64_t *generation,
		   struct ag_err *err)
{
	int ret = 0;

	pthread_mutex_lock(&o->lock);
	if (o->token_len && ag_now_ns() >= o->usable_until) {
		OPENSSL_cleanse(o->token, o->token_len);
		o->token_len = 0;
	}
	if (o->token_len) {
		if (o->token_len >= cap) {
			ret = ag_errf(err, ENOSPC, "OAuth %s: token of %zu bytes, room for %zu",
				      o->url, o->token_len, cap ? cap - 1 : 0);
		} else {
			memcpy(buf, o->token, o->token_len + 1);
			*len = o->token_len;
			*generation = o->generation;
		}
	} else if (o->last_failed) {
		ret = ag_errf(err, EIO, "%s", o->last_error);
	} else {
		ret = ag_errf(err, EAGAIN, "OAuth %s: token request under way", o->url);
	}
	pthread_mutex_unlock(&o->lock);
	return ret;
}

void ag_oauth_invalidate(struct ag_oauth *o, uint64_t generation)
{
	bool wake = false;

	pthread_mutex_lock(&o->lock);
	if (generation == o->generation && generation > o->invalidated) {
		o->invalidated = generation;
		OPENSSL_cleanse(o->token, o->token_len);
		o->token_len = 0;
		o->next_fetch = 0;
		wake = true;
	}
	pthread_mutex_unlock(&o->lock);
	if (wake)
		oauth_ring(o->wake_fd);
}

json_t *ag_oauth_status(struct ag_oauth *o)
{
	json_t *j;
	uint64_t now = ag_now_ns();

	pthread_mutex_lock(&o->lock);
	j = json_pack("{s:I,s:I,s:o,s:o}", "requests", (json_int_t)o->requests, "failures",
		      (json_int_t)o->failures, "expires_in_s",
		      o->token_len && now < o->usable_until
			  ? json_integer((json_int_t)((o->usable_until - now) / NS_PER_S))
			  : json_null(),
		      "last_error", o->last_failed ? json_string(o->last_error) : json_null());
	pthread_mutex_unlock(&o->lock);
	return j;
}

void ag_oauth_stop(struct ag_oauth *o)
{
	if (!o)
		return;
	pthread_mutex_lock(&o->lock);
	o->stopping = true;
	pthread_mutex_unlock(&o->lock);
	oauth_ring(o->wake_fd);
	if (o->started)
		pthread_join(o->thread, NULL);
	oauth_free(o);
}
