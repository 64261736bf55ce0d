/* The service manager's notifications (common/cdn_notify.h). */
#include "config.h"

#ifdef HAVE_LIBSYSTEMD
#include <systemd/sd-daemon.h>
#endif

#include "common/cdn_log.h"
#include "common/cdn_notify.h"

void
cdn_notify(const char *state)
{
#ifdef HAVE_LIBSYSTEMD
	int rc = sd_notify(0, state);

	/* The manager waits for READY=1 and then kills us: say why. */
	if (rc < 0)
		CDN_LOG(CDN_LOG_WARN, "notify", "sd_notify(%s): error %d",
		    state, rc);
#else
	(void)state;
#endif
}
