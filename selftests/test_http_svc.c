// SPDX-License-Identifier: GPL-2.0
/*
 * HTTP services (agentgate.conf(5) "http_services") end to end: a real
 * REST API (json-server from the npm registry, selftests/e2e/json_server.mjs)
 * governed by a real agentgated.  The agent reaches it at its own URL; each
 * request is decided by Cedar on its route, method, path and JSON body; what
 * json-server's database and request log hold proves what reached it; the
 * audit log holds the decision and result records.  Then the bypass
 * surface: encodings, dot segments, "//", ';', case, duplicate query keys,
 * method overrides.  http_route_canon checks the canonical form alone.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>

#include "http_route.h"
#include "mcplib.h"
#include "test.h"
#include "testlib.h"

#define UPSTREAM_SECRET "upstream-secret-7f3a9"
#define AGENT_CANARY "agent-canary-c41d"

static const char policy[] =
    "permit(principal == Agent::\"a\", action == Action::\"http\", resource in "
    "Server::\"todos\") when { context.method == \"GET\" };\n"
    "permit(principal == Agent::\"a\", action == Action::\"http\", resource == "
    "Route::\"todos/create\") when { context has body && context.body has priority && "
    "context.body.priority == \"low\" };\n"
    "forbid(principal, action == Action::\"http\", resource) when { context.headers has "
    "\"x-tenant\" && context.headers[\"x-tenant\"] == \"blocked\" };\n";

struct svc_env {
	struct mcp_env e; /* d and agent_cg: the tool thread is not used */
	char dir[64];
	char db[128], log[128];
	pid_t js;
	int js_port;
};

static int write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	if (fd < 0)
		return -errno;
	if (write(fd, text, strlen(text)) != (ssize_t)strlen(text)) {
		close(fd);
		return -EIO;
	}
	return close(fd);
}

/* json_server.mjs on db and log. */
static int js_start(struct svc_env *s)
{
	char script[PATH_MAX], e2e[PATH_MAX];
	char *argv[] = { "node", script, "--db", s->db, "--log", s->log, NULL };

	snprintf(script, sizeof(script), "%s/selftests/e2e/json_server.mjs", testlib_src_dir());
	snprintf(e2e, sizeof(e2e), "%s/e2e", testlib_build_dir());
	s->js_port = node_peer_start(argv, e2e, &s->js);
	return s->js_port > 0 ? 0 : s->js_port;
}

static bool js_installed(void)
{
	char p[PATH_MAX];
	struct stat st;

	snprintf(p, sizeof(p), "%s/e2e/node_modules/json-server", testlib_build_dir());
	return !stat(p, &st);
}

static int svc_start(struct svc_env *s, const char *suffix)
{
	char extra[4096], pfile[128], secret[128];
	int ret;

	snprintf(s->dir, sizeof(s->dir), "/tmp/agt-http.XXXXXX");
	if (!mkdtemp(s->dir))
		return -errno;
	snprintf(s->db, sizeof(s->db), "%s/db.json", s->dir);
	snprintf(s->log, sizeof(s->log), "%s/requests.log", s->dir);
	snprintf(pfile, sizeof(pfile), "%s/p.cedar", s->dir);
	snprintf(secret, sizeof(secret), "%s/secret", s->dir);
	if ((ret = write_file(s->db, "{\"todos\": [{\"id\": 1, \"title\": \"one\"}, "
				     "{\"id\": 2, \"title\": \"two\"}, "
				     "{\"id\": 3, \"title\": \"key AKIAIOSFODNN7EXAMPLE\"}, "
				     "{\"id\": 4, \"title\": \"TOPSECRET plan\"}]}")) ||
	    (ret = write_file(s->log, "")) || (ret = write_file(pfile, policy)) ||
	    (ret = write_file(secret, UPSTREAM_SECRET)) || (ret = js_start(s)))
		return ret;
	s->e.orig_port = free_port();
	snprintf(extra, sizeof(extra),
		 "\"http_services\": [{\"name\": \"todos\", \"match\": {\"addresses\": "
		 "[\"127.0.0.1\"], \"ports\": [%u]}, \"upstream\": \"http://127.0.0.1:%d\", "
		 "\"credential\": {\"type\": \"bearer\", \"secret_file\": \"%s\"}, "
		 "\"audit_args\": \"full\", \"context_headers\": [\"X-Tenant\"], "
		 "\"output_rules\": [{\"name\": \"cloud\", \"detector\": \"cloud_access_key\"}, "
		 "{\"name\": \"secret-title\", \"regex\": \"TOPSECRET\", \"action\": \"refuse\"}], "
		 "\"routes\": ["
		 "{\"name\": \"list\", \"method\": \"GET\", \"path\": \"/todos\"}, "
		 "{\"name\": \"get\", \"method\": \"GET\", \"path\": \"/todos/{id}\"}, "
		 "{\"name\": \"create\", \"method\": \"POST\", \"path\": \"/todos\"}, "
		 "{\"name\": \"remove\", \"method\": \"DELETE\", \"path\": \"/todos/{id}\"}]}], "
		 "\"agents\": [{\"name\": \"a\"}], \"policy\": {\"files\": [\"%s\"]}",
		 s->e.orig_port, s->js_port, secret, pfile);
	if ((ret = tdaemon_start(&s->e.d, suffix, extra, 0)))
		return ret;
	snprintf(s->e.agent_cg, sizeof(s->e.agent_cg), "%s/a", s->e.d.in.cg_agents);
	return 0;
}

