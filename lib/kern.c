// SPDX-License-Identifier: GPL-2.0
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <netinet/in.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "cgroup.h"
#include "guard.h"
#include "kern.h"
#include "kern_internal.h"
#include "netns.h"
#include "probe.h"
#include "daemon.skel.h"
#include "sock.skel.h"

const char *const ag_map_names[AG_MAP__COUNT] = {
	[AG_MAP_CONFIG] = "config",
	[AG_MAP_AGENTS] = "agents",
	[AG_MAP_DEST_RULES] = "dest_rules",
	[AG_MAP_STATS] = "stats",
	[AG_MAP_ORIGIN] = "origin",
	[AG_MAP_EVENTS] = "events",
	[AG_MAP_QUOTA] = "quota",
	[AG_MAP_NETNS] = "netns",
	[AG_MAP_NETNS_LINKS] = "netns_links",
	[AG_MAP_SERVING] = "serving",
	[AG_MAP_UNIX_PATHS] = "unix_paths",
};


/*
 * Attach order matters on a fresh install: getpeername first, so that by
 * the time connects start being redirected, the agent-visible peer address
 * already works.
 */
const struct ag_prog_desc ag_progs[AG_PROG_COUNT] = {
	{ "getpeername4", "ag_getpeername4", BPF_CGROUP_INET4_GETPEERNAME },
	{ "getpeername6", "ag_getpeername6", BPF_CGROUP_INET6_GETPEERNAME },
	{ "recvmsg4", "ag_recvmsg4", BPF_CGROUP_UDP4_RECVMSG },
	{ "recvmsg6", "ag_recvmsg6", BPF_CGROUP_UDP6_RECVMSG },
	{ "sock_create", "ag_sock_create", BPF_CGROUP_INET_SOCK_CREATE },
	{ "bind4", "ag_bind4", BPF_CGROUP_INET4_BIND },
	{ "bind6", "ag_bind6", BPF_CGROUP_INET6_BIND },
	{ "sendmsg4", "ag_sendmsg4", BPF_CGROUP_UDP4_SENDMSG },
	{ "sendmsg6", "ag_sendmsg6", BPF_CGROUP_UDP6_SENDMSG },
	{ "connect4", "ag_connect4", BPF_CGROUP_INET4_CONNECT },
	{ "connect6", "ag_connect6", BPF_CGROUP_INET6_CONNECT },
	{ "connect_unix", "ag_connect_unix", AG_ATTACH_UNIX_CONNECT },
	{ "sendmsg_unix", "ag_sendmsg_unix", AG_ATTACH_UNIX_SENDMSG },
};

bool ag_kern_prog_supported(int i)
{
	int type = ag_progs[i].attach_type;
	char why[128];

	if (type != AG_ATTACH_UNIX_CONNECT && type != AG_ATTACH_UNIX_SENDMSG)
		return true;
	return ag_probe_unix_hooks(why, sizeof(why));
}

static void kern_reset(struct ag_kern *k)
{
	memset(k, 0, sizeof(*k));
	for (int i = 0; i < AG_MAP__COUNT; i++)
		k->map_fd[i] = -1;
	k->charge_fd = -1;
	k->claim_fd = -1;
	k->dns_claim_fd = -1;
	k->serving_fd = -1;
}

void ag_kern_reset(struct ag_kern *k)
{
	kern_reset(k);
}

int ag_kern_link_pin_path(const struct ag_instance *in, const char *name, char *buf, size_t len)
{
	int n = snprintf(buf, len, "%s/links/%s", in->pin_dir, name);

	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

static bool pinned(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0;
}

bool ag_kern_installed(const struct ag_instance *in)
{
	char path[PATH_MAX];

	for (int i = 0; i < AG_PROG_COUNT; i++)
		if (ag_kern_prog_supported(i) &&
		    (ag_kern_link_pin_path(in, ag_progs[i].name, path, sizeof(path)) ||
		     !pinned(path)))
			return false;
	for (int i = 0; i < AG_MAP__COUNT; i++)
		if (ag_pin_path(in, ag_map_names[i], path, sizeof(path)) || !pinned(path))
			return false;
	return true;
}

static bool anything_pinned(const struct ag_instance *in)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/links", in->pin_dir);
	return pinned(in->pin_dir) || pinned(path);
}

