// SPDX-License-Identifier: GPL-2.0
/* The tool inventory: states, persistence, lock file and diff (see inventory.h). */
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

#include "fileio.h"
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

const char *ag_tool_state_name(enum ag_tool_state s)
{
	switch (s) {
	case AG_TOOL_TRUSTED:
		return "trusted";
	case AG_TOOL_PENDING:
		return "pending";
	case AG_TOOL_BLOCKED:
		return "blocked";
	}
	return "?";
}

const char *ag_inv_event_name(enum ag_inv_event e)
{
	static const char *const names[] = {
		[AG_INV_NONE] = "none",
		[AG_INV_NEW_TRUSTED] = "new_trusted",
		[AG_INV_NEW_PENDING] = "new_pending",
		[AG_INV_CHANGED] = "changed",
		[AG_INV_OFFER_CHANGED] = "offer_changed",
		[AG_INV_REVERTED] = "reverted",
		[AG_INV_PIN_MISMATCH] = "pin_mismatch",
	};

	return (unsigned int)e < AG_ARRAY_SIZE(names) ? names[e] : "?";
}

static int state_parse(const char *s, enum ag_tool_state *out)
{
	for (enum ag_tool_state st = AG_TOOL_TRUSTED; st <= AG_TOOL_BLOCKED; st++) {
		if (s && !strcmp(s, ag_tool_state_name(st))) {
			*out = st;
			return 0;
		}
	}
	return -EINVAL;
}

static bool has_control(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return true;
	return false;
}

int ag_inventory_check_server(const char *server, struct ag_err *err)
{
	size_t len = strnlen(server, AG_INV_SERVER_MAX + 1);

	if (!len || len > AG_INV_SERVER_MAX)
		return ag_errf(err, EINVAL, "tool server name: 1 to %d bytes expected",
			       AG_INV_SERVER_MAX);
	/* It names a file in DIR: no path, no hidden or temporary file. */
	if (strchr(server, '/') || server[0] == '.' || has_control(server))
		return ag_errf(err, EINVAL,
			       "tool server name \"%s\": no '/', no control characters and no "
			       "leading '.' allowed",
			       has_control(server) ? "?" : server);
	return 0;
}

/* len: the JSON string's length, which differs from strlen when it holds a NUL. */
static int check_tool_name(const char *server, const char *name, size_t len, struct ag_err *err)
{
	if (!len || len > AG_INV_TOOL_NAME_MAX || strlen(name) != len)
		return ag_errf(err, EINVAL,
			       "server %s: tool name: 1 to %d bytes without NUL expected", server,
			       AG_INV_TOOL_NAME_MAX);
	return 0;
}

