// SPDX-License-Identifier: GPL-2.0
/*
 * OAuth 2.0 client credentials (lib/oauth.h) against a real authorization
 * server: oidc-provider (selftests/e2e/oidc_server.mjs, pinned npm
 * package), which counts the token requests it gets, so caching, refresh,
 * invalidation and backoff are checked at the server, not assumed.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <netinet/in.h>

#include <jansson.h>

#include "idplib.h"
#include "jwt.h"
#include "oauth.h"
#include "secret.h"
#include "test.h"
#include "testlib.h"

#define CLIENT_ID IDP_CLIENT_ID
#define CLIENT_SECRET IDP_CLIENT_SECRET
#define WRONG_SECRET "wrong-secret-4f9a1c"
#define RESOURCE "https://tools.example/mcp"

/* A secret file as an operator would write it, loaded with its checks. */
static struct ag_secret *secret_make(const char *value)
{
	char path[] = "/tmp/agt-oauth-secret.XXXXXX";
	struct ag_secret *s = NULL;
	struct ag_err err = { 0 };
	int fd = mkstemp(path);

	if (fd < 0)
		return NULL;
	if (fchmod(fd, 0600) == 0 && write(fd, value, strlen(value)) == (ssize_t)strlen(value) &&
	    ag_secret_load(path, 0, &s, &err))
		fprintf(stderr, "secret: %s\n", err.msg);
	close(fd);
	unlink(path);
	return s;
}

static int oauth_start(struct idp *s, const struct ag_secret *secret, int notify_fd,
		       struct ag_oauth **o, struct ag_err *err)
{
	struct ag_oauth_conf conf = {
		.token_url = s->url,
		.client_id = CLIENT_ID,
		.client_secret = secret,
		.scope = "tools:read",
		.resource = RESOURCE,
		/* oidc-provider ignores it; sent to show extra parameters do no harm. */
		.audience = "tools example & co",
	};

	return ag_oauth_start(&conf, notify_fd, o, err);
}

struct tok {
	char buf[AG_OAUTH_TOKEN_MAX + 1];
	size_t len;
	uint64_t gen;
	struct ag_err err;
};

/* ag_oauth_token until it stops answering -EAGAIN, at most ms. */
static int wait_token(struct ag_oauth *o, struct tok *t, int ms)
{
	int ret;

	for (int i = 0;; i++) {
		ret = ag_oauth_token(o, t->buf, sizeof(t->buf), &t->len, &t->gen, &t->err);
		if (ret != -EAGAIN || i >= ms / 10)
			return ret;
		usleep(10000);
	}
}

static json_t *jwt_payload(const char *token)
{
	const char *a = strchr(token, '.'), *b = a ? strchr(a + 1, '.') : NULL;
	unsigned char raw[8192];
	char part[8192];
	struct ag_err err;
	size_t len;

	if (!b || (size_t)(b - a - 1) >= sizeof(part))
		return NULL;
	memcpy(part, a + 1, (size_t)(b - a - 1));
	part[b - a - 1] = '\0';
	if (ag_b64url_decode(part, raw, sizeof(raw), &len, &err))
		return NULL;
	return json_loadb((const char *)raw, len, 0, NULL);
}

static long long status_int(struct ag_oauth *o, const char *key)
{
	json_t *j = ag_oauth_status(o);
	json_t *v = json_object_get(j, key);
	long long n = json_is_integer(v) ? json_integer_value(v) : -1;

	json_decref(j);
	return n;
}

static double wall_s(void)
{
	return (double)ag_wall_ns() / 1e9;
}

static uint64_t eventfd_take(int fd, int ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	uint64_t v = 0;

	if (poll(&p, 1, ms) == 1 && read(fd, &v, sizeof(v)) != sizeof(v))
		v = 0;
	return v;
}

