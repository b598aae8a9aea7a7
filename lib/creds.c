// SPDX-License-Identifier: GPL-2.0
/* Credentials presented upstream (see creds.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <openssl/crypto.h>

#include "creds.h"
#include "http.h"
#include "jwt.h"
#include "oauth.h"
#include "secret.h"

/* Signing keys are re-read this often, so agentgatectl keys rotate takes
 * effect without a restart. */
#define KEYRING_RECHECK_NS (2ull * 1000000000ull)

struct keyring {
	struct ag_keyring *kr;
	char dir[PATH_MAX];
	struct timespec mtime; /* of keys.json when kr was opened */
	uint64_t checked_ns;
};

struct server_cred {
	struct ag_secret *secret; /* bearer, header; OAuth's client secret */
	struct ag_oauth *oauth;
};

struct ag_creds {
	const struct ag_conf *conf;
	const char *issuer; /* the instance */
	uint32_t mark;	    /* SO_MARK of token requests */
	struct server_cred *servers;
	struct keyring keys[2]; /* by enum ag_jwt_alg */
};

static int keys_mtime(const char *dir, struct timespec *ts)
{
	char path[PATH_MAX + 16];
	struct stat st;

	snprintf(path, sizeof(path), "%s/keys.json", dir);
	if (stat(path, &st))
		return -errno;
	*ts = st.st_mtim;
	return 0;
}

/* The keys of alg, created on first use so that a JWKS exists to publish. */
static int keyring_open(const char *state_dir, struct keyring *k, int alg, struct ag_err *err)
{
	char parent[PATH_MAX];
	int ret;

	if (k->kr)
		return 0;
	if ((ret = ag_keyring_dir(state_dir, alg, k->dir, sizeof(k->dir), err)))
		return ret;
	snprintf(parent, sizeof(parent), "%s/keys", state_dir);
	if (mkdir(parent, 0700) && errno != EEXIST)
		return ag_errf(err, errno, "%s: %s", parent, strerror(errno));
	if (keys_mtime(k->dir, &k->mtime) == -ENOENT &&
	    (ret = ag_keyring_rotate(k->dir, alg, time(NULL), NULL, err)))
		return ret;
	if ((ret = keys_mtime(k->dir, &k->mtime)))
		return ag_errf(err, -ret, "%s/keys.json: %s", k->dir, strerror(-ret));
	if ((ret = ag_keyring_open(k->dir, time(NULL), &k->kr, err)))
		return ret;
	k->checked_ns = ag_now_ns();
	return 0;
}

/* A rotation since the last look: sign with the new key from now on. */
static void keyring_refresh(struct keyring *k)
{
	struct ag_keyring *kr;
	struct timespec ts;
	struct ag_err err;
	uint64_t now = ag_now_ns();

	if (now - k->checked_ns < KEYRING_RECHECK_NS)
		return;
	k->checked_ns = now;
	if (keys_mtime(k->dir, &ts) ||
	    (ts.tv_sec == k->mtime.tv_sec && ts.tv_nsec == k->mtime.tv_nsec))
		return;
	if (ag_keyring_open(k->dir, time(NULL), &kr, &err)) {
		/* The key in hand stays valid: keep signing with it. */
		ag_log(AG_LOG_WARN, "keys", "dir=%s reload=failed error=\"%s\"", k->dir, err.msg);
		return;
	}
	ag_keyring_free(k->kr);
	k->kr = kr;
	k->mtime = ts;
	ag_log(AG_LOG_INFO, "keys", "dir=%s reload=ok kid=%s", k->dir,
	       ag_jwt_key_kid(ag_keyring_current(kr)));
}

/* A static secret goes into a header as it is: only field-value bytes. */
static bool header_value_ok(const struct ag_secret *sec)
{
	for (size_t j = 0; j < sec->len; j++)
		if (!ag_http_is_value_byte(sec->data[j]))
			return false;
	return true;
}

static int oauth_start(const struct ag_server_conf *s, struct server_cred *sc, uint32_t mark,
		       int notify_fd, struct ag_err *err)
{
	struct ag_oauth_conf oc = {
		.token_url = s->oauth_token_url,
		.client_id = s->oauth_client_id,
		.client_secret = sc->secret,
		.scope = s->oauth_scope[0] ? s->oauth_scope : NULL,
		.resource = s->oauth_resource[0] ? s->oauth_resource : NULL,
		.audience = s->cred_audience[0] ? s->cred_audience : NULL,
		.ca_file = s->oauth_ca_file[0] ? s->oauth_ca_file : NULL,
		.mark = mark,
	};
	int ret;

	if ((ret = ag_oauth_start(&oc, notify_fd, &sc->oauth, err)))
		return ag_errf(err, -ret, "tool server %s: %s", s->name, err->msg);
	return 0;
}

