/* SPDX-License-Identifier: GPL-2.0 */
/*
 * agentgate.json: the instance configuration.  Strict: an unknown key or a
 * value of the wrong type is an error naming its JSON path, never ignored.
 * With no file, the embedded default of agentgated(8) applies: every
 * agent's TCP is redirected to the daemon and relayed, UDP goes only to the
 * resolvers of /etc/resolv.conf.
 */
#ifndef AG_CONFIG_H
#define AG_CONFIG_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

#include "agentgate.h"
#include "anomaly.h"  /* struct ag_anomaly_conf */
#include "hostport.h" /* AG_HOST_LEN, ag_host_norm() */
#include "target.h"
#include "util.h"

#define AG_DEFAULT_PORT 15080
#define AG_DEFAULT_MARK 0x41470000u /* "AG" */
#define AG_MAX_CONF_RULES 256
#define AG_MAX_CONF_AGENTS 256
#define AG_MAX_UNIX_SOCKETS 32	  /* agents[].unix_sockets; x256 = AG_MAX_UNIX_PATHS */
#define AG_LOOP_MAX_IDENTICAL 100 /* loop_protection.max_identical */
#define AG_LOOP_MAX_WINDOW_S 86400
/* agent_uids: systemd's DynamicUser range by default. */
#define AG_DEFAULT_AGENT_UID_MIN 61184
#define AG_DEFAULT_AGENT_UID_MAX 65519

struct ag_rule_conf {
	uint8_t addr[16];
	int prefixlen; /* IPv6 bits; v4 rules are v4-mapped */
	uint16_t port; /* 0: every port */
	uint32_t verdict;
};

#define AG_MAX_CONF_SERVERS 64
/* Idle upstream connections kept per tool server ("upstream_pool"). */
#define AG_UPSTREAM_POOL_DEFAULT 16
#define AG_UPSTREAM_POOL_MAX 4096
#define AG_MAX_CONF_LIST 256 /* entries of any list: hosts, ports, patterns */

/*
 * A pass-through destination: relayed as bytes without the MCP path.
 * kind ANY matches everything; HOST matches the TLS SNI or HTTP Host
 * (exact, or "*.suffix" for any name below suffix) when the original
 * destination address is one that name resolves to; CIDR the original
 * destination address.  port 0: every port.
 */
enum ag_pass_kind {
	AG_PASS_ANY,
	AG_PASS_HOST,
	AG_PASS_CIDR,
};

struct ag_pass_conf {
	enum ag_pass_kind kind;
	char host[AG_HOST_LEN]; /* lower case; "*.example.com" allowed */
	uint8_t addr[16];	/* CIDR: v4 rules are v4-mapped */
	int prefixlen;
	uint16_t port;
};

enum ag_cred_kind {
	AG_CRED_NONE,
	AG_CRED_BEARER,
	AG_CRED_HEADER,
	AG_CRED_OAUTH,	   /* OAuth 2.0 client credentials (lib/oauth.h) */
	AG_CRED_ASSERTION, /* a JWT minted per call (lib/jwt.h) */
};

/*
 * A governed MCP tool server.  A connection is this server's when its
 * original destination port is in ports (or ports is empty and it equals
 * the upstream's port) and either its original destination address is in
 * addrs or one an exact name of hosts resolves to, or the host it names
 * (SNI or Host) is in hosts and resolves to that address; and when its
 * destination is the upstream's address and port.
 */
