// SPDX-License-Identifier: GPL-2.0
/*
 * Fleet-wide call budgets leased from Redis (fleet.h).
 *
 * In Redis, one key per agent, budget and window,
 * "<key_prefix>:budget:<agent>:<minute|day>:<window number>", holds what
 * the fleet has left of the window; it expires after its window.  GRANT
 * creates it at the budget N, takes min(left, lease_calls - held) and says how
 * much it gave; RETURN puts unspent calls back.  Each runs as one Lua
 * script, so no two instances ever see the same calls as left.
 *
 * A lease's life, under f->lock (the loop and the thread both touch it):
 *
 *	window rolls ──> tokens 0, want ──> thread: GRANT ──> tokens += g
 *	     ^                                                   │
 *	     └──────── take(): tokens-- ; tokens <= low: want <──┘
 *
 * Ordering hazards:
 *  - the thread never holds the lock across a Redis round trip: it notes
 *    the window it asks for, and a grant that comes back for a window the
 *    loop has left is dropped (those calls expire with their key);
 *  - a grant is added to the lease only after Redis has taken it from
 *    what is left: the fleet can serve less than N, never more;
 *  - Redis restarted without persistence forgets what was spent and
 *    starts the window afresh: docs/fleet.md says to keep appendonly on.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <hiredis/hiredis.h>

#include "fleet.h"
#include "secret.h"

#define TICK_MS 500	   /* health check and retry period */
#define IO_TIMEOUT_MS 1000 /* connect and each command */

/* KEYS[1] the window's key; ARGV budget, calls wanted, expiry (unix s). */
static const char grant_lua[] = "local left = tonumber(redis.call('GET', KEYS[1]) or ARGV[1]) "
				"local g = math.min(left, tonumber(ARGV[2])) "
				"if g < 0 then g = 0 end "
				"redis.call('SET', KEYS[1], left - g) "
				"redis.call('EXPIREAT', KEYS[1], ARGV[3]) "
				"return {g, left - g}";
/*
 * KEYS[1] the window's key; ARGV calls given back, budget.  A gone key:
 * nothing.  Never above the budget: a Redis that forgot the window (no
 * persistence) must not be handed more than N by returns.
 */
static const char return_lua[] =
    "if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end "
    "local v = tonumber(redis.call('GET', KEYS[1])) + tonumber(ARGV[1]) "
    "if v > tonumber(ARGV[2]) then v = tonumber(ARGV[2]) end "
    "redis.call('SET', KEYS[1], v, 'KEEPTTL') return v";

struct lease {
	const char *agent;
	const char *budget; /* "calls_per_minute", "calls_per_day" */
	const char *label;  /* "minute", "day" */
	uint32_t limit, window_s;
	uint64_t window;   /* the wall-clock window the tokens belong to */
	uint32_t tokens;   /* calls left in the leases held */
	bool spent;	   /* Redis had nothing left at the last grant */
	bool want;	   /* a refill is asked for */
	uint64_t asked_ns; /* last GRANT of a spent budget: retried each tick */
	uint64_t served;   /* calls served from leases since start */
};

struct ag_fleet {
	const struct ag_fleet_conf *conf;
	struct ag_secret *password;
	pthread_t th;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool stop, reachable;
	bool auth_refused, grant_refused; /* the thread's: each logged once */
	uint64_t refused[AG_FLEET_UNREACHABLE + 1];
	redisContext *rc; /* the thread's */
	int nr;
	struct lease leases[];
};

static uint64_t window_now(const struct lease *l)
{
	return ag_wall_ns() / 1000000000ull / l->window_s;
}

/* A new window starts with nothing leased. Under f->lock. */
static void roll(struct lease *l)
{
	uint64_t w = window_now(l);

	if (w == l->window)
		return;
	l->window = w;
	l->tokens = 0;
	l->spent = false;
	l->want = true;
}

static uint32_t low_water(const struct ag_fleet *f)
{
	return f->conf->lease_calls / 2;
}

enum ag_fleet_verdict ag_fleet_take(struct ag_fleet *f, const struct ag_agent_conf *ac,
				    struct ag_fleet_refusal *why)
{
	enum ag_fleet_verdict v = AG_FLEET_OK;
	bool wake = false;
	int i;

