// SPDX-License-Identifier: GPL-2.0
/*
 * Call budgets and loop protection (daemon/budget.h, bpf/daemon.bpf.c).
 *
 * budget_charge drives quota_charge directly on a test instance: limits,
 * windows, refusals, after dropping capabilities, on an adopted instance,
 * and racing the connect hook on one quota value (neither may undo the
 * other).  budget_calls and budget_loop go through a real agentgated
 * (restarted once, so on an adopted instance too): what the agent sees,
 * what reaches the tool server, what the kernel map says.
 */
#include <errno.h>
#include <limits.h>
#include <linux/capability.h>
#include <signal.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <jansson.h>

#include "cgroup.h"
#include "kern.h"
#include "mcplib.h"
#include "test.h"
#include "testlib.h"

static int charge(const struct ag_kern *k, uint64_t id, struct ag_charge *c)
{
	struct ag_err err;
	int ret = ag_quota_charge(k, id, c, &err);

	if (ret)
		fprintf(stderr, "  charge: %s\n", err.msg);
	return ret;
}

/* Only CAP_NET_ADMIN left, as agentgated after start-up. */
static int drop_to_net_admin(void)
{
	struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct data[2] = { 0 };

	data[0].effective = data[0].permitted = 1u << CAP_NET_ADMIN;
	return syscall(SYS_capset, &hdr, data);
}

struct dropped {
	int capset, map_create_errno, charge, spent, calls_minute;
};

static void charge_without_caps(const struct ag_kern *k, uint64_t id, struct dropped *r)
{
	pid_t pid = fork();

	if (pid == 0) {
		struct ag_charge c;
		int fd;

		r->capset = drop_to_net_admin();
		/* Proof the privilege is gone: creating a map needs CAP_BPF. */
		fd = bpf_map_create(BPF_MAP_TYPE_ARRAY, NULL, 4, 4, 1, NULL);
		r->map_create_errno = fd < 0 ? errno : 0;
		r->charge = charge(k, id, &c);
		r->spent = c.spent;
		r->calls_minute = (int)c.calls_minute;
		_exit(0);
	}
	waitpid(pid, NULL, 0);
}

struct racer {
	int attempts, done;
};

/* Direct connects to a closed port: each takes a token, then fails. */
static int connect_many(void *arg)
{
	struct racer *r = arg;
	struct sockaddr_storage ss;
	socklen_t len = make_sockaddr("127.0.0.1", free_port(), &ss);

	for (int i = 0; i < r->attempts; i++) {
		int fd = socket(AF_INET, SOCK_STREAM, 0);

		if (connect(fd, (struct sockaddr *)&ss, len) && errno == ECONNREFUSED)
			r->done++;
		close(fd);
	}
	return 0;
}

