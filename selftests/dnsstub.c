// SPDX-License-Identifier: GPL-2.0
/* A DNS responder thread for tests (see dnsstub.h). */
#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "dnsstub.h"
#include "testlib.h"

#define HDR 12

/* The question's name, dotted, and where its type starts; -1 if malformed. */
static int question(const uint8_t *q, size_t len, char *name, size_t cap)
{
	size_t at = HDR, n = 0;

	while (at < len && q[at]) {
		size_t l = q[at];

		if (l > 63 || at + 1 + l >= len || n + l + 2 > cap)
			return -1;
		if (n)
			name[n++] = '.';
		memcpy(name + n, q + at + 1, l);
		n += l;
		at += 1 + l;
	}
	name[n] = '\0';
	return at + 5 <= len ? (int)at + 1 : -1;
}

/* The answer to query q (len bytes) into out; its length, or 0 to drop. */
static size_t answer(const struct dnsstub *s, const uint8_t *q, size_t len, uint8_t *out)
{
	char name[256];
	int at = len >= HDR ? question(q, len, name, sizeof(name)) : -1;
	uint16_t qtype;
	const char *ip4 = NULL;
	size_t n;

	if (at < 0)
		return 0;
	qtype = (uint16_t)(q[at] << 8 | q[at + 1]);
	for (int i = 0; i < s->nr_names; i++)
		if (!strcasecmp(s->names[i].name, name))
			ip4 = s->names[i].ip4;
	n = (size_t)at + 4;
	memcpy(out, q, n);
	out[2] = 0x81;		    /* QR, RD */
	out[3] = ip4 ? 0x80 : 0x83; /* RA; NXDOMAIN for what is not in the table */
	memset(out + 6, 0, 6);
	if (!ip4 || qtype != 1)
		return n;
	out[7] = 1;
	memcpy(out + n, "\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04", 12);
	inet_pton(AF_INET, ip4, out + n + 12);
	return n + 16;
}

static void *serve(void *arg)
{
	struct dnsstub *s = arg;
	uint8_t q[512], a[600];

	while (!s->stop) {
		struct pollfd p = { .fd = s->fd, .events = POLLIN };
		struct sockaddr_storage from;
		socklen_t flen = sizeof(from);
		ssize_t len;
		size_t n;

		if (poll(&p, 1, 100) <= 0)
			continue;
		len = recvfrom(s->fd, q, sizeof(q), MSG_TRUNC, (struct sockaddr *)&from, &flen);
		if (len > 0) {
			s->received++;
			s->rx_bytes += len;
		}
		if (len <= 0 || (size_t)len > sizeof(q) || !(n = answer(s, q, (size_t)len, a)))
			continue;
		sendto(s->fd, a, n, 0, (struct sockaddr *)&from, flen);
		s->queries++;
	}
	return NULL;
}

int dnsstub_start(struct dnsstub *s, const struct dnsstub_name *names, int nr_names)
{
	s->names = names;
	s->nr_names = nr_names;
	s->stop = false;
	s->fd = -1;
	s->queries = s->received = 0;
	s->rx_bytes = 0;
	/* A loopback address of this process's own: tests run side by side. */
	for (unsigned int i = 0; i < 8 && s->fd < 0; i++) {
		uint32_t a = htonl(0x7f420000u | ((getpid() + i * 2) & 0xfffe) | 1);

		inet_ntop(AF_INET, &a, s->addr, sizeof(s->addr));
		s->fd = udp_bind(s->addr, 53, NULL);
	}
	if (s->fd < 0)
		return -errno;
	if (pthread_create(&s->th, NULL, serve, s)) {
		close(s->fd);
		s->fd = -1;
		return -EAGAIN;
	}
	return 0;
}

void dnsstub_stop(struct dnsstub *s)
{
	if (s->fd < 0)
		return;
	s->stop = true;
	pthread_join(s->th, NULL);
	close(s->fd);
	s->fd = -1;
}