struct ag_server_conf {
	char name[AG_NAME_LEN];
	char (*hosts)[AG_HOST_LEN]; /* lower case, exact or "*.suffix" */
	int nr_hosts;
	uint16_t *ports;
	int nr_ports;
	struct ag_rule_conf *addrs; /* addr + prefixlen; port and verdict unused */
	int nr_addrs;
	/* "upstream": "http[s]://host[:port][/path]" */
	bool upstream_tls;
	char upstream_host[AG_HOST_LEN]; /* lower case: name, IPv4 or "[IPv6]" */
	uint16_t upstream_port;		 /* default 80 / 443 */
	char upstream_path[1024];	 /* the MCP endpoint ("" : "/"); see lib/mcp_request.h */
	/* Resolved at load time (getaddrinfo, numeric or /etc/hosts). */
	uint8_t upstream_addr[16]; /* v4-mapped for IPv4 */
	/*
	 * "tls": { "ca_file": PATH, "server_name": NAME }.  Certificates and
	 * host names are always verified: there is no switch to turn it off.
	 */
	char ca_file[PATH_MAX];	       /* "" : the system store */
	char server_name[AG_HOST_LEN]; /* SNI and verified name; default upstream_host */
	/*
	 * "credential": what the gateway presents upstream in place of the
	 * agent's own (which is always removed): {"type": "bearer",
	 * "secret_file": F} sends "Authorization: Bearer <F>", {"type":
	 * "header", "header": NAME, "secret_file": F} sends "NAME: <F>".  F
	 * must be a root-owned 0600 file (lib/secret.h).
	 */
	enum ag_cred_kind cred;
	char cred_header[64];
	char cred_file[PATH_MAX]; /* bearer, header; OAuth's client_secret_file */
	/*
	 * {"type": "oauth2_client_credentials", "token_url": URL, "client_id":
	 * ID, "client_secret_file": F, "scope", "resource" (RFC 8707),
	 * "audience", "ca_file"}: "Authorization: Bearer <access token>", the
	 * token cached and refreshed before it expires.
	 */
	char oauth_token_url[1024];
	char oauth_client_id[256];
	char oauth_scope[512];
	char oauth_resource[1024];
	char oauth_ca_file[PATH_MAX];
	/*
	 * {"type": "assertion", "audience": AUD, "alg": "EdDSA"|"ES256",
	 * "ttl_s": 1-300}: "Authorization: Bearer <JWT>" minted per call with
	 * the instance's key (<state-dir>/keys): sub the operator, act the
	 * agent and its delegation chain, aud AUD (default: the upstream URL).
	 */
	char cred_audience[1400]; /* assertion aud; OAuth "audience" parameter */
	int assertion_alg;	  /* enum ag_jwt_alg */
	uint32_t assertion_ttl;
	/* "audit_args": "hash" (default), "full" or "drop" (lib/audit.h). */
	int audit_args;
	/* "upstream_pool": idle keep-alive upstream connections kept for the
	 * next request of any agent (0: none kept). */
	uint32_t upstream_pool;
	/*
	 * "trust": how a tool seen for the first time in a tools/list is
	 * recorded in the inventory (lib/inventory.h): "on-first-use"
	 * (default) trusts it, "explicit" leaves it pending until
	 * agentgatectl tools approve.  A changed definition is blocked either way.
	 */
	int trust; /* enum ag_trust */
	/* "output_rules": what is masked or refused in tools/call results
	 * (lib/redact.h).  Absent: the secret detectors (private keys, bearer
	 * tokens, cloud access keys) mask; [] turns output rules off. */
	struct ag_output_rule *out_rules;
	int nr_out_rules;
	/* "upstream" as written, for messages: room for the longest host, port and path */
	char upstream_url[16 + AG_HOST_LEN + 8 + 1024];
	/* An entry of "http_services" (conf_http.c): a plain HTTP API, its
	 * requests decided by route; NULL for an MCP tool server. */
	struct ag_http_svc_conf *http;
	/* "command": the gateway hosts this stdio server (NULL: it speaks HTTP itself). */
	struct ag_hosted_conf *hosted;
};

/*
 * "http_services": {"name", "upstream", "match", "tls", "credential",
 * "audit_args", "output_rules" as a tool server has them, "routes": [{"name":
 * N, "method": "GET", "path": "/todos/{id}"}], "context_headers": [names],
 * "unmatched": "deny" (default) | "policy", "openapi": FILE (an OpenAPI 3
 * document in JSON: a route per operation, named by its operationId)}.
 * The upstream's path, if any, prefixes every forwarded path.
 */