TEST(budget_charge)
{
	struct ag_quota_limits l = { .calls_per_minute = 3 };
	struct dropped *dr = shared_alloc(sizeof(*dr));
	struct racer *rc = shared_alloc(sizeof(*rc));
	struct ag_charge c;
	struct ag_quota q;
	struct ag_err err;
	struct tinst t;

	if (!ASSERT_OK(tinst_create(&t, "bcharge", 0, NULL, 0), "instance"))
		return;
	if (test__start_subtest("no_entry_not_charged")) {
		ASSERT_OK(charge(&t.k, t.agent_cg, &c), "charge");
		ASSERT_EQ(c.spent, AG_BUDGET_NONE, "nothing spent");
		ASSERT_EQ(ag_quota_get(&t.k, t.agent_cg, &q), -ENOENT, "no entry made");
	}
	if (test__start_subtest("per_minute")) {
		ASSERT_OK(ag_quota_set(&t.k, t.agent_cg, &l, &err), "limits");
		for (int i = 1; i <= 3; i++) {
			ASSERT_OK(charge(&t.k, t.agent_cg, &c), "charge");
			ASSERT_EQ(c.spent, AG_BUDGET_NONE, "within the budget");
			ASSERT_EQ(c.calls_minute, i, "counted");
		}
		ASSERT_OK(charge(&t.k, t.agent_cg, &c), "charge");
		ASSERT_EQ(c.spent, AG_BUDGET_MINUTE, "the 4th call: per-minute budget spent");
		ASSERT_EQ(c.limit, 3, "its limit");
		ASSERT_EQ(c.calls_minute, 3, "a refused call is not counted as a call");
		ASSERT_OK(ag_quota_get(&t.k, t.agent_cg, &q), "entry");
		ASSERT_EQ(q.calls_minute, 3, "map calls_minute");
		ASSERT_EQ(q.calls_day, 3, "map calls_day");
		ASSERT_EQ(q.calls_refused, 1, "map calls_refused");
	}
	if (test__start_subtest("window_rolls")) {
		ASSERT_OK(ag_quota_get(&t.k, t.agent_cg, &q), "entry");
		q.minute_start_ns = ag_now_ns() - AG_MINUTE_NS - 1;
		ASSERT_OK(
		    bpf_map_update_elem(t.k.map_fd[AG_MAP_QUOTA], &t.agent_cg, &q, BPF_F_LOCK),
		    "minute over");
		ASSERT_OK(charge(&t.k, t.agent_cg, &c), "charge");
		ASSERT_EQ(c.spent, AG_BUDGET_NONE, "a new minute");
		ASSERT_EQ(c.calls_minute, 1, "counted from 1 again");
		ASSERT_EQ(c.calls_day, 4, "the day goes on");
	}
	if (test__start_subtest("per_day")) {
		l.calls_per_minute = 0;
		l.calls_per_day = 5;
		ASSERT_OK(ag_quota_set(&t.k, t.agent_cg, &l, &err), "limits");
		ASSERT_OK(charge(&t.k, t.agent_cg, &c), "charge");
		ASSERT_EQ(c.spent, AG_BUDGET_NONE, "the 5th call of the day");
		ASSERT_OK(charge(&t.k, t.agent_cg, &c), "charge");
		ASSERT_EQ(c.spent, AG_BUDGET_DAY, "the 6th: per-day budget spent");
		ASSERT_EQ(c.limit, 5, "its limit");
	}
	if (test__start_subtest("without_capabilities")) {
		l.calls_per_day = 0;
		l.calls_per_minute = 100;
		ASSERT_OK(ag_quota_set(&t.k, t.agent_cg, &l, &err), "limits");
		ASSERT_OK(ag_quota_reset(&t.k, t.agent_cg, &err), "reset");
		charge_without_caps(&t.k, t.agent_cg, dr);
		ASSERT_OK(dr->capset, "capabilities dropped");
		ASSERT_EQ(dr->map_create_errno, EPERM, "no BPF privilege left");
		ASSERT_OK(dr->charge, "charged all the same");
		ASSERT_EQ(dr->calls_minute, 1, "counted");
	}
	if (test__start_subtest("adopted")) {
		struct ag_kern k2;

		if (ASSERT_OK(ag_kern_install(&k2, &t.in, &t.cfg, &err), "adopt")) {
			ASSERT_TRUE(k2.adopted, "the pinned instance was adopted");
			ASSERT_OK(charge(&k2, t.agent_cg, &c), "charge through the adopted map");
			ASSERT_EQ(c.calls_minute, 2, "the same entry");
			ag_kern_close(&k2);
		}
	}
	if (test__start_subtest("races_connect_hook")) {
		/* Usage and tokens on one value, from both sides at once: each
		 * side's count must survive the other's updates. */
		struct ag_quota_limits big = { .connect_burst = 100000 };
		uint64_t id;
		long charges = 0;
		pid_t pid;

		ASSERT_OK(ag_agent_register(&t.k, &t.in, "a", AG_VERDICT_DIRECT, &id, &err),
			  "agent a connects directly");
		ASSERT_OK(ag_quota_set(&t.k, t.agent_cg, &big, &err), "limits");
		ASSERT_OK(ag_quota_reset(&t.k, t.agent_cg, &err), "reset");
		rc->attempts = 3000;
		rc->done = 0;
		pid = fork();
		if (pid == 0)
			_exit(tinst_agent(&t, NOBODY_UID, connect_many, rc));
		while (waitpid(pid, NULL, WNOHANG) == 0 && charges < 10000000)
			if (!charge(&t.k, t.agent_cg, &c))
				charges++;
		ASSERT_EQ(rc->done, rc->attempts, "every connect reached the closed port");
		ASSERT_OK(ag_quota_get(&t.k, t.agent_cg, &q), "entry");
		ASSERT_EQ(q.calls_minute, charges, "every charge counted");
		ASSERT_EQ(q.connect_tokens_milli, (100000ull - rc->attempts) * AG_QUOTA_MILLI,
			  "every connect took its token");
		if (test__verbose())
			fprintf(stderr, "  %ld charges during %d connects\n", charges,
				rc->attempts);
	}
	munmap(dr, sizeof(*dr));
	munmap(rc, sizeof(*rc));
	tinst_destroy(&t);
}