static bool is_hash(const char *s)
{
	size_t i;

	for (i = 0; s[i] && i < HEX_LEN; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return i == HEX_LEN && !s[i];
}

/* A JSON string's value, "" for anything else. */
static const char *jstr(const json_t *v)
{
	return json_is_string(v) ? json_string_value(v) : "";
}

/* Replaces err's message by "label: message". */
static int err_wrap(struct ag_err *err, int ret, const char *label)
{
	char msg[sizeof(err->msg)];

	memcpy(msg, err->msg, sizeof(msg));
	return ag_errf(err, -ret, "%s: %s", label, msg);
}

/* The canonical defining fields of tool and their hash. */
static int def_from_tool(const char *label, const json_t *tool, struct inv_def *out,
			 struct ag_err *err)
{
	json_error_t jerr;
	char *canon;
	size_t len;
	int ret;

	out->def = NULL;
	ret = ag_tool_canonical(tool, &canon, &len, err);
	if (ret)
		return err_wrap(err, ret, label);
	if (len > AG_INV_DEF_MAX) {
		free(canon);
		return ag_errf(err, E2BIG, "%s: definition larger than %d bytes", label,
			       AG_INV_DEF_MAX);
	}
	out->def = json_loadb(canon, len, JSON_ALLOW_NUL, &jerr);
	free(canon);
	if (!out->def)
		return ag_errf(err, EINVAL, "%s: canonical definition unreadable: %s", label,
			       jerr.text);
	ret = ag_tool_hash(out->def, out->hash, err);
	if (ret) {
		json_decref(out->def);
		out->def = NULL;
		return err_wrap(err, ret, label);
	}
	return 0;
}

static void def_release(struct inv_def *d)
{
	json_decref(d->def);
	memset(d, 0, sizeof(*d));
}

static void def_copy(struct inv_def *dst, const struct inv_def *src)
{
	memcpy(dst->hash, src->hash, sizeof(dst->hash));
	dst->def = json_incref(src->def);
}

static void tool_release(struct inv_tool *t)
{
	free(t->name);
	free(t->approved_by);
	def_release(&t->trusted);
	def_release(&t->offered);
	memset(t, 0, sizeof(*t));
}

static int tool_copy(struct inv_tool *dst, const struct inv_tool *src, struct ag_err *err)
{
	*dst = *src;
	dst->name = strdup(src->name);
	dst->approved_by = src->approved_by ? strdup(src->approved_by) : NULL;
	def_copy(&dst->trusted, &src->trusted);
	def_copy(&dst->offered, &src->offered);
	if (!dst->name || (src->approved_by && !dst->approved_by)) {
		tool_release(dst);
		return ag_errf(err, ENOMEM, "tool %s: out of memory", src->name);
	}
	return 0;
}

/* Who decided the trusted hash; by NULL: nobody, it was trusted on first use. */
static int tool_approver(struct inv_tool *t, const char *by, int64_t at, struct ag_err *err)
{
	char *who = NULL;

	if (by && !(who = strdup(by)))
		return ag_errf(err, ENOMEM, "tool %s: out of memory", t->name);
	free(t->approved_by);
	t->approved_by = who;
	t->approved_at = who ? at : 0;
	return 0;
}

/* The tool becomes trusted with d (moved in). */
static int tool_trust(struct inv_tool *t, struct inv_def *d, const char *by, int64_t now,
		      struct ag_err *err)
{
	int ret = tool_approver(t, by, now, err);

	if (ret)
		return ret;
	def_release(&t->trusted);
	def_release(&t->offered);
	t->trusted = *d;
	memset(d, 0, sizeof(*d));
	t->state = AG_TOOL_TRUSTED;
	t->offered_at = 0;
	return 0;
}

/* The tool now offers d (moved in) instead of what it offered before. */
static void tool_offer(struct inv_tool *t, struct inv_def *d, int64_t now)
{
	def_release(&t->offered);
	t->offered = *d;
	memset(d, 0, sizeof(*d));
	t->offered_at = now;
}

static int tool_cmp(const void *key, const void *elem)
{
	return strcmp(key, ((const struct inv_tool *)elem)->name);
}

static int tool_sort_cmp(const void *a, const void *b)
{
	return strcmp(((const struct inv_tool *)a)->name, ((const struct inv_tool *)b)->name);
}

static int server_cmp(const void *key, const void *elem)
{
	return strcmp(key, ((const struct inv_server *)elem)->name);
}

static struct inv_server *server_find(const struct ag_inventory *inv, const char *name)
{
	if (!inv->nservers)
		return NULL;
	return bsearch(name, inv->servers, inv->nservers, sizeof(*inv->servers), server_cmp);
}

static struct inv_tool *tool_find(const struct ag_inventory *inv, const char *server,
				  const char *tool)
{
	const struct inv_server *s = server_find(inv, server);

	if (!s || !s->n)
		return NULL;
	return bsearch(tool, s->tools, s->n, sizeof(*s->tools), tool_cmp);
}

static void server_release(struct inv_server *s)
{
	for (size_t i = 0; i < s->n; i++)
		tool_release(&s->tools[i]);
	free(s->tools);
	free(s->name);
}

/* The server's entry, added (without tools) when missing. */
static int server_get(struct ag_inventory *inv, const char *name, struct inv_server **out,
		      struct ag_err *err)
{
	struct inv_server *s = server_find(inv, name), *ns;
	size_t pos = 0;

	*out = s;
	if (s)
		return 0;
	if (inv->nservers >= AG_INV_MAX_SERVERS)
		return ag_errf(err, E2BIG, "server %s: more than %d tool servers in %s", name,
			       AG_INV_MAX_SERVERS, inv->dir);
	ns = realloc(inv->servers, (inv->nservers + 1) * sizeof(*ns));
	if (!ns)
		return ag_errf(err, ENOMEM, "server %s: out of memory", name);
	inv->servers = ns;
	while (pos < inv->nservers && strcmp(ns[pos].name, name) < 0)
		pos++;
	memmove(ns + pos + 1, ns + pos, (inv->nservers - pos) * sizeof(*ns));
	memset(ns + pos, 0, sizeof(*ns));
	inv->nservers++;
	ns[pos].name = strdup(name);
	if (!ns[pos].name) {
		memmove(ns + pos, ns + pos + 1, (--inv->nservers - pos) * sizeof(*ns));
		return ag_errf(err, ENOMEM, "server %s: out of memory", name);
	}
	*out = ns + pos;
	return 0;
}

/* Inserts t (moved in) at its place; the caller checked the name is new. */
static int server_insert(struct inv_server *s, struct inv_tool *t, struct inv_tool **out,
			 struct ag_err *err)
{
	size_t pos = 0;

	if (s->n >= AG_INV_MAX_TOOLS)
		return ag_errf(err, E2BIG, "server %s: more than %d tools", s->name,
			       AG_INV_MAX_TOOLS);
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 16;
		struct inv_tool *nt = realloc(s->tools, cap * sizeof(*nt));

		if (!nt)
			return ag_errf(err, ENOMEM, "server %s: out of memory", s->name);
		s->tools = nt;
		s->cap = cap;
	}
	while (pos < s->n && strcmp(s->tools[pos].name, t->name) < 0)
		pos++;
	memmove(s->tools + pos + 1, s->tools + pos, (s->n - pos) * sizeof(*t));
	s->tools[pos] = *t;
	memset(t, 0, sizeof(*t));
	s->n++;
	*out = s->tools + pos;
	return 0;
}

static void server_remove(struct inv_server *s, struct inv_tool *t)
{
	size_t pos = (size_t)(t - s->tools);

	tool_release(t);
	memmove(t, t + 1, (s->n - pos - 1) * sizeof(*t));
	s->n--;
}

static int pin_cmp(const void *a, const void *b)
{
	const struct inv_pin *pa = a, *pb = b;
	int c = strcmp(pa->server, pb->server);

	return c ? c : strcmp(pa->tool, pb->tool);
}

static const struct inv_pin *pin_find(const struct ag_inventory *inv, const char *server,
				      const char *tool)
{
	const struct inv_pin key = { .server = (char *)server, .tool = (char *)tool };

	if (!inv->npins)
		return NULL;
	return bsearch(&key, inv->pins, inv->npins, sizeof(key), pin_cmp);
}

static void pins_release(struct inv_pin *pins, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(pins[i].server);
		free(pins[i].tool);
	}
	free(pins);
}

/* ---- persistence ---- */

static int dir_lock(struct ag_inventory *inv, struct ag_err *err)
{
	if (inv->held)
		return 0;
	while (flock(inv->dirfd, LOCK_EX))
		if (errno != EINTR)
			return ag_errf(err, errno, "%s: flock: %s", inv->dir, strerror(errno));
	return 0;
}

static void dir_unlock(struct ag_inventory *inv)
{
	if (!inv->held)
		flock(inv->dirfd, LOCK_UN);
}

static int def_put(json_t *obj, const char *key, const struct inv_def *d)
{
	if (d->hash[0] && json_object_set_new(obj, key, json_string(d->hash)))
		return -1;
	return 0;
}

