/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Audit shipping: the records of an audit log sent, unchanged and in order,
 * to a central syslog collector over TCP with TLS (RFC 5425 octet counting,
 * RFC 5424 messages whose structured data names host, instance and seq),
 * from a durable cursor kept in a file.  Its own thread reads the log's
 * files, never the writer's memory, so a collector outage or a restart
 * resumes from the first record the collector has not confirmed: at least
 * once, never lost; a record sent twice carries the same seq and bytes.
 * docs/audit.md "Shipping" states the guarantees and their limits.
 */
#ifndef AG_AUDIT_SHIP_H
#define AG_AUDIT_SHIP_H

#include <stdbool.h>
#include <stdint.h>

#include "audit.h"

/*
 * The structured data's SD-ID: "agentgate" under IANA's enterprise number
 * for documentation (RFC 5612), as no number is registered for agentgate.
 */
#define AG_AUDIT_SHIP_SDID "agentgate@32473"
/* A frame holds one record and at most this much around it. */
#define AG_AUDIT_SHIP_FRAME_MAX (AG_AUDIT_MAX_LINE + 2048)

struct ag_audit_ship_config {
	const char *log;			  /* the series base the writer appends to */
	const char *cursor_path;		  /* the durable cursor, rewritten atomically */
	const char *host;			  /* the collector's name or address ... */
	const char *port;			  /* ... and TCP port */
	const char *server_name;		  /* verified in its certificate; NULL: host */
	const char *ca_file;			  /* the CA the collector's certificate chains to */
	const char *cert_file;			  /* optional client certificate ... */
	const char *key_file;			  /* ... and its key */
	const char *instance;			  /* APP-NAME and the instance parameter */
	void (*warn)(void *ctx, const char *msg); /* from the shipper's thread */
	void *warn_ctx;
};

struct ag_audit_ship_status {
	bool connected;
	uint64_t cursor;     /* records before it are confirmed: the saved cursor */
	uint64_t sent;	     /* records before it were written to the connection */
	uint64_t seen;	     /* records before it were read from the log */
	uint64_t reconnects; /* connections made after the first */
	char error[256];     /* the last connection error, "" when none */
};

struct ag_audit_ship;

/*
 * Loads the TLS context and the cursor (absent: 0, the whole log) and
 * starts the thread; w bounds shipping to durable records (NULL: none).
 */
int ag_audit_ship_open(const struct ag_audit_ship_config *c, struct ag_audit_writer *w,
		       struct ag_audit_ship **out, struct ag_err *err);
/* Replaces the writer that bounds shipping; NULL once it is closed. */
void ag_audit_ship_writer(struct ag_audit_ship *s, struct ag_audit_writer *w);
void ag_audit_ship_status(struct ag_audit_ship *s, struct ag_audit_ship_status *st);
/*
 * Ships what the files hold for at most drain_ms, closes the connection
 * cleanly (the collector's end of stream confirms every record sent),
 * saves the cursor and frees s.
 */
void ag_audit_ship_close(struct ag_audit_ship *s, unsigned int drain_ms);

/*
 * The RFC 5425 frame of one record into out: "LEN SP SYSLOG-MSG", the
 * message "<86>1 TS HOST INSTANCE PID audit [SDID host= instance= seq=] "
 * then the record's line unchanged (lib/audit_syslog.c).  Returns its length.
 */
int ag_audit_ship_frame(char *out, size_t cap, const char *host, const char *instance, uint64_t seq,
			const char *line, size_t len);

#endif
