// SPDX-License-Identifier: GPL-2.0
/*
 * Audit shipping: one thread tails the log's files and sends each record to
 * the collector (lib/audit_ship.h).  Nothing here runs on the daemon's loop.
 *
 *	     connect + TLS ok               peer EOF (FIN, close_notify)
 *	DOWN ---------------------> UP ------------------------------+
 *	 ^  \ failed: wait backoff   | write/read error, RST,        |
 *	 |   (250 ms doubling, 5 s)  | stalled 10 s                  |
 *	 +--------------------------+-------------------------------+
 *	  every way down: the send position goes back to the cursor
 *
 * What counts as delivered (the cursor) is the hazard.  RFC 5425 has no
 * acknowledgement, so a record is *read* once the collector's kernel has
 * acknowledged its last byte (the socket's unacked bytes, SIOCOUTQ, fall
 * below its end) at a moment its receive window is as wide as it has been
 * (TCP_INFO): the collector had read everything.  A receiver under memory
 * pressure narrows its window for good, so a window unchanged for SETTLED_MS
 * on an idle connection (everything acked, keep-alive probes fetching it)
 * becomes the width: a collector that stalls with records unread and nothing
 * more sent for that long looks like one that read them, the one case in
 * which a record can be confirmed and lost (it must then be killed before
 * it reads on).  It is *confirmed* once it
 * was read CONFIRM_MS ago and the collector still reads all it is sent,
 * time for it to write the record: a collector that stalls lets its window
 * shrink, and one that closes with bytes it has not read resets the
 * connection.  The
 * collector's own end of stream confirms nothing more: a killed collector's
 * FIN says nothing of what its queue had written.  Ours, at stop, answered
 * by its end of stream, confirms every acked record: a collector that keeps
 * running writes what it read.  Only confirmed records advance the saved
 * cursor; every way down resends from it.  So a record is sent at least
 * once and may be sent twice, with the same seq and bytes (agentgatectl
 * audit verify --collected skips the second copy).
 *
 * The files are read by lib/audit_tail.c, which follows the series as the
 * writer appends and rotates.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/sockios.h>
#include <linux/tcp.h>
#include <netdb.h>
#include <poll.h>
#include <stddef.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "audit_ship.h"
#include "fileio.h"
#include "hostport.h"
#include "tls.h"
#include "tls_int.h"

#define INFLIGHT 16384	   /* records sent and not confirmed; then sending waits */
#define CONFIRM_MS 1000	   /* acked this long on a live connection: confirmed */
#define SAVE_MS 200	   /* the cursor file is rewritten at most this often */
#define IO_TIMEOUT_MS 5000 /* connect, handshake; a write stalled twice this long */
#define BACKOFF_MIN_MS 250
#define BACKOFF_MAX_MS 5000
#define SETTLED_MS 3000	    /* an unchanged window on an idle connection: its width */
#define KEEPALIVE_PROBES 10 /* unanswered one-second probes: the collector is gone */
#define BATCH 256 /* records sent before the acks are looked at again */

/* A record on its way: where it starts in the files, where it ends in the stream. */
struct flight {
	uint64_t seq, seg, off, end;
	uint64_t read_ms; /* when the collector had read it; 0: not yet known */
};

struct ag_audit_ship {
	struct ag_audit_ship_config c;
	char *strs; /* the copies c points into */
	char host[256];
	SSL_CTX *ctx;
	pthread_t thread;
	int stop_fd;

	pthread_mutex_t mu;
	/* Under mu. */
	struct ag_audit_writer *w;
	struct ag_audit_ship_status st;
	unsigned int drain_ms;
	bool stopping;

	/* The thread's. */
	struct ag_audit_tail src;
	SSL *ssl;
	int fd;
	struct flight *fl;
	size_t fl_head, fl_n;
	uint64_t confirmed, saved, saved_ms;
	uint32_t max_wnd;		 /* the collector's window when it has read everything */
	uint32_t last_wnd;		 /* its window since settled_ms, */
	uint64_t last_acked, settled_ms; /* with this much of the stream acked */
	char *frame;
};