static json_t *tool_json(const struct inv_tool *t)
{
	json_t *o = json_pack("{s:s,s:I}", "state", ag_tool_state_name(t->state), "first_seen",
			      (json_int_t)t->first_seen);
	int bad = !o;

	if (!bad && t->trusted.hash[0])
		bad = def_put(o, "hash", &t->trusted);
	if (!bad && t->trusted.def)
		bad = json_object_set(o, "definition", t->trusted.def);
	if (!bad && t->approved_by)
		bad = json_object_set_new(o, "approved_at", json_integer(t->approved_at)) ||
		      json_object_set_new(o, "approved_by", json_string(t->approved_by));
	if (!bad && t->offered.hash[0])
		bad = json_object_set_new(o, "offered",
					  json_pack("{s:s,s:O,s:I}", "hash", t->offered.hash,
						    "definition", t->offered.def, "seen_at",
						    (json_int_t)t->offered_at));
	if (bad) {
		json_decref(o);
		return NULL;
	}
	return o;
}

static char *server_text(const struct inv_server *s)
{
	json_t *tools = json_object(), *root;
	char *text = NULL;
	size_t i;

	for (i = 0; tools && i < s->n; i++)
		if (json_object_set_new(tools, s->tools[i].name, tool_json(&s->tools[i])))
			break;
	if (!tools || i < s->n) {
		json_decref(tools);
		return NULL;
	}
	root = json_pack("{s:i,s:s,s:o}", "version", 1, "server", s->name, "tools", tools);
	if (root)
		text = json_dumps(root, JSON_INDENT(1) | JSON_SORT_KEYS);
	json_decref(root);
	return text;
}

/* DIR/<server>.json through a temporary file and a rename, then the directory synced:
 * after a crash readers see the old or the new file, never a mix. */
static int server_write(struct ag_inventory *inv, const struct inv_server *s, struct ag_err *err)
{
	char name[AG_INV_SERVER_MAX + 16], *text;
	size_t len;
	int ret;

	snprintf(name, sizeof(name), "%s" FILE_SUFFIX, s->name);
	text = server_text(s);
	if (!text)
		return ag_errf(err, ENOMEM, "%s/%s: out of memory", inv->dir, name);
	len = strlen(text);
	text[len++] = '\n'; /* over the NUL: text is written by length */
	/* Never write what the next load would refuse. */
	if (len > AG_INV_FILE_MAX) {
		free(text);
		return ag_errf(err, E2BIG, "%s/%s: would be larger than %d bytes", inv->dir, name,
			       AG_INV_FILE_MAX);
	}
	ret = dir_lock(inv, err);
	if (ret) {
		free(text);
		return ret;
	}
	ret = ag_file_write_atomic_at(inv->dirfd, inv->dir, name, text, len, 0600, err);
	dir_unlock(inv);
	free(text);
	return ret;
}

/*
 * Puts next (moved in) in the place of *t, or inserts it when t is NULL,
 * and writes the server's file; a failed write restores the previous state.
 */
static int commit(struct ag_inventory *inv, struct inv_server *s, struct inv_tool *t,
		  struct inv_tool *next, struct ag_err *err)
{
	struct inv_tool prev;
	int ret;

	if (!t) {
		ret = server_insert(s, next, &t, err);
		if (ret) {
			tool_release(next);
			return ret;
		}
		ret = server_write(inv, s, err);
		if (ret)
			server_remove(s, t);
		return ret;
	}
	prev = *t;
	*t = *next;
	memset(next, 0, sizeof(*next));
	ret = server_write(inv, s, err);
	if (ret) {
		tool_release(t);
		*t = prev;
	} else {
		tool_release(&prev);
	}
	return ret;
}

/* ---- loading ---- */

/* The first member of obj not in keys, or NULL. */
static const char *unknown_key(const json_t *obj, const char *const *keys, size_t n)
{
	const char *k;
	json_t *v;

	json_object_foreach((json_t *)obj, k, v)
	{
		size_t i;

		for (i = 0; i < n && strcmp(k, keys[i]); i++)
			;
		if (i == n)
			return k;
	}
	return NULL;
}

/* A stored definition: its canonical hash must be hash, its name the tool's. */
static int load_def(const char *label, const json_t *v, const char *hash, const char *name,
		    struct inv_def *out, struct ag_err *err)
{
	int ret;

	if (!json_is_object(v))
		return ag_errf(err, EINVAL, "%s: an object expected", label);
	ret = def_from_tool(label, v, out, err);
	if (ret)
		return ret;
	if (strcmp(out->hash, hash)) {
		def_release(out);
		return ag_errf(err, EINVAL, "%s: hashes to %s, not to the recorded hash", label,
			       out->hash);
	}
	if (strcmp(jstr(json_object_get(out->def, "name")), name)) {
		def_release(out);
		return ag_errf(err, EINVAL, "%s: its name is not the tool's", label);
	}
	return 0;
}

static bool get_time(const json_t *v, int64_t *out)
{
	if (!json_is_integer(v) || json_integer_value(v) < 0)
		return false;
	*out = json_integer_value(v);
	return true;
}

static int load_tool(const char *path, const char *name, const json_t *o, struct inv_tool *t,
		     struct ag_err *err)
{
	static const char *const keys[] = { "state",	  "hash",	 "definition",
					    "first_seen", "approved_at", "approved_by",
					    "offered" };
	static const char *const okeys[] = { "hash", "definition", "seen_at" };
	const json_t *hash = json_object_get(o, "hash"), *def = json_object_get(o, "definition");
	const json_t *off = json_object_get(o, "offered"), *by = json_object_get(o, "approved_by");
	const json_t *at = json_object_get(o, "approved_at");
	char label[LABEL_MAX + 64];
	const char *k;
	int ret = 0;

