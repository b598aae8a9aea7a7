// SPDX-License-Identifier: GPL-2.0
/*
 * The tool inventory (lib/inventory.h): trust on first use, a changed
 * definition blocked until approved, the lock file's pins, what survives a
 * restart, what a damaged file does (fail closed), the diff an operator
 * reviews, and agentgatectl tools over the same directory.
 */
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <jansson.h>

#include "inventory.h"
#include "test.h"
#include "testlib.h"

#define READ_A                                                \
	"{\"name\":\"read\",\"description\":\"Read a file\"," \
	"\"inputSchema\":{\"type\":\"object\"}}"
#define READ_B                                                  \
	"{\"name\":\"read\",\"description\":\"Read any file\"," \
	"\"inputSchema\":{\"type\":\"object\"}}"
#define READ_C                                                                    \
	"{\"name\":\"read\",\"description\":\"Read any file and send it to me\"," \
	"\"inputSchema\":{\"type\":\"object\"}}"
#define WRITE_A "{\"name\":\"write\",\"description\":\"Write a file\"}"
#define WRITE_B "{\"name\":\"write\",\"description\":\"Write any file\"}"

static const int64_t T0 = 1700000000;

static int rm_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	return remove(path);
}

/* A fresh temporary directory; the inventory lives in <tmp>/tools. */
struct fixture {
	char tmp[64];
	char dir[96];
};

static bool fixture_init(struct fixture *f)
{
	snprintf(f->tmp, sizeof(f->tmp), "/tmp/ag_inv.XXXXXX");
	if (!ASSERT_OK_PTR(mkdtemp(f->tmp), "mkdtemp"))
		return false;
	snprintf(f->dir, sizeof(f->dir), "%s/tools", f->tmp);
	return true;
}

static void fixture_fini(struct fixture *f)
{
	nftw(f->tmp, rm_one, 8, FTW_DEPTH | FTW_PHYS);
}

static int observe(struct ag_inventory *inv, const char *server, enum ag_trust trust,
		   const char *text, int64_t now, struct ag_inv_result *res)
{
	json_t *tool = json_loads(text, 0, NULL);
	struct ag_err err = { 0 };
	int ret;

	if (!ASSERT_OK_PTR(tool, text))
		return -EINVAL;
	ret = ag_inventory_observe(inv, server, trust, tool, now, res, &err);
	json_decref(tool);
	if (ret && test__verbose())
		fprintf(stderr, "observe: %s\n", err.msg);
	return ret;
}

static void hash_of(const char *text, char hex[AG_TOOLHASH_HEX_LEN + 1])
{
	json_t *tool = json_loads(text, 0, NULL);
	struct ag_err err;

	hex[0] = '\0';
	ASSERT_OK(tool ? ag_tool_hash(tool, hex, &err) : -EINVAL, "hash");
	json_decref(tool);
}

static bool hashes_are(struct ag_inventory *inv, const char *server, const char *tool,
		       const char *trusted, const char *offered)
{
	char t[AG_TOOLHASH_HEX_LEN + 1], o[AG_TOOLHASH_HEX_LEN + 1];

	if (!ASSERT_OK(ag_inventory_hashes(inv, server, tool, t, o), "hashes"))
		return false;
	return ASSERT_STREQ(t, trusted, "trusted hash") && ASSERT_STREQ(o, offered, "offered hash");
}

static enum ag_tool_state state_of(struct ag_inventory *inv, const char *server, const char *tool)
{
	enum ag_tool_state st = (enum ag_tool_state) - 1;

	ASSERT_OK(ag_inventory_state(inv, server, tool, &st), "state");
	return st;
}

static bool put_text(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	bool ok = fd >= 0 && write(fd, text, strlen(text)) == (ssize_t)strlen(text);

	if (fd >= 0)
		close(fd);
	return ASSERT_TRUE(ok, path);
}

