/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Policy evaluation's private header: the evaluation context shared by
 * policy_eval.c (the request, scopes, candidates and the decision) and
 * policy_eval_expr.c (expressions: values, operators, methods).
 */
#ifndef AG_POLICY_EVAL_INT_H
#define AG_POLICY_EVAL_INT_H

#define AG_POLICY_INTERNAL
#include "policy.h"

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

bool pe_entity_in(struct ectx *cx, const struct agp_uid *uid, const struct agp_uid *target);
int pe_eval_typed(struct ectx *cx, const struct agp_expr *e, enum agp_vtype t, const char *op,
		  struct agp_value *out);
int pe_oom(struct ectx *cx, const struct agp_expr *e);

#endif