	memset(t, 0, sizeof(*t));
	snprintf(label, sizeof(label), "%s: tools.%s", path, name);
	if (!json_is_object(o))
		return ag_errf(err, EINVAL, "%s: an object expected", label);
	if ((k = unknown_key(o, keys, AG_ARRAY_SIZE(keys))))
		return ag_errf(err, EINVAL, "%s.%s: unknown member", label, k);
	if (state_parse(json_string_value(json_object_get(o, "state")), &t->state))
		return ag_errf(err, EINVAL, "%s.state: trusted, pending or blocked expected",
			       label);
	if ((t->state == AG_TOOL_PENDING) != !hash)
		return ag_errf(err, EINVAL, "%s.hash: %s for a %s tool", label,
			       hash ? "unexpected" : "missing", ag_tool_state_name(t->state));
	if (hash && !is_hash(jstr(hash)))
		return ag_errf(err, EINVAL, "%s.hash: 64 lowercase hex digits expected", label);
	if ((t->state == AG_TOOL_TRUSTED) == !!off)
		return ag_errf(err, EINVAL, "%s.offered: %s for a %s tool", label,
			       off ? "unexpected" : "missing", ag_tool_state_name(t->state));
	if (!get_time(json_object_get(o, "first_seen"), &t->first_seen))
		return ag_errf(err, EINVAL, "%s.first_seen: a unix time expected", label);
	if (!by != !at)
		return ag_errf(err, EINVAL, "%s: approved_at and approved_by go together", label);
	if (at && !get_time(at, &t->approved_at))
		return ag_errf(err, EINVAL, "%s.approved_at: a unix time expected", label);
	if (by && (!json_is_string(by) || json_string_length(by) > AG_INV_BY_MAX ||
		   strlen(json_string_value(by)) != json_string_length(by)))
		return ag_errf(err, EINVAL, "%s.approved_by: a string of up to %d bytes expected",
			       label, AG_INV_BY_MAX);
	if (!(t->name = strdup(name)) || (by && !(t->approved_by = strdup(json_string_value(by)))))
		return ag_errf(err, ENOMEM, "%s: out of memory", label);
	if (hash)
		memcpy(t->trusted.hash, json_string_value(hash), HEX_LEN + 1);
	if (t->state == AG_TOOL_TRUSTED && !def)
		return ag_errf(err, EINVAL, "%s.definition: missing for a trusted tool", label);
	if (def && !hash)
		return ag_errf(err, EINVAL, "%s.definition: unexpected for a pending tool", label);
	if (def) {
		char dl[LABEL_MAX + 128];

		snprintf(dl, sizeof(dl), "%s.definition", label);
		if ((ret = load_def(dl, def, json_string_value(hash), name, &t->trusted, err)))
			return ret;
	}
	if (off) {
		const json_t *oh = json_object_get(off, "hash");
		char dl[LABEL_MAX + 128];

		if (!json_is_object(off))
			return ag_errf(err, EINVAL, "%s.offered: an object expected", label);
		if ((k = unknown_key(off, okeys, AG_ARRAY_SIZE(okeys))))
			return ag_errf(err, EINVAL, "%s.offered.%s: unknown member", label, k);
		if (!is_hash(jstr(oh)))
			return ag_errf(err, EINVAL,
				       "%s.offered.hash: 64 lowercase hex digits expected", label);
		if (!strcmp(json_string_value(oh), t->trusted.hash))
			return ag_errf(err, EINVAL,
				       "%s.offered.hash: the trusted hash, not another", label);
		if (!get_time(json_object_get(off, "seen_at"), &t->offered_at))
			return ag_errf(err, EINVAL, "%s.offered.seen_at: a unix time expected",
				       label);
		snprintf(dl, sizeof(dl), "%s.offered.definition", label);
		ret = load_def(dl, json_object_get(off, "definition"), json_string_value(oh), name,
			       &t->offered, err);
	}
	return ret;
}

/*
 * A versioned document of ours (a server file, the lock file): parsed
 * strictly, an object with only the given members, version 1, and a
 * "tools" object of at most max_tools entries.  *root is the caller's.
 */
static int load_doc(const char *path, const char *text, size_t len, size_t flags,
		    const char *const *keys, size_t nkeys, size_t max_tools, json_t **root,
		    const json_t **tools, struct ag_err *err)
{
	json_error_t jerr;
	const char *k;
	int ret = 0;

	*root = json_loadb(text, len, JSON_REJECT_DUPLICATES | flags, &jerr);
	if (!*root)
		return ag_errf(err, EINVAL, "%s: line %d: %s", path, jerr.line, jerr.text);
	*tools = json_object_get(*root, "tools");
	if (!json_is_object(*root))
		ret = ag_errf(err, EINVAL, "%s: an object expected", path);
	else if ((k = unknown_key(*root, keys, nkeys)))
		ret = ag_errf(err, EINVAL, "%s: %s: unknown member", path, k);
	else if (!json_is_integer(json_object_get(*root, "version")) ||
		 json_integer_value(json_object_get(*root, "version")) != 1)
		ret = ag_errf(err, EINVAL, "%s: version: 1 expected", path);
	else if (!json_is_object(*tools) || json_object_size(*tools) > max_tools)
		ret = ag_errf(err, EINVAL, "%s: tools: an object of up to %zu entries expected",
			      path, max_tools);
	if (ret) {
		json_decref(*root);
		*root = NULL;
	}
	return ret;
}

