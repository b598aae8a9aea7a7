// SPDX-License-Identifier: GPL-2.0
/*
 * "audit": {"ship": {...}}: the collector audit records are shipped to
 * (lib/audit_ship.h).  Plain values only: the daemon loads the CA and the
 * client certificate when it starts shipping, and refuses to start if it
 * cannot.
 */
#include <string.h>

#include "conf_int.h"

#define WHERE "$.audit.ship"

static int parse_address(struct parse *p, json_t *v, struct ag_ship_conf *sc)
{
	struct ag_authority a;
	const char *s;
	uint16_t port;
	int ret;

	if (!v)
		return conf_bad(p, WHERE, "expected \"address\": \"HOST:PORT\" of the collector");
	if ((ret = conf_get_string(p, WHERE ".address", v, &s)))
		return ret;
	if (ag_authority_split(s, strlen(s), false, &a) != AG_AUTH_OK || !a.host_len || !a.port ||
	    !ag_port_parse(a.port, a.port_len, &port) ||
	    !ag_host_lower(sc->host, a.host, a.host_len) ||
	    !(ag_ip_literal(sc->host) || ag_dns_name_valid(sc->host, strlen(sc->host), 0)))
		return conf_badf(p, WHERE ".address",
				 "\"%s\": expected HOST:PORT, [IPv6]:PORT or ADDRESS:PORT", s);
	snprintf(sc->port, sizeof(sc->port), "%u", port);
	return 0;
}

int conf_parse_ship(struct parse *p, json_t *v, struct ag_ship_conf *sc)
{
	json_t *e;
	int ret;

	if ((ret = conf_check_keys(p, WHERE, v, conf_ship_keys)) ||
	    (ret = parse_address(p, json_object_get(v, "address"), sc)))
		return ret;
	/* Fail closed: a collector is never trusted without its CA. */
	if (!(e = json_object_get(v, "ca_file")))
		return conf_bad(p, WHERE,
				"expected \"ca_file\": the CA of the collector's "
				"certificate");
	if ((ret = conf_path(p, WHERE ".ca_file", e, sc->ca_file)) ||
	    (ret = conf_get_optional(p, WHERE, v, "server_name", sc->server_name,
				     sizeof(sc->server_name))))
		return ret;
	if (!json_object_get(v, "cert_file") != !json_object_get(v, "key_file"))
		return conf_bad(p, WHERE, "\"cert_file\" and \"key_file\" go together");
	if ((e = json_object_get(v, "cert_file")) &&
	    ((ret = conf_path(p, WHERE ".cert_file", e, sc->cert_file)) ||
	     (ret = conf_path(p, WHERE ".key_file", json_object_get(v, "key_file"), sc->key_file))))
		return ret;
	return 0;
}