static void case_token(struct idp *s, const struct ag_secret *secret)
{
	struct ag_oauth *o = NULL;
	struct tok t;
	json_t *p = NULL;
	int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK), c0 = idp_token_requests(s);

	if (!ASSERT_OK(oauth_start(s, secret, efd, &o, &t.err), t.err.msg))
		goto out;
	/* notify_fd rings when the first fetch ends; the token is there by then. */
	ASSERT_GE(eventfd_take(efd, 10000), 1, "notify_fd written");
	if (!ASSERT_OK(ag_oauth_token(o, t.buf, sizeof(t.buf), &t.len, &t.gen, &t.err), t.err.msg))
		goto out;
	ASSERT_EQ(t.len, strlen(t.buf), "length");
	ASSERT_EQ(t.gen, 1, "first generation");
	ASSERT_TRUE(strncmp(t.buf, "Bearer", 6), "the token alone");
	p = jwt_payload(t.buf);
	if (!ASSERT_TRUE(p, "a JWT access token"))
		goto out;
	ASSERT_STREQ(json_string_value(json_object_get(p, "aud")), RESOURCE, "aud is the resource");
	ASSERT_STREQ(json_string_value(json_object_get(p, "client_id")), CLIENT_ID, "client_id");
	ASSERT_STREQ(json_string_value(json_object_get(p, "scope")), "tools:read", "scope");
	ASSERT_EQ(idp_token_requests(s) - c0, 1, "one token request");
	ASSERT_EQ(status_int(o, "requests"), 1, "status requests");
	ASSERT_EQ(status_int(o, "failures"), 0, "status failures");
	/* 300 s minus the second kept back for expires_in's rounding. */
	ASSERT_GE(status_int(o, "expires_in_s"), 290, "status expires_in_s");
	ASSERT_LE(status_int(o, "expires_in_s"), 299, "status expires_in_s");
out:
	json_decref(p);
	ag_oauth_stop(o);
	close(efd);
}

static void case_cached(struct idp *s, const struct ag_secret *secret)
{
	struct ag_oauth *o = NULL;
	struct tok t, again;
	int c0 = idp_token_requests(s), same = 0;

	if (!ASSERT_OK(oauth_start(s, secret, -1, &o, &t.err), t.err.msg))
		return;
	if (!ASSERT_OK(wait_token(o, &t, 10000), t.err.msg))
		goto out;
	for (int i = 0; i < 200; i++)
		same += !ag_oauth_token(o, again.buf, sizeof(again.buf), &again.len, &again.gen,
					&again.err) &&
			!strcmp(again.buf, t.buf) && again.gen == t.gen;
	ASSERT_EQ(same, 200, "the cached token, 200 times");
	ASSERT_EQ(idp_token_requests(s) - c0, 1, "one token request for 200 calls");
	/* Too small a buffer is refused, not truncated. */
	ASSERT_EQ(ag_oauth_token(o, again.buf, t.len, &again.len, &again.gen, &again.err), -ENOSPC,
		  "short buffer");
out:
	ag_oauth_stop(o);
}

static void case_invalidate(struct idp *s, const struct ag_secret *secret)
{
	struct ag_oauth *o = NULL;
	struct tok t, t2;
	int c0;

	if (!ASSERT_OK(oauth_start(s, secret, -1, &o, &t.err), t.err.msg))
		return;
	if (!ASSERT_OK(wait_token(o, &t, 10000), t.err.msg))
		goto out;
	c0 = idp_token_requests(s);
	ag_oauth_invalidate(o, t.gen);
	ag_oauth_invalidate(o, t.gen);
	if (!ASSERT_OK(wait_token(o, &t2, 10000), t2.err.msg))
		goto out;
	ASSERT_EQ(t2.gen, t.gen + 1, "next generation");
	ASSERT_TRUE(strcmp(t2.buf, t.buf), "a new token");
	/* The refused generation again, late: nothing more. */
	ag_oauth_invalidate(o, t.gen);
	usleep(300 * 1000);
	ASSERT_EQ(idp_token_requests(s) - c0, 1, "exactly one more token request");
	ASSERT_OK(wait_token(o, &t, 0), "still cached");
	ASSERT_EQ(t.gen, t2.gen, "same generation");
out:
	ag_oauth_stop(o);
}