static int load_server(struct ag_inventory *inv, const char *file, struct ag_err *err)
{
	static const char *const keys[] = { "version", "server", "tools" };
	char path[LABEL_MAX], server[AG_INV_SERVER_MAX + 1], *text;
	size_t flen = strlen(file) - strlen(FILE_SUFFIX), len = 0, i = 0;
	const json_t *tools, *v;
	struct inv_server *s;
	json_t *root;
	const char *k;
	int ret;

	snprintf(path, sizeof(path), "%s/%s", inv->dir, file);
	if (flen > AG_INV_SERVER_MAX)
		return ag_errf(err, EINVAL, "%s: server name longer than %d bytes", path,
			       AG_INV_SERVER_MAX);
	memcpy(server, file, flen);
	server[flen] = '\0';
	if ((ret = ag_inventory_check_server(server, err)))
		return err_wrap(err, ret, path);
	if ((ret = ag_file_read_at(inv->dirfd, inv->dir, file, AG_FILE_NOFOLLOW, AG_INV_FILE_MAX,
				   &text, &len, err)))
		return ret;
	ret = load_doc(path, text, len, JSON_ALLOW_NUL, keys, AG_ARRAY_SIZE(keys), AG_INV_MAX_TOOLS,
		       &root, &tools, err);
	free(text);
	if (ret)
		return ret;
	if (strcmp(jstr(json_object_get(root, "server")), server))
		ret = ag_errf(err, EINVAL, "%s: server: \"%s\" expected, as the file name says",
			      path, server);
	if (!ret && server_find(inv, server))
		ret = ag_errf(err, EINVAL, "%s: server %s loaded twice", path, server);
	if (!ret)
		ret = server_get(inv, server, &s, err);
	if (ret) {
		json_decref(root);
		return ret;
	}
	s->tools = calloc(json_object_size(tools) + 1, sizeof(*s->tools));
	if (!s->tools) {
		json_decref(root);
		return ag_errf(err, ENOMEM, "%s: out of memory", path);
	}
	s->cap = json_object_size(tools) + 1;
	json_object_foreach((json_t *)tools, k, v)
	{
		ret = check_tool_name(server, k, strlen(k), err);
		if (ret)
			ret = err_wrap(err, ret, path);
		else
			ret = load_tool(path, k, v, &s->tools[i], err);
		/* A partly loaded tool is released with the server. */
		s->n = ++i;
		if (ret)
			break;
	}
	json_decref(root);
	if (!ret)
		qsort(s->tools, s->n, sizeof(*s->tools), tool_sort_cmp);
	return ret;
}

static int load_dir(struct ag_inventory *inv, struct ag_err *err)
{
	int fd = dup(inv->dirfd), ret = 0;
	struct dirent *de;
	DIR *d;

	d = fd < 0 ? NULL : fdopendir(fd);
	if (!d) {
		ret = ag_errf(err, errno, "%s: opendir: %s", inv->dir, strerror(errno));
		if (fd >= 0)
			close(fd);
		return ret;
	}
	errno = 0;
	while (!ret && (de = readdir(d))) {
		size_t len = strlen(de->d_name);

		/* Dot files are ours in flight (.S.json.tmp) or nobody's. */
		if (de->d_name[0] == '.' || len <= strlen(FILE_SUFFIX) ||
		    strcmp(de->d_name + len - strlen(FILE_SUFFIX), FILE_SUFFIX))
			continue;
		ret = load_server(inv, de->d_name, err);
		errno = 0;
	}
	if (!ret && errno)
		ret = ag_errf(err, errno, "%s: readdir: %s", inv->dir, strerror(errno));
	closedir(d);
	return ret;
}

static int inv_open(const char *dir, bool held, struct ag_inventory **out, struct ag_err *err)
{
	struct ag_inventory *inv;
	int ret = 0;

	*out = NULL;
	inv = calloc(1, sizeof(*inv));
	if (!inv || !(inv->dir = strdup(dir))) {
		free(inv);
		return ag_errf(err, ENOMEM, "%s: out of memory", dir);
	}
	inv->dirfd = -1;
	if (!mkdir(dir, 0700)) {
		/* Created here: the umask does not decide who reads it. */
		if (chmod(dir, 0700))
			ret = ag_errf(err, errno, "%s: chmod: %s", dir, strerror(errno));
	} else if (errno != EEXIST) {
		ret = ag_errf(err, errno, "%s: mkdir: %s", dir, strerror(errno));
	}
	if (!ret) {
		inv->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (inv->dirfd < 0)
			ret = ag_errf(err, errno, "%s: open: %s", dir, strerror(errno));
	}
	if (!ret && held)
		ret = dir_lock(inv, err);
	inv->held = held && !ret;
	if (!ret)
		ret = load_dir(inv, err);
	if (ret) {
		ag_inventory_free(inv);
		return ret;
	}
	*out = inv;
	return 0;
}

int ag_inventory_open(const char *dir, struct ag_inventory **out, struct ag_err *err)
{
	return inv_open(dir, false, out, err);
}

int ag_inventory_open_locked(const char *dir, struct ag_inventory **out, struct ag_err *err)
{
	return inv_open(dir, true, out, err);
}

void ag_inventory_free(struct ag_inventory *inv)
{
	if (!inv)
		return;
	for (size_t i = 0; i < inv->nservers; i++)
		server_release(&inv->servers[i]);
	free(inv->servers);
	pins_release(inv->pins, inv->npins);
	if (inv->dirfd >= 0)
		close(inv->dirfd); /* drops the flock when held */
	free(inv->dir);
	free(inv);
}

/* ---- observe and approve ---- */

/* A tool seen for the first time: trusted, pending or, against a pin, blocked. */
static int first_sight(const struct ag_inventory *inv, const char *server, enum ag_trust trust,
		       struct inv_def *seen, int64_t now, struct inv_tool *next,
		       struct ag_inv_result *res, struct ag_err *err)
{
	const struct inv_pin *pin = pin_find(inv, server, next->name);

	next->first_seen = now;
	if (pin && strcmp(pin->hash, seen->hash)) {
		next->state = AG_TOOL_BLOCKED;
		memcpy(next->trusted.hash, pin->hash, sizeof(pin->hash));
		tool_offer(next, seen, now);
		res->event = AG_INV_PIN_MISMATCH;
		return tool_approver(next, LOCK_BY, now, err);
	}
	if (pin || trust == AG_TRUST_ON_FIRST_USE) {
		res->event = AG_INV_NEW_TRUSTED;
		return tool_trust(next, seen, pin ? LOCK_BY : NULL, now, err);
	}
	next->state = AG_TOOL_PENDING;
	tool_offer(next, seen, now);
	res->event = AG_INV_NEW_PENDING;
	return 0;
}