static void svc_stop(struct svc_env *s)
{
	char *out = NULL;

	tdaemon_destroy(&s->e.d);
	if (s->js > 0) {
		kill(s->js, SIGTERM);
		waitpid(s->js, NULL, 0);
	}
	if (s->dir[0] && !getenv("AG_KEEP"))
		run_capture(&out, "rm -rf '%s'", s->dir);
	free(out);
}

/* One request from the agent, at the service's own address; the answer in x. */
static struct exchange *ask(struct svc_env *s, struct exchange *x, const char *method,
			    const char *target, const char *extra, const char *body)
{
	memset(x, 0, sizeof(*x));
	x->port = s->e.orig_port;
	snprintf(x->request, sizeof(x->request),
		 "%s %s HTTP/1.1\r\nHost: 127.0.0.1:%u\r\nAuthorization: Bearer " AGENT_CANARY
		 "\r\n%s%s%zu\r\nConnection: close\r\n\r\n%s",
		 method, target, s->e.orig_port, extra,
		 body ? "Content-Type: application/json\r\nContent-Length: " : "Content-Length: ",
		 body ? strlen(body) : 0, body ? body : "");
	return run_agent(&s->e, x);
}

static int status_of(const struct exchange *x)
{
	int st = 0;

	return sscanf(x->response, "HTTP/1.1 %d", &st) == 1 ? st : 0;
}

/* Lines of file f that contain every one of the (up to two) strings. */
static int count(const char *f, const char *a, const char *b)
{
	char *out = NULL;
	int n;

	run_capture(&out, "grep -F -- '%s' %s | grep -c -F -- '%s'", a, f, b ? b : a);
	n = out ? atoi(out) : -1;
	free(out);
	return n;
}

