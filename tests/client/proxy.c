/* proxy.c - see proxy.h. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "proxy.h"

#define PROXY_CHUNK_BYTES 16384
#define PROXY_BACKLOG     16

/* "127.0.0.1:PORT" to a sockaddr. */
static int parse_addr(const char *addr, struct sockaddr_in *sa)
{
	const char *colon = strrchr(addr, ':');
	char host[PROXY_ADDR_SIZE];

	if (!colon || (size_t)(colon - addr) >= sizeof(host))
		return -1;
	memcpy(host, addr, (size_t)(colon - addr));
	host[colon - addr] = '\0';
	memset(sa, 0, sizeof(*sa));
	sa->sin_family = AF_INET;
	sa->sin_port = htons((uint16_t)atoi(colon + 1));
	return inet_pton(AF_INET, host, &sa->sin_addr) == 1 ? 0 : -1;
}

static int connect_to(const char *addr)
{
	struct sockaddr_in sa;
	int fd;

	if (parse_addr(addr, &sa) != 0)
		return -1;
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static int send_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

static void wake(proxy *p)
{
	char c = 0;

	if (write(p->wake[1], &c, 1) < 0 && errno != EAGAIN)
		perror("proxy: wake");
}

static void close_conn(proxy_conn *c)
{
	if (c->down_fd >= 0)
		close(c->down_fd);
	if (c->up_fd >= 0)
		close(c->up_fd);
	c->down_fd = c->up_fd = -1;
}

static void accept_one(proxy *p)
{
	int fd = accept4(p->listen_fd, NULL, NULL, SOCK_CLOEXEC);
	char upstream[PROXY_ADDR_SIZE];
	bool refuse;

	if (fd < 0)
		return;
	pthread_mutex_lock(&p->mu);
	refuse = p->mode == PROXY_PAUSED;
	if (refuse) {
		p->refused++;
		pthread_cond_broadcast(&p->cond);
	}
	snprintf(upstream, sizeof(upstream), "%s", p->upstream);
	pthread_mutex_unlock(&p->mu);
	if (refuse || p->nconns == PROXY_CONNS_MAX) {
		close(fd);
		return;
	}
	int up = connect_to(upstream);
	if (up < 0) { /* budgetd is down: so is the proxy */
		close(fd);
		return;
	}
	p->conns[p->nconns++] = (proxy_conn){.down_fd = fd, .up_fd = up};
	pthread_mutex_lock(&p->mu);
	p->accepted++;
	pthread_mutex_unlock(&p->mu);
}

/* True when the marker is in the bytes budgetd sent on `c`: its tail from
 * earlier reads and `buf`. Keeps the new tail. */
static bool saw_marker(proxy_conn *c, const char *marker, const char *buf, size_t len)
{
	size_t mlen = strlen(marker);
	char window[sizeof(c->tail) + PROXY_CHUNK_BYTES];
	size_t wlen = c->tail_len + len;
	bool found;

	memcpy(window, c->tail, c->tail_len);
	memcpy(window + c->tail_len, buf, len);
	found = mlen > 0 && memmem(window, wlen, marker, mlen) != NULL;
	c->tail_len = wlen < sizeof(c->tail) ? wlen : sizeof(c->tail);
	memmove(c->tail, window + wlen - c->tail_len, c->tail_len);
	return found;
}

/* Moves what is readable on one side of `c` to the other. Returns false
 * when the connection is over (EOF, error, or a lost reply). */
static bool pump(proxy *p, proxy_conn *c, bool from_budgetd)
{
	char buf[PROXY_CHUNK_BYTES];
	int from = from_budgetd ? c->up_fd : c->down_fd;
	int to = from_budgetd ? c->down_fd : c->up_fd;
	ssize_t n = recv(from, buf, sizeof(buf), 0);

	if (n < 0 && errno == EINTR)
		return true;
	if (n <= 0)
		return false;
	if (from_budgetd) {
		bool drop = false;

		pthread_mutex_lock(&p->mu);
		if (p->mode == PROXY_DROP_REPLY && saw_marker(c, p->marker, buf, (size_t)n)) {
			drop = true;
			p->drops++;
			p->mode = p->after_drop;
			pthread_cond_broadcast(&p->cond);
		}
		pthread_mutex_unlock(&p->mu);
		if (drop)
			return false;
	}
	return send_all(to, buf, (size_t)n) == 0;
}

static void *run(void *arg)
{
	proxy *p = arg;
	struct pollfd fds[2 + 2 * PROXY_CONNS_MAX];

	for (;;) {
		size_t n = 0;
		bool listen_now;

		pthread_mutex_lock(&p->mu);
		if (p->stop) {
			pthread_mutex_unlock(&p->mu);
			break;
		}
		listen_now = p->mode != PROXY_PAUSED || p->refused < p->refuse_while_paused;
		pthread_mutex_unlock(&p->mu);

		fds[n++] = (struct pollfd){.fd = p->wake[0], .events = POLLIN};
		/* Not polled: a new connection waits in the backlog. */
		fds[n++] = (struct pollfd){.fd = listen_now ? p->listen_fd : -1, .events = POLLIN};
		for (size_t i = 0; i < p->nconns; i++) {
			fds[n++] = (struct pollfd){.fd = p->conns[i].down_fd, .events = POLLIN};
			fds[n++] = (struct pollfd){.fd = p->conns[i].up_fd, .events = POLLIN};
		}
		/* No timeout: proxy_stop and every change of mode wake it. */
		if (poll(fds, n, -1) < 0) {
			if (errno == EINTR)
				continue;
			perror("proxy: poll");
			break;
		}
		if (fds[0].revents) {
			char drain[64];

			while (read(p->wake[0], drain, sizeof(drain)) > 0)
				;
		}
		for (size_t i = 0; i < p->nconns; i++) {
			proxy_conn *c = &p->conns[i];
			short down = fds[2 + 2 * i].revents, up = fds[3 + 2 * i].revents;

			if ((down && !pump(p, c, false)) || (up && !pump(p, c, true)))
				close_conn(c);
		}
		/* Forget the closed connections before taking new ones. */
		size_t kept = 0;
		for (size_t i = 0; i < p->nconns; i++)
			if (p->conns[i].down_fd >= 0)
				p->conns[kept++] = p->conns[i];
		p->nconns = kept;
		if (fds[1].revents)
			accept_one(p);
	}
	for (size_t i = 0; i < p->nconns; i++)
		close_conn(&p->conns[i]);
	p->nconns = 0;
	return NULL;
}

int proxy_start(proxy *p, const char *upstream)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(sa);
	pthread_condattr_t ca;

	memset(p, 0, sizeof(*p));
	p->wake[0] = p->wake[1] = -1;
	p->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (p->listen_fd < 0 || bind(p->listen_fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
	    listen(p->listen_fd, PROXY_BACKLOG) != 0 ||
	    getsockname(p->listen_fd, (struct sockaddr *)&sa, &len) != 0 ||
	    pipe2(p->wake, O_CLOEXEC | O_NONBLOCK) != 0) {
		perror("proxy: listen");
		return -1;
	}
	snprintf(p->addr, sizeof(p->addr), "127.0.0.1:%u", (unsigned)ntohs(sa.sin_port));
	snprintf(p->upstream, sizeof(p->upstream), "%s", upstream);
	p->mode = PROXY_FORWARD;
	pthread_mutex_init(&p->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&p->cond, &ca);
	pthread_condattr_destroy(&ca);
	if (pthread_create(&p->thread, NULL, run, p) != 0) {
		perror("proxy: thread");
		return -1;
	}
	return 0;
}

void proxy_drop_reply(proxy *p, const char *marker, proxy_mode after, int refuse)
{
	pthread_mutex_lock(&p->mu);
	snprintf(p->marker, sizeof(p->marker), "%s", marker);
	p->after_drop = after;
	p->refuse_while_paused = p->refused + refuse;
	p->mode = PROXY_DROP_REPLY;
	pthread_mutex_unlock(&p->mu);
	wake(p);
}

void proxy_set(proxy *p, const char *upstream, proxy_mode mode)
{
	pthread_mutex_lock(&p->mu);
	if (upstream)
		snprintf(p->upstream, sizeof(p->upstream), "%s", upstream);
	p->mode = mode;
	pthread_mutex_unlock(&p->mu);
	wake(p);
}

void proxy_pause(proxy *p, int refuse)
{
	pthread_mutex_lock(&p->mu);
	p->refuse_while_paused = p->refused + refuse;
	p->mode = PROXY_PAUSED;
	pthread_mutex_unlock(&p->mu);
	wake(p);
}

/* Waits until *counter >= want. */
static bool wait_count(proxy *p, const int *counter, int want, int timeout_ms)
{
	struct timespec until;
	bool ok = true;

	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += timeout_ms / 1000;
	until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&p->mu);
	while (*counter < want && ok)
		ok = pthread_cond_timedwait(&p->cond, &p->mu, &until) == 0 || *counter >= want;
	ok = *counter >= want;
	pthread_mutex_unlock(&p->mu);
	return ok;
}

bool proxy_wait_drops(proxy *p, int drops, int timeout_ms)
{
	return wait_count(p, &p->drops, drops, timeout_ms);
}

bool proxy_wait_refused(proxy *p, int refused, int timeout_ms)
{
	return wait_count(p, &p->refused, refused, timeout_ms);
}

int proxy_drops(proxy *p)
{
	int n;

	pthread_mutex_lock(&p->mu);
	n = p->drops;
	pthread_mutex_unlock(&p->mu);
	return n;
}

void proxy_stop(proxy *p)
{
	if (p->wake[1] < 0)
		return;
	pthread_mutex_lock(&p->mu);
	p->stop = true;
	pthread_mutex_unlock(&p->mu);
	wake(p);
	pthread_join(p->thread, NULL);
	close(p->listen_fd);
	close(p->wake[0]);
	close(p->wake[1]);
	p->wake[0] = p->wake[1] = -1;
	pthread_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->cond);
}