static void case_refresh(struct idp *s, const struct ag_secret *secret)
{
	struct ag_oauth *o = NULL;
	struct tok t;
	char last[AG_OAUTH_TOKEN_MAX + 1] = "";
	int changes = -1, bad = 0, past_exp = 0, c0 = idp_token_requests(s);
	long long exp = 0;
	uint64_t end;

	if (!ASSERT_TRUE(idp_set(s, "/ttl?s=3"), "TTL 3 s"))
		return;
	if (!ASSERT_OK(oauth_start(s, secret, -1, &o, &t.err), t.err.msg))
		goto out;
	if (!ASSERT_OK(wait_token(o, &t, 10000), t.err.msg))
		goto out;
	end = ag_now_ns() + 7000000000ull;
	while (ag_now_ns() < end) {
		int ret = ag_oauth_token(o, t.buf, sizeof(t.buf), &t.len, &t.gen, &t.err);
		double now = wall_s();

		if (ret) {
			if (!bad++)
				fprintf(stderr, "ag_oauth_token: %d: %s\n", ret, t.err.msg);
		} else {
			if (strcmp(t.buf, last)) {
				json_t *p = jwt_payload(t.buf);

				exp = json_integer_value(json_object_get(p, "exp"));
				json_decref(p);
				snprintf(last, sizeof(last), "%s", t.buf);
				changes++;
			}
			past_exp += now >= (double)exp;
		}
		usleep(20000);
	}
	if (test__verbose())
		fprintf(stderr, "refresh: %d new tokens, %d token requests in 7 s\n", changes,
			idp_token_requests(s) - c0);
	ASSERT_EQ(bad, 0, "a token on every call after the first");
	ASSERT_EQ(past_exp, 0, "never a token past its exp");
	ASSERT_GE(changes, 1, "refreshed");
	/* Refreshes at half of 2 usable seconds, so about 7; bounded, not a storm. */
	ASSERT_LE(idp_token_requests(s) - c0, 12, "token requests in 7 s");
out:
	ag_oauth_stop(o);
	idp_set(s, "/ttl?s=300");
}

/* Waits until the status shows at least n failures, at most ms. */
static bool wait_failures(struct ag_oauth *o, int n, int ms)
{
	for (int i = 0; i < ms / 10; i++) {
		if (status_int(o, "failures") >= n)
			return true;
		usleep(10000);
	}
	return false;
}

static void case_wrong_secret(struct idp *s)
{
	struct ag_secret *wrong = secret_make(WRONG_SECRET);
	struct ag_oauth *o = NULL;
	struct tok t;
	int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK), c0 = idp_token_requests(s), n;
	uint64_t t0 = ag_now_ns();
	json_t *st;

	if (!ASSERT_TRUE(wrong, "secret") ||
	    !ASSERT_OK(oauth_start(s, wrong, efd, &o, &t.err), t.err.msg))
		goto out;
	if (!ASSERT_EQ(wait_token(o, &t, 10000), -EIO, "refused"))
		goto out;
	ASSERT_STRHAS(t.err.msg, "HTTP 401: invalid_client (client authentication failed)",
		      "the server's error");
	ASSERT_FALSE(strstr(t.err.msg, WRONG_SECRET), "no secret in the message");
	ASSERT_GE(eventfd_take(efd, 0), 1, "notify_fd written on failure too");
	st = ag_oauth_status(o);
	ASSERT_STRHAS(json_string_value(json_object_get(st, "last_error")), "invalid_client",
		      "status last_error");
	ASSERT_TRUE(json_is_null(json_object_get(st, "expires_in_s")), "no token in the status");
	json_decref(st);
	usleep((useconds_t)((3000000000ull - (ag_now_ns() - t0)) / 1000));
	n = idp_token_requests(s) - c0;
	if (test__verbose())
		fprintf(stderr, "wrong secret: %d token requests in 3 s\n", n);
	/* 0, then 125..250 ms, 250..500, 500..1000, 1000..2000 apart. */
	ASSERT_GE(n, 3, "retried");
	ASSERT_LE(n, 6, "with backoff");
