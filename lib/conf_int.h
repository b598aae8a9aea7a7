/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The configuration's parser, private to lib/config.c and lib/conf_*.c.
 * Loading is two steps, in this order:
 *
 *	parse	 JSON -> struct ag_conf, plain values only: no DNS, no file
 *		 but the configuration itself, no regex compiled
 *		 (lib/config.c typed readers and key tables, conf_servers.c,
 *		 conf_agents.c, conf_load.c)
 *	resolve	 the I/O the values name (conf_resolve.c): upstream names to
 *		 addresses, CA and secret files checked, output rules compiled
 *
 * Ordering hazard: the gateway-loop check needs the upstream's address, so
 * it belongs to resolve, not parse.  Every error names the file and the
 * JSON path of the value: "FILE: $.tool_servers[0].upstream: cause".
 */
#ifndef AG_CONF_INT_H
#define AG_CONF_INT_H

#include <limits.h>
#include <jansson.h>

#include "config.h"

struct parse {
	const char *file;
	struct ag_err *err;
	char dir[PATH_MAX]; /* of file: where relative paths start */
};

/* ---- typed key readers (lib/config.c) ---- */

int conf_bad(struct parse *p, const char *path, const char *what);
int conf_badf(struct parse *p, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int conf_nomem(struct parse *p);
/* obj is an object whose keys are all in allowed (NULL-terminated). */
int conf_check_keys(struct parse *p, const char *path, json_t *obj, const char *const *allowed);
int conf_get_uint(struct parse *p, const char *path, json_t *v, uint64_t max, uint64_t *out);
int conf_get_verdict(struct parse *p, const char *path, json_t *v, uint32_t *out);
/* A JSON string without NUL bytes, which C would silently cut short. */
int conf_get_string(struct parse *p, const char *path, json_t *v, const char **out);
/* An optional string member of at most cap - 1 bytes without controls, copied into out. */
int conf_get_optional(struct parse *p, const char *path, json_t *obj, const char *key, char *out,
		      size_t cap);
int conf_get_list(struct parse *p, const char *path, json_t *v, size_t *n);
void *conf_get_array(struct parse *p, const char *path, json_t *v, size_t size, size_t *n,
		     int *ret);
/* What each string of a list is checked and stored by; slot is its element. */
typedef int (*conf_string_fn)(struct parse *p, const char *where, const char *s, void *slot,
			      void *ctx);
int conf_parse_strings(struct parse *p, const char *path, json_t *v, size_t elem, void **out,
		       int *nr, conf_string_fn fn, void *ctx);
bool conf_has_control(const char *s);
/* A path in the file; relative ones are resolved against the config's directory. */
int conf_path(struct parse *p, const char *path, json_t *v, char out[PATH_MAX]);

/* ---- the key tables (lib/config.c; selftests/test_docs.c reads them there) ---- */

extern const char *const conf_root_keys[],
    *const conf_listen_keys[], *const conf_audit_keys[], *const conf_policy_keys[],
							     *const conf_agent_uids_keys[],
								 *const conf_limits_keys[],
								     *const conf_metrics_keys[];
extern const char *const conf_rule_keys[], *const conf_agent_keys[], *const conf_quota_keys[],
									 *const conf_loop_keys[],
									     *const conf_dns_keys[];
extern const char *const conf_server_keys[],
    *const conf_tls_keys[], *const conf_match_keys[], *const conf_output_rule_keys[];
extern const char *const conf_anomaly_keys[];
extern const char *const conf_policy_source_keys[];
/* "fleet" (conf_fleet.c): shared budgets on Redis. */
extern const char *const conf_fleet_keys[];
extern const char *const conf_ship_keys[];
extern const char *const conf_inbound_keys[];
/* Members a credential type takes beyond "type"; the rest are refused. */
const char *const *conf_cred_keys(enum ag_cred_kind k);

/* ---- the parts: each parses one JSON object into c ---- */

/* "audit": {"ship": {...}} (conf_ship.c). */
int conf_parse_ship(struct parse *p, json_t *v, struct ag_ship_conf *sc);
int conf_parse_rules(struct parse *p, const char *path, json_t *arr, struct ag_rule_conf **out,
		     int *nr);
int conf_parse_pass_entry(struct parse *p, const char *path, const char *s,
			  struct ag_pass_conf *pc);
int conf_parse_pass(struct parse *p, const char *path, json_t *v, struct ag_pass_conf **out,
		    int *nr);
int conf_parse_dns(struct parse *p, const char *path, json_t *v, struct ag_dns_conf *d);
void conf_dns_free(struct ag_dns_conf *d);
int conf_parse_servers(struct parse *p, json_t *arr, struct ag_conf *c);
/* A name of an entry: 1-31 of [A-Za-z0-9_.-], not starting with '.' or '-'. */
int conf_get_name(struct parse *p, const char *path, json_t *v, const char **out);
/* One entry's fields shared by tool servers and HTTP services (conf_servers.c). */
int conf_parse_server(struct parse *p, const char *at, json_t *e, struct ag_conf *c, int i);
/* "http_services" (conf_http.c): appended to c->servers, after the tool servers. */
extern const char *const conf_http_service_keys[], *const conf_http_route_keys[];
int conf_parse_http(struct parse *p, json_t *arr, struct ag_conf *c);
void conf_http_free(struct ag_server_conf *s);
/* "tool_servers[].command" (conf_hosted.c): into s->hosted; after upstream. */
extern const char *const conf_hosted_keys[];
int conf_parse_hosted(struct parse *p, const char *path, json_t *v, struct ag_server_conf *s);
/* After "agents": an agent a command names is configured. */
int conf_check_hosted(struct parse *p, const struct ag_conf *c);
void conf_free_hosted(struct ag_server_conf *s);
int conf_parse_agents(struct parse *p, json_t *arr, struct ag_conf *c);
/* "anomaly" (lib/conf_anomaly.c). */
int conf_parse_anomaly(struct parse *p, json_t *v, struct ag_anomaly_conf *a);
/* "policy_source" (conf_source.c), parsed before "policy", which it restricts. */
int conf_parse_policy_source(struct parse *p, json_t *v, struct ag_policy_source_conf *s);
int conf_parse_fleet(struct parse *p, json_t *v, struct ag_conf *c);
int conf_check_fleet(struct parse *p, const struct ag_conf *c);
/* "inbound" (conf_inbound.c): agents from outside. */
int conf_parse_inbound(struct parse *p, json_t *v, struct ag_conf *c);
/* The I/O after parsing (conf_resolve.c). */
int conf_resolve(struct parse *p, struct ag_conf *c);

/* net contains addr (lib/conf_match.c). */
bool conf_cidr_contains(const uint8_t net[16], int prefixlen, const uint8_t addr[16]);

#endif
