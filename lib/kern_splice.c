// SPDX-License-Identifier: GPL-2.0
/*
 * The relay's splice maps (bpf/splice.bpf.c): adopted from their pins when
 * a previous daemon of the instance left them, else loaded, the verdict
 * attached to splice_from, and pinned beside the instance's maps (each over
 * its old pin, never missing).  The attachment lives in the map, so a
 * pinned splice_from keeps its program with no link or program pin; an
 * uninstall unpins the maps with everything else in the directory.
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

enum { PIN_PEERS, PIN_FROM, PIN_FLOWS, PIN_KEPT, PINS };
static const char *const splice_pins[PINS] = { "splice_peers", "splice_from", "splice_flows",
					       "splice_kept" };

static int *splice_fd(struct ag_splice_maps *m, int pin)
{
	int *fds[PINS] = { &m->peers_fd, &m->from_fd, &m->flows_fd, &m->kept_fd };

	return fds[pin];
}

void ag_splice_maps_close(struct ag_splice_maps *m)
{
	for (int i = 0; i < PINS; i++) {
		int *fd = splice_fd(m, i);

		if (*fd >= 0)
			close(*fd);
		*fd = -1;
	}
}

/*
 * Whether fd is this build's map of that pin: a sockhash of its size (with
 * one verdict program for splice_from), or the flows hash.  A build before
 * the flows had no bound on the verdict's backlog, and pinned no flows: its
 * maps are not adopted.  The kept ring: a ring buffer of its size.
 */
static bool splice_map_ok(int fd, int pin)
{
	struct bpf_map_info info = { 0 };
	__u32 len = sizeof(info), ids[2], cnt = 2;

	if (bpf_obj_get_info_by_fd(fd, &info, &len))
		return false;
	if (pin == PIN_KEPT)
		return info.type == BPF_MAP_TYPE_RINGBUF && info.max_entries == AG_SPLICE_KEPT_RING;
	if (info.key_size != sizeof(__u64) || info.max_entries != AG_SPLICE_SOCKS)
		return false;
	if (pin == PIN_FLOWS)
		return info.type == BPF_MAP_TYPE_HASH &&
		       info.value_size == sizeof(struct ag_splice_flow);
	if (info.type != BPF_MAP_TYPE_SOCKHASH)
		return false;
	return pin != PIN_FROM ||
	       (!bpf_prog_query(fd, BPF_SK_SKB_VERDICT, 0, NULL, ids, &cnt) && cnt == 1);
}

/*
 * The flows of sockets no longer spliced: a daemon that was killed left
 * them.  A closed socket left splice_from by itself, so a flow without its
 * socket there is such a leftover.  (Only a restart adopts: an upgrade's
 * daemon loads maps of its own while the old one finishes with these.)
 */
static void splice_flows_sweep(const struct ag_splice_maps *m)
{
	uint64_t key, next, sock;
	void *prev = NULL;

	for (int n = 0; n < AG_SPLICE_SOCKS && !bpf_map_get_next_key(m->flows_fd, prev, &next);
	     n++) {
		key = next;
		if (bpf_map_lookup_elem(m->from_fd, &key, &sock) && errno == ENOENT &&
		    !bpf_map_delete_elem(m->flows_fd, &key))
			continue; /* key is gone: the walk goes on from the start's side */
		prev = &key;
	}
}

static int splice_adopt(struct ag_splice_maps *m, const struct ag_instance *in)
{
	char path[PATH_MAX];

	for (int i = 0; i < PINS; i++) {
		int *fd = splice_fd(m, i);

		if (ag_pin_path(in, splice_pins[i], path, sizeof(path)) ||
		    (*fd = bpf_obj_get(path)) < 0 || !splice_map_ok(*fd, i)) {
			ag_splice_maps_close(m);
			return -ENOENT;
		}
	}
	splice_flows_sweep(m);
	return 0;
}

static int splice_load(struct ag_splice_maps *m, const struct ag_instance *in, struct ag_err *err)
{
	struct splice_bpf *skel = splice_bpf__open_and_load();
	struct bpf_map *maps[PINS];
	int ret = 0;

	if (!skel)
		return ag_errf(err, errno, "splice.bpf.o: load: %s", strerror(errno));
	maps[PIN_PEERS] = skel->maps.splice_peers;
	maps[PIN_FROM] = skel->maps.splice_from;
	maps[PIN_FLOWS] = skel->maps.splice_flows;
	maps[PIN_KEPT] = skel->maps.splice_kept;
	if (bpf_prog_attach(bpf_program__fd(skel->progs.splice_bounded),
			    bpf_map__fd(skel->maps.splice_from), BPF_SK_SKB_VERDICT, 0))
		ret = ag_errf(err, errno, "splice_bounded: attach: %s", strerror(errno));
	for (int i = 0; i < PINS && !ret; i++)
		if ((*splice_fd(m, i) = fcntl(bpf_map__fd(maps[i]), F_DUPFD_CLOEXEC, 0)) < 0)
			ret = ag_errf(err, errno, "%s: dup: %s", splice_pins[i], strerror(errno));
	/* The program stays loaded while splice_from holds it. */
	splice_bpf__destroy(skel);
	for (int i = 0; i < PINS && !ret; i++)
		ret = ag_kern_prog_repin(in, *splice_fd(m, i), splice_pins[i], err);
	if (ret)
		ag_splice_maps_close(m);
	return ret;
}

int ag_splice_maps_open(struct ag_splice_maps *m, const struct ag_instance *in, bool adopt,
			struct ag_err *err)
{
	m->peers_fd = m->from_fd = m->flows_fd = m->kept_fd = -1;
	if (adopt && !splice_adopt(m, in))
		return 0;
	return splice_load(m, in, err);
}