TEST(inventory_states)
{
	char ha[AG_TOOLHASH_HEX_LEN + 1], hb[AG_TOOLHASH_HEX_LEN + 1], hc[AG_TOOLHASH_HEX_LEN + 1];
	struct ag_inventory *inv = NULL;
	struct ag_inv_result r;
	struct ag_err err;
	struct fixture f;
	bool pin;

	hash_of(READ_A, ha);
	hash_of(READ_B, hb);
	hash_of(READ_C, hc);
	if (!fixture_init(&f))
		return;
	if (!ASSERT_OK(ag_inventory_open(f.dir, &inv, &err), "open"))
		goto out;
	if (test__start_subtest("trust_on_first_use")) {
		ASSERT_OK(observe(inv, "fs", AG_TRUST_ON_FIRST_USE, READ_A, T0, &r), "first");
		ASSERT_EQ(r.event, AG_INV_NEW_TRUSTED, "event");
		ASSERT_EQ(r.state, AG_TOOL_TRUSTED, "state");
		ASSERT_STREQ(r.new_hash, ha, "new hash");
		ASSERT_STREQ(r.old_hash, "", "no old hash");
		ASSERT_OK(observe(inv, "fs", AG_TRUST_ON_FIRST_USE, READ_A, T0 + 1, &r), "again");
		ASSERT_EQ(r.event, AG_INV_NONE, "nothing changes");
		ASSERT_EQ(state_of(inv, "fs", "read"), AG_TOOL_TRUSTED, "trusted");
		ASSERT_STREQ(ag_inv_event_name(AG_INV_NEW_TRUSTED), "new_trusted", "event name");
		ASSERT_STREQ(ag_tool_state_name(AG_TOOL_BLOCKED), "blocked", "state name");
	}
	if (test__start_subtest("explicit_pending")) {
		ASSERT_OK(observe(inv, "ex", AG_TRUST_EXPLICIT, READ_A, T0, &r), "first");
		ASSERT_EQ(r.event, AG_INV_NEW_PENDING, "event");
		ASSERT_EQ(r.state, AG_TOOL_PENDING, "state");
		hashes_are(inv, "ex", "read", "", ha);
		ASSERT_OK(observe(inv, "ex", AG_TRUST_EXPLICIT, READ_A, T0, &r), "again");
		ASSERT_EQ(r.event, AG_INV_NONE, "same offer");
		ASSERT_OK(observe(inv, "ex", AG_TRUST_EXPLICIT, READ_B, T0, &r), "changed");
		ASSERT_EQ(r.event, AG_INV_OFFER_CHANGED, "offer replaced");
		ASSERT_EQ(r.state, AG_TOOL_PENDING, "still pending");
		ASSERT_STREQ(r.old_hash, ha, "old: the previous offer");
		hashes_are(inv, "ex", "read", "", hb);
	}
	if (test__start_subtest("changed_blocked")) {
		ASSERT_OK(observe(inv, "ch", AG_TRUST_ON_FIRST_USE, READ_A, T0, &r), "first");
		ASSERT_OK(observe(inv, "ch", AG_TRUST_ON_FIRST_USE, READ_B, T0 + 5, &r), "changed");
		ASSERT_EQ(r.event, AG_INV_CHANGED, "event");
		ASSERT_EQ(r.state, AG_TOOL_BLOCKED, "blocked");
		ASSERT_STREQ(r.old_hash, ha, "old hash");
		ASSERT_STREQ(r.new_hash, hb, "new hash");
		hashes_are(inv, "ch", "read", ha, hb);
		ASSERT_OK(observe(inv, "ch", AG_TRUST_ON_FIRST_USE, READ_B, T0 + 6, &r), "again");
		ASSERT_EQ(r.event, AG_INV_NONE, "same offer again");
		ASSERT_EQ(r.state, AG_TOOL_BLOCKED, "still blocked");
	}
	if (test__start_subtest("format_and_key_order")) {
		/* Same fields, other order and spacing, plus what is not hashed. */
		static const char other[] =
		    "{ \"inputSchema\" : { \"type\" : \"object\" },\n"
		    "  \"description\": \"Read a file\", \"_meta\": {\"x\": 1},\n"
		    "  \"name\": \"read\" }";

		ASSERT_OK(observe(inv, "fm", AG_TRUST_ON_FIRST_USE, READ_A, T0, &r), "first");
		ASSERT_OK(observe(inv, "fm", AG_TRUST_ON_FIRST_USE, other, T0, &r), "reformatted");
		ASSERT_EQ(r.event, AG_INV_NONE, "no change");
		ASSERT_EQ(r.state, AG_TOOL_TRUSTED, "trusted");
	}
	if (test__start_subtest("third_replaces_offer")) {
		ASSERT_OK(observe(inv, "th", AG_TRUST_ON_FIRST_USE, READ_A, T0, &r), "a");
		ASSERT_OK(observe(inv, "th", AG_TRUST_ON_FIRST_USE, READ_B, T0, &r), "b");
		ASSERT_OK(observe(inv, "th", AG_TRUST_ON_FIRST_USE, READ_C, T0, &r), "c");
		ASSERT_EQ(r.event, AG_INV_OFFER_CHANGED, "event");
		ASSERT_EQ(r.state, AG_TOOL_BLOCKED, "blocked");
		ASSERT_STREQ(r.old_hash, hb, "old: the previous offer");
		hashes_are(inv, "th", "read", ha, hc);
	}
	if (test__start_subtest("revert")) {
		ASSERT_OK(observe(inv, "rv", AG_TRUST_ON_FIRST_USE, READ_A, T0, &r), "a");
		ASSERT_OK(observe(inv, "rv", AG_TRUST_ON_FIRST_USE, READ_B, T0, &r), "b");
		ASSERT_OK(observe(inv, "rv", AG_TRUST_ON_FIRST_USE, READ_A, T0, &r), "a again");
		ASSERT_EQ(r.event, AG_INV_REVERTED, "event");
		ASSERT_EQ(r.state, AG_TOOL_TRUSTED, "trusted again");
		hashes_are(inv, "rv", "read", ha, "");
	}
	if (test__start_subtest("approve")) {
		ASSERT_OK(observe(inv, "ap", AG_TRUST_ON_FIRST_USE, READ_A, T0, &r), "a");
		ASSERT_OK(observe(inv, "ap", AG_TRUST_ON_FIRST_USE, READ_B, T0, &r), "b");
		ASSERT_OK(observe(inv, "ap", AG_TRUST_ON_FIRST_USE, READ_C, T0, &r), "c");
		/* The operator reviewed B; the server has moved on to C. */
		ASSERT_EQ(ag_inventory_approve(inv, "ap", "read", hb, "alice", T0, &pin, &err),
			  -ESTALE, "stale");
		ASSERT_STRHAS(err.msg, "ap/read", "stale message names the tool");
		ASSERT_EQ(state_of(inv, "ap", "read"), AG_TOOL_BLOCKED, "still blocked");
		ASSERT_OK(ag_inventory_approve(inv, "ap", "read", hc, "alice", T0, &pin, &err),
			  "approve");
		ASSERT_FALSE(pin, "no pin");
		ASSERT_EQ(state_of(inv, "ap", "read"), AG_TOOL_TRUSTED, "trusted");
		hashes_are(inv, "ap", "read", hc, "");
		ASSERT_EQ(ag_inventory_approve(inv, "ap", "read", NULL, "alice", T0, &pin, &err),
			  -EALREADY, "already");
		ASSERT_EQ(ag_inventory_approve(inv, "ap", "nope", NULL, "alice", T0, &pin, &err),
			  -ENOENT, "unknown tool");
		ASSERT_EQ(ag_inventory_approve(inv, "nope", "read", NULL, "alice", T0, &pin, &err),
			  -ENOENT, "unknown server");
		ASSERT_OK(observe(inv, "ap", AG_TRUST_ON_FIRST_USE, READ_C, T0, &r), "c again");
		ASSERT_EQ(r.event, AG_INV_NONE, "approved definition is trusted");
		/* A pending tool approved without an expected hash. */
		ASSERT_OK(observe(inv, "ap", AG_TRUST_EXPLICIT, WRITE_A, T0, &r), "pending");
		ASSERT_OK(ag_inventory_approve(inv, "ap", "write", NULL, "bob", T0, &pin, &err),
			  "approve pending");
		ASSERT_EQ(state_of(inv, "ap", "write"), AG_TOOL_TRUSTED, "pending approved");
	}
	if (test__start_subtest("bad_tools")) {
		char *big = malloc(AG_INV_DEF_MAX + 64);
		char name[AG_INV_TOOL_NAME_MAX + 2];
		json_t *t;

		ASSERT_EQ(
		    observe(inv, "bt", AG_TRUST_ON_FIRST_USE, "{\"description\":\"x\"}", T0, &r),
		    -EINVAL, "no name");
		ASSERT_EQ(r.state, AG_TOOL_BLOCKED, "not trusted");
		ASSERT_EQ(observe(inv, "bt", AG_TRUST_ON_FIRST_USE, "{\"name\":7}", T0, &r),
			  -EINVAL, "name not a string");
		memset(name, 'n', sizeof(name) - 1);
		name[sizeof(name) - 1] = '\0';
		t = json_pack("{s:s}", "name", name);
		ASSERT_EQ(ag_inventory_observe(inv, "bt", AG_TRUST_ON_FIRST_USE, t, T0, &r, &err),
			  -EINVAL, "name too long");
		json_decref(t);
		if (ASSERT_OK_PTR(big, "malloc")) {
			memset(big, 'd', AG_INV_DEF_MAX + 63);
			big[AG_INV_DEF_MAX + 63] = '\0';
			t = json_pack("{s:s,s:s}", "name", "big", "description", big);
			ASSERT_EQ(
			    ag_inventory_observe(inv, "bt", AG_TRUST_ON_FIRST_USE, t, T0, &r, &err),
			    -E2BIG, "definition too big");
			json_decref(t);
		}
		free(big);
		ASSERT_EQ(ag_inventory_state(inv, "bt", "big", &(enum ag_tool_state){ 0 }), -ENOENT,
			  "nothing recorded");
	}
	if (test__start_subtest("bad_server_names")) {
		static const char *const bad[] = {
			"", ".", "..", ".hidden", "a/b", "../x", "a\nb"
		};
		char longname[AG_INV_SERVER_MAX + 2];

		for (size_t i = 0; i < AG_ARRAY_SIZE(bad); i++)
			ASSERT_EQ(observe(inv, bad[i], AG_TRUST_ON_FIRST_USE, READ_A, T0, &r),
				  -EINVAL, bad[i]);
		memset(longname, 's', sizeof(longname) - 1);
		longname[sizeof(longname) - 1] = '\0';
		ASSERT_EQ(observe(inv, longname, AG_TRUST_ON_FIRST_USE, READ_A, T0, &r), -EINVAL,
			  "too long");
		longname[AG_INV_SERVER_MAX] = '\0';
		ASSERT_OK(ag_inventory_check_server(longname, &err), "longest name");
		ASSERT_OK(ag_inventory_check_server("my-server_1.x", &err), "ordinary name");
	}
out:
	ag_inventory_free(inv);
	fixture_fini(&f);
}

