// SPDX-License-Identifier: GPL-2.0
/*
 * Live upgrade (agentgated --upgrade, agentgatectl upgrade): a running
 * daemon is replaced while agents connect in a loop and one MCP stream is
 * in flight.  Old and new are the same build here; the new one shows as a
 * new pid and new program ids on the same links.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <netinet/in.h>
#include <bpf/bpf.h>

#include "cgroup.h"
#include "kern.h"
#include "mcplib.h"
#include "test.h"
#include "testlib.h"

#define LOOP_MAX 5000 /* agent connects, at most */
#define LOOP_MAX_MS 60000

/* Shared between the test, the destination thread and the agent loop. */
struct figures {
	volatile int stop;
	volatile int attempted, answered, refused, bad, last_errno;
	volatile int relayed, direct; /* at the destination */
	volatile int max_ms;	      /* the slowest exchange */
};

struct dest {
	int lfd;
	uint16_t port;
	pthread_t th;
	struct figures *f;
};

/* The uid owning the peer's socket of an accepted connection (/proc/net/tcp). */
static long peer_uid(uint16_t peer_port, uint16_t local_port)
{
	char line[512];
	FILE *f = fopen("/proc/net/tcp", "r");
	long uid = -1;

	while (f && uid < 0 && fgets(line, sizeof(line), f)) {
		unsigned int lp, rp;
		long u;

		if (sscanf(line, " %*d: %*8[0-9A-F]:%x %*8[0-9A-F]:%x %*x %*s %*s %*s %ld", &lp,
			   &rp, &u) == 3 &&
		    lp == peer_port && rp == local_port)
			uid = u;
	}
	if (f)
		fclose(f);
	return uid;
}

/* Answers every request; counts who connected: the daemon (root) or an agent. */
static void *dest_run(void *arg)
{
	struct dest *d = arg;

	while (!d->f->stop) {
		struct sockaddr_in peer;
		socklen_t len = sizeof(peer);
		char buf[1024];
		int c = accept_timeout(d->lfd, 100);

		if (c < 0)
			continue;
		if (!getpeername(c, (struct sockaddr *)&peer, &len) &&
		    peer_uid(ntohs(peer.sin_port), d->port) == 0)
			d->f->relayed++;
		else
			d->f->direct++;
		if (recv(c, buf, sizeof(buf), 0) > 0)
			send_all(
			    c,
			    "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
			    62);
		close(c);
	}
	return NULL;
}

struct loop_arg {
	struct figures *f;
	uint16_t port;
};

