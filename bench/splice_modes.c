// SPDX-License-Identifier: GPL-2.0
/*
 * splice_modes: what each way of relaying a TCP connection costs on this
 * kernel, for small request/response exchanges (64 bytes each way, one at
 * a time), all on loopback in one process:
 *
 *	direct	client <-> server
 *	copy	client <-> proxy thread (epoll, recv, send: what nginx's stream
 *		proxy and the daemon's copying relay do) <-> server
 *	skb	the daemon's relay today (bpf/splice.bpf.c): an sk_skb verdict
 *		on the proxy's two sockets redirects each skb to the other's
 *		egress; a kernel worker sends it
 *	msg	the client's sendmsg redirected (sk_msg) straight to the
 *		upstream socket's egress; the upstream's skbs as in skb
 *	msg_in	msg, and the upstream's skbs redirected to the client
 *		socket's ingress: no TCP hop through the proxy's sockets
 *
 * msg and msg_in need the agent's socket in a socket map (a sockops
 * program on the agents' cgroup could put it there) and a switch that
 * keeps the byte order; this measures what they would gain, with none of
 * that (bpf/splice_modes.bpf.c).  Rounds alternate the modes; per mode the
 * medians of the rounds: p50 round trip, and the machine's busy CPU per
 * round trip (every CPU: a kernel worker sends what skb redirects), each
 * also as added to direct's, and that as a ratio to copy's.
 *
 *	build/bench/splice_modes [round trips per measurement (20000)] [rounds (3)]
 *
 * As root.  Loads its programs unpinned: they go when it exits.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "splice_modes.skel.h"

#define MSG 64
#define ROUNDS_MAX 9

enum mode { DIRECT, COPY, SKB, MSG_EGRESS, MSG_INGRESS, MODES };
static const char *const mode_name[MODES] = { "direct", "copy", "skb", "msg", "msg_in" };
enum { ROLE_ACCEPTED = 1, ROLE_UPSTREAM = 2, ROLE_CLIENT = 3 };

struct conn {
	int client, accepted, upstream, server;
	int stop[2]; /* a pipe: the copier ends when its write end closes */
	uint16_t accepted_port;
	bool echo_on;
	pthread_t echo, copier;
	struct splice_modes_bpf *skel;
};

struct figures {
	double p50_us, cpu_us;
};

static double now_s(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* Busy ticks of every CPU (/proc/stat: user, nice, system, irq, softirq). */
static unsigned long long busy_ticks(void)
{
	unsigned long long u = 0, n = 0, s = 0, i, w, q = 0, sq = 0;
	FILE *f = fopen("/proc/stat", "r");

	if (f && fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu", &u, &n, &s, &i, &w, &q,
			&sq) != 7)
		u = n = s = q = sq = 0;
	if (f)
		fclose(f);
	return u + n + s + q + sq;
}

static int tcp_socket(void)
{
	struct timeval tv = { .tv_sec = 5 };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;

	if (fd >= 0) {
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		/* Bounded: a mode that loses bytes ends the run, not hangs it. */
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	}
	return fd;
}

static int listen_any(uint16_t *port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	int fd = tcp_socket();

	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) || listen(fd, 4) ||
	    getsockname(fd, (struct sockaddr *)&a, &len)) {
		perror("splice_modes: listen");
		exit(1);
	}
	*port = ntohs(a.sin_port);
	return fd;
}