/* What a known tool's new listing changes: the event, applied to next. */
static void next_sight(struct inv_def *seen, int64_t now, struct inv_tool *next,
		       struct ag_inv_result *res)
{
	if (next->state == AG_TOOL_TRUSTED && strcmp(seen->hash, next->trusted.hash)) {
		next->state = AG_TOOL_BLOCKED;
		tool_offer(next, seen, now);
		res->event = AG_INV_CHANGED;
	} else if (next->state == AG_TOOL_BLOCKED && !strcmp(seen->hash, next->trusted.hash)) {
		/* Who approved it stays; a pin-only tool now has its definition. */
		def_release(&next->trusted);
		next->trusted = *seen;
		memset(seen, 0, sizeof(*seen));
		def_release(&next->offered);
		next->offered_at = 0;
		next->state = AG_TOOL_TRUSTED;
		res->event = AG_INV_REVERTED;
	} else if (next->state != AG_TOOL_TRUSTED && strcmp(seen->hash, next->offered.hash)) {
		tool_offer(next, seen, now);
		res->event = AG_INV_OFFER_CHANGED;
	}
}

int ag_inventory_observe(struct ag_inventory *inv, const char *server, enum ag_trust trust,
			 const json_t *tool, int64_t now, struct ag_inv_result *res,
			 struct ag_err *err)
{
	const json_t *jname = json_object_get(tool, "name");
	struct inv_tool next = { 0 }, *t;
	struct inv_def seen = { 0 };
	char label[LABEL_MAX];
	struct inv_server *s;
	int ret;

	memset(res, 0, sizeof(*res));
	res->state = AG_TOOL_BLOCKED; /* whatever fails below, nothing is trusted */
	if ((ret = ag_inventory_check_server(server, err)))
		return ret;
	if (!json_is_string(jname))
		return ag_errf(err, EINVAL, "server %s: a tool without a string name", server);
	if ((ret =
		 check_tool_name(server, json_string_value(jname), json_string_length(jname), err)))
		return ret;
	snprintf(label, sizeof(label), "server %s: tool %s", server, json_string_value(jname));
	if ((ret = def_from_tool(label, tool, &seen, err)))
		return ret;
	memcpy(res->new_hash, seen.hash, sizeof(seen.hash));
	if ((ret = server_get(inv, server, &s, err)))
		goto out;
	t = tool_find(inv, server, json_string_value(jname));
	if (!t) {
		next.name = strdup(json_string_value(jname));
		ret = next.name ? first_sight(inv, server, trust, &seen, now, &next, res, err)
				: ag_errf(err, ENOMEM, "%s: out of memory", label);
	} else {
		const struct inv_def *was = t->offered.hash[0] ? &t->offered : &t->trusted;

		memcpy(res->old_hash, was->hash, sizeof(was->hash));
		ret = tool_copy(&next, t, err);
		if (!ret)
			next_sight(&seen, now, &next, res);
	}
	res->state = next.state;
	if (!ret && (!t || res->event != AG_INV_NONE))
		ret = commit(inv, s, t, &next, err);
	else
		tool_release(&next);
out:
	def_release(&seen);
	if (ret)
		res->state = AG_TOOL_BLOCKED;
	return ret;
}

int ag_inventory_state(const struct ag_inventory *inv, const char *server, const char *tool,
		       enum ag_tool_state *state)
{
	const struct inv_tool *t = tool_find(inv, server, tool);

	if (!t)
		return -ENOENT;
	*state = t->state;
	return 0;
}

int ag_inventory_hashes(const struct ag_inventory *inv, const char *server, const char *tool,
			char trusted[AG_TOOLHASH_HEX_LEN + 1],
			char offered[AG_TOOLHASH_HEX_LEN + 1])
{
	const struct inv_tool *t = tool_find(inv, server, tool);

	if (!t)
		return -ENOENT;
	memcpy(trusted, t->trusted.hash, HEX_LEN + 1);
	memcpy(offered, t->offered.hash, HEX_LEN + 1);
	return 0;
}

const json_t *ag_inventory_definition(const struct ag_inventory *inv, const char *server,
				      const char *tool)
{
	const struct inv_tool *t = inv ? tool_find(inv, server, tool) : NULL;

	return t ? t->trusted.def : NULL;
}

int ag_inventory_approve(struct ag_inventory *inv, const char *server, const char *tool,
			 const char *expect_hash, const char *by, int64_t now, bool *pin_overridden,
			 struct ag_err *err)
{
	struct inv_tool *t = tool_find(inv, server, tool), next;
	const struct inv_pin *pin;
	struct inv_def d;
	int ret;

	*pin_overridden = false;
	if (!t)
		return ag_errf(err, ENOENT, "%s/%s: no such tool in the inventory", server, tool);
	if (t->state == AG_TOOL_TRUSTED)
		return ag_errf(err, EALREADY, "%s/%s: already trusted", server, tool);
	if (expect_hash && strcasecmp(expect_hash, t->offered.hash))
		return ag_errf(err, ESTALE,
			       "%s/%s: the server offers %.12s now, not %.12s; review it again",
			       server, tool, t->offered.hash, expect_hash);
	if (!by || !*by || strlen(by) > AG_INV_BY_MAX || has_control(by))
		return ag_errf(err, EINVAL, "%s/%s: approver: 1 to %d printable bytes expected",
			       server, tool, AG_INV_BY_MAX);
	ret = tool_copy(&next, t, err);
	if (ret)
		return ret;
	def_copy(&d, &next.offered);
	ret = tool_trust(&next, &d, by, now, err);
	def_release(&d);
	if (!ret)
		ret = commit(inv, server_find(inv, server), t, &next, err);
	else
		tool_release(&next);
	if (ret)
		return ret;
	pin = pin_find(inv, server, tool);
	if (pin) {
		size_t i = (size_t)(pin - inv->pins);

		*pin_overridden = strcmp(pin->hash, t->trusted.hash) != 0;
		free(inv->pins[i].server);
		free(inv->pins[i].tool);
		memmove(inv->pins + i, inv->pins + i + 1, (--inv->npins - i) * sizeof(*pin));
	}
	return 0;
}

