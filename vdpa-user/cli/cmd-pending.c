// SPDX-License-Identifier: MIT
/* Commands whose implementation has not landed yet: say so, exit 2. */
#include "cli.h"

#define PENDING(fn, what)						\
int fn(int argc, char **argv)						\
{									\
	(void)argc;							\
	(void)argv;							\
	cli_err("%s is not implemented in this build", what);		\
	return 2;							\
}

PENDING(cmd_mgmtdev_show, "mgmtdev show")
PENDING(cmd_dev_add, "dev add")
PENDING(cmd_dev_del, "dev del")
PENDING(cmd_dev_config_show, "dev config show")
PENDING(cmd_dev_vstats_show, "dev vstats show")
