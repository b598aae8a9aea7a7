// SPDX-License-Identifier: GPL-2.0
/*
 * agentgatectl tools [diff|approve|lock]: the tool inventory (lib/inventory.h).
 * Listing, diff and lock read <state dir>/tools offline: the daemon replaces
 * those files atomically, so a reader never sees half of one.  approve goes
 * through the running daemon, which holds the inventory in memory and
 * checks the lock file's pins; without a daemon it changes the files itself
 * under the directory's flock.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <jansson.h>

#include "cli.h"
#include "ctl.h"
#include "inventory.h"

static const char usage_list[] = "usage: agentgatectl tools [--json]\n";
static const char usage_diff[] = "usage: agentgatectl tools diff SERVER/TOOL\n";
static const char usage_approve[] =
    "usage: agentgatectl tools approve SERVER/TOOL [--by NAME] [--hash HASH]\n";
static const char usage_lock[] = "usage: agentgatectl tools lock\n";

#define LOCK_HINT "agentgatectl tools lock > policies/tools.lock"

enum {
	O_JSON = 1 << 0,
	O_BY = 1 << 1,
	O_HASH = 1 << 2,
};

struct opts {
	bool json;
	const char *by, *hash;
	char *server, *tool; /* into argv, split at the first '/' */
};

/* Returns 0 to go on, 1 after --help, 2 on a usage error.  SERVER/TOOL is
 * required when want_tool, refused otherwise; allowed is a mask of O_*. */
static int parse_opts(const char *cmd, int allowed, bool want_tool, int argc, char **argv,
		      struct opts *o)
{
	static const struct cli_opt opts[] = {
		CLI_FLAG("json"),
		CLI_VAL("by"),
		CLI_VAL("hash"),
		CLI_END,
	};
	char label[64];
	struct cli_spec sp = { .cmd = label,
			       .table = &cli_tools,
			       .opts = opts,
			       .allowed = (uint32_t)allowed ?: CLI_NONE };
	struct cli_args a;
	const char **slots = a.val;
	int r;

	snprintf(label, sizeof(label), "agentgatectl %s", cmd);
	memset(o, 0, sizeof(*o));
	if ((r = cli_parse(&sp, argc, argv, &a)))
		return r;
	cli_args_free(&a);
	o->json = slots[0] != NULL;
	o->by = slots[1];
	o->hash = slots[2];
	if (!want_tool && a.ind < argc) {
		fprintf(stderr, "agentgatectl %s: unexpected argument \"%s\"; see --help\n", cmd,
			argv[a.ind]);
		return 2;
	}
	if (want_tool && argc - a.ind != 1) {
		fprintf(stderr, "agentgatectl %s: expected one SERVER/TOOL; see --help\n", cmd);
		return 2;
	}
	if (want_tool) {
		/* Server names have no '/'; tool names may. */
		o->server = argv[a.ind];
		o->tool = strchr(o->server, '/');
		if (!o->tool || o->tool == o->server || !o->tool[1]) {
			fprintf(stderr, "agentgatectl %s: %s: expected SERVER/TOOL\n", cmd,
				argv[a.ind]);
			return 2;
		}
		*o->tool++ = '\0';
	}
	return 0;
}

static int inv_dir(const struct ag_cli *c, char *buf, size_t len)
{
	if ((size_t)snprintf(buf, len, "%s/tools", c->inst.state_dir) >= len)
		return cli_fail("tools: %s: state directory name too long", c->inst.state_dir);
	return 0;
}

/* A name from a tool server, safe for a terminal. */
static const char *printable(const char *s, char *buf, size_t len)
{
	size_t i;

	for (i = 0; s[i] && i + 1 < len; i++)
		buf[i] = (unsigned char)s[i] < 0x20 || s[i] == 0x7f ? '?' : s[i];
	buf[i] = '\0';
	return buf;
}

