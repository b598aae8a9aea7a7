// SPDX-License-Identifier: GPL-2.0
/* Evaluation of a policy set against one request. */
#define AG_POLICY_INTERNAL
#include "policy.h"
#include "buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ENTITY_CACHE 4

struct path_memo {
	bool done; /* errors are not cached: they are rare and re-raised per policy */
	struct agp_value v;
};

struct ectx {
	const struct ag_entities *ents;
	struct ag_arena *a;
	/* Entity lookups by value identity: the request's uids and context
	 * entities are the same objects for every policy of one evaluation. */
	const struct agp_uid *cache_uid[ENTITY_CACHE];
	const struct agp_entity *cache_ent[ENTITY_CACHE];
	unsigned cache_next;
	struct agp_value vars[4]; /* principal, action, resource, context */
	struct path_memo *paths;  /* one per distinct attribute path of the set */
	/* The resource as the request supplies it, merged with the store's. */
	const struct agp_entity *resource;
	char msg[160]; /* error of the policy being evaluated */
};

static int eval(struct ectx *cx, const struct agp_expr *e, struct agp_value *out);

static const struct agp_entity *lookup(struct ectx *cx, const struct agp_uid *uid)
{
	const struct agp_entity *ent;

	for (unsigned i = 0; i < ENTITY_CACHE; i++)
		if (cx->cache_uid[i] == uid)
			return cx->cache_ent[i];
	/* The supplied resource already holds what the store says of it. */
	if (cx->resource && agp_uid_eq(uid, &cx->resource->uid))
		ent = cx->resource;
	else
		ent = agp_entity_find(cx->ents, uid);
	cx->cache_uid[cx->cache_next] = uid;
	cx->cache_ent[cx->cache_next] = ent;
	cx->cache_next = (cx->cache_next + 1) % ENTITY_CACHE;
	return ent;
}

static bool entity_in(struct ectx *cx, const struct agp_uid *uid, const struct agp_uid *target)
{
	/* Equality first: it needs no entity lookup. */
	return agp_uid_eq(uid, target) || agp_entity_in(lookup(cx, uid), uid, target);
}

static int errf(struct ectx *cx, const struct agp_expr *e, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int errf(struct ectx *cx, const struct agp_expr *e, const char *fmt, ...)
{
	int n = snprintf(cx->msg, sizeof(cx->msg), "%u:%u: ", e->line, e->col);
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cx->msg + n, sizeof(cx->msg) - (size_t)n, fmt, ap);
	va_end(ap);
	return -1;
}

static int type_err(struct ectx *cx, const struct agp_expr *e, const char *op, const char *want,
		    const struct agp_value *got)
{
	return errf(cx, e, "type error: %s expects %s, got %s", op, want, agp_type_name(got->type));
}

static int eval_typed(struct ectx *cx, const struct agp_expr *e, enum agp_vtype t, const char *op,
		      struct agp_value *out)
{
	if (eval(cx, e, out))
		return -1;
	return out->type == t ? 0 : type_err(cx, e, op, agp_type_name(t), out);
}

static void set_bool(struct agp_value *out, bool b)
{
	out->type = AGP_BOOL;
	out->n = 0;
	out->b = b;
}

static int oom(struct ectx *cx, const struct agp_expr *e)
{
	return errf(cx, e, "evaluation exceeded its memory budget");
}

static int missing_entity(struct ectx *cx, const struct agp_expr *e, const struct agp_uid *u)
{
	return errf(cx, e, "entity %.*s::\"%.*s\" does not exist",
		    (int)(u->tlen > 40 ? 40 : u->tlen), u->type, (int)(u->ilen > 40 ? 40 : u->ilen),
		    u->id);
}

/* Greedy wildcard match with single backtrack point: linear in practice and
 * O(len * plen) at worst, never exponential on hostile input. */