/* ---- through agentgated ------------------------------------------------ */

static void calls(struct mcp_env *e, struct exchange *x, int first, int n, const char *args)
{
	char body[4096];
	int len = 0;

	for (int i = 0; i < n; i++)
		len += snprintf(body + len, sizeof(body) - len,
				"%s{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"tools/call\","
				"\"params\":{\"name\":\"echo\",\"arguments\":%s}}",
				i	? ","
				: n > 1 ? "["
					: "",
				first + i, args);
	if (n > 1)
		snprintf(body + len, sizeof(body) - len, "]");
	post(x, e->orig_port, "", body);
	run_agent(e, x);
}

/* tools/call requests the tool server received, batches counted per element. */
static int calls_seen(struct tool *t)
{
	int n = 0;

	pthread_mutex_lock(&t->lock);
	for (int i = 0; i < t->nseen; i++)
		for (const char *p = t->seen[i].body; (p = strstr(p, "tools/call")); p++)
			n++;
	pthread_mutex_unlock(&t->lock);
	return n;
}

/* The agent's entry of `bpftool -j map dump pinned <pin dir>/quota`, by field name. */
static json_t *bpftool_quota(const struct mcp_env *e, uint64_t id)
{
	json_t *all, *entry, *found = NULL;
	char *out = NULL;
	size_t i;

	if (run_capture(&out, "bpftool -j map dump pinned %s/quota", e->d.in.pin_dir) || !out) {
		free(out);
		return NULL;
	}
	all = json_loads(out, 0, NULL);
	free(out);
	/* -j prints the raw bytes and, by the map's BTF, "formatted" fields. */
	json_array_foreach(all, i, entry)
	{
		json_t *f = json_object_get(entry, "formatted");

		if ((uint64_t)json_integer_value(json_object_get(f, "key")) == id)
			found = json_incref(json_object_get(f, "value"));
	}
	json_decref(all);
	return found;
}

static long long field(json_t *v, const char *name)
{
	return json_integer_value(json_object_get(v, name));
}

static int ctl(char **out, const struct mcp_env *e, const char *args)
{
	return run_capture(out, "%s/agentgatectl --instance %s %s 2>&1", testlib_build_dir(),
			   e->d.in.name, args);
}

struct direct {
	int ret, err;
};

/* 127.0.0.2 is the agent's "direct" rule: not redirected, nothing listens. */
static int direct_connect(void *arg)
{
	struct direct *r = arg;
	struct sockaddr_storage ss;
	socklen_t len = make_sockaddr("127.0.0.2", 9, &ss);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	r->ret = connect(fd, (struct sockaddr *)&ss, len);
	r->err = r->ret ? errno : 0;
	close(fd);
	return 0;
}

static const char budget_agent[] =
    "{\"name\": \"a\", \"tools\": [\"t/*\"], \"quota\": {\"calls_per_minute\": 3}, "
    "\"rules\": [{\"dest\": \"127.0.0.2\", \"verdict\": \"direct\"}]}";

