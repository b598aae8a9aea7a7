// SPDX-License-Identifier: GPL-2.0
/*
 * What each audit durability mode promises (docs/audit.md, Durability),
 * tested against a real agentgated whose audit disk is made slow by an
 * LD_PRELOAD shim (selftests/shim/audit_slow.c): every mode writes a
 * call's decision record before the call is forwarded, so a kill -9 loses
 * none of them; strict passes no result on before its record is durable;
 * written makes records durable within sync_interval_ms.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "audit.h"
#include "config.h"
#include "mcplib.h"
#include "test.h"

static const char agent_json[] = "{\"name\": \"a\", \"tools\": [\"t/echo\"]}";

#define MAX_CALLS 400

struct call_stream {
	uint16_t port;
	int max;			/* calls to make, at most MAX_CALLS */
	volatile int done;		/* calls that got their whole answer */
	int err;			/* why the stream stopped */
	uint64_t got_ns[MAX_CALLS + 1]; /* CLOCK_MONOTONIC: the answer's first byte */
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* One governed call on a connection of its own; 0 if it was served. */
static int call_once(struct call_stream *cs, int id)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(cs->port) };
	char body[256], req[512], resp[4096];
	size_t len = 0;
	int fd, n;

	snprintf(body, sizeof(body),
		 "{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"tools/call\",\"params\":"
		 "{\"name\":\"echo\",\"arguments\":{\"n\":%d}}}",
		 id, id);
	n = snprintf(
	    req, sizeof(req),
	    "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:%u\r\nContent-Type: application/json\r\n"
	    "Accept: application/json, text/event-stream\r\nConnection: close\r\n"
	    "Content-Length: %zu\r\n\r\n%s",
	    cs->port, strlen(body), body);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) || !send_all(fd, req, (size_t)n)) {
		n = -errno;
		close(fd);
		return n ? n : -EIO;
	}
	while (len < sizeof(resp) - 1 &&
	       (n = (int)recv(fd, resp + len, sizeof(resp) - 1 - len, 0)) > 0) {
		if (!len)
			cs->got_ns[id] = now_ns();
		len += (size_t)n;
	}
	close(fd);
	resp[len] = '\0';
	return strstr(resp, "\"served\"") ? 0 : -EPROTO;
}

/* Governed calls one after the other until one fails or max are done. */
static int agent_call_stream(void *arg)
{
	struct call_stream *cs = arg;

	for (int i = 1; i <= cs->max; i++) {
		if ((cs->err = call_once(cs, i)))
			break;
		cs->done = i;
	}
	return 0;
}

/* The shim (make test-bins builds it beside the daemon). */
static const char *shim_path(void)
{
	static char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/audit_slow.so", testlib_build_dir());
	if (access(path, R_OK)) {
		fprintf(stderr, "  %s: %s (make test-bins builds it)\n", path, strerror(errno));
		return NULL;
	}
	return path;
}

/*
 * A daemon with durability mode, its audit pwrite and fdatasync slowed by
 * write_us and sync_us; the shim logs each sync of the log to sync_log.
 */
static int start_slow(struct mcp_env *e, const char *suffix, const char *mode, const char *more,
		      int write_us, int sync_us, char *sync_log, size_t cap)
{
	const char *shim = shim_path();
	char conf[512], n[32];
	int ret;

	if (!shim)
		return -ENOENT;
	snprintf(conf, sizeof(conf), "\"audit\": {\"durability\": \"%s\"%s}", mode, more);
	snprintf(sync_log, cap, "/tmp/agt%d-%s.syncs", (int)getpid(), suffix);
	unlink(sync_log);
	setenv("LD_PRELOAD", shim, 1);
	setenv("AG_SHIM_LOG", sync_log, 1);
	snprintf(n, sizeof(n), "%d", write_us);
	setenv("AG_SHIM_WRITE_US", n, 1);
	snprintf(n, sizeof(n), "%d", sync_us);
	setenv("AG_SHIM_SYNC_US", n, 1);
	ret = env_start_with(e, suffix, REPLY_JSON, agent_json, conf);
	unsetenv("LD_PRELOAD");
	unsetenv("AG_SHIM_LOG");
	unsetenv("AG_SHIM_WRITE_US");
	unsetenv("AG_SHIM_SYNC_US");
	return ret;
}