#define AG_HTTP_MAX_ROUTES 256
#define AG_HTTP_MAX_HEADERS 16
#define AG_HTTP_PATTERN_LEN 512
struct ag_http_route_conf {
	char name[AG_NAME_LEN];
	char method[8];			/* GET, POST, PUT, PATCH, DELETE */
	char path[AG_HTTP_PATTERN_LEN]; /* "/a/{p}/b": literal and {param} segments */
};

struct ag_http_svc_conf {
	struct ag_http_route_conf *routes;
	int nr_routes;
	char (*headers)[64]; /* lower case: request fields policies see (context.headers) */
	int nr_headers;
	bool unmatched_policy; /* a request no route matches goes to the policies as Route "*" */
};

/*
 * "tool_servers[].command" (lib/conf_hosted.c, daemon/hosted.h): a stdio
 * MCP server agentgated starts on demand and serves at "upstream" (an
 * http://127.0.0.1 or [::1] URL the gateway binds), governed like an agent
 * named "agent" (default: the server's name; an agent not in "agents"
 * may connect nowhere).
 */
#define AG_HOSTED_MAX_ARGS 64
#define AG_HOSTED_MAX_ENV 64
#define AG_HOSTED_ARG_MAX 4096
#define AG_HOSTED_MAX_SESSIONS 64
struct ag_hosted_conf {
	char **argv; /* NULL-terminated; argv[0] an absolute path */
	int argc;
	char **env; /* "NAME=value", NULL-terminated */
	int nr_env;
	char cwd[PATH_MAX];		 /* "/" unless set */
	char user[64];			 /* "": a uid of its own (agent_uids) */
	char agent[AG_NAME_LEN];	 /* whose egress rules govern it */
	bool agent_set;			 /* named in the file: must be in "agents" */
	bool per_session;		 /* "processes": "per_session" (default "shared") */
	uint32_t max_sessions;		 /* per_session: processes at once (default 16) */
};

/*
 * One output rule: {"name": N, one of "detector": D, "path": "$.a.b",
 * "regex": ERE, optional "action": "mask"|"refuse", optional "tools":
 * [names] limiting it to those tools of the server}.
 */
struct ag_output_rule {
	char name[64];
	int kind;     /* enum ag_redact_kind */
	int action;   /* enum ag_redact_action */
	int detector; /* enum ag_redact_detector */
	char *text;   /* the path or the regex */
	char **tools;
	int nr_tools; /* 0: every tool */
};

/*
 * "dns": {"allow": [NAME...], "deny": [NAME...]}: the names an agent may
 * resolve through the DNS relay (daemon/dns.c).  NAME is a host name,
 * "*.suffix" (any name strictly below suffix) or, in allow, "*" (every
 * name).  Deny wins.  Without "allow" every name not denied is allowed:
 * what agents resolved before the relay governed DNS, every query audited.
 */
struct ag_dns_conf {
	bool set;	/* the block is there (an agent's replaces the top level's) */
	bool allow_set; /* "allow" is there: only what it names */
	char (*allow)[AG_HOST_LEN];
	int nr_allow;
	char (*deny)[AG_HOST_LEN];
	int nr_deny;
};