TEST(budget_calls)
{
	struct exchange *x = shared_alloc(sizeof(*x));
	struct direct *dc = shared_alloc(sizeof(*dc));
	struct ag_err err;
	struct mcp_env e = { 0 };
	char *out = NULL;
	uint64_t id = 0;
	json_t *v;
	int before;

	if (!ASSERT_OK(env_start(&e, "budget", REPLY_JSON, budget_agent), "environment"))
		goto out;
	ASSERT_OK(ag_cgroup_id(e.agent_cg, &id, &err), "agent cgroup id");
	if (test__start_subtest("per_minute_spent")) {
		/* One connection: once the budget is spent, a new one is refused. */
		before = calls_seen(&e.tool);
		calls(&e, x, 1, 4, "{\"i\":1}");
		ASSERT_STRHAS(x->response, "\"id\":3,\"result\"", "the 3rd call served");
		ASSERT_STRHAS(x->response, "\"isError\":true", "the 4th: an isError result");
		ASSERT_STRHAS(x->response, "calls_per_minute (3)", "naming the budget and limit");
		ASSERT_EQ(calls_seen(&e.tool), before + 3, "three calls reached the tool server");
		v = bpftool_quota(&e, id);
		if (ASSERT_OK_PTR(v, "bpftool map dump: the agent's entry")) {
			ASSERT_EQ(field(v, "calls_per_minute"), 3, "bpftool: calls_per_minute");
			ASSERT_EQ(field(v, "calls_minute"), 3, "bpftool: calls_minute");
			ASSERT_EQ(field(v, "calls_refused"), 1, "bpftool: calls_refused");
		}
		json_decref(v);
	}
	if (test__start_subtest("connects_refused_when_spent")) {
		run_in_cgroup(e.agent_cg, NOBODY_UID, direct_connect, dc);
		ASSERT_EQ(dc->ret, -1, "direct connect refused");
		ASSERT_EQ(dc->err, EDQUOT, "by the kernel's quota check");
		before = calls_seen(&e.tool);
		post(x, e.orig_port, "",
		     "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"tools/call\",\"params\":"
		     "{\"name\":\"echo\",\"arguments\":{}}}");
		ASSERT_EQ(run_in_cgroup(e.agent_cg, NOBODY_UID, agent_exchange, x), 1,
			  "the agent could not connect");
		ASSERT_EQ(x->err, EDQUOT, "a governed call cannot even connect");
		ASSERT_EQ(calls_seen(&e.tool), before, "nothing reached the tool server");
	}
	if (test__start_subtest("set_takes_effect_live")) {
		ASSERT_EQ(ctl(&out, &e, "quota set a --calls-per-minute 5"), 0, "quota set");
		free(out);
		out = NULL;
		before = calls_seen(&e.tool);
		calls(&e, x, 6, 1, "{\"i\":3}");
		ASSERT_STRHAS(x->response, "\"id\":6,\"result\"", "served without a restart");
		ASSERT_NULL(strstr(x->response, "isError"), "not refused");
		ASSERT_EQ(calls_seen(&e.tool), before + 1, "the call reached the tool server");
	}
	if (test__start_subtest("two_connections")) {
		ASSERT_EQ(ctl(&out, &e, "quota set a --calls-per-minute 3"), 0, "quota set");
		free(out);
		out = NULL;
		ASSERT_EQ(ctl(&out, &e, "quota reset a"), 0, "quota reset");
		free(out);
		out = NULL;
		before = calls_seen(&e.tool);
		calls(&e, x, 10, 2, "{\"i\":4}");
		ASSERT_NULL(strstr(x->response, "isError"), "first connection: both served");
		calls(&e, x, 12, 2, "{\"i\":5}");
		ASSERT_STRHAS(x->response, "\"id\":12,\"result\"", "second connection: one more");
		ASSERT_STRHAS(x->response, "calls_per_minute (3)", "then the budget is spent");
		ASSERT_EQ(calls_seen(&e.tool), before + 3, "three calls across two connections");
		v = bpftool_quota(&e, id);
		ASSERT_EQ(v ? field(v, "calls_minute") : -1, 3, "bpftool: calls_minute");
		json_decref(v);
	}
	if (test__start_subtest("usage_survives_restart")) {
		/* The restarted daemon adopts the pinned map: usage is kept, and
		 * its own quota_charge counts on from there. */
		tdaemon_kill(&e.d, SIGTERM);
		if (ASSERT_OK(tdaemon_restart(&e.d), "daemon restarted")) {
			ASSERT_TRUE(log_has(&e.d, 5000, "kernel=adopted", NULL), "adopted");
			ASSERT_EQ(ctl(&out, &e, "quota set a --calls-per-minute 5"), 0,
				  "quota set");
			free(out);
			out = NULL;
			before = calls_seen(&e.tool);
			calls(&e, x, 20, 3, "{\"i\":6}");
			ASSERT_STRHAS(x->response, "\"id\":21,\"result\"", "two more served");
			ASSERT_STRHAS(x->response, "calls_per_minute (5)", "the third refused");
			ASSERT_EQ(calls_seen(&e.tool), before + 2, "two reached the tool server");
		}
	}
	env_stop(&e);
out:
	munmap(x, sizeof(*x));
	munmap(dc, sizeof(*dc));
}