out:
	ag_oauth_stop(o);
	ag_secret_free(wrong);
	close(efd);
}

static void case_stop_in_backoff(struct idp *s)
{
	struct ag_secret *wrong = secret_make(WRONG_SECRET);
	struct ag_oauth *o = NULL;
	struct ag_err err;
	uint64_t t0;
	int n;

	if (!ASSERT_TRUE(wrong, "secret") ||
	    !ASSERT_OK(oauth_start(s, wrong, -1, &o, &err), err.msg))
		goto out;
	/* After the third failure the thread sleeps 500..1000 ms. */
	if (!ASSERT_TRUE(wait_failures(o, 3, 10000), "three failures"))
		goto out;
	t0 = ag_now_ns();
	ag_oauth_stop(o);
	o = NULL;
	ASSERT_LT(ag_now_ns() - t0, 2000000000ull, "stop returns promptly");
	n = idp_token_requests(s);
	usleep(1500 * 1000);
	ASSERT_EQ(idp_token_requests(s), n, "no request after stop");
out:
	ag_oauth_stop(o);
	ag_secret_free(wrong);
}

static void case_recover(struct idp *s, const struct ag_secret *secret)
{
	struct ag_oauth *o = NULL;
	struct tok t;
	int c0 = idp_token_requests(s);

	if (!ASSERT_TRUE(idp_set(s, "/fail?n=2"), "fail twice"))
		return;
	if (!ASSERT_OK(oauth_start(s, secret, -1, &o, &t.err), t.err.msg))
		goto out;
	if (!ASSERT_EQ(wait_token(o, &t, 10000), -EIO, "first fetch fails"))
		goto out;
	ASSERT_STRHAS(t.err.msg, "HTTP 503: temporarily_unavailable (failing on purpose",
		      "the server's error");
	for (int i = 0; i < 500 && wait_token(o, &t, 0); i++)
		usleep(10000);
	ASSERT_OK(wait_token(o, &t, 0), "recovered after backoff");
	ASSERT_EQ(idp_token_requests(s) - c0, 3, "two failures, one success");
	ASSERT_EQ(status_int(o, "failures"), 2, "status failures");
	ASSERT_EQ(status_int(o, "requests"), 3, "status requests");
out:
	ag_oauth_stop(o);
}

TEST(oauth_client_credentials)
{
	struct ag_secret *secret = NULL;
	struct idp s = { .pid = -1 };
	char e2e[PATH_MAX];

	if (!idp_installed(e2e, sizeof(e2e))) {
		test__skip("node or oidc-provider not installed (scripts/e2e-deps.sh)");
		return;
	}
	secret = secret_make(CLIENT_SECRET);
	if (!ASSERT_TRUE(secret, "client secret") ||
	    !ASSERT_OK(idp_start(&s, e2e, NULL), "oidc_server"))
		goto out;
	if (test__start_subtest("token"))
		case_token(&s, secret);
	if (test__start_subtest("cached"))
		case_cached(&s, secret);
	if (test__start_subtest("invalidate_once"))
		case_invalidate(&s, secret);
	if (test__start_subtest("refresh_before_expiry"))
		case_refresh(&s, secret);
	if (test__start_subtest("wrong_secret_backoff"))
		case_wrong_secret(&s);
	if (test__start_subtest("stop_in_backoff"))
		case_stop_in_backoff(&s);
	if (test__start_subtest("recover_after_failures"))
		case_recover(&s, secret);
out:
	idp_stop(&s);
	ag_secret_free(secret);
}