int ag_kern_open(struct ag_kern *k, const struct ag_instance *in, struct ag_err *err)
{
	char path[PATH_MAX];

	kern_reset(k);
	for (int i = 0; i < AG_MAP__COUNT; i++) {
		if (ag_pin_path(in, ag_map_names[i], path, sizeof(path))) {
			ag_kern_close(k);
			return ag_errf(err, ENAMETOOLONG, "instance %s: pin path too long",
				       in->name);
		}
		k->map_fd[i] = bpf_obj_get(path);
		if (k->map_fd[i] < 0) {
			int e = errno;

			ag_kern_close(k);
			if (e == ENOENT)
				return ag_errf(err, e,
					       "instance %s is not installed (no %s); start "
					       "agentgated --instance %s",
					       in->name, path, in->name);
			return ag_errf(err, e, "map %s: %s", path, strerror(e));
		}
	}
	return 0;
}

void ag_kern_close(struct ag_kern *k)
{
	if (k->charge_fd >= 0)
		close(k->charge_fd);
	if (k->claim_fd >= 0)
		close(k->claim_fd);
	if (k->dns_claim_fd >= 0)
		close(k->dns_claim_fd);
	if (k->serving_fd >= 0)
		close(k->serving_fd);
	if (k->skel) {
		/* The skeleton owns the map fds it loaded. */
		sock_bpf__destroy(k->skel);
	} else {
		for (int i = 0; i < AG_MAP__COUNT; i++)
			if (k->map_fd[i] >= 0)
				close(k->map_fd[i]);
	}
	kern_reset(k);
}

static int own_netns_cookie(__u64 *cookie, struct ag_err *err)
{
	socklen_t len = sizeof(*cookie);
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), ret = 0;

	if (fd < 0 || getsockopt(fd, SOL_SOCKET, SO_NETNS_COOKIE, cookie, &len))
		ret = ag_errf(err, errno, "network namespace cookie: %s", strerror(errno));
	if (fd >= 0)
		close(fd);
	return ret;
}

int ag_kern_set_config(const struct ag_kern *k, const struct ag_config *cfg, struct ag_err *err)
{
	struct ag_config c = *cfg;
	__u32 zero = 0;
	int ret;

	if (!c.netns_cookie && (ret = own_netns_cookie(&c.netns_cookie, err)))
		return ret;
	if (bpf_map_update_elem(k->map_fd[AG_MAP_CONFIG], &zero, &c, BPF_ANY))
		return ag_errf(err, errno, "map config: update: %s", strerror(errno));
	return 0;
}

int ag_kern_get_config(const struct ag_kern *k, struct ag_config *cfg, struct ag_err *err)
{
	__u32 zero = 0;

	if (bpf_map_lookup_elem(k->map_fd[AG_MAP_CONFIG], &zero, cfg))
		return ag_errf(err, errno, "map config: lookup: %s", strerror(errno));
	return 0;
}

struct bpf_map *ag_kern_skel_map(struct sock_bpf *skel, enum ag_map_id id)
{
	switch (id) {
	case AG_MAP_CONFIG:
		return skel->maps.ag_config;
	case AG_MAP_AGENTS:
		return skel->maps.agents;
	case AG_MAP_DEST_RULES:
		return skel->maps.dest_rules;
	case AG_MAP_STATS:
		return skel->maps.stats;
	case AG_MAP_ORIGIN:
		return skel->maps.origin;
	case AG_MAP_QUOTA:
		return skel->maps.quota;
	case AG_MAP_NETNS:
		return skel->maps.netns;
	case AG_MAP_NETNS_LINKS:
		return skel->maps.netns_links;
	case AG_MAP_SERVING:
		return skel->maps.serving;
	case AG_MAP_UNIX_PATHS:
		return skel->maps.unix_paths;
	default:
		return skel->maps.events;
	}
}

static int cgroup_open(const char *path, struct ag_err *err)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0)
		return ag_errf(err, errno, "cgroup %s: open: %s", path, strerror(errno));
	return fd;
}

/*
 * Attach types come from ag_progs, not from section names: libbpf 1.1 knows
 * none for the unix-socket hooks.  Those are not loaded at all on a kernel
 * without them, which would refuse the attach type at load.
 */