static bool like(const char *s, size_t len, const char *pat, const uint8_t *star, size_t plen)
{
	size_t i = 0, p = 0, star_p = SIZE_MAX, star_i = 0;

	while (i < len) {
		if (p < plen && star[p]) {
			star_p = p++;
			star_i = i;
		} else if (p < plen && pat[p] == s[i]) {
			p++;
			i++;
		} else if (star_p != SIZE_MAX) {
			p = star_p + 1;
			i = ++star_i;
		} else {
			return false;
		}
	}
	while (p < plen && star[p])
		p++;
	return p == plen;
}

static int eval_chain(struct ectx *cx, const struct agp_expr *e, struct agp_value *out)
{
	bool is_and = e->kind == AGP_E_AND;

	for (uint32_t i = 0; i < e->n; i++) {
		if (eval_typed(cx, e->kids[i], AGP_BOOL, is_and ? "`&&`" : "`||`", out))
			return -1;
		if (out->b != is_and)
			return 0;
	}
	set_bool(out, is_and);
	return 0;
}

static int arith(struct ectx *cx, const struct agp_expr *e, int64_t a, int64_t b,
		 struct agp_value *out)
{
	static const char *const names[] = {
		[AGP_OP_ADD] = "+", [AGP_OP_SUB] = "-", [AGP_OP_MUL] = "*"
	};
	bool over;

	switch (e->op) {
	case AGP_OP_ADD:
		over = __builtin_add_overflow(a, b, &out->l);
		break;
	case AGP_OP_SUB:
		over = __builtin_sub_overflow(a, b, &out->l);
		break;
	default:
		over = __builtin_mul_overflow(a, b, &out->l);
		break;
	}
	if (over)
		return errf(cx, e, "overflow: %lld %s %lld", (long long)a, names[e->op],
			    (long long)b);
	out->type = AGP_LONG;
	return 0;
}

static int eval_in(struct ectx *cx, const struct agp_expr *e, const struct agp_value *l,
		   const struct agp_value *r, struct agp_value *out)
{
	if (l->type != AGP_ENTITY)
		return type_err(cx, e, "`in`", "an entity on the left", l);
	if (r->type == AGP_ENTITY) {
		set_bool(out, entity_in(cx, l->uid, r->uid));
		return 0;
	}
	if (r->type != AGP_SET)
		return type_err(cx, e, "`in`", "an entity or set of entities on the right", r);
	for (uint32_t i = 0; i < r->n; i++)
		if (r->items[i].type != AGP_ENTITY)
			return type_err(cx, e, "`in`", "a set of entities", &r->items[i]);
	set_bool(out, false);
	for (uint32_t i = 0; i < r->n && !out->b; i++)
		out->b = entity_in(cx, l->uid, r->items[i].uid);
	return 0;
}

static int eval_bin(struct ectx *cx, const struct agp_expr *e, struct agp_value *out)
{
	static const char *const names[] = { "`==`", "`!=`", "`<`", "`<=`", "`>`", "`>=`" };
	struct agp_value l, r;

	if (eval(cx, e->kid[0], &l) || eval(cx, e->kid[1], &r))
		return -1;
	switch (e->op) {
	case AGP_OP_EQ:
	case AGP_OP_NE:
		set_bool(out, agp_value_eq(&l, &r) == (e->op == AGP_OP_EQ));
		return 0;
	case AGP_OP_IN:
		return eval_in(cx, e, &l, &r, out);
	default:
		break;
	}
	if (l.type != AGP_LONG || r.type != AGP_LONG)
		return type_err(cx, e, e->op < AGP_OP_ADD ? names[e->op] : "arithmetic", "longs",
				l.type != AGP_LONG ? &l : &r);
	switch (e->op) {
	case AGP_OP_LT:
		set_bool(out, l.l < r.l);
		return 0;
	case AGP_OP_LE:
		set_bool(out, l.l <= r.l);
		return 0;
	case AGP_OP_GT:
		set_bool(out, l.l > r.l);
		return 0;
	case AGP_OP_GE:
		set_bool(out, l.l >= r.l);
		return 0;
	default:
		return arith(cx, e, l.l, r.l, out);
	}
}