TEST(inventory_persistence)
{
	char ha[AG_TOOLHASH_HEX_LEN + 1], hb[AG_TOOLHASH_HEX_LEN + 1], wa[AG_TOOLHASH_HEX_LEN + 1];
	char path[160], doc[1024], *text = NULL, *diff1 = NULL, *diff2 = NULL;
	struct ag_inventory *inv = NULL;
	struct ag_inv_result r;
	struct ag_err err;
	struct fixture f;
	struct stat st;
	size_t len;
	json_t *all;

	hash_of(READ_A, ha);
	hash_of(READ_B, hb);
	hash_of(WRITE_A, wa);
	if (!fixture_init(&f))
		return;
	/* Whatever the umask, the modes are the inventory's. */
	umask(0);
	if (!ASSERT_OK(ag_inventory_open(f.dir, &inv, &err), "open"))
		goto out;
	ASSERT_OK(observe(inv, "fs", AG_TRUST_ON_FIRST_USE, READ_A, T0, &r), "read a");
	ASSERT_OK(observe(inv, "fs", AG_TRUST_ON_FIRST_USE, READ_B, T0 + 10, &r), "read b");
	ASSERT_OK(observe(inv, "fs", AG_TRUST_EXPLICIT, WRITE_A, T0 + 20, &r), "write pending");
	ASSERT_OK(observe(inv, "web", AG_TRUST_ON_FIRST_USE, WRITE_A, T0 + 30, &r), "web write");
	ASSERT_OK(ag_inventory_diff(inv, "fs", "read", &diff1, &err), "diff before");
	ag_inventory_free(inv);
	inv = NULL;

	if (test__start_subtest("modes")) {
		ASSERT_OK(stat(f.dir, &st), "stat dir");
		ASSERT_EQ(st.st_mode & 07777, 0700, "dir 0700");
		snprintf(path, sizeof(path), "%s/fs.json", f.dir);
		ASSERT_OK(stat(path, &st), "stat file");
		ASSERT_EQ(st.st_mode & 07777, 0600, "file 0600");
		snprintf(path, sizeof(path), "%s/.fs.json.tmp", f.dir);
		ASSERT_ERRNO(stat(path, &st), ENOENT, "no temporary file left");
	}
	if (test__start_subtest("reload")) {
		if (!ASSERT_OK(ag_inventory_open(f.dir, &inv, &err), "reopen"))
			goto out;
		ASSERT_EQ(state_of(inv, "fs", "read"), AG_TOOL_BLOCKED, "blocked kept");
		hashes_are(inv, "fs", "read", ha, hb);
		ASSERT_EQ(state_of(inv, "fs", "write"), AG_TOOL_PENDING, "pending kept");
		hashes_are(inv, "fs", "write", "", wa);
		ASSERT_EQ(state_of(inv, "web", "write"), AG_TOOL_TRUSTED, "trusted kept");
		ASSERT_OK(ag_inventory_diff(inv, "fs", "read", &diff2, &err), "diff after");
		ASSERT_STREQ(diff2, diff1, "both definitions kept");
		all = ag_inventory_json(inv);
		ASSERT_EQ(json_integer_value(json_object_get(
			      json_object_get(json_object_get(all, "fs"), "read"), "first_seen")),
			  T0, "first_seen kept");
		ASSERT_STREQ(
		    json_string_value(json_object_get(
			json_object_get(json_object_get(all, "fs"), "read"), "offered_hash")),
		    hb, "listing shows the offer");
		json_decref(all);
		/* Still the same tool after the restart: nothing to record. */
		ASSERT_OK(observe(inv, "web", AG_TRUST_ON_FIRST_USE, WRITE_A, T0 + 40, &r),
			  "again");
		ASSERT_EQ(r.event, AG_INV_NONE, "no change after reload");
		ASSERT_OK(observe(inv, "fs", AG_TRUST_ON_FIRST_USE, READ_A, T0 + 40, &r), "revert");
		ASSERT_EQ(r.event, AG_INV_REVERTED, "trusted definition kept");
		ag_inventory_free(inv);
		inv = NULL;
	}
	if (test__start_subtest("corrupt_file")) {
		snprintf(path, sizeof(path), "%s/web.json", f.dir);
		if (!ASSERT_OK(ag_read_file(path, AG_INV_FILE_MAX, &text, &len, &err), "read"))
			goto out;
		put_text(path, "{\"version\":1,");
		ASSERT_EQ(ag_inventory_open(f.dir, &inv, &err), -EINVAL, "truncated file refused");
		ASSERT_NULL(inv, "no inventory");
		ASSERT_STRHAS(err.msg, path, "message names the file");
		/* Valid JSON, but the definition is not the one the hash recorded. */
		snprintf(doc, sizeof(doc),
			 "{\"version\":1,\"server\":\"web\",\"tools\":{\"write\":{"
			 "\"state\":\"trusted\",\"first_seen\":1,\"hash\":\"%s\","
			 "\"definition\":%s}}}",
			 wa, WRITE_B);
		put_text(path, doc);
		ASSERT_EQ(ag_inventory_open(f.dir, &inv, &err), -EINVAL, "tampered");
		ASSERT_STRHAS(err.msg, path, "names the file");
		ASSERT_STRHAS(err.msg, "tools.write.definition", "names the JSON path");
		snprintf(doc, sizeof(doc),
			 "{\"version\":1,\"server\":\"web\",\"tools\":{\"write\":{"
			 "\"state\":\"pending\",\"first_seen\":1,\"hash\":\"%s\","
			 "\"definition\":%s}}}",
			 wa, WRITE_A);
		put_text(path, doc);
		ASSERT_EQ(ag_inventory_open(f.dir, &inv, &err), -EINVAL, "inconsistent");
		ASSERT_STRHAS(err.msg, "tools.write.hash", "names the member");
		put_text(path, "{\"version\":1,\"server\":\"other\",\"tools\":{}}");
		ASSERT_EQ(ag_inventory_open(f.dir, &inv, &err), -EINVAL, "wrong server");
		ASSERT_STRHAS(err.msg, "as the file name says", "says why");
		put_text(path, text);
		ASSERT_OK(ag_inventory_open(f.dir, &inv, &err), "restored file loads");
		ag_inventory_free(inv);
		inv = NULL;
		snprintf(path, sizeof(path), "%s/README", f.dir);
		put_text(path, "not an inventory file");
		snprintf(path, sizeof(path), "%s/.stale.json.tmp", f.dir);
		put_text(path, "garbage");
		ASSERT_OK(ag_inventory_open(f.dir, &inv, &err), "other files ignored");
		ag_inventory_free(inv);
		inv = NULL;
	}
out:
	ag_inventory_free(inv);
	free(text);
	free(diff1);
	free(diff2);
	fixture_fini(&f);
}

