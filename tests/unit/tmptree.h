/*
 * A private temporary directory tree for a unit test or benchmark that
 * needs files (stores, logs):
 *   char root[64];
 *   if (tmptree_make(root, sizeof(root), "t_x") != 0) return 1;
 *   ...
 *   tmptree_remove(root);
 */
#ifndef TMPTREE_H
#define TMPTREE_H

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

static int
tmptree_rm_one(
    const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

/* Removes <path> and everything under it; what cannot go stays. */
static void __attribute__((unused)) tmptree_remove(const char *path)
{
	(void)nftw(path, tmptree_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* A new directory /tmp/<name>.XXXXXX, its path in buf; -1 (and a message)
 * when it cannot be made. */
static int __attribute__((unused))
tmptree_make(char *buf, size_t len, const char *name)
{
	if ((size_t)snprintf(buf, len, "/tmp/%s.XXXXXX", name) >= len) {
		fprintf(stderr, "%s: temporary path too long\n", name);
		return -1;
	}
	if (mkdtemp(buf) == NULL) {
		perror("mkdtemp");
		return -1;
	}
	return 0;
}

#endif
