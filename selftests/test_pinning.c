// SPDX-License-Identifier: GPL-2.0
/*
 * Why links are pinned.  A loader process attaches connect4 to a scratch
 * cgroup and exits, as a daemon does when it is killed.  Unpinned, the link
 * dies with it and the agent reaches the tool directly: fail open.  Pinned,
 * the link outlives it and, with no daemon listening, the agent's connect
 * is refused: fail closed.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "cgroup.h"
#include "sock.skel.h"
#include "test.h"
#include "testlib.h"

struct loader_args {
	const char *cgroup2, *cgroup, *pin;
	uint16_t daemon_port;
};

/* Runs in a child process; its exit is the "daemon died" moment. */
static int load_and_exit(const struct loader_args *a)
{
	struct sock_bpf *skel = sock_bpf__open_and_load();
	struct ag_config cfg = { 0 };
	uint32_t lo = htonl(INADDR_LOOPBACK), zero = 0;
	struct bpf_link *link;
	int cgfd;

	if (!skel)
		return 1;
	memcpy(&cfg.daemon_ip4, &lo, 4);
	cfg.daemon_port = a->daemon_port;
	cfg.mark = 0x41470001;
	cfg.agents_level = ag_cgroup_level(a->cgroup2, a->cgroup);
	cfg.default_verdict = AG_VERDICT_REDIRECT;
	if (bpf_map__update_elem(skel->maps.ag_config, &zero, sizeof(zero), &cfg, sizeof(cfg), 0))
		return 2;
	cgfd = open(a->cgroup, O_RDONLY | O_DIRECTORY);
	link = bpf_program__attach_cgroup(skel->progs.ag_connect4, cgfd);
	if (!link)
		return 3;
	if (a->pin && bpf_link__pin(link, a->pin))
		return 4;
	return 0; /* exit: every fd closes, the skeleton with it */
}

static int run_loader(const struct loader_args *a)
{
	int status;
	pid_t pid = fork();

	if (pid == 0)
		_exit(load_and_exit(a));
	if (pid < 0 || waitpid(pid, &status, 0) < 0 || !WIFEXITED(status))
		return -1;
	return WEXITSTATUS(status);
}

struct connect_result {
	uint16_t port;
	int ret, err;
};

static int agent_connect(void *arg)
{
	struct connect_result *r = arg;
	struct sockaddr_storage ss;
	socklen_t len = make_sockaddr("127.0.0.1", r->port, &ss);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	r->ret = connect(fd, (struct sockaddr *)&ss, len);
	r->err = errno;
	close(fd);
	return 0;
}

TEST(pinning_fail_closed)
{
	struct connect_result *r = shared_alloc(sizeof(*r));
	char root[AG_PATH_MAX], agents[AG_PATH_MAX + AG_INSTANCE_MAX + 8], agent[PATH_MAX];
	char pin[PATH_MAX];
	struct loader_args a = { 0 };
	struct ag_err err;
	uint16_t tool_port;
	int tool, c;

	if (!ASSERT_OK(ag_bpffs_ensure(&err), "bpffs") ||
	    !ASSERT_OK(ag_cgroup2_mount(root, sizeof(root), &err), "cgroup2"))
		return;
	snprintf(agents, sizeof(agents), "%s/%s", root, test__instance("pinning"));
	snprintf(agent, sizeof(agent), "%s/a", agents);
	snprintf(pin, sizeof(pin), "%s/%s-link", AG_BPFFS, test__instance("pinning"));
	ag_cgroup_mkdir(agents, &err);
	ag_cgroup_mkdir(agent, &err);
	tool = tcp_listen("127.0.0.1", 0, &tool_port);
	a.cgroup2 = root;
	a.cgroup = agents;
	a.daemon_port = free_port(); /* nothing listens there: no daemon */
	r->port = tool_port;

	if (test__start_subtest("unpinned_link_fails_open")) {
		ASSERT_EQ(run_loader(&a), 0, "loader attached and exited");
		run_in_cgroup(agent, NOBODY_UID, agent_connect, r);
		ASSERT_EQ(r->ret, 0, "agent connect succeeded");
		c = accept_timeout(tool, 1000);
		ASSERT_GE(c, 0, "the agent reached the tool directly: fail open");
		if (c >= 0)
			close(c);
	}
	if (test__start_subtest("pinned_link_fails_closed")) {
		a.pin = pin;
		ASSERT_EQ(run_loader(&a), 0, "loader attached, pinned and exited");
		run_in_cgroup(agent, NOBODY_UID, agent_connect, r);
		ASSERT_EQ(r->ret, -1, "agent connect refused");
		ASSERT_EQ(r->err, ECONNREFUSED, "errno");
		ASSERT_FALSE(has_pending(tool), "nothing reached the tool");
		unlink(pin);
		/* With the pin gone the link goes too: the agent is free again. */
		run_in_cgroup(agent, NOBODY_UID, agent_connect, r);
		ASSERT_EQ(r->ret, 0, "connect works once unpinned");
		c = accept_timeout(tool, 1000);
		if (c >= 0)
			close(c);
	}
	unlink(pin);
	close(tool);
	ag_cgroup_destroy(agents, &err);
	munmap(r, sizeof(*r));
}

/*
 * A pinned instance whose maps are not this build's (another version
 * installed it) is refused, with what to do, rather than adopted: its
 * programs would write records the daemon reads differently.
 */
TEST(pinning_other_version)
{
	char path[PATH_MAX];
	struct ag_kern k2;
	struct ag_err err = { 0 };
	struct tinst t;
	int fd;

	if (!ASSERT_OK(tinst_create(&t, "version", TINST_NO_LISTENER, NULL, 0), "instance"))
		return;
	ag_pin_path(&t.in, ag_map_names[AG_MAP_ORIGIN], path, sizeof(path));
	ASSERT_OK(unlink(path), "unpin origin");
	fd = bpf_map_create(BPF_MAP_TYPE_ARRAY, "origin", sizeof(__u32), 64, AG_ORIGIN_SLOTS, NULL);
	if (ASSERT_GE(fd, 0, "an origin map of another layout") &&
	    ASSERT_OK(bpf_obj_pin(fd, path), "pinned in its place")) {
		ASSERT_EQ(ag_kern_install(&k2, &t.in, &t.cfg, &err), -EEXIST, "not adopted");
		ASSERT_STRHAS(err.msg, "another version (map origin differs)", "says why");
		ASSERT_STRHAS(err.msg, "uninstall", "says what to do");
		ag_kern_close(&k2);
	}
	if (fd >= 0)
		close(fd);
	tinst_destroy(&t);
}
