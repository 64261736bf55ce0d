/*
 * Telling the service manager how start-up and shutdown go (systemd's
 * Type=notify).  Without libsystemd at build time, or outside systemd
 * (no NOTIFY_SOCKET), it does nothing.
 */
#ifndef CDN_NOTIFY_H
#define CDN_NOTIFY_H

/* Send <state> ("READY=1", "STOPPING=1", ...).  Any thread. */
void cdn_notify(const char *state);

#endif /* CDN_NOTIFY_H */
