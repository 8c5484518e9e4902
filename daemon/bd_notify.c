/* bd_notify.c - see bd_notify.h. The datagram format is systemd's
 * sd_notify protocol: the message text, sent to $NOTIFY_SOCKET (a path, or
 * an abstract name starting with '@'). */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "bd_notify.h"

static int notify_fd = -1;
static struct sockaddr_un notify_addr;
static socklen_t notify_len;

int bd_notify_open(void)
{
	const char *path = getenv("NOTIFY_SOCKET");
	size_t n = path ? strlen(path) : 0;

	if (n == 0)
		return 0;
	if ((path[0] != '/' && path[0] != '@') || n >= sizeof(notify_addr.sun_path))
		return -EINVAL;
	memset(&notify_addr, 0, sizeof(notify_addr));
	notify_addr.sun_family = AF_UNIX;
	memcpy(notify_addr.sun_path, path, n);
	if (path[0] == '@')
		notify_addr.sun_path[0] = '\0'; /* abstract namespace */
	notify_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
	notify_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	return notify_fd < 0 ? -errno : 0;
}

int bd_notify(const char *message)
{
	if (notify_fd < 0)
		return 0;
	ssize_t n = sendto(notify_fd, message, strlen(message), MSG_DONTWAIT | MSG_NOSIGNAL,
	                   (const struct sockaddr *)&notify_addr, notify_len);
	if (n >= 0)
		return 0;
	return errno == EWOULDBLOCK ? -EAGAIN : -errno;
}

void bd_notify_close(void)
{
	if (notify_fd >= 0)
		close(notify_fd);
	notify_fd = -1;
}