/* Where the allowed decision record of request id ends in log, or -1. */
static long decision_end(const char *log, int id)
{
	char needle[96];
	const char *p, *nl;

	snprintf(needle, sizeof(needle), "\"decision\":\"allow\",\"hidden\":false,\"id\":%d,", id);
	p = strstr(log, needle);
	nl = p ? strchr(p, '\n') : NULL;
	return nl ? nl + 1 - log : -1;
}

/* When the first sync covering the log's first end bytes returned (UINT64_MAX: none). */
static uint64_t durable_at(const char *syncs, long end)
{
	uint64_t best = UINT64_MAX;
	long long size, ns;
	int used;

	for (const char *p = syncs; p && sscanf(p, "%lld %lld\n%n", &size, &ns, &used) == 2;
	     p += used)
		if (size >= end && (uint64_t)ns < best)
			best = (uint64_t)ns;
	return best;
}

/*
 * The served calls whose decision record became durable more than
 * slack_ns after the agent got the result; *unknown: those never synced.
 */
static int late_syncs(const char *log, const char *syncs, const struct call_stream *cs,
		      uint64_t slack_ns, int *unknown)
{
	int late = 0;

	*unknown = 0;
	for (int id = 1; id <= cs->done && log && syncs; id++) {
		long end = decision_end(log, id);
		uint64_t at = end < 0 ? UINT64_MAX : durable_at(syncs, end);

		if (at == UINT64_MAX)
			++*unknown;
		else if (at > cs->got_ns[id] + slack_ns && late++ < 3)
			fprintf(stderr,
				"  call %d: durable %.1f ms after the agent got its result\n", id,
				(double)(at - cs->got_ns[id]) / 1e6);
	}
	return late;
}

/* Starts the agent's call stream in its cgroup; its pid. */
static pid_t stream_start(struct mcp_env *e, struct call_stream *cs, int max)
{
	pid_t pid;

	memset(cs, 0, sizeof(*cs));
	cs->port = e->orig_port;
	cs->max = max;
	pid = fork();
	if (pid == 0)
		_exit(run_in_cgroup(e->agent_cg, NOBODY_UID, agent_call_stream, cs));
	return pid;
}

/*
 * kill -9 of the daemon in the middle of a stream of governed calls, in
 * one mode: after the restart the log verifies, continues its chain, and
 * every call that reached the tool server has its decision record.  The
 * shim makes each write of the log take 3 ms and each sync 20 ms, so a
 * call forwarded before its record is written would be lost.
 */