/* An agent connecting in a loop, each connect a new connection. */
static int agent_loop(void *arg)
{
	struct loop_arg *a = arg;
	uint64_t end = ag_now_ns() + LOOP_MAX_MS * 1000000ull;
	struct exchange x;

	for (int i = 0; i < LOOP_MAX && !a->f->stop && ag_now_ns() < end; i++) {
		memset(&x, 0, sizeof(x));
		x.port = a->port;
		snprintf(x.request, sizeof(x.request),
			 "GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
		uint64_t t = ag_now_ns();
		int ms;

		a->f->attempted++;
		agent_exchange(&x);
		ms = (int)((ag_now_ns() - t) / 1000000);
		if (ms > a->f->max_ms)
			a->f->max_ms = ms;
		if (strstr(x.response, "200 OK") && strstr(x.response, "ok")) {
			a->f->answered++;
		} else {
			if (x.len == 0)
				a->f->refused++;
			else
				a->f->bad++;
			a->f->last_errno = x.err;
		}
	}
	return 0;
}

static void links_get(const struct ag_instance *in, uint32_t link[], uint32_t prog[])
{
	struct ag_link_status st[AG_PROG_COUNT];

	ag_kern_links(in, st);
	for (int i = 0; i < AG_PROG_COUNT; i++) {
		link[i] = st[i].pinned ? st[i].link_id : 0;
		prog[i] = st[i].pinned ? st[i].prog_id : 0;
	}
}

static int calls_day(const struct mcp_env *e, uint64_t *n)
{
	struct ag_kern k;
	struct ag_quota q;
	struct ag_err err;
	uint64_t id;
	int ret = ag_kern_open(&k, &e->d.in, &err);

	if (ret)
		return ret;
	ret = ag_cgroup_id(e->agent_cg, &id, &err);
	if (!ret)
		ret = ag_quota_get(&k, id, &q);
	ag_kern_close(&k);
	*n = q.calls_day;
	return ret;
}

static const char agent_json[] =
    "{\"name\": \"a\", \"tools\": [\"t/echo\"], \"passthrough\": [\"localhost\"], "
    "\"quota\": {\"calls_per_day\": 1000}}";

/* agentgatectl --instance NAME upgrade --daemon <build>/agentgated, output to path. */
static pid_t upgrade_start(const struct ag_instance *in, const char *path)
{
	char ctl[PATH_MAX + 32], bin[PATH_MAX + 32];
	pid_t pid = fork();

	if (pid == 0) {
		FILE *o = fopen(path, "w");

		if (o) {
			dup2(fileno(o), STDOUT_FILENO);
			dup2(fileno(o), STDERR_FILENO);
		}
		snprintf(ctl, sizeof(ctl), "%s/agentgatectl", testlib_build_dir());
		snprintf(bin, sizeof(bin), "%s/agentgated", testlib_build_dir());
		execl(ctl, ctl, "--instance", in->name, "upgrade", "--daemon", bin, (char *)NULL);
		_exit(127);
	}
	return pid;
}

/* waitpid bounded by ms: the exit status, or -1 (then killed). */
static int wait_ms(pid_t pid, int ms)
{
	int status;

	for (int i = 0; i < ms / 10; i++) {
		if (waitpid(pid, &status, WNOHANG) == pid)
			return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
		usleep(10000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	return -1;
}

TEST(upgrade_live)
{
	struct exchange *x = shared_alloc(sizeof(*x));
	struct figures *f = shared_alloc(sizeof(*f));
	struct loop_arg la = { .f = f };
	struct dest dst = { .f = f };
	uint32_t link0[AG_PROG_COUNT], prog0[AG_PROG_COUNT], link1[AG_PROG_COUNT],
	    prog1[AG_PROG_COUNT];
	struct mcp_env e = { 0 };
	pid_t stream = -1, loop = -1, up, old_pid, new_pid;
	int at_switch, after_switch, answered_switch, status, same = 0, changed = 0, supported = 0,
							      handoff_ms = -1;
	uint64_t before = 0, after = 0, t0, switch_ms;
	char outpath[PATH_MAX], more[128], *out = NULL;
	bool dest_started = false;
	uint16_t mport;

	dst.lfd = tcp_listen("127.0.0.1", 0, &dst.port);
	la.port = dst.port;
	/* The metrics listener too: a port the new daemon binds once the old is gone. */
	mport = free_port();
	snprintf(more, sizeof(more), "\"metrics\": {\"listen\": \"127.0.0.1:%u\"}", mport);
	if (!ASSERT_OK(env_start_with(&e, "upgrade", REPLY_SSE_SLOW, agent_json, more),
		       "environment"))
		goto out;
	dest_started = !pthread_create(&dst.th, NULL, dest_run, &dst);
	old_pid = e.d.pid;
	links_get(&e.d.in, link0, prog0);

	/* The long MCP stream: its result waits until the test lets it go. */
	post(x, e.orig_port, "",
	     "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":"
	     "\"echo\",\"_meta\":{\"progressToken\":1}}}");
	stream = fork();
	if (stream == 0)
		_exit(run_in_cgroup(e.agent_cg, NOBODY_UID, agent_exchange, x));
	for (int i = 0; i < 500 && !strstr(x->response, "notifications/progress"); i++)
		usleep(10000);
	if (!ASSERT_STRHAS(x->response, "notifications/progress", "the stream is under way"))
		goto out;
	ASSERT_OK(calls_day(&e, &before), "quota before");
	ASSERT_GE(before, 1, "the stream's call was charged");

	loop = fork();
	if (loop == 0)
		_exit(run_in_cgroup(e.agent_cg, NOBODY_UID, agent_loop, &la));
	for (int i = 0; i < 500 && f->answered < 20; i++)
		usleep(10000);
	if (!ASSERT_GE(f->answered, 20, "agents connect through the old daemon"))
		goto out;

	/* The switch: the old daemon drains while the stream is held open. */
	at_switch = f->attempted;
	answered_switch = f->answered;
	t0 = ag_now_ns();
	snprintf(outpath, sizeof(outpath), "%s/upgrade.out", e.d.dir);
	up = upgrade_start(&e.d.in, outpath);
	ASSERT_TRUE(log_has(&e.d, 15000, "upgrade", "handing over", NULL), "old daemon drains");
	ASSERT_NULL(strstr(x->response, "served"), "the stream still open at the handoff");
	usleep(200 * 1000); /* agents keep connecting while it drains */
	*e.tool.progress_seen = 1;
	status = wait_ms(up, 60000);
	switch_ms = (ag_now_ns() - t0) / 1000000;
	after_switch = f->attempted;
	if (!ASSERT_EQ(status, 0, "agentgatectl upgrade")) {
		ag_read_file(outpath, 4096, &out, NULL, NULL);
		fprintf(stderr, "  %s", out ? out : "");
	}
	/* The old daemon has exited; the new one is detached. */
	ASSERT_EQ(wait_ms(old_pid, 5000), 0, "old daemon exited cleanly");
	new_pid = ag_instance_daemon_pid(&e.d.in);
	ASSERT_GT(new_pid, 0, "a daemon serves");
	ASSERT_NEQ(new_pid, old_pid, "a new daemon");
	e.d.pid = new_pid;
	e.d.flags |= TDAEMON_DETACHED;
	if (snprintf(e.d.log, sizeof(e.d.log), "%s/agentgated.log", e.d.state) >=
	    (int)sizeof(e.d.log))
		goto out;

	for (int i = 0; i < 500 && f->answered < after_switch + 20; i++)
		usleep(10000);
	f->stop = 1;
	ASSERT_EQ(wait_ms(loop, 20000), 0, "agent loop");
	loop = -1;
	ASSERT_EQ(wait_ms(stream, 10000), 0, "stream agent");
	stream = -1;

	ASSERT_STRHAS(x->response, "\"served\"", "the stream completed across the upgrade");
	ASSERT_EQ(f->direct, 0, "connections that reached the destination directly");
	ASSERT_EQ(f->refused, 0, "connections refused");
	ASSERT_EQ(f->bad, 0, "connections without their answer");
	ASSERT_GT(f->answered, after_switch, "agents connect through the new daemon");
	ASSERT_EQ(f->relayed, f->answered, "every answer came through the daemon");
	ASSERT_OK(calls_day(&e, &after), "quota after");
	ASSERT_EQ(after, before, "the quota counter survived");
	ASSERT_EQ(run_capture(&out, "%s/agentgatectl --instance %s quota show a 2>&1",
			      testlib_build_dir(), e.d.in.name),
		  0, "quota show");
	ASSERT_STRHAS(out, "1/1000", "quota show: the day's call counted before, still there");
	links_get(&e.d.in, link1, prog1);
	for (int i = 0; i < AG_PROG_COUNT; i++) {
		if (!link0[i])
			continue;
		supported++;
		same += link1[i] == link0[i];
		changed += prog1[i] && prog1[i] != prog0[i];
	}
	ASSERT_GT(supported, 0, "links pinned");
	ASSERT_EQ(same, supported, "the same links");
	ASSERT_EQ(changed, supported, "new programs on every link");
	ASSERT_TRUE(log_has(&e.d, 1000, "upgrade", "from_pid=", NULL), "new daemon took over");
	ASSERT_TRUE(log_has(&e.d, 1000, "start", "kernel=upgraded", NULL), "and says how");
	free(out);
	out = NULL;
	ASSERT_EQ(run_capture(&out, "curl -sS http://127.0.0.1:%u/metrics 2>&1", mport), 0,
		  "the new daemon's metrics endpoint");
	free(out);
	out = NULL;
	/* How long nobody accepted: from the handoff to the new daemon's accepts. */
	if (!ag_read_file(e.d.log, 1 << 20, &out, NULL, NULL) && strstr(out, "handoff_ms="))
		handoff_ms = atoi(strstr(out, "handoff_ms=") + 11);
	fprintf(stderr,
		"  upgrade: %d connections attempted during the switch (%d answered before it), "
		"%d attempted in all, %d answered, %d refused, %d direct; switch %llu ms "
		"(handoff %d ms, slowest exchange %d ms); quota calls_day %llu -> %llu; "
		"pid %d -> %d\n",
		after_switch - at_switch, answered_switch, f->attempted, f->answered, f->refused,
		f->direct, (unsigned long long)switch_ms, handoff_ms, f->max_ms,
		(unsigned long long)before, (unsigned long long)after, old_pid, new_pid);
out:
	f->stop = 1;
	*e.tool.progress_seen = 1;
	if (loop > 0)
		wait_ms(loop, 20000);
	if (stream > 0)
		wait_ms(stream, 10000);
	if (dest_started)
		pthread_join(dst.th, NULL);
	close(dst.lfd);
	env_stop(&e);
	free(out);
}

/*
 * agentgatectl upgrade, expected to be refused: its output (caller frees),
 * after checking that the running daemon, its programs and its service are
 * as they were.
 */
static char *upgrade_refused(struct mcp_env *e)
{
	uint32_t link0[AG_PROG_COUNT], prog0[AG_PROG_COUNT], link1[AG_PROG_COUNT],
	    prog1[AG_PROG_COUNT];
	struct exchange *x = shared_alloc(sizeof(*x));
	char outpath[PATH_MAX], *out = NULL;

	links_get(&e->d.in, link0, prog0);
	snprintf(outpath, sizeof(outpath), "%s/upgrade.out", e->d.dir);
	ASSERT_EQ(wait_ms(upgrade_start(&e->d.in, outpath), 30000), 1, "upgrade refused");
	ag_read_file(outpath, 4096, &out, NULL, NULL);
	ASSERT_STRHAS(out, "still serves", "the old daemon is said to serve on");
	ASSERT_EQ(ag_instance_daemon_pid(&e->d.in), e->d.pid, "the old daemon is the one running");
	links_get(&e->d.in, link1, prog1);
	ASSERT_EQ(memcmp(prog0, prog1, sizeof(prog0)), 0, "programs untouched");
	/* And it still governs: an MCP call goes through it. */
	post(x, e->orig_port, "",
	     "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":"
	     "\"echo\"}}");
	run_agent(e, x);
	ASSERT_STRHAS(x->response, "\"served\"", "the old daemon serves on");
	return out;
}

/*
 * An instance pinned by a newer build: the older binary's upgrade is
 * refused before anything changes, and the running daemon serves on.
 */
TEST(upgrade_downgrade_refused)
{
	struct mcp_env e = { 0 };
	char path[PATH_MAX], *out = NULL;
	FILE *v;

	if (!ASSERT_OK(env_start(&e, "downgrade", REPLY_JSON, agent_json), "environment"))
		goto out;
	snprintf(path, sizeof(path), "%s/kern.version", e.d.in.run_dir);
	ASSERT_OK(ag_read_file(path, 64, &out, NULL, NULL), "the build's version is recorded");
	ASSERT_STRHAS(out, ag_version(), "as this build's");
	free(out);
	v = fopen(path, "w");
	if (!ASSERT_TRUE(v != NULL, "version file"))
		goto out;
	fputs("99.0.0\n", v);
	fclose(v);
	out = upgrade_refused(&e);
	ASSERT_STRHAS(out, "runs agentgate 99.0.0, newer than this build", "says why");
	ASSERT_STRHAS(out, "downgrade refused", "names it a downgrade");
out:
	free(out);
	env_stop(&e);
}

/*
 * A map whose layout differs between the pinned instance and the new build
 * is not migrated: the upgrade is refused before any program changes.
 */
TEST(upgrade_layout_refused)
{
	struct mcp_env e = { 0 };
	char path[PATH_MAX], *out = NULL;
	int fd = -1;

	if (!ASSERT_OK(env_start(&e, "layout", REPLY_JSON, agent_json), "environment"))
		goto out;
	/* The running programs keep their map; only the pin names another. */
	ag_pin_path(&e.d.in, ag_map_names[AG_MAP_STATS], path, sizeof(path));
	ASSERT_OK(unlink(path), "unpin stats");
	fd = bpf_map_create(BPF_MAP_TYPE_ARRAY, "stats", sizeof(__u32), 8, 4, NULL);
	if (!ASSERT_GE(fd, 0, "a stats map of another layout") ||
	    !ASSERT_OK(bpf_obj_pin(fd, path), "pinned in its place"))
		goto out;
	out = upgrade_refused(&e);
	ASSERT_STRHAS(out, "a map's layout changed in this build", "says why");
	ASSERT_STRHAS(out, "map stats differs", "names the map");
out:
	if (fd >= 0)
		close(fd);
	free(out);
	env_stop(&e);
}