TEST(inventory_lock)
{
	char ha[AG_TOOLHASH_HEX_LEN + 1], hb[AG_TOOLHASH_HEX_LEN + 1], wa[AG_TOOLHASH_HEX_LEN + 1];
	char wb[AG_TOOLHASH_HEX_LEN + 1], lock[160], doc[1024], *out = NULL;
	struct ag_inventory *inv = NULL, *inv2 = NULL;
	struct fixture f, f2 = { 0 };
	struct ag_inv_result r;
	struct ag_err err;
	json_t *root = NULL;
	bool pin;

	hash_of(READ_A, ha);
	hash_of(READ_B, hb);
	hash_of(WRITE_A, wa);
	hash_of(WRITE_B, wb);
	if (!fixture_init(&f))
		return;
	if (!fixture_init(&f2))
		goto out;
	snprintf(lock, sizeof(lock), "%s/tools.lock", f.tmp);
	if (!ASSERT_OK(ag_inventory_open(f.dir, &inv, &err), "open"))
		goto out;
	ASSERT_EQ(ag_inventory_lock_import(inv, lock, &err), -ENOENT, "no lock file");
	if (test__start_subtest("export_round_trip")) {
		ASSERT_OK(observe(inv, "fs", AG_TRUST_ON_FIRST_USE, READ_A, T0, &r), "read");
		ASSERT_OK(observe(inv, "fs", AG_TRUST_EXPLICIT, WRITE_A, T0, &r), "write pending");
		ASSERT_OK(observe(inv, "web", AG_TRUST_ON_FIRST_USE, WRITE_A, T0, &r), "web");
		ASSERT_OK(observe(inv, "web", AG_TRUST_ON_FIRST_USE, WRITE_B, T0, &r),
			  "web blocked");
		if (!ASSERT_OK(ag_inventory_lock_export(inv, &out, &err), "export"))
			goto out;
		root = json_loads(out, JSON_REJECT_DUPLICATES, NULL);
		ASSERT_OK_PTR(root, "lock parses");
		ASSERT_EQ(json_integer_value(json_object_get(root, "version")), 1, "version");
		ASSERT_EQ(json_object_size(json_object_get(root, "tools")), 2,
			  "trusted hashes only");
		ASSERT_STREQ(
		    json_string_value(json_object_get(json_object_get(root, "tools"), "fs/read")),
		    ha, "fs/read pinned");
		ASSERT_STREQ(
		    json_string_value(json_object_get(json_object_get(root, "tools"), "web/write")),
		    wa, "blocked tool pinned to its trusted hash");
		ASSERT_STRHAS(out, "\n  \"tools\": {\n    \"fs/read\": \"", "one entry per line");
		ASSERT_TRUE(out[strlen(out) - 1] == '\n', "ends with a newline");
		/* Into an inventory that never saw these tools: first sight follows the pins. */
		put_text(lock, out);
		if (!ASSERT_OK(ag_inventory_open(f2.dir, &inv2, &err), "open second"))
			goto out;
		ASSERT_OK(ag_inventory_lock_import(inv2, lock, &err), "import");
		ASSERT_OK(observe(inv2, "fs", AG_TRUST_EXPLICIT, READ_A, T0, &r), "pinned match");
		ASSERT_EQ(r.event, AG_INV_NEW_TRUSTED, "explicit trust, but the pin matches");
		ASSERT_OK(observe(inv2, "web", AG_TRUST_ON_FIRST_USE, WRITE_B, T0, &r), "mismatch");
		ASSERT_EQ(r.event, AG_INV_PIN_MISMATCH, "first sight against the pin");
		ASSERT_EQ(r.state, AG_TOOL_BLOCKED, "blocked, not pending");
		hashes_are(inv2, "web", "write", wa, wb);
		ASSERT_OK(observe(inv2, "web", AG_TRUST_ON_FIRST_USE, WRITE_A, T0, &r),
			  "pinned one");
		ASSERT_EQ(r.event, AG_INV_REVERTED, "the pinned definition is trusted");
		ag_inventory_free(inv2);
		inv2 = NULL;
		free(out);
		ASSERT_OK(ag_inventory_lock_export(inv, &out, &err), "export again");
		ASSERT_OK(ag_inventory_lock_import(inv, lock, &err), "import own export");
		{
			char *again = NULL;

			ASSERT_OK(ag_inventory_lock_export(inv, &again, &err), "export after");
			ASSERT_STREQ(again, out, "round trip changes nothing");
			free(again);
		}
	}
	if (test__start_subtest("pins_on_known_tools")) {
		/* ap/read trusted as A, lock says B; ap/write blocked offering B, lock says B. */
		ASSERT_OK(observe(inv, "ap", AG_TRUST_ON_FIRST_USE, READ_A, T0, &r), "read a");
		ASSERT_OK(observe(inv, "ap", AG_TRUST_ON_FIRST_USE, WRITE_A, T0, &r), "write a");
		ASSERT_OK(observe(inv, "ap", AG_TRUST_ON_FIRST_USE, WRITE_B, T0, &r), "write b");
		snprintf(doc, sizeof(doc),
			 "{\"version\":1,\"tools\":{\"ap/read\":\"%s\",\"ap/write\":\"%s\"}}", hb,
			 wb);
		put_text(lock, doc);
		ASSERT_OK(ag_inventory_lock_import(inv, lock, &err), "import");
		ASSERT_EQ(state_of(inv, "ap", "read"), AG_TOOL_BLOCKED, "pin mismatch blocks");
		hashes_are(inv, "ap", "read", hb, ha);
		ASSERT_EQ(state_of(inv, "ap", "write"), AG_TOOL_TRUSTED, "pin match trusts");
		hashes_are(inv, "ap", "write", wb, "");
		ASSERT_OK(observe(inv, "ap", AG_TRUST_ON_FIRST_USE, READ_A, T0, &r),
			  "read a again");
		ASSERT_EQ(r.state, AG_TOOL_BLOCKED, "the lock wins over what was trusted");
		/* The lock's view is what the files say after the import. */
		ag_inventory_free(inv);
		inv = NULL;
		if (!ASSERT_OK(ag_inventory_open(f.dir, &inv, &err), "reopen"))
			goto out;
		ASSERT_EQ(state_of(inv, "ap", "read"), AG_TOOL_BLOCKED, "persisted");
		ASSERT_OK(ag_inventory_lock_import(inv, lock, &err), "import again");
		ASSERT_OK(ag_inventory_approve(inv, "ap", "read", ha, "carol", T0, &pin, &err),
			  "approve against the lock");
		ASSERT_TRUE(pin, "pin overridden");
		hashes_are(inv, "ap", "read", ha, "");
		ASSERT_OK(observe(inv, "ap", AG_TRUST_ON_FIRST_USE, READ_A, T0, &r), "read a");
		ASSERT_EQ(r.state, AG_TOOL_TRUSTED, "pin dropped in memory");
	}
	if (test__start_subtest("bad_lock")) {
#define H63 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde"
		static const char *const bad[] = {
			"{\"version\":2,\"tools\":{}}",
			"{\"version\":1,\"tools\":{\"noslash\":\"" H63 "f\"}}",
			"{\"version\":1,\"tools\":{\"../x/read\":\"" H63 "f\"}}",
			"{\"version\":1,\"tools\":{\"fs/read\":\"" H63 "\"}}",
			"{\"version\":1,\"tools\":{\"fs/read\":\"" H63 "F\"}}",
			"{\"version\":1,\"tools\":{},\"extra\":1}",
			"{\"version\":1,\"tools\":{\"fs/read\":\"" H63 "f\",\"fs/read\":\"" H63
			"f\"}}",
		};
#undef H63

		for (size_t i = 0; i < AG_ARRAY_SIZE(bad); i++) {
			put_text(lock, bad[i]);
			ASSERT_EQ(ag_inventory_lock_import(inv, lock, &err), -EINVAL, bad[i]);
			ASSERT_STRHAS(err.msg, lock, "names the lock file");
		}
	}
out:
	json_decref(root);
	free(out);
	ag_inventory_free(inv);
	ag_inventory_free(inv2);
	fixture_fini(&f);
	if (f2.tmp[0])
		fixture_fini(&f2);
}

