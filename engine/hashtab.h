/*
 * hashtab.h - growing a chained hash table.
 *
 * The engine's entry table and the mount's tables of inodes and versions
 * are arrays of buckets, each the head of a chain linked through a
 * pointer inside the node.  Each keeps its own node type, hash function
 * and load factor; what they share is doubling the array when the chains
 * get long, which is written once, here.
 */
#ifndef DKV_HASHTAB_H
#define DKV_HASHTAB_H

#include <stddef.h>

/* Double a table of *mask + 1 buckets (a power of two).  table: the
 * address of the bucket array (struct x ***, say &e->table), which is
 * replaced by a new one and freed; next_off: where a node keeps its chain
 * pointer (offsetof(struct x, hnext)); hash(node): the node's hash (any
 * bits: the bucket is hash & *mask).  *mask becomes the new mask. */
void dkv_hashtab_grow(void *table, size_t *mask, size_t next_off,
		      size_t (*hash)(const void *node));

#endif
