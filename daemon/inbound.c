// SPDX-License-Identifier: GPL-2.0
/*
 * The inbound surface's listener, certificate, keys and metadata (see
 * inbound.h); each request is inbound_http.c's.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "admit.h"
#include "daemon.h"
#include "guard.h"
#include "hostport.h"
#include "inbound_int.h"
#include "loop.h"

#define INBOUND_BACKLOG 1024

static int listen_open(const struct ag_inbound_conf *ic, struct ag_err *err)
{
	struct sockaddr_storage ss = { 0 };
	socklen_t len;
	char what[64];
	int fd, one = 1;

	ag_addr_fmt(ic->addr, ic->port, what, sizeof(what));
	len = ag_addr_sockaddr(ic->addr, ic->port, (struct sockaddr *)&ss, sizeof(ss));
	if ((fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return ag_errf(err, errno, "inbound %s: socket: %s", what, strerror(errno));
	/* SO_REUSEPORT: an upgrading daemon binds it while the old one drains. */
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) ||
	    (ss.ss_family == AF_INET6 &&
	     setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one))) ||
	    bind(fd, (struct sockaddr *)&ss, len) || listen(fd, INBOUND_BACKLOG)) {
		int e = errno;

		close(fd);
		return ag_errf(err, e, "inbound %s: %s", what, strerror(e));
	}
	return fd;
}

/* RFC 9728 §2: what an outside agent reads to find the authorization server. */
static int metadata_make(struct ag_inbound *in, struct ag_err *err)
{
	const struct ag_inbound_conf *ic = in->conf;
	json_t *scopes = json_array(), *doc;

	for (int i = 0; scopes && i < ic->nr_grants; i++) {
		bool seen = false;

		for (int k = 0; k < i; k++)
			seen = seen || !strcmp(ic->grants[k].scope, ic->grants[i].scope);
		if (!seen && json_array_append_new(scopes, json_string(ic->grants[i].scope)))
			break;
	}
	doc = json_pack("{s:s,s:[s],s:o,s:[s],s:s}", "resource", ic->resource,
			"authorization_servers", ic->issuer, "scopes_supported", scopes,
			"bearer_methods_supported", "header", "resource_name", "agentgate");
	in->metadata = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
	json_decref(doc);
	return in->metadata ? 0 : ag_errf(err, ENOMEM, "inbound: out of memory");
}

/* The metadata's URL and path, and the Host requests must name, from the resource URL. */
static int names_make(struct ag_inbound *in, struct ag_err *err)
{
	const struct ag_inbound_conf *ic = in->conf;
	const char *path = strcmp(ic->resource_path, "/") ? ic->resource_path : "";
	char why[300];
	struct ag_url u;

	if (ag_url_parse(ic->resource, &u, why, sizeof(why)) ||
	    u.authority_len >= sizeof(in->authority))
		return ag_errf(err, EINVAL, "inbound resource: %s", why);
	memcpy(in->authority, u.authority, u.authority_len);
	in->authority[u.authority_len] = '\0';
	snprintf(in->metadata_path, sizeof(in->metadata_path), "%s%s", METADATA_PATH, path);
	snprintf(in->metadata_url, sizeof(in->metadata_url), "%s://%s%s",
		 u.https ? "https" : "http", in->authority, in->metadata_path);
	return 0;
}

static const struct ag_server_conf *server_of(const struct ag_conf *c, const char *name)
{
	for (int i = 0; i < c->nr_servers; i++)
		if (!strcmp(c->servers[i].name, name))
			return &c->servers[i];
	return NULL;
}

