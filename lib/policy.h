/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Cedar-subset policy engine.
 *
 * A policy set is parsed once (ag_policy_load_dir / ag_policy_parse_text) and is
 * immutable afterwards, so one set can be evaluated from many threads at once as
 * long as each thread uses its own struct ag_policy_result.  The result owns a
 * scratch arena that is reset, not freed, on every evaluation: after the first
 * few requests an evaluation performs no malloc.
 *
 * Semantics follow Cedar: default deny, any satisfied forbid wins, a policy whose
 * condition raises an error is skipped and reported as a diagnostic.  A decision
 * is ESCALATE when every satisfied permit carries @escalate("reason").
 * docs/agentgate-policy.5 documents the accepted language.
 */
#ifndef AG_POLICY_H
#define AG_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

struct ag_policy_set;
struct ag_entities;
struct ag_arena;

struct ag_policy_error {
	/* "file:line:column: what" for parse errors, "what: why" otherwise. */
	char msg[512];
	int line; /* 0 when the error is not tied to a position */
	int column;
};

enum ag_policy_decision {
	AG_DENY = 0,
	AG_ALLOW,
	AG_ESCALATE,
};

enum ag_effect {
	AG_PERMIT,
	AG_FORBID,
};

/* What happened to one policy during an evaluation (for explain). */
enum ag_policy_status {
	AG_POLICY_SCOPE_MISMATCH, /* principal/action/resource constraint false */
	AG_POLICY_CONDITION_FALSE,
	AG_POLICY_SATISFIED,
	AG_POLICY_ERROR,
};

/* Entity reference with NUL-terminated type ("A::B") and id; caller-owned. */
struct ag_entity_ref {
	const char *type;
	const char *id;
};

struct ag_policy_request {
	struct ag_entity_ref principal;
	struct ag_entity_ref action;
	struct ag_entity_ref resource;
	json_t *context; /* JSON object or NULL (empty record); borrowed */
};

struct ag_policy_diag {
	const char *policy_id; /* points into the policy set */
	char msg[160];
};

struct ag_policy_match {
	const char *policy_id; /* points into the policy set */
	enum ag_effect effect;
	const char *escalate; /* @escalate reason, NULL if none */
};

struct ag_policy_result {
	enum ag_policy_decision decision;
	/* Policies that determined the decision (forbids for a deny by forbid,
	 * plain permits for allow, escalating permits for escalate; empty for a
	 * default deny). */
	const char **determining;
	size_t n_determining;
	/* Reason of the first determining escalating permit, else NULL. */
	const char *escalate_reason;
	/* Every satisfied policy, in set order. */
	struct ag_policy_match *matches;
	size_t n_matches;
	struct ag_policy_diag *diags;
	size_t n_diags;

	/* private: capacities and scratch memory reused across evaluations */
	size_t cap_determining, cap_matches, cap_diags;
	struct ag_arena *arena;
};

/* Policy sets.  On failure these return NULL and fill *err; a set either loads
 * completely or not at all. */
struct ag_policy_set *ag_policy_parse_text(const char *name, const char *text, size_t len,
					   struct ag_policy_error *err);
/* Every *.cedar in dir, in name order, as one set.  Policy ids default to
 * "<file name>:<line>". */
struct ag_policy_set *ag_policy_load_dir(const char *dir, struct ag_policy_error *err);
/* The files named, in the order given, as one set; ids default as above. */
struct ag_policy_set *ag_policy_load_files(const char *const *paths, size_t n,
					   struct ag_policy_error *err);
void ag_policy_set_free(struct ag_policy_set *set);
/* SHA-256 (hex) of what the set was parsed from: each source's id name,
 * length and bytes in load order, so that an audit record names the exact
 * policy text that decided. */
const char *ag_policy_digest(const struct ag_policy_set *set);

size_t ag_policy_count(const struct ag_policy_set *set);
const char *ag_policy_id(const struct ag_policy_set *set, size_t i);
enum ag_effect ag_policy_effect(const struct ag_policy_set *set, size_t i);
/* Value of annotation @name on policy i, "" for a bare @name, NULL if absent. */
const char *ag_policy_annotation(const struct ag_policy_set *set, size_t i, const char *name);
/*
 * Whether some condition of the set may read context.<attr>: a `.attr`,
 * `["attr"]` or `has attr` on context, or context used whole (conservative).
 * `policy simulate` replays a record whose arguments were hashed only when
 * no policy that could match it reads context.args.
 */