static uint64_t now_ms(void)
{
	return ag_now_ns() / 1000000;
}

static void warnf(struct ag_audit_ship *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void warnf(struct ag_audit_ship *s, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	ag_audit_vwarn(s->c.warn, s->c.warn_ctx, fmt, ap);
	va_end(ap);
}

/* ---- the cursor --------------------------------------------------------- */

static int cursor_load(const char *path, uint64_t *seq, struct ag_err *err)
{
	char *text, *end;
	int ret = ag_file_read_at(AT_FDCWD, NULL, path, 0, 64, &text, NULL, err);

	*seq = 0;
	if (ret == -ENOENT)
		return 0;
	if (ret)
		return ret;
	errno = 0;
	*seq = strtoull(text, &end, 10);
	if (errno || end == text || (*end && strcmp(end, "\n")))
		ret = ag_errf(err, -EINVAL,
			      "%s: not a record number: remove it to ship the whole "
			      "log again",
			      path);
	free(text);
	return ret;
}

static void cursor_save(struct ag_audit_ship *s, bool now)
{
	struct ag_err err;
	char num[32];
	int n;

	if (s->confirmed == s->saved || (!now && now_ms() - s->saved_ms < SAVE_MS))
		return;
	n = snprintf(num, sizeof(num), "%" PRIu64 "\n", s->confirmed);
	if (ag_file_write_atomic(s->c.cursor_path, num, (size_t)n, 0600, &err)) {
		warnf(s, "cursor not saved: %s", err.msg);
		return;
	}
	s->saved = s->confirmed;
	s->saved_ms = now_ms();
	pthread_mutex_lock(&s->mu);
	s->st.cursor = s->confirmed;
	pthread_mutex_unlock(&s->mu);
}

/* Reads and drops the records before seq (a start or a rewind from scratch). */
static int src_skip_to(struct ag_audit_ship *s, uint64_t seq, struct ag_err *err)
{
	const char *line;
	size_t len;
	uint64_t seg, off;
	int ret;

	if ((ret = ag_audit_tail_seek(&s->src, 0, 0, 0, err)))
		return ret;
	while (s->src.seq < seq) {
		ret = ag_audit_tail_next(&s->src, &line, &len, &seg, &off, err);
		if (ret < 0)
			return ret;
		/* Fail closed: a cursor past the log means another log. */
		if (!ret)
			return ag_errf(err, -ESPIPE,
				       "%s: the cursor %s says %" PRIu64
				       " records were shipped, the log has %" PRIu64
				       ": remove the cursor once the log is the right one",
				       s->c.log, s->c.cursor_path, seq, s->src.seq);
	}
	return 0;
}

/* ---- the connection ----------------------------------------------------- */

/* Waits for ev on the connection (none: just the time): >0 ready, 0 timeout,
 * -ECANCELED when the shipper is told to stop. */
static int wait_fd(struct ag_audit_ship *s, short ev, int ms)
{
	struct pollfd p[2] = { { .fd = s->stop_fd, .events = POLLIN },
			       { .fd = s->fd, .events = ev } };
	int n = poll(p, s->fd >= 0 ? 2 : 1, ms);

	if (n < 0)
		return errno == EINTR ? 0 : -errno;
	return p[0].revents ? -ECANCELED : n;
}

static void conn_close(struct ag_audit_ship *s)
{
	SSL_free(s->ssl);
	s->ssl = NULL;
	if (s->fd >= 0)
		close(s->fd);
	s->fd = -1;
	pthread_mutex_lock(&s->mu);
	s->st.connected = false;
	pthread_mutex_unlock(&s->mu);
}

static int tcp_connect(struct ag_audit_ship *s, struct ag_err *err)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *ai, *a;
	int ret = getaddrinfo(s->c.host, s->c.port, &hints, &ai);

	if (ret)
		return ag_errf(err, -EHOSTUNREACH, "%s: %s", s->c.host, gai_strerror(ret));
	ret = -ECONNREFUSED;
	for (a = ai; a && s->fd < 0; a = a->ai_next) {
		int fd = socket(a->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		socklen_t sl = sizeof(ret);

		if (fd < 0)
			continue;
		s->fd = fd;
		if (connect(fd, a->ai_addr, a->ai_addrlen) && errno != EINPROGRESS)
			ret = -errno;
		else if (wait_fd(s, POLLOUT, IO_TIMEOUT_MS) <= 0)
			ret = -ETIMEDOUT;
		else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &ret, &sl) || ret)
			ret = -(ret ? ret : errno);
		else
			break;
		close(fd);
		s->fd = -1;
	}
	freeaddrinfo(ai);
	if (s->fd < 0)
		return ag_errf(err, ret, "%s:%s: connect: %s", s->c.host, s->c.port,
			       strerror(-ret));
	return 0;
}