/*
 * An https token endpoint: a token with the right CA file; refused without
 * it, and refused when the name in the URL is not the certificate's.
 */
TEST(oauth_https)
{
	char dir[] = "/tmp/agt-oauth-tls.XXXXXX", e2e[PATH_MAX], ca[PATH_MAX + 16], *out = NULL;
	char url[96];
	struct ag_secret *secret = secret_make(CLIENT_SECRET);
	struct idp s = { .pid = -1 };
	struct ag_oauth *o = NULL;
	struct ag_oauth_conf conf = { .client_id = CLIENT_ID,
				      .client_secret = secret,
				      .resource = RESOURCE };
	struct tok t;
	json_t *p;

	if (!idp_installed(e2e, sizeof(e2e))) {
		test__skip("node or oidc-provider not installed (scripts/e2e-deps.sh)");
		goto out;
	}
	if (!ASSERT_TRUE(secret, "secret") || !ASSERT_TRUE(mkdtemp(dir), "mkdtemp"))
		goto out;
	/* The certificate is for 127.0.0.1 only. */
	if (!ASSERT_OK(
		run_capture(&out,
			    "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 "
			    "-nodes -days 1 -subj /CN=oauth-test -addext "
			    "subjectAltName=IP:127.0.0.1 -keyout %s/key.pem -out %s/cert.pem "
			    "2>&1",
			    dir, dir),
		out ?: "openssl") ||
	    !ASSERT_OK(idp_start(&s, e2e, dir), "oidc_server over TLS"))
		goto out;
	snprintf(ca, sizeof(ca), "%s/cert.pem", dir);
	conf.token_url = s.url;
	conf.ca_file = ca;
	if (test__start_subtest("verified")) {
		if (ASSERT_OK(ag_oauth_start(&conf, -1, &o, &t.err), t.err.msg)) {
			if (ASSERT_OK(wait_token(o, &t, 10000), t.err.msg)) {
				p = jwt_payload(t.buf);
				ASSERT_STREQ(json_string_value(json_object_get(p, "aud")), RESOURCE,
					     "aud");
				json_decref(p);
			}
			ag_oauth_stop(o);
		}
	}
	if (test__start_subtest("unknown_ca")) {
		conf.ca_file = NULL; /* the system store does not know it */
		if (ASSERT_OK(ag_oauth_start(&conf, -1, &o, &t.err), t.err.msg)) {
			ASSERT_EQ(wait_token(o, &t, 10000), -EIO, "refused");
			ASSERT_STRHAS(t.err.msg, "certificate verify failed", "why");
			ag_oauth_stop(o);
		}
		conf.ca_file = ca;
	}
	if (test__start_subtest("name_mismatch")) {
		snprintf(url, sizeof(url), "https://localhost:%d/token", s.port);
		conf.token_url = url;
		if (ASSERT_OK(ag_oauth_start(&conf, -1, &o, &t.err), t.err.msg)) {
			ASSERT_EQ(wait_token(o, &t, 10000), -EIO, "refused");
			ASSERT_STRHAS(t.err.msg, "certificate verify failed", "why");
			ag_oauth_stop(o);
		}
	}
out:
	idp_stop(&s);
	free(out);
	if (dir[strlen(dir) - 1] != 'X') {
		run_capture(&out, "rm -rf %s", dir);
		free(out);
	}
	ag_secret_free(secret);
}

/* A token endpoint played by a thread: one canned answer, the request kept. */
struct canned {
	int lfd;
	uint16_t port;
	pthread_t th;
	const char *response;
	char request[8192];
};

