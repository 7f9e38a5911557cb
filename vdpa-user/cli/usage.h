/* SPDX-License-Identifier: MIT */
/*
 * The CLI's one table of commands: what main.c dispatches on, what help
 * prints, which command options take a value (so a global option after the
 * command is told from an option's value). docs/man/vdpa-user.1 and
 * completions/vdpa-user are checked against its help (tests/cli-help.sh).
 */
#ifndef VDPA_CLI_USAGE_H
#define VDPA_CLI_USAGE_H

#include <stdbool.h>
#include <stdio.h>

struct cli_opt {
	const char *name;	/* "--count", or a keyword such as "mac" */
	const char *arg;	/* its value ("N"), NULL for a flag */
	const char *help;	/* one line */
};

struct cli_cmd {
	const char *object;
	const char *verb;	/* NULL: the object is the whole command */
	const char *verb2;	/* "show" of "dev config show": may be left out */
	int (*fn)(int argc, char **argv);
	const char *synopsis;	/* after "vdpa-user " */
	const char *summary;	/* one line, for the list of commands */
	const char *details;	/* a paragraph, or NULL */
	const struct cli_opt *opts;	/* NULL-terminated, or NULL */
};

extern const struct cli_cmd cli_cmds[];
extern const unsigned int cli_ncmds;

/* Is there a command OBJECT [VERB ...]? */
bool cli_is_object(const char *object);
/* The command named by object and verb (verb ignored for verbless ones). */
const struct cli_cmd *cli_cmd_find(const char *object, const char *verb);
/* The option of c named s, or NULL. */
const struct cli_opt *cli_cmd_opt(const struct cli_cmd *c, const char *s);

/* vdpa-user help: every command, the global options. */
void cli_usage_all(FILE *f);
/* vdpa-user help OBJECT / OBJECT help: its commands in full. */
void cli_usage_object(FILE *f, const char *object);
/* vdpa-user help COMMAND / COMMAND --help. */
void cli_usage_cmd(FILE *f, const struct cli_cmd *c);
/* "show, info, add, ..." for an object's verbs, into buf. */
const char *cli_object_verbs(const char *object, char *buf, size_t len);

#endif