static pid_t call_held(struct mcp_env *e, struct exchange *x, int id)
{
	char body[256];
	pid_t pid;

	snprintf(body, sizeof(body),
		 "{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"tools/call\",\"params\":{\"name\":"
		 "\"echo\",\"arguments\":{\"x\":1}}}",
		 id);
	post(x, e->orig_port, "", body);
	pid = fork();
	if (pid == 0)
		_exit(run_in_cgroup(e->agent_cg, NOBODY_UID, agent_exchange, x));
	return pid;
}

/* A budget given only live, by agentgatectl quota set, is charged too. */
/*
 * How often the daemon has run its quota_charge program: the kernel's
 * run count, kept while stats_fd (BPF_ENABLE_STATS) is open; -1 on error.
 */
static long long charges_run(const struct mcp_env *e)
{
	struct bpf_prog_info info = { 0 };
	__u32 len = sizeof(info);
	char path[PATH_MAX];
	int fd;

	if (ag_pin_path(&e->d.in, "daemon_quota_charge", path, sizeof(path)) ||
	    (fd = bpf_obj_get(path)) < 0)
		return -1;
	if (bpf_obj_get_info_by_fd(fd, &info, &len))
		info.run_cnt = (__u64)-1;
	close(fd);
	return (long long)info.run_cnt;
}

TEST(budget_set_live)
{
	struct exchange *x = shared_alloc(sizeof(*x));
	struct ag_quota_limits lim = { .calls_per_minute = 2 };
	struct mcp_env e = { 0 };
	char *out = NULL, cg[PATH_MAX];
	struct ag_kern k;
	struct ag_err err;
	long long runs;
	uint64_t id;
	/* Counts runs while open; the sysctl is left as it is. */
	int stats_fd = bpf_enable_stats(BPF_STATS_RUN_TIME);

	if (!ASSERT_OK(env_start(&e, "budgetlive", REPLY_JSON,
				 "{\"name\": \"a\", \"tools\": [\"t/*\"]}"),
		       "environment"))
		goto out;
	ASSERT_GE(stats_fd, 0, "BPF_ENABLE_STATS");
	runs = charges_run(&e);
	ASSERT_GE(runs, 0, "quota_charge's run count");
	calls(&e, x, 1, 3, "{}");
	ASSERT_NULL(strstr(x->response, "isError"), "no budget: every call served");
	ASSERT_EQ(charges_run(&e), runs, "no budget: no quota_charge run (no bpf() system call)");
	ASSERT_EQ(ctl(&out, &e, "quota set a --calls-per-minute 2"), 0, "quota set");
	calls(&e, x, 10, 3, "{}");
	ASSERT_STRHAS(x->response, "\"id\":11,\"result\":{\"content\"", "2nd call served");
	ASSERT_STRHAS(x->response, "calls_per_minute (2)", "3rd refused by the live budget");
	ASSERT_EQ(charges_run(&e), runs + 3, "a budget set live: charged from the next call");
	free(out);
	out = NULL;
	/* Limits all 0 remove the entry: the agent is no longer charged. */
	ASSERT_EQ(ctl(&out, &e, "quota set a --calls-per-minute 0"), 0, "quota unset");
	runs = charges_run(&e);
	calls(&e, x, 20, 3, "{}");
	ASSERT_NULL(strstr(x->response, "isError"), "budget removed: every call served");
	ASSERT_EQ(charges_run(&e), runs, "budget removed: no quota_charge run");
	/*
	 * A quota entry written straight into the map, as bpftool would,
	 * with nobody telling the daemon: charged within a second all the
	 * same, never left uncharged until a restart.
	 */
	snprintf(cg, sizeof(cg), "%s/a", e.d.in.cg_agents);
	if (ASSERT_OK(ag_cgroup_id(cg, &id, &err), err.msg) &&
	    ASSERT_OK(ag_kern_open(&k, &e.d.in, &err), err.msg)) {
		ASSERT_OK(ag_quota_set(&k, id, &lim, &err), err.msg);
		ag_kern_close(&k);
	}
	usleep(1100000);
	calls(&e, x, 30, 3, "{}");
	ASSERT_STRHAS(x->response, "\"id\":31,\"result\":{\"content\"", "2nd call served");
	ASSERT_STRHAS(x->response, "calls_per_minute (2)",
		      "3rd refused by the budget nobody announced");
out:
	if (stats_fd >= 0)
		close(stats_fd);
	free(out);
	env_stop(&e);
}

