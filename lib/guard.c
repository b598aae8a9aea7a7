// SPDX-License-Identifier: GPL-2.0
#include <dirent.h>
#include <stdarg.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <xdp/libxdp.h>

#include "guard.h"
#include "xdp_guard.skel.h"

#define GUARD_PREFIX "guard-"
#define GUARD_PROG "ag_xdp_guard"

static const char *const pin_names[] = { "config", "sources", "stats" };

/*
 * libxdp first tries its multi-program dispatcher; on kernels without
 * freplace that load fails with messages that read like errors, then it
 * falls back to one program as designed.  Our own messages say what went
 * wrong, and the mode is reported by ag_guard_info.
 */
static int quiet_libxdp(enum libxdp_print_level level, const char *fmt, va_list ap)
{
	return 0;
}

static int quiet_libbpf(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	return 0;
}

static int guard_dir(const struct ag_instance *in, const char *ifname, char *buf, size_t len)
{
	int n = snprintf(buf, len, "%s/" GUARD_PREFIX "%s", in->pin_dir, ifname);

	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

static struct bpf_map *skel_map(struct xdp_guard_bpf *skel, int i)
{
	return i == 0	? skel->maps.guard_config
	       : i == 1 ? skel->maps.guard_sources
			: skel->maps.guard_stats;
}

static const char *mode_name(enum xdp_attach_mode mode)
{
	switch (mode) {
	case XDP_MODE_NATIVE:
		return "native";
	case XDP_MODE_SKB:
		return "skb";
	case XDP_MODE_HW:
		return "hw";
	default:
		return "none";
	}
}

/* Our program on the interface, if it is there (caller closes mp). */
static struct xdp_program *find_ours(int ifindex, struct xdp_multiprog **mp)
{
	struct xdp_program *p = NULL;

	*mp = xdp_multiprog__get_from_ifindex(ifindex);
	if (libxdp_get_error(*mp)) {
		*mp = NULL;
		return NULL;
	}
	if (xdp_multiprog__is_legacy(*mp)) {
		p = xdp_multiprog__main_prog(*mp);
		return p && !strcmp(xdp_program__name(p), GUARD_PROG) ? p : NULL;
	}
	while ((p = xdp_multiprog__next_prog(p, *mp)))
		if (!strcmp(xdp_program__name(p), GUARD_PROG))
			return p;
	return NULL;
}

int ag_guard_attach(const struct ag_instance *in, const char *ifname,
		    const struct ag_guard_config *cfg, struct ag_err *err)
{
	unsigned int ifindex = if_nametoindex(ifname);
	struct xdp_guard_bpf *skel = NULL;
	struct xdp_program *prog = NULL;
	struct xdp_multiprog *mp = NULL;
	char dir[PATH_MAX], path[PATH_MAX + 16];
	__u32 zero = 0;
	int ret;

	if (!ifindex)
		return ag_errf(err, ENODEV, "interface %s: %s", ifname, strerror(errno));
	if (guard_dir(in, ifname, dir, sizeof(dir)))
		return ag_errf(err, ENAMETOOLONG, "interface %s: name too long", ifname);
	if (find_ours(ifindex, &mp)) {
		xdp_multiprog__close(mp);
		return ag_errf(err, EEXIST, "interface %s is already guarded; detach it first",
			       ifname);
	}
	xdp_multiprog__close(mp);
	if ((ret = ag_bpffs_ensure(err)))
		return ret;
	libxdp_print_fn_t old_xdp = libxdp_set_print(quiet_libxdp);
	libbpf_print_fn_t old_bpf = libbpf_set_print(quiet_libbpf);

	skel = xdp_guard_bpf__open();
	if (!skel) {
		ret = ag_errf(err, errno, "xdp_guard.bpf.o: open: %s", strerror(errno));
		goto out;
	}
	prog = xdp_program__from_bpf_obj(skel->obj, "xdp");
	if (libxdp_get_error(prog)) {
		ret = ag_errf(err, libxdp_get_error(prog), "xdp_guard.bpf.o: libxdp: %s",
			      strerror(-libxdp_get_error(prog)));
		prog = NULL;
		goto out;
	}
	ret = xdp_program__attach(prog, ifindex, XDP_MODE_NATIVE, 0);
	if (ret)
		ret = xdp_program__attach(prog, ifindex, XDP_MODE_SKB, 0);
	if (ret) {
		ret = ag_errf(err, ret, "interface %s: attach XDP: %s", ifname, strerror(-ret));
		goto out;
	}
	/* Configured right after the attach: until then every counted packet drops. */
	if (bpf_map__update_elem(skel->maps.guard_config, &zero, sizeof(zero), cfg, sizeof(*cfg),
				 0)) {
		ret =
		    ag_errf(err, errno, "interface %s: guard config: %s", ifname, strerror(errno));
		goto detach;
	}
	if ((mkdir(in->pin_dir, 0700) && errno != EEXIST) ||
	    (mkdir(dir, 0700) && errno != EEXIST)) {
		ret = ag_errf(err, errno, "%s: mkdir: %s", dir, strerror(errno));
		goto detach;
	}
	for (int i = 0; i < 3; i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, pin_names[i]);
		if (bpf_map__pin(skel_map(skel, i), path)) {
			ret = ag_errf(err, errno, "map %s: pin: %s", path, strerror(errno));
			goto detach;
		}
	}
	goto out;
detach:
	xdp_program__detach(prog, ifindex, XDP_MODE_UNSPEC, 0);
	for (int i = 0; i < 3; i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, pin_names[i]);
		unlink(path);
	}
	rmdir(dir);