/* Runs one SSL call to completion within timeout_ms: 1 done, 0 EOF, <0 error. */
static int ssl_io(struct ag_audit_ship *s, int (*op)(SSL *, void *, int), void *buf, int len,
		  int timeout_ms)
{
	uint64_t end = now_ms() + (uint64_t)timeout_ms;

	for (;;) {
		int r, e;

		ERR_clear_error();
		errno = 0;
		r = op(s->ssl, buf, len);
		if (r > 0)
			return 1;
		e = SSL_get_error(s->ssl, r);
		if (e == SSL_ERROR_ZERO_RETURN ||
		    (e == SSL_ERROR_SYSCALL && !ERR_peek_error() && !errno))
			return 0;
		if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
			return -EPROTO;
		if (now_ms() >= end)
			return -ETIMEDOUT;
		r = wait_fd(s, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, (int)(end - now_ms()));
		if (r < 0)
			return r;
	}
}

static int op_handshake(SSL *ssl, void *buf, int len)
{
	(void)buf;
	(void)len;
	return SSL_connect(ssl);
}

static int op_write(SSL *ssl, void *buf, int len)
{
	return SSL_write(ssl, buf, len);
}

/*
 * Probes every second while nothing is in flight: each answer carries the
 * collector's window as it is now (collector_drained), and a collector host
 * that is gone ends the connection after KEEPALIVE_PROBES unanswered ones.
 * Best effort: without them an idle connection settles with the next record.
 */
static void keepalive(int fd)
{
	int on = 1, secs = 1, probes = KEEPALIVE_PROBES;

	(void)setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof(on));
	(void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &secs, sizeof(secs));
	(void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &secs, sizeof(secs));
	(void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &probes, sizeof(probes));
}

static int conn_open(struct ag_audit_ship *s, struct ag_err *err)
{
	const char *name = s->c.server_name ? s->c.server_name : s->c.host;
	int ret = tcp_connect(s, err);

	s->max_wnd = s->last_wnd = 0;
	s->last_acked = s->settled_ms = 0;
	if (ret)
		return ret;
	keepalive(s->fd);
	s->ssl = SSL_new(s->ctx);
	if (!s->ssl || !SSL_set_fd(s->ssl, s->fd))
		return ag_tls_ossl_err(err, ENOMEM, "audit ship: TLS");
	if (ag_ip_literal(name))
		ret = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(s->ssl), name);
	else
		ret =
		    SSL_set_tlsext_host_name(s->ssl, name) == 1 && SSL_set1_host(s->ssl, name) == 1;
	if (ret != 1)
		return ag_tls_ossl_err(err, EINVAL, "audit ship: TLS server name");
	ret = ssl_io(s, op_handshake, NULL, 0, IO_TIMEOUT_MS);
	if (ret <= 0) {
		long v = SSL_get_verify_result(s->ssl);

		if (v != X509_V_OK)
			return ag_errf(err, -EPROTO, "%s:%s: TLS: certificate verify failed: %s",
				       s->c.host, s->c.port, X509_verify_cert_error_string(v));
		return ag_errf(err, ret ? ret : -ECONNRESET, "%s:%s: TLS handshake: %s", s->c.host,
			       s->c.port, ret ? strerror(-ret) : "closed");
	}
	return 0;
}