/* The attributes of a record, or of the entity a value refers to. */
static int attrs_of(struct ectx *cx, const struct agp_expr *e, const struct agp_value *v,
		    const char *op, const struct agp_value **rec)
{
	const struct agp_entity *ent;

	if (v->type == AGP_RECORD) {
		*rec = v;
		return 0;
	}
	if (v->type != AGP_ENTITY)
		return type_err(cx, e, op, "a record or entity", v);
	ent = lookup(cx, v->uid);
	*rec = ent ? &ent->attrs : NULL;
	return 0;
}

static int eval_attr(struct ectx *cx, const struct agp_expr *e, struct agp_value *out)
{
	struct path_memo *memo = e->memo ? &cx->paths[e->memo - 1] : NULL;
	const struct agp_value *rec, *got;
	struct agp_value v;
	int nl = (int)(e->nlen > 40 ? 40 : e->nlen);

	if (memo && memo->done) {
		*out = memo->v;
		return 0;
	}
	if (eval(cx, e->kid[0], &v) || attrs_of(cx, e, &v, "attribute access", &rec))
		return -1;
	if (!rec)
		return missing_entity(cx, e, v.uid);
	got = agp_record_get(rec, e->name, e->nlen);
	if (!got) {
		if (v.type == AGP_ENTITY)
			return errf(cx, e, "entity %.*s::\"%.*s\" has no attribute `%.*s`",
				    (int)(v.uid->tlen > 40 ? 40 : v.uid->tlen), v.uid->type,
				    (int)(v.uid->ilen > 40 ? 40 : v.uid->ilen), v.uid->id, nl,
				    e->name);
		return errf(cx, e, "record has no attribute `%.*s`", nl, e->name);
	}
	*out = *got;
	if (memo) {
		memo->v = *got;
		memo->done = true;
	}
	return 0;
}

static int eval_has(struct ectx *cx, const struct agp_expr *e, struct agp_value *out)
{
	const struct agp_value *rec;
	struct agp_value v;

	if (eval(cx, e->kid[0], &v) || attrs_of(cx, e, &v, "`has`", &rec))
		return -1;
	set_bool(out, rec && agp_record_get(rec, e->name, e->nlen));
	return 0;
}

static int eval_is(struct ectx *cx, const struct agp_expr *e, struct agp_value *out)
{
	struct agp_value v, r;

	if (eval_typed(cx, e->kid[0], AGP_ENTITY, "`is`", &v))
		return -1;
	if (v.uid->tlen != e->nlen || memcmp(v.uid->type, e->name, e->nlen)) {
		set_bool(out, false);
		return 0;
	}
	if (!e->kid[1]) {
		set_bool(out, true);
		return 0;
	}
	if (eval(cx, e->kid[1], &r))
		return -1;
	return eval_in(cx, e, &v, &r, out);
}

static bool set_contains(const struct agp_value *set, const struct agp_value *v)
{
	for (uint32_t i = 0; i < set->n; i++)
		if (agp_value_eq(&set->items[i], v))
			return true;
	return false;
}

static int eval_method(struct ectx *cx, const struct agp_expr *e, struct agp_value *out)
{
	struct agp_value recv, arg;
	bool all;

	if (e->op >= AGP_M_IS_IN_RANGE) {
		if (eval_typed(cx, e->kid[0], AGP_IP, "IP method", &recv))
			return -1;
		switch (e->op) {
		case AGP_M_IS_IN_RANGE:
			if (eval_typed(cx, e->kid[1], AGP_IP, "isInRange()", &arg))
				return -1;
			set_bool(out, agp_ip_in_range(recv.ip, arg.ip));
			return 0;
		case AGP_M_IS_IPV4:
			set_bool(out, !recv.ip->v6);
			return 0;
		case AGP_M_IS_IPV6:
			set_bool(out, recv.ip->v6);
			return 0;
		default:
			set_bool(out, agp_ip_is_loopback(recv.ip));
			return 0;
		}
	}
	if (eval_typed(cx, e->kid[0], AGP_SET, "set method", &recv) || eval(cx, e->kid[1], &arg))
		return -1;
	if (e->op == AGP_M_CONTAINS) {
		set_bool(out, set_contains(&recv, &arg));
		return 0;
	}
	if (arg.type != AGP_SET)
		return type_err(cx, e,
				e->op == AGP_M_CONTAINS_ALL ? "containsAll()" : "containsAny()",
				"a set argument", &arg);
	all = e->op == AGP_M_CONTAINS_ALL;
	for (uint32_t i = 0; i < arg.n; i++) {
		if (set_contains(&recv, &arg.items[i]) != all) {
			set_bool(out, !all);
			return 0;
		}
	}
	set_bool(out, all);
	return 0;
}

