// SPDX-License-Identifier: GPL-2.0
/* The tool inventory: its model, observe and approve (see inventory.h). */
#include "inventory_int.h"
#include "buf.h"

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

int inv_state_parse(const char *s, enum ag_tool_state *out)
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
int inv_check_tool_name(const char *server, const char *name, size_t len, struct ag_err *err)
{
	if (!len || len > AG_INV_TOOL_NAME_MAX || strlen(name) != len)
		return ag_errf(err, EINVAL,
			       "server %s: tool name: 1 to %d bytes without NUL expected", server,
			       AG_INV_TOOL_NAME_MAX);
	return 0;
}

bool inv_is_hash(const char *s)
{
	size_t i;

	for (i = 0; s[i] && i < HEX_LEN; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return i == HEX_LEN && !s[i];
}

/* A JSON string's value, "" for anything else. */
const char *inv_jstr(const json_t *v)
{
	return json_is_string(v) ? json_string_value(v) : "";
}

/* Replaces err's message by "label: message". */
int inv_err_wrap(struct ag_err *err, int ret, const char *label)
{
	char msg[sizeof(err->msg)];

	memcpy(msg, err->msg, sizeof(msg));
	return ag_errf(err, -ret, "%s: %s", label, msg);
}

/* The canonical defining fields of tool and their hash. */
int inv_def_from_tool(const char *label, const json_t *tool, struct inv_def *out,
		      struct ag_err *err)
{
	json_error_t jerr;
	char *canon;
	size_t len;
	int ret;

	out->def = NULL;
	ret = ag_tool_canonical(tool, &canon, &len, err);
	if (ret)
		return inv_err_wrap(err, ret, label);
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
		return inv_err_wrap(err, ret, label);
	}
	return 0;
}

void inv_def_release(struct inv_def *d)
{
	json_decref(d->def);
	memset(d, 0, sizeof(*d));
}

void inv_def_copy(struct inv_def *dst, const struct inv_def *src)
{
	memcpy(dst->hash, src->hash, sizeof(dst->hash));
	dst->def = json_incref(src->def);
}

void inv_tool_release(struct inv_tool *t)
{
	free(t->name);
	free(t->approved_by);
	inv_def_release(&t->trusted);
	inv_def_release(&t->offered);
	memset(t, 0, sizeof(*t));
}

static int tool_copy(struct inv_tool *dst, const struct inv_tool *src, struct ag_err *err)
{
	*dst = *src;
	dst->name = strdup(src->name);
	dst->approved_by = src->approved_by ? strdup(src->approved_by) : NULL;
	inv_def_copy(&dst->trusted, &src->trusted);
	inv_def_copy(&dst->offered, &src->offered);
	if (!dst->name || (src->approved_by && !dst->approved_by)) {
		inv_tool_release(dst);
		return ag_errf(err, ENOMEM, "tool %s: out of memory", src->name);
	}
	return 0;
}

/* Who decided the trusted hash; by NULL: nobody, it was trusted on first use. */
int inv_tool_approver(struct inv_tool *t, const char *by, int64_t at, struct ag_err *err)
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
int inv_tool_trust(struct inv_tool *t, struct inv_def *d, const char *by, int64_t now,
		   struct ag_err *err)
{
	int ret = inv_tool_approver(t, by, now, err);

	if (ret)
		return ret;
	inv_def_release(&t->trusted);
	inv_def_release(&t->offered);
	t->trusted = *d;
	memset(d, 0, sizeof(*d));
	t->state = AG_TOOL_TRUSTED;
	t->offered_at = 0;
	return 0;
}

/* The tool now offers d (moved in) instead of what it offered before. */
static void tool_offer(struct inv_tool *t, struct inv_def *d, int64_t now)
{
	inv_def_release(&t->offered);
	t->offered = *d;
	memset(d, 0, sizeof(*d));
	t->offered_at = now;
}

static int tool_cmp(const void *key, const void *elem)
{
	return strcmp(key, ((const struct inv_tool *)elem)->name);
}

int inv_tool_sort_cmp(const void *a, const void *b)
{
	return strcmp(((const struct inv_tool *)a)->name, ((const struct inv_tool *)b)->name);
}

static int server_cmp(const void *key, const void *elem)
{
	return strcmp(key, ((const struct inv_server *)elem)->name);
}

struct inv_server *inv_server_find(const struct ag_inventory *inv, const char *name)
{
	if (!inv->nservers)
		return NULL;
	return bsearch(name, inv->servers, inv->nservers, sizeof(*inv->servers), server_cmp);
}

struct inv_tool *inv_tool_find(const struct ag_inventory *inv, const char *server, const char *tool)
{
	const struct inv_server *s = inv_server_find(inv, server);

	if (!s || !s->n)
		return NULL;
	return bsearch(tool, s->tools, s->n, sizeof(*s->tools), tool_cmp);
}

void inv_server_release(struct inv_server *s)
{
	for (size_t i = 0; i < s->n; i++)
		inv_tool_release(&s->tools[i]);
	free(s->tools);
	free(s->name);
}

/* The server's entry, added (without tools) when missing. */
int inv_server_get(struct ag_inventory *inv, const char *name, struct inv_server **out,
		   struct ag_err *err)
{
	struct inv_server *s = inv_server_find(inv, name), *ns;
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
int inv_server_insert(struct inv_server *s, struct inv_tool *t, struct inv_tool **out,
		      struct ag_err *err)
{
	size_t pos = 0;