int ag_kern_progs_prepare(struct sock_bpf *skel, struct ag_err *err)
{
	for (int i = 0; i < AG_PROG_COUNT; i++) {
		const struct ag_prog_desc *d = &ag_progs[i];
		struct bpf_program *prog = bpf_object__find_program_by_name(skel->obj, d->prog);

		if (!prog)
			return ag_errf(err, ENOENT, "program %s missing from sock.bpf.o", d->prog);
		if (!ag_kern_prog_supported(i))
			bpf_program__set_autoload(prog, false);
		else if (bpf_program__set_expected_attach_type(prog, d->attach_type))
			return ag_errf(err, EINVAL, "program %s: attach type %d refused", d->prog,
				       d->attach_type);
	}
	return 0;
}

/* A fresh install: load, configure, pin maps, attach and pin links. */
static int kern_load(struct ag_kern *k, const struct ag_instance *in, const struct ag_config *cfg,
		     struct ag_err *err)
{
	char path[PATH_MAX];
	int ret, agents_fd;

	k->skel = sock_bpf__open();
	if (!k->skel)
		return ag_errf(err, errno, "sock.bpf.o: open: %s", strerror(errno));
	if ((ret = ag_kern_progs_prepare(k->skel, err)))
		return ret;
	if ((ret = sock_bpf__load(k->skel)))
		return ag_errf(err, -ret, "sock.bpf.o: load: %s (see libbpf messages above)",
			       strerror(-ret));
	for (int i = 0; i < AG_MAP__COUNT; i++)
		k->map_fd[i] = bpf_map__fd(ag_kern_skel_map(k->skel, i));
	ret = ag_kern_set_config(k, cfg, err);
	if (ret)
		return ret;

	if (mkdir(in->pin_dir, 0700) && errno != EEXIST)
		return ag_errf(err, errno, "%s: mkdir: %s", in->pin_dir, strerror(errno));
	snprintf(path, sizeof(path), "%s/links", in->pin_dir);
	if (mkdir(path, 0700) && errno != EEXIST)
		return ag_errf(err, errno, "%s: mkdir: %s", path, strerror(errno));
	for (int i = 0; i < AG_MAP__COUNT; i++) {
		ag_pin_path(in, ag_map_names[i], path, sizeof(path));
		if (bpf_map__pin(ag_kern_skel_map(k->skel, i), path))
			return ag_errf(err, errno, "map %s: pin: %s", path, strerror(errno));
	}
	ag_pin_path(in, GATEWAY_FILTER_PIN, path, sizeof(path));
	if (bpf_program__pin(k->skel->progs.ag_gateway_filter, path))
		return ag_errf(err, errno, "program %s: pin: %s", path, strerror(errno));

	agents_fd = cgroup_open(in->cg_agents, err);
	if (agents_fd < 0)
		return agents_fd;
	for (int i = 0; i < AG_PROG_COUNT; i++) {
		const struct ag_prog_desc *d = &ag_progs[i];
		struct bpf_program *prog = bpf_object__find_program_by_name(k->skel->obj, d->prog);
		struct bpf_link *link;

		if (!ag_kern_prog_supported(i))
			continue;
		link = bpf_program__attach_cgroup(prog, agents_fd);
		if (!link) {
			ret = ag_errf(err, errno, "program %s: attach to %s: %s", d->prog,
				      in->cg_agents, strerror(errno));
			break;
		}
		ag_kern_link_pin_path(in, d->name, path, sizeof(path));
		ret = bpf_link__pin(link, path);
		/* Closing our fd keeps a pinned link; an unpinned one detaches. */
		bpf_link__destroy(link);
		if (ret) {
			ret = ag_errf(err, ret, "link %s: pin: %s", path, strerror(-ret));
			break;
		}
	}
	close(agents_fd);
	return ret;
}

int ag_kern_prog_repin(const struct ag_instance *in, int prog_fd, const char *name,
		       struct ag_err *err)
{
	char path[PATH_MAX], tmp[PATH_MAX];
	int n;

	if (ag_pin_path(in, name, path, sizeof(path)) ||
	    (n = snprintf(tmp, sizeof(tmp), "%s_new", path)) < 0 || (size_t)n >= sizeof(tmp))
		return ag_errf(err, ENAMETOOLONG, "instance %s: pin path too long", in->name);
	unlink(tmp);
	if (bpf_obj_pin(prog_fd, tmp) || rename(tmp, path)) {
		int e = errno;

		unlink(tmp);
		return ag_errf(err, e, "%s: pin: %s", path, strerror(e));
	}
	return 0;
}