/* ---- in flight ---------------------------------------------------------- */

static struct flight *fl_at(struct ag_audit_ship *s, size_t i)
{
	return &s->fl[(s->fl_head + i) % INFLIGHT];
}

/* Bytes of the stream the collector's kernel has acknowledged (0: unknown). */
static uint64_t stream_acked(struct ag_audit_ship *s)
{
	uint64_t written = BIO_number_written(SSL_get_wbio(s->ssl));
	int outq;

	if (!ioctl(s->fd, SIOCOUTQ, &outq) && outq >= 0 && (uint64_t)outq <= written)
		return written - (uint64_t)outq;
	return 0;
}

/*
 * Whether the collector has read everything its kernel acknowledged: its
 * advertised window is as wide as it has been on this connection (a reader
 * that stalls lets it shrink by every byte its kernel takes in).  A receiver
 * under memory pressure narrows that width for good, though, so a window
 * that stayed the same for SETTLED_MS, with everything sent acknowledged and
 * nothing more sent, becomes the width: a reader catching up opens it with
 * every read, and keep-alive probes fetch it from an idle connection.
 * Unknown: no.
 */
static bool collector_drained(struct ag_audit_ship *s, uint64_t now, uint64_t acked)
{
	struct tcp_info ti;
	socklen_t len = sizeof(ti);

	if (getsockopt(s->fd, IPPROTO_TCP, TCP_INFO, &ti, &len) ||
	    len < offsetof(struct tcp_info, tcpi_snd_wnd) + sizeof(ti.tcpi_snd_wnd))
		return false;
	if (ti.tcpi_snd_wnd != s->last_wnd || acked != s->last_acked ||
	    acked != BIO_number_written(SSL_get_wbio(s->ssl))) {
		s->last_wnd = ti.tcpi_snd_wnd;
		s->last_acked = acked;
		s->settled_ms = now;
	} else if (now - s->settled_ms >= SETTLED_MS) {
		s->max_wnd = ti.tcpi_snd_wnd;
	}
	if (ti.tcpi_snd_wnd < s->max_wnd)
		return false;
	s->max_wnd = ti.tcpi_snd_wnd;
	return true;
}

/*
 * Marks the acknowledged records the collector has read; confirms those
 * read CONFIRM_MS ago while it still reads everything it is sent, or every
 * acknowledged one at an orderly end.
 */
static void fl_track(struct ag_audit_ship *s, bool orderly_end)
{
	uint64_t now = now_ms(), acked = stream_acked(s);
	bool read = orderly_end || collector_drained(s, now, acked);

	for (size_t i = 0; read && i < s->fl_n; i++) {
		struct flight *f = fl_at(s, i);

		if (f->end > acked)
			break;
		if (!f->read_ms)
			f->read_ms = now;
	}
	/* Only while it reads on: a stalled collector may not have written them. */
	while (read && s->fl_n && fl_at(s, 0)->read_ms &&
	       (orderly_end || now - fl_at(s, 0)->read_ms >= CONFIRM_MS)) {
		s->confirmed = fl_at(s, 0)->seq + 1;
		s->fl_head = (s->fl_head + 1) % INFLIGHT;
		s->fl_n--;
	}
}

/* Every way down: the reader goes back to the first unconfirmed record. */
static int rewind_to_cursor(struct ag_audit_ship *s, struct ag_err *err)
{
	int ret = 0;

	if (s->fl_n)
		ret = ag_audit_tail_seek(&s->src, fl_at(s, 0)->seg, fl_at(s, 0)->off,
					 fl_at(s, 0)->seq, err);
	s->fl_n = 0;
	pthread_mutex_lock(&s->mu);
	s->st.sent = s->confirmed;
	pthread_mutex_unlock(&s->mu);
	return ret;
}

/* ---- the thread --------------------------------------------------------- */

