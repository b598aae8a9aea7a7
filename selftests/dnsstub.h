/* SPDX-License-Identifier: GPL-2.0 */
/*
 * A DNS responder for tests that give the daemon a resolver: a thread
 * answering on a loopback address of its own, port 53, from a fixed table.
 * A name in the table has one IPv4 address (A, TTL 60) and no AAAA; any
 * other name does not exist (NXDOMAIN).
 */
#ifndef AG_SELFTEST_DNSSTUB_H
#define AG_SELFTEST_DNSSTUB_H

#include <pthread.h>
#include <stdbool.h>

struct dnsstub_name {
	const char *name; /* lower case */
	const char *ip4;
};

struct dnsstub {
	int fd;
	pthread_t th;
	volatile bool stop;
	char addr[32]; /* for "resolvers" */
	const struct dnsstub_name *names;
	int nr_names;
	volatile int queries;	/* datagrams answered */
	volatile int received;	/* datagrams that reached it, answered or not */
	volatile long rx_bytes; /* their bytes */
};

int dnsstub_start(struct dnsstub *s, const struct dnsstub_name *names, int nr_names);
void dnsstub_stop(struct dnsstub *s);

#endif