/* The daemon's own programs' pins, in the order of daemon_prog_fds(). */
static const char *const daemon_pins[] = { "daemon_quota_charge", "daemon_origin_claim",
					   "daemon_dns_claim" };

static void daemon_prog_fds(struct ag_kern *k, int *fds[])
{
	fds[0] = &k->charge_fd;
	fds[1] = &k->claim_fd;
	fds[2] = &k->dns_claim_fd;
}

/* The programs a previous daemon of this build pinned: 0, or -errno with none kept. */
static int daemon_progs_adopt(struct ag_kern *k, const struct ag_instance *in)
{
	int *fds[AG_ARRAY_SIZE(daemon_pins)], ret = 0;
	char path[PATH_MAX];

	daemon_prog_fds(k, fds);
	for (size_t i = 0; i < AG_ARRAY_SIZE(daemon_pins) && !ret; i++) {
		if (ag_pin_path(in, daemon_pins[i], path, sizeof(path)))
			ret = -ENAMETOOLONG;
		else if ((*fds[i] = bpf_obj_get(path)) < 0)
			ret = -errno;
	}
	for (size_t i = 0; ret && i < AG_ARRAY_SIZE(daemon_pins); i++) {
		if (*fds[i] >= 0)
			close(*fds[i]);
		*fds[i] = -1;
	}
	return ret;
}

/*
 * bpf/daemon.bpf.c on the maps this process holds (loaded or adopted).
 * Only its program fds are kept: the object is attached to nothing, and
 * the maps stay the instance's.  They are pinned beside the maps, and a
 * restart of the same build adopts them: loading reads the kernel's BTF,
 * most of what a restart would otherwise cost.
 */
int ag_kern_daemon_progs_load(struct ag_kern *k, const struct ag_instance *in, bool adopt,
			      struct ag_err *err)
{
	struct daemon_bpf *skel;
	int *fds[AG_ARRAY_SIZE(daemon_pins)];
	int ret;

	if (adopt && !daemon_progs_adopt(k, in))
		return 0;
	skel = daemon_bpf__open();
	if (!skel)
		return ag_errf(err, errno, "daemon.bpf.o: open: %s", strerror(errno));
	if ((ret = bpf_map__reuse_fd(skel->maps.quota, k->map_fd[AG_MAP_QUOTA])) ||
	    (ret = bpf_map__reuse_fd(skel->maps.origin, k->map_fd[AG_MAP_ORIGIN])) ||
	    (ret = bpf_map__reuse_fd(skel->maps.ag_config, k->map_fd[AG_MAP_CONFIG])) ||
	    (ret = bpf_map__reuse_fd(skel->maps.netns_links, k->map_fd[AG_MAP_NETNS_LINKS]))) {
		ret = ag_errf(err, -ret, "daemon.bpf.o: reuse the instance's maps: %s",
			      strerror(-ret));
	} else if ((ret = daemon_bpf__load(skel))) {
		ret = ag_errf(err, -ret, "daemon.bpf.o: load: %s (see libbpf messages above)",
			      strerror(-ret));
	} else {
		k->charge_fd = fcntl(bpf_program__fd(skel->progs.quota_charge), F_DUPFD_CLOEXEC, 0);
		k->claim_fd = fcntl(bpf_program__fd(skel->progs.origin_claim), F_DUPFD_CLOEXEC, 0);
		k->dns_claim_fd = fcntl(bpf_program__fd(skel->progs.dns_claim), F_DUPFD_CLOEXEC, 0);
		if (k->charge_fd < 0 || k->claim_fd < 0 || k->dns_claim_fd < 0)
			ret = ag_errf(err, errno, "daemon.bpf.o: dup: %s", strerror(errno));
	}
	daemon_bpf__destroy(skel);
	daemon_prog_fds(k, fds);
	for (size_t i = 0; i < AG_ARRAY_SIZE(daemon_pins) && !ret; i++)
		ret = ag_kern_prog_repin(in, *fds[i], daemon_pins[i], err);
	return ret;
}