static uint64_t ship_bound(struct ag_audit_ship *s)
{
	uint64_t b;

	pthread_mutex_lock(&s->mu);
	b = s->w ? ag_audit_durable(s->w) : UINT64_MAX;
	pthread_mutex_unlock(&s->mu);
	return b;
}

/* Sends up to BATCH records: >0 sent, 0 nothing to send, <0 connection lost. */
static int pump(struct ag_audit_ship *s, struct ag_err *err)
{
	uint64_t bound = ship_bound(s);
	int sent = 0;

	while (sent < BATCH && s->fl_n < INFLIGHT && s->src.seq < bound) {
		uint64_t seq = s->src.seq, seg, off;
		struct flight *f;
		const char *line;
		size_t len;
		int n, ret = ag_audit_tail_next(&s->src, &line, &len, &seg, &off, err);

		if (ret <= 0)
			return ret < 0 ? ret : sent;
		/* In flight before it is sent: a failure rewinds to it at the latest. */
		f = fl_at(s, s->fl_n++);
		*f = (struct flight){ .seq = seq, .seg = seg, .off = off, .end = UINT64_MAX };
		n = ag_audit_ship_frame(s->frame, AG_AUDIT_SHIP_FRAME_MAX, s->host, s->c.instance,
					seq, line, len);
		if (n < 0)
			return ag_errf(err, n, "%s: record %" PRIu64 " cannot be framed", s->c.log,
				       seq);
		ret = ssl_io(s, op_write, s->frame, n, 2 * IO_TIMEOUT_MS);
		if (ret <= 0)
			return ag_errf(err, ret ? ret : -ECONNRESET, "%s:%s: send: %s", s->c.host,
				       s->c.port, ret ? strerror(-ret) : "closed");
		f->end = BIO_number_written(SSL_get_wbio(s->ssl));
		sent++;
	}
	pthread_mutex_lock(&s->mu);
	s->st.sent = s->st.seen = s->src.seq;
	pthread_mutex_unlock(&s->mu);
	return sent;
}

/*
 * Looks at what the collector sent: nothing is expected but the end of the
 * stream.  0: still up; 1: an orderly end; <0: reset or error.
 */
static int peer_end(struct ag_audit_ship *s)
{
	char b[256];
	int r;

	ERR_clear_error();
	errno = 0;
	r = SSL_read(s->ssl, b, sizeof(b));
	if (r > 0)
		return 0;
	switch (SSL_get_error(s->ssl, r)) {
	case SSL_ERROR_WANT_READ:
	case SSL_ERROR_WANT_WRITE:
		return 0;
	case SSL_ERROR_ZERO_RETURN:
		return 1;
	case SSL_ERROR_SYSCALL:
		return !ERR_peek_error() && !errno ? 1 : -ECONNRESET;
	default:
		return -EPROTO;
	}
}

static void set_error(struct ag_audit_ship *s, const char *msg)
{
	pthread_mutex_lock(&s->mu);
	snprintf(s->st.error, sizeof(s->st.error), "%.*s", (int)sizeof(s->st.error) - 1, msg);
	pthread_mutex_unlock(&s->mu);
}

/* One connection, until it ends or the shipper stops. */
static void serve(struct ag_audit_ship *s)
{
	struct ag_err err = { 0 };
	int ret;

	for (;;) {
		ret = pump(s, &err);
		if (ret < 0)
			break;
		fl_track(s, false);
		cursor_save(s, false);
		if (ret > 0)
			continue;
		ret = wait_fd(s, POLLIN, 100);
		if (ret == -ECANCELED)
			return;
		if (ret > 0 && (ret = peer_end(s))) {
			if (ret > 0) {
				snprintf(err.msg, sizeof(err.msg), "%s:%s: the collector closed",
					 s->c.host, s->c.port);
			} else {
				snprintf(err.msg, sizeof(err.msg), "%s:%s: connection reset",
					 s->c.host, s->c.port);
			}
			break;
		}
	}
	warnf(s, "%s; resending from record %" PRIu64, err.msg,
	      s->fl_n ? fl_at(s, 0)->seq : s->src.seq);
	set_error(s, err.msg);
	conn_close(s);
	if (rewind_to_cursor(s, &err))
		warnf(s, "%s", err.msg);
	cursor_save(s, true);
}

