/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The tool inventory: per tool server, every tool its tools/list ever
 * offered, with the definition hash (toolhash.h) a human or the lock file
 * trusted.  A server that changes a trusted tool (a "rug pull") gets the
 * tool blocked until someone approves the new definition.
 *
 * States: trusted (the offered definition is the trusted one), pending
 * (never trusted: explicit trust, waiting for approval) and blocked (the
 * server now offers a definition other than the trusted one; both kept).
 *
 * On disk: DIR/<server>.json, one per server, replaced atomically on every
 * change under an flock on DIR:
 *	{"version":1,"server":S,"tools":{"<name>":{"state":..,
 *	 "hash":H?,"definition":{..}?,"first_seen":T,"approved_at":T?,
 *	 "approved_by":S?,"offered":{"hash":H,"definition":{..},"seen_at":T}?}}}
 * "hash"/"definition" are the trusted ones: absent for a pending tool, and
 * "definition" absent when only a lock file's pin is known.  "offered" is
 * there exactly when the tool is pending or blocked.  Definitions are the
 * canonical defining fields; loading recomputes and checks every hash.
 *
 * The lock file (policies/tools.lock) pins "server/tool" to a hash:
 *	{"version":1,"tools":{"<server>/<tool>":"<sha256 hex>",...}}
 * and wins over DIR at each load.
 */
#ifndef AG_INVENTORY_H
#define AG_INVENTORY_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "toolhash.h"
#include "util.h"

#define AG_INV_SERVER_MAX 128	    /* bytes of a server name (a file name) */
#define AG_INV_TOOL_NAME_MAX 256    /* bytes of a tool name */
#define AG_INV_MAX_TOOLS 4096	    /* tools per server */
#define AG_INV_MAX_SERVERS 1024	    /* files in DIR */
#define AG_INV_DEF_MAX (256 * 1024) /* canonical text of one definition */
#define AG_INV_FILE_MAX (64 << 20)  /* one server's file */
#define AG_INV_LOCK_MAX (16 << 20)  /* the lock file */
#define AG_INV_MAX_PINS 65536	    /* entries of the lock file */
#define AG_INV_BY_MAX 256	    /* bytes of approved_by */

enum ag_tool_state { AG_TOOL_TRUSTED, AG_TOOL_PENDING, AG_TOOL_BLOCKED };
enum ag_trust { AG_TRUST_ON_FIRST_USE, AG_TRUST_EXPLICIT };
enum ag_inv_event {
	AG_INV_NONE,
	AG_INV_NEW_TRUSTED,
	AG_INV_NEW_PENDING,
	AG_INV_CHANGED,	      /* a trusted tool's definition changed: now blocked */
	AG_INV_OFFER_CHANGED, /* pending/blocked tool offered yet another definition */
	AG_INV_REVERTED,      /* blocked tool back to its trusted definition */
	AG_INV_PIN_MISMATCH,  /* first sight differs from the lock's pin: blocked */
};

const char *ag_tool_state_name(enum ag_tool_state s); /* "trusted", "pending", "blocked" */
const char *ag_inv_event_name(enum ag_inv_event e);   /* "new_trusted", "changed", ... */

/* 0 when server may name a tool server (and its file): 1..AG_INV_SERVER_MAX
 * bytes, no '/', no control characters, not starting with '.'. */
int ag_inventory_check_server(const char *server, struct ag_err *err);

struct ag_inventory;

/* Loads every DIR/<server>.json; creates DIR (0700) when missing. */
int ag_inventory_open(const char *dir, struct ag_inventory **out, struct ag_err *err);
/*
 * The same, holding the flock on DIR from before loading until
 * ag_inventory_free: for an offline read-modify-write (agentgatectl tools
 * approve without a daemon) that must not interleave with a daemon's writes.
 */
int ag_inventory_open_locked(const char *dir, struct ag_inventory **out, struct ag_err *err);
void ag_inventory_free(struct ag_inventory *inv);