/* Whether the serving map holds this process's socket (its cookie). */
static bool serving_own(const struct ag_kern *k)
{
	__u64 mine, entry;
	socklen_t len = sizeof(mine);
	__u32 zero = 0;

	if (getsockopt(k->serving_fd, SOL_SOCKET, SO_COOKIE, &mine, &len))
		return true; /* unknown: delete, as before cookies were compared */
	return !bpf_map_lookup_elem(k->map_fd[AG_MAP_SERVING], &zero, &entry) && entry == mine;
}

int ag_kern_serving(struct ag_kern *k, bool on, struct ag_err *err)
{
	struct sockaddr_in lo = { .sin_family = AF_INET,
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	__u32 zero = 0;
	__u64 value; /* the map's value is 8 bytes: an fd in, a socket cookie out */
	int fd, ret;

	if (!on) {
		/* Only what this process serves; closing the socket alone would do. */
		if (k->serving_fd < 0)
			return 0;
		/* After a live upgrade the entry is the new daemon's: leave it. */
		ret = serving_own(k) && bpf_map_delete_elem(k->map_fd[AG_MAP_SERVING], &zero) &&
			      errno != ENOENT
			  ? ag_errf(err, errno, "map serving: delete: %s", strerror(errno))
			  : 0;
		close(k->serving_fd);
		k->serving_fd = -1;
		return ret;
	}
	if (k->serving_fd >= 0)
		return 0;
	/* A sockmap takes a UDP socket once it is bound. */
	fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&lo, sizeof(lo))) {
		int e = errno;

		if (fd >= 0)
			close(fd);
		return ag_errf(err, e, "serving socket: %s", strerror(e));
	}
	value = (__u64)fd;
	if (bpf_map_update_elem(k->map_fd[AG_MAP_SERVING], &zero, &value, BPF_ANY)) {
		int e = errno;

		close(fd);
		return ag_errf(err, e, "map serving: update: %s", strerror(e));
	}
	k->serving_fd = fd;
	return 0;
}

bool ag_kern_is_serving(const struct ag_instance *in)
{
	char path[PATH_MAX];
	__u64 cookie;
	__u32 zero = 0;
	bool serving;
	int fd;

	if (ag_pin_path(in, ag_map_names[AG_MAP_SERVING], path, sizeof(path)))
		return false;
	fd = bpf_obj_get(path);
	if (fd < 0)
		return false;
	serving = !bpf_map_lookup_elem(fd, &zero, &cookie);
	close(fd);
	return serving;
}

int ag_quota_charge(const struct ag_kern *k, uint64_t agent_id, struct ag_charge *c,
		    struct ag_err *err)
{
	LIBBPF_OPTS(bpf_test_run_opts, opts, .ctx_in = c, .ctx_size_in = sizeof(*c));

	memset(c, 0, sizeof(*c));
	c->agent_id = agent_id;
	if (k->charge_fd < 0)
		return ag_errf(err, EBADF, "quota_charge is not loaded in this process");
	if (bpf_prog_test_run_opts(k->charge_fd, &opts))
		return ag_errf(err, errno, "quota_charge: run: %s", strerror(errno));
	return 0;
}

/*
 * Whether the pinned maps are the ones this build's programs define: an
 * instance pinned by another version is refused rather than adopted, since
 * its programs would write records this daemon reads differently.
 */
int ag_kern_same_maps(const struct ag_kern *k, const struct ag_instance *in, struct ag_err *err)
{
	struct sock_bpf *skel = sock_bpf__open();
	int ret = 0;

	if (!skel)
		return ag_errf(err, errno, "sock.bpf.o: open: %s", strerror(errno));
	for (int i = 0; i < AG_MAP__COUNT && !ret; i++) {
		const struct bpf_map *m = ag_kern_skel_map(skel, i);
		struct bpf_map_info info;
		__u32 len = sizeof(info);

		memset(&info, 0, sizeof(info));
		if (bpf_obj_get_info_by_fd(k->map_fd[i], &info, &len))
			ret = ag_errf(err, errno, "map %s: %s", ag_map_names[i], strerror(errno));
		else if (info.type != bpf_map__type(m) || info.key_size != bpf_map__key_size(m) ||
			 info.value_size != bpf_map__value_size(m) ||
			 info.max_entries != bpf_map__max_entries(m))
			ret = ag_errf(err, EEXIST,
				      "instance %s was installed by another version (map %s "
				      "differs); run agentgatectl --instance %s uninstall first",
				      in->name, ag_map_names[i], in->name);
	}
	sock_bpf__destroy(skel);
	return ret;
}