TEST(http_svc_json_server)
{
	struct svc_env *s = calloc(1, sizeof(*s));
	struct exchange *x = shared_alloc(sizeof(*x));
	char audit[PATH_MAX + 16];

	if (!js_installed()) {
		test__skip("json-server not installed (scripts/e2e-deps.sh)");
		free(s);
		return;
	}
	if (!ASSERT_OK(svc_start(s, "httpsvc"), "json-server governed as an HTTP service"))
		goto out;
	snprintf(audit, sizeof(audit), "%s/audit.log", s->e.d.state);
	if (test__start_subtest("allowed_get")) {
		ask(s, x, "GET", "/todos/1", "", NULL);
		ASSERT_EQ(status_of(x), 200, "allowed");
		ASSERT_STRHAS(x->response, "\"one\"", "json-server's answer");
		ASSERT_EQ(count(s->log, "\"authorization\":\"Bearer " UPSTREAM_SECRET "\"", NULL),
			  1, "the injected credential upstream");
		ASSERT_EQ(count(s->log, AGENT_CANARY, NULL), 0, "the agent's own not upstream");
		ASSERT_NULL(strstr(x->response, UPSTREAM_SECRET),
			    "the credential not to the agent");
		ASSERT_EQ(count(audit, "\"route\":\"get\"", "\"decision\":\"allow\""), 1,
			  "decision record");
		ASSERT_EQ(count(audit, "\"route\":\"get\"", "\"upstream_status\":200"), 1,
			  "result record");
		ASSERT_EQ(count(audit, "\"path\":\"/todos/1\"", "\"params\":{\"id\":\"1\"}"), 1,
			  "path and params recorded (audit_args full)");
		ASSERT_EQ(count(audit, UPSTREAM_SECRET, NULL), 0, "no credential in the audit log");
	}
	if (test__start_subtest("denied_delete")) {
		ask(s, x, "DELETE", "/todos/2", "", NULL);
		ASSERT_EQ(status_of(x), 403, "denied");
		ASSERT_STRHAS(x->response, "no policy permits http of route todos/remove",
			      "the reason");
		ASSERT_EQ(count(s->log, "DELETE", NULL), 0, "nothing reached json-server");
		ASSERT_EQ(count(s->db, "\"two\"", NULL), 1, "todo 2 still in the database");
		ASSERT_EQ(count(audit, "\"route\":\"remove\"", "\"decision\":\"deny\""), 1,
			  "decision record");
	}
	if (test__start_subtest("post_body_field")) {
		ask(s, x, "POST", "/todos", "", "{\"title\":\"lowtask\",\"priority\":\"low\"}");
		ASSERT_EQ(status_of(x), 201, "a low priority todo is created");
		ask(s, x, "POST", "/todos", "", "{\"title\":\"hightask\",\"priority\":\"high\"}");
		ASSERT_EQ(status_of(x), 403, "a high priority one is not");
		ASSERT_EQ(count(s->db, "lowtask", NULL), 1, "created");
		ASSERT_EQ(count(s->db, "hightask", NULL), 0, "never reached the database");
		/* A duplicate key is two readings of one body. */
		ask(s, x, "POST", "/todos", "",
		    "{\"title\":\"duptask\",\"priority\":\"low\",\"priority\":\"high\"}");
		ASSERT_EQ(status_of(x), 400, "duplicate keys refused");
		ask(s, x, "POST", "/todos", "Content-Type: text/plain\r\n",
		    "{\"title\":\"plaintask\",\"priority\":\"low\"}");
		ASSERT_EQ(status_of(x), 415, "a body that is not only JSON");
		ASSERT_EQ(count(s->db, "duptask", NULL), 0, "not created");
		ASSERT_EQ(count(s->db, "plaintask", NULL), 0, "nor that");
		ASSERT_EQ(count(audit, "\"route\":\"create\"", "\"decision\":\"deny\""), 1,
			  "the denial recorded");
	}
	if (test__start_subtest("canonical_forward")) {
		/* Case, an escape of an unreserved byte, a trailing slash: one spelling upstream.
		 */
		ask(s, x, "GET", "/TODOS/%31", "", NULL);
		ASSERT_EQ(status_of(x), 200, "case and escape: allowed as route get");
		ask(s, x, "GET", "/todos/?id=1", "", NULL);
		ASSERT_EQ(status_of(x), 200, "trailing slash: route list");
		ASSERT_EQ(count(s->log, "\"url\":\"/TODOS", NULL), 0,
			  "the route's spelling upstream");
		ASSERT_EQ(count(s->log, "\"url\":\"/todos/1\"", NULL), 2, "/todos/1 twice now");
		ASSERT_EQ(count(s->log, "\"method\":\"GET\",\"url\":\"/todos?id=1\"", NULL), 1,
			  "/todos without the slash");
	}
	if (test__start_subtest("context_and_output_rules")) {
		ask(s, x, "GET", "/todos/1", "X-Tenant: blocked\r\n", NULL);
		ASSERT_EQ(status_of(x), 403, "a forbid on context.headers");
		ask(s, x, "GET", "/todos/1", "X-Tenant: ok\r\nX-Tenant: blocked\r\n", NULL);
		ASSERT_EQ(status_of(x), 400, "a context header given twice");
		ask(s, x, "GET", "/todos?title=o%6Ee", "", NULL);
		ASSERT_EQ(status_of(x), 200, "a query");
		ASSERT_EQ(count(s->log, "\"url\":\"/todos?title=one\"", NULL), 1,
			  "forwarded re-encoded");
		ASSERT_EQ(count(audit, "\"query\":{\"title\":\"one\"}", NULL), 1,
			  "context.query recorded");
		ask(s, x, "GET", "/todos/3", "", NULL);
		ASSERT_EQ(status_of(x), 200, "a todo with a cloud key in it");
		ASSERT_NULL(strstr(x->response, "AKIAIOSFODNN7EXAMPLE"),
			    "masked by the output rules");
		ASSERT_STRHAS(x->response, "REDACTED", "the mask");
		ASSERT_EQ(count(audit, "\"rule\":\"cloud\"", "\"route\":\"get\""), 1,
			  "the result record names the rule");
	}
	if (test__start_subtest("output_rule_refuses")) {
		ask(s, x, "GET", "/todos/4", "", NULL);
		ASSERT_EQ(status_of(x), 502, "a refusing rule fired");
		ASSERT_STRHAS(x->response, "refused by output rule secret-title", "names the rule");
		ASSERT_NULL(strstr(x->response, "TOPSECRET"), "nothing of the answer");
		ASSERT_EQ(count(audit, "\"refused_by\":\"secret-title\"", NULL), 1,
			  "the result record says so");
	}
	if (test__start_subtest("hostile_targets")) {
		static const char *const bad[] = {
			"/todos/%2e%2e/todos/2",
			"/todos/../todos/2",
			"//todos/2",
			"/todos/2;jsessionid=x",
			"/todos/1%2F2",
			"/todos/1%5c2",
			"/todos?id=1&id=2",
			"/todos?a[b]=1",
			"/todos?q=1;id=2",
			"/todos/%00",
			"/todos/%zz",
			"/todos/./2",
		};
		int before = count(s->log, "\"method\"", NULL);

		for (size_t i = 0; i < AG_ARRAY_SIZE(bad); i++) {
			ask(s, x, "DELETE", bad[i], "", NULL);
			if (!ASSERT_EQ(status_of(x), 400, "refused"))
				fprintf(stderr, "target %s: %.200s\n", bad[i], x->response);
		}
		ASSERT_EQ(count(s->log, "\"method\"", NULL), before, "none reached json-server");
		/* json-server honours X-HTTP-Method-Override: the gateway never sends it. */
		ask(s, x, "POST", "/todos/2", "X-HTTP-Method-Override: DELETE\r\n", "{}");
		ASSERT_EQ(status_of(x), 403, "POST /todos/2: no route");
		ask(s, x, "POST", "/todos", "X-HTTP-Method-Override: DELETE\r\n",
		    "{\"title\":\"ovr\",\"priority\":\"low\"}");
		ASSERT_EQ(status_of(x), 201, "allowed as a create");
		ASSERT_EQ(count(s->log, "x-http-method-override", NULL), 0,
			  "override not upstream");
		ask(s, x, "GET", "/users", "", NULL);
		ASSERT_EQ(status_of(x), 403, "no route: refused");
		ASSERT_STRHAS(x->response, "no route of HTTP service todos", "why");
		ask(s, x, "OPTIONS", "/todos", "", NULL);
		ASSERT_EQ(status_of(x), 405, "a method no route takes");
		ASSERT_STRHAS(x->response, "Allow: GET, POST, PUT, PATCH, DELETE",
			      "what it may use");
		ASSERT_EQ(count(s->db, "\"two\"", NULL), 1, "todo 2 survived all of it");
		ASSERT_EQ(count(s->log, "/users", NULL), 0, "unmatched never upstream");
	}
out:
	svc_stop(s);
	free(s);
}

