/*
 * Running as an unprivileged user: edged started as root with `user` set
 * becomes that user before it opens anything, keeping only the right to
 * bind ports below 1024 until its listeners are open, then drops that too.
 */
#ifndef CDN_PRIV_H
#define CDN_PRIV_H

#include "common/cdn.h"

/*
 * Become <user> (its uid, primary group and supplementary groups), keeping
 * CAP_NET_BIND_SERVICE and a saved uid of 0 until cdn_priv_finish().  Call
 * it before any thread starts: the threads created after it inherit its
 * state.  <user> "" does nothing; a process that is not root may only name
 * its own user.  Returns CDN_EINVAL (unknown user, or not root) or CDN_EIO
 * (a failed set*id or capset), after logging why.
 */
int cdn_priv_become(const char *user) CDN_WUR;

/*
 * Give up what cdn_priv_become() kept: in every thread, the saved uid 0 and
 * with it every capability; in the calling thread, any capability the
 * process was started with (systemd's AmbientCapabilities).  Call it once
 * the listeners are open.  CDN_EIO after logging why.
 */
int cdn_priv_finish(void) CDN_WUR;

#endif /* CDN_PRIV_H */