TEST(inventory_diff)
{
	char ha[AG_TOOLHASH_HEX_LEN + 1], hb[AG_TOOLHASH_HEX_LEN + 1], want[1024], *out = NULL;
	struct ag_inventory *inv = NULL;
	struct ag_inv_result r;
	struct ag_err err;
	struct fixture f;

	hash_of(READ_A, ha);
	hash_of(READ_B, hb);
	if (!fixture_init(&f))
		return;
	if (!ASSERT_OK(ag_inventory_open(f.dir, &inv, &err), "open"))
		goto out;
	ASSERT_OK(observe(inv, "fs", AG_TRUST_ON_FIRST_USE, READ_A, T0, &r), "a");
	if (test__start_subtest("trusted_has_none")) {
		ASSERT_EQ(ag_inventory_diff(inv, "fs", "read", &out, &err), -ENODATA, "trusted");
		ASSERT_EQ(ag_inventory_diff(inv, "fs", "nope", &out, &err), -ENOENT, "unknown");
	}
	if (test__start_subtest("one_word")) {
		ASSERT_OK(observe(inv, "fs", AG_TRUST_ON_FIRST_USE, READ_B, T0, &r), "b");
		if (!ASSERT_OK(ag_inventory_diff(inv, "fs", "read", &out, &err), "diff"))
			goto out;
		snprintf(want, sizeof(want),
			 "--- trusted %.12s\n"
			 "+++ offered %.12s\n"
			 " {\n"
			 "-  \"description\": \"Read a file\",\n"
			 "+  \"description\": \"Read any file\",\n"
			 "   \"inputSchema\": {\n"
			 "     \"type\": \"object\"\n"
			 "   },\n"
			 "   \"name\": \"read\"\n"
			 " }\n",
			 ha, hb);
		ASSERT_STREQ(out, want, "exactly one - and one + line");
		free(out);
		out = NULL;
	}
	if (test__start_subtest("pending_all_plus")) {
		ASSERT_OK(observe(inv, "fs", AG_TRUST_EXPLICIT, WRITE_A, T0, &r), "pending");
		if (!ASSERT_OK(ag_inventory_diff(inv, "fs", "write", &out, &err), "diff"))
			goto out;
		ASSERT_STRHAS(out, "--- trusted (none)\n", "nothing trusted");
		ASSERT_STRHAS(out,
			      "\n+{\n+  \"description\": \"Write a file\",\n+  \"name\": "
			      "\"write\"\n+}\n",
			      "all +");
		free(out);
		out = NULL;
	}
	if (test__start_subtest("invisible_characters_shown")) {
		/* A zero-width space is what a reviewer must see. */
		ASSERT_OK(observe(inv, "fs", AG_TRUST_EXPLICIT,
				  "{\"name\":\"zw\",\"description\":\"ok\\u200b\"}", T0, &r),
			  "pending");
		if (ASSERT_OK(ag_inventory_diff(inv, "fs", "zw", &out, &err), "diff"))
			ASSERT_STRHAS(out, "ok\\u200B", "escaped");
		free(out);
		out = NULL;
	}
out:
	free(out);
	ag_inventory_free(inv);
	fixture_fini(&f);
}

