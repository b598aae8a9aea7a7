// SPDX-License-Identifier: GPL-2.0
/*
 * Audit shipping (lib/audit_ship.c) to Debian's real rsyslog as the
 * collector: TLS with a CA made here, RFC 5425 framing, a per-host file of
 * record lines.  Calls go through a real daemon while the collector is
 * stopped for OUTAGE_MS, the daemon restarted once in the middle (and
 * killed and restarted once before, while shipping); afterwards the
 * collector's file holds every record of the local log, in order, once each
 * after dropping byte-identical second copies, and agentgatectl audit verify
 * --collected passes on it.
 */
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "audit.h"
#include "config.h"
#include "ctl.h"
#include "fileio.h"
#include "mcplib.h"
#include "test.h"
#include "testlib.h"

/*
 * A collector down for 30 s, as an operator's restart or a network blip
 * would take: about a thousand calls, a daemon restart and reconnects at
 * the 5 s backoff ceiling.  AG_SHIP_OUTAGE_MS sets another (shorter while
 * working on the shipper).
 */
#define OUTAGE_MS 30000
/*
 * How long the backlog of an outage may take to be confirmed: a reconnect
 * at the 5 s backoff ceiling, the backlog read back from the log files and
 * sent, and the second a confirmation waits; bounded well above that, as
 * the machine may be busy.
 */
#define CATCH_UP_MS 30000
#define FILE_MAX (16u << 20)

static const char agent_json[] = "{\"name\": \"a\", \"tools\": [\"t/echo\"]}";

struct collector {
	char dir[64];
	char conf[128];
	uint16_t port;
	pid_t pid;
};

static int sh(const char *cmd)
{
	char *out = NULL;
	int st = run_capture(&out, "%s", cmd);

	if (st)
		fprintf(stderr, "%s: exit %d: %s\n", cmd, st, out ? out : "");
	free(out);
	return st;
}

/* A CA and the collector's certificate for collector.test and 127.0.0.1. */
static int make_certs(const char *dir)
{
	char cmd[2048];

	snprintf(cmd, sizeof(cmd),
		 "cd %s && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
		 "-keyout ca.key -out ca.crt -days 2 -subj '/CN=ship test CA' && "
		 "openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout srv.key "
		 "-out srv.csr -subj /CN=collector.test && "
		 "printf 'subjectAltName=DNS:collector.test,IP:127.0.0.1\\n' > ext && "
		 "openssl x509 -req -in srv.csr -CA ca.crt -CAkey ca.key -CAcreateserial "
		 "-out srv.crt -days 2 -extfile ext",
		 dir);
	return sh(cmd);
}

/* docs/audit.md "Shipping": the collector configuration it documents. */
static int write_conf(struct collector *c)
{
	char text[2048];
	int n = snprintf(
	    text, sizeof(text),
	    "global(workDirectory=\"%1$s/work\" maxMessageSize=\"1100k\"\n"
	    "  defaultNetstreamDriver=\"ossl\" defaultNetstreamDriverCAFile=\"%1$s/ca.crt\"\n"
	    "  defaultNetstreamDriverCertFile=\"%1$s/srv.crt\"\n"
	    "  defaultNetstreamDriverKeyFile=\"%1$s/srv.key\")\n"
	    "module(load=\"imtcp\" streamDriver.name=\"ossl\" streamDriver.mode=\"1\"\n"
	    "  streamDriver.authMode=\"anon\")\n"
	    "input(type=\"imtcp\" address=\"127.0.0.1\" port=\"%2$u\")\n"
	    "template(name=\"record\" type=\"string\" string=\"%%msg%%\\n\")\n"
	    "template(name=\"perhost\" type=\"string\"\n"
	    "  string=\"%1$s/out/%%hostname%%/%%app-name%%.log\")\n"
	    "if $msgid == \"audit\" then {\n"
	    "  action(type=\"omfile\" dynaFile=\"perhost\" template=\"record\")\n"
	    "  stop\n"
	    "}\n",
	    c->dir, c->port);
	struct ag_err err;
	char work[128];

	snprintf(work, sizeof(work), "%s/work", c->dir);
	if (mkdir(work, 0700))
		return -errno;
	snprintf(c->conf, sizeof(c->conf), "%s/rsyslog.conf", c->dir);
	return ag_file_write_atomic(c->conf, text, (size_t)n, 0600, &err);
}