static int server_start(const struct ag_conf *conf, const struct ag_server_conf *s,
			struct server_cred *sc, int notify_fd, struct ag_err *err)
{
	if (s->cred == AG_CRED_NONE || s->cred == AG_CRED_ASSERTION)
		return 0;
	if (ag_secret_load(s->cred_file, 0, &sc->secret, err))
		return -EINVAL;
	if (s->cred == AG_CRED_OAUTH)
		return oauth_start(s, sc, conf->mark, notify_fd, err);
	if (!header_value_ok(sc->secret))
		return ag_errf(err, EINVAL,
			       "tool server %s: secret file %s: a byte is not allowed in an HTTP "
			       "field value",
			       s->name, s->cred_file);
	return 0;
}

int ag_creds_new(const struct ag_conf *conf, const char *state_dir, const char *issuer,
		 int notify_fd, struct ag_creds **out, struct ag_err *err)
{
	struct ag_creds *cr = calloc(1, sizeof(*cr));
	int ret = 0;

	*out = NULL;
	if (!cr || !(cr->servers = calloc(conf->nr_servers ? conf->nr_servers : 1,
					  sizeof(*cr->servers)))) {
		free(cr);
		return ag_errf(err, ENOMEM, "credentials: out of memory");
	}
	cr->conf = conf;
	cr->issuer = issuer;
	cr->mark = conf->mark;
	for (int i = 0; i < conf->nr_servers && !ret; i++) {
		const struct ag_server_conf *s = &conf->servers[i];

		ret = server_start(conf, s, &cr->servers[i], notify_fd, err);
		if (!ret && s->cred == AG_CRED_ASSERTION)
			ret = keyring_open(state_dir, &cr->keys[s->assertion_alg], s->assertion_alg, err);
	}
	if (ret) {
		ag_creds_free(cr);
		return ret;
	}
	*out = cr;
	return 0;
}

void ag_creds_free(struct ag_creds *cr)
{
	if (!cr)
		return;
	for (int i = 0; i < cr->conf->nr_servers; i++) {
		/* The thread uses the client secret: stop it first. */
		if (cr->servers[i].oauth)
			ag_oauth_stop(cr->servers[i].oauth);
		ag_secret_free(cr->servers[i].secret);
	}
	for (size_t k = 0; k < AG_ARRAY_SIZE(cr->keys); k++)
		ag_keyring_free(cr->keys[k].kr);
	free(cr->servers);
	free(cr);
}

/*
 * Secrets are read again all or nothing: a file now unreadable or with
 * the wrong owner or mode leaves every running secret in place.  An OAuth
 * client whose secret changed starts over (its cached token came from the
 * old secret, which may have been rotated because it leaked).
 */
int ag_creds_reload(struct ag_creds *cr, int notify_fd, struct ag_err *err)
{
	int n = cr->conf->nr_servers, ret = 0, changed = 0;
	struct ag_secret **fresh = calloc(n ? n : 1, sizeof(*fresh));

	if (!fresh)
		return ag_errf(err, ENOMEM, "credentials: out of memory");
	for (int i = 0; i < n && !ret; i++) {
		const struct ag_server_conf *s = &cr->conf->servers[i];

		if (!cr->servers[i].secret)
			continue;
		if (ag_secret_load(s->cred_file, 0, &fresh[i], err))
			ret = ag_errf(err, err->code ? err->code : EINVAL, "tool server %s: %s",
				      s->name, err->msg);
		else if (s->cred != AG_CRED_OAUTH && !header_value_ok(fresh[i]))
			ret = ag_errf(err, EINVAL,
				      "tool server %s: secret file %s: a byte is not allowed in an "
				      "HTTP field value",
				      s->name, s->cred_file);
	}
	for (int i = 0; i < n; i++) {
		struct server_cred *sc = &cr->servers[i];
		bool same;

		if (ret || !fresh[i]) {
			ag_secret_free(fresh[i]);
			continue;
		}
		same = fresh[i]->len == sc->secret->len &&
		       !CRYPTO_memcmp(fresh[i]->data, sc->secret->data, sc->secret->len);
		if (same) {
			ag_secret_free(fresh[i]);
			continue;
		}
		changed++;
		if (sc->oauth) {
			ag_oauth_stop(sc->oauth);
			sc->oauth = NULL;
		}
		ag_secret_free(sc->secret);
		sc->secret = fresh[i];
		if (cr->conf->servers[i].cred == AG_CRED_OAUTH &&
		    oauth_start(&cr->conf->servers[i], sc, cr->mark, notify_fd, err)) {
			/* No token can be had now: calls get that error, not an old secret. */
			ag_log(AG_LOG_WARN, "credentials", "server=%s oauth=stopped error=\"%s\"",
			       cr->conf->servers[i].name, err->msg);
		}
	}
	free(fresh);
	return ret ? ret : changed;
}