static int eval_ip(struct ectx *cx, const struct agp_expr *e, struct agp_value *out)
{
	struct agp_value s;
	struct agp_ip *ip;

	if (eval_typed(cx, e->kid[0], AGP_STRING, "ip()", &s))
		return -1;
	ip = agp_alloc(cx->a, sizeof(*ip));
	if (!ip)
		return oom(cx, e);
	if (agp_ip_parse(s.s, s.n, ip))
		return errf(cx, e, "invalid IP address \"%.*s\"", (int)(s.n > 60 ? 60 : s.n), s.s);
	out->type = AGP_IP;
	out->ip = ip;
	return 0;
}

static int eval_collection(struct ectx *cx, const struct agp_expr *e, struct agp_value *out)
{
	struct agp_value *items = NULL;
	struct agp_field *fields = NULL;

	if (e->kind == AGP_E_SET)
		items = agp_alloc_array(cx->a, e->n, sizeof(*items));
	else
		fields = agp_alloc_array(cx->a, e->n, sizeof(*fields));
	if (e->n && !items && !fields)
		return oom(cx, e);
	for (uint32_t i = 0; i < e->n; i++) {
		if (items && eval(cx, e->kids[i], &items[i]))
			return -1;
		if (fields) {
			fields[i].key = e->keys[i];
			fields[i].klen = e->klens[i];
			if (eval(cx, e->kids[i], &fields[i].v))
				return -1;
		}
	}
	out->type = items ? AGP_SET : AGP_RECORD;
	out->n = e->n;
	if (items)
		out->items = items;
	else
		out->fields = fields;
	return 0;
}

static int eval(struct ectx *cx, const struct agp_expr *e, struct agp_value *out)
{
	struct agp_value v;

	switch (e->kind) {
	case AGP_E_LIT:
		*out = e->lit;
		return 0;
	case AGP_E_VAR:
		*out = cx->vars[e->op];
		return 0;
	case AGP_E_IF:
		if (eval_typed(cx, e->kid[0], AGP_BOOL, "`if`", &v))
			return -1;
		return eval(cx, e->kid[v.b ? 1 : 2], out);
	case AGP_E_AND:
	case AGP_E_OR:
		return eval_chain(cx, e, out);
	case AGP_E_NOT:
		if (eval_typed(cx, e->kid[0], AGP_BOOL, "`!`", &v))
			return -1;
		set_bool(out, !v.b);
		return 0;
	case AGP_E_NEG:
		if (eval_typed(cx, e->kid[0], AGP_LONG, "unary `-`", &v))
			return -1;
		if (v.l == INT64_MIN)
			return errf(cx, e, "overflow: -(%lld)", (long long)v.l);
		out->type = AGP_LONG;
		out->l = -v.l;
		return 0;
	case AGP_E_BIN:
		return eval_bin(cx, e, out);
	case AGP_E_HAS:
		return eval_has(cx, e, out);
	case AGP_E_LIKE:
		if (eval_typed(cx, e->kid[0], AGP_STRING, "`like`", &v))
			return -1;
		set_bool(out, like(v.s, v.n, e->lit.s, e->star, e->n));
		return 0;
	case AGP_E_IS:
		return eval_is(cx, e, out);
	case AGP_E_ATTR:
		return eval_attr(cx, e, out);
	case AGP_E_METHOD:
		return eval_method(cx, e, out);
	case AGP_E_IP:
		return eval_ip(cx, e, out);
	case AGP_E_SET:
	case AGP_E_RECORD:
		return eval_collection(cx, e, out);
	}
	return errf(cx, e, "internal error: unknown expression kind %d", e->kind);
}