bool ag_policy_reads_context(const struct ag_policy_set *set, const char *attr);
/* The same for policy i alone. */
bool ag_policy_reads_context_at(const struct ag_policy_set *set, size_t i, const char *attr);

/* Entity store from Cedar's entities JSON (an array of {uid, attrs, parents}).
 * The JSON is not referenced after the call. */
struct ag_entities *ag_entities_from_json(json_t *json, struct ag_policy_error *err);
struct ag_entities *ag_entities_load_file(const char *path, struct ag_policy_error *err);
void ag_entities_free(struct ag_entities *ents);

/* Parse `Type::"id"` (namespaces allowed) into freshly malloc'd strings that the
 * caller frees with free(ref->type), free(ref->id).  Returns 0 or -1 with err. */
int ag_entity_ref_parse(const char *text, struct ag_entity_ref *ref, struct ag_policy_error *err);

void ag_policy_result_init(struct ag_policy_result *res);
void ag_policy_result_fini(struct ag_policy_result *res);

/*
 * Decide one request.  ents may be NULL (no entities).  Returns 0 with the
 * decision in res, or -1 (decision DENY) when the request itself is unusable
 * (e.g. context not an object, nested too deep, out of memory); err says why.
 * status, if not NULL, receives ag_policy_count(set) entries.  What res holds
 * stays valid until the next evaluation with it; its policy ids and reasons
 * point into the set.  err may be NULL here and in every call above.
 */
int ag_policy_evaluate(const struct ag_policy_set *set, const struct ag_entities *ents,
		       const struct ag_policy_request *req, struct ag_policy_result *res,
		       enum ag_policy_status *status, struct ag_policy_error *err);

/*
 * ag_policy_evaluate with what the request knows of its resource, for the
 * entity the gateway learns rather than an operator declares (a tool of a
 * tools/list result): resource is that entity in Cedar's entities JSON
 * ({"attrs": {..}, "parents": [{"type", "id"}..]}; its "uid" is not read,
 * the entity is req->resource), borrowed.  When the store also holds the
 * resource, the two merge: the store's attributes win name by name (the
 * operator's word over the server's), and the resource is `in` the parents
 * of both and in everything they are in.  resource NULL: as
 * ag_policy_evaluate.
 */
int ag_policy_evaluate_with(const struct ag_policy_set *set, const struct ag_entities *ents,
			    const struct ag_policy_request *req, json_t *resource,
			    struct ag_policy_result *res, enum ag_policy_status *status,
			    struct ag_policy_error *err);

/* "allow", "deny", "escalate" */
const char *ag_policy_decision_name(enum ag_policy_decision d);

/* ---------------------------------------------------------------------------
 * Internal to lib/policy_*.c; nothing outside the engine may use these.
 */
#ifdef AG_POLICY_INTERNAL

#include <stdarg.h>

#define AGP_MAX_DEPTH 64	  /* nesting of expressions, JSON values */
#define AGP_MAX_HEIGHT 256	  /* expression tree height (operator chains) */
#define AGP_MAX_FILE (4u << 20)	  /* bytes per policy file */
#define AGP_MAX_ARENA (64u << 20) /* scratch bytes per evaluation */

/* Bump allocator: chunks are kept across resets so steady state is malloc-free. */
struct ag_arena {
	struct ag_arena_chunk *head;
	size_t total;
	size_t limit;
};
struct ag_arena *agp_arena_new(size_t limit);
void agp_arena_reset(struct ag_arena *a);
void agp_arena_free(struct ag_arena *a);
void *agp_alloc(struct ag_arena *a, size_t size);		  /* zeroed, NULL when over */
void *agp_alloc_array(struct ag_arena *a, size_t n, size_t size); /* overflow-checked */
char *agp_strndup(struct ag_arena *a, const char *s, size_t n);

enum agp_vtype {
	AGP_BOOL,
	AGP_LONG,
	AGP_STRING,
	AGP_ENTITY,
	AGP_SET,
	AGP_RECORD,
	AGP_IP,
	AGP_DECIMAL, /* JSON non-integer number: kept as text, usable only with == */
};

struct agp_uid {
	const char *type;
	const char *id;
	uint32_t tlen, ilen;
	uint32_t hash; /* agp_uid_seal(); lets most comparisons fail without memcmp */
};

struct agp_ip {
	uint8_t addr[16]; /* IPv4 in the first 4 bytes */
	uint8_t v6;
	uint8_t prefix;
};