static void print_table(const json_t *all)
{
	char sb[AG_INV_SERVER_MAX + 1], tb[AG_INV_TOOL_NAME_MAX + 1];
	const char *server, *tool;
	json_t *tools, *t;
	bool any = false;

	json_object_foreach((json_t *)all, server, tools)
	{
		json_object_foreach(tools, tool, t)
		{
			const char *hash = json_string_value(json_object_get(t, "hash"));
			const char *offered = json_string_value(json_object_get(t, "offered_hash"));

			if (!any)
				printf("%-16s %-32s %-8s %s\n", "SERVER", "TOOL", "STATE", "HASH");
			any = true;
			printf("%-16s %-32s %-8s %-12.12s", printable(server, sb, sizeof(sb)),
			       printable(tool, tb, sizeof(tb)),
			       json_string_value(json_object_get(t, "state")), hash ? hash : "-");
			if (offered)
				printf("  offered %.12s", offered);
			putchar('\n');
		}
	}
	if (!any)
		printf("no tool recorded yet\n");
}

static int tools_list(struct ag_cli *c, int argc, char **argv)
{
	struct ag_inventory *inv;
	struct ag_err err;
	char dir[AG_PATH_MAX + 8];
	struct opts o;
	json_t *all;
	int r = parse_opts("tools", O_JSON, false, argc, argv, &o);

	if (r)
		return r == 1 ? 0 : AG_EXIT_USAGE;
	if (inv_dir(c, dir, sizeof(dir)))
		return AG_EXIT_FAIL;
	if (ag_inventory_open(dir, &inv, &err))
		return cli_fail("tools: %s", err.msg);
	all = ag_inventory_json(inv);
	ag_inventory_free(inv);
	if (!all)
		return cli_fail("tools: out of memory");
	if (o.json) {
		json_dumpf(all, stdout, JSON_COMPACT);
		putchar('\n');
	} else {
		print_table(all);
	}
	json_decref(all);
	return 0;
}

/* Prints the diff of SERVER/TOOL; offered receives the hash it showed. */
static int print_diff(const char *dir, const struct opts *o, char offered[AG_TOOLHASH_HEX_LEN + 1])
{
	char trusted[AG_TOOLHASH_HEX_LEN + 1], *out;
	struct ag_inventory *inv;
	struct ag_err err;
	int r;

	if (ag_inventory_open(dir, &inv, &err))
		return cli_fail("tools: %s", err.msg);
	r = ag_inventory_diff(inv, o->server, o->tool, &out, &err);
	if (!r)
		ag_inventory_hashes(inv, o->server, o->tool, trusted, offered);
	ag_inventory_free(inv);
	if (r)
		return cli_fail("tools: %s", err.msg);
	fputs(out, stdout);
	free(out);
	fflush(stdout);
	return 0;
}

static int tools_diff(struct ag_cli *c, int argc, char **argv)
{
	char dir[AG_PATH_MAX + 8], offered[AG_TOOLHASH_HEX_LEN + 1];
	struct opts o;
	int r = parse_opts("tools diff", 0, true, argc, argv, &o);

	if (r)
		return r == 1 ? 0 : AG_EXIT_USAGE;
	if (inv_dir(c, dir, sizeof(dir)))
		return AG_EXIT_FAIL;
	return print_diff(dir, &o, offered);
}

/* Without a daemon: the files, under the flock a daemon would take too. */
static int approve_offline(const char *dir, const struct opts *o, const char *hash, const char *by)
{
	struct ag_inventory *inv;
	bool pin_overridden;
	struct ag_err err;
	int r;

	if (ag_inventory_open_locked(dir, &inv, &err))
		return cli_fail("tools approve: %s", err.msg);
	r = ag_inventory_approve(inv, o->server, o->tool, hash, by, (int64_t)time(NULL),
				 &pin_overridden, &err);
	ag_inventory_free(inv);
	if (r)
		return cli_fail("tools approve: %s", err.msg);
	printf("approved %s/%s: trusted hash %.12s by %s (daemon not running)\n", o->server,
	       o->tool, hash, by);
	fprintf(stderr,
		"agentgatectl: note: the lock file was not consulted; if it pins %s/%s, "
		"the daemon blocks the tool again until you run `" LOCK_HINT "`\n",
		o->server, o->tool);
	return 0;
}