struct ag_agent_conf {
	char name[AG_NAME_LEN];
	uint32_t verdict;
	/*
	 * The allow-lists the MCP path decides by until a policy set is
	 * configured: "server/name" patterns where '*' matches any run of
	 * bytes.  Deny by default: absent or empty allows nothing.
	 */
	char **tools; /* tools/call and tools/list visibility */
	int nr_tools;
	char **resources; /* resources/read: "server/URI" */
	int nr_resources;
	char **prompts; /* prompts/get */
	int nr_prompts;
	/* Pass-through destinations; when !pass_set, the top level's apply. */
	struct ag_pass_conf *pass;
	int nr_pass;
	bool pass_set;
	/* all 0: no quota (kern.h's struct ag_quota_limits, same fields) */
	uint32_t connect_rate, connect_burst, calls_per_minute, calls_per_day;
	/*
	 * "loop_protection": {"max_identical": N, "window_s": S, "action":
	 * "deny"|"escalate"}: beyond N calls of one tool of one server with
	 * identical arguments within S seconds, a call is refused or held for
	 * approval (daemon/budget.h).  loop_max_identical 0: off.
	 */
	uint32_t loop_max_identical, loop_window_s;
	bool loop_escalate;
	struct ag_rule_conf *rules;
	int nr_rules;
	/*
	 * What the policy engine knows of the agent (agentgate.conf(5)):
	 * "operator" names the User it acts for (context.operator), and
	 * "attributes" (an object of strings, integers and booleans, e.g.
	 * owner, team, trust) become the attributes of Agent::"<name>".
	 */
	char operator_name[AG_NAME_LEN]; /* "" : none */
	char *attributes;		 /* compact JSON object, NULL when absent */
	/*
	 * "delegated_by": the agents that may start this one as a sub-agent
	 * (agentgatectl run inside their cgroup).  The agent picks its
	 * sub-cgroup's name, so the daemon honours the name only when the
	 * parent is listed here (lib/delegation.h).
	 */
	char (*delegated_by)[AG_NAME_LEN];
	int nr_delegated_by;
	/* Fair sharing: "max_conns", this agent's concurrent connections
	 * (0: the top level's limits.max_conns_per_agent). */
	uint32_t max_conns;
	/*
	 * "unix_sockets": the AF_UNIX addresses the agent may connect and send
	 * to, exactly: absolute paths, "@name" for abstract ones.  Deny by
	 * default: absent or empty allows none (bpf/sock.bpf.c unix_verdict).
	 */
	char (*unix_sockets)[AG_UNIX_PATH_LEN + 1];
	int nr_unix_sockets;
	struct ag_dns_conf dns; /* !dns.set: the top level's */
	/* "quota": {"scope": "fleet"}: calls_per_minute and calls_per_day
	 * hold across the fleet (daemon/fleet.h), not in the kernel map. */
	bool fleet_scope;
};

/*
 * "fleet": call budgets shared by every instance that names the same Redis
 * (daemon/fleet.h).  redis "" (the default): no fleet, and an agent's
 * quota with "scope": "fleet" is refused.
 */
#define AG_FLEET_ADDR_LEN 256
#define AG_FLEET_USER_LEN 64
#define AG_FLEET_PREFIX_LEN 64
#define AG_FLEET_LEASE_CALLS 10
#define AG_FLEET_MAX_LEASE 100000

struct ag_fleet_conf {
	char redis[AG_FLEET_ADDR_LEN]; /* "unix:/path" or "host:port", as written */
	char host[AG_FLEET_ADDR_LEN];  /* the host, or the socket's path */
	uint16_t port;		       /* 0: host is a unix socket's path */
	char user[AG_FLEET_USER_LEN];  /* ACL user; "" : AUTH with the password only */
	char password_file[PATH_MAX];  /* "" : no AUTH (lib/secret.h rules) */
	uint32_t lease_calls;	       /* calls per lease */
	bool unreachable_leases;       /* on_unreachable "leases", else "fail_closed" */
	char key_prefix[AG_FLEET_PREFIX_LEN];
};

/*
 * "policy": the Cedar policy set that decides the MCP path instead of the
 * allow-lists.  Exactly one of dir (every *.cedar in it, in name order) and
 * files (in the order given); entities optional.  Paths are absolute,
 * relative ones having been resolved against the config file's directory.
 * The files are read by the daemon (at start and on reload), not here.
 */
/*
 * "audit": {"ship": {"address": "HOST:PORT", "ca_file": FILE, "server_name":
 * NAME, "cert_file": FILE, "key_file": FILE}}: every audit record sent to a
 * syslog collector over TLS (lib/audit_ship.h).  host "" : not shipped.
 * server_name "" : the address's host; cert_file and key_file together.
 */
