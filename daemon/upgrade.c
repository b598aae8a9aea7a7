// SPDX-License-Identifier: GPL-2.0
/*
 * agentgated --upgrade: a new build takes over a running instance with no
 * moment in which an agent's connect is unhooked or refused.
 *
 *  new: BEGIN (old pid, pidfd)
 *    -> KERNEL   lib/kern_upgrade.c: new programs on the same links and maps
 *    -> TAKE     copies of the old daemon's listeners and DNS sockets
 *    -> SERVING  the new daemon's socket replaces the old's in the serving map
 *    -> HANDOFF  SIGUSR2: the old stops accepting, drains, exits
 *    -> OWN      control socket, pidfile, audit log: the old's are gone now
 *    -> READY
 *  old: SERVING --SIGUSR2--> DRAINING (no accepts; connections finish, or
 *       AG_UPGRADE_DRAIN_S) --> exits, leaving the serving entry (not its own)
 *
 * Ordering hazards:
 *  - Every refusal (version, map layout, sockets not found) comes before
 *    SERVING, and changes nothing the old daemon uses: it keeps serving.
 *  - The listeners are the same sockets in both daemons, so a connect
 *    redirected at any moment lands in one backlog; whichever daemon
 *    accepts it governs it.  From HANDOFF to READY nobody accepts: connects
 *    complete in the kernel and wait in the backlog (up to the old
 *    daemon's drain), they are neither refused nor lost.
 *  - SERVING before HANDOFF: the old daemon's exit closes its serving
 *    socket, which would empty the map (fail closed: refusals) if its
 *    socket were still the entry.  Its teardown deletes the entry only if
 *    it is its own (lib/kern.c).
 *  - OWN after the old daemon's exit: one audit writer at a time on the
 *    hash chain, and the old daemon's teardown removes its control socket
 *    and pidfile, which must not be the new ones.
 *  - A failure after HANDOFF fails closed: this daemon's exit empties the
 *    serving map, and agents' connects are refused until a daemon starts.
 */
#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/syscall.h>

#include "daemon.h"
#include "upgrade.h"

/* An upper bound on the old daemon's descriptors looked at. */
#define MAX_FDS 65536

int ag_upgrade_begin(struct ag_upgrade *u, const struct ag_instance *in, struct ag_err *err)
{
	u->pidfd = -1;
	u->pid = ag_instance_daemon_pid(in);
	if (!u->pid)
		return ag_errf(err, ESRCH, "instance %s: no running agentgated to upgrade",
			       in->name);
	u->pidfd = (int)syscall(SYS_pidfd_open, u->pid, 0);
	if (u->pidfd < 0)
		return ag_errf(err, errno, "agentgated pid %d: pidfd_open: %s", u->pid,
			       strerror(errno));
	return 0;
}

void ag_upgrade_end(struct ag_upgrade *u)
{
	if (u->pidfd >= 0)
		close(u->pidfd);
	u->pidfd = -1;
}

static int sock_int(int fd, int opt)
{
	int v = -1;
	socklen_t len = sizeof(v);

	return getsockopt(fd, SOL_SOCKET, opt, &v, &len) ? -1 : v;
}

static uint16_t sock_port(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	if (getsockname(fd, (struct sockaddr *)&ss, &len))
		return 0;
	if (ss.ss_family == AF_INET6)
		return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

/* Where a copy of the old daemon's socket goes in d, or NULL: not wanted. */
static int *slot(struct ag_daemon *d, int fd, uint16_t dns_port)
{
	int domain = sock_int(fd, SO_DOMAIN), type = sock_int(fd, SO_TYPE);
	uint16_t port = sock_port(fd);

	if (type == SOCK_STREAM && sock_int(fd, SO_ACCEPTCONN) == 1 && port == d->conf.port)
		return domain == AF_INET6 ? &d->listen_fd[AG_LISTEN_V6]
					  : &d->listen_fd[AG_LISTEN_V4];
	if (type != SOCK_DGRAM || domain != AF_INET)
		return NULL;
	if (port == AG_NETNS_DNS_PORT)
		return &d->dns_fd;
	return dns_port && port == dns_port ? &d->dns_host_fd : NULL;
}

/* One descriptor of the old daemon's: kept if it is one we want. */
static void take_one(struct ag_upgrade *u, struct ag_daemon *d, int target, uint16_t dns_port)
{
	int fd = (int)syscall(SYS_pidfd_getfd, u->pidfd, target, 0), *to;

	if (fd < 0)
		return;
	to = slot(d, fd, dns_port);
	if (to && *to < 0)
		*to = fd;
	else
		close(fd);
}

int ag_upgrade_take(struct ag_upgrade *u, struct ag_daemon *d, uint16_t dns_port,
		    struct ag_err *err)
{
	struct dirent *e;
	char dir[64], link[64], path[64 + sizeof(e->d_name)];
	DIR *fds;
	int n = 0;

	snprintf(dir, sizeof(dir), "/proc/%d/fd", u->pid);
	fds = opendir(dir);
	if (!fds)
		return ag_errf(err, errno, "%s: %s", dir, strerror(errno));
	while ((e = readdir(fds)) && n++ < MAX_FDS) {
		ssize_t len;

		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		len = readlink(path, link, sizeof(link) - 1);
		if (len <= 0)
			continue;
		link[len] = 0;
		if (!strncmp(link, "socket:", 7))
			take_one(u, d, atoi(e->d_name), dns_port);
	}
	closedir(fds);
	/* Fail closed: without the listener, connects would find no one. */
	if (d->listen_fd[AG_LISTEN_V4] < 0)
		return ag_errf(err, ENOENT,
			       "agentgated pid %d has no listener on port %u to hand over (a "
			       "live upgrade keeps listen.port)",
			       u->pid, d->conf.port);
	return 0;
}

int ag_upgrade_handoff(struct ag_upgrade *u, struct ag_err *err)
{
	struct pollfd p = { .fd = u->pidfd, .events = POLLIN };
	int ret;

	u->switch_ns = ag_now_ns();
	/* ESRCH: it is gone already, which is all the handoff waits for. */
	if (syscall(SYS_pidfd_send_signal, u->pidfd, SIGUSR2, NULL, 0) && errno != ESRCH)
		return ag_errf(err, errno, "agentgated pid %d: signal: %s", u->pid,
			       strerror(errno));
	ret = poll(&p, 1, AG_UPGRADE_WAIT_S * 1000);
	if (ret <= 0)
		return ag_errf(err, ret ? errno : ETIMEDOUT,
			       "agentgated pid %d did not exit within %d s of the handoff", u->pid,
			       AG_UPGRADE_WAIT_S);
	return 0;
}