static void *canned_serve(void *arg)
{
	struct timeval tv = { .tv_sec = 5 };
	struct canned *c = arg;
	size_t len = 0, want = SIZE_MAX;
	int fd = accept_timeout(c->lfd, 10000);
	ssize_t n;

	if (fd < 0)
		return NULL;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	while (len < want && len < sizeof(c->request) - 1 &&
	       (n = read(fd, c->request + len, sizeof(c->request) - 1 - len)) > 0) {
		char *end, *cl;

		len += (size_t)n;
		c->request[len] = '\0';
		end = strstr(c->request, "\r\n\r\n");
		cl = strstr(c->request, "Content-Length: ");
		if (end && cl)
			want = (size_t)(end + 4 - c->request) + strtoul(cl + 16, NULL, 10);
	}
	if (write(fd, c->response, strlen(c->response)) < 0)
		c->request[0] = '\0';
	close(fd);
	return NULL;
}

#define BASIC_CRED "YWd0LWNsaWVudDpzM2NyJTNBdCslMkIlMkYlMjUlMjYlM0QlMjJ4JTdF"
#define FORM                                                                             \
	"grant_type=client_credentials&scope=tools%3Aread&resource=https%3A%2F%2Ftools." \
	"example%2Fmcp&audience=tools+example+%26+co"

/*
 * The request on the wire, and the response forms oidc-provider never
 * sends: chunked, delimited by the close, no expires_in, lower-case
 * bearer; and what must be refused.
 */
TEST(oauth_wire)
{
	static const struct {
		const char *name, *response, *msg;
		int ret;
	} cases[] = {
		{ "chunked_no_expires_in",
		  "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
		  "10\r\n{\"access_token\":\r\n27\r\n\"opaque-token.1\",\"token_type\":\"bearer\"}"
		  "\r\n"
		  "0\r\n\r\n",
		  NULL, 0 },
		{ "close_delimited",
		  "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n"
		  "{\"access_token\":\"t2\",\"token_type\":\"Bearer\",\"expires_in\":60}",
		  NULL, 0 },
		{ "not_bearer",
		  "HTTP/1.1 200 OK\r\nContent-Length: 40\r\n\r\n"
		  "{\"access_token\":\"t3\",\"token_type\":\"mac\"}",
		  "token_type is not \"Bearer\"", -EIO },
		{ "token_with_space",
		  "HTTP/1.1 200 OK\r\nContent-Length: 44\r\n\r\n"
		  "{\"access_token\":\"t 4\",\"token_type\":\"Bearer\"}",
		  "outside visible ASCII", -EIO },
		{ "echoed_secret",
		  "HTTP/1.1 400 Bad Request\r\nContent-Length: 65\r\n\r\n"
		  "{\"error\":\"invalid_client\",\"error_description\":\"s3cr:t +/%&=\\\"x~\"}",
		  "HTTP 400: invalid_client (withheld: it contains the client secret)", -EIO },
		{ "truncated", "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"access_token\":",
		  "connection closed before the whole response arrived", -EIO },
		{ "too_large", "HTTP/1.1 200 OK\r\nContent-Length: 70000\r\n\r\n{",
		  "Content-Length 70000 above the limit", -EIO },
	};
	struct ag_secret *secret = secret_make(CLIENT_SECRET);

	if (!ASSERT_TRUE(secret, "secret"))
		return;
	for (size_t i = 0; i < AG_ARRAY_SIZE(cases); i++) {
		struct canned c = { .response = cases[i].response };
		struct idp s = { .pid = -1 };
		struct ag_oauth *o = NULL;
		struct tok t;

		if (!test__start_subtest(cases[i].name))
			continue;
		c.lfd = tcp_listen("127.0.0.1", 0, &c.port);
		if (!ASSERT_GE(c.lfd, 0, "listen"))
			continue;
		s.port = c.port;
		snprintf(s.url, sizeof(s.url), "http://127.0.0.1:%u/token", c.port);
		if (ASSERT_OK(pthread_create(&c.th, NULL, canned_serve, &c), "thread")) {
			if (ASSERT_OK(oauth_start(&s, secret, -1, &o, &t.err), t.err.msg)) {
				ASSERT_EQ(wait_token(o, &t, 10000), cases[i].ret, "result");
				if (cases[i].msg) {
					ASSERT_STRHAS(t.err.msg, cases[i].msg, "error");
					ASSERT_FALSE(strstr(t.err.msg, CLIENT_SECRET), "no secret");
				} else {
					ASSERT_GE(status_int(o, "expires_in_s"), 50,
						  "expires_in_s");
				}
			}
			pthread_join(c.th, NULL);
		}
		ag_oauth_stop(o);
		close(c.lfd);
		ASSERT_STRHAS(c.request,
			      "POST /token HTTP/1.1\r\nHost: 127.0.0.1:", "request line");
		ASSERT_STRHAS(c.request, "\r\nAuthorization: Basic " BASIC_CRED "\r\n", "Basic");
		ASSERT_STRHAS(c.request, "\r\nContent-Type: application/x-www-form-urlencoded\r\n",
			      "content type");
		ASSERT_STRHAS(c.request, "\r\nConnection: close\r\n", "one request");
		ASSERT_STRHAS(c.request, "\r\n\r\n" FORM, "form body");
	}
	ag_secret_free(secret);
}