int ag_kern_install(struct ag_kern *k, const struct ag_instance *in, const struct ag_config *cfg,
		    struct ag_err *err)
{
	int ret;

	kern_reset(k);
	ret = ag_bpffs_ensure(err);
	if (ret)
		return ret;
	if ((ret = ag_cgroup_mkdir(in->cg_root, err)) ||
	    (ret = ag_cgroup_mkdir(in->cg_agents, err)) ||
	    (ret = ag_cgroup_mkdir(in->cg_daemon, err)))
		return ret;

	if (ag_kern_installed(in)) {
		/* Fail closed: an older build does not run a newer one's maps. */
		ret = ag_kern_version_check(in, err);
		if (!ret)
			ret = ag_kern_open(k, in, err);
		if (!ret)
			ret = ag_kern_same_maps(k, in, err);
		if (ret) {
			ag_kern_close(k);
			return ret;
		}
		k->adopted = true;
		if (!(ret = ag_kern_set_config(k, cfg, err)))
			ret = ag_kern_daemon_progs_load(k, in, true, err);
		if (ret)
			ag_kern_close(k);
		return ret;
	}
	/*
	 * Half an instance (a crash during install, or a hand-removed pin), or
	 * one of another version's, is not adopted: links may be missing, and
	 * guessing which is worse than asking for a clean start.
	 */
	if (anything_pinned(in))
		return ag_errf(err, EEXIST,
			       "instance %s in %s is partly installed, or by another version; "
			       "run agentgatectl --instance %s uninstall first",
			       in->name, in->pin_dir, in->name);
	ret = kern_load(k, in, cfg, err);
	if (!ret)
		ret = ag_kern_daemon_progs_load(k, in, false, err);
	if (!ret)
		ret = ag_kern_version_write(in, err);
	if (ret) {
		struct ag_err ignored;

		ag_kern_close(k);
		ag_kern_uninstall(in, &ignored);
	}
	return ret;
}

/*
 * Unpins every entry of dir but subdirectories: whatever an instance
 * pinned there, including pins of another version's programs and maps.
 */
static int unpin_all(const char *dir, const char *what, int ret, struct ag_err *err)
{
	char path[PATH_MAX];
	DIR *d = opendir(dir);
	struct dirent *e;

	if (!d)
		return errno == ENOENT || ret ? ret
					      : ag_errf(err, errno, "%s: %s", dir, strerror(errno));
	while ((e = readdir(d))) {
		if (e->d_type == DT_DIR)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		if (unlink(path) && errno != ENOENT && !ret)
			ret = ag_errf(err, errno, "%s %s: unpin: %s", what, path, strerror(errno));
	}
	closedir(d);
	return ret;
}

int ag_kern_uninstall(const struct ag_instance *in, struct ag_err *err)
{
	char path[PATH_MAX];
	/* The veths first: their guards then only need unpinning. */
	int ret = ag_netns_remove_all(in, err), e = ag_guard_detach_all(in, err);

	if (!ret)
		ret = e;
	/* Links first: once they are gone, no program uses the maps. */
	snprintf(path, sizeof(path), "%s/links", in->pin_dir);
	ret = unpin_all(path, "link", ret, err);
	if (rmdir(path) && errno != ENOENT && !ret)
		ret = ag_errf(err, errno, "%s: rmdir: %s", path, strerror(errno));
	ret = unpin_all(in->pin_dir, "pin", ret, err);
	if (rmdir(in->pin_dir) && errno != ENOENT && !ret)
		ret = ag_errf(err, errno, "%s: rmdir: %s", in->pin_dir, strerror(errno));
	ag_kern_version_remove(in);
	return ret;
}

int ag_kern_gateway_filter(const struct ag_instance *in, struct ag_err *err)
{
	char path[PATH_MAX];
	int fd;

	if (ag_pin_path(in, GATEWAY_FILTER_PIN, path, sizeof(path)))
		return ag_errf(err, ENAMETOOLONG, "instance %s: pin path too long", in->name);
	fd = bpf_obj_get(path);
	if (fd < 0)
		return ag_errf(err, errno, "program %s: %s", path, strerror(errno));
	return fd;
}