static void kill_mid_stream(const char *mode)
{
	struct call_stream *cs = shared_alloc(sizeof(*cs));
	char sync_log[PATH_MAX], suffix[32], *out = NULL, *log = NULL;
	struct mcp_env e = { 0 };
	int nids, missing = 0;
	pid_t pid;

	snprintf(suffix, sizeof(suffix), "dk%s", mode);
	if (!ASSERT_OK(start_slow(&e, suffix, mode, "", 3000, 20000, sync_log, sizeof(sync_log)),
		       "environment"))
		goto out;
	pid = stream_start(&e, cs, MAX_CALLS);
	/* Let some calls through, then pull the plug mid-stream. */
	for (int i = 0; i < 1000 && cs->done < 20; i++)
		usleep(10000);
	tdaemon_kill(&e.d, SIGKILL);
	waitpid(pid, NULL, 0);
	ASSERT_GE(cs->done, 20, "calls went through before the kill");
	if (!ASSERT_OK(tdaemon_restart(&e.d), "restart"))
		goto out;
	tdaemon_kill(&e.d, SIGTERM); /* a clean stop signs the end */
	ASSERT_EQ(run_capture(
		      &out, "%s/agentgatectl audit verify --pubkey %s/audit.key %s/audit.log 2>&1",
		      testlib_build_dir(), e.d.state, e.d.state),
		  0, "the log verifies after the crash");
	free(out);
	out = NULL;
	ASSERT_EQ(run_capture(&out, "grep -c '\"kind\":\"daemon_start\"' %s/audit.log", e.d.state),
		  0, "count starts");
	ASSERT_STREQ(out, "2\n", "one chain across both runs");
	ASSERT_EQ(run_capture(&log, "cat %s/audit.log", e.d.state), 0, "read the log");
	pthread_mutex_lock(&e.tool.lock);
	nids = e.tool.nids;
	for (int i = 0; i < nids && log; i++)
		if (decision_end(log, e.tool.ids[i]) < 0 && missing++ < 3)
			fprintf(stderr,
				"  %s: call %d reached the tool without a decision record\n", mode,
				e.tool.ids[i]);
	pthread_mutex_unlock(&e.tool.lock);
	ASSERT_GE(nids, cs->done, "the tool saw every answered call");
	ASSERT_EQ(missing, 0, "every call at the tool has its decision record");
out:
	unlink(sync_log);
	free(out);
	free(log);
	env_stop(&e);
}

TEST(mcp_durability_kill)
{
	static const char *const modes[] = { "written", "strict", "sync", "none" };

	for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++)
		if (test__start_subtest(modes[i]))
			kill_mid_stream(modes[i]);
}

/* Reads the daemon's audit log and the shim's syncs. */
static void read_logs(const struct mcp_env *e, const char *sync_log, char **log, char **syncs)
{
	ASSERT_EQ(run_capture(log, "cat %s/audit.log", e->d.state), 0, "read the log");
	ASSERT_EQ(run_capture(syncs, "cat %s", sync_log), 0, "read the shim's syncs");
}

/*
 * Strict: no agent ever gets a result before its decision record is
 * durable.  Each sync of the log takes 30 ms more (the shim logs when each
 * one returned and what it covered); the tool server answers at once, so
 * a result passed on before its sync came back would reach the agent
 * first.
 */
TEST(mcp_durability_strict)
{
	struct call_stream *cs = shared_alloc(sizeof(*cs));
	char sync_log[PATH_MAX], *log = NULL, *syncs = NULL;
	struct mcp_env e = { 0 };
	int early, unknown;
	pid_t pid;

	if (!ASSERT_OK(
		start_slow(&e, "dstrict", "strict", "", 0, 30000, sync_log, sizeof(sync_log)),
		"environment"))
		goto out;
	pid = stream_start(&e, cs, 15);
	waitpid(pid, NULL, 0);
	ASSERT_EQ(cs->done, 15, "every call was served");
	tdaemon_kill(&e.d, SIGTERM);
	read_logs(&e, sync_log, &log, &syncs);
	early = late_syncs(log, syncs, cs, 0, &unknown);
	ASSERT_EQ(unknown, 0, "every served call's record was synced");
	ASSERT_EQ(early, 0, "no result before its record was durable");
out:
	unlink(sync_log);
	free(log);
	free(syncs);
	env_stop(&e);
}

/*
 * Written, the default: calls do not wait for the disk (15 calls take
 * far less than 15 syncs of 30 ms) and every record is durable within
 * sync_interval_ms (50 here) plus that one slow sync.
 */
