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
#include "util.h"

#define AG_DEFAULT_PORT 15080
#define AG_DEFAULT_MARK 0x41470000u /* "AG" */
#define AG_MAX_CONF_RULES 256
#define AG_MAX_CONF_AGENTS 256

struct ag_rule_conf {
	uint8_t addr[16];
	int prefixlen; /* IPv6 bits; v4 rules are v4-mapped */
	uint16_t port; /* 0: every port */
	uint32_t verdict;
};

#define AG_MAX_CONF_SERVERS 64
#define AG_MAX_CONF_LIST 256 /* entries of any list: hosts, ports, patterns */
#define AG_HOST_LEN 256	     /* a DNS name, NUL included */

/*
 * A pass-through destination: relayed as bytes without the MCP path.
 * kind ANY matches everything; HOST matches the TLS SNI or HTTP Host
 * (exact, or "*.suffix" for any name below suffix); CIDR the original
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
};

/*
 * A governed MCP tool server.  A connection is this server's when its
 * original destination port is in ports (or ports is empty and it equals
 * the upstream's port) and either the host it names (SNI or Host) is in
 * hosts or its original destination address is in addrs.
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
	char upstream_path[1024];	 /* "" when none; requests are forwarded as-is */
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
	char cred_file[PATH_MAX];
	/* "audit_args": "hash" (default), "full" or "drop" (lib/audit.h). */
	int audit_args;
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
};

/*
 * "policy": the Cedar policy set that decides the MCP path instead of the
 * allow-lists.  Exactly one of dir (every *.cedar in it, in name order) and
 * files (in the order given); entities optional.  Paths are absolute,
 * relative ones having been resolved against the config file's directory.
 * The files are read by the daemon (at start and on reload), not here.
 */
struct ag_policy_conf {
	bool set;
	char dir[PATH_MAX];	 /* "" when files are listed */
	char (*files)[PATH_MAX];
	int nr_files;
	char entities[PATH_MAX]; /* "" : none */
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
	/* How long an escalated call waits for agentgatectl approve/deny. */
	uint32_t approval_timeout_ms;
	/*
	 * "audit": {"durability": "sync"|"batch"|"none", "rotate_bytes": N,
	 * "syslog": PATH}.  sync (default): a governed call waits for its
	 * decision record to be durable; batch: records are group-committed
	 * the same way but nothing waits; none: no fdatasync.  rotate_bytes 0:
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
};

/* The embedded default (reads /etc/resolv.conf). */
int ag_conf_default(struct ag_conf *c, struct ag_err *err);
/* The default, overridden by the file's settings. */
int ag_conf_load(struct ag_conf *c, const char *path, struct ag_err *err);
void ag_conf_free(struct ag_conf *c);
/* The kernel's view of the configuration. */
void ag_conf_to_kernel(const struct ag_conf *c, struct ag_config *k);

/* Routing decisions, for the daemon's classification step. */
const struct ag_agent_conf *ag_conf_agent(const struct ag_conf *c, const char *name);
/*
 * The tool server a connection belongs to: addr (16 bytes, v4-mapped) and
 * port of the original destination, host the SNI or Host name (NULL or ""
 * when unknown; compared case-insensitively, a trailing dot and a :port
 * suffix ignored).  NULL when none.
 */
const struct ag_server_conf *ag_conf_match_server(const struct ag_conf *c, const uint8_t addr[16],
						  uint16_t port, const char *host);
/* Whether a tool server could match this destination once its host name
 * is known: the daemon then reads the first bytes before deciding. */
bool ag_conf_server_port(const struct ag_conf *c, uint16_t port);
/* Whether agent (NULL: an agent not in the file) may relay to the
 * destination as bytes; host as above. */
bool ag_conf_pass_allows(const struct ag_conf *c, const struct ag_agent_conf *agent,
			 const uint8_t addr[16], uint16_t port, const char *host);
/* Whether any pass-through entry of that agent needs the host name. */
bool ag_conf_pass_needs_host(const struct ag_conf *c, const struct ag_agent_conf *agent);

/* "10.0.0.0/8", "::1", "fd00::/8" (a full-length prefix is left out). */
const char *ag_conf_cidr_fmt(const uint8_t addr[16], int prefixlen, char *buf, size_t len);
/* A pass-through entry as the file would write it: "*", "api.example.com:443",
 * "10.0.0.0/8", "[::1]:8080". */
const char *ag_pass_fmt(const struct ag_pass_conf *pc, char *buf, size_t len);

enum ag_mcp_kind {
	AG_KIND_TOOL,	  /* tools/call, tools/list */
	AG_KIND_RESOURCE, /* resources/read */
	AG_KIND_PROMPT,	  /* prompts/get */
};
/* The allow-list decision for "server/name" (agent NULL: deny). */
bool ag_conf_allows(const struct ag_agent_conf *agent, enum ag_mcp_kind kind, const char *server,
		    const char *name);

#endif