TEST(budget_loop)
{
	struct exchange *x = shared_alloc(sizeof(*x));
	struct mcp_env e = { 0 };
	char *out = NULL;
	long long held;
	int before;
	pid_t pid;

	if (!ASSERT_OK(env_start(&e, "bloop", REPLY_JSON,
				 "{\"name\": \"a\", \"tools\": [\"t/*\"], \"loop_protection\": "
				 "{\"max_identical\": 2, \"window_s\": 60, \"action\": \"deny\"}}"),
		       "environment"))
		goto out;
	if (test__start_subtest("third_identical_refused")) {
		before = calls_seen(&e.tool);
		calls(&e, x, 1, 1, "{\"x\":1,\"y\":[1,2]}");
		ASSERT_STRHAS(x->response, "\"id\":1,\"result\"", "1st served");
		/* The same arguments in another order and spelling. */
		calls(&e, x, 2, 1, "{\"y\":[1,2.0],\"x\":1}");
		ASSERT_STRHAS(x->response, "\"id\":2,\"result\"", "2nd served");
		calls(&e, x, 3, 1, "{\"x\":1,\"y\":[1,2]}");
		ASSERT_STRHAS(x->response, "\"isError\":true", "3rd: an isError result");
		ASSERT_STRHAS(x->response, "loop protection", "says why");
		ASSERT_EQ(calls_seen(&e.tool), before + 2, "the 3rd never reached the tool server");
	}
	if (test__start_subtest("different_arguments_independent")) {
		before = calls_seen(&e.tool);
		calls(&e, x, 4, 1, "{\"x\":2,\"y\":[1,2]}");
		ASSERT_STRHAS(x->response, "\"id\":4,\"result\"", "served");
		ASSERT_NULL(strstr(x->response, "isError"), "not refused");
		ASSERT_EQ(calls_seen(&e.tool), before + 1, "reached the tool server");
	}
	env_stop(&e);

	if (!ASSERT_OK(
		env_start_with(&e, "bloopesc", REPLY_JSON,
			       "{\"name\": \"a\", \"tools\": [\"t/*\"], \"loop_protection\": "
			       "{\"max_identical\": 2, \"window_s\": 60, \"action\": "
			       "\"escalate\"}}",
			       "\"approval_timeout_ms\": 5000"),
		"environment (escalate)"))
		goto out;
	if (test__start_subtest("escalate_holds")) {
		calls(&e, x, 1, 1, "{\"x\":1}");
		calls(&e, x, 2, 1, "{\"x\":1}");
		before = calls_seen(&e.tool);
		pid = call_held(&e, x, 3);
		held = held_approval_id(&e.d.in);
		ASSERT_GT(held, 0, "the 3rd identical call is held for approval");
		ASSERT_EQ(calls_seen(&e.tool), before, "nothing reached the tool while held");
		ASSERT_EQ(ctl(&out, &e, "approvals --json"), 0, "approvals");
		ASSERT_STRHAS(out, "loop protection", "the reason shown to the approver");
		free(out);
		out = NULL;
		if (held > 0) {
			char args[64];

			snprintf(args, sizeof(args), "deny %lld --by test", held);
			ctl(&out, &e, args);
			free(out);
			out = NULL;
		}
		waitpid(pid, NULL, 0);
		ASSERT_EQ(calls_seen(&e.tool), before, "denied: never reached the tool server");
	}
	env_stop(&e);
out:
	munmap(x, sizeof(*x));
}
