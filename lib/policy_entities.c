// SPDX-License-Identifier: GPL-2.0
/* Entity store: Cedar entities JSON, uid lookup, hierarchy (`in`) closure. */
#define AG_POLICY_INTERNAL
#include "policy.h"
#include "buf.h"
#include "fileio.h"

#include <stdlib.h>
#include <string.h>

struct ent_rec {
	struct agp_entity e;
	struct agp_uid *parents;
	uint32_t n_parents;
	uint32_t mark; /* closure walk generation */
};

struct ag_entities {
	struct ag_arena *arena;
	struct ent_rec *recs;
	size_t n;
	uint32_t *slots; /* open addressing: index + 1, 0 empty */
	size_t mask;
};

static struct ent_rec *find_rec(const struct ag_entities *ents, const struct agp_uid *uid)
{
	if (!ents || !ents->n)
		return NULL;
	for (size_t i = uid->hash & ents->mask;; i = (i + 1) & ents->mask) {
		uint32_t s = ents->slots[i];

		if (!s)
			return NULL;
		if (agp_uid_eq(&ents->recs[s - 1].e.uid, uid))
			return &ents->recs[s - 1];
	}
}

const struct agp_entity *agp_entity_find(const struct ag_entities *ents, const struct agp_uid *uid)
{
	struct ent_rec *r = find_rec(ents, uid);

	return r ? &r->e : NULL;
}

bool agp_entity_in(const struct agp_entity *ent, const struct agp_uid *uid,
		   const struct agp_uid *target)
{
	if (agp_uid_eq(uid, target))
		return true;
	if (!ent)
		return false;
	for (uint32_t i = 0; i < ent->n_ancestors; i++)
		if (agp_uid_eq(ent->ancestors[i], target))
			return true;
	return false;
}

static int uid_json(struct ag_arena *a, json_t *j, struct agp_uid *out, size_t idx,
		    const char *what, struct ag_policy_error *err)
{
	json_t *esc = json_object_get(j, "__entity");
	json_t *t, *id;

	if (esc)
		j = esc;
	t = json_object_get(j, "type");
	id = json_object_get(j, "id");
	if (!json_is_string(t) || !json_is_string(id)) {
		agp_error(err, 0, 0, "entities[%zu]: %s needs string \"type\" and \"id\"", idx,
			  what);
		return -1;
	}
	if (json_string_length(t) > UINT32_MAX || json_string_length(id) > UINT32_MAX) {
		agp_error(err, 0, 0, "entities[%zu]: %s type or id too long", idx, what);
		return -1;
	}
	out->tlen = (uint32_t)json_string_length(t);
	out->ilen = (uint32_t)json_string_length(id);
	out->type = agp_strndup(a, json_string_value(t), out->tlen);
	out->id = agp_strndup(a, json_string_value(id), out->ilen);
	if (!out->type || !out->id) {
		agp_error(err, 0, 0, "entities: out of memory");
		return -1;
	}
	agp_uid_seal(out);
	return 0;
}

static int load_one(struct ag_entities *ents, json_t *j, size_t idx, struct ag_policy_error *err)
{
	struct ent_rec *r = &ents->recs[idx];
	json_t *attrs = json_object_get(j, "attrs"), *parents = json_object_get(j, "parents");
	struct agp_json_conv cv = { .a = ents->arena };
	size_t i;
	json_t *p;

	if (!json_is_object(j)) {
		agp_error(err, 0, 0, "entities[%zu]: not an object", idx);
		return -1;
	}
	if (uid_json(ents->arena, json_object_get(j, "uid"), &r->e.uid, idx, "uid", err))
		return -1;
	if (attrs && !json_is_object(attrs)) {
		agp_error(err, 0, 0, "entities[%zu]: \"attrs\" must be an object", idx);
		return -1;
	}
	r->e.attrs.type = AGP_RECORD;
	if (attrs && agp_value_from_json(&cv, attrs, &r->e.attrs, 1)) {
		agp_error(err, 0, 0, "entities[%zu] (%s::\"%s\"): attrs: %s", idx, r->e.uid.type,
			  r->e.uid.id, cv.msg);
		return -1;
	}
	if (parents && !json_is_array(parents)) {
		agp_error(err, 0, 0, "entities[%zu]: \"parents\" must be an array", idx);
		return -1;
	}
	r->n_parents = (uint32_t)json_array_size(parents);
	r->parents = agp_alloc_array(ents->arena, r->n_parents, sizeof(*r->parents));
	if (!r->parents && r->n_parents) {
		agp_error(err, 0, 0, "entities: out of memory");
		return -1;
	}
	json_array_foreach(parents, i, p)
	{
		if (uid_json(ents->arena, p, &r->parents[i], idx, "parent", err))
			return -1;
	}
	return 0;
}