/* A connection to port and its accepted end. */
static void pair(int lfd, uint16_t port, int *out, int *in)
{
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_port = htons(port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int one = 1;

	*out = tcp_socket();
	if (*out < 0 || connect(*out, (struct sockaddr *)&a, sizeof(a)) ||
	    (*in = accept4(lfd, NULL, NULL, SOCK_CLOEXEC)) < 0) {
		perror("splice_modes: connect");
		exit(1);
	}
	setsockopt(*in, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

static bool recv_all(int fd, char *b, size_t n)
{
	size_t got = 0;
	ssize_t r;

	while (got < n && (r = recv(fd, b + got, n - got, 0)) > 0)
		got += (size_t)r;
	return got == n;
}

static void *echo(void *arg)
{
	struct conn *c = arg;
	char b[MSG];

	while (recv_all(c->server, b, MSG) && send(c->server, b, MSG, 0) == MSG)
		;
	return NULL;
}

/* The copying proxy: whatever one socket has goes to the other. */
static void *copier(void *arg)
{
	struct conn *c = arg;
	struct epoll_event e = { .events = EPOLLIN }, ev[4];
	int ep = epoll_create1(EPOLL_CLOEXEC);
	char b[16384];

	e.data.fd = c->accepted;
	epoll_ctl(ep, EPOLL_CTL_ADD, c->accepted, &e);
	e.data.fd = c->upstream;
	epoll_ctl(ep, EPOLL_CTL_ADD, c->upstream, &e);
	e.data.fd = c->stop[0];
	epoll_ctl(ep, EPOLL_CTL_ADD, c->stop[0], &e);
	for (;;) {
		int n = epoll_wait(ep, ev, 4, -1);

		for (int i = 0; i < n; i++) {
			int from = ev[i].data.fd, to = from == c->accepted ? c->upstream : c->accepted;
			ssize_t r;

			if (from == c->stop[0])
				goto out;
			r = recv(from, b, sizeof(b), MSG_DONTWAIT);
			if (r == 0 || (r < 0 && errno != EAGAIN) || send(to, b, (size_t)r, 0) != r)
				goto out;
		}
	}
out:
	close(ep);
	return NULL;
}

static int put(int map, uint32_t role, int fd)
{
	uint64_t v = (uint64_t)fd;

	return bpf_map_update_elem(map, &role, &v, BPF_ANY);
}

/* The maps of mode m; the programs are attached to skb_from and msg_from. */
static int splice_setup(struct conn *c, enum mode m, uint16_t accepted_port)
{
	struct splice_modes_bpf *s = splice_modes_bpf__open_and_load();
	uint32_t k0 = 0, k1 = 1, where = m == MSG_INGRESS ? ROLE_CLIENT : ROLE_ACCEPTED;
	uint32_t port = accepted_port;
	int socks, skb, msg;

	if (!s)
		return -errno;
	c->skel = s;
	socks = bpf_map__fd(s->maps.socks);
	skb = bpf_map__fd(s->maps.skb_from);
	msg = bpf_map__fd(s->maps.msg_from);
	if (bpf_prog_attach(bpf_program__fd(s->progs.modes_skb), skb, BPF_SK_SKB_VERDICT, 0) ||
	    bpf_prog_attach(bpf_program__fd(s->progs.modes_msg), msg, BPF_SK_MSG_VERDICT, 0) ||
	    bpf_map_update_elem(bpf_map__fd(s->maps.down), &k0, &where, BPF_ANY) ||
	    bpf_map_update_elem(bpf_map__fd(s->maps.down), &k1, &port, BPF_ANY) ||
	    put(socks, ROLE_ACCEPTED, c->accepted) || put(socks, ROLE_UPSTREAM, c->upstream))
		return -errno;
	if (m == SKB)
		return put(skb, ROLE_ACCEPTED, c->accepted) || put(skb, ROLE_UPSTREAM, c->upstream)
			   ? -errno
			   : 0;
	if (put(msg, ROLE_CLIENT, c->client) || put(skb, ROLE_UPSTREAM, c->upstream))
		return -errno;
	return m == MSG_INGRESS && put(socks, ROLE_CLIENT, c->client) ? -errno : 0;
}

/* A connection in mode m, with the echo server unless checking, spliced unless deferred. */
static void conn_open_as(struct conn *c, enum mode m, bool echo_on, bool splice_later);

static void conn_open(struct conn *c, enum mode m)
{
	conn_open_as(c, m, true, false);
}

static void conn_open_as(struct conn *c, enum mode m, bool echo_on, bool splice_later)
{
	uint16_t sport, pport;
	int sl = listen_any(&sport), pl = listen_any(&pport), ret = 0;

	memset(c, 0, sizeof(*c));
	c->stop[0] = c->stop[1] = c->accepted = c->upstream = -1;
	if (m == DIRECT) {
		pair(sl, sport, &c->client, &c->server);
	} else {
		pair(pl, pport, &c->client, &c->accepted);
		pair(sl, sport, &c->upstream, &c->server);
	}
	close(sl);
	close(pl);
	if (m == COPY) {
		if (pipe2(c->stop, O_CLOEXEC)) {
			perror("splice_modes: pipe");
			exit(1);
		}
		pthread_create(&c->copier, NULL, copier, c);
	} else if (m != DIRECT && !splice_later && (ret = splice_setup(c, m, pport))) {
		fprintf(stderr, "splice_modes: %s: %s\n", mode_name[m], strerror(-ret));
		exit(1);
	}
	c->accepted_port = pport;
	c->echo_on = echo_on;
	if (echo_on)
		pthread_create(&c->echo, NULL, echo, c);
}

static void conn_close(struct conn *c)
{
	shutdown(c->client, SHUT_RDWR);
	shutdown(c->server, SHUT_RDWR);
	if (c->echo_on)
		pthread_join(c->echo, NULL);
	if (c->stop[1] >= 0) {
		close(c->stop[1]);
		pthread_join(c->copier, NULL);
		close(c->stop[0]);
	}
	splice_modes_bpf__destroy(c->skel);
	close(c->client);
	close(c->server);
	if (c->accepted >= 0)
		close(c->accepted);
	if (c->upstream >= 0)
		close(c->upstream);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* n round trips through a fresh connection in mode m. */
static struct figures measure(enum mode m, int n, double *lat)
{
	struct figures f = { 0 };
	unsigned long long t0, t1;
	long hz = sysconf(_SC_CLK_TCK);
	struct conn c;
	char b[MSG];

	conn_open(&c, m);
	memset(b, 'x', sizeof(b));
	for (int i = 0; i < n / 10 + 1; i++) /* warm up: the paths, the worker */
		if (send(c.client, b, MSG, 0) != MSG || !recv_all(c.client, b, MSG))
			goto lost;
	t0 = busy_ticks();
	for (int i = 0; i < n; i++) {
		double a = now_s();

		if (send(c.client, b, MSG, 0) != MSG || !recv_all(c.client, b, MSG))
			goto lost;
		lat[i] = now_s() - a;
	}
	t1 = busy_ticks();
	qsort(lat, (size_t)n, sizeof(*lat), cmp_double);
	f.p50_us = lat[n / 2] * 1e6;
	f.cpu_us = (double)(t1 - t0) / (double)hz / n * 1e6;
	conn_close(&c);
	return f;
lost:
	fprintf(stderr, "splice_modes: %s: a round trip did not come back: %s\n", mode_name[m],
		strerror(errno));
	exit(1);
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	return v[n / 2];
}

/*
 * check: what a relay built on each mode would have to cope with, beyond
 * its speed.  Every byte of BULK each way at once, checked (blocking
 * writers, then non-blocking ones that see partial writes); how much the
 * kernel takes from a writer whose reader reads nothing for a second (a
 * bound, or memory an agent could pin); and whether a reader already
 * blocked in recv() when its socket joins the map gets what is
 * redirected to it.
 */
#define BULK (8u << 20)

static unsigned char pattern(uint64_t i, unsigned int seed)
{
	return (unsigned char)((i * 131 + (i >> 11) * 7 + seed) & 0xff);
}

struct stream {
	int fd;
	unsigned int seed;
	uint64_t n;    /* to write, or to read */
	bool nonblock; /* the writer's: poll, and partial writes */
	uint64_t done, bad;
	int err;
};

static void *stream_write(void *arg)
{
	struct stream *w = arg;
	unsigned char b[64 * 1024];

	while (w->done < w->n) {
		size_t k = w->n - w->done < sizeof(b) ? w->n - w->done : sizeof(b);
		ssize_t r;

		for (size_t i = 0; i < k; i++)
			b[i] = pattern(w->done + i, w->seed);
		r = send(w->fd, b, k, w->nonblock ? MSG_DONTWAIT : 0);
		if (r < 0 && errno == EAGAIN) {
			struct pollfd p = { .fd = w->fd, .events = POLLOUT };

			if (poll(&p, 1, 5000) != 1)
				break;
			continue;
		}
		if (r <= 0) {
			w->err = errno;
			break;
		}
		w->done += (uint64_t)r;
	}
	return NULL;
}

static void *stream_read(void *arg)
{
	struct stream *rd = arg;
	unsigned char b[64 * 1024];
	ssize_t r;

	while (rd->done < rd->n && (r = recv(rd->fd, b, sizeof(b), 0)) > 0) {
		for (ssize_t i = 0; i < r; i++)
			rd->bad += b[i] != pattern(rd->done + (uint64_t)i, rd->seed);
		rd->done += (uint64_t)r;
	}
	return NULL;
}

/* BULK each way at once; every byte in order, none lost. */
static void check_bulk(enum mode m, bool nonblock)
{
	struct stream up_w = { .seed = 1, .n = BULK, .nonblock = nonblock }, up_r = up_w;
	struct stream down_w = { .seed = 2, .n = BULK, .nonblock = nonblock }, down_r = down_w;
	pthread_t t[3];
	struct conn c;
	double t0 = now_s();

	conn_open_as(&c, m, false, false);
	up_w.fd = c.client;
	up_r.fd = c.server;
	down_w.fd = c.server;
	down_r.fd = c.client;
	pthread_create(&t[0], NULL, stream_write, &up_w);
	pthread_create(&t[1], NULL, stream_read, &up_r);
	pthread_create(&t[2], NULL, stream_write, &down_w);
	stream_read(&down_r);
	for (int i = 0; i < 3; i++)
		pthread_join(t[i], NULL);
	printf("%-7s bulk%-9s up %8llu bytes %llu wrong, down %8llu bytes %llu wrong, %.2f s%s\n",
	       mode_name[m], nonblock ? " nonblock" : "", (unsigned long long)up_r.done,
	       (unsigned long long)up_r.bad, (unsigned long long)down_r.done,
	       (unsigned long long)down_r.bad, now_s() - t0,
	       up_r.done == BULK && down_r.done == BULK && !up_r.bad && !down_r.bad ? ""
										    : "  LOST");
	conn_close(&c);
}

/* What the server can write while the client reads nothing for a second. */
static void check_slow_reader(enum mode m)
{
	struct stream w = { .seed = 3, .n = 256u << 20, .nonblock = true }, r = { .seed = 3 };
	double t0 = now_s();
	struct conn c;

	conn_open_as(&c, m, false, false);
	w.fd = c.server;
	while (now_s() - t0 < 1.0 && w.done < w.n) {
		ssize_t k;
		unsigned char b[64 * 1024];

		for (size_t i = 0; i < sizeof(b); i++)
			b[i] = pattern(w.done + i, w.seed);
		k = send(w.fd, b, sizeof(b), MSG_DONTWAIT);
		if (k > 0)
			w.done += (uint64_t)k;
		else
			usleep(1000);
	}
	r.fd = c.client;
	r.n = w.done;
	stream_read(&r);
	printf("%-7s slow reader: %6.1f MiB taken from the writer in 1 s, %s\n", mode_name[m],
	       (double)w.done / (1 << 20),
	       r.done == w.done && !r.bad ? "all read back in order" : "LOST");
	conn_close(&c);
}

static void *blocked_recv(void *arg)
{
	struct stream *rd = arg;

	stream_read(rd);
	return NULL;
}

/* A reader blocked in recv() before the splice starts, then 64 bytes. */
static void check_blocked_reader(enum mode m)
{
	struct stream r = { .seed = 4, .n = MSG }, w = { .seed = 4, .n = MSG };
	pthread_t t;
	struct conn c;
	double t0;
	int ret;

	conn_open_as(&c, m, false, true);
	r.fd = c.client;
	w.fd = c.server;
	pthread_create(&t, NULL, blocked_recv, &r);
	usleep(100 * 1000);
	if (m != DIRECT && (ret = splice_setup(&c, m, c.accepted_port))) {
		fprintf(stderr, "splice_modes: %s: %s\n", mode_name[m], strerror(-ret));
		exit(1);
	}
	t0 = now_s();
	stream_write(&w);
	pthread_join(t, NULL);
	printf("%-7s blocked reader: %s after %.0f ms\n", mode_name[m],
	       r.done == MSG && !r.bad ? "got the bytes" : "DID NOT get them (SO_RCVTIMEO)",
	       (now_s() - t0) * 1e3);
	conn_close(&c);
}

static int checks(void)
{
	for (int m = SKB; m < MODES; m++) {
		check_bulk((enum mode)m, false);
		check_bulk((enum mode)m, true);
	}
	for (int m = DIRECT; m < MODES; m++)
		check_slow_reader((enum mode)m);
	for (int m = MSG_EGRESS; m < MODES; m++)
		check_blocked_reader((enum mode)m);
	return 0;
}

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 20000, rounds = argc > 2 ? atoi(argv[2]) : 3;
	double p50[MODES][ROUNDS_MAX], cpu[MODES][ROUNDS_MAX], med_p50[MODES], med_cpu[MODES];
	double *lat;

	if (argc > 1 && !strcmp(argv[1], "check"))
		return checks();
	if (n < 100 || n > 10000000 || rounds < 1 || rounds > ROUNDS_MAX) {
		fprintf(stderr, "usage: splice_modes [round trips 100..10000000] [rounds 1..%d]\n",
			ROUNDS_MAX);
		return 2;
	}
	if (!(lat = calloc((size_t)n, sizeof(*lat))))
		return 1;
	for (int r = 0; r < rounds; r++)
		for (int i = 0; i < MODES; i++) {
			/* Rotated: each mode goes first in some round. */
			enum mode m = (enum mode)((i + r) % MODES);
			struct figures f = measure(m, n, lat);

			p50[m][r] = f.p50_us;
			cpu[m][r] = f.cpu_us;
		}
	printf("%d round trips of %d bytes each way per measurement, %d rounds, medians\n", n, MSG,
	       rounds);
	printf("%-7s %9s %9s %12s %9s %9s %12s\n", "mode", "p50 us", "+p50 us", "+p50/copy",
	       "cpu us", "+cpu us", "+cpu/copy");
	for (int m = 0; m < MODES; m++) {
		med_p50[m] = median(p50[m], rounds);
		med_cpu[m] = median(cpu[m], rounds);
	}
	for (int m = 0; m < MODES; m++) {
		double ap = med_p50[m] - med_p50[DIRECT], ac = med_cpu[m] - med_cpu[DIRECT];
		double cp = med_p50[COPY] - med_p50[DIRECT], cc = med_cpu[COPY] - med_cpu[DIRECT];

		printf("%-7s %9.1f %9.1f %12.2f %9.1f %9.1f %12.2f\n", mode_name[m], med_p50[m], ap,
		       cp > 0 ? ap / cp : 0.0, med_cpu[m], ac, cc > 0 ? ac / cc : 0.0);
	}
	free(lat);
	return 0;
}
