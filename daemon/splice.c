// SPDX-License-Identifier: GPL-2.0
/*
 * The relay's kernel splice (see splice.h).
 *
 * The counts are TCP's own sequence arithmetic, as TCP_INFO and the queue
 * ioctls expose it: bytes_received (rcv_nxt) less what is still queued
 * (SIOCINQ) is what was taken off the socket; bytes_acked plus the unacked
 * rest (SIOCOUTQ) is everything written to it.  Both count the connection's
 * SYN and FIN the way TCP does, so a caller compares differences taken while
 * the socket was established.
 */
#include <errno.h>
#include <stddef.h>
#include <netinet/in.h>
#include <linux/sockios.h>
#include <linux/tcp.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <bpf/bpf.h>

#include "splice.h"

int ag_sock_bytes(int fd, struct ag_sock_bytes *b)
{
	struct tcp_info ti;
	socklen_t len = sizeof(ti);
	int inq, outq;

	if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len))
		return -errno;
	/* bytes_received came with Linux 4.1, long before a verdict could splice. */
	if (len < offsetof(struct tcp_info, tcpi_bytes_received) + sizeof(ti.tcpi_bytes_received))
		return -EPROTO;
	/* A closed socket answers SIOCINQ with EINVAL only when listening: never here. */
	if (ioctl(fd, SIOCINQ, &inq) || ioctl(fd, SIOCOUTQ, &outq))
		return -errno;
	b->received = ti.tcpi_bytes_received;
	b->taken = ti.tcpi_bytes_received - (uint32_t)inq;
	b->written = ti.tcpi_bytes_acked + (uint32_t)outq;
	b->quiet_ms = ti.tcpi_last_data_recv < ti.tcpi_last_data_sent ? ti.tcpi_last_data_recv
								      : ti.tcpi_last_data_sent;
	/* The kernel's TCP states, which linux/bpf.h names for BPF. */
	b->open = ti.tcpi_state == BPF_TCP_ESTABLISHED || ti.tcpi_state == BPF_TCP_CLOSE_WAIT ||
		  ti.tcpi_state == BPF_TCP_FIN_WAIT1 || ti.tcpi_state == BPF_TCP_FIN_WAIT2;
	return 0;
}

static int cookie(int fd, uint64_t *c)
{
	socklen_t len = sizeof(*c);

	return getsockopt(fd, SOL_SOCKET, SO_COOKIE, c, &len) ? -errno : 0;
}

int ag_splice_pair(const struct ag_splice_maps *m, int a, int b)
{
	uint64_t ca, cb, va = (uint64_t)a, vb = (uint64_t)b;
	int ret;

	if ((ret = cookie(a, &ca)) || (ret = cookie(b, &cb)))
		return ret;
	/* a's bytes go to b, b's to a. */
	if (bpf_map_update_elem(m->peers_fd, &ca, &vb, BPF_NOEXIST))
		return -errno;
	if (bpf_map_update_elem(m->peers_fd, &cb, &va, BPF_NOEXIST)) {
		ret = -errno;
		bpf_map_delete_elem(m->peers_fd, &ca);
		return ret;
	}
	return 0;
}

int ag_splice_from(const struct ag_splice_maps *m, int fd)
{
	uint64_t c, v = (uint64_t)fd;
	int ret;

	if ((ret = cookie(fd, &c)))
		return ret;
	return bpf_map_update_elem(m->from_fd, &c, &v, BPF_NOEXIST) ? -errno : 0;
}

/*
 * The verdict runs when data arrives: what came before the insert would
 * wait for the next skb.  Setting the receive low-water mark (to its
 * default) makes TCP check for data ready at once, which hands the queued
 * bytes to the verdict now.
 */
int ag_splice_kick(int fd)
{
	int one = 1;

	return setsockopt(fd, SOL_SOCKET, SO_RCVLOWAT, &one, sizeof(one)) ? -errno : 0;
}