struct ag_ship_conf {
	char host[AG_HOST_LEN];
	char port[6];
	char server_name[AG_HOST_LEN];
	char ca_file[PATH_MAX];
	char cert_file[PATH_MAX];
	char key_file[PATH_MAX];
};

struct ag_policy_conf {
	bool set;
	char dir[PATH_MAX]; /* "" when files are listed */
	char (*files)[PATH_MAX];
	int nr_files;
	char entities[PATH_MAX]; /* "" : none */
};

/*
 * "policy_source": {"url": URL, "ref": REF, "interval_s": N,
 * "allowed_signers": FILE, "path": DIR}: the policy set comes from a git
 * repository, only from commits signed by a key in allowed_signers
 * (daemon/policy_git.h).  It replaces "policy"'s dir and files; "policy"
 * may still name the entities.  url is whatever git(1) accepts as a
 * repository (never starting with '-'); ref a branch or tag name.
 */
#define AG_GIT_URL_LEN 1024
#define AG_GIT_REF_LEN 256
#define AG_GIT_INTERVAL_DEFAULT 60
#define AG_GIT_INTERVAL_MAX 86400

struct ag_policy_source_conf {
	char url[AG_GIT_URL_LEN];
	char ref[AG_GIT_REF_LEN];	/* default "main" */
	uint32_t interval_s;		/* 1..AG_GIT_INTERVAL_MAX, default 60 */
	char allowed_signers[PATH_MAX]; /* absolute */
	char path[AG_GIT_REF_LEN];	/* inside the repository; "" : its root */
};

/*
 * "inbound": agents from outside (daemon/inbound.h): one TLS listener, an
 * OAuth 2.1 resource server in front of one configured tool server.
 * {"listen": "ADDRESS:PORT", "cert_file": FILE, "key_file": FILE,
 *  "server": NAME, "resource": URL, "issuer": URL, "jwks_uri": URL,
 *  "ca_file": FILE, "scopes": {SCOPE: [TOOL | "*", ...], ...},
 *  "clock_skew_s": N, "jwks_refresh_s": N, "jwks_min_interval_s": N,
 *  "guard": {"interface": IFACE, "rate": N, "burst": N}}.
 * port 0: no inbound surface.  A tool is callable with a token whose scope
 * names a SCOPE that lists it (or "*").
 */
#define AG_INBOUND_URL_LEN 1024
#define AG_INBOUND_MAX_GRANTS 64
#define AG_INBOUND_SCOPE_LEN 128
#define AG_INBOUND_SKEW_DEFAULT 60
#define AG_INBOUND_REFRESH_DEFAULT 300
#define AG_INBOUND_MIN_INTERVAL_DEFAULT 10

struct ag_inbound_grant {
	char scope[AG_INBOUND_SCOPE_LEN];
	char tool[256]; /* "*": every tool */
};

struct ag_inbound_conf {
	uint8_t addr[16]; /* v4-mapped for IPv4 */
	uint16_t port;	  /* 0: off */
	char cert_file[PATH_MAX];
	char key_file[PATH_MAX];
	char server[AG_NAME_LEN];
	char resource[AG_INBOUND_URL_LEN];
	char resource_path[AG_INBOUND_URL_LEN]; /* its origin-form target */
	char issuer[AG_INBOUND_URL_LEN];
	char jwks_uri[AG_INBOUND_URL_LEN];
	char ca_file[PATH_MAX]; /* "" : the system store, for the JWKS fetch */
	uint32_t clock_skew_s, jwks_refresh_s, jwks_min_interval_s;
	struct ag_inbound_grant grants[AG_INBOUND_MAX_GRANTS];
	int nr_grants;
	/* "guard": {"interface": IFACE, "rate": N, "burst": N}: the XDP ingress
	 * guard the daemon puts on IFACE for the listener's port ("": none). */
	char guard_iface[16];
	uint32_t guard_rate, guard_burst;
};

