// SPDX-License-Identifier: GPL-2.0
/*
 * The metrics endpoint (agentgate.conf(5) "metrics") with a real
 * agentgated: counters after a governed call, a denied call and a kernel
 * refusal; Debian's promtool on the exposition; a real Prometheus scraping
 * it; and an agent that cannot reach it, even with pass-through to it.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <jansson.h>

#include "config.h"
#include "mcplib.h"
#include "test.h"
#include "testlib.h"

#define CALL(id, tool)                                                                        \
	"{\"jsonrpc\":\"2.0\",\"id\":" #id ",\"method\":\"tools/call\",\"params\":{\"name\":" \
	"\"" tool "\",\"arguments\":{\"text\":\"hi\"}}}"

/* The endpoint's body (caller frees), NULL when it does not answer 200. */
static char *scrape(uint16_t port)
{
	char *out = NULL;

	if (run_capture(&out, "curl -sf --max-time 5 http://127.0.0.1:%u/metrics", port)) {
		free(out);
		return NULL;
	}
	return out;
}

/* Whether body has exactly this sample line. */
static bool has_line(const char *body, const char *line)
{
	size_t n = strlen(line);

	for (const char *p = body; p && (p = strstr(p, line)); p += n)
		if ((p == body || p[-1] == '\n') && p[n] == '\n')
			return true;
	return false;
}

/* Polls the endpoint until it has line (connection records come at close). */
static bool wait_line(uint16_t port, const char *line)
{
	for (int i = 0; i < 50; i++) {
		char *body = scrape(port);
		bool ok = body && has_line(body, line);

		free(body);
		if (ok)
			return true;
		usleep(100 * 1000);
	}
	fprintf(stderr, "metrics: no line \"%s\"\n", line);
	return false;
}

static void call(struct mcp_env *e, struct exchange *x, const char *body)
{
	post(x, e->orig_port, "", body);
	run_agent(e, x);
}