/* ---- listing, lock file, diff ---- */

json_t *ag_inventory_json(const struct ag_inventory *inv)
{
	json_t *root = json_object();

	for (size_t i = 0; root && i < inv->nservers; i++) {
		const struct inv_server *s = &inv->servers[i];
		json_t *tools = json_object();

		if (!s->n) {
			json_decref(tools);
			continue;
		}
		for (size_t j = 0; tools && j < s->n; j++) {
			const struct inv_tool *t = &s->tools[j];
			json_t *o = json_pack("{s:s,s:I}", "state", ag_tool_state_name(t->state),
					      "first_seen", (json_int_t)t->first_seen);

			if (o && (def_put(o, "hash", &t->trusted) ||
				  def_put(o, "offered_hash", &t->offered) ||
				  (t->approved_by &&
				   (json_object_set_new(o, "approved_at",
							json_integer(t->approved_at)) ||
				    json_object_set_new(o, "approved_by",
							json_string(t->approved_by)))))) {
				json_decref(o);
				o = NULL;
			}
			if (json_object_set_new(tools, t->name, o)) {
				json_decref(tools);
				tools = NULL;
			}
		}
		if (json_object_set_new(root, s->name, tools)) {
			json_decref(root);
			root = NULL;
		}
	}
	return root;
}

int ag_inventory_lock_export(const struct ag_inventory *inv, char **out, struct ag_err *err)
{
	json_t *tools = json_object(), *root;
	char key[AG_INV_SERVER_MAX + AG_INV_TOOL_NAME_MAX + 2];
	bool bad = !tools;
	char *text = NULL;

	*out = NULL;
	for (size_t i = 0; !bad && i < inv->nservers; i++) {
		for (size_t j = 0; !bad && j < inv->servers[i].n; j++) {
			const struct inv_tool *t = &inv->servers[i].tools[j];

			if (!t->trusted.hash[0])
				continue;
			snprintf(key, sizeof(key), "%s/%s", inv->servers[i].name, t->name);
			bad = json_object_set_new(tools, key, json_string(t->trusted.hash));
		}
	}
	root = bad ? NULL : json_pack("{s:i,s:O}", "version", 1, "tools", tools);
	json_decref(tools);
	if (root)
		text = json_dumps(root, PRETTY_FLAGS);
	json_decref(root);
	if (text && asprintf(out, "%s\n", text) < 0)
		*out = NULL;
	free(text);
	if (!*out)
		return ag_errf(err, ENOMEM, "%s: lock file: out of memory", inv->dir);
	return 0;
}

static int lock_parse(const char *path, struct inv_pin **pins, size_t *npins, struct ag_err *err)
{
	static const char *const keys[] = { "version", "tools" };
	const json_t *tools, *v;
	json_t *root;
	const char *k;
	size_t len, n = 0;
	char *text;
	int ret;

	*pins = NULL;
	*npins = 0;
	if ((ret = ag_read_file(path, AG_INV_LOCK_MAX, &text, &len, err)))
		return ret;
	ret = load_doc(path, text, len, 0, keys, AG_ARRAY_SIZE(keys), AG_INV_MAX_PINS, &root,
		       &tools, err);
	free(text);
	if (ret)
		return ret;
	if (!(*pins = calloc(json_object_size(tools) + 1, sizeof(**pins))))
		ret = ag_errf(err, ENOMEM, "%s: out of memory", path);
	if (ret)
		goto out;
	json_object_foreach((json_t *)tools, k, v)
	{
		const char *slash = strchr(k, '/');
		struct inv_pin *p = &(*pins)[n];

		if (!slash) {
			ret =
			    ag_errf(err, EINVAL, "%s: tools.%s: \"server/tool\" expected", path, k);
			break;
		}
		p->server = strndup(k, (size_t)(slash - k));
		p->tool = strdup(slash + 1);
		n++;
		if (!p->server || !p->tool) {
			ret = ag_errf(err, ENOMEM, "%s: out of memory", path);
			break;
		}
		if ((ret = ag_inventory_check_server(p->server, err)) ||
		    (ret = check_tool_name(p->server, p->tool, strlen(p->tool), err))) {
			ret = err_wrap(err, ret, path);
			break;
		}
		if (!is_hash(jstr(v))) {
			ret = ag_errf(err, EINVAL, "%s: tools.%s: 64 lowercase hex digits expected",
				      path, k);
			break;
		}
		memcpy(p->hash, json_string_value(v), HEX_LEN + 1);
	}
out:
	json_decref(root);
	if (ret) {
		pins_release(*pins, n);
		*pins = NULL;
		return ret;
	}
	/* Sorted for pin_find; a JSON object has no duplicate keys, so neither do pins. */
	qsort(*pins, n, sizeof(**pins), pin_cmp);
	*npins = n;
	return 0;
}

/* What pin p makes of a known tool; returns whether it changed. */
static int pin_apply(const struct inv_pin *p, struct inv_tool *t, int64_t now, bool *changed,
		     struct ag_err *err)
{
	struct inv_def d;

	*changed = false;
	if (!strcmp(t->trusted.hash, p->hash))
		return 0;
	*changed = true;
	if (!strcmp(t->offered.hash, p->hash)) {
		def_copy(&d, &t->offered);
		return tool_trust(t, &d, LOCK_BY, now, err);
	}
	if (t->state == AG_TOOL_TRUSTED) {
		/* What the server offered last is the trusted definition the lock refuses. */
		t->offered = t->trusted;
		t->offered_at = now;
		memset(&t->trusted, 0, sizeof(t->trusted));
	}
	def_release(&t->trusted);
	memcpy(t->trusted.hash, p->hash, sizeof(p->hash));
	t->state = AG_TOOL_BLOCKED;
	return tool_approver(t, LOCK_BY, now, err);
}