struct ag_conf {
	uint16_t port;
	bool ipv6;
	uint32_t mark;
	uint8_t resolvers[AG_MAX_RESOLVERS][16];
	int nr_resolvers;
	uint16_t resolver_port;
	uint32_t default_verdict;
	struct ag_rule_conf *rules;
	int nr_rules;
	struct ag_agent_conf *agents;
	int nr_agents;
	uint32_t connect_timeout_ms;
	/* "relay_splice": the kernel splices relayed connections (daemon/relay.c). */
	bool relay_splice;
	/* How long an escalated call waits for agentgatectl approve/deny. */
	uint32_t approval_timeout_ms;
	/*
	 * "audit": {"durability": "written"|"strict"|"sync"|"none",
	 * "rotate_bytes": N, "syslog": PATH}.  A governed call is forwarded
	 * once its decision record is written; written (default): synced
	 * within sync_interval_ms; strict: synced at once, the result held
	 * until it is; sync: forwarded only once synced; none: never synced
	 * (docs/audit.md, Durability).  rotate_bytes 0:
	 * never rotate.  syslog: an RFC 5424 datagram socket (e.g. /dev/log)
	 * that gets a copy of every record; "" none.
	 */
	int audit_durability; /* enum ag_audit_durability */
	uint64_t audit_rotate_bytes;
	char audit_syslog[PATH_MAX];
	struct ag_server_conf *servers;
	int nr_servers;
	/* Top-level "passthrough"; absent: ["*"], every destination relays. */
	struct ag_pass_conf *pass;
	int nr_pass;
	struct ag_policy_conf policy;
	/* "tools_lock": reviewed tool definitions pinned by hash
	 * (agentgatectl tools lock writes one); "" : none. */
	char tools_lock[PATH_MAX];
	/*
	 * "agent_uids": {"min": N, "max": N}: the range agentgatectl run takes
	 * a per-run uid from (lib/runuid.h); it reads it from the config map.
	 */
	uint32_t agent_uid_min, agent_uid_max;
	/*
	 * Fair sharing, "limits": {"header_timeout_ms": N, "idle_timeout_ms":
	 * N, "max_conns_per_agent": N} (daemon/fair.h).  A request head (and
	 * the first bytes classification reads) must be whole within
	 * header_timeout_ms; a connection with no byte either way for
	 * idle_timeout_ms is closed; an agent holds at most
	 * max_conns_per_agent connections at once (or its own "max_conns").
	 */
	uint32_t header_timeout_ms;
	uint32_t idle_timeout_ms;
	uint32_t max_conns_per_agent;
	struct ag_dns_conf dns; /* every agent without a "dns" of its own */
	/*
	 * "metrics": {"listen": "127.0.0.1:9464"}: the Prometheus endpoint
	 * (daemon/metrics.h), on a loopback address only: it has no
	 * authentication.  metrics_port 0 (the default): no endpoint.
	 */
	uint8_t metrics_addr[16]; /* v4-mapped for IPv4 */
	uint16_t metrics_port;
	/* "anomaly": per-agent anomaly flags (lib/anomaly.h, daemon/anomalies.h). */
	struct ag_anomaly_conf anomaly;
	struct ag_policy_source_conf policy_source; /* !url[0]: none */
	struct ag_fleet_conf fleet;
	struct ag_ship_conf audit_ship; /* "audit": {"ship": ...} */
	struct ag_inbound_conf inbound; /* "inbound" (port 0: none) */
	/* "audit": {"sync_interval_ms": N}: durability "written"'s bound, default 100. */
	uint32_t audit_sync_ms;
};

#define AG_HEADER_TIMEOUT_MS 15000
#define AG_IDLE_TIMEOUT_MS 300000
#define AG_MAX_CONNS_PER_AGENT 512
#define AG_MAX_CONNS_LIMIT 1000000 /* no agent needs more; bounds the arithmetic */

