// SPDX-License-Identifier: GPL-2.0
/* Evaluation of a policy set against one request (expressions: policy_eval_expr.c). */
#include "buf.h"
#include "policy_eval_int.h"

static bool scope_test(struct ectx *cx, const struct agp_scope *sc, const struct agp_uid *req)
{
	switch (sc->op) {
	case AGP_SC_EQ:
		return agp_uid_eq(req, &sc->uid);
	case AGP_SC_IN:
		return pe_entity_in(cx, req, &sc->uid);
	case AGP_SC_IS:
	case AGP_SC_IS_IN:
		if (req->tlen != sc->is_tlen || memcmp(req->type, sc->is_type, sc->is_tlen))
			return false;
		return sc->op == AGP_SC_IS || pe_entity_in(cx, req, &sc->uid);
	case AGP_SC_IN_SET:
		for (uint32_t i = 0; i < sc->n_set; i++)
			if (pe_entity_in(cx, req, &sc->set[i]))
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
		if (pe_eval_typed(cx, pol->conds[i], AGP_BOOL, "condition", &v))
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