struct agp_field;

struct agp_value {
	uint8_t type;
	uint32_t n; /* string/decimal bytes, set items, record fields */
	union {
		bool b;
		int64_t l;
		const char *s;
		const struct agp_uid *uid;
		const struct agp_value *items;
		const struct agp_field *fields;
		const struct agp_ip *ip;
	};
};

struct agp_field {
	const char *key;
	uint32_t klen;
	struct agp_value v;
};

const char *agp_type_name(enum agp_vtype t);
/* Computes the hash once type, id and their lengths are set. */
void agp_uid_seal(struct agp_uid *u);
bool agp_uid_eq(const struct agp_uid *a, const struct agp_uid *b);
bool agp_value_eq(const struct agp_value *a, const struct agp_value *b);
const struct agp_value *agp_record_get(const struct agp_value *rec, const char *key, uint32_t klen);
/* JSON -> value; entity escapes {"__entity":{type,id}} become entity values.
 * With borrow, strings point into the JSON, which must then outlive the value
 * (true for a request context during its evaluation). */
struct agp_json_conv {
	struct ag_arena *a;
	bool borrow;
	char msg[160]; /* why the conversion failed */
};
int agp_value_from_json(struct agp_json_conv *cv, json_t *j, struct agp_value *out, int depth);
int agp_ip_parse(const char *s, size_t len, struct agp_ip *out);
bool agp_ip_in_range(const struct agp_ip *ip, const struct agp_ip *range);
bool agp_ip_is_loopback(const struct agp_ip *ip);

struct agp_entity {
	struct agp_uid uid;
	struct agp_value attrs;		  /* record */
	const struct agp_uid **ancestors; /* transitive closure of parents */
	uint32_t n_ancestors;
};
const struct agp_entity *agp_entity_find(const struct ag_entities *ents, const struct agp_uid *uid);
/* uid in target through the parent graph (reflexive); ent is uid's entity as
 * found by agp_entity_find (NULL when absent from the store). */
bool agp_entity_in(const struct agp_entity *ent, const struct agp_uid *uid,
		   const struct agp_uid *target);

/* Lexer */
enum agp_tok {
	AGP_T_EOF,
	AGP_T_IDENT,
	AGP_T_STRING, /* raw text between the quotes, escapes not yet decoded */
	AGP_T_LONG,
	AGP_T_PUNCT, /* one of the operators below, stored in op */
	AGP_T_ERROR,
};

struct agp_token {
	enum agp_tok kind;
	const char *s; /* token text */
	uint32_t len;
	uint32_t line, col;
	uint64_t num; /* AGP_T_LONG magnitude (up to 2^63) */
	char op[3];   /* AGP_T_PUNCT */
};

struct agp_lexer {
	const char *src;
	size_t len, pos;
	uint32_t line, col;
	const char *err; /* set with kind AGP_T_ERROR */
};

void agp_lex_init(struct agp_lexer *lx, const char *src, size_t len);
void agp_lex_next(struct agp_lexer *lx, struct agp_token *t);
/* Decode Cedar escapes into a NUL-terminated arena string; when star is not NULL
 * (like patterns) an unescaped '*' sets star[i] and \* yields a literal '*'.
 * Returns the decoded length or -1 with *err set. */
long agp_unescape(struct ag_arena *a, const char *raw, uint32_t len, char **out, uint8_t **star,
		  const char **err);

/* Expressions */
enum agp_ekind {
	AGP_E_LIT,
	AGP_E_VAR, /* op: 0 principal, 1 action, 2 resource, 3 context */
	AGP_E_IF,
	AGP_E_AND,
	AGP_E_OR,
	AGP_E_NOT,
	AGP_E_NEG,
	AGP_E_BIN, /* op: enum agp_binop */
	AGP_E_HAS,
	AGP_E_LIKE,
	AGP_E_IS,     /* kid[1], if set, is the `in` operand */
	AGP_E_ATTR,   /* .name or ["name"] */
	AGP_E_METHOD, /* op: enum agp_method, kid[0] receiver, kid[1] argument */
	AGP_E_IP,     /* ip(kid[0]) */
	AGP_E_SET,
	AGP_E_RECORD,
};

enum agp_binop {
	AGP_OP_EQ,
	AGP_OP_NE,
	AGP_OP_LT,
	AGP_OP_LE,
	AGP_OP_GT,
	AGP_OP_GE,
	AGP_OP_ADD,
	AGP_OP_SUB,
	AGP_OP_MUL,
	AGP_OP_IN,
};

