// SPDX-License-Identifier: GPL-2.0
/*
 * agentgatectl keys jwks|rotate|mint: offline work on the instance's JWT key
 * directories (layout in lib/jwt.h), without a running daemon.  The
 * instance keeps one directory per algorithm, <state-dir>/keys/<alg>;
 * agentgated re-reads it within seconds of a rotation.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sys/stat.h>
#include <jansson.h>

#include "cli.h"
#include "jwt.h"

static const char usage_jwks[] =
    "usage: agentgatectl keys jwks [--dir DIR]\n"
    "Print the JWKS tool servers verify minted assertions with: the current key and every\n"
    "retired key that may still have signed a valid token (retired less than 300 s ago),\n"
    "of every algorithm the instance signs with (or of the key directory DIR).\n";

static const char usage_rotate[] =
    "usage: agentgatectl keys rotate [--dir DIR] [--alg EdDSA|ES256]\n"
    "Create a new signing key (default EdDSA) in the instance's key directory for that\n"
    "algorithm (or DIR, created 0700 if missing), make it current, retire the previous one\n"
    "and delete keys retired more than 300 s ago.  Prints the new key id.\n";

static const char usage_mint[] =
    "usage: agentgatectl keys mint [--dir DIR] [--alg EdDSA|ES256] --aud AUD --sub OPERATOR\n"
    "         --agent NAME [--delegation ROOT,...,PARENT] [--ttl SECONDS] [--iss ISSUER]\n"
    "         [--tool TOOL] [--session ID]\n"
    "Print a JWT signed with the current key, for testing a tool server.  The act claim is\n"
    "NAME, with the delegation chain (root first) nested inside it.  --ttl is 1..300\n"
    "(default 300); --iss defaults to \"agentgate\".\n";

enum {
	O_DIR = 1 << 0,
	O_ALG = 1 << 1,
	O_AUD = 1 << 2,
	O_SUB = 1 << 3,
	O_AGENT = 1 << 4,
	O_DELEGATION = 1 << 5,
	O_TTL = 1 << 6,
	O_ISS = 1 << 7,
	O_TOOL = 1 << 8,
	O_SESSION = 1 << 9,
};

struct opts {
	const char *dir, *alg, *aud, *sub, *agent, *delegation, *ttl, *iss, *tool, *session;
};

/* Returns 0 to go on, 1 after --help, 2 on a usage error; allowed is a mask of O_*. */
static int parse_opts(const char *cmd, const char *usage, int allowed, int argc, char **argv,
		      struct opts *o)
{
	static const struct cli_opt opts[] = {
		CLI_VAL("dir"),	  CLI_VAL("alg"),	 CLI_VAL("aud"), CLI_VAL("sub"),
		CLI_VAL("agent"), CLI_VAL("delegation"), CLI_VAL("ttl"), CLI_VAL("iss"),
		CLI_VAL("tool"),  CLI_VAL("session"),	 CLI_END,
	};
	char label[32];
	struct cli_spec sp = {
		.cmd = label, .usage = usage, .opts = opts, .allowed = (uint32_t)allowed ?: CLI_NONE
	};
	struct cli_args a;
	const char **slots = a.val;
	int r;

	snprintf(label, sizeof(label), "agentgatectl keys %s", cmd);
	if ((r = cli_parse(&sp, argc, argv, &a)))
		return r;
	cli_args_free(&a);
	*o = (struct opts){ slots[0], slots[1], slots[2], slots[3], slots[4],
			    slots[5], slots[6], slots[7], slots[8], slots[9] };
	if (a.ind < argc) {
		fprintf(stderr, "keys %s: unexpected argument \"%s\"; see --help\n", cmd,
			argv[a.ind]);
		return 2;
	}
	return 0;
}

/* --dir, or the instance's directory for --alg (default EdDSA). */
static int key_dir(const char *cmd, const struct ag_instance *in, const struct opts *o, char *out,
		   size_t cap, enum ag_jwt_alg *alg)
{
	char parent[PATH_MAX];
	struct ag_err err;

	*alg = AG_JWT_EDDSA;
	if (o->alg && ag_jwt_alg_parse(o->alg, alg, &err)) {
		fprintf(stderr, "keys %s: --alg: %s\n", cmd, err.msg);
		return AG_EXIT_USAGE;
	}
	if (o->dir) {
		snprintf(out, cap, "%s", o->dir);
		return 0;
	}
	snprintf(parent, sizeof(parent), "%s/keys", in->state_dir);
	if (mkdir(parent, 0700) && errno != EEXIST)
		return cli_fail("keys %s: %s: %s", cmd, parent, strerror(errno));
	if (ag_keyring_dir(in->state_dir, *alg, out, cap, &err))
		return cli_fail("keys %s: %s", cmd, err.msg);
	return 0;
}

/* The keys of every algorithm directory of the instance, in one JWKS. */
static int instance_jwks(const struct ag_instance *in, char **out, struct ag_err *err)
{
	json_t *all = json_pack("{s:[]}", "keys");
	int found = 0, r = 0;

	if (!all)
		return ag_errf(err, ENOMEM, "out of memory");
	for (int alg = AG_JWT_EDDSA; alg <= AG_JWT_ES256 && !r; alg++) {
		char dir[PATH_MAX], *text = NULL;
		struct ag_keyring *kr;
		json_t *one;

		if ((r = ag_keyring_dir(in->state_dir, alg, dir, sizeof(dir), err)))
			break;
		if ((r = ag_keyring_open(dir, (int64_t)time(NULL), &kr, err)) == -ENOENT) {
			r = 0;
			continue;
		}
		if (r)
			break;
		r = ag_keyring_jwks(kr, &text, err);
		ag_keyring_free(kr);
		if (r)
			break;
		one = json_loads(text, 0, NULL);
		free(text);
		if (!one ||
		    json_array_extend(json_object_get(all, "keys"), json_object_get(one, "keys"))) {
			json_decref(one);
			r = ag_errf(err, ENOMEM, "out of memory");
			break;
		}
		json_decref(one);
		found++;
	}
	if (!r && !found)
		r = ag_errf(err, ENOENT,
			    "instance %s has no signing keys in %s/keys yet: agentgated makes them "
			    "for tool servers with an \"assertion\" credential, or run keys rotate",
			    in->name, in->state_dir);
	if (!r && !(*out = json_dumps(all, JSON_COMPACT | JSON_SORT_KEYS)))
		r = ag_errf(err, ENOMEM, "out of memory");
	json_decref(all);
	return r;
}