/* The canonical form alone: what policies see and what is forwarded. */
TEST(http_route_canon)
{
	struct ag_http_route_conf routes[] = {
		{ "get", "GET", "/todos/{id}" },
		{ "sub", "GET", "/Users/{u}/items" },
	};
	struct ag_http_svc_conf svc = { .routes = routes, .nr_routes = 2 };
	static const struct {
		const char *in, *target, *route, *params;
	} ok[] = {
		{ "/todos/a%20b", "/todos/a%20b", "get", "{\"id\": \"a b\"}" },
		{ "/todos/%41~", "/todos/A~", "get", "{\"id\": \"A~\"}" },
		{ "/users/x/ITEMS/", "/Users/x/items", "sub", "{\"u\": \"x\"}" },
		{ "/todos?b=1+2&a=%2F", "/todos?b=1%202&a=%2F", NULL, "{}" },
		{ "/", "/", NULL, "{}" },
		{ "/todos/caf%C3%A9", "/todos/caf%C3%A9", "get", "{\"id\": \"caf\\u00e9\"}" },
	};
	static const char *const bad[] = {
		"/a//b",      "/a/%2e",	       "/a/..", "/a/%2F", "/a;b",
		"/a?x=1&x=2", "/a?x[]=1",      "/a?&",	"/a/%ff", "/a?=1",
		"/a/%0a",     "http://evil/a", "*",	"/a#f",	  "/a/%",
	};
	struct ag_route_req r;
	struct ag_err err;

	for (size_t i = 0; i < AG_ARRAY_SIZE(ok); i++) {
		json_t *want = json_loads(ok[i].params, 0, NULL);

		if (!ASSERT_OK(ag_route_match(&svc, "GET", ok[i].in, strlen(ok[i].in), &r, &err),
			       ok[i].in))
			continue;
		ASSERT_STREQ(r.target, ok[i].target, ok[i].in);
		ASSERT_STREQ(r.route ? r.route->name : "(none)",
			     ok[i].route ? ok[i].route : "(none)", "route");
		ASSERT_TRUE(json_equal(r.params, want), "params");
		json_decref(want);
		ag_route_req_free(&r);
	}
	for (size_t i = 0; i < AG_ARRAY_SIZE(bad); i++)
		ASSERT_EQ(ag_route_match(&svc, "GET", bad[i], strlen(bad[i]), &r, &err), -EINVAL,
			  bad[i]);
	ASSERT_OK(ag_route_match(&svc, "DELETE", "/todos/1", 8, &r, &err), "other method");
	ASSERT_NULL(r.route, "no route for DELETE");
	ag_route_req_free(&r);
	ASSERT_EQ(ag_route_pattern_check("/a/{x-y}", &err), -EINVAL, "param name");
	ASSERT_EQ(ag_route_pattern_check("/a//b", &err), -EINVAL, "empty segment");
	ASSERT_EQ(ag_route_pattern_check("/a/", &err), -EINVAL, "trailing slash");
	ASSERT_OK(ag_route_pattern_check("/a/{id}/b", &err), "a pattern");
}