/* The agent process: a GET to the endpoint, whatever comes back in x->response. */
static int agent_get(void *arg)
{
	struct exchange *x = arg;

	snprintf(x->request, sizeof(x->request),
		 "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
	return agent_exchange(x);
}

/* Sends req (len bytes) to the endpoint as a scraper; the status line's code, or -1. */
static int raw_request(uint16_t port, const char *req, size_t len)
{
	struct sockaddr_storage ss;
	socklen_t sl = make_sockaddr("127.0.0.1", port, &ss);
	struct timeval tv = { .tv_sec = 10 };
	int fd = socket(AF_INET, SOCK_STREAM, 0), code = -1;
	char resp[512] = "";
	ssize_t n = 0;

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (!connect(fd, (struct sockaddr *)&ss, sl) && send_all(fd, req, len))
		n = recv(fd, resp, sizeof(resp) - 1, MSG_WAITALL);
	if (n > 0 && sscanf(resp, "HTTP/1.1 %d ", &code) != 1)
		code = -1;
	close(fd);
	return code;
}

/* ---- a real Prometheus --------------------------------------------------- */

struct prom {
	pid_t pid;
	uint16_t port;
	char dir[64];
};

static int prom_start(struct prom *p, uint16_t target)
{
	char path[128], listen[32];
	FILE *f;

	snprintf(p->dir, sizeof(p->dir), "/tmp/agprom.XXXXXX");
	if (!mkdtemp(p->dir))
		return -errno;
	snprintf(path, sizeof(path), "%s/prometheus.yml", p->dir);
	if (!(f = fopen(path, "w")))
		return -errno;
	fprintf(f,
		"global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
		"scrape_configs:\n  - job_name: agentgate\n    static_configs:\n"
		"      - targets: ['127.0.0.1:%u']\n",
		target);
	fclose(f);
	p->port = free_port();
	snprintf(listen, sizeof(listen), "127.0.0.1:%u", p->port);
	p->pid = fork();
	if (p->pid < 0)
		return -errno;
	if (!p->pid) {
		char cfg[160], data[160], log[160];

		snprintf(cfg, sizeof(cfg), "--config.file=%s", path);
		snprintf(data, sizeof(data), "--storage.tsdb.path=%s/data", p->dir);
		snprintf(log, sizeof(log), "%s/prometheus.log", p->dir);
		if (!freopen(log, "w", stdout) || !freopen(log, "a", stderr))
			_exit(127);
		execlp("prometheus", "prometheus", cfg, data, "--web.listen-address", listen,
		       (char *)NULL);
		_exit(127);
	}
	return 0;
}

static void prom_stop(struct prom *p)
{
	char *out = NULL;

	if (p->pid > 0) {
		kill(p->pid, SIGKILL);
		waitpid(p->pid, NULL, 0);
	}
	if (p->dir[0]) {
		run_capture(&out, "rm -rf %s", p->dir);
		free(out);
	}
}

/* The value of the instant query q, -1 when Prometheus has none (yet). */
static long long prom_query(const struct prom *p, const char *q)
{
	char *out = NULL;
	json_t *root, *v;
	long long n = -1;

	if (run_capture(&out,
			"curl -sfG --max-time 2 http://127.0.0.1:%u/api/v1/query "
			"--data-urlencode 'query=%s'",
			p->port, q)) {
		free(out);
		return -1;
	}
	root = json_loads(out, 0, NULL);
	v = json_array_get(
	    json_object_get(
		json_array_get(json_object_get(json_object_get(root, "data"), "result"), 0),
		"value"),
	    1);
	if (json_is_string(v))
		n = atoll(json_string_value(v));
	json_decref(root);
	free(out);
	return n;
}

/* Waits (up to 60 s: Prometheus starts in seconds) until q has value want. */
static bool prom_wait(const struct prom *p, const char *q, long long want)
{
	long long v = -1;

	for (int i = 0; i < 300 && v != want; i++) {
		v = prom_query(p, q);
		if (v != want)
			usleep(200 * 1000);
	}
	if (v != want)
		fprintf(stderr, "prometheus: %s = %lld, want %lld (log %s/prometheus.log)\n", q, v,
			want, p->dir);
	return v == want;
}

TEST(metrics_endpoint)
{
	struct exchange *x = shared_alloc(sizeof(*x));
	struct mcp_env e = { 0 };
	struct prom prom = { .pid = -1 };
	uint16_t mport = free_port();
	char agent[256], more[128], line[256], *body = NULL, *out = NULL;
	int ret;

	/* pass-through "*" and an explicit entry for the endpoint itself. */
	snprintf(agent, sizeof(agent),
		 "{\"name\": \"a\", \"tools\": [\"t/echo\"], \"quota\": {\"calls_per_day\": 100}, "
		 "\"passthrough\": [\"127.0.0.1:%u\", \"*\"]}",
		 mport);
	/* sync: the allowed call waits for an fdatasync, so it is held, once. */
	snprintf(more, sizeof(more),
		 "\"metrics\": {\"listen\": \"127.0.0.1:%u\"}, "
		 "\"audit\": {\"durability\": \"sync\"}",
		 mport);
	if (!ASSERT_OK(env_start_with(&e, "metrics", REPLY_JSON, agent, more), "environment"))
		goto out;

	if (test__start_subtest("counters_exact")) {
		char *refusal = NULL;

		call(&e, x, CALL(1, "echo"));
		ASSERT_STRHAS(x->response, "\"served\"", "the allowed call was served");
		call(&e, x, CALL(2, "secret"));
		ASSERT_NULL(strstr(x->response, "\"served\""), "the denied call was not");
		ASSERT_NEQ(run_capture(&refusal,
				       "echo $$ > %s/cgroup.procs && exec setpriv --reuid=65534 "
				       "--regid=65534 --clear-groups bash -c "
				       "'echo x > /dev/udp/127.0.0.1/9' 2>&1",
				       e.agent_cg),
			   0, "the agent's UDP send was refused");
		free(refusal);
		ASSERT_TRUE(wait_line(mport, "agentgate_agent_connections_total{agent=\"a\","
					     "result=\"ok\"} 2"),
			    "two MCP connections ended");
		body = scrape(mport);
		if (!ASSERT_NEQ(body, NULL, "the endpoint answers"))
			goto out;
		ASSERT_TRUE(has_line(body, "agentgate_tool_calls_total{server=\"t\",tool=\"echo\","
					   "decision=\"allow\"} 1"),
			    "one allowed call of t/echo");
		/* A name never allowed gets no series of its own. */
		ASSERT_TRUE(has_line(body,
				     "agentgate_tool_calls_total{server=\"t\",tool=\"_other\","
				     "decision=\"deny\"} 1"),
			    "one denied call, under _other");
		ASSERT_TRUE(has_line(body,
				     "agentgate_decisions_total{agent=\"a\",decision=\"allow\","
				     "rule=\"allow-list\"} 1"),
			    "one allow decision");
		ASSERT_TRUE(has_line(body,
				     "agentgate_decisions_total{agent=\"a\",decision=\"deny\","
				     "rule=\"allow-list\"} 1"),
			    "one deny decision");
		/* Both tools were new to a, the server only at the first call. */
		ASSERT_TRUE(has_line(body, "agentgate_anomalies_total{agent=\"a\","
					   "flag=\"first_tool\"} 2"),
			    "two first_tool flags");
		ASSERT_TRUE(has_line(body, "agentgate_anomalies_total{agent=\"a\","
					   "flag=\"first_destination\"} 1"),
			    "one first_destination flag");
		ASSERT_TRUE(has_line(body,
				     "agentgate_tool_call_duration_seconds_count{server=\"t\","
				     "tool=\"echo\"} 1"),
			    "one call latency observed");
		ASSERT_TRUE(has_line(body,
				     "agentgate_tool_call_duration_seconds_bucket{server=\"t\","
				     "tool=\"echo\",le=\"+Inf\"} 1"),
			    "histogram +Inf bucket");
		ASSERT_TRUE(
		    has_line(body, "agentgate_kernel_refusals_total{reason=\"udp_destination\"} 1"),
		    "one kernel refusal");
		ASSERT_TRUE(has_line(body, "agentgate_agent_connections_active{agent=\"a\"} 0"),
			    "no connection left open");
		ASSERT_TRUE(has_line(body, "agentgate_audit_durability_wait_seconds_count 1"),
			    "the allowed call waited for durability once");
		ASSERT_TRUE(has_line(body, "agentgate_quota_calls{agent=\"a\",window=\"day\"} 1"),
			    "the allowed call charged the day's budget");
		ASSERT_TRUE(
		    has_line(body, "agentgate_quota_limit_calls{agent=\"a\",window=\"day\"} 100"),
		    "the day's budget");
		ASSERT_TRUE(has_line(body, "agentgate_errors_total{kind=\"scrape\"} 0"),
			    "no scrape error");
		ASSERT_STRHAS(body, "# TYPE agentgate_tool_calls_total counter", "TYPE line");
		ASSERT_STRHAS(body, "# HELP agentgate_tool_calls_total ", "HELP line");
		if (getenv("AG_VERBOSE"))
			fprintf(stderr, "%s", body);
	}
	if (test__start_subtest("promtool_check") && body) {
		char path[64] = "/tmp/agmetrics.XXXXXX";
		int fd = mkstemp(path);

		if (ASSERT_GE(fd, 0, "temp file")) {
			ASSERT_EQ(write(fd, body, strlen(body)), (ssize_t)strlen(body), "written");
			close(fd);
			ASSERT_EQ(run_capture(&out, "promtool check metrics < %s 2>&1", path), 0,
				  "promtool check metrics passes");
			if (out && *out)
				fprintf(stderr, "promtool: %s\n", out);
			free(out);
			out = NULL;
			unlink(path);
		}
	}
	if (test__start_subtest("agent_cannot_reach")) {
		memset(x, 0, sizeof(*x));
		x->port = mport;
		ret = run_in_cgroup(e.agent_cg, NOBODY_UID, agent_get, x);
		/* 1: the reset came before the request was sent. */
		ASSERT_TRUE(ret == 0 || ret == 1, "agent ran");
		ASSERT_EQ(x->len, 0, "not a byte reached the agent");
		ASSERT_TRUE(x->err == ECONNRESET || x->err == EPIPE, "the agent got a reset");
		ASSERT_TRUE(
		    log_has(&e.d, 2000, "event=conn_rejected", "reason=metrics_endpoint", NULL),
		    "refused as the metrics endpoint");
		snprintf(line, sizeof(line),
			 "agentgate_agent_connections_total{agent=\"a\",result=\"rejected\"} 1");
		ASSERT_TRUE(wait_line(mport, line), "the refusal is counted");
	}
	if (test__start_subtest("bad_requests_bounded")) {
		static const char post_req[] = "POST /metrics HTTP/1.1\r\n\r\n",
				  other_req[] = "GET /other HTTP/1.1\r\n\r\n";
		static char big[2048]; /* exactly the bound, with no end of head */
		struct sockaddr_storage ss;
		socklen_t sl = make_sockaddr("127.0.0.1", mport, &ss);
		int idle = socket(AF_INET, SOCK_STREAM, 0);
		char *now;

		/* A scraper that connects and says nothing holds no one up. */
		ASSERT_OK(connect(idle, (struct sockaddr *)&ss, sl), "idle scraper connected");
		now = scrape(mport);
		ASSERT_NEQ(now, NULL, "a scrape beside an idle one is served");
		free(now);
		ASSERT_EQ(raw_request(mport, post_req, strlen(post_req)), 405, "POST");
		ASSERT_EQ(raw_request(mport, other_req, strlen(other_req)), 404, "another path");
		memset(big, 'a', sizeof(big));
		memcpy(big, "GET /metrics HTTP/1.1\r\nX: ", 26);
		ASSERT_EQ(raw_request(mport, big, sizeof(big)), 431,
			  "a head of 2048 bytes, unended");
		/* Closed before its deadline: an EOF, not a scrape error. */
		close(idle);
		ASSERT_TRUE(wait_line(mport, "agentgate_errors_total{kind=\"scrape\"} 3"),
			    "three refused scrapes counted");
	}
	if (test__start_subtest("prometheus_sees_call")) {
		static const char q[] = "sum(agentgate_tool_calls_total{decision=\"allow\"})";

		if (!ASSERT_OK(prom_start(&prom, mport), "prometheus started"))
			goto out;
		if (!ASSERT_TRUE(prom_wait(&prom, q, 1), "prometheus scraped the first call"))
			goto out;
		call(&e, x, CALL(3, "echo"));
		ASSERT_STRHAS(x->response, "\"served\"", "the second call was served");
		ASSERT_TRUE(prom_wait(&prom, q, 2), "prometheus saw the counter move");
	}
out:
	prom_stop(&prom);
	free(body);
	env_stop(&e);
	munmap(x, sizeof(*x));
}

TEST(metrics_config)
{
	struct ag_conf c;
	struct ag_err err = { 0 };
	char path[64] = "/tmp/agmconf.XXXXXX";
	static const struct {
		const char *json, *want; /* want NULL: accepted */
	} cases[] = {
		{ "{\"metrics\": {\"listen\": \"127.0.0.1:9464\"}}", NULL },
		{ "{\"metrics\": {\"listen\": \"[::1]:9464\"}}", NULL },
		{ "{\"metrics\": {}}", NULL },
		{ "{\"metrics\": {\"listen\": \"10.0.0.1:9464\"}}", "loopback" },
		{ "{\"metrics\": {\"listen\": \"127.0.0.1\"}}", "ADDRESS:PORT" },
		{ "{\"metrics\": {\"listen\": \"127.0.0.0/8:9464\"}}", "ADDRESS:PORT" },
		{ "{\"metrics\": {\"port\": 1}}", "port" },
		{ "{\"default_verdict\": \"direct\", \"metrics\": {\"listen\": "
		  "\"127.0.0.1:9464\"}}",
		  "direct" },
		{ "{\"rules\": [{\"dest\": \"127.0.0.0/8\", \"verdict\": \"direct\"}], "
		  "\"metrics\": {\"listen\": \"127.0.0.1:9464\"}}",
		  "direct" },
		{ "{\"rules\": [{\"dest\": \"0.0.0.0\", \"port\": 9464, \"verdict\": \"direct\"}], "
		  "\"metrics\": {\"listen\": \"127.0.0.1:9464\"}}",
		  "direct" },
		{ "{\"rules\": [{\"dest\": \"127.0.0.1\", \"port\": 80, \"verdict\": \"direct\"}], "
		  "\"metrics\": {\"listen\": \"127.0.0.1:9464\"}}",
		  NULL },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int fd = mkstemp(path);
		int ret;

		if (!ASSERT_GE(fd, 0, "temp file"))
			return;
		ASSERT_EQ(write(fd, cases[i].json, strlen(cases[i].json)),
			  (ssize_t)strlen(cases[i].json), "written");
		close(fd);
		ret = ag_conf_load(&c, path, &err);
		unlink(path);
		snprintf(path, sizeof(path), "/tmp/agmconf.XXXXXX");
		if (!cases[i].want) {
			if (ASSERT_OK(ret, cases[i].json))
				ag_conf_free(&c);
			continue;
		}
		if (ASSERT_NEQ(ret, 0, cases[i].json))
			ASSERT_STRHAS(err.msg, cases[i].want, "the error says why");
		else
			ag_conf_free(&c);
	}
}
