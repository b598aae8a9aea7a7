// SPDX-License-Identifier: GPL-2.0
/*
 * The relay's splice maps (bpf/splice.bpf.c): adopted from their pins when
 * a previous daemon of the instance left them, else loaded, the verdict
 * attached to splice_from, and pinned beside the instance's maps (each over
 * its old pin, never missing).  The attachment lives in the map, so a
 * pinned splice_from keeps its program with no link or program pin; an
 * uninstall unpins both maps with everything else in the directory.
 *
 * Loading is also the probe: a kernel that refuses the map type, the
 * program or the attach type (BPF_SK_SKB_VERDICT, Linux 5.13) leaves the
 * relay copying, which is what it did before.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "kern.h"
#include "kern_internal.h"
#include "splice.skel.h"

static const char *const splice_pins[2] = { "splice_peers", "splice_from" };

void ag_splice_maps_close(struct ag_splice_maps *m)
{
	if (m->peers_fd >= 0)
		close(m->peers_fd);
	if (m->from_fd >= 0)
		close(m->from_fd);
	m->peers_fd = m->from_fd = -1;
}

/* Whether fd is a sockhash of this build's size with one verdict program (from only). */
static bool splice_map_ok(int fd, bool from)
{
	struct bpf_map_info info = { 0 };
	__u32 len = sizeof(info), ids[2], cnt = 2;

	if (bpf_obj_get_info_by_fd(fd, &info, &len) || info.type != BPF_MAP_TYPE_SOCKHASH ||
	    info.key_size != sizeof(__u64) || info.max_entries != AG_SPLICE_SOCKS)
		return false;
	if (!from)
		return true;
	return !bpf_prog_query(fd, BPF_SK_SKB_VERDICT, 0, NULL, ids, &cnt) && cnt == 1;
}

static int splice_adopt(struct ag_splice_maps *m, const struct ag_instance *in)
{
	int *fds[2] = { &m->peers_fd, &m->from_fd };
	char path[PATH_MAX];

	for (int i = 0; i < 2; i++) {
		if (ag_pin_path(in, splice_pins[i], path, sizeof(path)) ||
		    (*fds[i] = bpf_obj_get(path)) < 0 || !splice_map_ok(*fds[i], i == 1)) {
			ag_splice_maps_close(m);
			return -ENOENT;
		}
	}
	return 0;
}

static int splice_load(struct ag_splice_maps *m, const struct ag_instance *in, struct ag_err *err)
{
	struct splice_bpf *skel = splice_bpf__open_and_load();
	int ret = 0;

	if (!skel)
		return ag_errf(err, errno, "splice.bpf.o: load: %s", strerror(errno));
	if (bpf_prog_attach(bpf_program__fd(skel->progs.splice_verdict),
			    bpf_map__fd(skel->maps.splice_from), BPF_SK_SKB_VERDICT, 0))
		ret = ag_errf(err, errno, "splice_verdict: attach: %s", strerror(errno));
	else if ((m->peers_fd = fcntl(bpf_map__fd(skel->maps.splice_peers), F_DUPFD_CLOEXEC, 0)) <
		     0 ||
		 (m->from_fd = fcntl(bpf_map__fd(skel->maps.splice_from), F_DUPFD_CLOEXEC, 0)) < 0)
		ret = ag_errf(err, errno, "splice.bpf.o: dup: %s", strerror(errno));
	/* The program stays loaded while splice_from holds it. */
	splice_bpf__destroy(skel);
	if (!ret && !(ret = ag_kern_prog_repin(in, m->peers_fd, splice_pins[0], err)))
		ret = ag_kern_prog_repin(in, m->from_fd, splice_pins[1], err);
	if (ret)
		ag_splice_maps_close(m);
	return ret;
}

int ag_splice_maps_open(struct ag_splice_maps *m, const struct ag_instance *in, bool adopt,
			struct ag_err *err)
{
	m->peers_fd = m->from_fd = -1;
	if (adopt && !splice_adopt(m, in))
		return 0;
	return splice_load(m, in, err);
}