out:
	xdp_program__close(prog);
	xdp_guard_bpf__destroy(skel);
	libxdp_set_print(old_xdp);
	libbpf_set_print(old_bpf);
	return ret;
}

int ag_guard_set(const struct ag_instance *in, const char *ifname,
		 const struct ag_guard_config *cfg, struct ag_err *err)
{
	char dir[PATH_MAX], path[PATH_MAX + 16];
	struct ag_guard_info gi;
	struct ag_err ignored;
	__u32 zero = 0;
	int fd, ret = 0;

	if (guard_dir(in, ifname, dir, sizeof(dir)))
		return ag_errf(err, ENAMETOOLONG, "interface %s: name too long", ifname);
	if (ag_guard_info(in, ifname, &gi, &ignored) || !gi.attached) {
		/* Pins whose program is gone (an interface made again) are stale. */
		ag_guard_detach(in, ifname, &ignored);
		return ag_guard_attach(in, ifname, cfg, err);
	}
	snprintf(path, sizeof(path), "%s/config", dir);
	fd = bpf_obj_get(path);
	if (fd < 0 || bpf_map_update_elem(fd, &zero, cfg, 0))
		ret =
		    ag_errf(err, errno, "interface %s: guard config: %s", ifname, strerror(errno));
	if (fd >= 0)
		close(fd);
	return ret;
}

int ag_guard_detach(const struct ag_instance *in, const char *ifname, struct ag_err *err)
{
	unsigned int ifindex = if_nametoindex(ifname);
	struct xdp_multiprog *mp = NULL;
	struct xdp_program *p;
	char dir[PATH_MAX], path[PATH_MAX + 16];
	int ret = 0;

	if (guard_dir(in, ifname, dir, sizeof(dir)))
		return ag_errf(err, ENAMETOOLONG, "interface %s: name too long", ifname);
	/* An interface that is gone took its program with it: just unpin. */
	if (ifindex && (p = find_ours(ifindex, &mp))) {
		ret = xdp_program__detach(p, ifindex, xdp_multiprog__attach_mode(mp), 0);
		if (ret)
			ret = ag_errf(err, ret, "interface %s: detach XDP: %s", ifname,
				      strerror(-ret));
	}
	xdp_multiprog__close(mp);
	for (int i = 0; i < 3; i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, pin_names[i]);
		unlink(path);
	}
	if (rmdir(dir) && errno != ENOENT && !ret)
		ret = ag_errf(err, errno, "%s: rmdir: %s", dir, strerror(errno));
	return ret;
}

int ag_guard_foreach(const struct ag_instance *in, void (*fn)(const char *ifname, void *arg),
		     void *arg)
{
	DIR *d = opendir(in->pin_dir);
	struct dirent *de;

	if (!d)
		return errno == ENOENT ? 0 : -errno;
	while ((de = readdir(d)))
		if (!strncmp(de->d_name, GUARD_PREFIX, strlen(GUARD_PREFIX)))
			fn(de->d_name + strlen(GUARD_PREFIX), arg);
	closedir(d);
	return 0;
}

struct detach_all {
	const struct ag_instance *in;
	struct ag_err *err;
	int ret;
};

static void detach_one(const char *ifname, void *arg)
{
	struct detach_all *a = arg;
	int ret = ag_guard_detach(a->in, ifname, a->err);

	if (ret && !a->ret)
		a->ret = ret;
}

int ag_guard_detach_all(const struct ag_instance *in, struct ag_err *err)
{
	struct detach_all a = { .in = in, .err = err };

	ag_guard_foreach(in, detach_one, &a);
	return a.ret;
}

int ag_guard_info(const struct ag_instance *in, const char *ifname, struct ag_guard_info *info,
		  struct ag_err *err)
{
	unsigned int ifindex = if_nametoindex(ifname);
	struct xdp_multiprog *mp = NULL;
	char dir[PATH_MAX], path[PATH_MAX + 16];
	__u32 zero = 0;
	int fd;

	memset(info, 0, sizeof(*info));
	snprintf(info->ifname, sizeof(info->ifname), "%s", ifname);
	info->mode = "none";
	if (guard_dir(in, ifname, dir, sizeof(dir)))
		return ag_errf(err, ENAMETOOLONG, "interface %s: name too long", ifname);
	if (ifindex && find_ours(ifindex, &mp)) {
		info->attached = true;
		info->mode = mode_name(xdp_multiprog__attach_mode(mp));
		info->legacy = xdp_multiprog__is_legacy(mp);
	}
	xdp_multiprog__close(mp);
	snprintf(path, sizeof(path), "%s/config", dir);
	fd = bpf_obj_get(path);
	if (fd < 0)
		return ag_errf(err, errno, "interface %s is not guarded by instance %s", ifname,
			       in->name);
	bpf_map_lookup_elem(fd, &zero, &info->cfg);
	close(fd);
	snprintf(path, sizeof(path), "%s/stats", dir);
	fd = bpf_obj_get(path);
	if (fd >= 0) {
		bpf_map_lookup_elem(fd, &zero, &info->stats);
		close(fd);
	}
	return 0;
}
