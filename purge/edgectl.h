/*
 * edgectl's parts (purge/edgectl.c): the command line, and the purge bus
 * client of --bus (purge/edgectl_bus.c).
 */
#ifndef EDGECTL_H
#define EDGECTL_H

#include <stdint.h>

#include <jansson.h>

/*
 * Publish <purge> ({"urls", "tags", "prefixes", "soft"}) to the purge bus
 * at <url> (password from <password_file>, or NULL) and print its ID;
 * with <wait_ms> > 0, wait until every live node applied it.  The exit
 * status: 0 done (and confirmed), 1 failed or not confirmed, 2 bad usage.
 */
int edgectl_bus_purge(const char *url, const char *password_file, json_t *purge,
    uint64_t wait_ms, int json_out);

void edgectl_print_json(json_t *j);

/* "confirmed by every live node" or who had not; who is down. */
void edgectl_print_fleet(int confirmed, json_t *behind, json_t *down);

#endif /* EDGECTL_H */
