// SPDX-License-Identifier: GPL-2.0
/*
 * The configuration's I/O, after parsing (see lib/conf_int.h): what the
 * parsed values name is looked up, opened or compiled once, at load, so
 * the daemon fails to start on a typo rather than failing every call, and
 * the relay never blocks on DNS.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <netinet/in.h>

#include "conf_int.h"
#include "fileio.h"
#include "hostport.h"
#include "redact.h"
#include "secret.h"

/*
 * Resolved once, at load: the relay must not block on DNS, and a typo
 * should stop the daemon from starting rather than fail every call.
 */
static int resolve_upstream(struct parse *p, const char *path, struct ag_server_conf *s)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM }, *res, *ai;
	char name[AG_HOST_LEN];
	size_t n = strlen(s->upstream_host);
	int ret;

	if (s->upstream_host[0] == '[') {
		memcpy(name, s->upstream_host + 1, n - 2);
		name[n - 2] = '\0';
	} else {
		memcpy(name, s->upstream_host, n + 1);
	}
	ret = getaddrinfo(name, NULL, &hints, &res);
	if (ret)
		return conf_badf(p, path, "host \"%s\": %s", name,
				 ret == EAI_SYSTEM ? strerror(errno) : gai_strerror(ret));
	for (ai = res; ai; ai = ai->ai_next) {
		if (ai->ai_family == AF_INET) {
			const struct sockaddr_in *sin = (const void *)ai->ai_addr;

			memset(s->upstream_addr, 0, 16);
			s->upstream_addr[10] = s->upstream_addr[11] = 0xff;
			memcpy(s->upstream_addr + 12, &sin->sin_addr, 4);
			break;
		}
		if (ai->ai_family == AF_INET6) {
			const struct sockaddr_in6 *sin6 = (const void *)ai->ai_addr;

			memcpy(s->upstream_addr, &sin6->sin6_addr, 16);
			break;
		}
	}
	freeaddrinfo(res);
	if (!ai)
		return conf_badf(p, path, "host \"%s\": no IPv4 or IPv6 address", name);
	return 0;
}

/* Opened now so that a missing CA fails the start, not every call. */
static int check_ca_file(struct parse *p, const char *path, const char *file)
{
	struct ag_err why;
	int fd = ag_file_open(AT_FDCWD, NULL, file, 0, NULL, &why);

	if (fd < 0)
		return conf_badf(p, path, "%s: %s", file,
				 fd == -EINVAL ? "not a regular file" : strerror(-fd));
	close(fd);
	return 0;
}

/* A bad path or regex is the file's error, not a surprise at the first call. */
static int compile_rules(struct parse *p, const char *path, const struct ag_server_conf *s)
{
	struct ag_redact_rule rules[AG_REDACT_MAX_RULES];
	struct ag_redactor *check;
	struct ag_err why;

	ag_output_rules_view(s, rules);
	if (!(check = ag_redactor_new(rules, (size_t)s->nr_out_rules, 0, &why)))
		return conf_badf(p, path, "%s", why.msg);
	ag_redactor_free(check);
	return 0;
}

/* One server's I/O, in the order its keys were parsed. */
static int resolve_server(struct parse *p, const struct ag_conf *c, int i, struct ag_server_conf *s)
{
	struct ag_secret *sec = NULL;
	char where[256];
	int ret;

	snprintf(where, sizeof(where), "$.tool_servers[%d].upstream", i);
	if ((ret = resolve_upstream(p, where, s)))
		return ret;
	/* Fail closed: 0.0.0.0 and [::] reach the listener as well as loopback does. */
	if (ag_addr_is_local(s->upstream_addr) && s->upstream_port == c->port)
		return conf_badf(
		    p, where, "\"%s\": that is the gateway's own listener (port %u): it would loop",
		    s->upstream_url, c->port);
	snprintf(where, sizeof(where), "$.tool_servers[%d].tls.ca_file", i);
	if (s->ca_file[0] && (ret = check_ca_file(p, where, s->ca_file)))
		return ret;
	/* Secret files are read here, so a bad one stops the daemon (and config check)
	 * with a message naming it, before any call needs it. */
	if (s->cred != AG_CRED_NONE && s->cred != AG_CRED_ASSERTION) {
		if (ag_secret_load(s->cred_file, 0, &sec, p->err))
			return -EINVAL; /* the message names the file and the fix */
		ag_secret_free(sec);
	}
	snprintf(where, sizeof(where), "$.tool_servers[%d].output_rules", i);
	return compile_rules(p, where, s);
}

int conf_resolve(struct parse *p, struct ag_conf *c)
{
	int ret;

	for (int i = 0; i < c->nr_servers; i++)
		if ((ret = resolve_server(p, c, i, &c->servers[i])))
			return ret;
	return 0;
}

int ag_conf_resolve(struct ag_conf *c, const char *path, struct ag_err *err)
{
	struct parse p = { .file = path, .err = err };

	return conf_resolve(&p, c);
}
