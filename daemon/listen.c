// SPDX-License-Identifier: GPL-2.0
/*
 * The sockets agentgated serves on (see listen.h), opened at start-up
 * while the daemon still holds its privileges: the agents' listeners are
 * marked (the connect hooks let the daemon's own sockets through) and the
 * DNS relay binds port 53.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "daemon.h"
#include "listen.h"
#include "netns.h"
#include "upgrade.h"

#define LISTEN_BACKLOG 4096
/* Short: a live daemon of another instance holds the relay's port for good. */
#define DNS_BIND_TRIES 20

/*
 * filter_fd >= 0 (IPv4 only): the listener takes the wildcard address, so
 * that agents in network namespaces of their own reach it at the gateway
 * address of their veth, and ag_gateway_filter (bpf/sock.bpf.c), attached
 * before bind, keeps it to loopback and those veths: to any other
 * interface the port looks closed.
 */
static int listen_on(int family, uint16_t port, uint32_t mark, int filter_fd, struct ag_err *err)
{
	struct sockaddr_storage ss;
	socklen_t len;
	const char *what = family == AF_INET6 ? "[::1]" : filter_fd >= 0 ? "0.0.0.0" : "127.0.0.1";
	int fd, one = 1;

	memset(&ss, 0, sizeof(ss));
	if (family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&ss;

		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
		sin->sin_addr.s_addr = htonl(filter_fd >= 0 ? INADDR_ANY : INADDR_LOOPBACK);
		len = sizeof(*sin);
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;

		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(port);
		sin6->sin6_addr = in6addr_loopback;
		len = sizeof(*sin6);
	}
	fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return ag_errf(err, errno, "listener %s:%u: socket: %s", what, port,
			       strerror(errno));
	/* The mark is what the connect hooks check: this is the daemon's. */
	if (setsockopt(fd, SOL_SOCKET, SO_MARK, &mark, sizeof(mark)) ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    (filter_fd >= 0 &&
	     setsockopt(fd, SOL_SOCKET, SO_ATTACH_BPF, &filter_fd, sizeof(filter_fd))) ||
	    (family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)))) {
		int e = errno;

		close(fd);
		return ag_errf(err, e, "listener %s:%u: setsockopt: %s", what, port, strerror(e));
	}
	if (ag_bind_wait(fd, (struct sockaddr *)&ss, len, 200) || listen(fd, LISTEN_BACKLOG)) {
		int e = errno;

		close(fd);
		return ag_errf(err, e, "listener %s:%u: %s%s", what, port, strerror(e),
			       e == EADDRINUSE ? " (another agentgated? set listen.port)" : "");
	}
	return fd;
}

/*
 * The DNS relay's socket (dns.h) on the instance's gateway address (gw,
 * network order), which no interface may carry yet (IP_FREEBIND), behind
 * the listener's filter; IP_PKTINFO names the veth each query came
 * through.  Bound here, before the capabilities go: port 53 is privileged.
 */
static int dns_open(uint32_t mark, int filter_fd, uint32_t gw, struct ag_err *err)
{
	struct sockaddr_in sin = { .sin_family = AF_INET,
				   .sin_port = htons(AG_NETNS_DNS_PORT),
				   .sin_addr.s_addr = gw };
	char addr[INET_ADDRSTRLEN];
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), one = 1, e;

	if (fd < 0)
		return ag_errf(err, errno, "dns relay: socket: %s", strerror(errno));
	if (setsockopt(fd, SOL_SOCKET, SO_MARK, &mark, sizeof(mark)) ||
	    setsockopt(fd, IPPROTO_IP, IP_FREEBIND, &one, sizeof(one)) ||
	    setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &one, sizeof(one)) ||
	    setsockopt(fd, SOL_SOCKET, SO_ATTACH_BPF, &filter_fd, sizeof(filter_fd)) ||
	    ag_bind_wait(fd, (struct sockaddr *)&sin, sizeof(sin), DNS_BIND_TRIES)) {
		e = errno;
		close(fd);
		inet_ntop(AF_INET, &gw, addr, sizeof(addr));
		return ag_errf(err, e, "dns relay %s:%u: %s%s", addr, AG_NETNS_DNS_PORT,
			       strerror(e),
			       e == EADDRINUSE ? " (another instance's agentgated serves it)" : "");
	}
	return fd;
}

/*
 * The DNS relay's socket for agents in the daemon's own namespace: the
 * hooks send their resolver datagrams to it (config dns_relay_*), so it
 * needs no well-known port: the kernel picks one, on loopback only.
 */