struct ag_inv_result {
	enum ag_tool_state state;
	enum ag_inv_event event;
	/* What the server offered before (the offered definition if any, else
	 * the trusted one; "" for a new tool) and what it offers now. */
	char old_hash[AG_TOOLHASH_HEX_LEN + 1];
	char new_hash[AG_TOOLHASH_HEX_LEN + 1];
};

/*
 * One tool object of a tools/list result.  Persists when something
 * changed; a failed write returns its negative errno with err set, rolls
 * the change back in memory (so the next listing tries again) and leaves
 * in *res the change that could not be saved: the caller must then treat
 * the tool as not trusted.  -EINVAL for a tool without a string name,
 * -E2BIG beyond the bounds above.
 */
int ag_inventory_observe(struct ag_inventory *inv, const char *server, enum ag_trust trust,
			 const json_t *tool, int64_t now, struct ag_inv_result *res,
			 struct ag_err *err);
/* -ENOENT when the tool was never seen. */
int ag_inventory_state(const struct ag_inventory *inv, const char *server, const char *tool,
		       enum ag_tool_state *state);
/* The trusted and offered hashes of a tool ("" when it has none); -ENOENT if never seen. */
int ag_inventory_hashes(const struct ag_inventory *inv, const char *server, const char *tool,
			char trusted[AG_TOOLHASH_HEX_LEN + 1],
			char offered[AG_TOOLHASH_HEX_LEN + 1]);
/*
 * The tool's trusted definition (its canonical defining fields), borrowed
 * until the next change to inv; NULL when the tool was never seen, never
 * trusted, or is known only by a lock file's pin.  inv may be NULL.
 */
const json_t *ag_inventory_definition(const struct ag_inventory *inv, const char *server,
				      const char *tool);
/*
 * A pending or blocked tool becomes trusted with its offered definition.
 * expect_hash (64 hex digits, or NULL): the offered hash the approver
 * reviewed; -ESTALE when the server has offered another one since.
 * -EALREADY when trusted, -ENOENT when never seen.  A pin the lock file
 * set for the tool is dropped; *pin_overridden says whether it pinned
 * another hash (the lock file is then stale).  Persists like observe.
 */
int ag_inventory_approve(struct ag_inventory *inv, const char *server, const char *tool,
			 const char *expect_hash, const char *by, int64_t now, bool *pin_overridden,
			 struct ag_err *err);
/* {"<server>":{"<tool>":{"state":..,"hash":..?,"offered_hash":..?,"first_seen":..,
 * "approved_at":..?,"approved_by":..?}}} for listings; NULL when out of memory. */
json_t *ag_inventory_json(const struct ag_inventory *inv);
/*
 * The trusted vs the offered definition as a line diff ("--- trusted H12",
 * "+++ offered H12", then ' ', '-', '+' lines); *out is malloc'd.  A tool
 * never trusted (or known only by a pin) diffs as all '+'.  -ENODATA for a
 * trusted tool (nothing offered), -ENOENT if never seen.
 */
int ag_inventory_diff(const struct ag_inventory *inv, const char *server, const char *tool,
		      char **out, struct ag_err *err);
/*
 * Pins every "server/tool" of the lock file at path: a pinned tool is
 * trusted iff its definition hashes to the pin, blocked otherwise (also on
 * first sight).  Replaces the pins of an earlier import; persists the tools
 * whose state changed (after a failed write, memory holds the lock's view
 * and the files may not).  -ENOENT if path does not exist.
 */
int ag_inventory_lock_import(struct ag_inventory *inv, const char *path, struct ag_err *err);
/* The lock file pinning every trusted hash (of trusted and blocked tools);
 * *out is malloc'd and ends with a newline. */
int ag_inventory_lock_export(const struct ag_inventory *inv, char **out, struct ag_err *err);

#endif
