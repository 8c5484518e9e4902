/* proxy.h - a TCP proxy between a client and budgetd that can lose a reply.
 *
 * A thread with poll() forwards raw bytes both ways (it knows nothing of
 * HTTP/2). In PROXY_DROP_REPLY mode it watches what budgetd sends for a
 * marker, a string the test put in the request that budgetd echoes only in
 * its response (a hold_id): budgetd answers only after the commit, so when
 * the marker shows up the mutation is in the log. The proxy then drops
 * those bytes, closes the client's connection (and its own to budgetd) and
 * moves to the mode the test chose for afterwards. In PROXY_PAUSED mode
 * budgetd is "down": the first connections are closed at once, later ones
 * wait in the listen backlog until the mode changes.
 */
#ifndef TC_PROXY_H
#define TC_PROXY_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#define PROXY_CONNS_MAX      16
#define PROXY_MARKER_LEN_MAX 64
#define PROXY_ADDR_SIZE      64

typedef enum proxy_mode {
	PROXY_FORWARD,    /* every byte, both ways */
	PROXY_DROP_REPLY, /* forward, but lose the first reply with the marker */
	PROXY_PAUSED,     /* refuse `refuse_while_paused` connections, hold the rest */
} proxy_mode;

typedef struct proxy_conn {
	int down_fd;                         /* the client's connection */
	int up_fd;                           /* ours to budgetd */
	char tail[PROXY_MARKER_LEN_MAX - 1]; /* the last bytes from budgetd */
	size_t tail_len;                     /* for a marker split across reads */
} proxy_conn;

typedef struct proxy {
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cond; /* signalled on every drop and refusal */
	int listen_fd;
	int wake[2];                /* a pipe that wakes the thread's poll() */
	char addr[PROXY_ADDR_SIZE]; /* 127.0.0.1:PORT: the client's target */
	/* Under mu: */
	char upstream[PROXY_ADDR_SIZE]; /* budgetd: 127.0.0.1:PORT */
	proxy_mode mode;
	proxy_mode after_drop; /* the mode once the reply is dropped */
	char marker[PROXY_MARKER_LEN_MAX];
	int refuse_while_paused;
	int drops;    /* replies lost */
	int refused;  /* connections closed while paused */
	int accepted; /* connections forwarded */
	bool stop;
	/* The thread's own: */
	proxy_conn conns[PROXY_CONNS_MAX];
	size_t nconns;
} proxy;

/* Listens on an ephemeral port of 127.0.0.1 and forwards to `upstream`
 * in PROXY_FORWARD mode. 0 or -1. */
int proxy_start(proxy *p, const char *upstream);

/* Loses the first reply of budgetd that contains `marker`, then goes to
 * `after` (PROXY_PAUSED: refusing `refuse` connections first). */
void proxy_drop_reply(proxy *p, const char *marker, proxy_mode after, int refuse);

/* Forwards to `upstream` (NULL: the same as before) in `mode`. */
void proxy_set(proxy *p, const char *upstream, proxy_mode mode);

/* PROXY_PAUSED: closes the next `refuse` connections, holds later ones. */
void proxy_pause(proxy *p, int refuse);

/* Waits until `drops` replies were lost / `refused` connections were
 * refused. false on timeout. */
bool proxy_wait_drops(proxy *p, int drops, int timeout_ms);
bool proxy_wait_refused(proxy *p, int refused, int timeout_ms);

/* The number of replies lost so far. */
int proxy_drops(proxy *p);

/* Stops the thread and closes every socket. */
void proxy_stop(proxy *p);

#endif