int ag_inventory_lock_import(struct ag_inventory *inv, const char *path, struct ag_err *err)
{
	int64_t now = (int64_t)time(NULL);
	struct inv_pin *pins;
	size_t npins;
	int ret;

	ret = lock_parse(path, &pins, &npins, err);
	if (ret)
		return ret;
	pins_release(inv->pins, inv->npins);
	inv->pins = pins;
	inv->npins = npins;
	for (size_t i = 0; i < inv->nservers; i++) {
		struct inv_server *s = &inv->servers[i];
		bool dirty = false;

		for (size_t j = 0; j < s->n; j++) {
			const struct inv_pin *p = pin_find(inv, s->name, s->tools[j].name);
			bool changed;

			if (p && (ret = pin_apply(p, &s->tools[j], now, &changed, err)))
				return ret;
			dirty |= p && changed;
		}
		if (dirty && (ret = server_write(inv, s, err)))
			return ret;
	}
	return 0;
}

struct lines {
	char **v;
	size_t n;
};

/* Splits text in place at its newlines. */
static int lines_split(char *text, struct lines *l)
{
	size_t cap = 1;

	for (const char *p = text; *p; p++)
		cap += *p == '\n';
	l->n = 0;
	l->v = malloc(cap * sizeof(*l->v));
	if (!l->v)
		return -ENOMEM;
	while (*text) {
		char *nl = strchr(text, '\n');

		l->v[l->n++] = text;
		if (!nl)
			break;
		*nl = '\0';
		text = nl + 1;
	}
	return 0;
}

/* Minimal line diff of a[] and b[] by their longest common subsequence. */
static void diff_lines(FILE *f, const struct lines *a, const struct lines *b)
{
	size_t pre = 0, suf = 0, n, m, i, j;
	uint32_t *lcs = NULL;

	while (pre < a->n && pre < b->n && !strcmp(a->v[pre], b->v[pre]))
		pre++;
	while (suf < a->n - pre && suf < b->n - pre &&
	       !strcmp(a->v[a->n - 1 - suf], b->v[b->n - 1 - suf]))
		suf++;
	n = a->n - pre - suf;
	m = b->n - pre - suf;
	for (i = 0; i < pre; i++)
		fprintf(f, " %s\n", a->v[i]);
	if (n && m && (n + 1) <= DIFF_MAX_CELLS / (m + 1))
		lcs = calloc((n + 1) * (m + 1), sizeof(*lcs));
	if (lcs) {
		/* lcs[i][j]: common lines of a[pre+i..] and b[pre+j..] within the middle */
#define L(x, y) lcs[(x) * (m + 1) + (y)]
		for (i = n; i-- > 0;)
			for (j = m; j-- > 0;)
				if (!strcmp(a->v[pre + i], b->v[pre + j]))
					L(i, j) = L(i + 1, j + 1) + 1;
				else if (L(i + 1, j) >= L(i, j + 1))
					L(i, j) = L(i + 1, j);
				else
					L(i, j) = L(i, j + 1);
		for (i = 0, j = 0; i < n || j < m;) {
			if (i < n && j < m && !strcmp(a->v[pre + i], b->v[pre + j])) {
				fprintf(f, " %s\n", a->v[pre + i++]);
				j++;
			} else if (i < n && (j == m || L(i + 1, j) >= L(i, j + 1))) {
				fprintf(f, "-%s\n", a->v[pre + i++]);
			} else {
				fprintf(f, "+%s\n", b->v[pre + j++]);
			}
		}
#undef L
		free(lcs);
	} else {
		/* One side empty, or too big to align: whole old, whole new. */
		for (i = 0; i < n; i++)
			fprintf(f, "-%s\n", a->v[pre + i]);
		for (j = 0; j < m; j++)
			fprintf(f, "+%s\n", b->v[pre + j]);
	}
	for (i = a->n - suf; i < a->n; i++)
		fprintf(f, " %s\n", a->v[i]);
}

int ag_inventory_diff(const struct ag_inventory *inv, const char *server, const char *tool,
		      char **out, struct ag_err *err)
{
	const struct inv_tool *t = tool_find(inv, server, tool);
	char *old = NULL, *new = NULL;
	struct lines a = { 0 }, b = { 0 };
	size_t len;
	FILE *f;
	int ret = 0;

	*out = NULL;
	if (!t)
		return ag_errf(err, ENOENT, "%s/%s: no such tool in the inventory", server, tool);
	if (t->state == AG_TOOL_TRUSTED)
		return ag_errf(err, ENODATA, "%s/%s: trusted, no other definition offered", server,
			       tool);
	old = t->trusted.def ? json_dumps(t->trusted.def, DIFF_FLAGS) : strdup("");
	new = json_dumps(t->offered.def, DIFF_FLAGS);
	if (!old || !new || lines_split(old, &a) || lines_split(new, &b)) {
		ret = ag_errf(err, ENOMEM, "%s/%s: diff: out of memory", server, tool);
		goto out;
	}
	f = open_memstream(out, &len);
	if (!f) {
		ret = ag_errf(err, errno, "%s/%s: diff: %s", server, tool, strerror(errno));
		goto out;
	}
	if (!t->trusted.hash[0])
		fprintf(f, "--- trusted (none)\n");
	else if (!t->trusted.def)
		fprintf(f, "--- trusted %.12s (pinned, never seen)\n", t->trusted.hash);
	else
		fprintf(f, "--- trusted %.12s\n", t->trusted.hash);
	fprintf(f, "+++ offered %.12s\n", t->offered.hash);
	diff_lines(f, &a, &b);
	if (fclose(f)) {
		free(*out);
		*out = NULL;
		ret = ag_errf(err, ENOMEM, "%s/%s: diff: out of memory", server, tool);
	}
out:
	free(a.v);
	free(b.v);
	free(old);
	free(new);
	return ret;
}
