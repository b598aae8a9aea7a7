// SPDX-License-Identifier: GPL-2.0
/*
 * Per-agent quotas in the kernel: the connect bucket (burst, refill, live
 * changes), call budgets as the daemon records them, and what operators
 * see (agentgatectl quota, bpftool).  Checked by counts: how many connects
 * of a burst went through, never how fast.
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <bpf/bpf.h>

#include "test.h"
#include "testlib.h"

struct burst {
	uint16_t port;
	int attempts, ok, edquot, other;
};

static int agent_burst(void *arg)
{
	struct burst *b = arg;
	struct sockaddr_storage ss;
	socklen_t len = make_sockaddr("127.0.0.1", b->port, &ss);

	b->ok = b->edquot = b->other = 0;
	for (int i = 0; i < b->attempts; i++) {
		int fd = socket(AF_INET, SOCK_STREAM, 0);

		if (!connect(fd, (struct sockaddr *)&ss, len))
			b->ok++;
		else if (errno == EDQUOT)
			b->edquot++;
		else
			b->other++;
		close(fd);
	}
	return 0;
}

static void connects(struct tinst *t, struct burst *b, int n)
{
	b->attempts = n;
	tinst_agent(t, NOBODY_UID, agent_burst, b);
	ASSERT_EQ(b->other, 0, "connects failing for another reason");
	/* Drain the stand-in listener so its backlog never fills. */
	while (has_pending(t->lfd4))
		close(accept_timeout(t->lfd4, 0));
}

static int ctl(char **out, const struct tinst *t, const char *args)
{
	return run_capture(out, "%s/agentgatectl --instance %s quota %s 2>&1", testlib_build_dir(),
			   t->in.name, args);
}

static void ctl_ok(const struct tinst *t, const char *args)
{
	char *out = NULL;

	if (!ASSERT_EQ(ctl(&out, t, args), 0, args))
		fprintf(stderr, "  %s", out ? out : "");
	free(out);
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000 };

	nanosleep(&ts, NULL);
}