int ag_inbound_start(struct ag_daemon *d, struct ag_err *err)
{
	const struct ag_inbound_conf *ic = &d->conf.inbound;
	struct ag_rs_jwks_conf jc = {
		.url = ic->jwks_uri,
		.ca_file = ic->ca_file[0] ? ic->ca_file : NULL,
		.mark = d->conf.mark,
		.refresh_s = ic->jwks_refresh_s,
		.min_interval_s = ic->jwks_min_interval_s,
		.notify_fd = -1,
	};
	struct ag_inbound *in;
	int ret;

	if (!ic->port)
		return 0;
	if (!(in = calloc(1, sizeof(*in))))
		return ag_errf(err, ENOMEM, "inbound: out of memory");
	in->conf = ic;
	in->fd = -1;
	d->inbound = in;
	/* Fail closed: parsing checked it, but a config and its daemon must agree. */
	if (!(in->srv = server_of(&d->conf, ic->server)))
		return ag_errf(err, ENOENT, "inbound: no tool server %s", ic->server);
	if ((ret = names_make(in, err)) || (ret = metadata_make(in, err)))
		return ret;
	if (!(in->ctx = ag_tls_server_ctx_files(ic->cert_file, ic->key_file, err)))
		return -EINVAL;
	if ((in->fd = listen_open(ic, err)) < 0)
		return in->fd;
	if ((ret = ag_rs_jwks_start(&jc, &in->jwks, err)))
		return ret;
	ag_log(AG_LOG_INFO, "inbound", "listen=%s server=%s resource=%s", ic->resource, ic->server,
	       ic->resource);
	return 0;
}

int ag_inbound_guard(struct ag_daemon *d, struct ag_err *err)
{
	const struct ag_inbound_conf *ic = &d->conf.inbound;
	struct ag_guard_config g = { .rate = ic->guard_rate,
				     .burst = ic->guard_burst,
				     .port = ic->port };
	int ret;

	if (!ic->port || !ic->guard_iface[0])
		return 0;
	/* Fail closed: a listener asked to be guarded does not serve unguarded. */
	if ((ret = ag_guard_set(&d->inst, ic->guard_iface, &g, err)))
		return ret;
	ag_log(AG_LOG_INFO, "inbound", "guard=%s port=%u rate=%u burst=%u", ic->guard_iface,
	       ic->port, ic->guard_rate, ic->guard_burst);
	return 0;
}

void ag_inbound_stop(struct ag_daemon *d)
{
	struct ag_inbound *in = d->inbound;

	if (!in)
		return;
	ag_rs_jwks_stop(in->jwks);
	if (in->fd >= 0)
		close(in->fd);
	if (in->ctx)
		SSL_CTX_free(in->ctx);
	free(in->metadata);
	free(in);
	d->inbound = NULL;
}

int ag_inbound_fd(const struct ag_daemon *d)
{
	return d->inbound ? d->inbound->fd : -1;
}

/*
 * An outside connection has no origin in the kernel: its admission names
 * the listener's address as the destination and "inbound" as the agent
 * until its first token says who it is (inbound_http.c).
 */
void ag_inbound_accept(struct ag_loop *l, int fd)
{
	struct ag_inbound *in = l->d->inbound;
	struct ag_admission a = { 0 };
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	struct ag_inbound_id *id;
	uint64_t suppressed;

	/* Fail closed: outside agents share one cap, before any TLS work. */
	if (in->active >= l->d->conf.max_conns_per_agent) {
		if (ag_limit_allow(&in->limit, 0, &suppressed))
			ag_log(AG_LOG_WARN, "conn_rejected",
			       "reason=over_inbound_cap active=%u suppressed=%llu", in->active,
			       (unsigned long long)suppressed);
		ag_set_rst(fd);
		close(fd);
		return;
	}
	if (!(id = calloc(1, sizeof(*id))) || getsockname(fd, (struct sockaddr *)&ss, &sl)) {
		free(id);
		ag_set_rst(fd);
		close(fd);
		return;
	}
	in->active++;
	if (ss.ss_family == AF_INET) {
		a.o.addr[10] = a.o.addr[11] = 0xff;
		memcpy(a.o.addr + 12, &((struct sockaddr_in *)&ss)->sin_addr, 4);
	} else {
		memcpy(a.o.addr, &((struct sockaddr_in6 *)&ss)->sin6_addr, 16);
	}
	a.o.port = in->conf->port;
	a.o.family = ss.ss_family;
	snprintf(a.agent, sizeof(a.agent), "inbound");
	ag_mcp_start_inbound(l, fd, &a, in->srv, in->ctx, id);
}

void ag_inbound_conn_end(struct ag_daemon *d, struct ag_inbound_id *id)
{
	if (id && d->inbound)
		d->inbound->active--;
	free(id);
}