enum agp_method {
	AGP_M_CONTAINS,
	AGP_M_CONTAINS_ALL,
	AGP_M_CONTAINS_ANY,
	AGP_M_IS_IN_RANGE,
	AGP_M_IS_IPV4,
	AGP_M_IS_IPV6,
	AGP_M_IS_LOOPBACK,
};

struct agp_expr {
	uint8_t kind;
	uint8_t op;
	uint16_t height;	 /* of the tree below, bounds evaluation recursion */
	uint32_t memo;		 /* ATTR on a variable path: 1 + slot of its cached value */
	uint32_t n;		 /* kids for SET/RECORD/AND/OR, pattern length for LIKE */
	uint32_t line, col;	 /* for diagnostics */
	struct agp_expr *kid[3]; /* operands */
	struct agp_expr **kids;	 /* SET items, RECORD values, AND/OR operands */
	const char *name;	 /* ATTR/HAS attribute, IS type, RECORD keys via keys */
	uint32_t nlen;
	const char **keys;    /* RECORD */
	uint32_t *klens;      /* RECORD */
	const uint8_t *star;  /* LIKE: star[i] means wildcard at pattern byte i */
	struct agp_value lit; /* LIT; LIKE pattern bytes in lit.s */
};

enum agp_scope_op {
	AGP_SC_ANY,
	AGP_SC_EQ,
	AGP_SC_IN,
	AGP_SC_IS,
	AGP_SC_IS_IN,
	AGP_SC_IN_SET, /* action in [..] */
};

struct agp_scope {
	uint8_t op;
	uint8_t which; /* 0 principal, 1 action, 2 resource */
	uint32_t memo; /* index of the set's equivalent scopes */
	const char *is_type;
	uint32_t is_tlen;
	struct agp_uid uid;  /* EQ, IN, IS_IN */
	struct agp_uid *set; /* IN_SET */
	uint32_t n_set;
};

struct agp_annotation {
	const char *name;
	const char *value;
};

struct agp_policy {
	const char *id;
	uint8_t effect;
	const char *escalate; /* @escalate value or NULL */
	struct agp_scope scope[3];
	const struct agp_scope *key; /* in scope[], what the set's index files it under */
	struct agp_expr **conds;     /* each: when -> expr, unless -> NOT expr */
	uint32_t n_conds;
	struct agp_annotation *annots;
	uint32_t n_annots;
};

struct ag_policy_set {
	struct ag_arena *arena;
	void *sha; /* SHA256_CTX while loading, NULL once sealed */
	char digest[65];
	struct agp_policy *policies;
	size_t n, cap;
	/* Distinct scope constraints: policies repeat them (`principal in
	 * Agent::"orchestrator"`), so evaluation decides each only once. */
	const struct agp_scope **scopes;
	size_t n_scopes, cap_scopes;
	/* Distinct attribute paths such as context.args.amount: their value
	 * is the same in every policy of one evaluation, so it is cached. */
	struct agp_path *paths;
	size_t n_paths, cap_paths;
	/*
	 * Scope index: most policies name their tool or action with `==`, and
	 * a request matches only the few naming its own.  Each such policy is
	 * filed under its most selective `==` scope; an evaluation visits the
	 * policies filed under the request's three uids and those with no
	 * `==` scope (rest), in set order.
	 */
	struct agp_bucket *buckets; /* open addressing, mask + 1 slots; NULL: none */
	size_t mask;
	uint32_t *filed; /* policy indices, bucket by bucket, ascending in each */
	uint64_t *rest;	 /* bitmap of the policies filed nowhere */
	size_t n_words;	 /* of rest and of an evaluation's candidate bitmap */
};

struct agp_bucket {
	const struct agp_scope *scope; /* NULL: empty slot */
	uint32_t first, n;	       /* in filed */
};

struct agp_path {
	char *key; /* malloc'd */
	size_t len;
};

/* Slot of the index bucket for a `==` scope on uid (which: as agp_scope). */
uint32_t agp_bucket_hash(uint8_t which, const struct agp_uid *uid);

int agp_parse_into(struct ag_policy_set *set, const char *name, const char *idname,
		   const char *text, size_t len, struct ag_policy_error *err);
void agp_error(struct ag_policy_error *err, int line, int col, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif /* AG_POLICY_INTERNAL */
#endif /* AG_POLICY_H */