TEST(quota)
{
	struct burst *b = shared_alloc(sizeof(*b));
	struct ag_stats before = { 0 }, after = { 0 };
	struct ag_quota q;
	struct tinst t;
	char *out = NULL;

	if (!ASSERT_OK(tinst_create(&t, "quota", 0, NULL, 0), "instance"))
		return;
	b->port = 9; /* redirected to the stand-in daemon, whatever the port */

	if (test__start_subtest("no_quota_no_limit")) {
		connects(&t, b, 50);
		ASSERT_EQ(b->ok, 50, "all connects");
	}
	if (test__start_subtest("burst_exact")) {
		ctl_ok(&t, "set a --connect-rate 0 --connect-burst 3");
		bpf_map_lookup_elem(t.k.map_fd[AG_MAP_STATS], &t.agent_cg, &before);
		connects(&t, b, 10);
		ASSERT_EQ(b->ok, 3, "the burst went through");
		ASSERT_EQ(b->edquot, 7, "the rest refused with EDQUOT");
		bpf_map_lookup_elem(t.k.map_fd[AG_MAP_STATS], &t.agent_cg, &after);
		ASSERT_EQ(after.quota_denied - before.quota_denied, 7, "stats quota_denied");
		ASSERT_OK(ag_quota_get(&t.k, t.agent_cg, &q), "quota entry");
		ASSERT_EQ(q.connect_refused, 7, "quota connect_refused");
	}
	if (test__start_subtest("reset_refills")) {
		ctl_ok(&t, "reset a");
		ASSERT_OK(ag_quota_get(&t.k, t.agent_cg, &q), "quota entry");
		ASSERT_EQ(q.connect_refused, 0, "refusals zeroed");
		connects(&t, b, 5);
		ASSERT_EQ(b->ok, 3, "a full bucket again");
	}
	if (test__start_subtest("refill_at_rate")) {
		/* 5 per second, bucket of 1: spent at once, one more after 300 ms. */
		ctl_ok(&t, "set a --connect-rate 5 --connect-burst 1");
		ctl_ok(&t, "reset a");
		connects(&t, b, 2);
		ASSERT_EQ(b->ok, 1, "burst of one");
		sleep_ms(300);
		connects(&t, b, 2);
		ASSERT_EQ(b->ok, 1, "exactly one token refilled (capped at the burst)");
	}
	if (test__start_subtest("set_takes_effect_live")) {
		ctl_ok(&t, "set a --connect-rate 0 --connect-burst 100");
		ctl_ok(&t, "reset a");
		connects(&t, b, 2);
		ASSERT_EQ(b->ok, 2, "room in a bucket of 100");
		/* Lowering the burst caps the tokens for the very next connect. */
		ctl_ok(&t, "set a --connect-burst 1");
		connects(&t, b, 3);
		ASSERT_EQ(b->ok, 1, "capped at the new burst");
	}
	if (test__start_subtest("call_budget")) {
		ctl_ok(&t, "set a --connect-rate 0 --connect-burst 0 --calls-per-minute 2");
		/* What the daemon does per tool call: count in the window. */
		ASSERT_OK(ag_quota_get(&t.k, t.agent_cg, &q), "quota entry");
		q.calls_minute = 2;
		q.minute_start_ns = ag_now_ns();
		ASSERT_OK(
		    bpf_map_update_elem(t.k.map_fd[AG_MAP_QUOTA], &t.agent_cg, &q, BPF_F_LOCK),
		    "record two calls");
		connects(&t, b, 1);
		ASSERT_EQ(b->edquot, 1, "spent budget refuses new connections");
		ASSERT_OK(ag_quota_get(&t.k, t.agent_cg, &q), "quota entry");
		ASSERT_EQ(q.calls_refused, 1, "calls_refused");
		/* The minute is over: no longer spent, even before a reset. */
		q.minute_start_ns = ag_now_ns() - AG_MINUTE_NS - 1;
		bpf_map_update_elem(t.k.map_fd[AG_MAP_QUOTA], &t.agent_cg, &q, BPF_F_LOCK);
		connects(&t, b, 1);
		ASSERT_EQ(b->ok, 1, "a new window");
	}
	if (test__start_subtest("visible")) {
		ASSERT_EQ(ctl(&out, &t, "show a"), 0, "quota show");
		ASSERT_TRUE(out && strstr(out, "a ") && strstr(out, "0/2"), "limits and usage");
		free(out);
		ASSERT_EQ(ctl(&out, &t, "show --json"), 0, "quota show --json");
		ASSERT_TRUE(out && strstr(out, "\"calls_per_minute\": 2"), "JSON limits");
		free(out);
		ASSERT_EQ(run_capture(&out, "bpftool map dump pinned %s/quota", t.in.pin_dir), 0,
			  "bpftool");
		ASSERT_TRUE(out && strstr(out, "\"calls_per_minute\": 2"), "bpftool: named limit");
		ASSERT_TRUE(out && strstr(out, "\"connect_refused\": "), "bpftool: named usage");
		free(out);
	}
	if (test__start_subtest("remove")) {
		struct ag_agent a;

		ctl_ok(&t, "set a --calls-per-minute 0");
		ASSERT_EQ(ag_quota_get(&t.k, t.agent_cg, &q), -ENOENT, "entry removed");
		ASSERT_OK(ag_agent_lookup(&t.k, t.agent_cg, &a), "agent");
		ASSERT_FALSE(a.flags & AG_AGENT_F_QUOTA, "hooks skip the lookup");
		connects(&t, b, 20);
		ASSERT_EQ(b->ok, 20, "unlimited again");
	}
	if (test__start_subtest("errors")) {
		ASSERT_EQ(ctl(&out, &t, "set a --connect-rate 5 --connect-burst 0"), 1,
			  "rate without burst");
		ASSERT_TRUE(out && strstr(out, "burst"), "says why");
		free(out);
		ASSERT_EQ(ctl(&out, &t, "set a --connect-rate -1"), 1, "negative");
		free(out);
		ASSERT_EQ(ctl(&out, &t, "set nosuchagent --connect-burst 1"), 1, "unknown agent");
		ASSERT_TRUE(out && strstr(out, "not registered"), "says why");
		free(out);
		ASSERT_EQ(ctl(&out, &t, "frob"), 2, "usage");
		free(out);
	}
	munmap(b, sizeof(*b));
	tinst_destroy(&t);
}
