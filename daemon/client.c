// SPDX-License-Identifier: GPL-2.0
/* A loop client's life cycle (see client.h). */
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>

#include "client.h"
#include "loop.h"

enum { OP_RECV = 1, OP_SEND };

void ag_clients_init(struct ag_clients *set, unsigned int max)
{
	ag_list_init(&set->list);
	set->nr = 0;
	set->max = max;
}

void ag_clients_stop(struct ag_clients *set)
{
	struct ag_list *pos, *next;

	for (pos = set->list.next; pos != &set->list; pos = next) {
		next = pos->next;
		ag_client_close(ag_container_of(pos, struct ag_client, node));
	}
}

static void client_release(struct ag_client *c)
{
	ag_list_del(&c->node);
	c->set->nr--;
	close(c->fd);
	free(c->out);
	free(c); /* the owner's object: c is its first member */
}

void ag_client_close(struct ag_client *c)
{
	if (c->state == AG_CLIENT_CLOSING)
		return;
	c->state = AG_CLIENT_CLOSING;
	if (c->inflight)
		ag_ring_cancel_fd(&c->l->ring, c->fd);
	else
		client_release(c);
}

static void client_send_rest(struct ag_client *c);

static void client_on_send(struct ag_client *c, int res)
{
	if (res > 0) {
		c->out_off += res;
		if (c->out_off < c->out_len) {
			client_send_rest(c);
			return;
		}
		free(c->out);
		c->out = NULL;
	}
	c->ops->sent(c, res);
}

static void client_complete(struct ag_io *io, unsigned int op, const struct io_uring_cqe *cqe)
{
	struct ag_client *c = ag_container_of(io, struct ag_client, io);

	/* Still counted until the handler is done, so a close inside it cannot free c. */
	if (c->state != AG_CLIENT_CLOSING) {
		if (op == OP_RECV)
			c->ops->received(c, cqe->res);
		else
			client_on_send(c, cqe->res);
	}
	if (!--c->inflight && c->state == AG_CLIENT_CLOSING)
		client_release(c);
}

void ag_client_start(struct ag_client *c, struct ag_clients *set, struct ag_loop *l, int fd,
		     const struct ag_client_ops *ops)
{
	c->io.complete = client_complete;
	c->set = set;
	c->l = l;
	c->ops = ops;
	c->fd = fd;
	c->state = AG_CLIENT_READING;
	ag_list_add_tail(&set->list, &c->node);
	set->nr++;
}

void ag_client_deadline(struct ag_client *c, unsigned int seconds)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	c->deadline.tv_sec = now.tv_sec + seconds;
	c->deadline.tv_nsec = now.tv_nsec;
}

/* op on c->fd, with its linked timeout, in one submit; NULL when closed instead. */
static struct io_uring_sqe *client_sqe(struct ag_client *c, unsigned int op)
{
	struct ag_ring *r = &c->l->ring;
	struct io_uring_sqe *sqe;

	if (!ag_ring_reserve(r, 2)) {
		ag_client_close(c);
		return NULL;
	}
	sqe = ag_ring_sqe(r, &c->io, op);
	c->inflight++;
	return sqe;
}

void ag_client_recv(struct ag_client *c, void *buf, size_t len)
{
	struct io_uring_sqe *sqe = client_sqe(c, OP_RECV);

	if (!sqe)
		return;
	c->state = AG_CLIENT_READING;
	io_uring_prep_recv(sqe, c->fd, buf, len, 0);
	ag_ring_link_timeout(&c->l->ring, sqe, &c->deadline, IORING_TIMEOUT_ABS);
}

/* -> AG_CLIENT_WRITING: the rest of c->out. */
static void client_send_rest(struct ag_client *c)
{
	struct io_uring_sqe *sqe = client_sqe(c, OP_SEND);

	if (!sqe)
		return;
	c->state = AG_CLIENT_WRITING;
	io_uring_prep_send(sqe, c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
	ag_ring_link_timeout(&c->l->ring, sqe, &c->deadline, IORING_TIMEOUT_ABS);
}

void ag_client_send(struct ag_client *c, char *out, size_t len)
{
	free(c->out);
	c->out = out;
	c->out_len = len;
	c->out_off = 0;
	client_send_rest(c);
}
