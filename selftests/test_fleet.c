// SPDX-License-Identifier: GPL-2.0
/*
 * Fleet-wide call budgets on Redis (daemon/fleet.h, docs/fleet.md).
 *
 * A redis-server of the test's own (a unix socket in a temporary
 * directory, an ACL user with a password and only the commands it needs,
 * append-only file so a restart keeps what was spent; the default user
 * has a password of its own: Redis 7.0 replays the append-only file's
 * transactions as the default user, and refuses them if it is off) and
 * four agentgated instances standing in for four hosts, each with its own
 * agents "a" and "b" and tool server.  Hosts 0 and 2 reach Redis by its
 * unix socket, 1 and 3 by TCP; hosts 0 and 1 keep serving from held
 * leases when Redis is gone (on_unreachable "leases"), 2 and 3 fail
 * closed.
 *
 *  spend:	  two agents per host call concurrently until the budget of N
 *		  is spent across the fleet: N calls reached the tool
 *		  servers in all, never more (the bound: leases are only
 *		  granted from what is left), and Redis has 0 left;
 *  unreachable:  Redis stopped: status says so; a "leases" host serves
 *		  exactly the calls its lease still holds, a "fail_closed"
 *		  host none;
 *  restarted:	  Redis back: both serve again;
 *  auth_refused: a host with the wrong password: logged once (not the
 *		  password), its calls refused;
 *  acl_refused:  a host whose user may not EVAL: the same;
 *  returned:	  after a clean stop of every host, what Redis has left is
 *		  the budget minus every call served: no lease outstanding.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <hiredis/hiredis.h>
#include <jansson.h>

#include "config.h"
#include "mcplib.h"
#include "test.h"
#include "testlib.h"

#define HOSTS 4
#define AGENTS_PER_HOST 2
#define BUDGET_A 60 /* agent a: spent in the first part */
#define BUDGET_B 1000
#define LEASE 5
#define PASSWORD "fleet-test-password-0123456789"

struct redis {
	char dir[64];
	char sock[128];
	uint16_t port; /* on 127.0.0.1 too */
	pid_t pid;
};

