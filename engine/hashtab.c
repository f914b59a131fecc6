/*
 * hashtab.c - growing a chained hash table (hashtab.h).
 *
 * The caller's bucket array and chain pointers are pointers to its own
 * node type; here they are handled as void *, which has the same
 * representation as every object pointer on the platforms we build for.
 */
#include "hashtab.h"
#include "mp.h"

#include <stdlib.h>

void dkv_hashtab_grow(void *table, size_t *mask, size_t next_off,
		      size_t (*hash)(const void *node))
{
	void ***tablep = table;
	void **old = *tablep;
	size_t nb = (*mask + 1) * 2;
	void **t = dkv_xcalloc(nb, sizeof *t);
	for (size_t i = 0; i <= *mask; i++) {
		for (void *x = old[i], *nx; x; x = nx) {
			void **next = (void **)((char *)x + next_off);
			nx = *next;
			size_t b = hash(x) & (nb - 1);
			*next = t[b];
			t[b] = x;
		}
	}
	free(old);
	*tablep = t;
	*mask = nb - 1;
}
