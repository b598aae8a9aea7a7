// SPDX-License-Identifier: GPL-2.0
/*
 * agentgatectl audit: offline tools over audit log files.  Nothing here talks
 * to the daemon, so an auditor can verify a copied log on another machine.
 *
 *	audit verify [--pubkey FILE] [--witness LOG]... [--allow-unsigned-tail] LOG...
 *	audit tail [-n N] [-f] LOG
 *	audit query [filters] [--json] LOG...
 *	audit pubkey --key FILE [--name NAME]
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "audit.h"
#include "buf.h"
#include "cli.h"

#define PROG "agentgatectl audit"
#define TAIL_MAX 100000

static const char usage_verify[] =
    "usage: " PROG " verify [--pubkey FILE] [--witness LOG]... [--allow-unsigned-tail]\n"
    "                       [--collected] LOG...\n"
    "Verifies LOG, or the files LOG... in order as one rotated log; a single\n"
    "LOG also picks up its rotated files LOG.1, LOG.2, ...\n"
    "\n"
    "  --pubkey FILE          PEM public key or C2SP verifier key; without it\n"
    "                         checkpoint signatures are not checked\n"
    "  --witness LOG          compare with another copy's signed checkpoints\n"
    "                         to detect forks and truncation (repeatable)\n"
    "  --allow-unsigned-tail  accept records after the last checkpoint, or a\n"
    "                         log without one (a live log, a killed writer),\n"
    "                         if they fit in one checkpoint interval (see\n"
    "                         agentgatectl(8)); they are still counted\n"
    "  --collected            LOG is a collector's file of one host and instance\n"
    "                         (audit shipping): a record shipped twice, byte for\n"
    "                         byte the same, is skipped and counted\n"
    "\n"
    "Exit status: 0 clean, 1 tampering found, 2 usage or read error.\n";

static const char usage_tail[] = "usage: " PROG " tail [-n N] [-f] LOG\n"
				 "Prints the last N records (default 10) of LOG and its rotated\n"
				 "files; -f keeps printing records as they are appended.\n";

static const char usage_query[] =
    "usage: " PROG " query [--agent A] [--operator O] [--tool T] [--decision D]\n"
    "                      [--kind K] [--since TS] [--until TS] [--json] LOG...\n"
    "Prints the records that match every filter given.  TS is RFC 3339 UTC\n"
    "(2026-11-22T04:05:06Z) or a date (2026-11-22); --since is inclusive,\n"
    "--until exclusive.  --json prints the records' exact lines.\n";

static const char usage_pubkey[] =
    "usage: " PROG " pubkey --key FILE [--name NAME]\n"
    "Prints the public half of the audit key FILE as PEM and as a C2SP\n"
    "verifier key for the key name NAME (the log's origin, default " AG_AUDIT_DEFAULT_ORIGIN ").\n";

static int fail(const char *cmd, const char *msg, const char *hint)
{
	fprintf(stderr, PROG " %s: %s%s%s\n", cmd, msg, hint ? "; " : "", hint ? hint : "");
	return 2;
}

static int bad_operands(const char *cmd, const char *want)
{
	fprintf(stderr, PROG " %s: %s; run '" PROG " %s --help'\n", cmd, want, cmd);
	return 2;
}

/* A single LOG stands for its rotated series; several are taken as given. */
static int log_files(const char *cmd, int n, char **args, char ***paths, size_t *np)
{
	struct ag_err err;

	if (n == 1) {
		if (ag_audit_series(args[0], paths, np, &err))
			return fail(cmd, err.msg, "check the log path");
		return 0;
	}
	*paths = calloc((size_t)n, sizeof(**paths));
	if (!*paths)
		return fail(cmd, "out of memory", NULL);
	for (int i = 0; i < n; i++) {
		(*paths)[i] = strdup(args[i]);
		if (!(*paths)[i]) {
			ag_audit_series_free(*paths, (size_t)i);
			return fail(cmd, "out of memory", NULL);
		}
	}
	*np = (size_t)n;
	return 0;
}

