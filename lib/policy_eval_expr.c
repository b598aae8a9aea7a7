// SPDX-License-Identifier: GPL-2.0
/* Evaluation of one policy expression to a value or an error (policy_eval.c calls it). */
#include "policy_eval_int.h"

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

bool pe_entity_in(struct ectx *cx, const struct agp_uid *uid, const struct agp_uid *target)
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

int pe_eval_typed(struct ectx *cx, const struct agp_expr *e, enum agp_vtype t, const char *op,
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

int pe_oom(struct ectx *cx, const struct agp_expr *e)
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
		if (pe_eval_typed(cx, e->kids[i], AGP_BOOL, is_and ? "`&&`" : "`||`", out))
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
		set_bool(out, pe_entity_in(cx, l->uid, r->uid));
		return 0;
	}
	if (r->type != AGP_SET)
		return type_err(cx, e, "`in`", "an entity or set of entities on the right", r);
	for (uint32_t i = 0; i < r->n; i++)
		if (r->items[i].type != AGP_ENTITY)
			return type_err(cx, e, "`in`", "a set of entities", &r->items[i]);
	set_bool(out, false);
	for (uint32_t i = 0; i < r->n && !out->b; i++)
		out->b = pe_entity_in(cx, l->uid, r->items[i].uid);
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

	if (pe_eval_typed(cx, e->kid[0], AGP_ENTITY, "`is`", &v))
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
		if (pe_eval_typed(cx, e->kid[0], AGP_IP, "IP method", &recv))
			return -1;
		switch (e->op) {
		case AGP_M_IS_IN_RANGE:
			if (pe_eval_typed(cx, e->kid[1], AGP_IP, "isInRange()", &arg))
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
	if (pe_eval_typed(cx, e->kid[0], AGP_SET, "set method", &recv) || eval(cx, e->kid[1], &arg))
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

	if (pe_eval_typed(cx, e->kid[0], AGP_STRING, "ip()", &s))
		return -1;
	ip = agp_alloc(cx->a, sizeof(*ip));
	if (!ip)
		return pe_oom(cx, e);
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
		return pe_oom(cx, e);
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
		if (pe_eval_typed(cx, e->kid[0], AGP_BOOL, "`if`", &v))
			return -1;
		return eval(cx, e->kid[v.b ? 1 : 2], out);
	case AGP_E_AND:
	case AGP_E_OR:
		return eval_chain(cx, e, out);
	case AGP_E_NOT:
		if (pe_eval_typed(cx, e->kid[0], AGP_BOOL, "`!`", &v))
			return -1;
		set_bool(out, !v.b);
		return 0;
	case AGP_E_NEG:
		if (pe_eval_typed(cx, e->kid[0], AGP_LONG, "unary `-`", &v))
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
		if (pe_eval_typed(cx, e->kid[0], AGP_STRING, "`like`", &v))
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
