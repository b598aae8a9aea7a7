// SPDX-License-Identifier: GPL-2.0
/*
 * The documentation says what the code does: every command agentgatectl
 * --help lists is in agentgatectl(8) with its subcommands, and every
 * command the man page describes is in --help; every key the configuration
 * parser accepts is in agentgate.conf(5).  The audit side (every field a
 * test's records carry is in docs/audit.md) runs in testlib's
 * tdaemon_destroy, over the records of every test that ran a daemon.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "test.h"
#include "testlib.h"

#define WORD_MAX 64

static char *read_src(const char *rel)
{
	char path[PATH_MAX];
	char *text = NULL;
	struct ag_err err;

	snprintf(path, sizeof(path), "%s/%s", testlib_src_dir(), rel);
	if (ag_read_file(path, 4 << 20, &text, NULL, &err)) {
		fprintf(stderr, "%s\n", err.msg);
		return NULL;
	}
	return text;
}

static bool word_char(char c)
{
	return isalnum((unsigned char)c) || c == '_' || c == '-';
}

/*
 * In a man page: word set in bold, as commands and keys are: on a line of
 * bold macros (.B, .BR, .BI, .RB, .IB) or after \fB or a roff quote.
 */
static bool man_bold(const char *man, const char *word)
{
	size_t n = strlen(word);

	for (const char *p = strstr(man, word); p; p = strstr(p + 1, word)) {
		bool quoted = (p - man >= 3 && !strncmp(p - 3, "\\fB", 3)) ||
			      (p - man >= 4 && !strncmp(p - 4, "\\(dq", 4));
		const char *line = p;

		if (word_char(p[n]) || (p > man && word_char(p[-1]) && !quoted))
			continue;
		while (line > man && line[-1] != '\n')
			line--;
		if (quoted || !strncmp(line, ".B", 2) || !strncmp(line, ".RB", 3) ||
		    !strncmp(line, ".IB", 3))
			return true;
	}
	return false;
}

/*
 * The lines "  NAME [SYNOPSIS]" of --help: the command, and the words of
 * its synopsis's first token when it lists subcommands ("a|b|c", "[a|b]",
 * or a bare lowercase word such as "check").
 */
static void check_help_line(const char *line, const char *man, char *cmds, size_t cap)
{
	char name[WORD_MAX], first[256], *save = NULL;
	const char *rest;
	size_t n = 0;

	while (line[n] && !isspace((unsigned char)line[n]) && n < sizeof(name) - 1) {
		name[n] = line[n];
		n++;
	}
	name[n] = 0;
	ASSERT_TRUE(man_bold(man, name), name);
	strncat(cmds, " ", cap - strlen(cmds) - 1);
	strncat(cmds, name, cap - strlen(cmds) - 1);
	rest = line + n;
	while (*rest == ' ')
		rest++;
	if (sscanf(rest, "%255s", first) != 1 || first[0] == '-' ||
	    isupper((unsigned char)first[0]))
		return;
	for (char *w = strtok_r(first, "[]|", &save); w; w = strtok_r(NULL, "[]|", &save)) {
		if (!islower((unsigned char)w[0]))
			continue;
		if (!ASSERT_TRUE(man_bold(man, w), "subcommand in agentgatectl(8)"))
			fprintf(stderr, "  %s %s: not in docs/agentgatectl.8\n", name, w);
	}
}

TEST(docs_cli_help_matches_man)
{
	char *help = NULL, *man = read_src("docs/agentgatectl.8"), *save = NULL;
	char cmds[2048] = "", *p;
	int listed = 0;

	if (!ASSERT_OK_PTR(man, "man page"))
		return;
	if (!ASSERT_EQ(run_capture(&help, "%s/agentgatectl --help", testlib_build_dir()), 0,
		       "--help"))
		goto out;
	for (char *line = strtok_r(help, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		/* "  name ..." is a command; deeper indents are its summary. */
		if (line[0] != ' ' || line[1] != ' ' || !islower((unsigned char)line[2]))
			continue;
		check_help_line(line + 2, man, cmds, sizeof(cmds));
		listed++;
	}
	ASSERT_GE(listed, 15, "commands listed by --help");
	/* And back: every command the man page gives an entry (".TP" then ".B cmd"). */
	for (p = strstr(man, "\n.TP\n"); p; p = strstr(p + 1, "\n.TP\n")) {
		char word[WORD_MAX];

		if (sscanf(p + 5, ".B%*[IR]%*[ ]%63[a-z_-]", word) != 1 &&
		    sscanf(p + 5, ".B %63[a-z_-]", word) != 1)
			continue;
		if (!ASSERT_TRUE(text_has_word(cmds, word), "man entry in --help"))
			fprintf(stderr, "  agentgatectl(8) describes \"%s\"; --help does not\n",
				word);
	}
out:
	free(help);
	free(man);
}

/*
 * The parser's key tables: each object it reads names its keys in a
 * "keys[] = { ... }" array (lib/config.c rejects any other key).
 */
TEST(docs_config_keys_in_man)
{
	char *src = read_src("lib/config.c"), *man = read_src("docs/agentgate.conf.5");
	int keys = 0;

	if (!ASSERT_OK_PTR(src, "lib/config.c") || !ASSERT_OK_PTR(man, "agentgate.conf.5"))
		goto out;
	for (char *p = strstr(src, "keys[] = {"); p; p = strstr(p + 1, "keys[] = {")) {
		char *end = strstr(p, "};");

		for (char *q = strchr(p, '"'); q && end && q < end; q = strchr(q + 1, '"')) {
			char key[WORD_MAX];
			char *close = strchr(q + 1, '"');

			if (!close || close - q - 1 >= WORD_MAX)
				break;
			memcpy(key, q + 1, (size_t)(close - q - 1));
			key[close - q - 1] = 0;
			keys++;
			if (!ASSERT_TRUE(man_bold(man, key), "config key in agentgate.conf(5)"))
				fprintf(stderr, "  \"%s\": not in docs/agentgate.conf.5\n", key);
			q = close;
		}
	}
	ASSERT_GE(keys, 40, "keys found in lib/config.c");
out:
	free(src);
	free(man);
}
