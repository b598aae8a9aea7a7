// SPDX-License-Identifier: GPL-2.0
/*
 * A live upgrade's kernel side: this build's programs take the place of
 * the running ones on the instance's pinned links and maps.
 *
 *	PINNED(old build) --version ok, maps alike--> LOADED(new progs on old maps)
 *	      |                                               |
 *	      +--newer version, map layout differs--> REFUSED (nothing changed)
 *	                                                      |
 *	LOADED --bpf_link_update, link by link--> REPLACED --pin version--> DONE
 *
 * Ordering hazards:
 *  - The new programs are loaded on the pinned maps themselves
 *    (bpf_map__reuse_fd), so agents, rules, quotas, origins and the serving
 *    entry are the same objects before and after: nothing is copied, and
 *    nothing written by the old programs in between is lost.  A map whose
 *    layout changed is refused, not migrated: copying it would lose what
 *    the old programs write between the copy and the link update.
 *  - Everything that can fail (version, layout, load, verifier) comes
 *    before the first link update, so a refusal leaves the old build
 *    running untouched.
 *  - bpf_link_update swaps a link's program atomically: the cgroup is never
 *    without a program, so no connect goes unhooked.  A failure part-way
 *    leaves some links on the old programs and some on the new, both on the
 *    same maps (which is what makes the layouts' equality a must); a
 *    retry completes it.
 *  - The gateway filter pin is replaced by a rename, so a reader never
 *    finds it missing; sockets that have the old filter attached keep it.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "fileio.h"
#include "kern_internal.h"
#include "util.h"
#include "sock.skel.h"

#ifndef AG_VERSION
#error "AG_VERSION must come from the Makefile"
#endif

#define VERSION_FILE "kern.version"

const char *ag_version(void)
{
	return AG_VERSION;
}

/* "MAJOR.MINOR.PATCH" as one comparable number; -1 if it is not one. */
static long long version_num(const char *s)
{
	unsigned int a, b, c;
	int n = 0;

	if (sscanf(s, "%u.%u.%u%n", &a, &b, &c, &n) != 3 || a > 99999 || b > 99999 || c > 99999)
		return -1;
	return ((long long)a * 100000 + b) * 100000 + c;
}