static bool scope_test(struct ectx *cx, const struct agp_scope *sc, const struct agp_uid *req)
{
	switch (sc->op) {
	case AGP_SC_EQ:
		return agp_uid_eq(req, &sc->uid);
	case AGP_SC_IN:
		return entity_in(cx, req, &sc->uid);
	case AGP_SC_IS:
	case AGP_SC_IS_IN:
		if (req->tlen != sc->is_tlen || memcmp(req->type, sc->is_type, sc->is_tlen))
			return false;
		return sc->op == AGP_SC_IS || entity_in(cx, req, &sc->uid);
	case AGP_SC_IN_SET:
		for (uint32_t i = 0; i < sc->n_set; i++)
			if (entity_in(cx, req, &sc->set[i]))
				return true;
		return false;
	default:
		return true;
	}
}

/* memo[sc->memo]: 0 not yet decided, 1 false, 2 true. */
static bool scope_match(struct ectx *cx, const struct agp_scope *sc, const struct agp_uid *uids,
			uint8_t *memo)
{
	uint8_t *m = &memo[sc->memo];

	if (sc->op == AGP_SC_ANY)
		return true;
	if (!*m)
		*m = scope_test(cx, sc, &uids[sc->which]) ? 2 : 1;
	return *m == 2;
}

void ag_policy_result_init(struct ag_policy_result *res)
{
	memset(res, 0, sizeof(*res));
}

void ag_policy_result_fini(struct ag_policy_result *res)
{
	free(res->determining);
	free(res->matches);
	free(res->diags);
	agp_arena_free(res->arena);
	memset(res, 0, sizeof(*res));
}

const char *ag_policy_decision_name(enum ag_policy_decision d)
{
	switch (d) {
	case AG_ALLOW:
		return "allow";
	case AG_ESCALATE:
		return "escalate";
	default:
		return "deny";
	}
}

/* The supplied entity's parents as uids in the evaluation's arena; *n of them. */
static int parent_uids(struct ectx *cx, json_t *parents, struct agp_uid **out, size_t *n,
		       struct ag_policy_error *err)
{
	size_t i;
	json_t *p;

	if (parents && !json_is_array(parents)) {
		agp_error(err, 0, 0, "policy request: resource \"parents\" must be an array");
		return -1;
	}
	*n = json_array_size(parents);
	*out = agp_alloc_array(cx->a, *n + 1, sizeof(**out));
	if (!*out) {
		agp_error(err, 0, 0, "policy evaluation: out of memory");
		return -1;
	}
	json_array_foreach(parents, i, p)
	{
		json_t *t = json_object_get(p, "type"), *id = json_object_get(p, "id");

		if (!json_is_string(t) || !json_is_string(id) ||
		    json_string_length(t) > UINT32_MAX || json_string_length(id) > UINT32_MAX) {
			agp_error(
			    err, 0, 0,
			    "policy request: resource parent %zu needs string \"type\" and \"id\"",
			    i);
			return -1;
		}
		(*out)[i] = (struct agp_uid){ .type = json_string_value(t),
					      .id = json_string_value(id),
					      .tlen = (uint32_t)json_string_length(t),
					      .ilen = (uint32_t)json_string_length(id) };
		agp_uid_seal(&(*out)[i]);
	}
	return 0;
}

/* Each parent, what the store says each is in, and the store's own ancestors
 * of the resource (se, may be NULL). */