/* Our own rsyslogd, in the foreground; never the system's. */
static int collector_start(struct collector *c)
{
	char pidfile[128];

	snprintf(pidfile, sizeof(pidfile), "%s/rsyslogd.pid", c->dir);
	c->pid = fork();
	if (c->pid < 0)
		return -errno;
	if (!c->pid) {
		int null = open("/dev/null", O_WRONLY);

		if (null >= 0 && !getenv("AG_VERBOSE")) {
			dup2(null, 1);
			dup2(null, 2);
		}
		execlp("rsyslogd", "rsyslogd", "-n", "-f", c->conf, "-i", pidfile, (char *)NULL);
		_exit(127);
	}
	/* Up once it accepts. */
	for (int i = 0; i < 100; i++) {
		struct sockaddr_storage ss;
		socklen_t sl = make_sockaddr("127.0.0.1", c->port, &ss);
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		bool up = fd >= 0 && !connect(fd, (struct sockaddr *)&ss, sl);

		if (fd >= 0)
			close(fd);
		if (up)
			return 0;
		usleep(50000);
	}
	return -ETIMEDOUT;
}

static void collector_stop(struct collector *c)
{
	if (c->pid <= 0)
		return;
	kill(c->pid, SIGTERM);
	for (int i = 0; i < 100 && waitpid(c->pid, NULL, WNOHANG) == 0; i++)
		usleep(50000);
	kill(c->pid, SIGKILL);
	waitpid(c->pid, NULL, 0);
	c->pid = 0;
}

/* The collector's one per-host file, or "" while there is none. */
static void collected_path(const struct collector *c, char *out, size_t cap)
{
	char pat[160];
	glob_t g;

	out[0] = '\0';
	snprintf(pat, sizeof(pat), "%s/out/*/*.log", c->dir);
	if (!glob(pat, 0, NULL, &g) && g.gl_pathc == 1)
		snprintf(out, cap, "%s", g.gl_pathv[0]);
	globfree(&g);
}

/* Lines of a file, split in place (text is the caller's). */
static size_t split_lines(char *text, char ***lines)
{
	size_t n = 0, cap = 0;

	*lines = NULL;
	for (char *p = text, *nl; *p && (nl = strchr(p, '\n')); p = nl + 1) {
		*nl = '\0';
		if (n == cap) {
			cap = cap ? cap * 2 : 256;
			*lines = realloc(*lines, cap * sizeof(**lines));
		}
		(*lines)[n++] = p;
	}
	return n;
}

/* The local log's series as one text. */
static char *local_log(const struct tdaemon *d)
{
	char base[PATH_MAX + 16], **paths, *all = NULL;
	size_t n, len = 0;
	struct ag_err err;

	snprintf(base, sizeof(base), "%s/audit.log", d->state);
	if (ag_audit_series(base, &paths, &n, &err))
		return NULL;
	for (size_t i = 0; i < n; i++) {
		char *t;
		size_t l;

		if (ag_file_read_at(AT_FDCWD, NULL, paths[i], 0, FILE_MAX, &t, &l, &err))
			break;
		all = realloc(all, len + l + 1);
		memcpy(all + len, t, l + 1);
		len += l;
		free(t);
	}
	ag_audit_series_free(paths, n);
	return all;
}

/* status's audit.ship member (the caller decrefs), or NULL. */
static json_t *ship_status(const struct tdaemon *d)
{
	json_t *req = json_pack("{s:s}", "cmd", "status"), *resp = NULL, *ship = NULL;
	struct ag_err err;

	if (!ag_ctl_call(&d->in, req, &resp, &err))
		ship = json_incref(json_object_get(json_object_get(resp, "audit"), "ship"));
	json_decref(req);
	json_decref(resp);
	return ship;
}