/* One HTTP service "h" after tool server "t"; ROUTES is its "routes" and more. */
#define SVC(routes)                                                                       \
	"{\"tool_servers\": [{\"name\": \"t\", \"upstream\": \"http://127.0.0.1:3001\", " \
	"\"match\": {\"hosts\": [\"t.test\"]}}], \"http_services\": [{\"name\": \"h\", "  \
	"\"upstream\": \"http://127.0.0.1:3002/api/\", \"match\": {\"addresses\": "       \
	"[\"127.0.0.1\"], \"ports\": [3002]}, " routes "}]}"

TEST(http_svc_config)
{
	static const struct {
		const char *json, *error;
	} bad[] = {
		{ SVC("\"routes\": [{\"name\": \"r\", \"method\": \"HEAD\", \"path\": \"/a\"}]"),
		  "$.http_services[0].routes[0]: \"HEAD\": expected" },
		{ SVC("\"routes\": [{\"name\": \"r\", \"method\": \"GET\", \"path\": "
		      "\"/a/../b\"}]"),
		  "$.http_services[0].routes[0]: \"/a/../b\"" },
		{ SVC("\"routes\": [{\"name\": \"r\", \"method\": \"GET\", \"path\": \"/a/{b "
		      "c}\"}]"),
		  "$.http_services[0].routes[0]: \"/a/{b c}\"" },
		{ SVC("\"routes\": [{\"name\": \"r\", \"method\": \"GET\", \"path\": \"/a\"}, "
		      "{\"name\": \"r\", \"method\": \"GET\", \"path\": \"/b\"}]"),
		  "duplicate route name \"r\"" },
		{ SVC("\"routes\": [], \"unmatched\": \"allow\""),
		  "$.http_services[0].unmatched: \"allow\": expected" },
		{ SVC("\"routes\": [], \"trust\": \"explicit\""),
		  "$.http_services[0].trust: unknown key" },
		{ SVC("\"routes\": [], \"context_headers\": [\"X Y\"]"),
		  "$.http_services[0].context_headers[0]" },
		{ SVC("\"unmatched\": \"policy\""), "$.http_services[0].routes: required (or" },
		{ "{\"http_services\": [{\"name\": \"h\", \"upstream\": "
		  "\"http://127.0.0.1:1/a?b=c\", "
		  "\"match\": {\"hosts\": [\"h.test\"]}, \"routes\": []}]}",
		  "takes no query" },
	};
	struct ag_conf c;
	struct ag_err err;

	for (size_t i = 0; i < AG_ARRAY_SIZE(bad); i++) {
		memset(&c, 0, sizeof(c));
		ASSERT_NEQ(tconf_load(bad[i].json, &c, &err), 0, "rejected");
		if (!ASSERT_TRUE(strstr(err.msg, bad[i].error), "error names the value"))
			fprintf(stderr, "  want %s\n  got: %s\n", bad[i].error, err.msg);
	}
	memset(&c, 0, sizeof(c));
	if (!ASSERT_OK(
		tconf_load(SVC("\"routes\": [{\"name\": \"r\", \"method\": \"PATCH\", "
			       "\"path\": \"/a/{id}\"}], \"context_headers\": [\"X-Tenant\"], "
			       "\"unmatched\": \"policy\""),
			   &c, &err),
		err.msg))
		return;
	ASSERT_EQ(c.nr_servers, 2, "a tool server and an HTTP service");
	ASSERT_NULL(c.servers[0].http, "t is a tool server");
	if (ASSERT_OK_PTR(c.servers[1].http, "h is an HTTP service")) {
		ASSERT_STREQ(c.servers[1].http->routes[0].method, "PATCH", "method");
		ASSERT_STREQ(c.servers[1].http->headers[0], "x-tenant", "header, lower case");
		ASSERT_TRUE(c.servers[1].http->unmatched_policy, "unmatched: policy");
		ASSERT_STREQ(c.servers[1].upstream_path, "/api/", "the upstream's prefix");
	}
	ag_conf_free(&c);
}

