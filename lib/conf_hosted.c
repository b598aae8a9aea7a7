// SPDX-License-Identifier: GPL-2.0
/*
 * "tool_servers[].command" (struct ag_hosted_conf): a stdio MCP server the
 * gateway hosts (daemon/hosted.h).  Plain values only; the user is looked
 * up when the server starts, so config check works on another host.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf_int.h"
#include "kern.h"

/* The bridge binds upstream: only a plain-HTTP loopback literal is one it can own. */
static int check_upstream(struct parse *p, const char *path, const struct ag_server_conf *s)
{
	char host[AG_HOST_LEN];
	uint8_t a[16];
	int plen;
	size_t n = strlen(s->upstream_host);

	snprintf(host, sizeof(host), "%s", s->upstream_host);
	if (n > 2 && host[0] == '[') {
		memmove(host, host + 1, n - 2);
		host[n - 2] = '\0';
	}
	if (s->upstream_tls || ag_addr_parse(host, a, &plen) || plen != 128 ||
	    !ag_addr_is_loopback(a))
		return conf_badf(p, path,
				 "a hosted server is served at its \"upstream\": expected "
				 "http://127.0.0.1:PORT/PATH or http://[::1]:PORT/PATH, not \"%s\"",
				 s->upstream_url);
	return 0;
}

/* A NULL-terminated copy of an array of strings, each of 1..AG_HOSTED_ARG_MAX-1 bytes. */
static int get_strings(struct parse *p, const char *path, json_t *v, size_t max, char ***out,
		       int *nr)
{
	char where[512];
	size_t i;
	json_t *e;
	int ret;

	if (!json_is_array(v) || !json_array_size(v) || json_array_size(v) > max)
		return conf_badf(p, path, "expected an array of 1-%zu strings", max);
	if (!(*out = calloc(json_array_size(v) + 1, sizeof(**out))))
		return conf_nomem(p);
	json_array_foreach(v, i, e)
	{
		const char *str;

		snprintf(where, sizeof(where), "%s[%zu]", path, i);
		if ((ret = conf_get_string(p, where, e, &str)))
			return ret;
		if (strlen(str) >= AG_HOSTED_ARG_MAX)
			return conf_badf(p, where, "longer than %d bytes", AG_HOSTED_ARG_MAX - 1);
		if (!((*out)[i] = strdup(str)))
			return conf_nomem(p);
		(*nr)++;
	}
	return 0;
}

/* "env": {"NAME": "value"}: what the server gets besides PATH, HOME, USER and LOGNAME. */
static int parse_env(struct parse *p, const char *path, json_t *v, struct ag_hosted_conf *h)
{
	char where[512];
	const char *k;
	json_t *e;

	if (!json_is_object(v) || json_object_size(v) > AG_HOSTED_MAX_ENV)
		return conf_badf(p, path, "expected an object of at most %d strings",
				 AG_HOSTED_MAX_ENV);
	if (!(h->env = calloc(json_object_size(v) + 1, sizeof(*h->env))))
		return conf_nomem(p);
	json_object_foreach(v, k, e)
	{
		const char *val;
		size_t kn = strlen(k);
		int ret;

		snprintf(where, sizeof(where), "%s.%.64s", path, k);
		if (!kn || strchr(k, '=') || conf_has_control(k))
			return conf_bad(p, where, "expected a variable name without '='");
		if ((ret = conf_get_string(p, where, e, &val)))
			return ret;
		if (kn + strlen(val) + 2 > AG_HOSTED_ARG_MAX)
			return conf_badf(p, where, "longer than %d bytes", AG_HOSTED_ARG_MAX - 2);
		if (asprintf(&h->env[h->nr_env], "%s=%s", k, val) < 0)
			return conf_nomem(p);
		h->nr_env++;
	}
	return 0;
}

