/*
 * Dropping root (common/cdn_priv.h).
 *
 * Why two steps: the cache, the logs and the certificates must be opened
 * (and created) as the user that will later write and re-read them, so the
 * user changes first; but a listener on port 80 needs CAP_NET_BIND_SERVICE,
 * and the listeners are bound later, by the worker set-up.  So the first
 * step keeps that one capability, and keeps the saved uid at 0: the kernel
 * clears every capability of a thread whose real, effective and saved uids
 * all leave 0, and glibc applies setresuid() to every thread of the
 * process.  The second step sets the saved uid too, which strips the
 * capability from every thread started in between (capset() alone would
 * reach only the calling thread).
 */
#include "config.h"

#include <errno.h>
#include <grp.h>
#include <linux/capability.h>
#include <pwd.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/cdn_log.h"
#include "common/cdn_priv.h"

/* Set the calling thread's permitted and effective sets to <mask>. */
static int
caps_set(uint32_t mask)
{
	struct __user_cap_header_struct hdr;
	struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3];

	memset(&hdr, 0, sizeof(hdr));
	memset(data, 0, sizeof(data));
	hdr.version = _LINUX_CAPABILITY_VERSION_3;
	data[0].permitted = mask;
	data[0].effective = mask;
	return (int)syscall(SYS_capset, &hdr, data);
}

int
cdn_priv_become(const char *user)
{
	struct passwd *pw;

	if (user[0] == '\0')
		return CDN_OK;
	errno = 0;
	pw = getpwnam(user);
	if (pw == NULL) {
		CDN_LOG(CDN_LOG_ERR, "priv", "user %s: %s", user,
		    errno != 0 ? strerror(errno) : "no such user");
		return CDN_EINVAL;
	}
	if (geteuid() != 0) {
		if (geteuid() == pw->pw_uid)
			return CDN_OK;
		CDN_LOG(CDN_LOG_ERR, "priv",
		    "user %s: only root can become another user", user);
		return CDN_EINVAL;
	}
	if (pw->pw_uid == 0) {
		CDN_LOG(
		    CDN_LOG_ERR, "priv", "user %s is root: name another", user);
		return CDN_EINVAL;
	}
	if (initgroups(user, pw->pw_gid) != 0 ||
	    setresgid(pw->pw_gid, pw->pw_gid, pw->pw_gid) != 0 ||
	    setresuid(pw->pw_uid, pw->pw_uid, 0) != 0) {
		CDN_LOG(CDN_LOG_ERR, "priv", "becoming %s: %s", user,
		    strerror(errno));
		return CDN_EIO;
	}
	/* The effective set was cleared as the euid left 0; the permitted
	 * set shrinks to what binding needs. */
	if (caps_set(UINT32_C(1) << CAP_NET_BIND_SERVICE) != 0) {
		CDN_LOG(CDN_LOG_ERR, "priv", "capset: %s", strerror(errno));
		return CDN_EIO;
	}
	CDN_LOG(CDN_LOG_INFO, "priv", "running as %s (uid %u, gid %u)", user,
	    (unsigned)pw->pw_uid, (unsigned)pw->pw_gid);
	return CDN_OK;
}

int
cdn_priv_finish(void)
{
	uid_t r, e, s;

	if (getresuid(&r, &e, &s) != 0) {
		CDN_LOG(CDN_LOG_ERR, "priv", "getresuid: %s", strerror(errno));
		return CDN_EIO;
	}
	if (s == 0 && e != 0 && setresuid(e, e, e) != 0) {
		CDN_LOG(CDN_LOG_ERR, "priv", "setresuid: %s", strerror(errno));
		return CDN_EIO;
	}
	if (e == 0)
		return CDN_OK; /* root by choice: it keeps its capabilities */
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 ||
	    caps_set(0) != 0) {
		CDN_LOG(CDN_LOG_ERR, "priv", "dropping capabilities: %s",
		    strerror(errno));
		return CDN_EIO;
	}
	return CDN_OK;
}