static int tools_approve(struct ag_cli *c, int argc, char **argv)
{
	char dir[AG_PATH_MAX + 8], offered[AG_TOOLHASH_HEX_LEN + 1];
	json_t *req, *resp = NULL;
	struct ag_err err;
	const char *by, *hash;
	struct opts o;
	int r = parse_opts("tools approve", O_BY | O_HASH, true, argc, argv, &o);

	if (r)
		return r == 1 ? 0 : AG_EXIT_USAGE;
	if (inv_dir(c, dir, sizeof(dir)))
		return AG_EXIT_FAIL;
	/* What is approved is what the operator just saw, unless told otherwise. */
	if ((r = print_diff(dir, &o, offered)))
		return r;
	by = o.by ? o.by : cli_default_approver();
	hash = o.hash ? o.hash : offered;
	req = json_pack("{s:s,s:s,s:s,s:s,s:s}", "cmd", "tools_approve", "server", o.server, "tool",
			o.tool, "hash", hash, "by", by);
	if (!req)
		return cli_fail("tools approve: out of memory");
	r = ag_ctl_call(&c->inst, req, &resp, &err);
	json_decref(req);
	if (r == -ENOENT || r == -ECONNREFUSED)
		return approve_offline(dir, &o, hash, by);
	if (r)
		return cli_fail("tools approve %s/%s: %s", o.server, o.tool, err.msg);
	if (json_is_string(json_object_get(resp, "hash")))
		hash = json_string_value(json_object_get(resp, "hash"));
	printf("approved %s/%s: trusted hash %.12s by %s\n", o.server, o.tool, hash, by);
	if (json_is_true(json_object_get(resp, "pin_overridden")))
		fprintf(stderr,
			"agentgatectl: warning: the lock file pinned %s/%s to another definition "
			"and pins it again at the next start; run `" LOCK_HINT "`\n",
			o.server, o.tool);
	json_decref(resp);
	return 0;
}

static int tools_lock(struct ag_cli *c, int argc, char **argv)
{
	struct ag_inventory *inv;
	char dir[AG_PATH_MAX + 8], *out;
	struct ag_err err;
	struct opts o;
	int r = parse_opts("tools lock", 0, false, argc, argv, &o);

	if (r)
		return r == 1 ? 0 : AG_EXIT_USAGE;
	if (inv_dir(c, dir, sizeof(dir)))
		return AG_EXIT_FAIL;
	if (ag_inventory_open(dir, &inv, &err))
		return cli_fail("tools lock: %s", err.msg);
	r = ag_inventory_lock_export(inv, &out, &err);
	ag_inventory_free(inv);
	if (r)
		return cli_fail("tools lock: %s", err.msg);
	fputs(out, stdout);
	free(out);
	return 0;
}

/* Without a subcommand: the list. */
static const struct cli_cmd subcommands[] = {
	{ NULL, tools_list, usage_list },
	{ "diff", tools_diff, usage_diff },
	{ "approve", tools_approve, usage_approve },
	{ "lock", tools_lock, usage_lock },
};

const struct cli_table cli_tools = CLI_TABLE(
    "tools", subcommands,
    "Every tool the governed servers offered, with its state: trusted, pending (waits for\n"
    "a first approval) or blocked (the server changed a trusted definition).\n"
    "  diff     the trusted against the offered definition\n"
    "  approve  print the diff, then trust the offered definition; HASH (default: the one\n"
    "           just printed) must still be the offered one.  NAME, recorded in the audit\n"
    "           log, defaults to the invoking user (SUDO_USER when run through sudo)\n"
    "  lock     print a lock file pinning every trusted hash, for policies/tools.lock\n"
    "The inventory is read from the instance's state directory (agentgatectl --state-dir).\n");