static int parse_processes(struct parse *p, const char *path, json_t *obj, struct ag_hosted_conf *h)
{
	char where[400], mode[16] = "shared";
	uint64_t n = 16;
	int ret;

	if ((ret = conf_get_optional(p, path, obj, "processes", mode, sizeof(mode))))
		return ret;
	snprintf(where, sizeof(where), "%s.processes", path);
	if (!strcmp(mode, "per_session"))
		h->per_session = true;
	else if (strcmp(mode, "shared"))
		return conf_badf(p, where, "\"%s\": expected \"shared\" or \"per_session\"", mode);
	snprintf(where, sizeof(where), "%s.max_sessions", path);
	if (json_object_get(obj, "max_sessions") &&
	    ((ret = conf_get_uint(p, where, json_object_get(obj, "max_sessions"),
				  AG_HOSTED_MAX_SESSIONS, &n)) ||
	     !n))
		return ret ? ret : conf_badf(p, where, "expected 1-%d", AG_HOSTED_MAX_SESSIONS);
	h->max_sessions = (uint32_t)n;
	return 0;
}

int conf_parse_hosted(struct parse *p, const char *path, json_t *v, struct ag_server_conf *s)
{
	struct ag_hosted_conf *h;
	char where[400];
	int ret;

	if ((ret = conf_check_keys(p, path, v, conf_hosted_keys)))
		return ret;
	if ((ret = check_upstream(p, path, s)))
		return ret;
	if (!(h = s->hosted = calloc(1, sizeof(*h))))
		return conf_nomem(p);
	snprintf(where, sizeof(where), "%s.argv", path);
	if ((ret = get_strings(p, where, json_object_get(v, "argv"), AG_HOSTED_MAX_ARGS, &h->argv,
			       &h->argc)))
		return ret;
	/* Fail closed: no PATH search, whose result would depend on the daemon's environment. */
	if (h->argv[0][0] != '/')
		return conf_badf(p, where, "\"%s\": the program must be an absolute path",
				 h->argv[0]);
	snprintf(where, sizeof(where), "%s.env", path);
	if (json_object_get(v, "env") && (ret = parse_env(p, where, json_object_get(v, "env"), h)))
		return ret;
	strcpy(h->cwd, "/");
	snprintf(where, sizeof(where), "%s.cwd", path);
	if (json_object_get(v, "cwd") &&
	    (ret = conf_path(p, where, json_object_get(v, "cwd"), h->cwd)))
		return ret;
	if ((ret = conf_get_optional(p, path, v, "user", h->user, sizeof(h->user))) ||
	    (ret = conf_get_optional(p, path, v, "agent", h->agent, sizeof(h->agent))))
		return ret;
	snprintf(where, sizeof(where), "%s.agent", path);
	h->agent_set = h->agent[0] != '\0';
	if (!h->agent_set)
		strcpy(h->agent, s->name);
	else if (!ag_agent_name_valid(h->agent))
		return conf_badf(p, where, "\"%s\": expected an agent name", h->agent);
	return parse_processes(p, path, v, h);
}

int conf_check_hosted(struct parse *p, const struct ag_conf *c)
{
	char where[128];

	for (int i = 0; i < c->nr_servers; i++) {
		const struct ag_hosted_conf *h = c->servers[i].hosted;
		bool found = false;

		if (!h || !h->agent_set)
			continue;
		for (int a = 0; a < c->nr_agents && !found; a++)
			found = !strcmp(c->agents[a].name, h->agent);
		snprintf(where, sizeof(where), "$.tool_servers[%d].command.agent", i);
		/* Fail closed: a misspelt name would silently govern the server by nothing. */
		if (!found)
			return conf_badf(p, where, "\"%s\": no such agent in \"agents\"", h->agent);
	}
	return 0;
}

void conf_free_hosted(struct ag_server_conf *s)
{
	struct ag_hosted_conf *h = s->hosted;

	if (!h)
		return;
	for (int i = 0; i < h->argc; i++)
		free(h->argv[i]);
	for (int i = 0; i < h->nr_env; i++)
		free(h->env[i]);
	free(h->argv);
	free(h->env);
	free(h);
	s->hosted = NULL;
}