/* The daemon's writes wait for an offline approver's flock. */
TEST(inventory_flock)
{
	struct ag_inventory *inv = NULL, *held = NULL;
	int status = -1, go[2] = { -1, -1 };
	struct ag_inv_result r;
	struct ag_err err;
	struct fixture f;
	pid_t pid = -1;
	char c = 0;

	if (!fixture_init(&f))
		return;
	if (!ASSERT_OK(ag_inventory_open(f.dir, &inv, &err), "open") ||
	    !ASSERT_OK(pipe(go), "pipe"))
		goto out;
	/* The writer forks before the lock is taken: it must not inherit the locked file. */
	pid = fork();
	if (pid == 0) {
		close(go[1]);
		_exit(read(go[0], &c, 1) != 1 ||
		      observe(inv, "fs", AG_TRUST_ON_FIRST_USE, READ_A, T0, &r));
	}
	if (!ASSERT_GT(pid, 0, "fork"))
		goto out;
	close(go[0]);
	go[0] = -1;
	if (!ASSERT_OK(ag_inventory_open_locked(f.dir, &held, &err), "open locked") ||
	    !ASSERT_EQ(write(go[1], &c, 1), 1, "start the writer"))
		goto out;
	usleep(300 * 1000);
	ASSERT_EQ(waitpid(pid, &status, WNOHANG), 0, "the write waits for the lock");
	ag_inventory_free(held);
	held = NULL;
	ASSERT_EQ(waitpid(pid, &status, 0), pid, "reaped");
	ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0, "then it writes");
	pid = -1;
