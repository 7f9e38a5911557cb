/* SPDX-License-Identifier: MIT */
/*
 * libvdpa-user version: the headers' version at compile time (macros) and
 * the library's at run time (vdpa_version()). This file is the one place
 * the version is written: the Makefile reads it for the shared library's
 * file name, the pkg-config file and the man pages.
 */
#ifndef VDPA_USER_VERSION_H
#define VDPA_USER_VERSION_H

#ifdef __cplusplus
extern "C" {
#endif

/* As in vdpa-user.h (an identical redefinition is allowed). */
#if defined(VDPA_USER_BUILD)
#define VDPA_EXPORT __attribute__((visibility("default")))
#else
#define VDPA_EXPORT
#endif

#define VDPA_USER_VERSION_MAJOR 0
#define VDPA_USER_VERSION_MINOR 1
#define VDPA_USER_VERSION_PATCH 0

#define VDPA_USER_VERSION_STR_(x) #x
#define VDPA_USER_VERSION_STR(x) VDPA_USER_VERSION_STR_(x)
/* "MAJOR.MINOR.PATCH", made from the three numbers above. */
#define VDPA_USER_VERSION                                                   \
	VDPA_USER_VERSION_STR(VDPA_USER_VERSION_MAJOR) "."                  \
	VDPA_USER_VERSION_STR(VDPA_USER_VERSION_MINOR) "."                  \
	VDPA_USER_VERSION_STR(VDPA_USER_VERSION_PATCH)

/* True in #if when these headers are at least version major.minor.patch. */
#define VDPA_USER_CHECK_VERSION(major, minor, patch)                        \
	(VDPA_USER_VERSION_MAJOR > (major) ||                               \
	 (VDPA_USER_VERSION_MAJOR == (major) &&                             \
	  (VDPA_USER_VERSION_MINOR > (minor) ||                             \
	   (VDPA_USER_VERSION_MINOR == (minor) &&                           \
	    VDPA_USER_VERSION_PATCH >= (patch)))))

/*
 * The version of the library the program runs with, "MAJOR.MINOR.PATCH"
 * (a static string), which may be newer than the headers it was built
 * with: compare it with VDPA_USER_VERSION to tell.
 */
VDPA_EXPORT const char *vdpa_version(void);

#ifdef __cplusplus
}
#endif

#endif