static int version_path(const struct ag_instance *in, char *buf, size_t len)
{
	int n = snprintf(buf, len, "%s/%s", in->run_dir, VERSION_FILE);

	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

int ag_kern_version_check(const struct ag_instance *in, struct ag_err *err)
{
	char path[PATH_MAX], *text = NULL;
	long long pinned, mine = version_num(AG_VERSION);

	if (version_path(in, path, sizeof(path)))
		return ag_errf(err, ENAMETOOLONG, "instance %s: path too long", in->name);
	if (ag_read_file(path, 64, &text, NULL, NULL))
		return 0;
	text[strcspn(text, "\n")] = 0;
	pinned = version_num(text);
	/* Fail closed: an unreadable version may be any newer one. */
	if (pinned < 0 || pinned > mine) {
		int ret = ag_errf(err, EPROTO,
				  "instance %s runs agentgate %s, newer than this build (%s): "
				  "downgrade refused; stop it and uninstall first to go back",
				  in->name, text, AG_VERSION);

		free(text);
		return ret;
	}
	free(text);
	return 0;
}

int ag_kern_version_write(const struct ag_instance *in, struct ag_err *err)
{
	char path[PATH_MAX];
	int ret;

	if (version_path(in, path, sizeof(path)))
		return ag_errf(err, ENAMETOOLONG, "instance %s: path too long", in->name);
	ret = ag_file_write_atomic(path, AG_VERSION "\n", strlen(AG_VERSION) + 1, 0644, err);
	/* No run directory, no daemon (a test's bare instance): nothing to record. */
	if (ret == -ENOENT)
		return 0;
	return ret;
}

void ag_kern_version_remove(const struct ag_instance *in)
{
	char path[PATH_MAX];

	if (!version_path(in, path, sizeof(path)))
		unlink(path);
}

/* The pinned maps under the new object: every map, so no program gets a copy. */
static int maps_reuse(struct sock_bpf *skel, const struct ag_kern *k, struct ag_err *err)
{
	for (int i = 0; i < AG_MAP__COUNT; i++) {
		int ret = bpf_map__reuse_fd(ag_kern_skel_map(skel, i), k->map_fd[i]);

		if (ret)
			return ag_errf(err, -ret, "map %s: reuse: %s", ag_map_names[i],
				       strerror(-ret));
	}
	return 0;
}

static int link_replace(const struct ag_instance *in, int i, int prog_fd, struct ag_err *err)
{
	char path[PATH_MAX];
	int fd, ret = 0;

	if (ag_kern_link_pin_path(in, ag_progs[i].name, path, sizeof(path)))
		return ag_errf(err, ENAMETOOLONG, "instance %s: pin path too long", in->name);
	fd = bpf_obj_get(path);
	if (fd < 0)
		return ag_errf(err, errno, "link %s: %s", path, strerror(errno));
	if (bpf_link_update(fd, prog_fd, NULL))
		ret = ag_errf(err, errno, "link %s: update: %s", path, strerror(errno));
	close(fd);
	return ret;
}


static int progs_replace(const struct ag_instance *in, struct sock_bpf *skel, struct ag_err *err)
{
	for (int i = 0; i < AG_PROG_COUNT; i++) {
		struct bpf_program *p =
		    bpf_object__find_program_by_name(skel->obj, ag_progs[i].prog);
		int ret;

		if (!ag_kern_prog_supported(i))
			continue;
		if ((ret = link_replace(in, i, bpf_program__fd(p), err)))
			return ret;
	}
	return ag_kern_prog_repin(in, bpf_program__fd(skel->progs.ag_gateway_filter),
				  GATEWAY_FILTER_PIN, err);
}

int ag_kern_upgrade(struct ag_kern *k, const struct ag_instance *in, const struct ag_config *cfg,
		    struct ag_err *err)
{
	struct sock_bpf *skel = NULL;
	int ret;

	ag_kern_reset(k);
	if (!ag_kern_installed(in))
		return ag_errf(err, ENOENT,
			       "instance %s: nothing to upgrade (not installed, or partly)",
			       in->name);
	/* Fail closed: every refusal below leaves the running build untouched. */
	if ((ret = ag_kern_version_check(in, err)) || (ret = ag_kern_open(k, in, err)))
		goto out;
	if ((ret = ag_kern_same_maps(k, in, err))) {
		char why[sizeof(err->msg)];

		/* ag_errf writes err->msg: not from itself. */
		snprintf(why, sizeof(why), "%s", err->msg);
		ret = ag_errf(err, -ret,
			      "instance %s: a map's layout changed in this build, which a live "
			      "upgrade cannot carry (%s); stop, uninstall and start instead",
			      in->name, why);
		goto out;
	}
	skel = sock_bpf__open();
	if (!skel) {
		ret = ag_errf(err, errno, "sock.bpf.o: open: %s", strerror(errno));
		goto out;
	}
	if ((ret = ag_kern_progs_prepare(skel, err)) || (ret = maps_reuse(skel, k, err)))
		goto out;
	if ((ret = sock_bpf__load(skel))) {
		ret = ag_errf(err, -ret, "sock.bpf.o: load: %s (see libbpf messages above)",
			      strerror(-ret));
		goto out;
	}
	/* The old programs read the same config: written before they go. */
	if ((ret = ag_kern_set_config(k, cfg, err)) || (ret = progs_replace(in, skel, err)) ||
	    (ret = ag_kern_version_write(in, err)))
		goto out;
	k->adopted = true;
	ret = ag_kern_daemon_progs_load(k, in, false, err);
out:
	/* The links hold the programs now; the maps stay open in k. */
	sock_bpf__destroy(skel);
	if (ret)
		ag_kern_close(k);
	return ret;
}