static int dns_host_open(uint32_t mark, struct ag_config *kcfg, struct ag_err *err)
{
	struct sockaddr_in sin = { .sin_family = AF_INET,
				   .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sin);
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), e;

	if (fd < 0)
		return ag_errf(err, errno, "dns relay 127.0.0.1: socket: %s", strerror(errno));
	if (setsockopt(fd, SOL_SOCKET, SO_MARK, &mark, sizeof(mark)) ||
	    bind(fd, (struct sockaddr *)&sin, sizeof(sin)) ||
	    getsockname(fd, (struct sockaddr *)&sin, &len)) {
		e = errno;
		close(fd);
		return ag_errf(err, e, "dns relay 127.0.0.1: %s", strerror(e));
	}
	kcfg->dns_relay_ip4 = sin.sin_addr.s_addr;
	kcfg->dns_relay_port = ntohs(sin.sin_port);
	return fd;
}

int ag_listen_control(const struct ag_instance *in, struct ag_err *err)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd;

	if (strlen(in->control_path) >= sizeof(sun.sun_path))
		return ag_errf(err, ENAMETOOLONG, "%s: path too long for a socket",
			       in->control_path);
	strcpy(sun.sun_path, in->control_path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return ag_errf(err, errno, "%s: socket: %s", in->control_path, strerror(errno));
	unlink(in->control_path);
	/* Created 0600 from the start: no window in which others could connect. */
	mode_t old = umask(0177);
	int ret = bind(fd, (struct sockaddr *)&sun, sizeof(sun));

	umask(old);
	if (ret || listen(fd, 64)) {
		int e = errno;

		close(fd);
		return ag_errf(err, e, "%s: %s", in->control_path, strerror(e));
	}
	return fd;
}

int ag_listen_open(struct ag_daemon *d, struct ag_config *kcfg, struct ag_err *err)
{
	/* An instance pinned before the filter existed serves loopback only. */
	int filter_fd = ag_kern_gateway_filter(&d->inst, err);

	if (filter_fd < 0)
		ag_log(AG_LOG_WARN, "listen", "netns_agents=off error=\"%s\"", err->msg);
	d->listen_fd[AG_LISTEN_V4] = listen_on(AF_INET, d->conf.port, d->conf.mark, filter_fd, err);
	/* Without it the agents' DNS goes unanswered; their TCP is governed all the same. */
	if (filter_fd >= 0 && d->listen_fd[AG_LISTEN_V4] >= 0 &&
	    (d->dns_fd = dns_open(d->conf.mark, filter_fd, kcfg->netns_gateway_ip4, err)) < 0) {
		ag_log(AG_LOG_WARN, "listen", "dns_relay=off error=\"%s\"", err->msg);
		d->dns_fd = -1;
	}
	if (filter_fd >= 0)
		close(filter_fd);
	/* Fail closed: without it host agents' DNS is refused in the kernel. */
	if ((d->dns_host_fd = dns_host_open(d->conf.mark, kcfg, err)) < 0) {
		ag_log(AG_LOG_WARN, "listen", "dns_relay_host=off error=\"%s\"", err->msg);
		d->dns_host_fd = -1;
	}
	if (d->listen_fd[AG_LISTEN_V4] < 0)
		return d->listen_fd[AG_LISTEN_V4];
	if (d->conf.ipv6) {
		d->listen_fd[AG_LISTEN_V6] =
		    listen_on(AF_INET6, d->conf.port, d->conf.mark, -1, err);
		/*
		 * A host without IPv6 on loopback still gets a gateway; its
		 * agents' IPv6 connects are refused (no_ipv6_listener).
		 */
		if (d->listen_fd[AG_LISTEN_V6] == -EADDRNOTAVAIL ||
		    d->listen_fd[AG_LISTEN_V6] == -EAFNOSUPPORT) {
			ag_log(AG_LOG_WARN, "listen", "ipv6=off error=\"%s\"", err->msg);
			d->listen_fd[AG_LISTEN_V6] = -1;
			d->conf.ipv6 = false;
			memset(kcfg->daemon_ip6, 0, sizeof(kcfg->daemon_ip6));
		} else if (d->listen_fd[AG_LISTEN_V6] < 0) {
			return d->listen_fd[AG_LISTEN_V6];
		}
	}
	return 0;
}

int ag_listen_take(struct ag_daemon *d, struct ag_config *kcfg, struct ag_err *err)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	int ret = ag_upgrade_take(d->upgrade, d, kcfg->dns_relay_port, err);

	if (ret)
		return ret;
	if (d->listen_fd[AG_LISTEN_V6] < 0) {
		d->conf.ipv6 = false;
		memset(kcfg->daemon_ip6, 0, sizeof(kcfg->daemon_ip6));
	}
	if (d->dns_host_fd >= 0 && !getsockname(d->dns_host_fd, (struct sockaddr *)&sin, &len)) {
		kcfg->dns_relay_ip4 = sin.sin_addr.s_addr;
		kcfg->dns_relay_port = ntohs(sin.sin_port);
	}
	return 0;
}