/* Starts (or restarts, same directory and data) the test's redis-server. */
static int redis_start(struct redis *r)
{
	char acl[256], port[8];

	snprintf(acl, sizeof(acl), ">%s", PASSWORD);
	snprintf(port, sizeof(port), "%u", r->port);
	r->pid = fork();
	if (r->pid == 0) {
		int fd = open("/dev/null", O_WRONLY);

		dup2(fd, 1);
		dup2(fd, 2);
		execlp("redis-server", "redis-server", "--port", port, "--bind", "127.0.0.1",
		       "--unixsocket", r->sock, "--unixsocketperm", "700", "--dir", r->dir,
		       "--save", "", "--appendonly", "yes", "--appendfsync", "always", "--user",
		       "default", "on", ">" PASSWORD "-admin", "~*", "+@all", "--user", "agentgate",
		       "on", acl, "~*", "+ping", "+eval", "+get", "+set", "+expireat", "+exists",
		       "+incrby", "--user", "noeval", "on", acl, "~*", "+ping", (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 100; i++) {
		redisContext *c = redisConnectUnix(r->sock);
		bool up = c && !c->err;

		redisFree(c);
		if (up)
			return 0;
		usleep(50000);
	}
	return -ETIMEDOUT;
}

static void redis_stop(struct redis *r)
{
	if (r->pid <= 0)
		return;
	kill(r->pid, SIGTERM);
	waitpid(r->pid, NULL, 0);
	r->pid = 0;
}

/* What Redis has left of agent's budget in today's window; -1 when none. */
static long long redis_left(const struct redis *r, const char *prefix, const char *agent)
{
	redisContext *c = redisConnectUnix(r->sock);
	redisReply *rep;
	long long v = -1;

	if (!c || c->err) {
		redisFree(c);
		return -2;
	}
	rep = redisCommand(c, "AUTH agentgate %s", PASSWORD);
	freeReplyObject(rep);
	rep = redisCommand(c, "GET %s:budget:%s:day:%llu", prefix, agent,
			   (unsigned long long)(time(NULL) / 86400));
	if (rep && rep->type == REDIS_REPLY_STRING)
		v = atoll(rep->str);
	freeReplyObject(rep);
	redisFree(c);
	return v;
}

/* The daemon's "fleet" status object (agentgatectl status --json). */
static json_t *fleet_status(const struct mcp_env *e)
{
	json_t *all, *fl = NULL;
	char *out = NULL;

	if (run_capture(&out, "%s/agentgatectl --instance %s status --json 2>/dev/null",
			testlib_build_dir(), e->d.in.name) < 0 ||
	    !out) {
		free(out);
		return NULL;
	}
	all = json_loads(out, 0, NULL);
	free(out);
	fl = json_incref(json_object_get(json_object_get(all, "daemon"), "fleet"));
	json_decref(all);
	return fl;
}

/* A field of agent's budget in host e's status ("leased", "served"); -1 when none. */
static long long budget_field(const struct mcp_env *e, const char *agent, const char *field,
			      bool *reachable)
{
	json_t *fl = fleet_status(e), *b;
	long long n = -1;
	size_t i;

	if (reachable)
		*reachable = json_is_true(json_object_get(fl, "reachable"));
	json_array_foreach(json_object_get(fl, "budgets"), i, b)
	{
		if (!strcmp(json_string_value(json_object_get(b, "agent")), agent))
			n = json_integer_value(json_object_get(b, field));
	}
	json_decref(fl);
	return n;
}

static long long leased(const struct mcp_env *e, const char *agent, bool *reachable)
{
	return budget_field(e, agent, "leased", reachable);
}

/* Waits up to 5 s for every host to see Redis as up (want) or down. */
static bool all_reachable(struct mcp_env *e, bool want)
{
	for (int t = 0; t < 100; t++) {
		int n = 0;

		for (int h = 0; h < HOSTS; h++) {
			bool up = !want;

			leased(&e[h], "a", &up);
			n += up == want;
		}
		if (n == HOSTS)
			return true;
		usleep(50000);
	}
	return false;
}

enum outcome { SERVED, SPENT, NO_LEASE, UNREACHABLE, OTHER };

/* One tools/call of agent (its cgroup on host e). */
static enum outcome call(struct mcp_env *e, const char *agent, struct exchange *x, int id)
{
	char body[256], cg[PATH_MAX];

	snprintf(body, sizeof(body),
		 "{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"tools/call\",\"params\":"
		 "{\"name\":\"echo\",\"arguments\":{\"i\":%d}}}",
		 id, id);
	post(x, e->orig_port, "", body);
	snprintf(cg, sizeof(cg), "%s/%s", e->d.in.cg_agents, agent);
	if (run_in_cgroup(cg, NOBODY_UID, agent_exchange, x))
		return OTHER;
	if (strstr(x->response, "spent across the fleet"))
		return SPENT;
	if (strstr(x->response, "no fleet lease held yet"))
		return NO_LEASE;
	if (strstr(x->response, "redis is unreachable"))
		return UNREACHABLE;
	if (strstr(x->response, "\"result\"") && !strstr(x->response, "isError"))
		return SERVED;
	return OTHER;
}

struct tally {
	int served[HOSTS], spent[HOSTS], other[HOSTS];
};

/* An agent of host h: calls until the fleet says the budget is spent. */
static void spender(struct mcp_env *e, int h, int k, struct tally *t)
{
	struct exchange *x = shared_alloc(sizeof(*x));
	uint64_t deadline = ag_now_ns() + 30ull * 1000000000;

	for (int i = 0; i < 4 * BUDGET_A && ag_now_ns() < deadline; i++) {
		enum outcome o = call(e, "a", x, 1000 * (h * AGENTS_PER_HOST + k) + i);

		if (o == SERVED)
			__atomic_fetch_add(&t->served[h], 1, __ATOMIC_SEQ_CST);
		else if (o == SPENT) {
			__atomic_fetch_add(&t->spent[h], 1, __ATOMIC_SEQ_CST);
			break;
		} else if (o == NO_LEASE)
			usleep(10000); /* the refill is on its way */
		else
			__atomic_fetch_add(&t->other[h], 1, __ATOMIC_SEQ_CST);
	}
	munmap(x, sizeof(*x));
}

static int write_password(const char *path, const char *password)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	bool ok = fd >= 0 && dprintf(fd, "%s\n", password) == (int)strlen(password) + 1;

	if (fd >= 0)
		close(fd);
	return ok ? 0 : -1;
}

/* Served calls in a row from host e until the first refusal; that refusal in *why. */
static int serve_until_refused(struct mcp_env *e, const char *agent, struct exchange *x, int base,
			       int max, enum outcome *why)
{
	int n = 0;

	*why = OTHER;
	for (int i = 0; i < max; i++) {
		*why = call(e, agent, x, base + i);
		if (*why != SERVED)
			break;
		n++;
	}
	return n;
}

TEST(fleet_budget)
{
	struct tally *t = shared_alloc(sizeof(*t));
	struct exchange *x = shared_alloc(sizeof(*x));
	struct redis r = { 0 };
	struct mcp_env e[HOSTS] = { 0 };
	char prefix[32], fleet[1024], agents[512], pw[128], metrics[64], addr[2][160];
	uint16_t mport = free_port();
	int started = 0, total = 0, served_b = 0;
	enum outcome why;
	char *rm = NULL;

	snprintf(r.dir, sizeof(r.dir), "/tmp/agfleet.XXXXXX");
	if (!ASSERT_OK_PTR(mkdtemp(r.dir), "redis directory"))
		goto out;
	snprintf(r.sock, sizeof(r.sock), "%s/redis.sock", r.dir);
	r.port = free_port();
	/* Hosts 0 and 2 by the unix socket, 1 and 3 by TCP. */
	snprintf(addr[0], sizeof(addr[0]), "unix:%s", r.sock);
	snprintf(addr[1], sizeof(addr[1]), "127.0.0.1:%u", r.port);
	snprintf(pw, sizeof(pw), "%s/redis.pass", r.dir);
	snprintf(prefix, sizeof(prefix), "agt%d", (int)getpid());
	snprintf(metrics, sizeof(metrics), ", \"metrics\": {\"listen\": \"127.0.0.1:%u\"}", mport);
	if (!ASSERT_OK(write_password(pw, PASSWORD), "password file") ||
	    !ASSERT_OK(redis_start(&r), "redis-server started"))
		goto out;
	snprintf(agents, sizeof(agents),
		 "{\"name\": \"a\", \"tools\": [\"t/*\"], \"quota\": {\"calls_per_day\": %d, "
		 "\"scope\": \"fleet\"}}, {\"name\": \"b\", \"tools\": [\"t/*\"], \"quota\": "
		 "{\"calls_per_day\": %d, \"scope\": \"fleet\"}}",
		 BUDGET_A, BUDGET_B);
	for (int h = 0; h < HOSTS; h++) {
		char suffix[16];

		snprintf(fleet, sizeof(fleet),
			 "\"fleet\": {\"redis\": \"%s\", \"user\": \"agentgate\", "
			 "\"password_file\": \"%s\", \"lease_calls\": %d, \"key_prefix\": \"%s\", "
			 "\"on_unreachable\": \"%s\"}%s",
			 addr[h % 2], pw, LEASE, prefix, h < 2 ? "leases" : "fail_closed",
			 h == 2 ? metrics : "");
		snprintf(suffix, sizeof(suffix), "fleet%d", h);
		if (!ASSERT_OK(env_start_with(&e[h], suffix, REPLY_JSON, agents, fleet),
			       "host started"))
			goto out;
		started++;
	}
	if (!ASSERT_TRUE(all_reachable(e, true), "every host reached redis"))
		goto out;

	if (test__start_subtest("spend")) {
		pid_t pids[HOSTS * AGENTS_PER_HOST];
		int n = 0;

		for (int h = 0; h < HOSTS; h++)
			for (int k = 0; k < AGENTS_PER_HOST; k++) {
				pids[n] = fork();
				if (pids[n] == 0) {
					spender(&e[h], h, k, t);
					_exit(0);
				}
				n++;
			}
		for (int i = 0; i < n; i++)
			waitpid(pids[i], NULL, 0);
		for (int h = 0; h < HOSTS; h++) {
			total += t->served[h];
			ASSERT_EQ(t->other[h], 0, "no other outcome");
			ASSERT_EQ(t->spent[h], AGENTS_PER_HOST, "every agent told: spent");
			if (test__verbose())
				fprintf(stderr, "  host %d served %d\n", h, t->served[h]);
		}
		ASSERT_EQ(total, BUDGET_A, "the fleet served exactly the budget");
		n = 0;
		for (int h = 0; h < HOSTS; h++)
			n += e[h].tool.nids;
		ASSERT_EQ(n, BUDGET_A, "exactly N calls reached the tool servers");
		ASSERT_EQ(redis_left(&r, prefix, "a"), 0, "redis: nothing left");
		n = 0;
		for (int h = 0; h < HOSTS; h++)
			n += budget_field(&e[h], "a", "served", NULL);
		ASSERT_EQ(n, BUDGET_A, "status: served adds up to N");
	}
	if (test__start_subtest("unreachable")) {
		long long held0, held2;
		char *out = NULL;

		/* Agent b's first leases are taken at start: wait for them. */
		for (int i = 0;
		     i < 100 && (leased(&e[0], "b", NULL) < 1 || leased(&e[2], "b", NULL) < 1); i++)
			usleep(50000);
		redis_stop(&r);
		ASSERT_TRUE(all_reachable(e, false), "every host saw redis go");
		run_capture(&out, "%s/agentgatectl --instance %s status 2>&1", testlib_build_dir(),
			    e[2].d.in.name);
		ASSERT_STRHAS(out, "UNREACHABLE (on_unreachable fail_closed)", "status says so");
		free(out);
		held0 = leased(&e[0], "b", NULL);
		held2 = leased(&e[2], "b", NULL);
		ASSERT_GT(held0, 0, "host 0 holds a lease");
		ASSERT_GT(held2, 0, "host 2 holds a lease");
		ASSERT_LE(held0, LEASE, "a lease never holds more than lease_calls");
		ASSERT_LE(held2, LEASE, "a lease never holds more than lease_calls");
		e[0].tool.nids = e[2].tool.nids = 0;
		served_b += serve_until_refused(&e[0], "b", x, 100000, 50, &why);
		ASSERT_EQ(served_b, held0, "leases: exactly the held lease served");
		ASSERT_EQ(why, NO_LEASE, "then refused: no lease");
		ASSERT_EQ(serve_until_refused(&e[2], "b", x, 100100, 50, &why), 0,
			  "fail_closed: nothing served");
		ASSERT_EQ(why, UNREACHABLE, "refused: redis unreachable");
		ASSERT_EQ(e[2].tool.nids, 0, "nothing reached host 2's tool server");
		run_capture(&out, "curl -s http://127.0.0.1:%u/metrics", mport);
		ASSERT_STRHAS(out, "agentgate_fleet_redis_up 0", "metric: redis down");
		ASSERT_STRHAS(out, "agentgate_fleet_refusals_total{reason=\"unreachable\"} 1",
			      "metric: the refusal counted");
		free(out);
	}
	if (test__start_subtest("restarted")) {
		int n;

		ASSERT_OK(redis_start(&r), "redis-server restarted");
		ASSERT_TRUE(all_reachable(e, true), "every host reached redis again");
		for (int h = 0; h < HOSTS; h += 2) {
			for (int i = 0; i < 100 && leased(&e[h], "b", NULL) < 1; i++)
				usleep(50000);
			n = serve_until_refused(&e[h], "b", x, 100200 + 100 * h, 3, &why);
			ASSERT_EQ(n, 3, "served again");
			served_b += n;
		}
		ASSERT_EQ(redis_left(&r, prefix, "a"), 0, "agent a's spent budget survived");
	}
	if (test__start_subtest("auth_refused")) {
		struct mcp_env bad = { 0 };
		char badpw[160], *out = NULL;

		snprintf(badpw, sizeof(badpw), "%s.bad", pw);
		snprintf(fleet, sizeof(fleet),
			 "\"fleet\": {\"redis\": \"%s\", \"user\": \"agentgate\", "
			 "\"password_file\": \"%s\", \"key_prefix\": \"%s\"}",
			 addr[0], badpw, prefix);
		if (ASSERT_OK(write_password(badpw, "not-the-password"), "wrong password file") &&
		    ASSERT_OK(env_start_with(&bad, "fleetbad", REPLY_JSON, agents, fleet),
			      "host started")) {
			ASSERT_TRUE(log_has(&bad.d, 5000, "authentication refused", NULL),
				    "logged, without the password");
			ASSERT_FALSE(log_has(&bad.d, 0, "not-the-password", NULL),
				     "the password is not in the log");
			ASSERT_EQ(call(&bad, "b", x, 200000), UNREACHABLE,
				  "its calls refused: fail_closed");
			ASSERT_EQ(bad.tool.nids, 0, "nothing reached its tool server");
			usleep(1200000); /* two more retries */
			run_capture(&out, "grep -c 'authentication refused' %s", bad.d.log);
			ASSERT_STREQ(out, "1\n", "logged once, not at every retry");
			free(out);
			out = NULL;
		}
		env_stop(&bad);
	}
	if (test__start_subtest("acl_refused")) {
		struct mcp_env bad = { 0 };
		char *out = NULL;

		/* A user that may PING but not EVAL: reachable, yet no lease. */
		snprintf(fleet, sizeof(fleet),
			 "\"fleet\": {\"redis\": \"%s\", \"user\": \"noeval\", "
			 "\"password_file\": \"%s\", \"key_prefix\": \"%s\"}",
			 addr[1], pw, prefix);
		if (ASSERT_OK(env_start_with(&bad, "fleetacl", REPLY_JSON, agents, fleet),
			      "host started")) {
			ASSERT_TRUE(log_has(&bad.d, 5000, "NOPERM", NULL),
				    "Redis's refusal logged");
			ASSERT_EQ(call(&bad, "b", x, 300000), UNREACHABLE,
				  "its calls refused: fail_closed");
			usleep(1200000);
			run_capture(&out, "grep -c NOPERM %s", bad.d.log);
			ASSERT_STREQ(out, "1\n", "logged once, not at every retry");
			free(out);
		}
		env_stop(&bad);
	}
	if (test__start_subtest("returned")) {
		for (int h = 0; h < HOSTS; h++)
			ASSERT_OK(tdaemon_stop(&e[h].d, SIGTERM, 10000), "clean stop");
		ASSERT_EQ(redis_left(&r, prefix, "b"), BUDGET_B - served_b,
			  "every unspent lease returned: left = N - served");
	}
out:
	for (int h = 0; h < started; h++)
		env_stop(&e[h]);
	redis_stop(&r);
	if (r.dir[0] != '/' || run_capture(&rm, "rm -rf %s", r.dir))
		fprintf(stderr, "  could not remove %s\n", r.dir);
	free(rm);
	munmap(t, sizeof(*t));
	munmap(x, sizeof(*x));
}

#define FLEET_AGENT \
	"\"agents\": [{\"name\": \"a\", \"quota\": {\"calls_per_day\": 5, \"scope\": \"fleet\"}}]"

/* The "fleet" block and "scope": what is taken, defaults, what is refused and where. */
static int parse(const char *json, struct ag_conf *c, struct ag_err *err)
{
	char path[] = "/tmp/agfleetconf.XXXXXX";
	int fd = mkstemp(path), ret = -1;

	if (fd >= 0 && write(fd, json, strlen(json)) == (ssize_t)strlen(json))
		ret = ag_conf_parse(c, path, err);
	if (fd >= 0)
		close(fd);
	unlink(path);
	return ret;
}

TEST(fleet_config)
{
	static const struct {
		const char *json, *error; /* error NULL: accepted */
	} cases[] = {
		{ "{\"fleet\": {\"redis\": \"unix:/run/r.sock\"}, " FLEET_AGENT "}", NULL },
		{ "{\"fleet\": {\"redis\": \"redis.example:6380\", \"on_unreachable\": "
		  "\"leases\", \"lease_calls\": 50, \"user\": \"ag\", \"key_prefix\": "
		  "\"x\"}, " FLEET_AGENT "}",
		  NULL },
		{ "{" FLEET_AGENT "}",
		  "$.agents[0].quota.scope: \"fleet\" needs a \"fleet\" block" },
		{ "{\"fleet\": {\"redis\": \"unix:relative\"}, " FLEET_AGENT "}",
		  "$.fleet.redis: expected" },
		{ "{\"fleet\": {\"redis\": \"nohost\"}, " FLEET_AGENT "}",
		  "$.fleet.redis: expected" },
		{ "{\"fleet\": {\"redis\": \"h:0\"}, " FLEET_AGENT "}", "$.fleet.redis: expected" },
		{ "{\"fleet\": {\"redis\": \"h:1\", \"lease_calls\": 0}, " FLEET_AGENT "}",
		  "$.fleet.lease_calls: expected at least 1" },
		{ "{\"fleet\": {\"redis\": \"h:1\", \"on_unreachable\": \"open\"}, " FLEET_AGENT
		  "}",
		  "$.fleet.on_unreachable: expected" },
		{ "{\"fleet\": {\"redis\": \"h:1\", \"tls\": true}, " FLEET_AGENT "}",
		  "$.fleet.tls: unknown key" },
		{ "{\"fleet\": {\"redis\": \"h:1\"}, \"agents\": [{\"name\": \"a\", \"quota\": "
		  "{\"scope\": \"fleet\"}}]}",
		  "$.agents[0].quota.scope: \"fleet\" needs calls_per_minute or calls_per_day" },
		{ "{\"fleet\": {\"redis\": \"h:1\"}, \"agents\": [{\"name\": \"a\", \"quota\": "
		  "{\"calls_per_day\": 1, \"scope\": \"world\"}}]}",
		  "$.agents[0].quota.scope: expected" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct ag_conf c;
		struct ag_err err = { 0 };
		int ret;

		ret = parse(cases[i].json, &c, &err);
		if (!cases[i].error) {
			if (!ASSERT_OK(ret, err.msg))
				continue;
			ASSERT_TRUE(c.agents[0].fleet_scope, "scope fleet");
			if (i == 0) {
				ASSERT_STREQ(c.fleet.host, "/run/r.sock", "unix socket path");
				ASSERT_EQ(c.fleet.port, 0, "no port");
				ASSERT_EQ(c.fleet.lease_calls, AG_FLEET_LEASE_CALLS,
					  "default lease");
				ASSERT_STREQ(c.fleet.key_prefix, "agentgate", "default prefix");
				ASSERT_FALSE(c.fleet.unreachable_leases, "default fail_closed");
			} else {
				ASSERT_STREQ(c.fleet.host, "redis.example", "host");
				ASSERT_EQ(c.fleet.port, 6380, "port");
				ASSERT_EQ(c.fleet.lease_calls, 50, "lease_calls");
				ASSERT_TRUE(c.fleet.unreachable_leases, "leases");
			}
			ag_conf_free(&c);
			continue;
		}
		ASSERT_NEQ(ret, 0, cases[i].json);
		ASSERT_STRHAS(err.msg, cases[i].error, cases[i].json);
	}
}