/* What start refuses, and a network cause in the error; no server needed. */
TEST(oauth_conf)
{
	static const char *const bad[] = {
		"ftp://127.0.0.1/token",
		"http://user:pw@127.0.0.1/token",
		"http://127.0.0.1:99999/token",
		"http://127.0.0.1:/token",
		"http:///token",
		"http://127.0.0.1/to ken",
		"http://127.0.0.1/token#frag",
		"http://[::1/token",
		"https://exa mple.com/token",
		"http://a..b/token",
	};
	struct ag_secret *secret = secret_make(CLIENT_SECRET);
	struct ag_oauth_conf conf = { .client_id = CLIENT_ID, .client_secret = secret };
	struct ag_oauth *o = NULL;
	struct tok t;

	if (!ASSERT_TRUE(secret, "secret"))
		return;
	if (test__start_subtest("bad_url")) {
		for (size_t i = 0; i < AG_ARRAY_SIZE(bad); i++) {
			conf.token_url = bad[i];
			ASSERT_EQ(ag_oauth_start(&conf, -1, &o, &t.err), -EINVAL, bad[i]);
			ASSERT_STRHAS(t.err.msg, "token_url", bad[i]);
		}
	}
	if (test__start_subtest("bad_params")) {
		conf.token_url = "http://127.0.0.1:1/token";
		conf.client_id = "";
		ASSERT_EQ(ag_oauth_start(&conf, -1, &o, &t.err), -EINVAL, "empty client_id");
		conf.client_id = CLIENT_ID;
		conf.scope = "";
		ASSERT_EQ(ag_oauth_start(&conf, -1, &o, &t.err), -EINVAL, "empty scope");
		conf.scope = NULL;
		conf.token_url = "https://127.0.0.1:1/token";
		conf.ca_file = "/nonexistent/ca.pem";
		ASSERT_EQ(ag_oauth_start(&conf, -1, &o, &t.err), -EINVAL, "missing CA file");
		ASSERT_STRHAS(t.err.msg, "/nonexistent/ca.pem", "names the CA file");
		conf.ca_file = NULL;
	}
	if (test__start_subtest("connection_refused")) {
		/* Port 1 on loopback: nothing listens, the cause must reach the caller. */
		conf.token_url = "http://127.0.0.1:1/token";
		if (ASSERT_OK(ag_oauth_start(&conf, -1, &o, &t.err), t.err.msg)) {
			ASSERT_EQ(wait_token(o, &t, 5000), -EIO, "refused");
			ASSERT_STRHAS(t.err.msg,
				      "127.0.0.1:1/token: connect to 127.0.0.1: Connection refused",
				      "the network cause");
			ag_oauth_stop(o);
		}
	}
	ag_secret_free(secret);
}