static int cmd_verify(struct ag_cli *cli, int argc, char **argv)
{
	static const struct cli_opt opts[] = {
		CLI_VAL("pubkey"),
		{ .name = "witness", .arg = true, .many = true },
		CLI_FLAG("allow-unsigned-tail"),
		CLI_FLAG("collected"),
		CLI_END,
	};
	static const struct cli_spec sp = {
		.cmd = PROG " verify", .usage = usage_verify, .opts = opts, .stop = true
	};
	struct ag_audit_verify_opts o = { 0 };
	struct ag_audit_verify_result r;
	struct ag_audit_key *key = NULL;
	struct ag_err err;
	const char *pubkey;
	char **wit = NULL, **paths = NULL;
	size_t nwit = 0, wit_cap = 0, npaths = 0;
	struct cli_args a;
	int ret = cli_parse(&sp, argc, argv, &a);

	if (ret)
		return ret == 1 ? 0 : 2;
	ret = 2;
	pubkey = a.val[0];
	o.allow_unsigned_tail = a.val[2] != NULL;
	o.collected = a.val[3] != NULL;
	for (size_t i = 0; i < a.n_list; i++) {
		char **w = NULL;
		size_t nw = 0;

		if (ag_audit_series(a.list[i], &w, &nw, &err)) {
			ret = fail("verify", err.msg, "check the --witness path");
			goto out;
		}
		if (ag_grow(&wit, &wit_cap, nwit + nw, sizeof(*wit), 8, 0)) {
			ag_audit_series_free(w, nw);
			ret = fail("verify", "out of memory", NULL);
			goto out;
		}
		memcpy(wit + nwit, w, nw * sizeof(*w));
		nwit += nw;
		free(w);
	}
	if (a.ind >= argc) {
		ret = bad_operands("verify", "give at least one LOG file");
		goto out;
	}
	if (pubkey && ag_audit_pubkey_load(pubkey, &key, &err)) {
		ret = fail("verify", err.msg, "pass the key printed by '" PROG " pubkey'");
		goto out;
	}
	if (!pubkey)
		fprintf(stderr, PROG " verify: warning: no --pubkey, checkpoint signatures are "
				     "not checked\n");
	if (log_files("verify", argc - a.ind, argv + a.ind, &paths, &npaths))
		goto out;
	o.pubkey = key;
	o.witness = (const char *const *)wit;
	o.nwitness = nwit;
	if (!ag_audit_verify((const char *const *)paths, npaths, &o, &r)) {
		printf("OK: %s\n", r.reason);
		ret = 0;
	} else if (r.finding == AG_AUDIT_IO) {
		ret = fail("verify", r.reason, "check the log paths and permissions");
	} else {
		printf("FAIL: %s at seq %" PRIu64 ": %s\n", ag_audit_finding_name(r.finding), r.seq,
		       r.reason);
		ret = 1;
	}
out:
	cli_args_free(&a);
	ag_audit_key_free(key);
	ag_audit_series_free(paths, npaths);
	ag_audit_series_free(wit, nwit);
	return ret;
}

/*
 * Follows the series from file path at offset off, as the audit shipper
 * does (lib/audit_tail.c: whole lines, on to base.N+1 once it appears),
 * until interrupted or the log turns out damaged.
 */
static int tail_follow(const char *base, const char *path, uint64_t off)
{
	uint64_t seg = strcmp(path, base) ? strtoull(path + strlen(base) + 1, NULL, 10) : 0;
	struct ag_audit_tail t;
	struct ag_err err;
	const char *line;
	size_t len;
	int ret;

	if (ag_audit_tail_init(&t, base))
		return fail("tail", "out of memory", NULL);
	ret = ag_audit_tail_seek(&t, seg, off, 0, &err);
	while (ret >= 0) {
		uint64_t at_seg, at_off;

		ret = ag_audit_tail_next(&t, &line, &len, &at_seg, &at_off, &err);
		if (ret > 0) {
			printf("%.*s\n", (int)len, line);
		} else if (!ret) {
			fflush(stdout);
			usleep(200000);
		}
	}
	ag_audit_tail_fini(&t);
	return fail("tail", err.msg, "the log is damaged; run '" PROG " verify'");
}