/* Whether status says the shipper is connected (or not), within ms. */
static bool ship_connected(const struct tdaemon *d, bool want, int ms)
{
	for (int t = 0; t < ms; t += 100) {
		json_t *st = ship_status(d);
		bool up = json_is_true(json_object_get(st, "connected"));

		json_decref(st);
		if (up == want)
			return true;
		usleep(100000);
	}
	return false;
}

/* Whether status says the collector confirmed every durable record, within ms. */
static bool ship_caught_up(const struct tdaemon *d, int ms)
{
	for (int t = 0; t < ms; t += 100) {
		json_t *st = ship_status(d);
		bool done = st && json_integer_value(json_object_get(st, "lag")) == 0;
		char *text = st && t + 100 >= ms ? json_dumps(st, JSON_COMPACT) : NULL;

		/* Not caught up in time: say where the shipper stands. */
		if (text)
			fprintf(stderr, "audit ship status: %s\n", text);
		free(text);
		json_decref(st);
		if (done)
			return true;
		usleep(100000);
	}
	return false;
}

/* A call, paced so the outage spans a few hundred rather than thousands. */
static void call(struct mcp_env *e, struct exchange *x, int id)
{
	call_tool(e, x, "echo", id);
	usleep(20000);
}

static uint64_t line_seq(const char *line)
{
	json_t *r = json_loads(line, 0, NULL);
	uint64_t seq = (uint64_t)json_integer_value(json_object_get(r, "seq"));

	if (!json_is_integer(json_object_get(r, "seq")))
		seq = UINT64_MAX;
	json_decref(r);
	return seq;
}

/*
 * Every local record in the collected lines, in order, once each after
 * dropping second copies identical to the first: returns the copies dropped,
 * or -1 with the first difference printed.
 */
static long compare(char **loc, size_t nloc, char **col, size_t ncol)
{
	size_t next = 0;
	long dups = 0;

	for (size_t i = 0; i < ncol; i++) {
		uint64_t seq = line_seq(col[i]);

		if (seq < next && !strcmp(col[i], loc[seq])) {
			dups++;
			continue;
		}
		if (seq != next || next >= nloc || strcmp(col[i], loc[next])) {
			fprintf(stderr, "collected line %zu (seq %llu): expected record %zu\n", i,
				(unsigned long long)seq, next);
			return -1;
		}
		next++;
	}
	if (next != nloc) {
		fprintf(stderr, "collected %zu records of %zu\n", next, nloc);
		return -1;
	}
	return dups;
}

/* Waits until the collector holds at least n records (or its file stops changing). */
static size_t wait_collected(const struct collector *c, size_t n, int ms)
{
	size_t got = 0;

	for (int t = 0; t < ms; t += 100) {
		char path[PATH_MAX], *text = NULL, **lines;

		collected_path(c, path, sizeof(path));
		if (path[0] &&
		    !ag_file_read_at(AT_FDCWD, NULL, path, 0, FILE_MAX, &text, NULL, NULL)) {
			got = split_lines(text, &lines);
			free(lines);
			free(text);
			if (got >= n)
				break;
		}
		usleep(100000);
	}
	return got;
}

static size_t count_lines(const char *text)
{
	size_t n = 0;

	for (const char *p = text; (p = strchr(p, '\n')); p++)
		n++;
	return n;
}

/*
 * agentgatectl audit verify --collected on a copy of the collected file with
 * line appended again, one hex digit of its prev changed when edit is set:
 * the exit status, output in *out.
 */
static int verify_copy(const char *path, const char *line, bool edit, char **out)
{
	char copy[PATH_MAX + 8], *text = NULL, *again = strdup(line), *p;
	struct ag_err err;
	size_t len;
	int st = -1;

	snprintf(copy, sizeof(copy), "%s.dup", path);
	if (again && edit && (p = strstr(again, "\"prev\":\"")))
		p[8] = p[8] == 'a' ? 'b' : 'a';
	if (again && !ag_file_read_at(AT_FDCWD, NULL, path, 0, FILE_MAX, &text, &len, &err) &&
	    (text = realloc(text, len + strlen(again) + 2))) {
		len += (size_t)sprintf(text + len, "%s\n", again);
		if (!ag_file_write_atomic(copy, text, len, 0600, &err))
			st = run_capture(out, "%s/agentgatectl audit verify --collected %s",
					 testlib_build_dir(), copy);
	}
	free(text);
	free(again);
	unlink(copy);
	return st;
}