static int merge_ancestors(struct ectx *cx, const struct agp_uid *parents, size_t np,
			   const struct agp_entity *se, struct agp_entity *e)
{
	const struct agp_entity *pe;
	const struct agp_uid **anc;
	size_t cap = np + (se ? se->n_ancestors : 0), n = 0;

	for (size_t i = 0; i < np; i++)
		if ((pe = agp_entity_find(cx->ents, &parents[i])))
			cap += pe->n_ancestors;
	anc = agp_alloc_array(cx->a, cap + 1, sizeof(*anc));
	if (!anc)
		return -1;
	/* Ancestors of the store's entities live as long as the store. */
	for (size_t i = 0; i < np; i++) {
		anc[n++] = &parents[i];
		if ((pe = agp_entity_find(cx->ents, &parents[i])))
			for (uint32_t k = 0; k < pe->n_ancestors; k++)
				anc[n++] = pe->ancestors[k];
	}
	for (uint32_t k = 0; se && k < se->n_ancestors; k++)
		anc[n++] = se->ancestors[k];
	e->ancestors = anc;
	e->n_ancestors = (uint32_t)n;
	return 0;
}

/* The store's attributes (se, may be NULL), then the supplied ones it lacks. */
static int merge_attrs(struct ectx *cx, const struct agp_value *given, const struct agp_entity *se,
		       struct agp_entity *e)
{
	const struct agp_value *own = se ? &se->attrs : NULL;
	uint32_t n = own ? own->n : 0;
	struct agp_field *f = agp_alloc_array(cx->a, (size_t)n + given->n + 1, sizeof(*f));

	if (!f)
		return -1;
	if (n)
		memcpy(f, own->fields, n * sizeof(*f));
	for (uint32_t i = 0; i < given->n; i++)
		if (!own || !agp_record_get(own, given->fields[i].key, given->fields[i].klen))
			f[n++] = given->fields[i];
	e->attrs.type = AGP_RECORD;
	e->attrs.fields = f;
	e->attrs.n = n;
	return 0;
}

/*
 * The request's resource: the entity the caller supplies (Cedar entities
 * JSON, borrowed until the evaluation ends) merged with the store's entity
 * of that uid, if any.  The store speaks for the operator, so its attributes
 * win name by name; a parent of either counts.
 */
static int resource_entity(struct ectx *cx, json_t *ent, const struct agp_uid *uid,
			   struct ag_policy_error *err)
{
	json_t *attrs = json_object_get(ent, "attrs");
	struct agp_json_conv cv = { .a = cx->a, .borrow = true };
	struct agp_entity *e = agp_alloc(cx->a, sizeof(*e));
	const struct agp_entity *se = agp_entity_find(cx->ents, uid);
	struct agp_value given = { .type = AGP_RECORD };
	struct agp_uid *parents;
	size_t np;

	if (!json_is_object(ent) || (attrs && !json_is_object(attrs))) {
		agp_error(err, 0, 0,
			  "policy request: the resource entity and its \"attrs\" "
			  "must be objects");
		return -1;
	}
	if (parent_uids(cx, json_object_get(ent, "parents"), &parents, &np, err))
		return -1;
	if (attrs && agp_value_from_json(&cv, attrs, &given, 1)) {
		agp_error(err, 0, 0, "policy request: resource attrs: %s", cv.msg);
		return -1;
	}
	if (!e || merge_ancestors(cx, parents, np, se, e) || merge_attrs(cx, &given, se, e)) {
		agp_error(err, 0, 0, "policy evaluation: out of memory");
		return -1;
	}
	e->uid = *uid;
	cx->resource = e;
	return 0;
}

static int prepare(struct ectx *cx, const struct ag_policy_request *req, json_t *resource,
		   struct ag_policy_result *res, struct agp_uid uids[3],
		   struct ag_policy_error *err)
{
	const struct ag_entity_ref *refs[3] = { &req->principal, &req->action, &req->resource };
	struct agp_json_conv cv = { .borrow = true };

