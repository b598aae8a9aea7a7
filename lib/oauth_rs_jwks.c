// SPDX-License-Identifier: GPL-2.0
/*
 * The JWKS thread (see oauth_rs_jwks.h).  keys, fetches, last_ns and
 * wanted are under lock, which is never held across I/O; the loop holds it
 * while it checks a token (microseconds), the thread while it swaps keys.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "oauth_int.h"
#include "oauth_rs_jwks.h"

struct ag_rs_jwks {
	struct ag_oauth *o; /* the endpoint, its wake eventfd and stop flag */
	uint64_t refresh_ns, min_ns;
	int notify_fd;
	pthread_t thread;
	pthread_mutex_t lock;
	struct ag_rs_keys *keys;
	uint64_t fetches;
	uint64_t last_ns; /* when the last fetch began; 0: none yet */
	bool wanted;	  /* a fetch is asked for now */
};

static bool stop_asked(struct ag_rs_jwks *j)
{
	bool s;

	pthread_mutex_lock(&j->o->lock);
	s = j->o->stopping;
	pthread_mutex_unlock(&j->o->lock);
	return s;
}

/* One fetch: the new keys, or NULL with err set. */
static struct ag_rs_keys *fetch(struct ag_rs_jwks *j, struct ag_err *err)
{
	struct ag_rs_keys *k = NULL;
	size_t len = 0;
	int status = 0;

	if (oauth_get(j->o, &status, &len, err))
		return NULL;
	if (status != 200)
		ag_errf(err, EIO, "JWKS %s: HTTP %d", j->o->url, status);
	else
		ag_rs_keys_parse(j->o->body, len, &k, err);
	return k;
}

static void *jwks_thread(void *arg)
{
	struct ag_rs_jwks *j = arg;
	char q1[URL_MAX + 8], q2[2 * sizeof(((struct ag_err *)0)->msg)];

	while (!stop_asked(j)) {
		struct ag_err err = { 0 };
		struct ag_rs_keys *k, *old = NULL;
		uint64_t due;
		bool now;

		pthread_mutex_lock(&j->lock);
		due = j->last_ns ? j->last_ns + j->refresh_ns : 0;
		now = j->wanted || ag_now_ns() >= due;
		if (now) {
			j->wanted = false;
			j->last_ns = ag_now_ns();
		}
		pthread_mutex_unlock(&j->lock);
		if (!now) {
			oauth_wait_for(j->o, -1, 0, due);
			continue;
		}
		k = fetch(j, &err);
		pthread_mutex_lock(&j->lock);
		j->fetches++;
		if (k) {
			old = j->keys;
			j->keys = k;
		} else {
			/* Retried sooner than a refresh: the keys may be missing. */
			j->last_ns = ag_now_ns() + j->min_ns - j->refresh_ns;
		}
		pthread_mutex_unlock(&j->lock);
		ag_rs_keys_free(old);
		if (k) {
			ag_log(AG_LOG_INFO, "jwks", "url=%s keys=%zu",
			       ag_logq(q1, sizeof(q1), j->o->url), ag_rs_keys_count(k));
			oauth_ring(j->notify_fd);
		} else {
			ag_log(AG_LOG_WARN, "jwks_failed", "url=%s error=%s",
			       ag_logq(q1, sizeof(q1), j->o->url),
			       ag_logq(q2, sizeof(q2), err.msg));
		}
	}
	return NULL;
}

int ag_rs_jwks_start(const struct ag_rs_jwks_conf *conf, struct ag_rs_jwks **out,
		     struct ag_err *err)
{
	struct ag_rs_jwks *j = calloc(1, sizeof(*j));
	sigset_t all, old;
	int ret;

	if (!j)
		return ag_errf(err, ENOMEM, "JWKS: out of memory");
	if ((ret = oauth_endpoint_new(conf->url, conf->ca_file, conf->mark, 0, &j->o, err))) {
		free(j);
		return ret;
	}
	pthread_mutex_init(&j->lock, NULL);
	j->refresh_ns = (uint64_t)conf->refresh_s * NS_PER_S;
	j->min_ns = (uint64_t)conf->min_interval_s * NS_PER_S;
	if (j->min_ns > j->refresh_ns)
		j->min_ns = j->refresh_ns;
	j->notify_fd = conf->notify_fd;
	/* The thread takes no signals: the daemon handles them in its loop. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	ret = -pthread_create(&j->thread, NULL, jwks_thread, j);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (ret) {
		oauth_free(j->o);
		pthread_mutex_destroy(&j->lock);
		free(j);
		return ag_errf(err, ret, "JWKS: cannot start its thread: %s", strerror(-ret));
	}
	pthread_setname_np(j->thread, "ag-jwks");
	*out = j;
	return 0;
}

enum ag_rs_result ag_rs_jwks_verify(struct ag_rs_jwks *j, const struct ag_rs_expect *x,
				    const char *token, size_t len, int64_t now,
				    struct ag_rs_token *out, struct ag_err *err)
{
	enum ag_rs_result r;

	pthread_mutex_lock(&j->lock);
	r = AG_RS_UNKNOWN_KID;
	if (j->keys)
		r = ag_rs_verify(j->keys, x, token, len, now, out, err);
	else
		ag_errf(err, ENOKEY, "no JWKS yet");
	pthread_mutex_unlock(&j->lock);
	return r;
}

void ag_rs_jwks_refetch(struct ag_rs_jwks *j)
{
	bool ring;

	pthread_mutex_lock(&j->lock);
	/* Bounded: made-up kids cost the server one fetch per min_interval_s. */
	ring = !j->wanted && (!j->last_ns || ag_now_ns() >= j->last_ns + j->min_ns);
	j->wanted = j->wanted || ring;
	pthread_mutex_unlock(&j->lock);
	if (ring)
		oauth_ring(j->o->wake_fd);
}

void ag_rs_jwks_counts(struct ag_rs_jwks *j, size_t *keys, uint64_t *fetches)
{
	pthread_mutex_lock(&j->lock);
	*keys = ag_rs_keys_count(j->keys);
	*fetches = j->fetches;
	pthread_mutex_unlock(&j->lock);
}

void ag_rs_jwks_stop(struct ag_rs_jwks *j)
{
	if (!j)
		return;
	pthread_mutex_lock(&j->o->lock);
	j->o->stopping = true;
	pthread_mutex_unlock(&j->o->lock);
	oauth_ring(j->o->wake_fd);
	pthread_join(j->thread, NULL);
	ag_rs_keys_free(j->keys);
	oauth_free(j->o);
	pthread_mutex_destroy(&j->lock);
	free(j);
}