TEST(mcp_durability_written)
{
	struct call_stream *cs = shared_alloc(sizeof(*cs));
	char sync_log[PATH_MAX], *log = NULL, *syncs = NULL;
	struct mcp_env e = { 0 };
	int late, unknown;
	uint64_t t0, took;
	pid_t pid;

	if (!ASSERT_OK(start_slow(&e, "dwritten", "written", ", \"sync_interval_ms\": 50", 0, 30000,
				  sync_log, sizeof(sync_log)),
		       "environment"))
		goto out;
	t0 = now_ns();
	pid = stream_start(&e, cs, 15);
	waitpid(pid, NULL, 0);
	took = now_ns() - t0;
	ASSERT_EQ(cs->done, 15, "every call was served");
	ASSERT_LT(took, 15 * 30000000ull, "calls did not wait for a sync each");
	usleep(300000); /* the last records' sync */
	read_logs(&e, sync_log, &log, &syncs);
	/* 50 ms interval + 30 ms sync + scheduling slack on a shared VM. */
	late = late_syncs(log, syncs, cs, 250000000ull, &unknown);
	ASSERT_EQ(unknown, 0, "every record was synced without a stop");
	ASSERT_EQ(late, 0, "each within the interval");
out:
	unlink(sync_log);
	free(log);
	free(syncs);
	env_stop(&e);
}

/*
 * A written-mode daemon whose shim is also given file (a path of this
 * test's, removed first) in the variable var.
 */
static int start_shim_file(struct mcp_env *e, const char *suffix, const char *var, int write_us,
			   char *file, size_t cap, char *sync_log, size_t sync_cap)
{
	int ret;

	snprintf(file, cap, "/tmp/agt%d-%s.%s", (int)getpid(), suffix, var);
	unlink(file);
	setenv(var, file, 1);
	ret = start_slow(e, suffix, "written", "", write_us, 0, sync_log, sync_cap);
	unsetenv(var);
	return ret;
}

/*
 * The decision records of the calls decided in one turn of the daemon's
 * loop go to the log in one write, before any of those calls is
 * forwarded.  Each write of the log takes 20 ms (the shim logs how many
 * decision records each held), so while one is written the other agents'
 * requests arrive and are decided together: one write per decision (what
 * an append that writes at once gives) fails.
 */
TEST(mcp_durability_shared_write)
{
	enum { AGENTS = 8, CALLS = 10 };
	struct call_stream *cs[AGENTS];
	char sync_log[PATH_MAX], write_log[PATH_MAX], *writes = NULL;
	struct mcp_env e = { 0 };
	long k, decisions = 0, with = 0;
	pid_t pid[AGENTS];
	int used;

	if (!ASSERT_OK(start_shim_file(&e, "dshared", "AG_SHIM_WRITE_LOG", 20000, write_log,
				       sizeof(write_log), sync_log, sizeof(sync_log)),
		       "environment"))
		goto out;
	for (int i = 0; i < AGENTS; i++) {
		cs[i] = shared_alloc(sizeof(*cs[i]));
		pid[i] = stream_start(&e, cs[i], CALLS);
	}
	for (int i = 0; i < AGENTS; i++) {
		waitpid(pid[i], NULL, 0);
		ASSERT_EQ(cs[i]->done, CALLS, "every call was served");
	}
	tdaemon_kill(&e.d, SIGTERM);
	ASSERT_EQ(run_capture(&writes, "cat %s", write_log), 0, "read the shim's writes");
	for (const char *p = writes; p && sscanf(p, "%ld\n%n", &k, &used) == 1; p += used) {
		decisions += k;
		with += k > 0;
	}
	ASSERT_EQ(decisions, AGENTS * CALLS, "every decision record was written");
	fprintf(stderr, "  %ld decision records in %ld writes\n", decisions, with);
	ASSERT_GE(decisions, 2 * with, "decided together, written together");
out:
	unlink(sync_log);
	unlink(write_log);
	free(writes);
	env_stop(&e);
}

/*
 * A disk that refuses the log's writes (ENOSPC from the shim while a
 * file exists): no governed call reaches the tool server unrecorded,
 * each is refused, and once the disk takes writes again calls are
 * served, and the log verifies.
 */