/* "openapi": routes from an OpenAPI 3 document, named by operationId. */
TEST(http_svc_openapi)
{
	static const char doc[] =
	    "{\"openapi\": \"3.0.3\", \"info\": {\"title\": \"t\", \"version\": \"1\"}, "
	    "\"paths\": {\"/todos\": {\"get\": {\"operationId\": \"listTodos\"}, "
	    "\"post\": {\"operationId\": \"createTodo\"}}, \"/todos/{id}\": {\"parameters\": "
	    "[], \"delete\": {\"operationId\": \"deleteTodo\"}}}}";
	char dir[] = "/tmp/agt-openapi.XXXXXX", file[64], json[1024], *out = NULL;
	struct ag_conf c = { 0 };
	struct ag_route_req r;
	struct ag_err err;

	if (!ASSERT_OK_PTR(mkdtemp(dir), "dir"))
		return;
	snprintf(file, sizeof(file), "%s/api.json", dir);
	if (!ASSERT_OK(write_file(file, doc), "document"))
		goto out;
	snprintf(json, sizeof(json),
		 SVC("\"openapi\": \"%s\", \"routes\": [{\"name\": \"first\", "
		     "\"method\": \"GET\", \"path\": \"/todos\"}]"),
		 file);
	if (!ASSERT_OK(tconf_load(json, &c, &err), err.msg))
		goto out;
	ASSERT_EQ(c.servers[1].http->nr_routes, 4, "one configured, three generated");
	ASSERT_OK(ag_route_match(c.servers[1].http, "DELETE", "/todos/7", 8, &r, &err), "match");
	ASSERT_STREQ(r.route ? r.route->name : "", "deleteTodo", "named by its operationId");
	ag_route_req_free(&r);
	ASSERT_OK(ag_route_match(c.servers[1].http, "GET", "/todos", 6, &r, &err), "match");
	ASSERT_STREQ(r.route ? r.route->name : "", "first", "the configured route first");
	ag_route_req_free(&r);
	ag_conf_free(&c);
	/* An operation without an operationId has no name: refused. */
	if (!ASSERT_OK(write_file(file, "{\"openapi\": \"3.1.0\", \"paths\": {\"/a\": "
					"{\"get\": {}}}}"),
		       "document"))
		goto out;
	memset(&c, 0, sizeof(c));
	ASSERT_NEQ(tconf_load(json, &c, &err), 0, "refused");
	ASSERT_STRHAS(err.msg, "paths[\"/a\"].get.operationId: required", "names the operation");
out:
	run_capture(&out, "rm -rf '%s'", dir);
	free(out);
}