	if (!f || !ac || !ac->fleet_scope)
		return AG_FLEET_OK;
	pthread_mutex_lock(&f->lock);
	for (i = 0; i < f->nr && v == AG_FLEET_OK; i++) {
		struct lease *l = &f->leases[i];

		if (strcmp(l->agent, ac->name))
			continue;
		roll(l);
		why->window = l->budget;
		why->limit = l->limit;
		/* Fail closed: without Redis no call is sure to be within the budget. */
		if (!f->reachable && !f->conf->unreachable_leases)
			v = AG_FLEET_UNREACHABLE;
		else if (!l->tokens)
			v = l->spent ? AG_FLEET_SPENT : AG_FLEET_NO_LEASE;
		if (!l->tokens)
			wake |= l->want = true;
	}
	for (i = 0; i < f->nr && v == AG_FLEET_OK; i++) {
		struct lease *l = &f->leases[i];

		if (strcmp(l->agent, ac->name))
			continue;
		l->tokens--;
		l->served++;
		if (l->tokens <= low_water(f) && !l->want)
			wake |= l->want = true;
	}
	if (v != AG_FLEET_OK)
		f->refused[v]++;
	if (wake)
		pthread_cond_signal(&f->cond);
	pthread_mutex_unlock(&f->lock);
	return v;
}

/* ---- the thread: Redis ---------------------------------------------------- */

static redisReply *command(struct ag_fleet *f, const char *fmt, ...)
{
	redisReply *r;
	va_list ap;

	if (!f->rc)
		return NULL;
	va_start(ap, fmt);
	r = redisvCommand(f->rc, fmt, ap);
	va_end(ap);
	if (!r || f->rc->err) {
		/* A context with an error is dead for good: connect again. */
		freeReplyObject(r);
		redisFree(f->rc);
		f->rc = NULL;
		return NULL;
	}
	return r;
}

static bool reply_ok(redisReply *r)
{
	bool ok = r && r->type == REDIS_REPLY_STATUS;

	freeReplyObject(r);
	return ok;
}

/* Connected and authenticated, or f->rc NULL.  The password is never logged. */
static void connect_redis(struct ag_fleet *f)
{
	struct timeval tv = { .tv_sec = IO_TIMEOUT_MS / 1000,
			      .tv_usec = IO_TIMEOUT_MS % 1000 * 1000 };
	const struct ag_fleet_conf *c = f->conf;
	bool ok = true, refused;

	if (f->rc)
		return;
	f->rc = c->port ? redisConnectWithTimeout(c->host, c->port, tv)
			: redisConnectUnixWithTimeout(c->host, tv);
	if (!f->rc || f->rc->err || redisSetTimeout(f->rc, tv) != REDIS_OK) {
		if (f->rc)
			redisFree(f->rc);
		f->rc = NULL;
		return;
	}
	if (f->password && c->user[0])
		ok = reply_ok(command(f, "AUTH %s %s", c->user, (const char *)f->password->data));
	else if (f->password)
		ok = reply_ok(command(f, "AUTH %s", (const char *)f->password->data));
	/* Refused (not a lost connection): logged once per outage, not at every retry. */
	refused = !ok && f->rc;
	if (refused && !f->auth_refused)
		ag_log(AG_LOG_ERROR, "fleet", "redis=%s error=\"authentication refused\"",
		       c->redis);
	f->auth_refused = refused;
	if (refused) {
		redisFree(f->rc);
		f->rc = NULL;
	}
}

static void key_of(const struct ag_fleet *f, const struct lease *l, uint64_t window, char *key,
		   size_t cap)
{
	snprintf(key, cap, "%s:budget:%s:%s:%llu", f->conf->key_prefix, l->agent, l->label,
		 (unsigned long long)window);
}

/* One GRANT for lease i; false when Redis did not answer. */
static bool grant(struct ag_fleet *f, int i)
{
	struct lease *l = &f->leases[i];
	char key[AG_FLEET_PREFIX_LEN + AG_NAME_LEN + 64];
	long long g, left;
	char q[256];
	uint32_t ask;
	uint64_t window;
	redisReply *r;

	/* Topped up to lease_calls, never beyond: the bound is hosts x lease_calls. */
	pthread_mutex_lock(&f->lock);
	roll(l);
	window = l->window;
	ask = f->conf->lease_calls -
	      (l->tokens < f->conf->lease_calls ? l->tokens : f->conf->lease_calls);
	if (!ask)
		l->want = false;
	pthread_mutex_unlock(&f->lock);
	if (!ask)
		return true;
	key_of(f, l, window, key, sizeof(key));
	r = command(f, "EVAL %s 1 %s %u %u %llu", grant_lua, key, l->limit, ask,
		    (unsigned long long)((window + 1) * l->window_s + 60));
	if (!r)
		return false;
	if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
	    r->element[0]->type != REDIS_REPLY_INTEGER ||
	    r->element[1]->type != REDIS_REPLY_INTEGER || r->element[0]->integer < 0) {
		/* An ACL without EVAL, say: logged once, then retried each tick as down. */
		if (!f->grant_refused)
			ag_log(AG_LOG_ERROR, "fleet", "agent=%s error=%s", l->agent,
			       ag_logq(q, sizeof(q),
				       r->type == REDIS_REPLY_ERROR ? r->str
								    : "unexpected GRANT reply"));
		f->grant_refused = true;
		freeReplyObject(r);
		return false;
	}
	f->grant_refused = false;
	g = r->element[0]->integer;
	left = r->element[1]->integer;
	freeReplyObject(r);
	pthread_mutex_lock(&f->lock);
	if (l->window == window) {
		l->tokens += (uint32_t)g; /* g <= ask: tokens stay <= lease_calls */
		l->spent = left <= 0;
		l->want = l->tokens <= low_water(f) && !l->spent;
		l->asked_ns = ag_now_ns();
	}
	pthread_mutex_unlock(&f->lock);
	return true;
}