static int cmd_jwks(struct ag_cli *cli, int argc, char **argv)
{
	const struct ag_instance *in = &cli->inst;
	struct ag_keyring *kr;
	struct ag_err err;
	struct opts o;
	char *jwks;
	int r = parse_opts("jwks", usage_jwks, O_DIR, argc, argv, &o);

	if (r)
		return r == 1 ? 0 : AG_EXIT_USAGE;
	if (!o.dir) {
		r = instance_jwks(in, &jwks, &err);
	} else if (!(r = ag_keyring_open(o.dir, (int64_t)time(NULL), &kr, &err))) {
		r = ag_keyring_jwks(kr, &jwks, &err);
		ag_keyring_free(kr);
	}
	if (r)
		return cli_fail("%s", err.msg);
	puts(jwks);
	free(jwks);
	return 0;
}

static int cmd_rotate(struct ag_cli *cli, int argc, char **argv)
{
	const struct ag_instance *in = &cli->inst;
	char kid[AG_JWT_KID_LEN + 1], dir[PATH_MAX];
	enum ag_jwt_alg alg;
	struct ag_err err;
	struct opts o;
	int r = parse_opts("rotate", usage_rotate, O_DIR | O_ALG, argc, argv, &o);

	if (r)
		return r == 1 ? 0 : AG_EXIT_USAGE;
	if ((r = key_dir("rotate", in, &o, dir, sizeof(dir), &alg)))
		return r;
	if (ag_keyring_rotate(dir, alg, (int64_t)time(NULL), kid, &err))
		return cli_fail("%s", err.msg);
	puts(kid);
	return 0;
}

/* Splits "a,b" into chain[0..], leaving room for the calling agent last. */
static int split_delegation(char *list, const char **chain, size_t *n)
{
	char *save = NULL;

	*n = 0;
	if (!list)
		return 0;
	if (!*list || list[0] == ',' || list[strlen(list) - 1] == ',' || strstr(list, ",,"))
		return cli_fail("keys mint: --delegation: an agent name is empty");
	for (char *p = strtok_r(list, ",", &save); p; p = strtok_r(NULL, ",", &save)) {
		if (*n >= AG_JWT_MAX_CHAIN - 1)
			return cli_fail("keys mint: --delegation: more than %d agents",
					AG_JWT_MAX_CHAIN - 1);
		chain[(*n)++] = p;
	}
	return 0;
}

static int cmd_mint(struct ag_cli *cli, int argc, char **argv)
{
	const struct ag_instance *in = &cli->inst;
	const char *chain[AG_JWT_MAX_CHAIN];
	char dir[PATH_MAX];
	enum ag_jwt_alg alg;
	struct ag_jwt_claims c = { .iss = "agentgate", .ttl = AG_JWT_MAX_TTL };
	struct ag_keyring *kr;
	char *list = NULL, *tok = NULL;
	struct ag_err err;
	struct opts o;
	int r = parse_opts("mint", usage_mint,
			   O_DIR | O_ALG | O_AUD | O_SUB | O_AGENT | O_DELEGATION | O_TTL | O_ISS |
			       O_TOOL | O_SESSION,
			   argc, argv, &o);

	if (r)
		return r == 1 ? 0 : AG_EXIT_USAGE;
	if ((r = key_dir("mint", in, &o, dir, sizeof(dir), &alg)))
		return r;
	if (!o.aud || !o.sub || !o.agent) {
		fprintf(stderr, "keys mint: --aud, --sub and --agent are required; see --help\n");
		return AG_EXIT_USAGE;
	}
	if (o.ttl && cli_parse_u32("keys mint", "ttl", o.ttl, AG_JWT_MAX_TTL, &c.ttl))
		return AG_EXIT_USAGE;
	if (o.delegation) {
		list = strdup(o.delegation);
		if (!list)
			return cli_fail("keys mint: out of memory");
	}
	r = split_delegation(list, chain, &c.chain_len);
	if (r) {
		free(list);
		return AG_EXIT_USAGE;
	}
	chain[c.chain_len++] = o.agent;
	c.chain = chain;
	c.aud = o.aud;
	c.sub = o.sub;
	c.iss = o.iss ? o.iss : c.iss;
	c.tool = o.tool;
	c.session = o.session;
	c.iat = (int64_t)time(NULL);
	r = ag_keyring_open(dir, c.iat, &kr, &err);
	if (!r) {
		r = ag_jwt_mint(ag_keyring_current(kr), &c, &tok, &err);
		ag_keyring_free(kr);
	}
	free(list);
	if (r)
		return cli_fail("%s", err.msg);
	puts(tok);
	free(tok);
	return 0;
}

static const struct cli_cmd subcommands[] = {
	{ "jwks", cmd_jwks, usage_jwks },
	{ "rotate", cmd_rotate, usage_rotate },
	{ "mint", cmd_mint, usage_mint },
};

const struct cli_table cli_keys = CLI_TABLE("keys", subcommands, NULL);