/* The embedded default (reads /etc/resolv.conf). */
int ag_conf_default(struct ag_conf *c, struct ag_err *err);
/* The default, overridden by the file's settings: ag_conf_parse, then ag_conf_resolve. */
int ag_conf_load(struct ag_conf *c, const char *path, struct ag_err *err);
/* The file's values only: no DNS, no CA or secret file read, no regex compiled. */
int ag_conf_parse(struct ag_conf *c, const char *path, struct ag_err *err);
/*
 * The I/O a parsed c names, once: upstream names resolved (and refused if
 * they loop to the gateway), tls.ca_file and credential secrets checked,
 * output rules compiled.  Errors name path and the JSON path as parsing does.
 */
int ag_conf_resolve(struct ag_conf *c, const char *path, struct ag_err *err);
void ag_conf_free(struct ag_conf *c);
/* The kernel's view of the configuration. */
void ag_conf_to_kernel(const struct ag_conf *c, struct ag_config *k);

/* Routing decisions, for the daemon's classification step. */
const struct ag_agent_conf *ag_conf_agent(const struct ag_conf *c, const char *name);
/* Names (a Host header's or SNI's) are compared as ag_host_norm() (lib/hostport.h) leaves them. */
/* Whether port is one of s's: its "ports", or its upstream's port without any. */
bool ag_server_port_ok(const struct ag_server_conf *s, uint16_t port);
/*
 * The tool server whose address the original destination is: addr (16
 * bytes, v4-mapped) is in its "addresses" and port one of its ports, or
 * addr and port are its upstream's.  NULL when none.  What a server's host
 * names resolve to is the daemon's to add (daemon/classify.c).
 */
const struct ag_server_conf *ag_conf_server_at(const struct ag_conf *c, const uint8_t addr[16],
					       uint16_t port);
/* The tool server whose "hosts" name host (SNI or Host, see ag_host_norm)
 * on port; NULL when none. */
const struct ag_server_conf *ag_conf_server_named(const struct ag_conf *c, uint16_t port,
						  const char *host);
/* Whether a tool server could match this destination once its host name
 * is known: the daemon then reads the first bytes before deciding. */
bool ag_conf_server_port(const struct ag_conf *c, uint16_t port);

enum ag_pass_match {
	AG_PASS_DENY,
	AG_PASS_ALLOW,
	AG_PASS_NAMED, /* a host entry names host, but host is not at addr */
};
/*
 * Whether agent (NULL: an agent not in the file) may relay to addr, port
 * as bytes.  A host entry allows only when host (as above) matches it and
 * host_at_addr says that addr is one of the addresses host resolves to.
 */
enum ag_pass_match ag_conf_pass_match(const struct ag_conf *c, const struct ag_agent_conf *agent,
				      const uint8_t addr[16], uint16_t port, const char *host,
				      bool host_at_addr);
/*
 * Whether agent (NULL: an agent not in the file) may resolve name (lower
 * case, no trailing dot) through the DNS relay (struct ag_dns_conf).
 */
bool ag_conf_dns_allows(const struct ag_conf *c, const struct ag_agent_conf *agent,
			const char *name);
/* Whether any pass-through entry of that agent needs the host name. */
bool ag_conf_pass_needs_host(const struct ag_conf *c, const struct ag_agent_conf *agent);

/* "10.0.0.0/8", "::1", "fd00::/8" (a full-length prefix is left out). */
const char *ag_conf_cidr_fmt(const uint8_t addr[16], int prefixlen, char *buf, size_t len);
/* A pass-through entry as the file would write it: "*", "api.example.com:443",
 * "10.0.0.0/8", "[::1]:8080". */
const char *ag_pass_fmt(const struct ag_pass_conf *pc, char *buf, size_t len);

struct ag_redact_rule;
/* A server's output rules as lib/redact.h takes them (room for
 * nr_out_rules); the strings point into s. */
void ag_output_rules_view(const struct ag_server_conf *s, struct ag_redact_rule *rules);

/* The allow-list decision for "server/name" (agent NULL: deny). */
bool ag_conf_allows(const struct ag_agent_conf *agent, enum ag_policy_target kind,
		    const char *server, const char *name);

#endif