/* Unspent calls back to the fleet (clean stop). */
static void give_back(struct ag_fleet *f)
{
	char key[AG_FLEET_PREFIX_LEN + AG_NAME_LEN + 64];

	for (int i = 0; i < f->nr && f->rc; i++) {
		struct lease *l = &f->leases[i];

		if (!l->tokens || l->window != window_now(l))
			continue;
		key_of(f, l, l->window, key, sizeof(key));
		freeReplyObject(
		    command(f, "EVAL %s 1 %s %u %u", return_lua, key, l->tokens, l->limit));
		l->tokens = 0;
	}
}

/* The leases that want a refill now; a spent budget is asked again each tick. */
static bool due(const struct lease *l, uint64_t now)
{
	if (!l->want)
		return false;
	return !l->spent || now - l->asked_ns >= TICK_MS * 1000000ull;
}

/* Under f->lock.  A spent budget waits for the tick: no busy loop. */
static bool any_due(const struct ag_fleet *f)
{
	for (int i = 0; i < f->nr; i++)
		if (f->reachable && f->leases[i].want && !f->leases[i].spent)
			return true;
	return false;
}

static void *fleet_thread(void *arg)
{
	struct ag_fleet *f = arg;
	sigset_t pipe;

	/* hiredis writes with write(2): a Redis gone away must not kill the daemon. */
	sigemptyset(&pipe);
	sigaddset(&pipe, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &pipe, NULL);

	for (;;) {
		struct timespec ts;
		bool up;

		connect_redis(f);
		up = f->rc && reply_ok(command(f, "PING"));
		for (int i = 0; up && i < f->nr; i++) {
			bool go;

			pthread_mutex_lock(&f->lock);
			go = due(&f->leases[i], ag_now_ns());
			pthread_mutex_unlock(&f->lock);
			if (go)
				up = grant(f, i);
		}
		pthread_mutex_lock(&f->lock);
		if (up != f->reachable)
			ag_log(up ? AG_LOG_INFO : AG_LOG_ERROR, "fleet", "redis=%s reachable=%s",
			       f->conf->redis, up ? "yes" : "no");
		f->reachable = up;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += TICK_MS * 1000000l;
		if (ts.tv_nsec >= 1000000000l) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000l;
		}
		/* A take() that wants a refill wakes us before the tick. */
		if (!f->stop && !any_due(f))
			pthread_cond_timedwait(&f->cond, &f->lock, &ts);
		if (f->stop) {
			pthread_mutex_unlock(&f->lock);
			break;
		}
		pthread_mutex_unlock(&f->lock);
	}
	connect_redis(f);
	pthread_mutex_lock(&f->lock);
	give_back(f);
	pthread_mutex_unlock(&f->lock);
	if (f->rc)
		redisFree(f->rc);
	f->rc = NULL;
	return NULL;
}

/* ---- start, stop, reports -------------------------------------------------- */

static int count_leases(const struct ag_conf *c)
{
	int n = 0;

	for (int i = 0; i < c->nr_agents; i++)
		if (c->agents[i].fleet_scope)
			n += !!c->agents[i].calls_per_minute + !!c->agents[i].calls_per_day;
	return n;
}

static void add_lease(struct ag_fleet *f, const char *agent, const char *budget, const char *label,
		      uint32_t limit, uint32_t window_s)
{
	struct lease *l = &f->leases[f->nr++];

	l->agent = agent;
	l->budget = budget;
	l->label = label;
	l->limit = limit;
	l->window_s = window_s;
	l->want = true;
}