/* "Bearer " + token, in memory the caller wipes. */
static int bearer(const char *token, size_t tlen, char **value, size_t *len,
		  struct ag_err *err)
{
	if (!(*value = malloc(tlen + 8)))
		return ag_errf(err, ENOMEM, "credential: out of memory");
	memcpy(*value, "Bearer ", 7);
	memcpy(*value + 7, token, tlen);
	(*value)[tlen + 7] = '\0';
	*len = tlen + 7;
	return 0;
}

static int mint(struct ag_creds *cr, const struct ag_server_conf *s,
		const struct ag_cred_call *call, char **value, size_t *len, struct ag_err *err)
{
	struct keyring *k = &cr->keys[s->assertion_alg];
	struct ag_jwt_claims claims = {
		.iss = cr->issuer,
		.sub = call->operator,
		.aud = s->cred_audience,
		.session = call->session,
		.tool = call->tool,
		.chain = call->chain,
		.chain_len = call->chain_len,
		.iat = time(NULL),
		.ttl = s->assertion_ttl,
	};
	char *jwt = NULL;
	int ret;

	keyring_refresh(k);
	if ((ret = ag_jwt_mint(ag_keyring_current(k->kr), &claims, &jwt, err)))
		return ag_errf(err, -ret, "tool server %s: assertion: %s", s->name, err->msg);
	ret = bearer(jwt, strlen(jwt), value, len, err);
	free(jwt); /* signed and short-lived, but still a credential */
	return ret;
}

int ag_creds_header(struct ag_creds *cr, const struct ag_server_conf *s,
		    const struct ag_cred_call *call, const char **name, char **value, size_t *len,
		    uint64_t *generation, struct ag_err *err)
{
	struct server_cred *sc = &cr->servers[s - cr->conf->servers];
	char token[AG_OAUTH_TOKEN_MAX];
	size_t tlen;
	int ret;

	*value = NULL;
	*len = 0;
	*generation = 0;
	*name = s->cred == AG_CRED_HEADER ? s->cred_header : "Authorization";
	switch (s->cred) {
	case AG_CRED_NONE:
		return 0;
	case AG_CRED_HEADER:
		if (!(*value = malloc(sc->secret->len + 1)))
			return ag_errf(err, ENOMEM, "credential: out of memory");
		memcpy(*value, sc->secret->data, sc->secret->len + 1);
		*len = sc->secret->len;
		return 0;
	case AG_CRED_BEARER:
		return bearer((const char *)sc->secret->data, sc->secret->len, value, len, err);
	case AG_CRED_ASSERTION:
		return mint(cr, s, call, value, len, err);
	case AG_CRED_OAUTH:
		if (!sc->oauth) /* its restart with a new secret failed at a reload */
			return ag_errf(err, EIO, "tool server %s: no OAuth client: see the log of "
				       "the last credential reload", s->name);
		ret = ag_oauth_token(sc->oauth, token, sizeof(token), &tlen, generation, err);
		if (ret)
			return ret; /* nothing was copied */
		ret = bearer(token, tlen, value, len, err);
		OPENSSL_cleanse(token, tlen);
		return ret;
	}
	return ag_errf(err, EINVAL, "tool server %s: unknown credential type", s->name);
}

void ag_creds_refused(struct ag_creds *cr, const struct ag_server_conf *s, uint64_t generation)
{
	struct server_cred *sc = &cr->servers[s - cr->conf->servers];

	if (sc->oauth)
		ag_oauth_invalidate(sc->oauth, generation);
}

json_t *ag_creds_status(struct ag_creds *cr)
{
	static const char *const types[] = { "none", "bearer", "header",
					     "oauth2_client_credentials", "assertion" };
	json_t *all = json_object();

	for (int i = 0; all && i < cr->conf->nr_servers; i++) {
		const struct ag_server_conf *s = &cr->conf->servers[i];
		json_t *st;

		if (s->cred == AG_CRED_NONE)
			continue;
		st = cr->servers[i].oauth ? ag_oauth_status(cr->servers[i].oauth) : json_object();
		if (st)
			json_object_set_new(st, "type", json_string(types[s->cred]));
		json_object_set_new(all, s->name, st);
	}
	return all;
}