static bool stopping(struct ag_audit_ship *s)
{
	bool b;

	pthread_mutex_lock(&s->mu);
	b = s->stopping;
	pthread_mutex_unlock(&s->mu);
	return b;
}

/*
 * At stop: what the files hold goes out within drain_ms, then our end of
 * stream; the collector's answering end confirms everything it acked.
 */
static void drain(struct ag_audit_ship *s)
{
	struct ag_err err;
	uint64_t end, v;
	int ret = 0;

	/* The stop was seen: from here the waits are bounded by time alone. */
	if (read(s->stop_fd, &v, sizeof(v)) < 0)
		v = 0;
	pthread_mutex_lock(&s->mu);
	end = now_ms() + s->drain_ms;
	pthread_mutex_unlock(&s->mu);
	while (s->fd >= 0 && now_ms() < end && (ret = pump(s, &err)) > 0)
		;
	if (s->fd >= 0 && ret >= 0) {
		(void)SSL_shutdown(s->ssl);
		shutdown(s->fd, SHUT_WR);
		while (now_ms() < end) {
			struct pollfd p = { .fd = s->fd, .events = POLLIN };

			if (poll(&p, 1, (int)(end - now_ms())) <= 0)
				break;
			if ((ret = peer_end(s))) {
				fl_track(s, ret > 0);
				break;
			}
		}
	}
	if (s->fd >= 0)
		fl_track(s, false);
	conn_close(s);
	cursor_save(s, true);
}

static void *ship_main(void *arg)
{
	struct ag_audit_ship *s = arg;
	unsigned int backoff = BACKOFF_MIN_MS;
	struct ag_err err;
	bool first = true;
	sigset_t pipe;

	/* A collector that went away is an EPIPE for this thread, never a SIGPIPE. */
	sigemptyset(&pipe);
	sigaddset(&pipe, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &pipe, NULL);
	if (src_skip_to(s, s->confirmed, &err)) {
		warnf(s, "not shipping: %s", err.msg);
		set_error(s, err.msg);
		return NULL;
	}
	while (!stopping(s)) {
		if (conn_open(s, &err)) {
			set_error(s, err.msg);
			conn_close(s);
			if (wait_fd(s, 0, (int)backoff) == -ECANCELED)
				break;
			backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
			continue;
		}
		backoff = BACKOFF_MIN_MS;
		pthread_mutex_lock(&s->mu);
		s->st.connected = true;
		s->st.error[0] = '\0';
		s->st.reconnects += !first;
		pthread_mutex_unlock(&s->mu);
		first = false;
		serve(s);
	}
	drain(s);
	return NULL;
}

/* ---- open and close ----------------------------------------------------- */

static int ctx_open(struct ag_audit_ship *s, struct ag_err *err)
{
	/* Fail closed: a collector is always verified against the configured CA. */
	if (!s->c.ca_file || !*s->c.ca_file)
		return ag_errf(err, -EINVAL, "audit ship: no ca_file to verify the collector");
	s->ctx = ag_tls_client_ctx(s->c.ca_file, err);
	if (!s->ctx)
		return -EINVAL;
	if (s->c.cert_file &&
	    (SSL_CTX_use_certificate_chain_file(s->ctx, s->c.cert_file) != 1 ||
	     SSL_CTX_use_PrivateKey_file(s->ctx, s->c.key_file, SSL_FILETYPE_PEM) != 1 ||
	     SSL_CTX_check_private_key(s->ctx) != 1))
		return ag_tls_ossl_err(err, EINVAL, s->c.cert_file);
	return 0;
}

