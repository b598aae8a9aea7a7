// SPDX-License-Identifier: GPL-2.0
/* The tool inventory's listing, lock file export and import, and diff. */
#include "inventory_int.h"

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

			if (o && (inv_def_put(o, "hash", &t->trusted) ||
				  inv_def_put(o, "offered_hash", &t->offered) ||
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
	ret = inv_load_doc(path, text, len, 0, keys, AG_ARRAY_SIZE(keys), AG_INV_MAX_PINS, &root,
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
		    (ret = inv_check_tool_name(p->server, p->tool, strlen(p->tool), err))) {
			ret = inv_err_wrap(err, ret, path);
			break;
		}
		if (!inv_is_hash(inv_jstr(v))) {
			ret = ag_errf(err, EINVAL, "%s: tools.%s: 64 lowercase hex digits expected",
				      path, k);
			break;
		}
		memcpy(p->hash, json_string_value(v), HEX_LEN + 1);
	}
out:
	json_decref(root);
	if (ret) {
		inv_pins_release(*pins, n);
		*pins = NULL;
		return ret;
	}
	/* Sorted for pin_find; a JSON object has no duplicate keys, so neither do pins. */
	qsort(*pins, n, sizeof(**pins), inv_pin_cmp);
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
		inv_def_copy(&d, &t->offered);
		return inv_tool_trust(t, &d, LOCK_BY, now, err);
	}
	if (t->state == AG_TOOL_TRUSTED) {
		/* What the server offered last is the trusted definition the lock refuses. */
		t->offered = t->trusted;
		t->offered_at = now;
		memset(&t->trusted, 0, sizeof(t->trusted));
	}
	inv_def_release(&t->trusted);
	memcpy(t->trusted.hash, p->hash, sizeof(p->hash));
	t->state = AG_TOOL_BLOCKED;
	return inv_tool_approver(t, LOCK_BY, now, err);
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
	inv_pins_release(inv->pins, inv->npins);
	inv->pins = pins;
	inv->npins = npins;
	for (size_t i = 0; i < inv->nservers; i++) {
		struct inv_server *s = &inv->servers[i];
		bool dirty = false;

		for (size_t j = 0; j < s->n; j++) {
			const struct inv_pin *p = inv_pin_find(inv, s->name, s->tools[j].name);
			bool changed;

			if (p && (ret = pin_apply(p, &s->tools[j], now, &changed, err)))
				return ret;
			dirty |= p && changed;
		}
		if (dirty && (ret = inv_server_write(inv, s, err)))
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
	const struct inv_tool *t = inv_tool_find(inv, server, tool);
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