	if (!res->arena) {
		res->arena = agp_arena_new(AGP_MAX_ARENA);
		if (!res->arena) {
			agp_error(err, 0, 0, "policy evaluation: out of memory");
			return -1;
		}
	}
	agp_arena_reset(res->arena);
	cx->a = cv.a = res->arena;
	for (int i = 0; i < 3; i++) {
		size_t tl = refs[i]->type ? strlen(refs[i]->type) : 0;
		size_t il = refs[i]->id ? strlen(refs[i]->id) : 0;

		if (!tl || !refs[i]->id || tl > UINT32_MAX || il > UINT32_MAX) {
			agp_error(err, 0, 0, "policy request: %s has no entity type and id",
				  i == 0   ? "principal"
				  : i == 1 ? "action"
					   : "resource");
			return -1;
		}
		uids[i] =
		    (struct agp_uid){ refs[i]->type, refs[i]->id, (uint32_t)tl, (uint32_t)il, 0 };
		agp_uid_seal(&uids[i]);
		cx->vars[i].type = AGP_ENTITY;
		cx->vars[i].uid = &uids[i];
	}
	if (resource && resource_entity(cx, resource, &uids[2], err))
		return -1;
	cx->vars[3].type = AGP_RECORD;
	if (!req->context)
		return 0;
	if (!json_is_object(req->context)) {
		agp_error(err, 0, 0, "policy request: context must be a JSON object");
		return -1;
	}
	if (agp_value_from_json(&cv, req->context, &cx->vars[3], 1)) {
		agp_error(err, 0, 0, "policy request: context: %s", cv.msg);
		return -1;
	}
	return 0;
}

/* Runs the policy's conditions; 1 satisfied, 0 not, -1 error in cx->msg. */
static int check_policy(struct ectx *cx, const struct agp_policy *pol)
{
	struct agp_value v;

	for (uint32_t i = 0; i < pol->n_conds; i++) {
		if (eval_typed(cx, pol->conds[i], AGP_BOOL, "condition", &v))
			return -1;
		if (!v.b)
			return 0;
	}
	return 1;
}

static int add_match(struct ag_policy_result *res, const struct agp_policy *pol)
{
	struct ag_policy_match *m;

	/* Arrays in the result only grow, so steady-state evaluations reuse them. */
	if (ag_grow(&res->matches, &res->cap_matches, res->n_matches + 1, sizeof(*m), 8, 0))
		return -1;
	m = res->matches;
	m[res->n_matches++] =
	    (struct ag_policy_match){ pol->id, (enum ag_effect)pol->effect, pol->escalate };
	return 0;
}

static int add_diag(struct ag_policy_result *res, const struct agp_policy *pol, const char *msg)
{
	struct ag_policy_diag *d;

	if (ag_grow(&res->diags, &res->cap_diags, res->n_diags + 1, sizeof(*d), 8, 0))
		return -1;
	d = res->diags + res->n_diags++;
	d->policy_id = pol->id;
	snprintf(d->msg, sizeof(d->msg), "%s", msg);
	return 0;
}

/* Picks the decision from the satisfied policies; returns -1 on allocation failure. */
static int decide(struct ag_policy_result *res)
{
	bool forbid = false, permit = false, escalate = false;
	const char **ids;

	for (size_t i = 0; i < res->n_matches; i++) {
		const struct ag_policy_match *m = &res->matches[i];

		forbid |= m->effect == AG_FORBID;
		permit |= m->effect == AG_PERMIT && !m->escalate;
		escalate |= m->effect == AG_PERMIT && m->escalate;
	}
	res->decision = forbid ? AG_DENY : permit ? AG_ALLOW : escalate ? AG_ESCALATE : AG_DENY;
	if (ag_grow(&res->determining, &res->cap_determining, res->n_matches, sizeof(*ids), 8, 0))
		return -1;
	ids = res->determining;
	for (size_t i = 0; i < res->n_matches; i++) {
		const struct ag_policy_match *m = &res->matches[i];
		bool counts = forbid   ? m->effect == AG_FORBID
			      : permit ? m->effect == AG_PERMIT && !m->escalate
				       : m->escalate != NULL;

		if (!counts)
			continue;
		ids[res->n_determining++] = m->policy_id;
		if (res->decision == AG_ESCALATE && !res->escalate_reason)
			res->escalate_reason = m->escalate;
	}
	return 0;
}