TEST(audit_ship_rsyslog)
{
	struct exchange *x = shared_alloc(sizeof(*x));
	struct collector c = { .dir = "/tmp/agship.XXXXXX" };
	struct mcp_env e = { 0 };
	char more[1024], path[PATH_MAX], *loc = NULL, *col = NULL, *out = NULL;
	char **ll = NULL, **cl = NULL;
	unsigned long outage = OUTAGE_MS;
	size_t nloc, ncol;
	int id = 0;
	long dups;

	if (access("/usr/sbin/rsyslogd", X_OK) ||
	    access("/usr/lib/x86_64-linux-gnu/rsyslog/lmnsd_ossl.so", R_OK)) {
		ASSERT_TRUE(false, "rsyslog and rsyslog-openssl installed (scripts/deps.sh test)");
		return;
	}
	if (!ASSERT_OK_PTR(mkdtemp(c.dir), "mkdtemp") || !ASSERT_OK(make_certs(c.dir), "certs"))
		goto out;
	c.port = free_port();
	if (!ASSERT_OK(write_conf(&c), "rsyslog.conf") ||
	    !ASSERT_OK(collector_start(&c), "rsyslogd listening"))
		goto out;
	snprintf(more, sizeof(more),
		 "\"audit\": {\"ship\": {\"address\": \"127.0.0.1:%u\", \"ca_file\": "
		 "\"%s/ca.crt\", \"server_name\": \"collector.test\"}}",
		 c.port, c.dir);
	if (!ASSERT_OK(env_start_with(&e, "ship", REPLY_JSON, agent_json, more), "daemon"))
		goto out;
	for (int i = 0; i < 5; i++)
		call(&e, x, ++id);
	ASSERT_STRHAS(x->response, "\"served\"", "calls served");
	ASSERT_GE(wait_collected(&c, 10, 10000), (size_t)10, "records reach the collector");
	ASSERT_TRUE(ship_connected(&e.d, true, 5000), "status: audit.ship.connected");
	{
		char want[64];

		snprintf(want, sizeof(want), "shipped to 127.0.0.1:%u: connected", c.port);
		ASSERT_EQ(run_capture(&out, "%s/agentgatectl --instance %s status",
				      testlib_build_dir(), e.d.in.name),
			  0, "agentgatectl status");
		ASSERT_STRHAS(out, want, "status names the collector and the connection");
		free(out);
		out = NULL;
	}

	/* A crash while shipping: the restarted daemon resumes from the saved cursor. */
	for (int i = 0; i < 20; i++)
		call(&e, x, ++id);
	tdaemon_kill(&e.d, SIGKILL);
	if (!ASSERT_OK(tdaemon_restart(&e.d), "daemon restarted after a crash"))
		goto out;
	for (int i = 0; i < 5; i++)
		call(&e, x, ++id);
	ASSERT_STRHAS(x->response, "\"served\"", "calls served after the crash");

	/* The outage: calls go on, the daemon restarts in the middle of it. */
	collector_stop(&c);
	if (getenv("AG_SHIP_OUTAGE_MS"))
		outage = strtoul(getenv("AG_SHIP_OUTAGE_MS"), NULL, 10);
	for (uint64_t end = ag_now_ns() / 1000000 + outage / 2; ag_now_ns() / 1000000 < end;)
		call(&e, x, ++id);
	{
		json_t *st = ship_status(&e.d);

		ASSERT_TRUE(json_is_false(json_object_get(st, "connected")), "status: down");
		ASSERT_GT(json_integer_value(json_object_get(st, "lag")), 0, "status: a lag");
		json_decref(st);
	}
	ASSERT_OK(tdaemon_stop(&e.d, SIGTERM, 15000), "daemon stopped");
	ASSERT_OK(tdaemon_restart(&e.d), "daemon restarted");
	for (uint64_t end = ag_now_ns() / 1000000 + outage / 2; ag_now_ns() / 1000000 < end;)
		call(&e, x, ++id);
	ASSERT_STRHAS(x->response, "\"served\"", "calls served during the outage");
	if (!ASSERT_OK(collector_start(&c), "rsyslogd back"))
		goto out;
	for (int i = 0; i < 5; i++)
		call(&e, x, ++id);
	/*
	 * A collector that stalls (SIGSTOP: its kernel still acknowledges what
	 * fits in its buffers), then dies with them unread (SIGKILL: a reset):
	 * what its kernel acknowledged is sent again from the cursor.
	 */
	if (!ASSERT_TRUE(ship_caught_up(&e.d, CATCH_UP_MS), "the backlog confirmed: status lag 0"))
		goto out;
	kill(c.pid, SIGSTOP);
	for (uint64_t end = ag_now_ns() / 1000000 + 2500; ag_now_ns() / 1000000 < end;)
		call(&e, x, ++id);
	kill(c.pid, SIGKILL);
	waitpid(c.pid, NULL, 0);
	c.pid = 0;
	if (!ASSERT_OK(collector_start(&c), "rsyslogd back again"))
		goto out;
	/* The backlog goes out once a reconnect (at most 5 s apart) succeeds. */
	loc = local_log(&e.d);
	if (!ASSERT_OK_PTR(loc, "local log"))
		goto out;
	ASSERT_GE(wait_collected(&c, count_lines(loc), 20000), count_lines(loc),
		  "the backlog reaches the collector");
	free(loc);
	/* A clean stop ships the final checkpoint and daemon_stop. */
	ASSERT_OK(tdaemon_stop(&e.d, SIGTERM, 15000), "daemon stopped");

	loc = local_log(&e.d);
	if (!ASSERT_OK_PTR(loc, "local log"))
		goto out;
	wait_collected(&c, count_lines(loc), 15000);
	collector_stop(&c);
	collected_path(&c, path, sizeof(path));
	if (!ASSERT_TRUE(path[0], "one per-host file") ||
	    !ASSERT_OK(ag_file_read_at(AT_FDCWD, NULL, path, 0, FILE_MAX, &col, NULL, NULL),
		       "collected file"))
		goto out;
	nloc = split_lines(loc, &ll);
	ncol = split_lines(col, &cl);
	ASSERT_GE(nloc, (size_t)3 * id, "every call recorded (connect, decision, result)");
	dups = compare(ll, nloc, cl, ncol);
	ASSERT_GE(dups, 0, "every record collected once, in order, after dropping copies");
	fprintf(stderr, "%zu records, %zu collected lines, %ld second copies, %d calls\n", nloc,
		ncol, dups, id);
	/* The collector's file verifies on its own, signatures included. */
	ASSERT_EQ(run_capture(&out,
			      "%s/agentgatectl audit verify --collected --pubkey %s/audit.key "
			      "%s",
			      testlib_build_dir(), e.d.state, path),
		  0, "audit verify --collected passes");
	ASSERT_STRHAS(out, "OK:", "verify says OK");
	if (ncol > 2) {
		free(out);
		out = NULL;
		ASSERT_EQ(verify_copy(path, cl[1], false, &out), 0, "a second copy is skipped");
		ASSERT_STRHAS(out, "duplicates skipped", "and counted");
		free(out);
		out = NULL;
		ASSERT_EQ(verify_copy(path, cl[1], true, &out), 1,
			  "a second copy with other bytes is a finding");
		ASSERT_STRHAS(out, "with other bytes", "named as such");
	}
out:
	free(out);
	free(ll);
	free(cl);
	free(loc);
	free(col);
	collector_stop(&c);
	env_stop(&e);
	if (strcmp(c.dir, "/tmp/agship.XXXXXX") && !getenv("AG_KEEP")) {
		char cmd[128];

		snprintf(cmd, sizeof(cmd), "rm -rf %s", c.dir);
		sh(cmd);
	}
}