static int copy_config(struct ag_audit_ship *s, const struct ag_audit_ship_config *c)
{
	const char *const *in[] = { &c->log,	   &c->cursor_path, &c->host,
				    &c->port,	   &c->server_name, &c->ca_file,
				    &c->cert_file, &c->key_file,    &c->instance };
	const char **out[] = { &s->c.log,	&s->c.cursor_path, &s->c.host,
			       &s->c.port,	&s->c.server_name, &s->c.ca_file,
			       &s->c.cert_file, &s->c.key_file,	   &s->c.instance };
	size_t total = 0, n = sizeof(in) / sizeof(in[0]);
	char *p;

	s->c = *c;
	for (size_t i = 0; i < n; i++)
		total += *in[i] ? strlen(*in[i]) + 1 : 0;
	p = s->strs = malloc(total + 1);
	if (!p)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		*out[i] = *in[i] ? strcpy(p, *in[i]) : NULL;
		p += *in[i] ? strlen(*in[i]) + 1 : 0;
	}
	return 0;
}

static void ship_free(struct ag_audit_ship *s)
{
	ag_audit_tail_fini(&s->src);
	if (s->stop_fd >= 0)
		close(s->stop_fd);
	SSL_CTX_free(s->ctx);
	pthread_mutex_destroy(&s->mu);
	free(s->fl);
	free(s->frame);
	free(s->strs);
	free(s);
}

int ag_audit_ship_open(const struct ag_audit_ship_config *c, struct ag_audit_writer *w,
		       struct ag_audit_ship **out, struct ag_err *err)
{
	struct ag_audit_ship *s = calloc(1, sizeof(*s));
	int ret;

	if (!s)
		return ag_errf(err, -ENOMEM, "audit ship: out of memory");
	s->fd = s->src.fd = -1;
	s->w = w;
	pthread_mutex_init(&s->mu, NULL);
	s->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	s->fl = calloc(INFLIGHT, sizeof(*s->fl));
	s->frame = malloc(AG_AUDIT_SHIP_FRAME_MAX);
	if (s->stop_fd < 0 || !s->fl || !s->frame || copy_config(s, c) ||
	    ag_audit_tail_init(&s->src, s->c.log)) {
		ret = ag_errf(err, -ENOMEM, "audit ship: out of memory");
		goto fail;
	}
	if (gethostname(s->host, sizeof(s->host) - 1) || !s->host[0])
		strcpy(s->host, "-");
	/* RFC 5424 HOSTNAME is PRINTUSASCII: anything else would break the header. */
	for (char *h = s->host; *h; h++)
		if (*h < 33 || *h > 126)
			*h = '_';
	if ((ret = ctx_open(s, err)) || (ret = cursor_load(s->c.cursor_path, &s->confirmed, err)))
		goto fail;
	s->saved = s->st.cursor = s->st.sent = s->st.seen = s->confirmed;
	if ((ret = -pthread_create(&s->thread, NULL, ship_main, s))) {
		ag_errf(err, ret, "audit ship: thread: %s", strerror(-ret));
		goto fail;
	}
	*out = s;
	return 0;
fail:
	ship_free(s);
	return ret;
}

void ag_audit_ship_writer(struct ag_audit_ship *s, struct ag_audit_writer *w)
{
	if (!s)
		return;
	pthread_mutex_lock(&s->mu);
	s->w = w;
	pthread_mutex_unlock(&s->mu);
}

void ag_audit_ship_status(struct ag_audit_ship *s, struct ag_audit_ship_status *st)
{
	pthread_mutex_lock(&s->mu);
	*st = s->st;
	pthread_mutex_unlock(&s->mu);
}

void ag_audit_ship_close(struct ag_audit_ship *s, unsigned int drain_ms)
{
	uint64_t one = 1;

	if (!s)
		return;
	pthread_mutex_lock(&s->mu);
	s->stopping = true;
	s->drain_ms = drain_ms;
	pthread_mutex_unlock(&s->mu);
	if (write(s->stop_fd, &one, sizeof(one)) < 0)
		warnf(s, "stop: %s", strerror(errno));
	pthread_join(s->thread, NULL);
	ship_free(s);
}