/* The policies filed under uid in the set's index, ORed into cand. */
static void add_filed(const struct ag_policy_set *set, uint8_t which, const struct agp_uid *uid,
		      uint64_t *cand)
{
	for (size_t h = agp_bucket_hash(which, uid) & set->mask;; h = (h + 1) & set->mask) {
		const struct agp_bucket *b = &set->buckets[h];

		if (!b->scope)
			return;
		if (b->scope->which != which || !agp_uid_eq(&b->scope->uid, uid))
			continue;
		for (uint32_t k = 0; k < b->n; k++) {
			uint32_t i = set->filed[b->first + k];

			cand[i / 64] |= 1ull << (i % 64);
		}
		return;
	}
}

/* Bitmap of the policies whose `==` scopes the request may meet. */
static void candidates(const struct ag_policy_set *set, const struct agp_uid uids[3],
		       uint64_t *cand)
{
	memcpy(cand, set->rest, set->n_words * sizeof(*cand));
	for (uint8_t which = 0; set->buckets && which < 3; which++)
		add_filed(set, which, &uids[which], cand);
}

int ag_policy_evaluate(const struct ag_policy_set *set, const struct ag_entities *ents,
		       const struct ag_policy_request *req, struct ag_policy_result *res,
		       enum ag_policy_status *status, struct ag_policy_error *err)
{
	return ag_policy_evaluate_with(set, ents, req, NULL, res, status, err);
}

int ag_policy_evaluate_with(const struct ag_policy_set *set, const struct ag_entities *ents,
			    const struct ag_policy_request *req, json_t *resource,
			    struct ag_policy_result *res, enum ag_policy_status *status,
			    struct ag_policy_error *err)
{
	struct ectx cx = { .ents = ents };
	struct agp_uid uids[3];
	uint64_t *cand;
	uint8_t *memo;

	res->decision = AG_DENY;
	res->n_determining = res->n_matches = res->n_diags = 0;
	res->escalate_reason = NULL;
	if (prepare(&cx, req, resource, res, uids, err))
		return -1;
	memo = agp_alloc(cx.a, set->n_scopes + 1);
	cx.paths = agp_alloc_array(cx.a, set->n_paths + 1, sizeof(*cx.paths));
	cand = agp_alloc_array(cx.a, set->n_words + 1, sizeof(*cand));
	if (!memo || !cx.paths || !cand)
		goto oom;
	candidates(set, uids, cand);
	/* A policy left out has an `==` scope the request does not meet. */
	for (size_t i = 0; status && i < set->n; i++)
		status[i] = AG_POLICY_SCOPE_MISMATCH;
	for (size_t w = 0; w < set->n_words; w++) {
		for (uint64_t bits = cand[w]; bits; bits &= bits - 1) {
			size_t i = w * 64 + (size_t)__builtin_ctzll(bits);
			const struct agp_policy *pol = &set->policies[i];
			enum ag_policy_status st = AG_POLICY_SCOPE_MISMATCH;
			int ok = 0;

			if (scope_match(&cx, &pol->scope[0], uids, memo) &&
			    scope_match(&cx, &pol->scope[1], uids, memo) &&
			    scope_match(&cx, &pol->scope[2], uids, memo)) {
				switch (check_policy(&cx, pol)) {
				case 1:
					st = AG_POLICY_SATISFIED;
					ok = add_match(res, pol);
					break;
				case 0:
					st = AG_POLICY_CONDITION_FALSE;
					break;
				default:
					st = AG_POLICY_ERROR;
					ok = add_diag(res, pol, cx.msg);
					break;
				}
			}
			if (ok)
				goto oom;
			if (status)
				status[i] = st;
		}
	}
	if (!decide(res))
		return 0;
oom:
	res->decision = AG_DENY;
	res->n_determining = 0;
	agp_error(err, 0, 0, "policy evaluation: out of memory");
	return -1;
}