/* audit.ship as agentgate.conf(5) documents it: what is refused, and why. */
TEST(audit_ship_config)
{
	static const struct {
		const char *name, *ship, *error; /* error: NULL when valid */
	} cases[] = {
		{ "minimal", "{\"address\": \"127.0.0.1:6514\", \"ca_file\": \"/ca.pem\"}", NULL },
		{ "full",
		  "{\"address\": \"Collector.Example:6514\", \"ca_file\": \"ca.pem\", "
		  "\"server_name\": \"c.example\", \"cert_file\": \"/c.pem\", \"key_file\": "
		  "\"/c.key\"}",
		  NULL },
		{ "ipv6", "{\"address\": \"[::1]:6514\", \"ca_file\": \"/ca.pem\"}", NULL },
		{ "no_address", "{\"ca_file\": \"/ca.pem\"}",
		  "$.audit.ship: expected \"address\"" },
		{ "no_port", "{\"address\": \"c.example\", \"ca_file\": \"/ca.pem\"}",
		  "$.audit.ship.address: \"c.example\": expected HOST:PORT" },
		{ "port_zero", "{\"address\": \"c.example:0\", \"ca_file\": \"/ca.pem\"}",
		  "$.audit.ship.address" },
		{ "bad_host", "{\"address\": \"c example:1\", \"ca_file\": \"/ca.pem\"}",
		  "$.audit.ship.address" },
		{ "no_ca", "{\"address\": \"c.example:6514\"}",
		  "$.audit.ship: expected \"ca_file\"" },
		{ "cert_alone",
		  "{\"address\": \"c.example:6514\", \"ca_file\": \"/ca.pem\", \"cert_file\": "
		  "\"/c.pem\"}",
		  "\"cert_file\" and \"key_file\" go together" },
		{ "unknown_key",
		  "{\"address\": \"c.example:6514\", \"ca_file\": \"/ca.pem\", \"port\": 1}",
		  "$.audit.ship.port: unknown key" },
	};
	char dir[] = "/tmp/agshipconf.XXXXXX", path[64], json[512];

	if (!ASSERT_OK_PTR(mkdtemp(dir), "mkdtemp"))
		return;
	snprintf(path, sizeof(path), "%s/agentgate.json", dir);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct ag_conf c;
		struct ag_err err = { 0 };
		int n = snprintf(json, sizeof(json), "{\"audit\": {\"ship\": %s}}", cases[i].ship);
		int ret;

		if (!test__start_subtest(cases[i].name))
			continue;
		if (!ASSERT_OK(ag_file_write_atomic(path, json, (size_t)n, 0600, &err), err.msg))
			continue;
		ret = ag_conf_load(&c, path, &err);
		if (!cases[i].error) {
			ASSERT_OK(ret, err.msg);
			ASSERT_TRUE(c.audit_ship.host[0] && c.audit_ship.port[0], "address kept");
			ASSERT_EQ(c.audit_ship.ca_file[0], '/', "ca_file made absolute");
		} else {
			ASSERT_NEQ(ret, 0, "refused");
			ASSERT_STRHAS(err.msg, cases[i].error, "names the key and the cause");
		}
		if (!ret)
			ag_conf_free(&c);
	}
	if (!strcmp(cases[1].name, "full") && test__start_subtest("values")) {
		struct ag_conf c;
		struct ag_err err = { 0 };
		int n = snprintf(json, sizeof(json), "{\"audit\": {\"ship\": %s}}", cases[1].ship);

		if (ASSERT_OK(ag_file_write_atomic(path, json, (size_t)n, 0600, &err), err.msg) &&
		    ASSERT_OK(ag_conf_load(&c, path, &err), err.msg)) {
			ASSERT_STREQ(c.audit_ship.host, "collector.example", "host lower-cased");
			ASSERT_STREQ(c.audit_ship.port, "6514", "port");
			ASSERT_STREQ(c.audit_ship.server_name, "c.example", "server_name");
			ASSERT_STREQ(c.audit_ship.key_file, "/c.key", "key_file");
			ag_conf_free(&c);
		}
	}
	unlink(path);
	rmdir(dir);
}
