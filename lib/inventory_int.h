/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The tool inventory's private header: its in-memory model and what its
 * files share.  inventory.c keeps the model, observe and approve;
 * inventory_store.c the directory (files written, read and locked);
 * inventory_lock.c the listing, the lock file and the diff.
 */
#ifndef AG_INVENTORY_INT_H
#define AG_INVENTORY_INT_H

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "inventory.h"

#define HEX_LEN AG_TOOLHASH_HEX_LEN
#define LABEL_MAX 1024 /* "DIR/S.json: tools.T.offered.definition", cut as err->msg is */
#define FILE_SUFFIX ".json"
#define LOCK_BY "tools.lock" /* approved_by of what a lock file's pin trusted */
/* Cells of the LCS table; a bigger diff prints as whole old / whole new. */
#define DIFF_MAX_CELLS (1u << 22)
#define PRETTY_FLAGS (JSON_INDENT(2) | JSON_SORT_KEYS)
/* A definition may hide text in invisible or look-alike characters: the
 * diff shows everything beyond ASCII as \u escapes. */
#define DIFF_FLAGS (PRETTY_FLAGS | JSON_ENSURE_ASCII)

/* The model (ag_inventory_* of inventory.h take it whole). */
struct inv_def {
	char hash[HEX_LEN + 1]; /* "" : none */
	json_t *def;		/* canonical defining fields, immutable; NULL: unknown */
};

struct inv_tool {
	char *name;
	enum ag_tool_state state;
	struct inv_def trusted; /* no hash when pending */
	struct inv_def offered; /* a hash exactly when pending or blocked */
	int64_t first_seen, offered_at;
	int64_t approved_at; /* with approved_by; approved_by NULL: trusted on first use */
	char *approved_by;
};

struct inv_server {
	char *name;
	struct inv_tool *tools; /* sorted by name */
	size_t n, cap;
};

struct inv_pin {
	char *server, *tool;
	char hash[HEX_LEN + 1];
};

struct ag_inventory {
	char *dir;
	int dirfd;
	bool held;		    /* the flock is held until ag_inventory_free */
	struct inv_server *servers; /* sorted by name */
	size_t nservers;
	struct inv_pin *pins;
	size_t npins;
};

/* Shared within the inventory files. */
int inv_state_parse(const char *s, enum ag_tool_state *out);
int inv_check_tool_name(const char *server, const char *name, size_t len, struct ag_err *err);
bool inv_is_hash(const char *s);
const char *inv_jstr(const json_t *v);
int inv_err_wrap(struct ag_err *err, int ret, const char *label);
int inv_def_from_tool(const char *label, const json_t *tool, struct inv_def *out,
		      struct ag_err *err);
void inv_def_release(struct inv_def *d);
void inv_def_copy(struct inv_def *dst, const struct inv_def *src);
void inv_tool_release(struct inv_tool *t);
int inv_tool_approver(struct inv_tool *t, const char *by, int64_t at, struct ag_err *err);
int inv_tool_trust(struct inv_tool *t, struct inv_def *d, const char *by, int64_t now,
		   struct ag_err *err);
int inv_tool_sort_cmp(const void *a, const void *b);
struct inv_server *inv_server_find(const struct ag_inventory *inv, const char *name);
struct inv_tool *inv_tool_find(const struct ag_inventory *inv, const char *server,
			       const char *tool);
void inv_server_release(struct inv_server *s);
int inv_server_get(struct ag_inventory *inv, const char *name, struct inv_server **out,
		   struct ag_err *err);
int inv_server_insert(struct inv_server *s, struct inv_tool *t, struct inv_tool **out,
		      struct ag_err *err);
void inv_server_remove(struct inv_server *s, struct inv_tool *t);
int inv_pin_cmp(const void *a, const void *b);
const struct inv_pin *inv_pin_find(const struct ag_inventory *inv, const char *server,
				   const char *tool);
void inv_pins_release(struct inv_pin *pins, size_t n);
int inv_def_put(json_t *obj, const char *key, const struct inv_def *d);
int inv_server_write(struct ag_inventory *inv, const struct inv_server *s, struct ag_err *err);
int inv_commit(struct ag_inventory *inv, struct inv_server *s, struct inv_tool *t,
	       struct inv_tool *next, struct ag_err *err);
int inv_load_doc(const char *path, const char *text, size_t len, size_t flags,
		 const char *const *keys, size_t nkeys, size_t max_tools, json_t **root,
		 const json_t **tools, struct ag_err *err);

#endif