int ag_fleet_start(struct ag_daemon *d, struct ag_err *err)
{
	const struct ag_conf *c = &d->conf;
	struct ag_fleet *f;
	int ret;

	d->fleet = NULL;
	if (!c->fleet.redis[0])
		return 0;
	f = calloc(1, sizeof(*f) + count_leases(c) * sizeof(f->leases[0]));
	if (!f)
		return ag_errf(err, ENOMEM, "fleet: out of memory");
	f->conf = &c->fleet;
	for (int i = 0; i < c->nr_agents; i++) {
		const struct ag_agent_conf *ac = &c->agents[i];

		if (ac->fleet_scope && ac->calls_per_minute)
			add_lease(f, ac->name, "calls_per_minute", "minute", ac->calls_per_minute,
				  60);
		if (ac->fleet_scope && ac->calls_per_day)
			add_lease(f, ac->name, "calls_per_day", "day", ac->calls_per_day, 86400);
	}
	if (c->fleet.password_file[0] &&
	    (ret = ag_secret_load(c->fleet.password_file, 0, &f->password, err))) {
		free(f);
		return ret;
	}
	pthread_mutex_init(&f->lock, NULL);
	pthread_cond_init(&f->cond, NULL);
	if ((ret = pthread_create(&f->th, NULL, fleet_thread, f))) {
		ag_secret_free(f->password);
		free(f);
		return ag_errf(err, ret, "fleet: thread: %s", strerror(ret));
	}
	d->fleet = f;
	return 0;
}

void ag_fleet_stop(struct ag_daemon *d)
{
	struct ag_fleet *f = d->fleet;

	if (!f)
		return;
	pthread_mutex_lock(&f->lock);
	f->stop = true;
	pthread_cond_signal(&f->cond);
	pthread_mutex_unlock(&f->lock);
	pthread_join(f->th, NULL);
	ag_secret_free(f->password);
	pthread_mutex_destroy(&f->lock);
	pthread_cond_destroy(&f->cond);
	free(f);
	d->fleet = NULL;
}

json_t *ag_fleet_status(struct ag_fleet *f)
{
	json_t *st, *budgets = json_array();

	pthread_mutex_lock(&f->lock);
	for (int i = 0; i < f->nr && budgets; i++) {
		const struct lease *l = &f->leases[i];

		json_array_append_new(budgets,
				      json_pack("{s:s,s:s,s:I,s:I,s:b,s:I}", "agent", l->agent,
						"budget", l->budget, "limit", (json_int_t)l->limit,
						"leased", (json_int_t)l->tokens, "spent", l->spent,
						"served", (json_int_t)l->served));
	}
	st = json_pack("{s:s,s:b,s:s,s:I,s:o*}", "redis", f->conf->redis, "reachable", f->reachable,
		       "on_unreachable", f->conf->unreachable_leases ? "leases" : "fail_closed",
		       "lease_calls", (json_int_t)f->conf->lease_calls, "budgets", budgets);
	pthread_mutex_unlock(&f->lock);
	return st;
}

void ag_fleet_metrics(struct ag_fleet *f, FILE *out)
{
	static const char *const reason[] = { "", "spent", "no_lease", "unreachable" };

	pthread_mutex_lock(&f->lock);
	fprintf(out,
		"# HELP agentgate_fleet_redis_up Whether the fleet's Redis answered the last "
		"check (1) or not (0).\n# TYPE agentgate_fleet_redis_up gauge\n"
		"agentgate_fleet_redis_up %d\n",
		f->reachable);
	fprintf(out, "# HELP agentgate_fleet_leased_calls Calls of fleet budgets this instance "
		     "holds unspent.\n# TYPE agentgate_fleet_leased_calls gauge\n");
	for (int i = 0; i < f->nr; i++)
		fprintf(out, "agentgate_fleet_leased_calls{agent=\"%s\",window=\"%s\"} %u\n",
			f->leases[i].agent, f->leases[i].label, f->leases[i].tokens);
	fprintf(out, "# HELP agentgate_fleet_refusals_total Calls refused by a fleet budget, by "
		     "reason.\n# TYPE agentgate_fleet_refusals_total counter\n");
	for (int v = AG_FLEET_SPENT; v <= AG_FLEET_UNREACHABLE; v++)
		fprintf(out, "agentgate_fleet_refusals_total{reason=\"%s\"} %llu\n", reason[v],
			(unsigned long long)f->refused[v]);
	pthread_mutex_unlock(&f->lock);
}