static int cmd_tail(struct ag_cli *cli, int argc, char **argv)
{
	static const struct cli_opt opts[] = {
		{ .letter = 'n', .arg = true },
		{ .letter = 'f' },
		CLI_END,
	};
	static const struct cli_spec sp = {
		.cmd = PROG " tail", .usage = usage_tail, .opts = opts, .stop = true
	};
	struct ag_err err;
	char **paths = NULL, **ring = NULL, *end;
	size_t np = 0, n = 10, count = 0;
	uint64_t off = 0;
	struct cli_args a;
	bool follow;
	int ret = cli_parse(&sp, argc, argv, &a);

	if (ret)
		return ret == 1 ? 0 : 2;
	cli_args_free(&a);
	ret = 2;
	follow = a.val[1] != NULL;
	if (a.val[0]) {
		errno = 0;
		n = strtoul(a.val[0], &end, 10);
		if (*end || errno || !*a.val[0] || n > TAIL_MAX)
			return fail("tail", "-n wants a number of records up to 100000", NULL);
	}
	if (a.ind + 1 != argc)
		return bad_operands("tail", "give exactly one LOG file");
	if (ag_audit_series(argv[a.ind], &paths, &np, &err))
		return fail("tail", err.msg, "check the log path");
	ring = calloc(n ? n : 1, sizeof(*ring));
	if (!ring) {
		ret = fail("tail", "out of memory", NULL);
		goto out;
	}
	for (size_t i = 0; i < np; i++) {
		struct ag_audit_reader *r;
		const char *line;
		size_t len;
		bool torn;

		if (ag_audit_reader_open(paths[i], &r, &err)) {
			ret = fail("tail", err.msg, "check the log path and permissions");
			goto out;
		}
		while ((ret = ag_audit_reader_next(r, &line, &len, &torn, &err)) == 1 && !torn) {
			if (!n)
				continue;
			free(ring[count % n]);
			ring[count % n] = strndup(line, len);
			count++;
		}
		off = ag_audit_reader_offset(r) - (ret == 1 ? len : 0);
		ag_audit_reader_close(r);
		if (ret < 0) {
			ret = fail("tail", err.msg, "the log is damaged; run '" PROG " verify'");
			goto out;
		}
	}
	for (size_t i = count > n ? count - n : 0; i < count; i++)
		if (ring[i % n])
			printf("%s\n", ring[i % n]);
	fflush(stdout);
	ret = follow ? tail_follow(argv[a.ind], paths[np - 1], off) : 0;
out:
	for (size_t i = 0; ring && i < n; i++)
		free(ring[i]);
	free(ring);
	ag_audit_series_free(paths, np);
	return ret;
}

struct query {
	const char *agent, *operator, * tool, *decision, *kind;
	bool since_set, until_set, json;
	struct timespec since, until;
};

static int ts_cmp(const struct timespec *a, const struct timespec *b)
{
	if (a->tv_sec != b->tv_sec)
		return a->tv_sec < b->tv_sec ? -1 : 1;
	return (a->tv_nsec > b->tv_nsec) - (a->tv_nsec < b->tv_nsec);
}

/* A member that is a string, or an object whose "name" is one. */
static const char *name_of(json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);

	return json_is_object(v) ? json_string_value(json_object_get(v, "name"))
				 : json_string_value(v);
}

static bool str_match(const char *want, const char *have)
{
	return !want || (have && !strcmp(want, have));
}

static bool query_match(const struct query *q, json_t *obj)
{
	struct timespec ts;
	const char *sts = json_string_value(json_object_get(obj, "ts"));

	if (!str_match(q->agent, name_of(obj, "agent")) ||
	    !str_match(q->operator, name_of(obj, "operator")) ||
	    !str_match(q->tool, name_of(obj, "tool")) ||
	    !str_match(q->decision, name_of(obj, "decision")) ||
	    !str_match(q->kind, name_of(obj, "kind")))
		return false;
	if (q->since_set || q->until_set) {
		if (!sts || ag_audit_parse_ts(sts, &ts))
			return false;
		if ((q->since_set && ts_cmp(&ts, &q->since) < 0) ||
		    (q->until_set && ts_cmp(&ts, &q->until) >= 0))
			return false;
	}
	return true;
}

/*
 * Values an agent chose (tool names, destinations) reach the operator's
 * terminal: printable ASCII only, the rest escaped, so no record can carry
 * terminal control sequences.
 */
static void print_field(const char *key, const char *v)
{
	printf(" %s=", key);
	for (; *v; v++) {
		unsigned char c = *v;

		if (c >= 0x21 && c < 0x7f && c != '\\')
			putchar(c);
		else
			printf("\\x%02x", c);
	}
}

static void query_print(json_t *obj)
{
	static const char *const keys[] = { "agent",	"operator",    "server", "tool",
					    "resource", "prompt",      "route",	 "decision",
					    "hook",	"dst",	       "result", "reason",
					    "flag",	"destination", "commit" };

	printf("%s %" JSON_INTEGER_FORMAT " %s", json_string_value(json_object_get(obj, "ts")),
	       json_integer_value(json_object_get(obj, "seq")),
	       json_string_value(json_object_get(obj, "kind")));
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		const char *v = name_of(obj, keys[i]);

		if (v && *v)
			print_field(keys[i], v);
	}
	putchar('\n');
}