TEST(mcp_durability_disk_full)
{
	char sync_log[PATH_MAX], full[PATH_MAX], *out = NULL;
	struct exchange *x = shared_alloc(sizeof(*x));
	struct mcp_env e = { 0 };
	int seen, refused = 0, served = 0;
	long ret;

	if (!ASSERT_OK(start_shim_file(&e, "dfull", "AG_SHIM_FAIL_IF", 0, full, sizeof(full),
				       sync_log, sizeof(sync_log)),
		       "environment"))
		goto out;
	call_tool(&e, x, "echo", 1);
	if (!ASSERT_STRHAS(x->response, "served", "served while the disk takes writes"))
		goto out;
	ret = open(full, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	if (!ASSERT_GE(ret, 0, "the disk fills"))
		goto out;
	close((int)ret);
	seen = tool_nseen(&e.tool);
	for (int id = 2; id < 12; id++) {
		call_tool(&e, x, "echo", id);
		refused += strstr(x->response, "HTTP/1.1 503 ") == x->response &&
			   strstr(x->response, "cannot record this call in its audit log");
		if (strstr(x->response, "served"))
			fprintf(stderr, "  call %d served while the log could not be written\n",
				id);
	}
	ASSERT_EQ(tool_nseen(&e.tool), seen, "no call reached the tool server unrecorded");
	ASSERT_EQ(refused, 10, "each call was refused, naming the audit log");
	unlink(full);
	/* The writer retries every retry_ms (100): calls are served again. */
	for (int i = 0; i < 50 && !served; i++) {
		usleep(100000);
		call_tool(&e, x, "echo", 100 + i);
		served = strstr(x->response, "served") != NULL;
	}
	ASSERT_TRUE(served, "served again once the disk takes writes");
	tdaemon_kill(&e.d, SIGTERM);
	ASSERT_EQ(run_capture(
		      &out, "%s/agentgatectl audit verify --pubkey %s/audit.key %s/audit.log 2>&1",
		      testlib_build_dir(), e.d.state, e.d.state),
		  0, "the log verifies");
out:
	unlink(full);
	unlink(sync_log);
	free(out);
	env_stop(&e);
}

/* "batch" is refused by name, pointing at the modes that replace it. */
TEST(mcp_durability_config)
{
	char dir[] = "/tmp/agdurconf.XXXXXX", path[PATH_MAX];
	struct ag_conf c;
	struct ag_err err;
	FILE *f;

	if (!ASSERT_OK_PTR(mkdtemp(dir), "dir"))
		return;
	snprintf(path, sizeof(path), "%s/agentgate.json", dir);
	if ((f = fopen(path, "w"))) {
		fputs("{\"audit\": {\"durability\": \"batch\"}}\n", f);
		fclose(f);
	}
	memset(&c, 0, sizeof(c));
	ASSERT_NEQ(ag_conf_parse(&c, path, &err), 0, "batch refused");
	ASSERT_STRHAS(err.msg, "\"written\"", "names the default");
	ASSERT_STRHAS(err.msg, "\"strict\"", "and strict");
	ag_conf_free(&c);
	if ((f = fopen(path, "w"))) {
		fputs("{\"audit\": {\"durability\": \"strict\", \"sync_interval_ms\": 20}}\n", f);
		fclose(f);
	}
	memset(&c, 0, sizeof(c));
	if (ASSERT_OK(ag_conf_parse(&c, path, &err), "strict parses"))
		ASSERT_EQ(c.audit_durability, AG_AUDIT_STRICT, "strict");
	ag_conf_free(&c);
	if ((f = fopen(path, "w"))) {
		fputs("{}\n", f);
		fclose(f);
	}
	memset(&c, 0, sizeof(c));
	if (ASSERT_OK(ag_conf_parse(&c, path, &err), "empty parses")) {
		ASSERT_EQ(c.audit_durability, AG_AUDIT_WRITTEN, "written is the default");
		ASSERT_EQ(c.audit_sync_ms, 100, "synced within 100 ms");
	}
	ag_conf_free(&c);
	unlink(path);
	rmdir(dir);
}
