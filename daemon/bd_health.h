/* bd_health.h - grpc.health.v1.Health: Check and the Watch stream. */
#ifndef BD_HEALTH_H
#define BD_HEALTH_H

#include <stdbool.h>

#include "bd_grpc.h"

typedef struct bd_health bd_health;

/* Services known to Check/Watch besides "" (the whole server). */
int bd_health_create(const char *const *services, size_t n_services, bd_health **out);

/* Registers Check and Watch (before bd_server_start). */
int bd_health_register(bd_health *h, bd_server *server);

/* SERVING or NOT_SERVING for every service; watchers hear of the change. */
void bd_health_set_serving(bd_health *h, bool serving);

/* Ends every Watch stream (the server is going away). */
void bd_health_close_watchers(bd_health *h);

/* After the server is destroyed (every watcher has ended). */
void bd_health_destroy(bd_health *h);

#endif
