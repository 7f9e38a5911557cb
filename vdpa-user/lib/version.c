// SPDX-License-Identifier: MIT
/* vdpa_version(): the library's version at run time. */
#include <vdpa-user/version.h>

const char *vdpa_version(void)
{
	return VDPA_USER_VERSION;
}