	if (s->n >= AG_INV_MAX_TOOLS)
		return ag_errf(err, E2BIG, "server %s: more than %d tools", s->name,
			       AG_INV_MAX_TOOLS);
	if (ag_grow(&s->tools, &s->cap, s->n + 1, sizeof(*s->tools), 16, 0))
		return ag_errf(err, ENOMEM, "server %s: out of memory", s->name);
	while (pos < s->n && strcmp(s->tools[pos].name, t->name) < 0)
		pos++;
	memmove(s->tools + pos + 1, s->tools + pos, (s->n - pos) * sizeof(*t));
	s->tools[pos] = *t;
	memset(t, 0, sizeof(*t));
	s->n++;
	*out = s->tools + pos;
	return 0;
}

void inv_server_remove(struct inv_server *s, struct inv_tool *t)
{
	size_t pos = (size_t)(t - s->tools);

	inv_tool_release(t);
	memmove(t, t + 1, (s->n - pos - 1) * sizeof(*t));
	s->n--;
}

int inv_pin_cmp(const void *a, const void *b)
{
	const struct inv_pin *pa = a, *pb = b;
	int c = strcmp(pa->server, pb->server);

	return c ? c : strcmp(pa->tool, pb->tool);
}

const struct inv_pin *inv_pin_find(const struct ag_inventory *inv, const char *server,
				   const char *tool)
{
	const struct inv_pin key = { .server = (char *)server, .tool = (char *)tool };

	if (!inv->npins)
		return NULL;
	return bsearch(&key, inv->pins, inv->npins, sizeof(key), inv_pin_cmp);
}

void inv_pins_release(struct inv_pin *pins, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(pins[i].server);
		free(pins[i].tool);
	}
	free(pins);
}

/* ---- observe and approve ---- */

/* A tool seen for the first time: trusted, pending or, against a pin, blocked. */
static int first_sight(const struct ag_inventory *inv, const char *server, enum ag_trust trust,
		       struct inv_def *seen, int64_t now, struct inv_tool *next,
		       struct ag_inv_result *res, struct ag_err *err)
{
	const struct inv_pin *pin = inv_pin_find(inv, server, next->name);

	next->first_seen = now;
	if (pin && strcmp(pin->hash, seen->hash)) {
		next->state = AG_TOOL_BLOCKED;
		memcpy(next->trusted.hash, pin->hash, sizeof(pin->hash));
		tool_offer(next, seen, now);
		res->event = AG_INV_PIN_MISMATCH;
		return inv_tool_approver(next, LOCK_BY, now, err);
	}
	if (pin || trust == AG_TRUST_ON_FIRST_USE) {
		res->event = AG_INV_NEW_TRUSTED;
		return inv_tool_trust(next, seen, pin ? LOCK_BY : NULL, now, err);
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
		inv_def_release(&next->trusted);
		next->trusted = *seen;
		memset(seen, 0, sizeof(*seen));
		inv_def_release(&next->offered);
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
	if ((ret = inv_check_tool_name(server, json_string_value(jname), json_string_length(jname),
				       err)))
		return ret;
	snprintf(label, sizeof(label), "server %s: tool %s", server, json_string_value(jname));
	if ((ret = inv_def_from_tool(label, tool, &seen, err)))
		return ret;
	memcpy(res->new_hash, seen.hash, sizeof(seen.hash));
	if ((ret = inv_server_get(inv, server, &s, err)))
		goto out;
	t = inv_tool_find(inv, server, json_string_value(jname));
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
		ret = inv_commit(inv, s, t, &next, err);
	else
		inv_tool_release(&next);
out:
	inv_def_release(&seen);
	if (ret)
		res->state = AG_TOOL_BLOCKED;
	return ret;
}

int ag_inventory_state(const struct ag_inventory *inv, const char *server, const char *tool,
		       enum ag_tool_state *state)
{
	const struct inv_tool *t = inv_tool_find(inv, server, tool);

	if (!t)
		return -ENOENT;
	*state = t->state;
	return 0;
}

int ag_inventory_hashes(const struct ag_inventory *inv, const char *server, const char *tool,
			char trusted[AG_TOOLHASH_HEX_LEN + 1],
			char offered[AG_TOOLHASH_HEX_LEN + 1])
{
	const struct inv_tool *t = inv_tool_find(inv, server, tool);

	if (!t)
		return -ENOENT;
	memcpy(trusted, t->trusted.hash, HEX_LEN + 1);
	memcpy(offered, t->offered.hash, HEX_LEN + 1);
	return 0;
}

const json_t *ag_inventory_definition(const struct ag_inventory *inv, const char *server,
				      const char *tool)
{
	const struct inv_tool *t = inv ? inv_tool_find(inv, server, tool) : NULL;

	return t ? t->trusted.def : NULL;
}

int ag_inventory_approve(struct ag_inventory *inv, const char *server, const char *tool,
			 const char *expect_hash, const char *by, int64_t now, bool *pin_overridden,
			 struct ag_err *err)
{
	struct inv_tool *t = inv_tool_find(inv, server, tool), next;
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
	inv_def_copy(&d, &next.offered);
	ret = inv_tool_trust(&next, &d, by, now, err);
	inv_def_release(&d);
	if (!ret)
		ret = inv_commit(inv, inv_server_find(inv, server), t, &next, err);
	else
		inv_tool_release(&next);
	if (ret)
		return ret;
	pin = inv_pin_find(inv, server, tool);
	if (pin) {
		size_t i = (size_t)(pin - inv->pins);

		*pin_overridden = strcmp(pin->hash, t->trusted.hash) != 0;
		free(inv->pins[i].server);
		free(inv->pins[i].tool);
		memmove(inv->pins + i, inv->pins + i + 1, (--inv->npins - i) * sizeof(*pin));
	}
	return 0;
}