static int cmd_query(struct ag_cli *cli, int argc, char **argv)
{
	enum { Q_AGENT, Q_OPERATOR, Q_TOOL, Q_DECISION, Q_KIND, Q_SINCE, Q_UNTIL, Q_JSON };
	static const struct cli_opt opts[] = {
		[Q_AGENT] = CLI_VAL("agent"),
		[Q_OPERATOR] = CLI_VAL("operator"),
		[Q_TOOL] = CLI_VAL("tool"),
		[Q_DECISION] = CLI_VAL("decision"),
		[Q_KIND] = CLI_VAL("kind"),
		[Q_SINCE] = CLI_VAL("since"),
		[Q_UNTIL] = CLI_VAL("until"),
		[Q_JSON] = CLI_FLAG("json"),
		CLI_END,
	};
	static const struct cli_spec sp = {
		.cmd = PROG " query", .usage = usage_query, .opts = opts, .stop = true
	};
	struct query q = { 0 };
	struct ag_err err;
	char **paths = NULL;
	size_t np = 0;
	struct cli_args a;
	int ret = cli_parse(&sp, argc, argv, &a);

	if (ret)
		return ret == 1 ? 0 : 2;
	cli_args_free(&a);
	q.agent = a.val[Q_AGENT];
	q.operator= a.val[Q_OPERATOR];
	q.tool = a.val[Q_TOOL];
	q.decision = a.val[Q_DECISION];
	q.kind = a.val[Q_KIND];
	q.json = a.val[Q_JSON] != NULL;
	if ((a.val[Q_SINCE] && ag_audit_parse_ts(a.val[Q_SINCE], &q.since)) ||
	    (a.val[Q_UNTIL] && ag_audit_parse_ts(a.val[Q_UNTIL], &q.until)))
		return fail("query", "--since/--until want RFC 3339 UTC",
			    "e.g. 2026-11-22T04:05:06Z or 2026-11-22");
	q.since_set = a.val[Q_SINCE] != NULL;
	q.until_set = a.val[Q_UNTIL] != NULL;
	if (a.ind >= argc)
		return bad_operands("query", "give at least one LOG file");
	if (log_files("query", argc - a.ind, argv + a.ind, &paths, &np))
		return 2;
	for (size_t i = 0; !ret && i < np; i++) {
		struct ag_audit_reader *r;
		const char *line;
		size_t len;
		bool torn;

		if (ag_audit_reader_open(paths[i], &r, &err)) {
			ret = fail("query", err.msg, "check the log path and permissions");
			break;
		}
		while ((ret = ag_audit_reader_next(r, &line, &len, &torn, &err)) == 1) {
			json_t *obj = json_loadb(line, len, 0, NULL);

			if (json_is_object(obj) && query_match(&q, obj)) {
				if (q.json)
					printf("%.*s\n", (int)len, line);
				else
					query_print(obj);
			}
			json_decref(obj);
		}
		ag_audit_reader_close(r);
		if (ret < 0)
			ret = fail("query", err.msg, "the log is damaged; run '" PROG " verify'");
	}
	ag_audit_series_free(paths, np);
	return ret;
}

static int cmd_pubkey(struct ag_cli *cli, int argc, char **argv)
{
	static const struct cli_opt opts[] = { CLI_VAL("key"), CLI_VAL("name"), CLI_END };
	static const struct cli_spec sp = {
		.cmd = PROG " pubkey", .usage = usage_pubkey, .opts = opts, .stop = true
	};
	const char *path, *name;
	struct ag_audit_key *key;
	struct ag_err err;
	char *pem, *vkey;
	struct cli_args a;
	int c = cli_parse(&sp, argc, argv, &a);

	if (c)
		return c == 1 ? 0 : 2;
	cli_args_free(&a);
	path = a.val[0];
	name = a.val[1] ? a.val[1] : AG_AUDIT_DEFAULT_ORIGIN;
	if (!path || a.ind != argc)
		return bad_operands("pubkey", "give --key FILE and no other operand");
	if (ag_audit_key_open(path, false, &key, &err))
		return fail("pubkey", err.msg, NULL);
	pem = ag_audit_key_pem(key);
	vkey = ag_audit_key_vkey(key, name);
	ag_audit_key_free(key);
	if (!pem || !vkey) {
		free(pem);
		free(vkey);
		return fail("pubkey", vkey ? "out of memory" : "invalid key name",
			    "a name has no spaces or '+'");
	}
	printf("%s%s\n", pem, vkey);
	free(pem);
	free(vkey);
	return 0;
}

/* help is the older spelling of --help. */
static const struct cli_cmd subcommands[] = {
	{ "verify", cmd_verify, usage_verify },
	{ "tail", cmd_tail, usage_tail },
	{ "query", cmd_query, usage_query },
	{ "pubkey", cmd_pubkey, usage_pubkey },
	{ "help", NULL, NULL },
};

const struct cli_table cli_audit =
    CLI_TABLE("audit", subcommands,
	      "Offline tools for the tamper-evident audit log (see docs/audit.md).\n"
	      "Run '" PROG " COMMAND --help' for a command's options.\n");