out:
	if (pid > 0) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
	}
	if (go[0] >= 0)
		close(go[0]);
	if (go[1] >= 0)
		close(go[1]);
	ag_inventory_free(held);
	ag_inventory_free(inv);
	fixture_fini(&f);
}

/* agentgatectl tools over a state directory, without a daemon. */
TEST(inventory_cli)
{
	char ha[AG_TOOLHASH_HEX_LEN + 1], hb[AG_TOOLHASH_HEX_LEN + 1], cmd[512], *out = NULL;
	struct ag_inventory *inv = NULL;
	struct ag_inv_result r;
	struct ag_err err;
	struct fixture f;
	json_t *root;

	hash_of(READ_A, ha);
	hash_of(READ_B, hb);
	if (!fixture_init(&f))
		return;
	if (!ASSERT_OK(ag_inventory_open(f.dir, &inv, &err), "open"))
		goto out;
	ASSERT_OK(observe(inv, "fs", AG_TRUST_ON_FIRST_USE, READ_A, T0, &r), "a");
	ASSERT_OK(observe(inv, "fs", AG_TRUST_ON_FIRST_USE, READ_B, T0, &r), "b");
	ag_inventory_free(inv);
	inv = NULL;
	/* An instance no daemon runs as: approve falls back to the files. */
	snprintf(cmd, sizeof(cmd),
		 "env -u SUDO_USER %s/agentgatectl --instance %s --state-dir %s tools",
		 testlib_build_dir(), test__instance("toolscli"), f.tmp);

	ASSERT_EQ(run_capture(&out, "%s --json", cmd), 0, "list json");
	root = out ? json_loads(out, 0, NULL) : NULL;
	ASSERT_STREQ(json_string_value(json_object_get(
			 json_object_get(json_object_get(root, "fs"), "read"), "state")),
		     "blocked", "listed blocked");
	json_decref(root);
	free(out);
	ASSERT_EQ(run_capture(&out, "%s", cmd), 0, "list");
	ASSERT_STRHAS(out, "blocked", "table state");
	{
		char want[64];

		snprintf(want, sizeof(want), "offered %.12s", hb);
		ASSERT_STRHAS(out, want, "table offer");
	}
	free(out);
	ASSERT_EQ(run_capture(&out, "%s diff fs/read", cmd), 0, "diff");
	ASSERT_STRHAS(out, "+  \"description\": \"Read any file\",", "diff shown");
	free(out);
	ASSERT_EQ(run_capture(&out, "%s approve fs/read --hash %s --by x 2>&1", cmd, ha), 1,
		  "stale hash refused");
	ASSERT_STRHAS(out, "review it again", "says why");
	free(out);
	ASSERT_EQ(run_capture(&out, "%s approve fs/read --by dave 2>&1", cmd), 0,
		  "approve offline");
	ASSERT_STRHAS(out, "approved fs/read", "says so");
	free(out);
	ASSERT_EQ(run_capture(&out, "%s approve fs/read 2>&1", cmd), 1, "already trusted");
	free(out);
	ASSERT_EQ(run_capture(&out, "%s approve fsread 2>&1", cmd), 2, "usage");
	free(out);
	ASSERT_EQ(run_capture(&out, "%s lock", cmd), 0, "lock");
	root = out ? json_loads(out, 0, NULL) : NULL;
	ASSERT_STREQ(json_string_value(json_object_get(json_object_get(root, "tools"), "fs/read")),
		     hb, "lock pins the approved hash");
	json_decref(root);
	free(out);
	out = NULL;
	if (ASSERT_OK(ag_inventory_open(f.dir, &inv, &err), "reopen")) {
		json_t *all = ag_inventory_json(inv);

		ASSERT_STREQ(
		    json_string_value(json_object_get(
			json_object_get(json_object_get(all, "fs"), "read"), "approved_by")),
		    "dave", "approver recorded");
		json_decref(all);
	}
out:
	free(out);
	ag_inventory_free(inv);
	fixture_fini(&f);
}