static void sockaddr_to_addr(const struct sockaddr_storage *ss, __u8 addr[16], __u16 *port)
{
	memset(addr, 0, 16);
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;

		addr[10] = addr[11] = 0xff;
		memcpy(addr + 12, &sin->sin_addr, 4);
		*port = ntohs(sin->sin_port);
	} else {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)ss;

		memcpy(addr, &sin6->sin6_addr, 16);
		*port = ntohs(sin6->sin6_port);
	}
}

/*
 * The peer's address with one system call where that can be: SO_PEERNAME
 * rather than getpeername(), since it answers for a connection the agent
 * has closed already, and it wants the exact size, which only an IPv6
 * peer's second call knows.
 */
static int peer_address(int fd, struct sockaddr_storage *peer)
{
	socklen_t len = sizeof(struct sockaddr_in);

	if (getsockopt(fd, SOL_SOCKET, SO_PEERNAME, peer, &len))
		return -errno;
	if (peer->ss_family != AF_INET6)
		return 0;
	len = sizeof(struct sockaddr_in6);
	return getsockopt(fd, SOL_SOCKET, SO_PEERNAME, peer, &len) ? -errno : 0;
}

int ag_kern_origin(const struct ag_kern *k, int fd, struct ag_origin *o)
{
	struct sockaddr_storage peer;
	struct ag_claim c;
	LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = &c, .data_size_in = sizeof(c),
		    .data_out = &c, .data_size_out = sizeof(c));
	int ret;

	if (k->claim_fd < 0)
		return -EBADF;
	if ((ret = peer_address(fd, &peer)))
		return ret;
	memset(&c, 0, sizeof(c));
	sockaddr_to_addr(&peer, c.addr, &c.port);
	if (bpf_prog_test_run_opts(k->claim_fd, &opts))
		return -errno;
	if (opts.data_size_out != sizeof(c))
		return -EPROTO;
	if (!c.result)
		*o = c.origin;
	return c.result;
}

int ag_kern_dns_claim(const struct ag_kern *k, const struct sockaddr_in *peer, uint64_t *agent)
{
	/* The packet is not looked at, but a test run needs an Ethernet header's worth. */
	unsigned char pkt[64] = { [12] = 0x08 };
	struct __sk_buff ctx = { 0 };
	LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = pkt, .data_size_in = sizeof(pkt),
		    .ctx_in = &ctx, .ctx_size_in = sizeof(ctx), .ctx_out = &ctx,
		    .ctx_size_out = sizeof(ctx));

	if (k->dns_claim_fd < 0)
		return -EBADF;
	ctx.cb[AG_DNS_CLAIM_ADDR] = peer->sin_addr.s_addr;
	ctx.cb[AG_DNS_CLAIM_PORT] = ntohs(peer->sin_port);
	if (bpf_prog_test_run_opts(k->dns_claim_fd, &opts))
		return -errno;
	if (ctx.cb[AG_DNS_CLAIM_RESULT])
		return -ENOENT;
	*agent = (uint64_t)ctx.cb[AG_DNS_CLAIM_AGENT_HI] << 32 | ctx.cb[AG_DNS_CLAIM_AGENT_LO];
	return 0;
}

void ag_kern_links(const struct ag_instance *in, struct ag_link_status out[AG_PROG_COUNT])
{
	for (int i = 0; i < AG_PROG_COUNT; i++) {
		struct bpf_link_info info;
		__u32 len = sizeof(info);
		char path[PATH_MAX];
		int fd;

		memset(&out[i], 0, sizeof(out[i]));
		out[i].name = ag_progs[i].name;
		ag_kern_link_pin_path(in, ag_progs[i].name, path, sizeof(path));
		fd = bpf_obj_get(path);
		if (fd < 0)
			continue;
		out[i].pinned = true;
		memset(&info, 0, sizeof(info));
		if (!bpf_obj_get_info_by_fd(fd, &info, &len)) {
			out[i].link_id = info.id;
			out[i].prog_id = info.prog_id;
			out[i].cgroup_id = info.cgroup.cgroup_id;
		}
		close(fd);
	}
}