static int index_all(struct ag_entities *ents, struct ag_policy_error *err)
{
	size_t size = 16;

	while (size < ents->n * 2)
		size *= 2;
	ents->slots = agp_alloc_array(ents->arena, size, sizeof(*ents->slots));
	if (!ents->slots) {
		agp_error(err, 0, 0, "entities: out of memory");
		return -1;
	}
	ents->mask = size - 1;
	for (size_t k = 0; k < ents->n; k++) {
		const struct agp_uid *u = &ents->recs[k].e.uid;
		size_t i = u->hash & ents->mask;

		for (; ents->slots[i]; i = (i + 1) & ents->mask) {
			if (agp_uid_eq(&ents->recs[ents->slots[i] - 1].e.uid, u)) {
				agp_error(err, 0, 0, "entities: %s::\"%s\" is defined twice",
					  u->type, u->id);
				return -1;
			}
		}
		ents->slots[i] = (uint32_t)k + 1;
	}
	return 0;
}

struct walk {
	const struct agp_uid **list, **stack;
	size_t n, cap, sp, scap;
};

static bool push_parents(struct walk *w, const struct ent_rec *r)
{
	if (ag_grow(&w->stack, &w->scap, w->sp + r->n_parents, sizeof(*w->stack), 16, 0))
		return false;
	for (uint32_t i = 0; i < r->n_parents; i++)
		w->stack[w->sp++] = &r->parents[i];
	return true;
}

/* Transitive parents of every entity, computed once so `in` is a scan.  The
 * generation mark stops the walk on cycles; parents absent from the store are
 * still ancestors but lead nowhere. */
static int close_hierarchy(struct ag_entities *ents, struct ag_policy_error *err)
{
	struct walk w = { 0 };
	int ret = -1;

	for (size_t k = 0; k < ents->n; k++) {
		struct ent_rec *self = &ents->recs[k];
		uint32_t gen = (uint32_t)k + 1;

		w.n = 0;
		w.sp = 0;
		self->mark = gen;
		if (!push_parents(&w, self))
			goto oom;
		while (w.sp) {
			const struct agp_uid *u = w.stack[--w.sp];
			struct ent_rec *r = find_rec(ents, u);
			bool seen = false;

			if (r) {
				seen = r->mark == gen;
				r->mark = gen;
			} else {
				for (size_t i = 0; i < w.n && !seen; i++)
					seen = agp_uid_eq(w.list[i], u);
			}
			if (seen)
				continue;
			if (ag_grow(&w.list, &w.cap, w.n + 1, sizeof(*w.list), 16, 0))
				goto oom;
			w.list[w.n++] = r ? &r->e.uid : u;
			if (r && !push_parents(&w, r))
				goto oom;
		}
		self->e.n_ancestors = (uint32_t)w.n;
		self->e.ancestors = agp_alloc_array(ents->arena, w.n, sizeof(*w.list));
		if (w.n && !self->e.ancestors)
			goto oom;
		if (w.n)
			memcpy(self->e.ancestors, w.list, w.n * sizeof(*w.list));
	}
	ret = 0;
	goto out;
oom:
	agp_error(err, 0, 0, "entities: out of memory computing the hierarchy");
out:
	free(w.list);
	free(w.stack);
	return ret;
}

struct ag_entities *ag_entities_from_json(json_t *json, struct ag_policy_error *err)
{
	struct ag_entities *ents;
	size_t i;
	json_t *j;

	if (!json_is_array(json)) {
		agp_error(err, 0, 0, "entities: expected a JSON array of entities");
		return NULL;
	}
	if (json_array_size(json) >= UINT32_MAX / 2) {
		agp_error(err, 0, 0, "entities: too many entities");
		return NULL;
	}
	ents = calloc(1, sizeof(*ents));
	if (ents)
		ents->arena = agp_arena_new(SIZE_MAX / 2);
	if (ents && ents->arena) {
		ents->n = json_array_size(json);
		ents->recs = agp_alloc_array(ents->arena, ents->n, sizeof(*ents->recs));
	}
	if (!ents || !ents->arena || (!ents->recs && ents->n)) {
		agp_error(err, 0, 0, "entities: out of memory");
		ag_entities_free(ents);
		return NULL;
	}
	json_array_foreach(json, i, j)
	{
		if (load_one(ents, j, i, err))
			goto fail;
	}
	if (index_all(ents, err) || close_hierarchy(ents, err))
		goto fail;
	return ents;
fail:
	ag_entities_free(ents);
	return NULL;
}

struct ag_entities *ag_entities_load_file(const char *path, struct ag_policy_error *err)
{
	struct ag_entities *ents;
	json_error_t jerr;
	json_t *j = ag_json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);

	if (!j) {
		/* jansson reports an unreadable file as line -1, naming the path. */
		if (jerr.line < 0)
			agp_error(err, 0, 0, "%s", jerr.text);
		else
			agp_error(err, jerr.line, jerr.column, "%s:%d:%d: %s", path, jerr.line,
				  jerr.column, jerr.text);
		return NULL;
	}
	ents = ag_entities_from_json(j, err);
	json_decref(j);
	if (!ents && err) {
		/* Prefix the file so the operator knows which one to fix. */
		char msg[sizeof(err->msg)];

		memcpy(msg, err->msg, sizeof(msg));
		snprintf(err->msg, sizeof(err->msg), "%.200s: %.300s", path, msg);
	}
	return ents;
}

void ag_entities_free(struct ag_entities *ents)
{
	if (!ents)
		return;
	agp_arena_free(ents->arena);
	free(ents);
}
