/* bd_notify.h - systemd's notification protocol, without ever blocking.
 *
 * sd_notify(3) sends with a blocking datagram: when the reader of
 * $NOTIFY_SOCKET falls behind (a full queue), it would stop the event loop
 * and every call with it. These sends never wait: a message that does not
 * fit is dropped (the next status or ping replaces it) and counted.
 */
#ifndef BD_NOTIFY_H
#define BD_NOTIFY_H

/* Opens the socket named by $NOTIFY_SOCKET, if any. 0, or -errno. */
int bd_notify_open(void);

/* Sends "KEY=VALUE\n..." when a socket is open. 0, -EAGAIN when dropped,
 * or another -errno. Loop thread. */
int bd_notify(const char *message);

void bd_notify_close(void);

#endif
