/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Policies from git (agentgate.conf(5) "policy_source"): a thread polls
 * the repository with the real git (lib/git.h), and the loop swaps in
 * each new commit that is signed by an allowed key and whose set loads
 * (daemon/decide.h ag_decide_load_tree).  Every accepted or refused
 * commit is logged and audited ("policy_source" records, docs/audit.md).
 */
#ifndef AG_POLICY_GIT_H
#define AG_POLICY_GIT_H

#include <jansson.h>

struct ag_loop;
struct ag_daemon;

/*
 * Without a "policy_source", nothing.  Else, before the loop serves: the
 * commit the previous run accepted (<state>/policy_git/current) is loaded
 * again, the thread starts (it polls at once, then every interval_s) and
 * the loop waits for its results.  Failures are logged; the set stays.
 */
void ag_policy_git_start(struct ag_loop *l);
/* Asks the thread to stop (a running git is killed) and stops waiting. */
void ag_policy_git_stop(struct ag_loop *l);
/* Joins the thread and frees the state. */
void ag_policy_git_fini(struct ag_loop *l);
/* "policy_pull" on the control socket: a poll now; {"ok", "pull": N}. */
json_t *ag_policy_git_pull(struct ag_daemon *d);
/*
 * The source for status and `policy pull`: url, ref, the commit in force,
 * the last poll's outcome and the last refusal; NULL without a source.
 */
json_t *ag_policy_git_status(struct ag_daemon *d);

#endif
