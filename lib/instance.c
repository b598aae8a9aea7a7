// SPDX-License-Identifier: GPL-2.0
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/statfs.h>
#include <linux/magic.h>

#include "cgroup.h"
#include "instance.h"

static int valid_name(const char *name)
{
	size_t n = strlen(name);

	if (n == 0 || n >= AG_INSTANCE_MAX || name[0] == '.' || name[0] == '-')
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '-' || c == '.'))
			return 0;
	}
	return 1;
}

#define PATHF(buf, err, ...)                                                       \
	do {                                                                       \
		int __n = snprintf(buf, sizeof(buf), __VA_ARGS__);                 \
		if (__n < 0 || (size_t)__n >= sizeof(buf))                         \
			return ag_errf(err, ENAMETOOLONG, "path too long: " #buf); \
	} while (0)

int ag_instance_init(struct ag_instance *in, const char *name, const char *state_dir,
		     struct ag_err *err)
{
	int ret;

	memset(in, 0, sizeof(*in));
	if (!valid_name(name))
		return ag_errf(err, EINVAL,
			       "instance name \"%s\": use 1-%d of [A-Za-z0-9_.-], not starting "
			       "with '.' or '-'",
			       name, AG_INSTANCE_MAX - 1);
	strcpy(in->name, name);
	ret = ag_cgroup2_mount(in->cgroup2, sizeof(in->cgroup2), err);
	if (ret)
		return ret;
	PATHF(in->cg_root, err, "%s/%s", in->cgroup2, name);
	PATHF(in->cg_agents, err, "%s/agents", in->cg_root);
	PATHF(in->cg_daemon, err, "%s/daemon", in->cg_root);
	PATHF(in->pin_dir, err, "%s/%s", AG_BPFFS, name);
	PATHF(in->run_dir, err, "/run/%s", name);
	if (state_dir)
		PATHF(in->state_dir, err, "%s", state_dir);
	else
		PATHF(in->state_dir, err, "/var/lib/%s", name);
	PATHF(in->control_path, err, "%s/control.sock", in->run_dir);
	PATHF(in->pid_path, err, "%s/agentgated.pid", in->run_dir);
	return 0;
}

int ag_bpffs_ensure(struct ag_err *err)
{
	struct statfs st;

	if (statfs(AG_BPFFS, &st) == 0 && st.f_type == BPF_FS_MAGIC)
		return 0;
	if (mount("bpf", AG_BPFFS, "bpf", 0, "mode=0700"))
		return ag_errf(err, errno, "%s: mount bpffs: %s", AG_BPFFS, strerror(errno));
	return 0;
}

int ag_pin_path(const struct ag_instance *in, const char *rel, char *buf, size_t len)
{
	int n = snprintf(buf, len, "%s/%s", in->pin_dir, rel);

	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

int ag_instance_daemon_pid(const struct ag_instance *in)
{
	char *text = NULL;
	long pid;

	if (ag_read_file(in->pid_path, 64, &text, NULL, NULL))
		return 0;
	pid = strtol(text, NULL, 10);
	free(text);
	if (pid <= 0 || pid > INT32_MAX)
		return 0;
	if (kill((pid_t)pid, 0) && errno == ESRCH)
		return 0;
	return (int)pid;
}
